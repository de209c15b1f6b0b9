//! A group's series as one: at every step any of its runs logged, the mean, standard
//! deviation, lowest and highest of the runs' values there (those that are finite), so that a
//! group of seeds draws as its mean with a band. Runs that log the same steps — a group of
//! seeds almost always does — are added up column by column; others are merged by step.

use crate::store::metrics::Series;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A group's series at each step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Aggregate {
    /// The step, epoch and time of each point (epoch and time of the first run that has it):
    /// values are the mean.
    pub mean: Series,
    /// The sample standard deviation at each step (0 where one run has it).
    pub std: Vec<f64>,
    /// The lowest value at each step.
    pub min: Vec<f64>,
    /// The highest value at each step.
    pub max: Vec<f64>,
}

/// Adds values of one step up (Welford's way: the spread of values far from zero keeps its
/// digits).
#[derive(Default)]
struct Acc {
    n: u32,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

impl Acc {
    fn add(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        if self.n == 0 {
            (self.min, self.max) = (v, v);
        }
        self.n += 1;
        let delta = v - self.mean;
        self.mean += delta / f64::from(self.n);
        self.m2 += delta * (v - self.mean);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    fn push_to(&self, out: &mut Aggregate, step: u64, epoch: u32, time: f64) {
        out.mean.steps.push(step);
        out.mean.epochs.push(epoch);
        out.mean.times.push(time);
        if self.n == 0 {
            out.mean.values.push(f64::NAN);
            out.std.push(f64::NAN);
            out.min.push(f64::NAN);
            out.max.push(f64::NAN);
            return;
        }
        let var = if self.n > 1 {
            (self.m2 / f64::from(self.n - 1)).max(0.0)
        } else {
            0.0
        };
        out.mean.values.push(self.mean);
        out.std.push(var.sqrt());
        out.min.push(self.min);
        out.max.push(self.max);
    }
}

/// The mean of `members` at each step (as [`aggregate`]'s `mean`, without the spread).
pub fn mean(members: &[(&Series, &[f64])]) -> Series {
    let Some(&(first, _)) = members.first() else {
        return Series::default();
    };
    if !members.iter().all(|(s, _)| s.steps == first.steps) {
        return aggregate(members).mean;
    }
    let values = (0..first.steps.len())
        .map(|i| {
            let (mut count, mut sum) = (0u32, 0.0);
            for (_, values) in members {
                let v = values[i];
                if v.is_finite() {
                    count += 1;
                    sum += v;
                }
            }
            if count == 0 {
                f64::NAN
            } else {
                sum / f64::from(count)
            }
        })
        .collect();
    Series {
        steps: first.steps.clone(),
        epochs: first.epochs.clone(),
        times: first.times.clone(),
        values,
    }
}

/// The aggregate of `members`: each a series (steps increasing) and the values to use for it
/// (its own, or smoothed; as many as its steps).
pub fn aggregate(members: &[(&Series, &[f64])]) -> Aggregate {
    let mut out = Aggregate::default();
    let Some(&(first, _)) = members.first() else {
        return out;
    };
    if members.iter().all(|(s, _)| s.steps == first.steps) {
        return aligned(first, members);
    }
    // Merged by step: a heap of each member's next point.
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = members
        .iter()
        .enumerate()
        .filter(|(_, (s, _))| !s.steps.is_empty())
        .map(|(m, (s, _))| Reverse((s.steps[0], m)))
        .collect();
    let mut next = vec![0usize; members.len()];
    while let Some(Reverse((step, m))) = heap.pop() {
        let (s, _) = members[m];
        let (epoch, time) = (s.epochs[next[m]], s.times[next[m]]);
        let mut acc = Acc::default();
        let mut take = |m: usize, heap: &mut BinaryHeap<Reverse<(u64, usize)>>| {
            let (s, values) = members[m];
            // Every point of this member at this step (a step logged twice counts twice).
            while next[m] < s.steps.len() && s.steps[next[m]] == step {
                acc.add(values[next[m]]);
                next[m] += 1;
            }
            if next[m] < s.steps.len() {
                heap.push(Reverse((s.steps[next[m]], m)));
            }
        };
        take(m, &mut heap);
        while let Some(&Reverse((s2, m2))) = heap.peek() {
            if s2 != step {
                break;
            }
            heap.pop();
            take(m2, &mut heap);
        }
        acc.push_to(&mut out, step, epoch, time);
    }
    out
}

/// The aggregate of members that all log `first`'s steps: each step's values in two passes
/// (their sum, lowest and highest; then their squared distances from the mean), which keeps
/// the spread of values far from zero as Welford's way does, with one division a step rather
/// than one a value.
fn aligned(first: &Series, members: &[(&Series, &[f64])]) -> Aggregate {
    let n = first.steps.len();
    let mut out = Aggregate {
        mean: Series {
            steps: first.steps.clone(),
            epochs: first.epochs.clone(),
            times: first.times.clone(),
            values: Vec::with_capacity(n),
        },
        std: Vec::with_capacity(n),
        min: Vec::with_capacity(n),
        max: Vec::with_capacity(n),
    };
    for i in 0..n {
        let (mut count, mut sum) = (0u32, 0.0);
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for (_, values) in members {
            let v = values[i];
            if v.is_finite() {
                count += 1;
                sum += v;
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        if count == 0 {
            out.mean.values.push(f64::NAN);
            out.std.push(f64::NAN);
            out.min.push(f64::NAN);
            out.max.push(f64::NAN);
            continue;
        }
        let mean = sum / f64::from(count);
        let std = if count > 1 {
            let m2: f64 = members
                .iter()
                .map(|(_, values)| values[i])
                .filter(|v| v.is_finite())
                .map(|v| (v - mean) * (v - mean))
                .sum();
            (m2 / f64::from(count - 1)).sqrt()
        } else {
            0.0
        };
        out.mean.values.push(mean);
        out.std.push(std);
        out.min.push(lo);
        out.max.push(hi);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(steps: &[u64], values: &[f64]) -> Series {
        Series {
            steps: steps.to_vec(),
            epochs: vec![0; steps.len()],
            values: values.to_vec(),
            times: steps.iter().map(|&s| s as f64).collect(),
        }
    }

    #[test]
    fn aligned_runs_are_added_column_by_column() {
        let a = series(&[1, 2, 3], &[1.0, 2.0, f64::NAN]);
        let b = series(&[1, 2, 3], &[3.0, 2.0, 5.0]);
        let g = aggregate(&[(&a, &a.values), (&b, &b.values)]);
        assert_eq!(g.mean.steps, [1, 2, 3]);
        assert_eq!(g.mean.values, [2.0, 2.0, 5.0]);
        assert_eq!(g.min, [1.0, 2.0, 5.0]);
        assert_eq!(g.max, [3.0, 2.0, 5.0]);
        assert!((g.std[0] - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(g.std[2], 0.0, "one finite value");
        assert_eq!(mean(&[(&a, &a.values), (&b, &b.values)]), g.mean);
    }

    #[test]
    fn others_are_merged_by_step() {
        let a = series(&[1, 3, 5], &[1.0, 3.0, 5.0]);
        let b = series(&[2, 3, 6], &[20.0, 30.0, 60.0]);
        let c = series(&[], &[]);
        let g = aggregate(&[(&a, &a.values), (&b, &b.values), (&c, &c.values)]);
        assert_eq!(g.mean.steps, [1, 2, 3, 5, 6]);
        assert_eq!(g.mean.values, [1.0, 20.0, 16.5, 5.0, 60.0]);
        assert_eq!(g.max, [1.0, 20.0, 30.0, 5.0, 60.0]);
        assert_eq!(
            mean(&[(&a, &a.values), (&b, &b.values)]).values,
            [1.0, 20.0, 16.5, 5.0, 60.0]
        );
        assert_eq!(aggregate(&[]), Aggregate::default());
        // Near-equal values far from zero keep their spread.
        let (c, d) = (series(&[1], &[1e8 + 1.0]), series(&[1], &[1e8 - 1.0]));
        let g = aggregate(&[(&c, &c.values), (&d, &d.values)]);
        assert!((g.std[0] - 2f64.sqrt()).abs() < 1e-6, "{}", g.std[0]);
    }
}
