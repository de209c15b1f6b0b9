//! Reading a request's body within the server's byte budget: every byte held is counted
//! against `--max-inflight-bytes` as it arrives, and a body that would pass the budget is
//! refused with 503 before it is kept. Its size is bounded by `--max-body-bytes` (413, for a
//! declared length before a byte is read) and the wait for each of its frames by
//! `--read-timeout-ms` (408). Done here rather than by tower-http's layers in front of the
//! handler: those start a timer for every frame, even one already arrived, and their layers
//! were a tenth of a small request's time (`bench/results/serve_load.md`).

use super::budget::{Budget, Share};
use crate::web::AppError;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::{Body as _, Frame};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

/// A body read whole, and its bytes' share of the budget (given back when dropped).
pub struct Held {
    /// The body.
    pub bytes: Vec<u8>,
    /// Its share of the budget.
    pub share: Share,
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

/// The most of a declared length reserved before its bytes arrive.
const RESERVED_AHEAD: u64 = 64 << 10;

/// Reads `body` (whose declared length is `declared`) within `budget` and `limits`.
pub async fn read(
    body: Body,
    declared: Option<u64>,
    budget: &Arc<Budget>,
    limits: &Limits,
) -> Result<Held, AppError> {
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        return Err(too_large(limits.max_body_bytes));
    }
    // What is declared is reserved only up to a bound: memory is held as bytes arrive, not
    // for a length a client announces and never sends.
    let capacity = declared.unwrap_or(0).min(RESERVED_AHEAD);
    let mut held = Held {
        bytes: Vec::with_capacity(usize::try_from(capacity).unwrap_or(0)),
        share: budget.share(),
    };
    let mut body = body;
    while let Some(frame) = next_frame(&mut body, limits).await? {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if held.bytes.len() as u64 + data.len() as u64 > limits.max_body_bytes {
            return Err(too_large(limits.max_body_bytes));
        }
        if !held.share.try_add(data.len() as u64) {
            return Err(AppError::unavailable(format!(
                "the server holds as many request bytes as it may ({} bytes, --max-inflight-bytes): retry later",
                limits.max_inflight_bytes
            )));
        }
        held.bytes.extend_from_slice(&data);
    }
    Ok(held)
}

/// The body's next frame (`None` at its end); 408 when none comes within `--read-timeout-ms`.
/// A frame that has arrived already (a small body comes with the request's head) is taken
/// without starting a timer.
async fn next_frame(body: &mut Body, limits: &Limits) -> Result<Option<Frame<Bytes>>, AppError> {
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
        None => tokio::time::timeout(Duration::from_millis(limits.read_timeout_ms), body.frame())
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

/// The body's length as its `Content-Length` header declares it, if one does (and is a
/// number).
pub fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// 415 for a body sent compressed (a `Content-Encoding` other than `identity`, in any of the
/// headers that name one): the server reads bodies as sent.
pub fn uncompressed(headers: &axum::http::HeaderMap) -> Result<(), AppError> {
    let encoded = headers
        .get_all(axum::http::header::CONTENT_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .find(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case(b"identity"));
    match encoded {
        None => Ok(()),
        Some(coding) => Err(AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Encoding {} is not taken: send the request uncompressed",
                String::from_utf8_lossy(coding).escape_debug()
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{header::CONTENT_ENCODING, HeaderMap, HeaderValue};

    fn encodings(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(CONTENT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_body_compressed_in_any_content_encoding_header_is_refused() {
        for ok in [
            &[][..],
            &["identity"],
            &["IDENTITY"],
            &["identity", " identity "],
        ] {
            assert!(uncompressed(&encodings(ok)).is_ok(), "{ok:?}");
        }
        for refused in [
            &["gzip"][..],
            &["identity", "gzip"],
            &["identity, br"],
            &["GZIP"],
        ] {
            let e = uncompressed(&encodings(refused)).unwrap_err();
            assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{refused:?}");
        }
    }
}
