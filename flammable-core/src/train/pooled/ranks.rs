//! A test's results over the ranks of a training of several processes: each rank tests its
//! share of the batches (see [`crate::data::Batches::shard_batches`]); the per-batch values
//! and the pooled totals of every rank are gathered and combined, so that every rank holds
//! the metrics of the whole split (an F1 or an RMSE of all its examples, not a mean of the
//! ranks' values).

use super::{Finish, Pooled};
use crate::collective::Collective;
use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// What one rank's test produced, before the metrics are computed.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct TestPart {
    /// The per-batch metrics' names.
    pub(crate) names: Vec<String>,
    /// Their values, batch by batch (`names.len()` a batch).
    pub(crate) values: Vec<f64>,
    /// The examples of each batch.
    pub(crate) sizes: Vec<usize>,
    /// The pooled metrics' totals: (name, totals, finish) each.
    pub(crate) totals: Vec<(String, Vec<f64>, Finish)>,
}

/// Every rank's part combined, on every rank: the batches of all ranks in rank order, the
/// totals merged as batches merge (summed; R² by means and spreads).
pub(crate) fn over_ranks(world: &dyn Collective, mine: TestPart) -> Result<TestPart> {
    let bytes = serde_json::to_vec(&mine)
        .map_err(|e| Error::msg(format!("cannot encode the test's results: {e}")))?;
    let mut all = TestPart::default();
    for (rank, bytes) in world.all_gather(&bytes)?.into_iter().enumerate() {
        let part: TestPart = serde_json::from_slice(&bytes).map_err(|e| {
            Error::msg(format!(
                "the test's results of rank {rank} cannot be read: {e}"
            ))
        })?;
        if part.sizes.is_empty() {
            // A rank with no batch of the split.
            continue;
        }
        if all.sizes.is_empty() {
            all.names = part.names;
            all.totals = part.totals;
        } else {
            let same = part.names == all.names
                && part.totals.len() == all.totals.len()
                && part.totals.iter().zip(&all.totals).all(|(a, b)| a.0 == b.0);
            if !same {
                return Err(Error::msg(format!(
                    "rank {rank} computed other metrics than rank 0 (every rank must run the same code)"
                )));
            }
            for ((name, sum, finish), (_, next, _)) in all.totals.iter_mut().zip(part.totals) {
                *sum = merged(sum, &next, *finish)
                    .map_err(|e| Error::msg(format!("metric `{name}`: {e}")))?;
            }
        }
        all.values.extend(part.values);
        all.sizes.extend(part.sizes);
    }
    Ok(all)
}

/// Two ranks' totals of one pooled metric, merged as two batches' are.
fn merged(a: &[f64], b: &[f64], finish: Finish) -> Result<Vec<f64>> {
    let pooled = |t: &[f64]| -> Result<Pooled> {
        Ok(Pooled {
            totals: Tensor::new(t, &Device::Cpu)?,
            finish,
        })
    };
    let mut sum = pooled(a)?;
    sum.merge(&pooled(b)?)?;
    Ok(sum.totals.to_vec1::<f64>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_merge_as_batches_do() {
        assert_eq!(
            merged(&[3.0, 4.0], &[1.0, 6.0], Finish::Ratio).unwrap(),
            vec![4.0, 10.0]
        );
        // R²: (count, mean, M2, sse) of {1, 2} and {3}: count 3, mean 2, M2 2.
        let r2 = merged(&[2.0, 1.5, 0.5, 0.1], &[1.0, 3.0, 0.0, 0.2], Finish::R2).unwrap();
        assert_eq!(r2[0], 3.0);
        assert!(
            (r2[1] - 2.0).abs() < 1e-12 && (r2[2] - 2.0).abs() < 1e-12,
            "{r2:?}"
        );
        assert!((r2[3] - 0.3).abs() < 1e-12);
    }
}
