//! A histogram that observes without a lock, for the series every request touches.
//! prometheus-client's own takes a mutex per observation, and the threads that compute
//! requests took it in turns three times a request (`bench/results/serve_load.md`).

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Observations are summed in billionths: a whole number that atomics add, exact for
/// nanoseconds and for batch sizes, with room for 584 years of seconds or 18 billion samples.
const SCALE: f64 = 1e9;

/// Counts of observations by upper bound (each observation in the first bucket whose bound
/// holds it; the last bucket, +Inf, holds the rest), their count and sum. Clones share the
/// counts, as the family that writes them and the handle that observes do.
#[derive(Clone, Debug)]
pub struct Histogram {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bounds: &'static [f64],
    /// One per bound, then +Inf.
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    /// The sum, in billionths.
    sum: AtomicU64,
}

impl Histogram {
    /// An empty histogram with these upper bounds (increasing, finite; +Inf is added).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            inner: Arc::new(Inner {
                bounds,
                buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
                count: AtomicU64::new(0),
                sum: AtomicU64::new(0),
            }),
        }
    }

    /// Counts `value` (a negative or NaN one counts as 0 in the sum).
    pub fn observe(&self, value: f64) {
        let inner = &*self.inner;
        let bucket = inner
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(inner.bounds.len());
        if let Some(b) = inner.buckets.get(bucket) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        inner.count.fetch_add(1, Ordering::Relaxed);
        // `as` saturates: NaN and negatives add 0, an absurdly large value u64::MAX.
        inner
            .sum
            .fetch_add((value * SCALE) as u64, Ordering::Relaxed);
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let inner = &*self.inner;
        let buckets: Vec<(f64, u64)> = inner
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(inner.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        // The count written is the buckets' sum, so that a scrape in the middle of an
        // observation never shows more in +Inf's cumulative count than in `_count` or less.
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = inner.sum.load(Ordering::Relaxed) as f64 / SCALE;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::registry::Registry;

    #[test]
    fn buckets_hold_values_up_to_their_bound_and_sum_is_exact_for_nanoseconds() {
        let h = Histogram::new(&[1.0, 2.0, 4.0]);
        for v in [0.5, 1.0, 1.5, 4.0, 9.0, 0.000_000_003] {
            h.observe(v);
        }
        let counts: Vec<u64> = h
            .inner
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts, [3, 1, 1, 1]);
        assert_eq!(h.inner.count.load(Ordering::Relaxed), 6);
        assert_eq!(h.inner.sum.load(Ordering::Relaxed), 16_000_000_003);
        let mut registry = Registry::default();
        let family = Family::<Vec<(String, String)>, Histogram, _>::new_with_constructor(|| {
            Histogram::new(&[1.0, 2.0, 4.0])
        });
        registry.register("h", "a histogram", family.clone());
        let series = family
            .get_or_create(&vec![("run".into(), "r".into())])
            .clone();
        series.observe(1.5);
        series.observe(3.0);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "# TYPE h histogram",
            "h_sum{run=\"r\"} 4.5",
            "h_count{run=\"r\"} 2",
            "h_bucket{le=\"1.0\",run=\"r\"} 0",
            "h_bucket{le=\"2.0\",run=\"r\"} 1",
            "h_bucket{le=\"4.0\",run=\"r\"} 2",
            "h_bucket{le=\"+Inf\",run=\"r\"} 2",
        ] {
            assert!(text.contains(line), "{line} not in {text}");
        }
    }
}
