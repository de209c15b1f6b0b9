//! Downsampling a series for a chart: the points in a step range are cut into one bucket per
//! pixel, and each bucket keeps its first, lowest, highest and last point. Deterministic
//! (the same series and range give the same points) and a spike survives at any zoom: it is
//! the highest point of its bucket.

/// A series cut to at most about four points per bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Downsampled {
    /// The steps of the kept points, in order.
    pub steps: Vec<u64>,
    /// Their values.
    pub values: Vec<f64>,
    /// How many points the range held before downsampling.
    pub points_in_range: usize,
}

/// The points of (`steps`, `values`) — in step order, as metrics files hold them — whose step
/// is within `range` (inclusive; all when `None`), downsampled into `buckets` buckets. A range
/// with few enough points comes back whole. Values that are not finite are kept only when
/// their bucket has no finite value (so a divergence still shows).
pub fn downsample(
    steps: &[u64],
    values: &[f64],
    range: Option<(u64, u64)>,
    buckets: usize,
) -> Downsampled {
    let n = steps.len().min(values.len());
    let range = range.map(|(a, b)| (a as f64, b as f64));
    let (kept, points_in_range) = downsample_by(n, |i| steps[i] as f64, values, range, buckets);
    Downsampled {
        steps: kept.iter().map(|&i| steps[i]).collect(),
        values: kept.iter().map(|&i| values[i]).collect(),
        points_in_range,
    }
}

/// [`downsample`] over any x: `x(i)` of the points `0..n` must not decrease. Returns the
/// indices of the points kept, in order, and how many points the range held.
pub fn downsample_by(
    n: usize,
    x: impl Fn(usize) -> f64,
    values: &[f64],
    range: Option<(f64, f64)>,
    buckets: usize,
) -> (Vec<usize>, usize) {
    let n = n.min(values.len());
    // The first index whose x is not below `bound` (`inclusive`: above it).
    let first_past = |bound: f64, inclusive: bool| {
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let before = if inclusive {
                x(mid) <= bound
            } else {
                x(mid) < bound
            };
            if before {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    };
    let (lo_i, hi_i) = match range {
        Some((from, to)) => (first_past(from, false), first_past(to, true)),
        None => (0, n),
    };
    let hi_i = hi_i.max(lo_i);
    let count = hi_i - lo_i;
    let buckets = buckets.max(1);
    if count <= buckets * 4 {
        return ((lo_i..hi_i).collect(), count);
    }
    let (first, last) = (x(lo_i), x(hi_i - 1));
    let span = last - first;
    // Bucket b holds the x from first + b·width (included) to the next edge: the edges are
    // computed once a bucket, not a division a point.
    let width = span / buckets as f64;
    let edge = |b: usize| {
        if b + 1 >= buckets || width <= 0.0 {
            f64::INFINITY
        } else {
            first + (b + 1) as f64 * width
        }
    };
    let mut out = Vec::with_capacity(buckets * 4);
    let mut keep: Vec<usize> = Vec::with_capacity(4);
    let mut i = lo_i;
    let mut b = 0;
    while i < hi_i {
        // The bucket of point i: past the edges it is beyond.
        let xi = x(i);
        while xi >= edge(b) {
            b += 1;
        }
        let end = edge(b);
        let start = i;
        let (mut min_i, mut max_i) = (None::<usize>, None::<usize>);
        while i < hi_i && (i == start || x(i) < end) {
            let v = values[i];
            if v.is_finite() {
                if min_i.is_none_or(|m| v < values[m]) {
                    min_i = Some(i);
                }
                if max_i.is_none_or(|m| v > values[m]) {
                    max_i = Some(i);
                }
            }
            i += 1;
        }
        keep.clear();
        keep.push(start);
        keep.extend(min_i);
        keep.extend(max_i);
        keep.push(i - 1);
        keep.sort_unstable();
        keep.dedup();
        for &k in &keep {
            // A non-finite first/last point is dropped when the bucket has a finite value.
            if !values[k].is_finite() && min_i.is_some() {
                continue;
            }
            out.push(k);
        }
    }
    (out, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spike_survives_and_the_result_is_deterministic() {
        let steps: Vec<u64> = (0..1_000_000).collect();
        let mut values: Vec<f64> = steps.iter().map(|&s| (s as f64 * 1e-3).sin()).collect();
        values[123_457] = 50.0;
        values[800_001] = -50.0;
        let a = downsample(&steps, &values, None, 800);
        let b = downsample(&steps, &values, None, 800);
        assert_eq!(a, b);
        assert!(a.steps.len() <= 800 * 4, "{}", a.steps.len());
        assert_eq!(a.points_in_range, 1_000_000);
        let at = |s: u64| a.steps.iter().position(|&x| x == s).map(|i| a.values[i]);
        assert_eq!(at(123_457), Some(50.0));
        assert_eq!(at(800_001), Some(-50.0));
        // The first and last points are kept: the line spans the whole range.
        assert_eq!(a.steps.first(), Some(&0));
        assert_eq!(a.steps.last(), Some(&999_999));
        assert!(a.steps.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_range_comes_back_at_full_resolution_when_it_fits() {
        let steps: Vec<u64> = (0..100_000).collect();
        let values: Vec<f64> = steps.iter().map(|&s| s as f64).collect();
        let z = downsample(&steps, &values, Some((5_000, 5_999)), 800);
        assert_eq!(z.steps.len(), 1_000);
        assert_eq!(z.steps[0], 5_000);
        assert_eq!(*z.steps.last().unwrap(), 5_999);
        let empty = downsample(&steps, &values, Some((200_000, 300_000)), 800);
        assert!(empty.steps.is_empty());
        let backwards = downsample(&steps, &values, Some((10, 5)), 800);
        assert!(backwards.steps.is_empty());
    }

    #[test]
    fn non_finite_values_show_only_where_nothing_else_does() {
        let steps: Vec<u64> = (0..10_000).collect();
        let mut values = vec![1.0; 10_000];
        values[5_000] = f64::NAN;
        // The last bucket (steps 9,900…9,999) holds only infinities.
        for v in &mut values[9_900..] {
            *v = f64::INFINITY;
        }
        let d = downsample(&steps, &values, None, 100);
        assert_eq!(d.values.iter().filter(|v| !v.is_finite()).count(), 2);
        assert!(d.values.last().unwrap().is_infinite());
        assert!(!d.steps.contains(&5_000));
    }
}
