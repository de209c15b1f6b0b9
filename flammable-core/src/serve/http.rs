//! The HTTP side: routes, and `POST /predict`'s path from body to queue. Everything a request
//! can be refused for is decided here, before it waits for the model.

use super::shared::{Answer, Control, Failure, Job, Shared};
use crate::task::payload::{to_dtype, Payload};
use crate::task::serve::Decode;
use crate::web::security::{self, Access};
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use candle_core::Tensor;
use serde::Deserialize;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Sender, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// What every handler shares.
pub struct Http {
    /// The state the worker shares.
    pub shared: Arc<Shared>,
    /// The queue to the worker.
    pub jobs: SyncSender<Job>,
    /// Orders to the worker.
    pub control: Sender<Control>,
    /// The task's request reader.
    pub decode: Decode,
}

/// Paths that answer without a token: probes of whether the server is up.
pub const OPEN_PATHS: &[&str] = &["/health", "/ready"];

/// Every route of the server, behind the access guard.
pub fn router(http: Arc<Http>, access: Access) -> Router {
    Router::new()
        .route("/predict", post(predict))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/info", get(info))
        .route("/metrics", get(metrics))
        .route("/reload", post(reload))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(access),
            security::guard,
        ))
        .with_state(http)
}

/// A refusal as JSON: `{"error": …, "id": …}`.
fn failure(f: &Failure) -> Response {
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = serde_json::json!({ "error": f.message });
    if let Some(id) = &f.id {
        body["id"] = serde_json::Value::String(id.clone());
    }
    let mut response = (status, axum::Json(body)).into_response();
    if f.status == 503 {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn payload(p: Payload) -> Response {
    let kind = HeaderValue::from_str(&p.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    ([(header::CONTENT_TYPE, kind)], p.body).into_response()
}

/// `POST /predict`: the body → the task's `decode_request` → checks → the queue → the answer.
async fn predict(State(http): State<Arc<Http>>, request: Request) -> Response {
    let arrived = Instant::now();
    let answer = answer(&http, request, arrived).await;
    let status = match &answer {
        Ok(_) => 200,
        Err(f) => f.status,
    };
    let run = http.shared.model().info.run.clone();
    http.shared
        .metrics()
        .request(&run, status, arrived.elapsed().as_secs_f64());
    match answer {
        Ok(p) => payload(p),
        Err(f) => failure(&f),
    }
}

async fn answer(http: &Http, request: Request, arrived: Instant) -> Answer {
    let settings = &http.shared.settings;
    if http.shared.stopping.load(Ordering::Relaxed) {
        return Err(Failure::new(503, "the server is stopping"));
    }
    let limit = settings.max_body_bytes;
    let too_large = || {
        Failure::new(
            413,
            format!("the body is larger than {limit} bytes (--max-body-bytes)"),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = axum::body::to_bytes(request.into_body(), limit as usize)
        .await
        .map_err(|_| too_large())?;
    let sample = decode(http, &body, &content_type)?;
    let sample = check(http, sample)?;
    let (reply, answer) = oneshot::channel();
    http.shared.queued.fetch_add(1, Ordering::Relaxed);
    let job = Job {
        sample,
        arrived,
        reply,
    };
    if let Err(e) = http.jobs.try_send(job) {
        http.shared.queued.fetch_sub(1, Ordering::Relaxed);
        return Err(match e {
            TrySendError::Full(_) => Failure::new(
                503,
                format!(
                    "the server is at capacity ({} requests queued, --max-queue): retry later",
                    settings.max_queue
                ),
            ),
            TrySendError::Disconnected(_) => Failure::new(503, "the server is stopping"),
        });
    }
    let budget = Duration::from_millis(settings.timeout_ms).saturating_sub(arrived.elapsed());
    match tokio::time::timeout(budget, answer).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => Err(Failure::new(
            503,
            "the server stopped before computing this request",
        )),
        // Dropping `answer` closes the reply: the worker skips the request.
        Err(_) => Err(Failure::new(
            504,
            format!("no answer within {} ms (--timeout-ms)", settings.timeout_ms),
        )),
    }
}

/// The task's `decode_request`; its errors are the client's (400), its panics the task's.
fn decode(http: &Http, body: &[u8], content_type: &str) -> Result<Tensor, Failure> {
    let decode = http.decode;
    match std::panic::catch_unwind(|| decode(body, content_type)) {
        Ok(Ok(sample)) => Ok(sample),
        Ok(Err(e)) => Err(Failure::new(400, format!("cannot read the request: {e}"))),
        Err(_) => Err(http
            .shared
            .internal_error("decode_request panicked on a request")),
    }
}

/// Refuses a sample the model can never take (422), and converts it to the model's dtype.
fn check(http: &Http, sample: Tensor) -> Result<Tensor, Failure> {
    let model = http.shared.model();
    if let Some(shape) = &model.info.sample_shape {
        if sample.dims() != shape.as_slice() {
            // Several samples in one request: say how to send them, since the server batches.
            let several = sample.dims().get(1..) == Some(shape.as_slice());
            return Err(Failure::new(
                422,
                format!(
                    "a sample of this model has shape {shape:?}; this one has shape {:?}{}",
                    sample.dims(),
                    if several {
                        ": send one sample per request (concurrent requests are batched)"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    match model.dtype {
        Some(dtype) => to_dtype(sample, dtype)
            .map_err(|e| Failure::new(422, format!("cannot convert the sample to {dtype:?}: {e}"))),
        None => Ok(sample),
    }
}

async fn health() -> Response {
    axum::Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// `GET /ready`: 200 once the warm-up batch has gone through the model, 503 before.
async fn ready(State(http): State<Arc<Http>>) -> Response {
    if http.shared.ready.load(Ordering::Relaxed) {
        axum::Json(serde_json::json!({ "ready": true })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "ready": false, "why": "warming up" })),
        )
            .into_response()
    }
}

/// `GET /info`: the model served, where it comes from, and how requests are batched.
async fn info(State(http): State<Arc<Http>>) -> Response {
    let s = &http.shared.settings;
    axum::Json(serde_json::json!({
        "serve_run": http.shared.serve_run,
        "model": &http.shared.model().info,
        "ready": http.shared.ready.load(Ordering::Relaxed),
        "batching": {
            "max_batch_size": s.max_batch_size,
            "max_wait_ms": s.max_wait_ms,
            "max_queue": s.max_queue,
            "timeout_ms": s.timeout_ms,
            "max_body_bytes": s.max_body_bytes,
        },
    }))
    .into_response()
}

/// `GET /metrics`: Prometheus' text format.
async fn metrics(State(http): State<Arc<Http>>) -> Response {
    let text = http.shared.metrics().render(
        http.shared.queued.load(Ordering::Relaxed),
        http.shared.ready.load(Ordering::Relaxed),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// What `POST /reload` may name: a train run of this experiment in the store, and one of
/// its checkpoints (never a file).
#[derive(Deserialize)]
struct ReloadParams {
    run: Option<String>,
    checkpoint: Option<String>,
}

/// `POST /reload?run=RUN&checkpoint=NAME`: loads the model (by default the served run's
/// checkpoint again, e.g. a newer `latest`) and swaps it in between two batches; no request
/// is dropped.
async fn reload(State(http): State<Arc<Http>>, params: Query<ReloadParams>) -> Response {
    let (reply, outcome) = oneshot::channel();
    let order = Control::Reload {
        run: params.0.run,
        checkpoint: params.0.checkpoint,
        reply: Some(reply),
    };
    if http.control.send(order).is_err() {
        return failure(&Failure::new(503, "the server is stopping"));
    }
    match outcome.await {
        Ok(Ok(info)) => axum::Json(serde_json::json!({ "model": info })).into_response(),
        Ok(Err(f)) => failure(&f),
        Err(_) => failure(&Failure::new(503, "the server is stopping")),
    }
}

async fn not_found(request: Request<Body>) -> Response {
    failure(&Failure::new(
        404,
        format!(
            "no route {} {}: the server has POST /predict, GET /health, /ready, /info, /metrics and POST /reload",
            request.method(),
            request.uri().path()
        ),
    ))
}
