//! What a request and its answer are made of: a request body read into a sample (the
//! default reads JSON) and a response body ([`Payload`]).

use crate::error::{Error, Result};
use crate::task::output::Output;
use candle_core::{DType, Device, Tensor};
use serde::Serialize;

/// A response body and its media type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// The `Content-Type` header, e.g. `application/json`.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Payload {
    /// `value` as JSON.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        let body = serde_json::to_vec(value)
            .map_err(|e| Error::msg(format!("cannot write the response as JSON: {e}")))?;
        Ok(Payload {
            content_type: "application/json".into(),
            body,
        })
    }

    /// An evaluation result as JSON (what the default `encode_response` sends).
    pub fn from_output(result: &Output) -> Result<Self> {
        Payload::json(&result.to_json()?)
    }
}

/// The default request reader: a JSON number or nested arrays of numbers (`[[0.1, 0.2],
/// [0.3, 0.4]]`), as an `f32` tensor of that shape on the CPU. A body that is not such
/// JSON gets an error naming where it goes wrong.
pub fn decode_json(body: &[u8]) -> Result<Tensor> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Error::usage(format!("the body is not JSON: {e}")))?;
    let mut shape = Vec::new();
    let mut probe = &value;
    while let serde_json::Value::Array(items) = probe {
        shape.push(items.len());
        match items.first() {
            Some(first) => probe = first,
            None => break,
        }
    }
    let mut values = Vec::with_capacity(shape.iter().product());
    flatten(&value, &shape, &mut String::new(), &mut values)?;
    Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
}

/// Appends the numbers of `value` (at `path`, e.g. `[2][0]`) to `out`, checking that it has
/// `shape`.
fn flatten(
    value: &serde_json::Value,
    shape: &[usize],
    path: &mut String,
    out: &mut Vec<f32>,
) -> Result<()> {
    let at = |path: &str| {
        if path.is_empty() {
            "the body".to_string()
        } else {
            format!("element {path}")
        }
    };
    match (value, shape.split_first()) {
        (serde_json::Value::Number(n), None) => {
            let v = n
                .as_f64()
                .ok_or_else(|| Error::usage(format!("{} is not a number", at(path))))?;
            out.push(v as f32);
            Ok(())
        }
        (serde_json::Value::Array(items), Some((&len, rest))) if items.len() == len => {
            for (i, item) in items.iter().enumerate() {
                let before = path.len();
                path.push_str(&format!("[{i}]"));
                flatten(item, rest, path, out)?;
                path.truncate(before);
            }
            Ok(())
        }
        (serde_json::Value::Array(items), Some((&len, _))) => Err(Error::usage(format!(
            "{} has {} elements where the first array at its depth has {len}: the arrays must form a rectangular tensor",
            at(path),
            items.len()
        ))),
        (serde_json::Value::Array(_), None) => Err(Error::usage(format!(
            "{} is an array where a number was expected: the arrays must form a rectangular tensor",
            at(path)
        ))),
        (other, _) => Err(Error::usage(format!(
            "{} is {}: send numbers in nested arrays, e.g. [[0.5, 1.0], [0.0, 2.5]]",
            at(path),
            json_kind(other)
        ))),
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// `sample` in `dtype` (JSON numbers arrive as `f32`; a model of token ids wants `u32`).
pub fn to_dtype(sample: Tensor, dtype: DType) -> Result<Tensor> {
    if sample.dtype() == dtype {
        return Ok(sample);
    }
    Ok(sample.to_dtype(dtype)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_arrays_become_tensors() {
        let t = decode_json(b"[[1, 2.5], [3, 4]]").unwrap();
        assert_eq!(t.dims(), &[2, 2]);
        assert_eq!(
            t.to_vec2::<f32>().unwrap(),
            vec![vec![1.0, 2.5], vec![3.0, 4.0]]
        );
        assert_eq!(decode_json(b"7").unwrap().dims(), &[] as &[usize]);
        assert_eq!(decode_json(b"[]").unwrap().dims(), &[0]);
    }

    #[test]
    fn bad_json_is_named_where_it_goes_wrong() {
        let e = |b: &[u8]| decode_json(b).unwrap_err().to_string();
        assert!(e(b"{oops").contains("not JSON"), "{}", e(b"{oops"));
        assert!(e(b"[[1, 2], [3]]").contains("element [1] has 1 elements"));
        assert!(e(b"[[1, \"x\"]]").contains("element [0][1] is a string"));
        assert!(e(b"[1, [2]]").contains("element [1] is an array"));
        assert!(e(b"{\"a\": 1}").contains("the body is an object"));
        assert_eq!(decode_json(b"[1, null]").unwrap_err().exit_code(), 2);
    }

    #[test]
    fn results_go_out_as_json() {
        let out = Output::new(&crate::task::output::Prediction {
            class: None,
            argmax: 2,
            values: vec![0.5, 1.0, 3.0],
        })
        .unwrap();
        let p = Payload::from_output(&out).unwrap();
        assert_eq!(p.content_type, "application/json");
        let v: serde_json::Value = serde_json::from_slice(&p.body).unwrap();
        assert_eq!(v["argmax"], 2);
        assert_eq!(v["values"][2], 3.0);
    }
}
