//! How a metric's value is printed: the same width of precision for every value, but a count
//! as a whole number and a tiny or huge value in scientific notation, so that neither
//! `173243.0000` nor `0.0000` (for 0.00004) is what a reader sees.

/// `value` for a table or a line: whole numbers without decimals (`173243`), values under
/// 0.001 or over a million (not whole) in scientific notation (`4.2000e-5`), others with
/// four decimals (`0.9722`); NaN and infinities as Rust writes them.
pub fn metric_text(value: f64) -> String {
    let magnitude = value.abs();
    if !value.is_finite() {
        format!("{value}")
    } else if value.fract() == 0.0 && magnitude < 1e15 {
        format!("{value:.0}")
    } else if !(1e-3..1e6).contains(&magnitude) {
        format!("{value:.4e}")
    } else {
        format!("{value:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::metric_text;

    #[test]
    fn counts_fractions_and_extremes() {
        assert_eq!(metric_text(173243.0), "173243");
        assert_eq!(metric_text(0.0), "0");
        assert_eq!(metric_text(0.97222), "0.9722");
        assert_eq!(metric_text(0.000042), "4.2000e-5");
        assert_eq!(metric_text(-2.5), "-2.5000");
        assert_eq!(metric_text(12345678.5), "1.2346e7");
        assert_eq!(metric_text(f64::NAN), "NaN");
        assert_eq!(metric_text(f64::INFINITY), "inf");
    }
}
