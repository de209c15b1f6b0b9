//! Smoothing of a series, computed on every point before the chart is downsampled (smoothing
//! the downsampled line would smooth its buckets' extremes, not the series).
//!
//! - `ema:W` — the exponential moving average with weight `W` in [0, 1), debiased as
//!   TensorBoard's slider does: early points are not pulled towards zero.
//! - `mean:N` — the mean of the last `N` points (the point itself and the `N - 1` before it).
//!
//! Values that are not finite are left as they are and do not enter the average, so a
//! divergence still shows and does not poison the rest of the line.

use std::str::FromStr;

/// How a chart's lines are smoothed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Smoothing {
    /// The raw series.
    #[default]
    None,
    /// Debiased exponential moving average with this weight of the past, in [0, 1).
    Ema(f64),
    /// Trailing mean of this many points (at least 1).
    Mean(usize),
}

/// The largest window `mean:N` takes.
pub const MAX_WINDOW: usize = 100_000;

impl FromStr for Smoothing {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{text}`: use none, ema:W with W from 0 to below 1 (e.g. ema:0.6), or mean:N with N from 1 to {MAX_WINDOW} (e.g. mean:20)"
            )
        };
        match text.split_once(':') {
            None if text.is_empty() || text == "none" => Ok(Smoothing::None),
            Some(("ema", w)) => w
                .parse::<f64>()
                .ok()
                .filter(|w| (0.0..1.0).contains(w))
                .map(|w| {
                    if w == 0.0 {
                        Smoothing::None
                    } else {
                        Smoothing::Ema(w)
                    }
                })
                .ok_or_else(bad),
            Some(("mean", n)) => n
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_WINDOW).contains(n))
                .map(|n| {
                    if n == 1 {
                        Smoothing::None
                    } else {
                        Smoothing::Mean(n)
                    }
                })
                .ok_or_else(bad),
            _ => Err(bad()),
        }
    }
}

impl Smoothing {
    /// The text [`FromStr`] reads back (empty for none).
    pub fn text(&self) -> String {
        match self {
            Smoothing::None => String::new(),
            Smoothing::Ema(w) => format!("ema:{w}"),
            Smoothing::Mean(n) => format!("mean:{n}"),
        }
    }

    /// `values` smoothed (`None` when this smooths nothing).
    pub fn apply(&self, values: &[f64]) -> Option<Vec<f64>> {
        match *self {
            Smoothing::None => None,
            Smoothing::Ema(w) => Some(ema(values, w)),
            Smoothing::Mean(n) => Some(trailing_mean(values, n)),
        }
    }
}

fn ema(values: &[f64], weight: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(values.len());
    let (mut last, mut debias) = (0.0, 1.0);
    for &v in values {
        if !v.is_finite() {
            out.push(v);
            continue;
        }
        last = last * weight + (1.0 - weight) * v;
        if debias == 0.0 {
            out.push(last);
            continue;
        }
        // 1 - weight^k after k finite points. Once weight^k is below 2^-54, 1 - weight^k
        // rounds to 1 exactly: it is made zero and the division skipped (the same result,
        // without a division a point or a pass through subnormal numbers).
        debias *= weight;
        if debias < f64::EPSILON / 4.0 {
            debias = 0.0;
        }
        out.push(last / (1.0 - debias));
    }
    out
}

fn trailing_mean(values: &[f64], n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(values.len());
    // The finite values of the window; the sum is recomputed now and then so rounding does
    // not creep in over millions of points.
    let mut window = std::collections::VecDeque::with_capacity(n);
    let mut sum = 0.0;
    for (i, &v) in values.iter().enumerate() {
        if !v.is_finite() {
            out.push(v);
            continue;
        }
        window.push_back(v);
        sum += v;
        if window.len() > n {
            sum -= window.pop_front().unwrap_or(0.0);
        }
        if i % 65_536 == 0 {
            sum = window.iter().sum();
        }
        out.push(sum / window.len() as f64);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_text_and_says_what_it_takes() {
        assert_eq!("".parse::<Smoothing>(), Ok(Smoothing::None));
        assert_eq!("ema:0.6".parse::<Smoothing>(), Ok(Smoothing::Ema(0.6)));
        assert_eq!("ema:0".parse::<Smoothing>(), Ok(Smoothing::None));
        assert_eq!("mean:20".parse::<Smoothing>(), Ok(Smoothing::Mean(20)));
        for bad in [
            "ema:1", "ema:-0.1", "ema:NaN", "mean:0", "mean:x", "gauss:3", "ema",
        ] {
            let e = bad.parse::<Smoothing>().unwrap_err();
            assert!(e.contains("ema:W"), "{bad}: {e}");
        }
        assert_eq!(Smoothing::Ema(0.6).text().parse(), Ok(Smoothing::Ema(0.6)));
    }

    #[test]
    fn the_moving_average_is_debiased() {
        // A constant series stays constant from its first point: no pull towards zero.
        let flat = Smoothing::Ema(0.9).apply(&[5.0; 10]).unwrap();
        assert!(flat.iter().all(|v| (v - 5.0).abs() < 1e-12), "{flat:?}");
        // By hand: w = 0.5 over 1, 3: last = 0.5, then 0.25 + 1.5 = 1.75; debiased 0.5/0.5 = 1
        // and 1.75/0.75.
        let s = Smoothing::Ema(0.5).apply(&[1.0, 3.0]).unwrap();
        assert_eq!(s[0], 1.0);
        assert!((s[1] - 1.75 / 0.75).abs() < 1e-12);
    }

    #[test]
    fn the_window_mean_trails_and_skips_what_is_not_finite() {
        let s = Smoothing::Mean(2)
            .apply(&[1.0, 3.0, f64::NAN, 5.0, 7.0])
            .unwrap();
        assert_eq!(s[0], 1.0);
        assert_eq!(s[1], 2.0);
        assert!(s[2].is_nan());
        assert_eq!(s[3], 4.0);
        assert_eq!(s[4], 6.0);
        let e = Smoothing::Ema(0.5)
            .apply(&[1.0, f64::INFINITY, 1.0])
            .unwrap();
        assert_eq!(e, [1.0, f64::INFINITY, 1.0]);
    }

    #[test]
    fn a_million_points_keep_their_mean() {
        let values: Vec<f64> = (0..1_000_000).map(|i| 1e6 + (i % 7) as f64).collect();
        let s = Smoothing::Mean(7).apply(&values).unwrap();
        assert!(s[6..].iter().all(|v| (v - 1_000_003.0).abs() < 1e-6));
    }
}
