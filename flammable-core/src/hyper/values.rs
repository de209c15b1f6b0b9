//! Value parsers for hyperparameter flags, with one-line messages: use them in a task's own
//! hyperparameters as `#[arg(long, value_parser = flammable::values::probability)]`.
//!
//! Each takes the flag's text and returns the value or a sentence saying what is allowed;
//! clap prints it as `invalid value 'X' for '--flag <FLAG>': <sentence>` and exits with 2.
//! The same parsers check values read from a `--config` file.

/// A finite number (not NaN, not infinite).
pub fn finite(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err("must be a finite number".into())
    }
}

/// A finite number above 0 (a learning rate, a norm).
pub fn positive(s: &str) -> Result<f64, String> {
    match finite(s)? {
        v if v > 0.0 => Ok(v),
        _ => Err("must be a number above 0".into()),
    }
}

/// A finite number of at least 0 (a weight decay, a momentum).
pub fn non_negative(s: &str) -> Result<f64, String> {
    match finite(s)? {
        v if v >= 0.0 => Ok(v),
        _ => Err("must be a number of at least 0".into()),
    }
}

/// A probability below 1, in `[0, 1)` (a dropout rate: 1 would drop everything).
pub fn probability(s: &str) -> Result<f64, String> {
    match finite(s)? {
        v if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err("must be at least 0 and below 1".into()),
    }
}

/// A whole number of at least 1 (a batch size, a layer width).
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a whole number of at least 1")),
    }
}

/// [`at_least_one`] as a `u64`.
pub fn at_least_one_u64(s: &str) -> Result<u64, String> {
    at_least_one(s).map(|n| n as u64)
}

/// An early-stopping patience: a whole number of at least 1, or `off` (read as 0, which
/// [`crate::TrainConfig::settled`] turns into no early stopping).
pub fn patience(s: &str) -> Result<u64, String> {
    if s.trim() == "off" {
        return Ok(0);
    }
    at_least_one_u64(s).map_err(|_| format!("`{s}` is not a whole number of at least 1, nor `off`"))
}

/// A number of CPU threads: 0 (one per core) up to 1024 (beyond, a typo would start threads
/// for minutes before anything is computed).
pub fn threads(s: &str) -> Result<usize, String> {
    const MOST: usize = 1024;
    match count(s)? {
        n if n > MOST => Err(format!("at most {MOST} (0: one per core)")),
        n => Ok(n),
    }
}

/// A whole number of at least 0.
pub fn count(s: &str) -> Result<usize, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number of at least 0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_parser_refuses_what_it_says() {
        assert_eq!(finite("1e-3"), Ok(1e-3));
        assert!(finite("nan").is_err() && finite("inf").is_err() && finite("x").is_err());
        assert!(positive("0").is_err() && positive("-1").is_err());
        assert_eq!(non_negative("0"), Ok(0.0));
        assert!(probability("1").is_err() && probability("1.5").is_err());
        assert_eq!(probability("0.5"), Ok(0.5));
        assert!(at_least_one("0").is_err());
        assert_eq!(
            at_least_one("-1"),
            Err("`-1` is not a whole number of at least 1".into())
        );
        assert_eq!(at_least_one("3"), Ok(3));
        assert!(!at_least_one("0")
            .unwrap_err()
            .contains("18446744073709551615"));
        assert_eq!((threads("0"), threads("1024")), (Ok(0), Ok(1024)));
        assert!(threads("100000").unwrap_err().contains("at most 1024"));
        assert_eq!((patience("off"), patience("3")), (Ok(0), Ok(3)));
        assert!(patience("0").unwrap_err().contains("nor `off`"));
    }
}
