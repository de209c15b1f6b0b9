//! A dataset split into parts by fractions — train, validation, test — drawn from the run
//! seed, so that the same seed gives the same parts; stratified when asked.

use super::TensorDataset;
use crate::error::{Error, Result};
use crate::model::rng::rng_for;
use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use std::collections::BTreeMap;

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
        self.pick_parts(&cut(&order, fractions), fractions)
    }

    /// Like [`TensorDataset::split`], keeping each class's share in every part: the targets
    /// must be class indices (an integer dtype, one per example). Each part gets
    /// `n × fraction` examples rounded by largest remainder, and each class `size × fraction`
    /// of them rounded down or up, the classes' roundings apportioned so that the parts'
    /// totals hold (the largest remainders first, ties drawn from `seed`). Each part comes in
    /// an order drawn from `seed`, not grouped by class.
    pub fn split_stratified(&self, fractions: &[f64], seed: u64) -> Result<Vec<TensorDataset>> {
        check(fractions)?;
        let labels = class_labels(self)?;
        // Each class's examples, classes in increasing order, in one pass.
        let mut members: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for (i, class) in labels.into_iter().enumerate() {
            members.entry(class).or_default().push(i as u32);
        }
        let sizes: Vec<usize> = members.values().map(Vec::len).collect();
        let counts = apportion(&sizes, fractions, seed);
        let mut parts: Vec<Vec<u32>> = vec![Vec::new(); fractions.len()];
        for ((class, mut examples), counts) in members.into_iter().zip(counts) {
            examples.shuffle(&mut rng_for(seed, "split-stratified", class as u64));
            let mut start = 0;
            for (part, count) in parts.iter_mut().zip(counts) {
                part.extend_from_slice(&examples[start..start + count]);
                start += count;
            }
        }
        for (i, part) in parts.iter_mut().enumerate() {
            part.shuffle(&mut rng_for(seed, "split-stratified-order", i as u64));
        }
        self.pick_parts(&parts, fractions)
    }

    /// The parts of examples `parts`, refusing an empty one (a split of too few examples).
    fn pick_parts(&self, parts: &[Vec<u32>], fractions: &[f64]) -> Result<Vec<TensorDataset>> {
        if let Some(i) = parts.iter().position(Vec::is_empty) {
            return Err(Error::msg(format!(
                "splitting {} examples by {fractions:?} leaves part {} empty",
                self.inputs().dim(0)?,
                i + 1
            )));
        }
        parts.iter().map(|p| self.pick(p)).collect()
    }

    /// The examples at `indices`, in that order.
    fn pick(&self, indices: &[u32]) -> Result<TensorDataset> {
        let index = Tensor::from_vec(indices.to_vec(), indices.len(), &Device::Cpu)?
            .to_device(self.inputs().device())?;
        self.part(
            self.inputs().index_select(&index, 0)?,
            self.targets().index_select(&index, 0)?,
        )
    }
}

/// The class index of each example of `data`, refusing targets that are not one class index
/// per example.
fn class_labels(data: &TensorDataset) -> Result<Vec<i64>> {
    let targets = data.targets();
    if targets.dtype().is_float() {
        // Values to predict: truncating them to classes would stratify by nonsense.
        return Err(Error::msg(format!(
            "a stratified split needs class indices (an integer dtype) as targets; these are {:?} (for values to predict, use split)",
            targets.dtype()
        )));
    }
    let labels = targets
        .flatten_all()
        .and_then(|t| t.to_dtype(DType::I64))
        .and_then(|t| t.to_vec1::<i64>())?;
    if labels.len() != data.inputs().dim(0)? {
        return Err(Error::msg(format!(
            "a stratified split needs one class index per example as targets; these have shape {:?}",
            targets.dims()
        )));
    }
    if let Some(negative) = labels.iter().find(|&&c| c < 0) {
        return Err(Error::msg(format!(
            "a stratified split needs class indices as targets; {negative} is negative"
        )));
    }
    Ok(labels)
}

/// `n` apportioned by `fractions`: each share rounded down, then one more for the largest
/// remainders (the earlier part first among equal ones) until they add up to `n`.
fn largest_remainder(n: usize, fractions: &[f64]) -> Vec<usize> {
    let exact: Vec<f64> = fractions.iter().map(|f| n as f64 * f).collect();
    let mut shares: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
    let mut order: Vec<usize> = (0..fractions.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    let missing = n.saturating_sub(shares.iter().sum());
    for &i in order.iter().cycle().take(missing) {
        shares[i] += 1;
    }
    shares
}

/// How many examples of each class (of `sizes`) go to each part: `counts[class][part]`.
/// The parts' totals are `n` by [`largest_remainder`]; a class gets its share of each part
/// rounded down, then one more where its remainders are largest, as long as both the class
/// and the part still need examples (ties in an order drawn from `seed`); the rare units
/// that rule cannot place go to the first part still short.
fn apportion(sizes: &[usize], fractions: &[f64], seed: u64) -> Vec<Vec<usize>> {
    let totals = largest_remainder(sizes.iter().sum(), fractions);
    let exact = |k: usize, p: usize| sizes[k] as f64 * fractions[p];
    let mut counts: Vec<Vec<usize>> = (0..sizes.len())
        .map(|k| {
            (0..fractions.len())
                .map(|p| exact(k, p).floor() as usize)
                .collect()
        })
        .collect();
    let mut class_short: Vec<usize> = (0..sizes.len())
        .map(|k| sizes[k].saturating_sub(counts[k].iter().sum()))
        .collect();
    let mut part_short: Vec<usize> = (0..fractions.len())
        .map(|p| totals[p].saturating_sub(counts.iter().map(|c| c[p]).sum()))
        .collect();
    let mut cells: Vec<(usize, usize)> = (0..sizes.len())
        .flat_map(|k| (0..fractions.len()).map(move |p| (k, p)))
        .collect();
    cells.shuffle(&mut rng_for(seed, "split-stratified-apportion", 0));
    let remainder = |&(k, p): &(usize, usize)| exact(k, p) - exact(k, p).floor();
    // Stable: equal remainders keep the drawn order.
    cells.sort_by(|a, b| remainder(b).total_cmp(&remainder(a)));
    for (k, p) in cells {
        if class_short[k] > 0 && part_short[p] > 0 {
            counts[k][p] += 1;
            class_short[k] -= 1;
            part_short[p] -= 1;
        }
    }
    for (k, short) in class_short.iter_mut().enumerate() {
        while *short > 0 {
            let Some(p) = part_short.iter().position(|&s| s > 0) else {
                break;
            };
            counts[k][p] += 1;
            *short -= 1;
            part_short[p] -= 1;
        }
    }
    counts
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
        let ones = |d: &TensorDataset| labels(d).iter().filter(|c| **c == 1).count();
        assert_eq!((parts[0].len(), ones(&parts[0])), (80, 20));
        assert_eq!((parts[1].len(), ones(&parts[1])), (20, 5));
    }

    fn labels(d: &TensorDataset) -> Vec<u32> {
        d.targets().to_vec1::<u32>().unwrap()
    }

    /// `classes` classes of `each` examples, the input of each its own number.
    fn classes(classes: u32, each: u32) -> TensorDataset {
        let n = (classes * each) as usize;
        let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let y: Vec<u32> = (0..n as u32).map(|i| i / each).collect();
        TensorDataset::new(
            Tensor::from_vec(x, (n, 1), &Device::Cpu).unwrap(),
            Tensor::from_vec(y, n, &Device::Cpu).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn many_small_classes_still_fill_every_part() {
        // Per class, 3 × 0.1 rounds to 0: rounding class by class left the test part empty.
        let all = classes(100, 3);
        let parts = all.split_stratified(&[0.8, 0.1, 0.1], 7).unwrap();
        assert_eq!(
            parts.iter().map(Dataset::len).collect::<Vec<_>>(),
            [240, 30, 30]
        );
        let mut seen: Vec<u32> = parts.iter().flat_map(ids).collect();
        seen.sort();
        assert_eq!(seen, (0..300).collect::<Vec<u32>>());
        for class in 0..100 {
            let count = |p: &TensorDataset| labels(p).iter().filter(|&&c| c == class).count();
            // Each class's share of a part, rounded down or up: 2.4 → 2 or 3, 0.3 → 0 or 1.
            assert!((2..=3).contains(&count(&parts[0])), "class {class}");
            assert!(
                count(&parts[1]) <= 1 && count(&parts[2]) <= 1,
                "class {class}"
            );
        }
        // The parts are not grouped by class.
        let first = labels(&parts[0]);
        assert!(first.windows(2).any(|w| w[1] < w[0]), "{first:?}");
        // The same seed, the same parts; another seed, others.
        let again = all.split_stratified(&[0.8, 0.1, 0.1], 7).unwrap();
        assert_eq!(ids(&parts[2]), ids(&again[2]));
        assert_eq!(labels(&parts[2]), labels(&again[2]));
        let other = all.split_stratified(&[0.8, 0.1, 0.1], 8).unwrap();
        assert_ne!(ids(&parts[2]), ids(&other[2]));
    }

    #[test]
    fn uneven_classes_and_fractions_add_up_exactly() {
        for (sizes, fractions) in [
            (vec![1usize, 2, 3, 4, 5, 6, 7], vec![0.6, 0.2, 0.2]),
            (vec![10, 1, 1, 1], vec![0.5, 0.5]),
            (vec![7; 13], vec![0.7, 0.15, 0.15]),
            (vec![1; 9], vec![1.0 / 3.0; 3]),
        ] {
            let n: usize = sizes.iter().sum();
            let counts = apportion(&sizes, &fractions, 1);
            let totals = largest_remainder(n, &fractions);
            for (k, c) in counts.iter().enumerate() {
                assert_eq!(c.iter().sum::<usize>(), sizes[k], "{sizes:?} {fractions:?}");
                for (p, f) in fractions.iter().enumerate() {
                    let share = sizes[k] as f64 * f;
                    assert!((c[p] as f64 - share).abs() < 2.0, "{counts:?}");
                }
            }
            for (p, total) in totals.iter().enumerate() {
                assert_eq!(counts.iter().map(|c| c[p]).sum::<usize>(), *total);
            }
        }
        assert_eq!(largest_remainder(10, &[0.25, 0.25, 0.5]), [3, 2, 5]);
    }

    #[test]
    fn a_stratified_split_refuses_what_are_not_classes() {
        let refused =
            |d: TensorDataset| d.split_stratified(&[0.5, 0.5], 1).unwrap_err().to_string();
        let x = Tensor::zeros((3, 1), DType::F32, &Device::Cpu).unwrap();
        let values = TensorDataset::new(
            x.clone(),
            Tensor::new(&[1f32, 1e9, 2.5], &Device::Cpu).unwrap(),
        );
        let text = refused(values.unwrap());
        assert!(
            text.contains("needs class indices (an integer dtype)") && text.contains("F32"),
            "{text}"
        );
        let negative = TensorDataset::new(
            x.clone(),
            Tensor::new(&[1i64, -1, 0], &Device::Cpu).unwrap(),
        );
        assert!(refused(negative.unwrap()).contains("-1 is negative"));
        // A huge class index is one class among others, grouped in one pass.
        let huge = TensorDataset::new(
            Tensor::new(&[[0f32], [1.], [2.], [3.]], &Device::Cpu).unwrap(),
            Tensor::new(&[1_000_000_000u32, 0, 1_000_000_000, 0], &Device::Cpu).unwrap(),
        )
        .unwrap();
        let parts = huge.split_stratified(&[0.5, 0.5], 1).unwrap();
        for p in &parts {
            let mut l = labels(p);
            l.sort();
            assert_eq!(l, [0, 1_000_000_000]);
        }
        // Too few examples for a part: said, not an empty part.
        let two = classes(2, 1).split_stratified(&[0.8, 0.1, 0.1], 1);
        let text = two.unwrap_err().to_string();
        assert_eq!(
            text,
            "splitting 2 examples by [0.8, 0.1, 0.1] leaves part 2 empty"
        );
        let text = classes(1, 5)
            .split(&[0.95, 0.05], 1)
            .unwrap_err()
            .to_string();
        assert_eq!(
            text,
            "splitting 5 examples by [0.95, 0.05] leaves part 2 empty"
        );
    }
}
