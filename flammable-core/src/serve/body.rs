//! Reading a request's body within the server's byte budget: every byte held is counted
//! against `--max-inflight-bytes` as it arrives, and a body that would pass the budget is
//! refused with 503 before it is kept. Its size is bounded by `--max-body-bytes` (413, for a
//! declared length before a byte is read) and the wait for each of its frames by
//! `--read-timeout-ms` (408). Done here rather than by tower-http's layers in front of the
//! handler: those start a timer for every frame, even one already arrived, and their layers
//! were a tenth of a small request's time (`bench/results/serve_load.md`).

use crate::web::AppError;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::{Body as _, Frame};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
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

/// Reads `body` (whose declared length is `declared`) within `budget` and `limits`.
pub async fn read(
    body: Body,
    declared: Option<u64>,
    budget: &Arc<Semaphore>,
    limits: &Limits,
) -> Result<Held, AppError> {
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        return Err(too_large(limits.max_body_bytes));
    }
    let capacity = declared.unwrap_or(0);
    let mut held = Held {
        bytes: Vec::with_capacity(usize::try_from(capacity).unwrap_or(0)),
        permit: None,
    };
    let mut body = body;
    let idle = Duration::from_millis(limits.read_timeout_ms);
    while let Some(frame) = next_frame(&mut body, idle, limits).await? {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if held.bytes.len() as u64 + data.len() as u64 > limits.max_body_bytes {
            return Err(too_large(limits.max_body_bytes));
        }
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

/// The body's next frame (`None` at its end); 408 when none comes within `idle`. A frame that
/// has arrived already (a small body comes with the request's head) is taken without starting
/// a timer.
async fn next_frame(
    body: &mut Body,
    idle: Duration,
    limits: &Limits,
) -> Result<Option<Frame<Bytes>>, AppError> {
    let mut arrived = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(frame) = Pin::new(&mut *body).poll_frame(cx) {
            arrived = Some(frame);
        }
        Poll::Ready(())
    })
    .await;
    let frame = match arrived {
        Some(frame) => frame,
        None => tokio::time::timeout(idle, body.frame())
            .await
            .map_err(|_| {
                AppError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "no byte of the body came for {} ms (--read-timeout-ms)",
                        limits.read_timeout_ms
                    ),
                )
            })?,
    };
    frame
        .transpose()
        .map_err(|e| AppError::bad(format!("cannot read the body: {e}")))
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
