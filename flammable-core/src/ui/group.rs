//! Runs grouped by hyperparameters: the runs that differ only by seed (or by what the user did
//! not group on) are one group, whose table row gives each metric's mean ± standard
//! deviation over its runs and whose chart line is their mean with a band.
//!
//! `group=` takes a list of hyperparameters (`lr,hidden`), `*` for every hyperparameter but
//! the seed, or `none`. Runs of different experiments or kinds are never grouped together.
//! Absent, a sweep's runs (filtered by `sweep:ID`) are grouped by `*`, and others not at all.

use super::index::Summary;
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Arc;

/// What runs are grouped by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum GroupBy {
    /// Not said: a sweep is grouped by [`GroupBy::AllButSeed`], anything else not at all.
    #[default]
    Default,
    /// Not grouped.
    None,
    /// Every hyperparameter but the seed: runs that differ only by seed are one group.
    AllButSeed,
    /// These hyperparameters.
    Keys(Vec<String>),
}

impl FromStr for GroupBy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "" => Ok(GroupBy::Default),
            "none" => Ok(GroupBy::None),
            "*" => Ok(GroupBy::AllButSeed),
            keys => {
                let mut out: Vec<String> = Vec::new();
                for k in keys.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                    if k == "*" || k == "none" {
                        return Err(format!(
                            "`{text}`: use `*` or `none` alone, or hyperparameter names separated by commas"
                        ));
                    }
                    if !out.iter().any(|o| o == k) {
                        out.push(k.to_string());
                    }
                }
                Ok(GroupBy::Keys(out))
            }
        }
    }
}

impl GroupBy {
    /// The text [`FromStr`] reads back.
    pub fn text(&self) -> String {
        match self {
            GroupBy::Default => String::new(),
            GroupBy::None => "none".into(),
            GroupBy::AllButSeed => "*".into(),
            GroupBy::Keys(k) => k.join(","),
        }
    }

    /// What this means for a table filtered by `filter`: [`GroupBy::Default`] made definite
    /// (`None` back: not grouped).
    pub fn resolve(&self, filter: &str) -> Option<GroupBy> {
        match self {
            GroupBy::None => None,
            GroupBy::Default => filter
                .split_whitespace()
                .any(|w| w.starts_with("sweep:"))
                .then_some(GroupBy::AllButSeed),
            other => Some(other.clone()),
        }
    }

    /// Refuses a hyperparameter no run has (a typo would group everything as one).
    pub fn check_names(&self, hyper: &BTreeSet<String>) -> Result<(), String> {
        if let GroupBy::Keys(keys) = self {
            if let Some(k) = keys.iter().find(|k| !hyper.contains(*k)) {
                return Err(format!("no run has a hyperparameter `{k}` to group by"));
            }
        }
        Ok(())
    }
}

/// Whether hyperparameter `name` is a seed (left out of [`GroupBy::AllButSeed`]): `seed`,
/// or a name ending in `_seed` or `-seed` (`split_seed`), under any prefix (`data.seed`).
fn is_seed(name: &str) -> bool {
    let last = name.rsplit(['.', '/']).next().unwrap_or(name);
    last == "seed" || last.ends_with("_seed") || last.ends_with("-seed")
}

/// Mean, spread and range of a metric over a group's runs that have it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Stats {
    /// Runs with a finite value.
    pub n: usize,
    /// Runs whose value is not finite (diverged: NaN or infinite), left out of the rest.
    pub not_finite: usize,
    /// Their mean.
    pub mean: f64,
    /// Their sample standard deviation (0 for one run).
    pub std: f64,
    /// The lowest.
    pub min: f64,
    /// The highest.
    pub max: f64,
}

impl Stats {
    /// The statistics of the finite `values` (`None` when there is none).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Stats> {
        let (v, bad): (Vec<f64>, Vec<f64>) = values.into_iter().partition(|v| v.is_finite());
        if v.is_empty() {
            return (!bad.is_empty()).then_some(Stats {
                n: 0,
                not_finite: bad.len(),
                mean: f64::NAN,
                std: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            });
        }
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(Stats {
            n,
            not_finite: bad.len(),
            mean,
            std: var.sqrt(),
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

/// Runs that share their experiment, kind and the grouped hyperparameters' values.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Group {
    /// The experiment.
    pub experiment: String,
    /// Its runs' kind.
    pub kind: crate::store::record::RunKind,
    /// The grouped hyperparameters' values (absent ones left out).
    pub key: BTreeMap<String, String>,
    /// Its runs, in the order they came.
    #[serde(serialize_with = "ids")]
    pub runs: Vec<Arc<Summary>>,
    /// Each final metric over the runs that have it.
    pub metrics: BTreeMap<String, Stats>,
}

fn ids<S: serde::Serializer>(runs: &[Arc<Summary>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(runs.iter().map(|r| r.id.as_str()))
}

/// `runs` grouped by `by` (definite: not [`GroupBy::Default`]), groups in the order of their
/// first run.
pub fn group(runs: &[Arc<Summary>], by: &GroupBy) -> Vec<Group> {
    let keys: Vec<String> = match by {
        GroupBy::Keys(k) => k.clone(),
        GroupBy::AllButSeed => {
            let all: BTreeSet<&String> = runs.iter().flat_map(|r| r.hyper.keys()).collect();
            all.into_iter().filter(|k| !is_seed(k)).cloned().collect()
        }
        GroupBy::None | GroupBy::Default => Vec::new(),
    };
    let mut order: Vec<(String, String, BTreeMap<String, String>)> = Vec::new();
    let mut kinds = Vec::new();
    let mut members: Vec<Vec<Arc<Summary>>> = Vec::new();
    let mut position: BTreeMap<(String, String, BTreeMap<String, String>), usize> = BTreeMap::new();
    for r in runs {
        let key: BTreeMap<String, String> = keys
            .iter()
            .filter_map(|k| Some((k.clone(), r.hyper.get(k)?.clone())))
            .collect();
        let whole = (r.experiment.clone(), r.kind.to_string(), key);
        match (by, position.get(&whole)) {
            (GroupBy::None | GroupBy::Default, _) | (_, None) => {
                position.insert(whole.clone(), members.len());
                order.push(whole);
                kinds.push(r.kind);
                members.push(vec![r.clone()]);
            }
            (_, Some(&i)) => members[i].push(r.clone()),
        }
    }
    order
        .into_iter()
        .zip(members)
        .zip(kinds)
        .map(|(((experiment, _, key), runs), kind)| {
            let names: BTreeSet<&String> = runs.iter().flat_map(|r| r.metrics.keys()).collect();
            let metrics = names
                .into_iter()
                .filter_map(|m| {
                    let stats = Stats::of(runs.iter().filter_map(|r| r.metrics.get(m).copied()))?;
                    Some((m.clone(), stats))
                })
                .collect();
            Group {
                experiment,
                kind,
                key,
                runs,
                metrics,
            }
        })
        .collect()
}

/// One label per group: what sets it apart from the others (the grouped values that differ
/// among them; the experiment when that differs) and how many runs it holds.
pub fn labels(groups: &[Group]) -> Vec<String> {
    names(groups)
        .into_iter()
        .zip(groups)
        .map(|(name, g)| format!("{name} (n={})", g.runs.len()))
        .collect()
}

/// What sets each group apart from the others (a [`labels`] without the count).
pub fn names(groups: &[Group]) -> Vec<String> {
    let keys: BTreeSet<&String> = groups.iter().flat_map(|g| g.key.keys()).collect();
    let differ: Vec<&String> = keys
        .into_iter()
        .filter(|k| {
            let values: BTreeSet<Option<&String>> = groups.iter().map(|g| g.key.get(*k)).collect();
            values.len() > 1
        })
        .collect();
    let experiments: BTreeSet<&str> = groups.iter().map(|g| g.experiment.as_str()).collect();
    let kinds: BTreeSet<String> = groups.iter().map(|g| g.kind.to_string()).collect();
    groups
        .iter()
        .map(|g| {
            let mut parts: Vec<String> = Vec::new();
            if experiments.len() > 1 {
                parts.push(g.experiment.clone());
            }
            if kinds.len() > 1 {
                parts.push(g.kind.to_string());
            }
            for k in &differ {
                parts.push(format!("{k}={}", g.key.get(*k).map_or("–", String::as_str)));
            }
            if parts.is_empty() {
                parts.push(g.experiment.clone());
            }
            parts.join(" ")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::{Record, RunKind};

    fn run(id: &str, hyper: &[(&str, &str)], loss: f64) -> Arc<Summary> {
        let mut r = Record::new("x", RunKind::Train, 0);
        r.id = id.into();
        let mut s = crate::ui::index::tests::summary(r);
        s.hyper = hyper
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s.metrics.insert("loss".into(), loss);
        Arc::new(s)
    }

    #[test]
    fn runs_that_differ_only_by_seed_are_one_group() {
        let runs = vec![
            run("a", &[("lr", "0.1"), ("seed", "1")], 1.0),
            run("b", &[("lr", "0.01"), ("seed", "1")], 4.0),
            run("c", &[("lr", "0.1"), ("seed", "2")], 3.0),
            run("d", &[("lr", "0.01"), ("seed", "2")], f64::NAN),
        ];
        let g = group(&runs, &GroupBy::AllButSeed);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].runs.len(), 2);
        assert_eq!(g[0].key.get("lr").map(String::as_str), Some("0.1"));
        let loss = g[0].metrics["loss"];
        assert_eq!((loss.n, loss.mean, loss.min, loss.max), (2, 2.0, 1.0, 3.0));
        assert!((loss.std - 2f64.sqrt()).abs() < 1e-12);
        // A value that is not finite does not count, and is counted apart.
        assert_eq!(
            (g[1].metrics["loss"].n, g[1].metrics["loss"].not_finite),
            (1, 1)
        );
        assert_eq!(labels(&g), ["lr=0.1 (n=2)", "lr=0.01 (n=2)"]);
        // Grouped by a key of one's own: all four share the seed's absence from the key.
        assert_eq!(group(&runs, &GroupBy::Keys(vec!["seed".into()])).len(), 2);
        assert_eq!(group(&runs, &GroupBy::None).len(), 4);
    }

    #[test]
    fn group_texts_read_and_a_sweep_groups_by_default() {
        assert_eq!("".parse::<GroupBy>(), Ok(GroupBy::Default));
        assert_eq!("*".parse::<GroupBy>(), Ok(GroupBy::AllButSeed));
        assert_eq!(
            "lr, hidden,lr".parse::<GroupBy>(),
            Ok(GroupBy::Keys(vec!["lr".into(), "hidden".into()]))
        );
        assert!("lr,*".parse::<GroupBy>().is_err());
        assert_eq!(
            GroupBy::Default.resolve("sweep:ab12 loss<1"),
            Some(GroupBy::AllButSeed)
        );
        assert_eq!(GroupBy::Default.resolve("loss<1"), None);
        assert_eq!(GroupBy::None.resolve("sweep:ab12"), None);
        let hyper: BTreeSet<String> = ["lr".to_string()].into();
        assert!(GroupBy::Keys(vec!["lrr".into()])
            .check_names(&hyper)
            .unwrap_err()
            .contains("lrr"));
        assert!(is_seed("data.seed") && is_seed("split_seed") && !is_seed("seeds"));
    }
}
