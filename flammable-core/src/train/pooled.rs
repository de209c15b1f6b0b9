//! Metrics pooled over the whole test split: each batch adds its counts or sums to a running
//! total on the device, and the metric is computed once from the totals (an RMSE over the
//! split, not a mean of per-batch RMSEs; an F1 from the whole confusion matrix).
//!
//! Use one from a `#[metric]` function that returns it, or name it in the attribute:
//! `#[metric(f1_macro)]` on a function that returns the scores to judge (usually the model's
//! output) computes the built-in metric from them and the targets.

use crate::error::{Error, Result};
use candle_core::{DType, Tensor, D};

/// How a pooled metric turns its totals into a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// `totals[0] / totals[1]` (hits over examples).
    Ratio,
    /// Precision, recall or F1 from a `classes × classes` confusion matrix (rows: the true
    /// class) followed by the number of examples, averaged over classes (macro) or over
    /// examples (micro).
    Score(Score, Average),
    /// The whole confusion matrix (and the number of examples, as for `Score`): shown as a
    /// table, stored as a file of the run.
    Matrix,
    /// Mean squared error: `[sum of squared errors, count]`.
    Mse,
    /// Its square root.
    Rmse,
    /// Mean absolute error: `[sum of absolute errors, count]`.
    Mae,
    /// The coefficient of determination: `[sse, Σy, Σy², count]`.
    R2,
}

/// Which score of a confusion matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Score {
    /// Of the predictions of a class, the share that is right.
    Precision,
    /// Of the examples of a class, the share predicted.
    Recall,
    /// Their harmonic mean.
    F1,
}

/// How per-class scores become one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Average {
    /// The mean over classes (each class counts the same).
    Macro,
    /// From the counts of all classes together (each example counts the same).
    Micro,
}

/// A metric's totals of one batch (a 1-D `f32` tensor, still on the device) and how to
/// finish them.
#[derive(Clone, Debug)]
pub struct Pooled {
    /// Counts or sums of this batch.
    pub totals: Tensor,
    /// How the totals of all batches become the value.
    pub finish: Finish,
}

impl Finish {
    /// Whether larger values are better (everything but the errors).
    pub fn larger_is_better(self) -> bool {
        !matches!(self, Finish::Mse | Finish::Rmse | Finish::Mae)
    }

    /// Refuses totals that the value would misrepresent: a confusion matrix that counted
    /// fewer examples than there were had labels outside its classes.
    pub fn check(self, t: &[f64]) -> Result<()> {
        if !matches!(self, Finish::Score(..) | Finish::Matrix) {
            return Ok(());
        }
        let c = classes_of(t.len());
        let counted: f64 = t.iter().take(c * c).sum();
        let examples = t.get(c * c).copied().unwrap_or(counted);
        if counted < examples {
            return Err(Error::msg(format!(
                "{} label(s) outside the classes 0..{c} of the scores",
                examples - counted
            )));
        }
        Ok(())
    }

    /// The value of the totals over every batch.
    pub fn value(self, t: &[f64]) -> f64 {
        let at = |i: usize| t.get(i).copied().unwrap_or(0.0);
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        match self {
            Finish::Ratio => ratio(at(0), at(1)),
            Finish::Mse => ratio(at(0), at(1)),
            Finish::Rmse => ratio(at(0), at(1)).sqrt(),
            Finish::Mae => ratio(at(0), at(1)),
            Finish::R2 => {
                let (sse, sy, syy, n) = (at(0), at(1), at(2), at(3));
                let sst = syy - sy * sy / n.max(1.0);
                if sst > 0.0 {
                    1.0 - sse / sst
                } else {
                    0.0
                }
            }
            Finish::Matrix => {
                // As one number: the accuracy (the diagonal's share).
                let c = classes_of(t.len());
                ratio(
                    (0..c).map(|i| at(i * c + i)).sum(),
                    t.iter().take(c * c).sum(),
                )
            }
            Finish::Score(score, average) => {
                let c = classes_of(t.len());
                let m = |truth: usize, pred: usize| at(truth * c + pred);
                let tp: Vec<f64> = (0..c).map(|k| m(k, k)).collect();
                let predicted: Vec<f64> = (0..c).map(|k| (0..c).map(|i| m(i, k)).sum()).collect();
                let actual: Vec<f64> = (0..c).map(|k| (0..c).map(|j| m(k, j)).sum()).collect();
                let f = |tp: f64, predicted: f64, actual: f64| {
                    let (p, r) = (ratio(tp, predicted), ratio(tp, actual));
                    match score {
                        Score::Precision => p,
                        Score::Recall => r,
                        Score::F1 => ratio(2.0 * p * r, p + r),
                    }
                };
                match average {
                    Average::Macro => {
                        // Classes absent from both truth and predictions do not count.
                        let present: Vec<usize> =
                            (0..c).filter(|&k| actual[k] + predicted[k] > 0.0).collect();
                        ratio(
                            present
                                .iter()
                                .map(|&k| f(tp[k], predicted[k], actual[k]))
                                .sum(),
                            present.len() as f64,
                        )
                    }
                    Average::Micro => {
                        f(tp.iter().sum(), predicted.iter().sum(), actual.iter().sum())
                    }
                }
            }
        }
    }
}

/// The side of the square matrix in totals of `len` values (its cells, then the count).
pub(crate) fn classes_of(len: usize) -> usize {
    (len.saturating_sub(1) as f64).sqrt().round() as usize
}

/// The predicted classes of `logits` (examples × classes) and the labels, as u32 vectors.
fn predicted(logits: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor, usize)> {
    let classes = match logits.dims() {
        [_, c] => *c,
        dims => {
            return Err(Error::msg(format!(
                "a classification metric takes scores of shape (examples, classes); these have shape {dims:?}"
            )))
        }
    };
    if labels.dtype().is_float() {
        // Numbers to predict, not classes: truncating them to classes would score nonsense.
        return Err(Error::msg(format!(
            "a classification metric takes class labels of an integer dtype (u8, u32, i64); these are {:?} (for values to predict, use mse, rmse, mae or r2)",
            labels.dtype()
        )));
    }
    let pred = logits.argmax(D::Minus1)?.to_dtype(DType::U32)?;
    let labels = labels.flatten_all()?.to_dtype(DType::U32)?;
    if labels.dim(0)? != pred.dim(0)? {
        return Err(Error::msg(format!(
            "{} labels for {} examples",
            labels.dim(0)?,
            pred.dim(0)?
        )));
    }
    Ok((pred, labels, classes))
}

/// The fraction of examples whose highest score is their label.
pub fn accuracy(logits: &Tensor, labels: &Tensor) -> Result<Pooled> {
    let (pred, labels, _) = predicted(logits, labels)?;
    let hits = pred.eq(&labels)?.to_dtype(DType::F32)?.sum_all()?;
    count_and(hits, labels.dim(0)?, Finish::Ratio)
}

/// The fraction of examples whose label is among their `k` highest scores.
pub fn top_k_accuracy(logits: &Tensor, labels: &Tensor, k: usize) -> Result<Pooled> {
    let (_, labels, classes) = predicted(logits, labels)?;
    // The label is in the top k when fewer than k classes score higher than it.
    let own = logits
        .gather(&labels.unsqueeze(1)?, 1)?
        .to_dtype(DType::F32)?;
    let higher = logits
        .to_dtype(DType::F32)?
        .broadcast_gt(&own)?
        .to_dtype(DType::F32)?
        .sum(1)?;
    let hits = higher
        .lt(k.min(classes) as f64)?
        .to_dtype(DType::F32)?
        .sum_all()?;
    count_and(hits, labels.dim(0)?, Finish::Ratio)
}

/// The confusion matrix's counts of this batch (rows: the true class, columns: the
/// predicted one), flattened.
fn confusion_counts(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (pred, labels, classes) = predicted(logits, labels)?;
    let cells = (classes * classes) as u32;
    let index = ((labels.to_dtype(DType::F32)? * classes as f64)? + pred.to_dtype(DType::F32)?)?;
    let all = Tensor::arange(0u32, cells, logits.device())?.to_dtype(DType::F32)?;
    let counts = index
        .unsqueeze(1)?
        .broadcast_eq(&all.unsqueeze(0)?)?
        .to_dtype(DType::F32)?
        .sum(0)?;
    // The number of examples last: a label outside the classes falls in no cell, and the
    // difference tells (`Finish::check`).
    let examples = Tensor::new(&[labels.dim(0)? as f32], logits.device())?;
    Ok(Tensor::cat(&[&counts, &examples], 0)?)
}

/// Precision, recall or F1 over the whole split, macro- or micro-averaged.
pub fn score(logits: &Tensor, labels: &Tensor, score: Score, average: Average) -> Result<Pooled> {
    Ok(Pooled {
        totals: confusion_counts(logits, labels)?,
        finish: Finish::Score(score, average),
    })
}

/// F1 averaged over classes.
pub fn f1_macro(logits: &Tensor, labels: &Tensor) -> Result<Pooled> {
    score(logits, labels, Score::F1, Average::Macro)
}

/// The confusion matrix over the whole split: the test prints it as a table and writes it to
/// the run's `files/<name>.csv`; its value in the results is the accuracy.
pub fn confusion(logits: &Tensor, labels: &Tensor) -> Result<Pooled> {
    Ok(Pooled {
        totals: confusion_counts(logits, labels)?,
        finish: Finish::Matrix,
    })
}

/// `[sum of f(prediction − target), count]` over the batch.
fn error_sum(pred: &Tensor, target: &Tensor, absolute: bool, finish: Finish) -> Result<Pooled> {
    let pred = pred.to_dtype(DType::F32)?.flatten_all()?;
    let target = target.to_dtype(DType::F32)?.flatten_all()?;
    if pred.dim(0)? != target.dim(0)? {
        return Err(Error::msg(format!(
            "{} predictions for {} targets",
            pred.dim(0)?,
            target.dim(0)?
        )));
    }
    let diff = (pred - &target)?;
    let sum = if absolute {
        diff.abs()?.sum_all()?
    } else {
        diff.sqr()?.sum_all()?
    };
    count_and(sum, target.dim(0)?, finish)
}

/// Mean squared error over the whole split.
pub fn mse(pred: &Tensor, target: &Tensor) -> Result<Pooled> {
    error_sum(pred, target, false, Finish::Mse)
}

/// Root mean squared error over the whole split (not a mean of per-batch RMSEs).
pub fn rmse(pred: &Tensor, target: &Tensor) -> Result<Pooled> {
    error_sum(pred, target, false, Finish::Rmse)
}

/// Mean absolute error over the whole split.
pub fn mae(pred: &Tensor, target: &Tensor) -> Result<Pooled> {
    error_sum(pred, target, true, Finish::Mae)
}

/// R² over the whole split: 1 − SSE / SST.
pub fn r2(pred: &Tensor, target: &Tensor) -> Result<Pooled> {
    let p = pred.to_dtype(DType::F32)?.flatten_all()?;
    let y = target.to_dtype(DType::F32)?.flatten_all()?;
    let sse = (p - &y)?.sqr()?.sum_all()?;
    let n = Tensor::new(y.dim(0)? as f32, y.device())?;
    let totals = Tensor::stack(&[sse, y.sum_all()?, y.sqr()?.sum_all()?, n], 0)?;
    Ok(Pooled {
        totals,
        finish: Finish::R2,
    })
}

/// `[value, count]` as totals.
fn count_and(value: Tensor, count: usize, finish: Finish) -> Result<Pooled> {
    let n = Tensor::new(count as f32, value.device())?;
    Ok(Pooled {
        totals: Tensor::stack(&[value.to_dtype(DType::F32)?, n], 0)?,
        finish,
    })
}

/// The totals of every pooled metric of a test, read back in one transfer: (name, totals,
/// finish) each.
pub fn read_totals(pooled: &[(String, Pooled)]) -> Result<Vec<(String, Vec<f64>, Finish)>> {
    if pooled.is_empty() {
        return Ok(Vec::new());
    }
    let flat: Vec<Tensor> = pooled
        .iter()
        .map(|(_, p)| p.totals.flatten_all()?.to_dtype(DType::F64))
        .collect::<candle_core::Result<_>>()?;
    let lengths: Vec<usize> = flat.iter().map(Tensor::elem_count).collect();
    let all = Tensor::cat(&flat, 0)?.to_vec1::<f64>()?;
    let mut start = 0;
    Ok(pooled
        .iter()
        .zip(lengths)
        .map(|((name, p), n)| {
            let totals = all[start..start + n].to_vec();
            start += n;
            (name.clone(), totals, p.finish)
        })
        .collect())
}

/// The built-in metrics `#[metric(NAME)]` names, for the macro's check (`precision`,
/// `recall` and `f1` are the macro averages).
pub const BUILT_IN: [&str; 18] = [
    "accuracy",
    "top2_accuracy",
    "top3_accuracy",
    "top5_accuracy",
    "precision_macro",
    "precision_micro",
    "recall_macro",
    "recall_micro",
    "f1_macro",
    "f1_micro",
    "precision",
    "recall",
    "f1",
    "confusion",
    "mse",
    "rmse",
    "mae",
    "r2",
];

/// Built-in metric `name` (one of [`BUILT_IN`]) of `scores` against `target`.
pub fn built_in(name: &str, scores: &Tensor, target: &Tensor) -> Result<Pooled> {
    let s = |score, average| self::score(scores, target, score, average);
    match name {
        "accuracy" => accuracy(scores, target),
        "top2_accuracy" => top_k_accuracy(scores, target, 2),
        "top3_accuracy" => top_k_accuracy(scores, target, 3),
        "top5_accuracy" => top_k_accuracy(scores, target, 5),
        "precision_macro" | "precision" => s(Score::Precision, Average::Macro),
        "precision_micro" => s(Score::Precision, Average::Micro),
        "recall_macro" | "recall" => s(Score::Recall, Average::Macro),
        "recall_micro" => s(Score::Recall, Average::Micro),
        "f1_macro" | "f1" => s(Score::F1, Average::Macro),
        "f1_micro" => s(Score::F1, Average::Micro),
        "confusion" => confusion(scores, target),
        "mse" => mse(scores, target),
        "rmse" => rmse(scores, target),
        "mae" => mae(scores, target),
        "r2" => r2(scores, target),
        other => Err(Error::msg(format!(
            "no built-in metric `{other}`; they are {}",
            BUILT_IN.join(", ")
        ))),
    }
}

/// Whether larger values of built-in metric `name` are better.
pub fn larger_is_better(name: &str) -> bool {
    !matches!(name, "mse" | "rmse" | "mae")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t2(v: &[[f32; 3]]) -> Tensor {
        let flat: Vec<f32> = v.iter().flatten().copied().collect();
        Tensor::from_vec(flat, (v.len(), 3), &Device::Cpu).unwrap()
    }

    fn totals(p: &Pooled) -> Vec<f64> {
        p.totals
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
    }

    #[test]
    fn classification_scores_from_the_confusion_matrix() {
        // Predictions 0, 1, 1, 2, 0 for labels 0, 1, 2, 2, 1.
        let logits = t2(&[
            [3., 1., 0.],
            [0., 2., 1.],
            [0., 5., 1.],
            [0., 1., 4.],
            [2., 1., 0.],
        ]);
        let labels = Tensor::new(&[0u32, 1, 2, 2, 1], &Device::Cpu).unwrap();
        let acc = accuracy(&logits, &labels).unwrap();
        assert_eq!(acc.finish.value(&totals(&acc)), 3.0 / 5.0);
        let m = confusion(&logits, &labels).unwrap();
        assert_eq!(totals(&m), [1., 0., 0., 1., 1., 0., 0., 1., 1., 5.]);
        assert_eq!(m.finish.value(&totals(&m)), 3.0 / 5.0);
        assert!(m.finish.check(&totals(&m)).is_ok());
        // Per class: precision 1/2, 1/2, 1; recall 1, 1/2, 1/2; F1 2/3, 1/2, 2/3.
        let f = |score, avg| {
            let p = self::score(&logits, &labels, score, avg).unwrap();
            p.finish.value(&totals(&p))
        };
        assert!((f(Score::F1, Average::Macro) - (2. / 3. + 0.5 + 2. / 3.) / 3.).abs() < 1e-12);
        assert!((f(Score::Precision, Average::Macro) - 2. / 3.).abs() < 1e-12);
        assert!((f(Score::F1, Average::Micro) - 0.6).abs() < 1e-12);
        let top2 = top_k_accuracy(&logits, &labels, 2).unwrap();
        assert_eq!(top2.finish.value(&totals(&top2)), 1.0);
        // A label beyond the scores' classes falls in no cell: refused, not left out.
        let beyond = Tensor::new(&[0u32, 1, 7, 2, 1], &Device::Cpu).unwrap();
        for p in [
            confusion(&logits, &beyond).unwrap(),
            f1_macro(&logits, &beyond).unwrap(),
        ] {
            let refused = p.finish.check(&totals(&p)).unwrap_err().to_string();
            assert_eq!(refused, "1 label(s) outside the classes 0..3 of the scores");
        }
        // Values to predict are not classes.
        let values = labels.to_dtype(DType::F32).unwrap();
        let refused = f1_macro(&logits, &values).unwrap_err().to_string();
        assert!(
            refused.contains("class labels of an integer dtype"),
            "{refused}"
        );
    }

    #[test]
    fn the_macro_knows_every_built_in_metric() {
        // The macro crate cannot depend on this one: it keeps its own list, checked here.
        let macro_source = include_str!("../../../flammable-macros/src/parse.rs");
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
            let target = if ["mse", "rmse", "mae", "r2"].contains(&name) {
                logits.clone()
            } else {
                labels
            };
            assert!(built_in(name, &logits, &target).is_ok(), "{name}");
        }
    }

    #[test]
    fn regression_errors_pool_before_the_root() {
        let pred = Tensor::new(&[1f32, 2., 3., 4.], &Device::Cpu).unwrap();
        let y = Tensor::new(&[1f32, 2., 3., 8.], &Device::Cpu).unwrap();
        let r = rmse(&pred, &y).unwrap();
        assert_eq!(r.finish.value(&totals(&r)), 2.0);
        let m = mae(&pred, &y).unwrap();
        assert_eq!(m.finish.value(&totals(&m)), 1.0);
        let r2v = r2(&pred, &y).unwrap();
        // SST of [1, 2, 3, 8] is 29.0; SSE 16.
        assert!((r2v.finish.value(&totals(&r2v)) - (1.0 - 16.0 / 29.0)).abs() < 1e-6);
        assert!(!Finish::Rmse.larger_is_better() && Finish::R2.larger_is_better());
    }
}
