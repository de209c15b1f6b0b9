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
    crate::hyper::read_flat_warned(&path, id, "no hyperparameters exported")
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
                    "warning: run {}: {unnamed} metric point{} whose name is missing from the run's metrics.names (a damaged file): left out",
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
    /// Every value is a whole number that a 64-bit integer holds.
    Integer {
        /// Whether some value is below zero.
        negative: bool,
        /// Whether some value is beyond 2^53, where doubles skip whole numbers.
        large: bool,
    },
    /// Every value is a whole number from 0 that an unsigned 64-bit integer holds, some
    /// beyond a signed one (seeds).
    Unsigned,
    /// Every value is a number (some not whole, or beyond 64 bits).
    Number,
    /// Every value is `true` or `false`.
    Bool,
    /// Anything else (values of different kinds too).
    Text,
    /// No run sets it.
    Unset,
}

impl ParamType {
    /// The type of a column of values of this type and of `t`: the narrowest that holds
    /// both exactly (text when none does).
    fn with(self, t: ParamType) -> ParamType {
        use ParamType::*;
        match (self, t) {
            (Unset, t) | (t, Unset) => t,
            (a, b) if a == b => a,
            (
                Integer {
                    negative: a,
                    large: x,
                },
                Integer {
                    negative: b,
                    large: y,
                },
            ) => Integer {
                negative: a || b,
                large: x || y,
            },
            (Integer { negative, .. }, Unsigned) | (Unsigned, Integer { negative, .. }) => {
                // Below zero and beyond a signed integer: no integer holds both, nor a double.
                if negative {
                    Text
                } else {
                    Unsigned
                }
            }
            (Integer { .. } | Number, Integer { .. } | Number) => Number,
            _ => Text,
        }
    }
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
                let t = if let Ok(i) = v.parse::<i64>() {
                    ParamType::Integer {
                        negative: i < 0,
                        large: i.unsigned_abs() > 1 << 53,
                    }
                } else if v.parse::<u64>().is_ok() {
                    ParamType::Unsigned
                } else if v.parse::<f64>().is_ok() {
                    ParamType::Number
                } else if v == "true" || v == "false" {
                    ParamType::Bool
                } else {
                    ParamType::Text
                };
                types
                    .entry(k.clone())
                    .and_modify(|old| *old = old.with(t))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn types(values: &[&[&str]]) -> ParamType {
        let runs: Vec<BTreeMap<String, String>> = values
            .iter()
            .flat_map(|column| column.iter())
            .map(|v| BTreeMap::from([("p".to_string(), v.to_string())]))
            .collect();
        ParamTypes::of(&runs).get("p")
    }

    #[test]
    fn a_column_is_the_narrowest_type_that_holds_its_values_exactly() {
        let int = |negative, large| ParamType::Integer { negative, large };
        assert_eq!(types(&[&["64", "128", "None"]]), int(false, false));
        assert_eq!(types(&[&["-1", "9007199254740993"]]), int(true, true));
        // Seeds beyond a signed integer: unsigned, unless a value is below zero.
        assert_eq!(
            types(&[&["3", "18446744073709551615"]]),
            ParamType::Unsigned
        );
        assert_eq!(types(&[&["-3", "18446744073709551615"]]), ParamType::Text);
        assert_eq!(types(&[&["1", "0.5"]]), ParamType::Number);
        assert_eq!(types(&[&["0.5", "18446744073709551615"]]), ParamType::Text);
        assert_eq!(types(&[&["true", "false"]]), ParamType::Bool);
        assert_eq!(types(&[&["true", "1"]]), ParamType::Text);
        assert_eq!(types(&[&["None"]]), ParamType::Unset);
    }
}
