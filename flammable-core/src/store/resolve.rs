//! Naming runs: the newest finished run of an experiment, and what a `RUN` argument names
//! (a full id, a unique prefix, `latest`, `latest~N`).

use super::record::{Record, RunKind, RunStatus};
use super::{Result, Store, StoreError, RECORD_FILE};

/// The most run ids [`ambiguous_prefix`] lists.
const LISTED: usize = 3;

/// One line for a prefix that fits several runs (`what`: "runs", "train runs"): a few of
/// them, and how many more — an answer stays short however many runs the store holds.
pub fn ambiguous_prefix(prefix: &str, candidates: &[String], what: &str) -> String {
    let mut listed = candidates[..candidates.len().min(LISTED)].join(", ");
    if candidates.len() > LISTED {
        listed.push_str(&format!(" and {} more", candidates.len() - LISTED));
    }
    format!(
        "run prefix `{prefix}` fits {} {what} ({listed}); type more of it",
        candidates.len()
    )
}

impl Store {
    /// The newest finished run of `experiment` and `kind`.
    pub fn latest(&self, experiment: &str, kind: RunKind) -> Result<Option<Record>> {
        Ok(self.records()?.into_iter().rev().find(|r| {
            r.experiment == experiment && r.kind == kind && r.status == RunStatus::Finished
        }))
    }

    /// The run `spec` names: a full id, a unique prefix of one, `latest` or `latest~N`: the
    /// newest train run among `candidates`, or the N-th before it (test, eval and other runs
    /// belong to a train run and are named by id, so `diff latest~1 latest` compares the
    /// last two trainings whatever was tested since), of the store's experiment when it is
    /// scoped to one ([`Store::scoped_to`]).
    pub fn resolve(&self, spec: &str, candidates: impl Fn(&Record) -> bool) -> Result<Record> {
        // An empty name (`serve ''`, a variable that was not set) names no run, not all.
        if spec.trim().is_empty() {
            return Err(StoreError::EmptyName);
        }
        // A full id names its folder: read it directly, so that a broken record says why.
        if !spec.is_empty()
            && !spec.contains(['/', '\\'])
            && self.run_dir(spec).join(RECORD_FILE).exists()
        {
            let record = self.read(spec)?;
            if candidates(&record) {
                return Ok(record);
            }
            return Err(StoreError::WrongKind {
                id: record.id,
                kind: record.kind.to_string(),
            });
        }
        let records: Vec<Record> = self
            .records()?
            .into_iter()
            .filter(|r| candidates(r))
            .collect();
        if let Some(back) = spec.strip_prefix("latest") {
            let n: usize = match back.strip_prefix('~') {
                None if back.is_empty() => 0,
                Some(n) => {
                    n.parse()
                        .map_err(|e: std::num::ParseIntError| StoreError::NoLatest {
                            spec: spec.to_string(),
                            why: if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) {
                                "N is larger than any store holds runs"
                            } else {
                                "write latest~N with a number N"
                            },
                        })?
                }
                None => {
                    return Err(StoreError::NotFound {
                        spec: spec.to_string(),
                        store: self.root.clone(),
                    })
                }
            };
            return records
                .into_iter()
                .rev()
                .filter(|r| r.kind == RunKind::Train)
                .filter(|r| self.experiment.as_ref().is_none_or(|e| &r.experiment == e))
                .nth(n)
                .ok_or_else(|| StoreError::NoLatest {
                    spec: spec.to_string(),
                    why: "there are fewer train runs",
                });
        }
        if let Some(r) = records.iter().find(|r| r.id == spec) {
            return Ok(r.clone());
        }
        let matches: Vec<&Record> = records.iter().filter(|r| r.id.starts_with(spec)).collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(match self.trashed_fitting(spec) {
                Some(id) => StoreError::InTrash { id },
                None => StoreError::NotFound {
                    spec: spec.to_string(),
                    store: self.root.clone(),
                },
            }),
            many => Err(StoreError::Ambiguous {
                prefix: spec.to_string(),
                candidates: many.iter().map(|r| r.id.clone()).collect(),
            }),
        }
    }
}
