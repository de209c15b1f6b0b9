//! Evaluation results: any serde value, held as RON text, written atomically.

use crate::error::{Error, Result};
use crate::util::atomic::write_atomic;
use candle_core::Tensor;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The result of evaluating one sample, as RON text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    ron: String,
}

impl Output {
    /// The RON form of any serializable `value`.
    pub fn new<T: Serialize>(value: &T) -> Result<Self> {
        crate::util::ron_text::to_pretty(value)
            .map(|ron| Output { ron })
            .map_err(|e| Error::msg(format!("cannot write the result as RON: {e}")))
    }

    /// The RON text.
    pub fn as_ron(&self) -> &str {
        &self.ron
    }

    /// The value back as `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        crate::util::ron_text::from_str(&self.ron)
            .map_err(|e| Error::msg(format!("cannot read the result: {e}")))
    }

    /// The value as JSON (structs become objects, named by their fields).
    pub fn to_json(&self) -> Result<serde_json::Value> {
        crate::util::ron_text::from_str(&self.ron)
            .map_err(|e| Error::msg(format!("cannot turn the result into JSON: {e}")))
    }

    /// Writes the RON text to `path` atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = self.ron.clone();
        text.push('\n');
        Ok(write_atomic(path, text.as_bytes())?)
    }
}

/// What the default `postprocess` makes of a model output: its values, and the index of
/// the largest one (the class of a classifier).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The index of the largest value.
    pub argmax: usize,
    /// All output values, flattened.
    pub values: Vec<f32>,
}

impl Prediction {
    /// Reads `output` (a batch of one) back to the host.
    pub fn from_output(output: &Tensor) -> Result<Self> {
        let values = output
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?;
        let argmax = values
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                if v > best.1 {
                    (i, v)
                } else {
                    best
                }
            })
            .0;
        Ok(Prediction { argmax, values })
    }
}
