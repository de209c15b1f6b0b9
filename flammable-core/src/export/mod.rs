//! Exports of runs into the formats other tools read, from the store after the fact (never
//! inside a training loop, so they cost training nothing and can be repeated).

pub mod mlflow;
pub mod parquet;
pub mod table;
pub mod tensorboard;

use crate::error::{Error, Result};
use crate::snapshot::FileChange;
use crate::store::metrics::{read_metrics_checked, Point};
use crate::store::record::Record;
use crate::store::Store;
use std::collections::BTreeMap;

/// Run `id`'s hyperparameters, flattened (`crate::hyper::read_flat`); when its file is there
/// but cannot be read (damaged), a warning says so, and none are exported: left out, as unset
/// ones are, rather than an error that would stop the export of every other run.
pub fn hyperparameters_of(store: &Store, id: &str) -> BTreeMap<String, String> {
    let path = store.run_dir(id).join(crate::store::HYPERPARAMETERS_FILE);
    let hyper = crate::hyper::read_flat(&path);
    if hyper.is_empty() && path.exists() {
        crate::util::stderr::errln!(
            "warning: run {id}: {} cannot be read: no hyperparameters exported",
            path.display()
        );
    }
    hyper
}

/// The run's metric points, in the order written (none when it has no metrics file); a
/// warning names the records its names file does not name (a damaged file), which are left
/// out.
pub fn points_of(store: &Store, r: &Record) -> Result<Vec<Point>> {
    let path = store.metrics_path(&r.id);
    match read_metrics_checked(&path) {
        Ok((points, unnamed)) => {
            if unnamed > 0 {
                crate::util::stderr::errln!(
                    "warning: run {}: {unnamed} metric record{} name no metric of its names file: left out",
                    r.id,
                    if unnamed == 1 { "" } else { "s" }
                );
            }
            Ok(points)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("cannot read", &path, e)),
    }
}

/// The record's final metrics that no series of `points` holds (a test's results, as
/// `test/<name>`): exporters write them once, at the run's last step.
pub fn final_metrics(r: &Record, points: &[Point]) -> BTreeMap<String, f64> {
    let series: std::collections::BTreeSet<&str> = points.iter().map(|p| &*p.name).collect();
    r.all_metrics()
        .into_iter()
        .filter(|(name, _)| !series.contains(name.as_str()))
        .collect()
}

/// What a run's code was, against the commit it was based on.
pub enum CodeDiff {
    /// The run has no snapshot.
    NoSnapshot,
    /// The snapshot cannot be read (its repository is gone): why.
    Unreadable(String),
    /// The snapshot against its base commit (`None`: the empty tree).
    Changes {
        /// The base commit.
        base: Option<String>,
        /// The snapshot's commit.
        commit: String,
        /// The files that differ, with unified diffs of the text ones.
        changes: Vec<FileChange>,
    },
}

impl CodeDiff {
    /// Run `r`'s code against its base commit.
    pub fn of(r: &Record) -> CodeDiff {
        let Some(s) = &r.snapshot else {
            return CodeDiff::NoSnapshot;
        };
        match crate::snapshot::diff(&s.git_dir, s.parent.as_deref(), &s.commit, true) {
            Ok(changes) => CodeDiff::Changes {
                base: s.parent.clone(),
                commit: s.commit.clone(),
                changes,
            },
            Err(e) => CodeDiff::Unreadable(e.to_string()),
        }
    }
}

/// What a hyperparameter's column holds across the runs exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    /// Every value is a number.
    Number,
    /// Every value is `true` or `false`.
    Bool,
    /// Anything else (values of different kinds too).
    Text,
    /// No run sets it.
    Unset,
}

/// True for the value `crate::hyper::read_flat` gives an option that is not set.
pub fn is_unset(value: &str) -> bool {
    value == "None"
}

/// The type of each hyperparameter over the runs exported: tools want one type per column.
pub struct ParamTypes(BTreeMap<String, ParamType>);

impl ParamTypes {
    /// The types over `runs`' flattened hyperparameters (`crate::hyper::read_flat`); unset
    /// options ([`is_unset`]) count for none.
    pub fn of<'a>(runs: impl IntoIterator<Item = &'a BTreeMap<String, String>>) -> ParamTypes {
        let mut types: BTreeMap<String, ParamType> = BTreeMap::new();
        for hyper in runs {
            for (k, v) in hyper {
                if is_unset(v) {
                    types.entry(k.clone()).or_insert(ParamType::Unset);
                    continue;
                }
                let t = if v.parse::<f64>().is_ok() {
                    ParamType::Number
                } else if v == "true" || v == "false" {
                    ParamType::Bool
                } else {
                    ParamType::Text
                };
                types
                    .entry(k.clone())
                    .and_modify(|old| {
                        if *old == ParamType::Unset {
                            *old = t;
                        } else if *old != t {
                            *old = ParamType::Text;
                        }
                    })
                    .or_insert(t);
            }
        }
        ParamTypes(types)
    }

    /// The type of hyperparameter `key` (text when no run has it).
    pub fn get(&self, key: &str) -> ParamType {
        self.0.get(key).copied().unwrap_or(ParamType::Text)
    }

    /// The hyperparameters, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}
