//! Reading a request's body within the server's byte budget: every byte held is counted
//! against `--max-inflight-bytes` as it arrives, and a body that would pass the budget is
//! refused with 503 before it is kept. Its size (413) and idle time (408) are bounded by the
//! tower-http layers in front of the handler; their errors are named here.

use crate::web::AppError;
use axum::body::Body;
use axum::http::StatusCode;
use http_body_util::BodyExt;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A body read whole, and its bytes' share of the budget (given back when dropped).
pub struct Held {
    /// The body.
    pub bytes: Vec<u8>,
    /// The budget it holds.
    pub permit: Option<OwnedSemaphorePermit>,
}

/// What the limits of the request's body are, for messages.
pub struct Limits {
    /// `--max-body-bytes`.
    pub max_body_bytes: u64,
    /// `--max-inflight-bytes`.
    pub max_inflight_bytes: u64,
    /// `--read-timeout-ms`.
    pub read_timeout_ms: u64,
}

/// Reads `body` (whose declared length is `declared`) within `budget`.
pub async fn read(
    body: Body,
    declared: Option<u64>,
    budget: &Arc<Semaphore>,
    limits: &Limits,
) -> Result<Held, AppError> {
    let capacity = declared.unwrap_or(0).min(limits.max_body_bytes);
    let mut held = Held {
        bytes: Vec::with_capacity(usize::try_from(capacity).unwrap_or(0)),
        permit: None,
    };
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| refusal(e, limits))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let more = u32::try_from(data.len())
            .ok()
            .and_then(|n| budget.clone().try_acquire_many_owned(n).ok())
            .ok_or_else(|| {
                AppError::unavailable(format!(
                    "the server holds as many request bytes as it may ({} bytes, --max-inflight-bytes): retry later",
                    limits.max_inflight_bytes
                ))
            })?;
        match &mut held.permit {
            Some(permit) => permit.merge(more),
            None => held.permit = Some(more),
        }
        held.bytes.extend_from_slice(&data);
    }
    Ok(held)
}

/// The answer for a body that could not be read: too large (413), stalled (408), or cut.
fn refusal(e: axum::Error, limits: &Limits) -> AppError {
    let inner = e.into_inner();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(inner.as_ref());
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return too_large(limits.max_body_bytes);
        }
        if c.is::<tower_http::timeout::TimeoutError>() {
            return AppError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "no byte of the body came for {} ms (--read-timeout-ms)",
                    limits.read_timeout_ms
                ),
            );
        }
        cause = c.source();
    }
    AppError::bad(format!("cannot read the body: {inner}"))
}

/// 415 for a body sent compressed (`Content-Encoding` other than `identity`): the server
/// reads bodies as sent.
pub fn uncompressed(headers: &axum::http::HeaderMap) -> Result<(), AppError> {
    match headers.get(axum::http::header::CONTENT_ENCODING) {
        None => Ok(()),
        Some(v) if v.to_str().is_ok_and(|v| v.eq_ignore_ascii_case("identity")) => Ok(()),
        Some(v) => Err(AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Encoding {} is not taken: send the request uncompressed",
                String::from_utf8_lossy(v.as_bytes()).escape_debug()
            ),
        )),
    }
}

/// 413, with the limit.
pub fn too_large(max_body_bytes: u64) -> AppError {
    AppError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is larger than {max_body_bytes} bytes (--max-body-bytes)"),
    )
}
