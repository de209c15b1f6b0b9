//! Sweeps (`train --sweep`) in the store: each sweep's plan, `sweeps/<id>.ron`, written
//! before its first run starts, so that a sweep whose process died can be listed and
//! continued (`train --resume <sweep>`); and `sweeps/<id>.lock`, held by the process that
//! runs it. Its runs are ordinary runs whose record names the sweep and the combination.

use super::error::IoAt;
use super::record::Record;
use super::{Result, Store, StoreError};
use crate::util::atomic::write_atomic;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The folder of the store where sweeps are kept.
pub const SWEEPS_DIR: &str = "sweeps";

/// What a sweep runs: one train command per combination of values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepRecord {
    /// The sweep's id (its runs' records name it).
    pub id: String,
    /// The experiment whose runs it makes.
    pub experiment: String,
    /// Per combination, in order: the swept flags and their values (`[("lr", "1e-3")]`).
    pub settings: Vec<Vec<(String, String)>>,
    /// Per combination: the arguments of its train command, after the program's name.
    pub argv: Vec<Vec<String>>,
}

fn path(store: &Store, id: &str, ext: &str) -> PathBuf {
    store.root().join(SWEEPS_DIR).join(format!("{id}.{ext}"))
}

/// Writes the plan of sweep `sweep.id` (atomically).
pub fn write(store: &Store, sweep: &SweepRecord) -> Result<()> {
    let dir = store.root().join(SWEEPS_DIR);
    std::fs::create_dir_all(&dir).at("cannot create", &dir)?;
    let text =
        ron::ser::to_string_pretty(sweep, ron::ser::PrettyConfig::default()).map_err(|e| {
            StoreError::Encode {
                id: sweep.id.clone(),
                message: e.to_string(),
            }
        })?;
    write_atomic(&path(store, &sweep.id, "ron"), text.as_bytes()).map_err(StoreError::Write)
}

/// The plan of sweep `id`; `None` when the store has no sweep of that id.
pub fn read(store: &Store, id: &str) -> Result<Option<SweepRecord>> {
    // An id names a file of the folder, never a path elsewhere.
    if id.is_empty() || id.contains(['/', '\\', '.']) {
        return Ok(None);
    }
    let file = path(store, id, "ron");
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at("cannot read the sweep", file),
    };
    ron::from_str(&text)
        .map(Some)
        .map_err(|e| StoreError::Corrupt {
            path: file,
            message: e.to_string(),
        })
}

/// The run of combination `trial` of sweep `sweep`, the newest if several. Ids sort by
/// start time and the sweep's id was made before any of its runs, so only the newer folders
/// are read.
pub fn run_of(store: &Store, sweep: &str, trial: usize) -> Option<Record> {
    runs_newer_than(store, sweep)
        .into_iter()
        .find(|r| r.sweep.as_deref() == Some(sweep) && r.sweep_trial == Some(trial))
}

/// The runs of sweep `sweep` by combination (the newest of each).
pub fn runs(store: &Store, sweep: &str) -> std::collections::BTreeMap<usize, Record> {
    let mut by_trial = std::collections::BTreeMap::new();
    for r in runs_newer_than(store, sweep) {
        if r.sweep.as_deref() != Some(sweep) {
            continue;
        }
        if let Some(trial) = r.sweep_trial {
            by_trial.entry(trial).or_insert(r);
        }
    }
    by_trial
}

/// The readable records whose id sorts after `id`, newest first.
fn runs_newer_than(store: &Store, id: &str) -> Vec<Record> {
    store
        .ids()
        .unwrap_or_default()
        .into_iter()
        .rev()
        .take_while(|run| run.as_str() >= id)
        .filter_map(|run| store.read(&run).ok())
        .collect()
}

/// Takes the lock of sweep `id` for as long as the returned file lives; `None` when another
/// process holds it (that sweep is running).
pub fn lock(store: &Store, id: &str) -> Result<Option<std::fs::File>> {
    let dir = store.root().join(SWEEPS_DIR);
    std::fs::create_dir_all(&dir).at("cannot create", &dir)?;
    let file = super::open_lock_file(&path(store, id, "lock"))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e).at("cannot lock", path(store, id, "lock")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_reads_back_and_its_lock_is_held_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        assert_eq!(read(&store, "20261130-080131-egs1").unwrap(), None);
        let sweep = SweepRecord {
            id: "20261130-080131-egs1".into(),
            experiment: "digits".into(),
            settings: vec![vec![("lr".into(), "1e-3".into())]],
            argv: vec![vec!["train".into(), "--lr".into(), "1e-3".into()]],
        };
        write(&store, &sweep).unwrap();
        assert_eq!(read(&store, &sweep.id).unwrap(), Some(sweep.clone()));
        assert_eq!(read(&store, "../runs/x").unwrap(), None);
        let held = lock(&store, &sweep.id).unwrap();
        assert!(held.is_some());
        // Another process's try (a second open file description) finds it held.
        assert!(lock(&store, &sweep.id).unwrap().is_none());
        drop(held);
        assert!(lock(&store, &sweep.id).unwrap().is_some());
    }
}
