//! What the lines of a chart of several runs are called: each run's id and what sets it
//! apart from the others — the hyperparameters whose values differ among them, and its
//! message when the messages differ — so that the eight runs of a sweep read
//! `… · lr=0.001 hidden=64`, not eight times the sweep's message.

use super::index::Summary;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// At most this many differing hyperparameters name a line.
const SHOWN: usize = 4;

/// The hyperparameters whose values (or presence) differ among `runs`, by name, each with
/// its number of distinct values.
pub fn differing(runs: &[Arc<Summary>]) -> Vec<(String, usize)> {
    let names: BTreeSet<&String> = runs.iter().flat_map(|r| r.hyper.keys()).collect();
    let mut out = Vec::new();
    for name in names {
        let values: BTreeSet<Option<&String>> = runs.iter().map(|r| r.hyper.get(name)).collect();
        if values.len() > 1 {
            out.push((name.clone(), values.len()));
        }
    }
    out
}

/// One label per run of `runs`, in order: its id alone when it is alone, else its id, the
/// hyperparameters that differ among the runs (those with the most distinct values first, at
/// most [`SHOWN`]) and its message when the messages differ.
pub fn labels(runs: &[Arc<Summary>]) -> Vec<String> {
    if runs.len() < 2 {
        return runs.iter().map(|r| r.id.clone()).collect();
    }
    let mut keys = differing(runs);
    // Stable: names stay in order among keys with as many values.
    keys.sort_by_key(|(_, values)| std::cmp::Reverse(*values));
    let more = keys.len() > SHOWN;
    let keys: Vec<String> = keys.into_iter().take(SHOWN).map(|(k, _)| k).collect();
    let messages: BTreeMap<&str, usize> = runs.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.message.as_str()).or_default() += 1;
        m
    });
    let messages_differ = messages.len() > 1;
    runs.iter()
        .map(|r| {
            let mut parts = vec![r.id.clone()];
            if !keys.is_empty() {
                let mut values: Vec<String> = keys
                    .iter()
                    .map(|k| format!("{k}={}", r.hyper.get(k).map_or("–", String::as_str)))
                    .collect();
                if more {
                    values.push("…".into());
                }
                parts.push(values.join(" "));
            }
            if messages_differ && !r.message.is_empty() {
                parts.push(r.message.clone());
            }
            parts.join(" · ")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::{Record, RunKind};

    fn run(id: &str, message: &str, hyper: &[(&str, &str)]) -> Arc<Summary> {
        let mut r = Record::new("x", RunKind::Train, 0);
        r.id = id.into();
        let mut s = crate::ui::index::tests::summary(r);
        s.message = message.into();
        s.hyper = hyper
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Arc::new(s)
    }

    #[test]
    fn a_sweep_reads_as_its_differing_hyperparameters() {
        let runs: Vec<Arc<Summary>> = [("0.1", "64"), ("0.01", "64"), ("0.001", "128")]
            .iter()
            .enumerate()
            .map(|(i, (lr, hidden))| {
                run(
                    &format!("r{i}"),
                    "sweep1",
                    &[("lr", lr), ("hidden", hidden), ("epochs", "10")],
                )
            })
            .collect();
        assert_eq!(
            labels(&runs),
            [
                "r0 · lr=0.1 hidden=64",
                "r1 · lr=0.01 hidden=64",
                "r2 · lr=0.001 hidden=128"
            ]
        );
        // Messages that differ name the runs too; a run alone is its id.
        let two = [run("a", "baseline", &[]), run("b", "wider", &[])];
        assert_eq!(labels(&two), ["a · baseline", "b · wider"]);
        assert_eq!(labels(&two[..1]), ["a"]);
        // A hyperparameter one run lacks differs; more than four are cut.
        let many = [
            run(
                "a",
                "",
                &[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1"), ("e", "1")],
            ),
            run("b", "", &[("a", "2"), ("b", "2"), ("c", "2"), ("d", "2")]),
        ];
        assert_eq!(labels(&many)[1], "b · a=2 b=2 c=2 d=2 …");
        assert_eq!(differing(&many).len(), 5);
    }
}
