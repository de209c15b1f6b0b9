//! Runs chosen on the command line by the sweep they belong to.

use crate::error::{Error, Result};
use crate::store::record::Record;
use crate::store::Store;
use std::collections::BTreeSet;

/// The runs of the one sweep of `store` whose id starts with `prefix`; a usage error when
/// no sweep or several fit.
pub fn runs_of_sweep(store: &Store, prefix: &str) -> Result<Vec<Record>> {
    let all = store.records()?;
    let sweeps: BTreeSet<&str> = all
        .iter()
        .filter_map(|r| r.sweep.as_deref())
        .filter(|s| s.starts_with(prefix))
        .collect();
    let chosen = match sweeps.len() {
        0 => {
            return Err(Error::usage(format!(
                "no sweep `{prefix}` in {}",
                store.root().display()
            )))
        }
        1 => sweeps.into_iter().next().map(str::to_string),
        n => {
            return Err(Error::usage(format!(
                "sweep prefix `{prefix}` fits {n} sweeps; type more of it"
            )))
        }
    };
    Ok(all.into_iter().filter(|r| r.sweep == chosen).collect())
}
