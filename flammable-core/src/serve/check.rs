//! What a sample must be for a model: its shape, finite numbers (unless the task takes
//! others), and the model's dtype. Checked where the request arrives, and again by a model
//! that is not the one the request was checked against (a reload in between).

use super::shared::Current;
use crate::task::payload::to_dtype;
use crate::task::request::check_finite;
use crate::web::AppError;
use axum::http::StatusCode;
use candle_core::Tensor;

fn unprocessable(message: String) -> AppError {
    AppError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// `sample` checked against `model` and converted to its dtype; a sample the model can never
/// take is refused with 422.
pub fn check(sample: Tensor, model: &Current, non_finite_inputs: bool) -> Result<Tensor, AppError> {
    if let Some(shape) = &model.info.sample_shape {
        if sample.dims() != shape.as_slice() {
            // Several samples in one request: say how to send them, since the server batches.
            let several = sample.dims().get(1..) == Some(shape.as_slice());
            return Err(unprocessable(format!(
                "a sample of this model has shape {shape:?}; this one has shape {:?}{}",
                sample.dims(),
                if several {
                    ": send one sample per request (concurrent requests are batched)"
                } else {
                    ""
                }
            )));
        }
    }
    // Converted first: a value the model's dtype cannot hold becomes infinite there.
    let sample = match model.dtype {
        Some(dtype) => to_dtype(sample, dtype)
            .map_err(|e| unprocessable(format!("cannot convert the sample to {dtype:?}: {e}")))?,
        None => sample,
    };
    if !non_finite_inputs {
        check_finite(&sample, "the sample").map_err(|e| {
            let text = e.to_string();
            unprocessable(match model.dtype {
                Some(dtype) => format!("{text} (as {dtype:?}, the model's dtype)"),
                None => text,
            })
        })?;
    }
    Ok(sample)
}
