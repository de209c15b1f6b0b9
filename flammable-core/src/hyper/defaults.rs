//! Hyperparameters recorded before a field existed: a run's `hyperparameters.ron` lacks the
//! fields a task added since, and each takes its flag's default (the task's clap defaults are
//! known), as if the run had been started without the flag. Nothing is needed of the task's
//! struct but what it already derives.

use super::RawFields;
use clap::{Args, Command, FromArgMatches};
use std::collections::BTreeMap;

/// A field a recorded run lacked, and the default it took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filled {
    /// The field (`dropout`, or `encoder.width` inside a flattened struct).
    pub field: String,
    /// Its default, as RON.
    pub value: String,
}

/// One line naming the `filled` fields of run `run` and the defaults they took; `None` when
/// none was.
pub fn describe(run: &str, filled: &[Filled]) -> Option<String> {
    if filled.is_empty() {
        return None;
    }
    let list: Vec<String> = filled
        .iter()
        .map(|f| format!("{} = {}", f.field, f.value))
        .collect();
    Some(format!(
        "run {run} was recorded before hyperparameter(s) {} existed: it takes their default(s) ({})",
        filled
            .iter()
            .map(|f| format!("`{}`", f.field))
            .collect::<Vec<_>>()
            .join(", "),
        list.join(", ")
    ))
}

/// The values `H`'s flags take when none is given, as RON; `None` when a flag has no default
/// (a required one) or the values do not serialize.
pub fn clap_defaults<H: Args + FromArgMatches + serde::Serialize>() -> Option<String> {
    let matches = H::augment_args(Command::new("defaults"))
        .no_binary_name(true)
        .try_get_matches_from(std::iter::empty::<String>())
        .ok()?;
    let value = H::from_arg_matches(&matches).ok()?;
    crate::util::ron_text::to_pretty(&value).ok()
}

/// `recorded` (a RON struct) with the fields it lacks taken from `defaults` (the same
/// struct's defaults, as RON), in nested structs too; and the fields taken. `None` when
/// either is not a RON struct.
pub fn merge_defaults(recorded: &str, defaults: &str) -> Option<(String, Vec<Filled>)> {
    let mut filled = Vec::new();
    let text = merge(recorded, defaults, "", &mut filled)?;
    Some((text, filled))
}

fn merge(recorded: &str, defaults: &str, prefix: &str, filled: &mut Vec<Filled>) -> Option<String> {
    let recorded: RawFields = ron::from_str(recorded).ok()?;
    let defaults: RawFields = ron::from_str(defaults).ok()?;
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in &recorded.0 {
        let value = value.get_ron().trim().to_string();
        let nested = defaults
            .0
            .get(key)
            .filter(|_| value.starts_with('('))
            .and_then(|d| {
                merge(
                    &value,
                    d.get_ron().trim(),
                    &format!("{prefix}{key}."),
                    filled,
                )
            });
        out.insert(key.clone(), nested.unwrap_or(value));
    }
    for (key, value) in &defaults.0 {
        if !out.contains_key(key) {
            let value = value.get_ron().trim().to_string();
            filled.push(Filled {
                field: format!("{prefix}{key}"),
                value: value.clone(),
            });
            out.insert(key.clone(), value);
        }
    }
    let fields: Vec<String> = out.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    Some(format!("({})", fields.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, clap::Args)]
    struct Inner {
        #[arg(long, default_value_t = 4)]
        width: usize,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, clap::Args)]
    struct Hyper {
        #[arg(long, default_value_t = 128)]
        hidden: usize,
        #[arg(long, default_value_t = 0.25)]
        dropout: f64,
        #[arg(long)]
        label: Option<String>,
        #[command(flatten)]
        inner: Inner,
    }

    #[test]
    fn missing_fields_take_their_flags_defaults_nested_too() {
        let defaults = clap_defaults::<Hyper>().unwrap();
        let (text, filled) = merge_defaults("(hidden: 7, inner: ())", &defaults).unwrap();
        let hyper: Hyper = ron::from_str(&text).unwrap();
        assert_eq!(
            hyper,
            Hyper {
                hidden: 7,
                dropout: 0.25,
                label: None,
                inner: Inner { width: 4 }
            }
        );
        let names: Vec<&str> = filled.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["inner.width", "dropout", "label"]);
        let line = describe("r1", &filled).unwrap();
        assert!(
            line.contains("`dropout`") && line.contains("dropout = 0.25"),
            "{line}"
        );
        // A complete record takes nothing.
        let (_, none) = merge_defaults(&defaults, &defaults).unwrap();
        assert!(none.is_empty());
        assert!(describe("r1", &none).is_none());
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, clap::Args)]
    struct Required {
        #[arg(long)]
        path: String,
    }

    #[test]
    fn a_flag_without_default_has_none_to_give() {
        assert!(clap_defaults::<Required>().is_none());
    }
}
