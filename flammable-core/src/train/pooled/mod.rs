//! Metrics pooled over the whole test split: each batch adds its counts or sums to a running
//! total on the device, and the metric is computed once from the totals (an RMSE over the
//! split, not a mean of per-batch RMSEs; an F1 from the whole confusion matrix).
//!
//! Use one from a `#[metric]` function that returns it, or name it in the attribute:
//! `#[metric(f1_macro)]` on a function that returns the scores to judge (usually the model's
//! output) computes the built-in metric from them and the targets.
//!
//! Totals are kept in f64 (sums) and i64 (counts) on devices that have them — the CPU and
//! CUDA — so that neither large targets nor many examples lose precision; Metal has no f64,
//! and there both are f32 (exact counts up to 2²⁴ examples per cell, sums to 7 digits).

mod built_in;
mod classify;
pub(crate) mod ranks;
mod regress;

pub use built_in::{built_in, larger_is_better, BUILT_IN};
pub use classify::{accuracy, confusion, f1_macro, score, top_k_accuracy};
pub use regress::{mae, mse, r2, rmse};

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};

/// How a pooled metric turns its totals into a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Finish {
    /// `totals[0] / totals[1]` (hits over examples); an optional `totals[2]` counts labels
    /// outside the scores' classes, which stop the test (see [`Finish::check`]).
    Ratio,
    /// Precision, recall or F1 from a `classes × classes` confusion matrix (rows: the true
    /// class) followed by the number of labels outside its classes, averaged over classes
    /// (macro) or over examples (micro).
    Score(Score, Average),
    /// The whole confusion matrix (and the labels outside it, as for `Score`): shown as a
    /// table, stored as a file of the run.
    Matrix,
    /// Mean squared error: `[sum of squared errors, count]`.
    Mse,
    /// Its square root.
    Rmse,
    /// Mean absolute error: `[sum of absolute errors, count]`.
    Mae,
    /// The coefficient of determination: `[count, mean of the targets, sum of their squared
    /// deviations from it, sse]`; batches merge by their means and spreads (see
    /// [`Pooled::merge`]), never through Σy² − (Σy)²/n, which cancels catastrophically for
    /// targets far from 0.
    R2,
}

/// Which score of a confusion matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Score {
    /// Of the predictions of a class, the share that is right.
    Precision,
    /// Of the examples of a class, the share predicted.
    Recall,
    /// Their harmonic mean.
    F1,
}

/// How per-class scores become one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Average {
    /// The mean over classes (each class counts the same).
    Macro,
    /// From the counts of all classes together (each example counts the same).
    Micro,
}

/// A metric's totals of one batch (a 1-D tensor, still on the device: see the module's
/// notes for its dtype) and how to finish them.
#[derive(Clone, Debug)]
pub struct Pooled {
    /// Counts or sums of this batch.
    pub totals: Tensor,
    /// How the totals of all batches become the value.
    pub finish: Finish,
}

impl Pooled {
    /// Adds the totals of a later batch, on the device: element by element, except R²'s,
    /// whose means and spreads merge (Chan et al.'s pairwise update).
    pub fn merge(&mut self, batch: &Pooled) -> Result<()> {
        self.totals = match self.finish {
            Finish::R2 => regress::merge_r2(&self.totals, &batch.totals)?,
            _ => (&self.totals + &batch.totals)?,
        };
        Ok(())
    }
}

impl Finish {
    /// Whether larger values are better: everything but the errors (the one list of them).
    pub fn larger_is_better(self) -> bool {
        !matches!(self, Finish::Mse | Finish::Rmse | Finish::Mae)
    }

    /// Refuses totals that the value would misrepresent: labels outside the scores' classes,
    /// which a confusion matrix or a hit count has no place for.
    pub fn check(self, t: &[f64]) -> Result<()> {
        let (outside, classes) = match self {
            Finish::Score(..) | Finish::Matrix => {
                let c = classes_of(t.len());
                (t.get(c * c).copied().unwrap_or(0.0), format!(" 0..{c}"))
            }
            Finish::Ratio => (t.get(2).copied().unwrap_or(0.0), String::new()),
            _ => return Ok(()),
        };
        if outside > 0.0 {
            return Err(Error::msg(format!(
                "{outside} label(s) outside the classes{classes} of the scores"
            )));
        }
        Ok(())
    }

    /// The value of the totals over every batch.
    pub fn value(self, t: &[f64]) -> f64 {
        let at = |i: usize| t.get(i).copied().unwrap_or(0.0);
        match self {
            Finish::Ratio | Finish::Mse | Finish::Mae => ratio(at(0), at(1)),
            Finish::Rmse => ratio(at(0), at(1)).sqrt(),
            Finish::R2 => regress::r2_value(at(2), at(3)),
            Finish::Matrix => {
                // As one number: the accuracy (the diagonal's share).
                let c = classes_of(t.len());
                ratio(
                    (0..c).map(|i| at(i * c + i)).sum(),
                    t.iter().take(c * c).sum(),
                )
            }
            Finish::Score(score, average) => classify::score_value(t, score, average),
        }
    }
}

/// `a / b`, 0 when there is nothing to divide by.
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// The side of the square matrix in totals of `len` values (its cells, then the count of
/// labels outside them).
pub(crate) fn classes_of(len: usize) -> usize {
    (len.saturating_sub(1) as f64).sqrt().round() as usize
}

/// The dtype of pooled sums on `device`: f64, or f32 where the device has no f64 (Metal).
pub fn sum_dtype(device: &Device) -> DType {
    if device.is_metal() {
        DType::F32
    } else {
        DType::F64
    }
}

/// The dtype of pooled counts on `device`: i64, or f32 on Metal (with its sums).
pub fn count_dtype(device: &Device) -> DType {
    if device.is_metal() {
        DType::F32
    } else {
        DType::I64
    }
}

/// The totals of every pooled metric of a test, read back in one transfer: (name, totals,
/// finish) each.
pub fn read_totals(pooled: &[(String, Pooled)]) -> Result<Vec<(String, Vec<f64>, Finish)>> {
    let Some((_, first)) = pooled.first() else {
        return Ok(Vec::new());
    };
    // One dtype the device has for every total (counts included), then one transfer.
    let dtype = sum_dtype(first.totals.device());
    let flat: Vec<Tensor> = pooled
        .iter()
        .map(|(_, p)| p.totals.flatten_all()?.to_dtype(dtype))
        .collect::<candle_core::Result<_>>()?;
    let lengths: Vec<usize> = flat.iter().map(Tensor::elem_count).collect();
    let all = Tensor::cat(&flat, 0)?.to_device(&Device::Cpu)?;
    let all = all.to_dtype(DType::F64)?.to_vec1::<f64>()?;
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A pooled metric's totals on the host.
    pub(crate) fn totals(p: &Pooled) -> Vec<f64> {
        p.totals
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
    }

    /// The value of `batches` merged as the test loop merges them.
    pub(crate) fn pooled_value(batches: &[Pooled]) -> f64 {
        let mut sum = batches[0].clone();
        for b in &batches[1..] {
            sum.merge(b).unwrap();
        }
        sum.finish.value(&totals(&sum))
    }

    #[test]
    fn totals_are_read_back_in_order_whatever_their_dtype() {
        let d = Device::Cpu;
        let counts = Pooled {
            totals: Tensor::new(&[3i64, 4, 0], &d).unwrap(),
            finish: Finish::Ratio,
        };
        let sums = Pooled {
            totals: Tensor::new(&[2.5f64, 4.0], &d).unwrap(),
            finish: Finish::Mse,
        };
        let read = read_totals(&[("a".into(), counts), ("b".into(), sums)]).unwrap();
        assert_eq!(read[0].1, [3.0, 4.0, 0.0]);
        assert_eq!(read[1].1, [2.5, 4.0]);
        assert_eq!(Finish::Ratio.value(&read[0].1), 0.75);
        // Counts past f32's 2²⁴ stay exact.
        let big = Tensor::new(&[(1i64 << 24) + 1, 1 << 25], &d).unwrap();
        let p = Pooled {
            totals: big,
            finish: Finish::Ratio,
        };
        assert_eq!(
            read_totals(&[("c".into(), p)]).unwrap()[0].1[0],
            16_777_217.0
        );
        assert_eq!(sum_dtype(&d), DType::F64);
        assert_eq!(count_dtype(&d), DType::I64);
    }

    #[test]
    fn only_the_errors_are_smaller_is_better() {
        assert!(!Finish::Rmse.larger_is_better() && Finish::R2.larger_is_better());
        assert!(Finish::Score(Score::F1, Average::Macro).larger_is_better());
    }
}
