//! Requests within MLflow's limits on `runs/log-batch`: at most 1000 metrics, 100 parameters
//! and 100 tags, 1000 of them in all, and a body of at most 1 MB.

use serde_json::{json, Value};

/// Metrics one `log-batch` takes.
pub const MAX_METRICS: usize = 1000;
/// Parameters one `log-batch` takes.
pub const MAX_PARAMS: usize = 100;
/// Tags one `log-batch` takes.
pub const MAX_TAGS: usize = 100;
/// The body a request may have; a margin below MLflow's 1 MB for the envelope.
pub const MAX_BYTES: usize = 1_000_000 - 4_096;

/// `items` in consecutive runs of at most `max_count` items and `max_bytes` bytes by
/// `size_of` (an item larger than `max_bytes` alone in its run).
pub fn chunks<T>(
    items: &[T],
    max_count: usize,
    max_bytes: usize,
    size_of: impl Fn(&T) -> usize,
) -> Vec<&[T]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let size = size_of(item) + 1;
        if i > start && (i - start >= max_count || bytes + size > max_bytes) {
            out.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// A metric point as `log-batch` takes it: a value that is not a number, or infinite, as the
/// text protobuf's JSON reads (`NaN`, `Infinity`, `-Infinity`).
pub fn metric(key: &str, value: f64, timestamp_ms: i64, step: i64) -> Value {
    let value = if value.is_nan() {
        json!("NaN")
    } else if value == f64::INFINITY {
        json!("Infinity")
    } else if value == f64::NEG_INFINITY {
        json!("-Infinity")
    } else {
        json!(value)
    };
    json!({"key": key, "value": value, "timestamp": timestamp_ms, "step": step})
}

/// A `{key, value}` pair (a parameter or a tag).
pub fn pair(key: &str, value: &str) -> Value {
    json!({"key": key, "value": value})
}

/// The bytes `value` takes as JSON.
pub fn json_len(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(0, |v| v.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_to_the_count_and_the_bytes() {
        let items: Vec<usize> = (0..2500).collect();
        let by_count = chunks(&items, MAX_METRICS, MAX_BYTES, |_| 10);
        assert_eq!(
            by_count.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        assert_eq!(by_count.concat(), items);
        // 100-byte items (101 with their comma) under 1000 bytes: nine a request.
        let by_bytes = chunks(&items[..20], 1000, 1000, |_| 100);
        assert_eq!(
            by_bytes.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [9, 9, 2]
        );
        // An item over the limit goes alone; nothing is lost, nothing empty sent.
        let sizes = [10, 5000, 10];
        let big = chunks(&sizes, 1000, 1000, |s| *s);
        assert_eq!(big, vec![&sizes[..1], &sizes[1..2], &sizes[2..]]);
        assert!(chunks(&[] as &[usize], 10, 10, |_| 1).is_empty());
    }

    #[test]
    fn values_that_are_not_numbers_are_spelled_as_mlflow_reads_them() {
        assert_eq!(metric("a", f64::NAN, 1, 2)["value"], "NaN");
        assert_eq!(metric("a", f64::INFINITY, 1, 2)["value"], "Infinity");
        assert_eq!(metric("a", f64::NEG_INFINITY, 1, 2)["value"], "-Infinity");
        let m = metric("val/loss", 0.25, 1_700_000_000_123, 7);
        assert_eq!(
            m,
            json!({"key": "val/loss", "value": 0.25, "timestamp": 1_700_000_000_123_i64, "step": 7})
        );
    }
}
