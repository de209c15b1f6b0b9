//! Regression metrics pooled over the split: MSE, RMSE, MAE from summed errors, and R² from
//! the targets' mean and spread, merged batch by batch without cancellation.

use super::{sum_dtype, Finish, Pooled};
use crate::error::{Error, Result};
use candle_core::{Device, Tensor};

/// Predictions and targets as two 1-D tensors of the sum dtype, as many of each.
fn flat_pair(pred: &Tensor, target: &Tensor) -> Result<(Tensor, Tensor)> {
    let dtype = sum_dtype(pred.device());
    let pred = pred.to_dtype(dtype)?.flatten_all()?;
    let target = target.to_dtype(dtype)?.flatten_all()?;
    if pred.dim(0)? != target.dim(0)? {
        return Err(Error::msg(format!(
            "{} predictions for {} targets",
            pred.dim(0)?,
            target.dim(0)?
        )));
    }
    Ok((pred, target))
}

/// `n` as a scalar of the sum dtype on `device`.
fn count(n: usize, device: &Device) -> Result<Tensor> {
    Ok(Tensor::new(n as f64, device)?.to_dtype(sum_dtype(device))?)
}

/// `[sum of f(prediction − target), count]` over the batch.
fn error_sum(pred: &Tensor, target: &Tensor, absolute: bool, finish: Finish) -> Result<Pooled> {
    let (pred, target) = flat_pair(pred, target)?;
    let diff = (pred - &target)?;
    let sum = if absolute {
        diff.abs()?.sum_all()?
    } else {
        diff.sqr()?.sum_all()?
    };
    Ok(Pooled {
        totals: Tensor::stack(&[sum, count(target.dim(0)?, target.device())?], 0)?,
        finish,
    })
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

/// R² over the whole split: 1 − SSE / SST, SST from the targets' deviations from their own
/// mean (see [`Finish::R2`]). Constant targets give 1 when predicted exactly, else 0 (as
/// scikit-learn's `r2_score`).
pub fn r2(pred: &Tensor, target: &Tensor) -> Result<Pooled> {
    let (p, y) = flat_pair(pred, target)?;
    let n = y.dim(0)?;
    let mean = (y.sum_all()? / n.max(1) as f64)?;
    let spread = y.broadcast_sub(&mean)?.sqr()?.sum_all()?;
    let sse = (p - &y)?.sqr()?.sum_all()?;
    Ok(Pooled {
        totals: Tensor::stack(&[count(n, y.device())?, mean, spread, sse], 0)?,
        finish: Finish::R2,
    })
}

/// R²'s totals `a` and a later batch's `b` as one: counts and SSEs add; the spread gains
/// the means' difference squared, weighted by the two counts (Chan, Golub and LeVeque).
pub(super) fn merge_r2(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let parts = |t: &Tensor| -> Result<[Tensor; 4]> {
        if t.dims() != [4] {
            return Err(Error::msg(format!(
                "R² totals are [count, mean, spread, sse]; these have shape {:?}",
                t.dims()
            )));
        }
        Ok([t.get(0)?, t.get(1)?, t.get(2)?, t.get(3)?])
    };
    let [na, ma, sa, ea] = parts(a)?;
    let [nb, mb, sb, eb] = parts(b)?;
    let n = (&na + &nb)?;
    // b's share of the examples (0 when both are empty).
    let share = (&nb / n.maximum(1.0)?)?;
    let d = (&mb - &ma)?;
    let mean = (&ma + (&d * &share)?)?;
    let spread = ((&sa + &sb)? + ((d.sqr()? * &na)? * &share)?)?;
    Ok(Tensor::stack(&[n, mean, spread, (&ea + &eb)?], 0)?)
}

/// R² from the targets' spread (SST) and the SSE.
pub(super) fn r2_value(spread: f64, sse: f64) -> f64 {
    if spread.is_nan() || sse.is_nan() {
        f64::NAN
    } else if spread > 0.0 {
        1.0 - sse / spread
    } else if sse == 0.0 {
        1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{pooled_value, totals};
    use super::*;

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    /// R² of `p` against `y` pooled over batches cut at `cuts`.
    fn r2_in_batches(p: &[f32], y: &[f32], cuts: &[usize]) -> f64 {
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(y.len());
        let batches: Vec<Pooled> = bounds
            .windows(2)
            .map(|w| r2(&t(&p[w[0]..w[1]]), &t(&y[w[0]..w[1]])).unwrap())
            .collect();
        pooled_value(&batches)
    }

    /// R² computed here in f64, in two passes over all the values at once.
    fn reference_r2(p: &[f32], y: &[f32]) -> f64 {
        let mean = y.iter().map(|v| f64::from(*v)).sum::<f64>() / y.len() as f64;
        let sst: f64 = y.iter().map(|v| (f64::from(*v) - mean).powi(2)).sum();
        let sse: f64 = p
            .iter()
            .zip(y)
            .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
            .sum();
        1.0 - sse / sst
    }

    #[test]
    fn regression_errors_pool_before_the_root() {
        let pred = t(&[1., 2., 3., 4.]);
        let y = t(&[1., 2., 3., 8.]);
        let r = rmse(&pred, &y).unwrap();
        assert_eq!(r.finish.value(&totals(&r)), 2.0);
        let m = mae(&pred, &y).unwrap();
        assert_eq!(m.finish.value(&totals(&m)), 1.0);
        // SST of [1, 2, 3, 8] is 29; SSE 16.
        let r2v = r2(&pred, &y).unwrap();
        assert!((r2v.finish.value(&totals(&r2v)) - (1.0 - 16.0 / 29.0)).abs() < 1e-12);
        let pooled = r2_in_batches(&[1., 2., 3., 4.], &[1., 2., 3., 8.], &[1, 3]);
        assert!((pooled - (1.0 - 16.0 / 29.0)).abs() < 1e-12);
    }

    #[test]
    fn r2_of_targets_far_from_zero_is_exact() {
        // Targets 1000 ± 1, predictions halfway to 1000: SSE = n/4, SST = n, R² = 0.75
        // (Σy² − (Σy)²/n in f32 made it negative).
        let y: Vec<f32> = (0..10_000)
            .map(|i| if i % 2 == 0 { 1001.0 } else { 999.0 })
            .collect();
        let p: Vec<f32> = y.iter().map(|v| 1000.0 + (v - 1000.0) / 2.0).collect();
        let one = r2(&t(&p), &t(&y)).unwrap();
        assert_eq!(one.finish.value(&totals(&one)), 0.75);
        assert!((r2_in_batches(&p, &y, &[3, 512, 4097]) - 0.75).abs() < 1e-12);
        // Uneven values far from 0, against the two-pass reference.
        let y: Vec<f32> = (0..3000).map(|i| 1e4 + (i as f32 * 0.37).sin()).collect();
        let p: Vec<f32> = (0..3000)
            .map(|i| y[i] + 0.3 * (i as f32 * 1.7).cos())
            .collect();
        let truth = reference_r2(&p, &y);
        let pooled = r2_in_batches(&p, &y, &[1, 700, 701, 2048]);
        assert!((pooled - truth).abs() < 1e-9, "{pooled} vs {truth}");
    }

    #[test]
    fn r2_of_constant_targets_is_one_when_predicted_exactly() {
        let y = [5f32; 6];
        assert_eq!(r2_in_batches(&y, &y, &[2]), 1.0);
        assert_eq!(r2_in_batches(&[5., 5., 5., 5., 5., 6.], &y, &[2]), 0.0);
        assert!(r2_in_batches(&[5., 5., f32::NAN], &[1., 2., 3.], &[]).is_nan());
    }
}
