//! A dataset split into parts by fractions — train, validation, test — drawn from the run
//! seed, so that the same seed gives the same parts; stratified when asked.

use super::TensorDataset;
use crate::error::{Error, Result};
use crate::model::rng::rng_for;
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;

impl TensorDataset {
    /// The examples in parts of `fractions` of the whole (which must add up to 1), in a
    /// random order drawn from `seed` (pass `env.seed()`: the run's seed, recorded): each
    /// part gets `round(n × cumulative fraction)` minus what the parts before it took.
    ///
    /// ```ignore
    /// let [train, validation, test] = <[_; 3]>::try_from(all.split(&[0.7, 0.15, 0.15], env.seed())?)?;
    /// ```
    pub fn split(&self, fractions: &[f64], seed: u64) -> Result<Vec<TensorDataset>> {
        check(fractions)?;
        let n = self.inputs().dim(0)?;
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.shuffle(&mut rng_for(seed, "split", 0));
        let parts = cut(&order, fractions);
        parts.iter().map(|p| self.pick(p)).collect()
    }

    /// Like [`TensorDataset::split`], keeping each class's share in every part: the targets
    /// must be class indices (`u32`, one per example), and each class is split by the
    /// fractions on its own.
    pub fn split_stratified(&self, fractions: &[f64], seed: u64) -> Result<Vec<TensorDataset>> {
        check(fractions)?;
        let labels = self
            .targets()
            .to_dtype(candle_core::DType::U32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<u32>())
            .map_err(|e| {
                Error::msg(format!(
                    "a stratified split needs one class index per example as targets: {e}"
                ))
            })?;
        if labels.len() != self.inputs().dim(0)? {
            return Err(Error::msg(
                "a stratified split needs one class index per example as targets",
            ));
        }
        let classes = labels.iter().copied().max().map_or(0, |m| m as usize + 1);
        let mut parts: Vec<Vec<u32>> = vec![Vec::new(); fractions.len()];
        for class in 0..classes {
            let mut members: Vec<u32> = (0..labels.len() as u32)
                .filter(|&i| labels[i as usize] as usize == class)
                .collect();
            members.shuffle(&mut rng_for(seed, "split-stratified", class as u64));
            for (part, chunk) in parts.iter_mut().zip(cut(&members, fractions)) {
                part.extend(chunk);
            }
        }
        parts.iter().map(|p| self.pick(p)).collect()
    }

    /// The examples at `indices`, in that order.
    fn pick(&self, indices: &[u32]) -> Result<TensorDataset> {
        let index = Tensor::from_vec(indices.to_vec(), indices.len(), &Device::Cpu)?
            .to_device(self.inputs().device())?;
        TensorDataset::new(
            self.inputs().index_select(&index, 0)?,
            self.targets().index_select(&index, 0)?,
        )
    }
}

fn check(fractions: &[f64]) -> Result<()> {
    let sum: f64 = fractions.iter().sum();
    if fractions.is_empty()
        || fractions.iter().any(|f| !f.is_finite() || *f <= 0.0)
        || (sum - 1.0).abs() > 1e-6
    {
        return Err(Error::msg(format!(
            "split fractions must be above 0 and add up to 1, e.g. [0.8, 0.2]; these are {fractions:?}"
        )));
    }
    Ok(())
}

/// `items` cut into consecutive parts of `fractions`.
fn cut(items: &[u32], fractions: &[f64]) -> Vec<Vec<u32>> {
    let n = items.len() as f64;
    let mut parts = Vec::with_capacity(fractions.len());
    let (mut cumulative, mut start) = (0.0, 0usize);
    for (i, f) in fractions.iter().enumerate() {
        cumulative += f;
        let end = if i + 1 == fractions.len() {
            items.len()
        } else {
            ((n * cumulative).round() as usize).min(items.len())
        };
        parts.push(items[start..end.max(start)].to_vec());
        start = end.max(start);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;

    fn data(n: usize) -> TensorDataset {
        let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let y: Vec<u32> = (0..n).map(|i| u32::from(i % 4 == 0)).collect();
        TensorDataset::new(
            Tensor::from_vec(x, (n, 1), &Device::Cpu).unwrap(),
            Tensor::from_vec(y, n, &Device::Cpu).unwrap(),
        )
        .unwrap()
    }

    fn ids(d: &TensorDataset) -> Vec<u32> {
        let mut v: Vec<u32> = d
            .inputs()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|x| *x as u32)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn parts_cover_every_example_once_the_same_for_the_same_seed() {
        let d = data(100);
        let parts = d.split(&[0.7, 0.2, 0.1], 5).unwrap();
        assert_eq!(
            parts.iter().map(Dataset::len).collect::<Vec<_>>(),
            [70, 20, 10]
        );
        let mut all: Vec<u32> = parts.iter().flat_map(ids).collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<u32>>());
        let again = d.split(&[0.7, 0.2, 0.1], 5).unwrap();
        assert_eq!(ids(&parts[1]), ids(&again[1]));
        assert_ne!(
            ids(&parts[1]),
            ids(&d.split(&[0.7, 0.2, 0.1], 6).unwrap()[1])
        );
        assert!(d.split(&[0.5, 0.6], 1).is_err());
        assert!(d.split(&[1.0, 0.0], 1).is_err());
    }

    #[test]
    fn a_stratified_split_keeps_each_class_share() {
        // 25 of 100 are class 1.
        let parts = data(100).split_stratified(&[0.8, 0.2], 3).unwrap();
        let ones = |d: &TensorDataset| {
            d.targets()
                .to_vec1::<u32>()
                .unwrap()
                .iter()
                .filter(|c| **c == 1)
                .count()
        };
        assert_eq!((parts[0].len(), ones(&parts[0])), (80, 20));
        assert_eq!((parts[1].len(), ones(&parts[1])), (20, 5));
    }
}
