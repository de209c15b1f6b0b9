//! Exports of runs into the formats other tools read, from the store after the fact (never
//! inside a training loop, so they cost training nothing and can be repeated).

pub mod parquet;
pub mod table;
pub mod tensorboard;

use std::collections::BTreeMap;

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
