//! The built-in metrics `#[metric(NAME)]` names: one table of names and what each computes,
//! from which the list, the computation and the direction all come.

use super::classify::{accuracy, confusion, score, top_k_accuracy};
use super::regress::{mae, mse, r2, rmse};
use super::{Average, Finish, Pooled, Score};
use crate::error::{Error, Result};
use candle_core::Tensor;

/// What a built-in metric computes.
#[derive(Clone, Copy)]
enum Metric {
    Accuracy,
    TopK(usize),
    Score(Score, Average),
    Confusion,
    Error(Finish),
    R2,
}

impl Metric {
    /// How its totals finish (the direction comes from there).
    fn finish(self) -> Finish {
        match self {
            Metric::Accuracy | Metric::TopK(_) => Finish::Ratio,
            Metric::Score(s, a) => Finish::Score(s, a),
            Metric::Confusion => Finish::Matrix,
            Metric::Error(finish) => finish,
            Metric::R2 => Finish::R2,
        }
    }

    fn compute(self, scores: &Tensor, target: &Tensor) -> Result<Pooled> {
        match self {
            Metric::Accuracy => accuracy(scores, target),
            Metric::TopK(k) => top_k_accuracy(scores, target, k),
            Metric::Score(s, a) => score(scores, target, s, a),
            Metric::Confusion => confusion(scores, target),
            Metric::Error(Finish::Mae) => mae(scores, target),
            Metric::Error(Finish::Rmse) => rmse(scores, target),
            Metric::Error(_) => mse(scores, target),
            Metric::R2 => r2(scores, target),
        }
    }
}

use Average::{Macro, Micro};
use Score::{Precision, Recall, F1};

const TABLE: [(&str, Metric); 18] = [
    ("accuracy", Metric::Accuracy),
    ("top2_accuracy", Metric::TopK(2)),
    ("top3_accuracy", Metric::TopK(3)),
    ("top5_accuracy", Metric::TopK(5)),
    ("precision_macro", Metric::Score(Precision, Macro)),
    ("precision_micro", Metric::Score(Precision, Micro)),
    ("recall_macro", Metric::Score(Recall, Macro)),
    ("recall_micro", Metric::Score(Recall, Micro)),
    ("f1_macro", Metric::Score(F1, Macro)),
    ("f1_micro", Metric::Score(F1, Micro)),
    ("precision", Metric::Score(Precision, Macro)),
    ("recall", Metric::Score(Recall, Macro)),
    ("f1", Metric::Score(F1, Macro)),
    ("confusion", Metric::Confusion),
    ("mse", Metric::Error(Finish::Mse)),
    ("rmse", Metric::Error(Finish::Rmse)),
    ("mae", Metric::Error(Finish::Mae)),
    ("r2", Metric::R2),
];

/// The built-in metrics `#[metric(NAME)]` names, for the macro's check (`precision`,
/// `recall` and `f1` are the macro averages).
pub const BUILT_IN: [&str; TABLE.len()] = {
    let mut names = [""; TABLE.len()];
    let mut i = 0;
    while i < TABLE.len() {
        names[i] = TABLE[i].0;
        i += 1;
    }
    names
};

fn find(name: &str) -> Option<Metric> {
    TABLE.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
}

/// Built-in metric `name` (one of [`BUILT_IN`]) of `scores` against `target`.
pub fn built_in(name: &str, scores: &Tensor, target: &Tensor) -> Result<Pooled> {
    match find(name) {
        Some(metric) => metric.compute(scores, target),
        None => Err(Error::msg(format!(
            "no built-in metric `{name}`; they are {}",
            BUILT_IN.join(", ")
        ))),
    }
}

/// Whether larger values of built-in metric `name` are better (true for a name that is not
/// one of them).
pub fn larger_is_better(name: &str) -> bool {
    find(name).is_none_or(|m| m.finish().larger_is_better())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_macro_knows_every_built_in_metric() {
        // The macro crate cannot depend on this one: it keeps its own list, checked here.
        let macro_source = include_str!("../../../../flammable-macros/src/parse.rs");
        let list = macro_source
            .split("pub const BUILT_IN_METRICS")
            .nth(1)
            .and_then(|rest| rest.split("];").next())
            .unwrap_or("");
        let names: Vec<&str> = list.split('"').skip(1).step_by(2).collect();
        assert_eq!(names, BUILT_IN);
        for name in BUILT_IN {
            let logits = Tensor::new(&[[1f32, 0.], [0., 1.]], &Device::Cpu).unwrap();
            let labels = Tensor::new(&[0u32, 1], &Device::Cpu).unwrap();
            let metric = find(name).unwrap();
            let target = if metric.finish().larger_is_better() && !matches!(metric, Metric::R2) {
                labels
            } else {
                logits.clone()
            };
            let pooled = built_in(name, &logits, &target).unwrap();
            assert_eq!(pooled.finish, metric.finish(), "{name}");
        }
        assert!(built_in(
            "f2",
            &Tensor::new(1f32, &Device::Cpu).unwrap(),
            &Tensor::new(1f32, &Device::Cpu).unwrap()
        )
        .is_err());
    }

    #[test]
    fn the_errors_are_the_metrics_where_smaller_is_better() {
        let smaller: Vec<&str> = BUILT_IN
            .into_iter()
            .filter(|n| !larger_is_better(n))
            .collect();
        assert_eq!(smaller, ["mse", "rmse", "mae"]);
        assert!(larger_is_better("my_own_metric"));
    }
}
