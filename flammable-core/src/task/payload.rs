//! What an answer is made of: a response body ([`Payload`]); and a request's sample in the
//! model's dtype. (Reading a request body is [`super::request`].)

use crate::error::{Error, Result};
use crate::task::output::Output;
use candle_core::{DType, Tensor};
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
        Payload::json(result.as_json())
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
