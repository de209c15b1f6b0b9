//! The runs table's columns: which metrics and hyperparameters it shows (chosen, or else the
//! most common metrics and the hyperparameters whose values differ), and what a metric's cell
//! holds — the run's final value, or its series' last, lowest, highest or best point (by the
//! metric's direction) with the step of it.

use super::index::Summary;
use super::legend;
use crate::store::metrics::Series;
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Arc;

/// At most this many metric and hyperparameter columns each, unless chosen.
const EXTRA_COLUMNS: usize = 6;

/// What a metric's cell holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Agg {
    /// The final value the run recorded.
    #[default]
    Final,
    /// The series' last point.
    Last,
    /// Its lowest point.
    Min,
    /// Its highest point.
    Max,
    /// Its best point: the lowest of a metric to minimise, else the highest.
    Best,
}

impl FromStr for Agg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "" | "final" => Ok(Agg::Final),
            "last" => Ok(Agg::Last),
            "min" => Ok(Agg::Min),
            "max" => Ok(Agg::Max),
            "best" => Ok(Agg::Best),
            _ => Err(format!("`{text}`: use final, last, min, max or best")),
        }
    }
}

impl Agg {
    /// The text [`FromStr`] reads.
    pub fn text(self) -> &'static str {
        match self {
            Agg::Final => "final",
            Agg::Last => "last",
            Agg::Min => "min",
            Agg::Max => "max",
            Agg::Best => "best",
        }
    }
}

/// The words of a metric's name that make it better low: losses, errors and perplexities.
pub const LOWER_IS_BETTER: [&str; 11] = [
    "loss",
    "error",
    "err",
    "mse",
    "mae",
    "rmse",
    "perplexity",
    "ppl",
    "wer",
    "cer",
    "nll",
];

/// Whether a metric is better low: one of the words of its last part (split at `_`, `-`,
/// `.` and spaces) is one of [`LOWER_IS_BETTER`], or it ends with `loss` (`valloss`);
/// accuracies, scores and the rest are better high.
pub fn lower_is_better(name: &str) -> bool {
    let last = name.rsplit('/').next().unwrap_or(name).to_lowercase();
    last.ends_with("loss")
        || last
            .split(['_', '-', '.', ' '])
            .any(|w| LOWER_IS_BETTER.contains(&w))
}

/// A metric cell: the value, and the step it is at (for a point of the series).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    /// The value.
    pub value: f64,
    /// The step of the point.
    pub step: Option<u64>,
}

/// The cell of metric `name` of `run` as `agg` says, from its series `series` (when read).
pub fn cell(run: &Summary, name: &str, agg: Agg, series: Option<&Series>) -> Option<Cell> {
    if agg == Agg::Final {
        return run
            .metrics
            .get(name)
            .map(|&value| Cell { value, step: None });
    }
    let s = series?;
    let finite = s.values.iter().zip(&s.steps).filter(|(v, _)| v.is_finite());
    let pick = |low: bool| {
        finite
            .clone()
            .min_by(|a, b| {
                let o = a.0.total_cmp(b.0);
                if low {
                    o
                } else {
                    o.reverse()
                }
            })
            .map(|(&value, &step)| Cell {
                value,
                step: Some(step),
            })
    };
    match agg {
        Agg::Final => None,
        Agg::Last => s
            .values
            .last()
            .zip(s.steps.last())
            .map(|(&value, &step)| Cell {
                value,
                step: Some(step),
            }),
        Agg::Min => pick(true),
        Agg::Max => pick(false),
        Agg::Best => pick(lower_is_better(name)),
    }
}

/// The table's columns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Columns {
    /// Metrics.
    pub metrics: Vec<String>,
    /// Hyperparameters.
    pub hyper: Vec<String>,
}

/// The columns for `rows`: the names `chosen` — hyperparameters as some run of `hyper_names`
/// has them, the others metrics (final metrics, or any series when the cells are points of
/// series) — or else the most common metrics and the hyperparameters whose values differ
/// among the rows. With `differ`, a hyperparameter column whose rows all hold the same value
/// (or none) is left out (for metrics, whose cells may be points of series, see
/// [`differing_metrics`]).
pub fn choose(
    rows: &[Arc<Summary>],
    chosen: &[String],
    differ: bool,
    metric_names: &BTreeSet<String>,
    hyper_names: &BTreeSet<String>,
) -> Columns {
    let mut out = if chosen.is_empty() {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for r in rows {
            for m in r.metrics.keys() {
                *counts.entry(m).or_default() += 1;
            }
        }
        let mut metrics: Vec<(&str, usize)> = counts.into_iter().collect();
        metrics.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        Columns {
            metrics: metrics
                .into_iter()
                .take(EXTRA_COLUMNS)
                .map(|(m, _)| m.to_string())
                .collect(),
            hyper: legend::differing(rows)
                .into_iter()
                .map(|(k, _)| k)
                .take(EXTRA_COLUMNS)
                .collect(),
        }
    } else {
        Columns {
            metrics: chosen
                .iter()
                .filter(|c| metric_names.contains(*c) || !hyper_names.contains(*c))
                .cloned()
                .collect(),
            hyper: chosen
                .iter()
                .filter(|c| hyper_names.contains(*c) && !metric_names.contains(*c))
                .cloned()
                .collect(),
        }
    };
    if differ {
        out.hyper.retain(|h| {
            let values: BTreeSet<Option<&String>> = rows.iter().map(|r| r.hyper.get(h)).collect();
            values.len() > 1
        });
    }
    out
}

/// The metrics of `metrics` whose cells (by run id and metric, as shown) differ among `rows`:
/// the same value, or none, in every row leaves a column out.
pub fn differing_metrics(
    rows: &[Arc<Summary>],
    metrics: &[String],
    cells: &std::collections::HashMap<(String, String), Cell>,
) -> Vec<String> {
    metrics
        .iter()
        .filter(|m| {
            let values: BTreeSet<Option<u64>> = rows
                .iter()
                .map(|r| {
                    cells
                        .get(&(r.id.clone(), (*m).clone()))
                        .map(|c| c.value.to_bits())
                })
                .collect();
            values.len() > 1
        })
        .cloned()
        .collect()
}

/// A list of names separated by commas: the chosen columns (`cols=loss,lr`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names(pub Vec<String>);

impl FromStr for Names {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut out: Vec<String> = Vec::new();
        for n in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !out.iter().any(|o| o == n) {
                out.push(n.to_string());
            }
        }
        Ok(Names(out))
    }
}

impl Names {
    /// Refuses a name no run has as a metric or hyperparameter.
    pub fn check(
        &self,
        metric_names: &BTreeSet<String>,
        hyper_names: &BTreeSet<String>,
    ) -> Result<(), String> {
        match self
            .0
            .iter()
            .find(|n| !metric_names.contains(*n) && !hyper_names.contains(*n))
        {
            Some(n) => Err(format!("no run has a metric or hyperparameter `{n}`")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::{Record, RunKind};

    fn run(id: &str, lr: &str, loss: f64) -> Arc<Summary> {
        let mut r = Record::new("x", RunKind::Train, 0);
        r.id = id.into();
        let mut s = crate::ui::index::tests::summary(r);
        s.hyper.insert("lr".into(), lr.into());
        s.hyper.insert("epochs".into(), "3".into());
        s.metrics.insert("loss".into(), loss);
        s.metrics.insert("acc".into(), 0.5);
        Arc::new(s)
    }

    #[test]
    fn cells_are_the_final_value_or_a_point_of_the_series() {
        let r = run("a", "0.1", 0.3);
        let s = Series {
            steps: vec![1, 2, 3, 4],
            epochs: vec![0; 4],
            values: vec![0.9, 0.2, f64::NAN, 0.4],
            times: vec![0.0; 4],
        };
        let at = |agg, name: &str| cell(&r, name, agg, Some(&s)).map(|c| (c.value, c.step));
        assert_eq!(at(Agg::Final, "loss"), Some((0.3, None)));
        assert_eq!(at(Agg::Last, "loss"), Some((0.4, Some(4))));
        assert_eq!(at(Agg::Min, "loss"), Some((0.2, Some(2))));
        assert_eq!(at(Agg::Max, "loss"), Some((0.9, Some(1))));
        assert_eq!(
            at(Agg::Best, "loss"),
            Some((0.2, Some(2))),
            "a loss: lowest"
        );
        assert_eq!(
            at(Agg::Best, "val/accuracy"),
            Some((0.9, Some(1))),
            "else highest"
        );
        assert!(lower_is_better("val/loss") && !lower_is_better("test/accuracy"));
        assert!(lower_is_better("val_ppl") && lower_is_better("trainloss"));
        assert!(!lower_is_better("sentiment_acc") && !lower_is_better("uptime_frac"));
        assert_eq!("best".parse::<Agg>(), Ok(Agg::Best));
        assert!("mean".parse::<Agg>().unwrap_err().contains("final, last"));
    }

    #[test]
    fn columns_chosen_or_found_and_only_those_that_differ() {
        let rows = vec![run("a", "0.1", 0.3), run("b", "0.2", 0.3)];
        let metrics: BTreeSet<String> = ["loss".into(), "acc".into()].into();
        let hyper: BTreeSet<String> = ["lr".into(), "epochs".into()].into();
        let auto = choose(&rows, &[], false, &metrics, &hyper);
        assert_eq!(auto.metrics, ["acc", "loss"]);
        assert_eq!(auto.hyper, ["lr"]);
        let chosen = vec!["epochs".to_string(), "loss".into(), "lr".into()];
        let c = choose(&rows, &chosen, false, &metrics, &hyper);
        assert_eq!(
            (c.metrics, c.hyper),
            (
                vec!["loss".to_string()],
                vec!["epochs".to_string(), "lr".into()]
            )
        );
        let d = choose(&rows, &chosen, true, &metrics, &hyper);
        assert_eq!(d.hyper, ["lr"]);
        let cells: std::collections::HashMap<(String, String), Cell> = rows
            .iter()
            .map(|r| {
                let c = cell(r, "loss", Agg::Final, None).unwrap();
                ((r.id.clone(), "loss".to_string()), c)
            })
            .collect();
        assert!(
            differing_metrics(&rows, &d.metrics, &cells).is_empty(),
            "the same loss"
        );
        // A series that is no final metric can still be chosen: a metric column.
        let series = choose(&rows, &["test/acc".to_string()], false, &metrics, &hyper);
        assert_eq!(series.metrics, ["test/acc"]);
        assert!(Names(vec!["lrr".into()])
            .check(&metrics, &hyper)
            .unwrap_err()
            .contains("`lrr`"));
    }
}
