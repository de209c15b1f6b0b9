//! The HTTP side: routes, and `POST /predict`'s path from body to queue. Everything a request
//! can be refused for is decided here, before it waits for the model; the task's reader runs
//! where the request arrived for a small body, and on the blocking pool for a large one, so
//! that slow decodes never hold up `/health` or `/ready`.

use super::body::{self, Limits};
use super::budget::Budget;
use super::check::check;
use super::inline;
use super::oip;
use super::reload::MAX_PENDING_RELOADS;
use super::shared::{
    Answer, Answered, Current, InFlight, Job, Reload, Reloaded, Reply, Shared, Target, Want,
};
use crate::task::serve::Decode;
use crate::web::security::{self, Access};
use crate::web::AppError;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use candle_core::Tensor;
use serde::Deserialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Sender, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The header that names the train run whose model answered (or refused) a prediction.
pub const RUN_HEADER: HeaderName = HeaderName::from_static("x-flammable-run");

/// What every handler shares.
pub struct Http {
    /// The state the model threads share.
    pub shared: Arc<Shared>,
    /// The queue to the model threads.
    pub jobs: SyncSender<Job>,
    /// Reload orders.
    pub reloads: Sender<Reload>,
    /// The task's request reader.
    pub decode: Decode,
    /// The request bytes the server may still hold (`--max-inflight-bytes`).
    pub budget: Arc<Budget>,
}

impl Http {
    /// The limits on a request's body.
    pub fn limits(&self) -> Limits {
        let s = &self.shared.settings;
        Limits {
            max_body_bytes: s.max_body_bytes,
            max_inflight_bytes: s.max_inflight_bytes,
            read_timeout_ms: s.read_timeout_ms,
        }
    }
}

/// Paths that answer without a token: probes of whether the server is up.
pub const OPEN_PATHS: &[&str] = &["/health", "/ready", "/v2/health/live", "/v2/health/ready"];

/// Every route of the server, behind the access guard. The bodies of the routes that take
/// samples (`/predict`, the protocol's `infer`) are bounded by `--max-body-bytes` (413) and
/// `--read-timeout-ms` between two of their bytes (408), as [`body::read`] reads them, and
/// their answers are counted in `/metrics` (see [`counted`]).
pub fn router(http: Arc<Http>, access: Access) -> Router {
    let token = access.token.is_some();
    Router::new()
        .route("/predict", post(predict))
        .route("/", get(index))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/info", get(info))
        .route("/metrics", get(metrics))
        .route("/reload", post(reload))
        .route(
            "/openapi.json",
            get(move |State(http): State<Arc<Http>>| async move {
                super::openapi::serve_document(&http, token)
            }),
        )
        .route("/v2", get(oip::server_metadata))
        .route("/v2/health/live", get(oip::live))
        .route("/v2/health/ready", get(oip::ready))
        .route("/v2/models/{name}", get(oip::model_metadata))
        .route("/v2/models/{name}/ready", get(oip::model_ready))
        .route("/v2/models/{name}/infer", post(oip::infer))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(oip::model_metadata),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(oip::model_ready),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(oip::infer),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(security::GuardLayer::new(access))
        .with_state(http)
}

/// Ends the response of a request that brought a sample (`/predict`, the protocol's `infer`),
/// which arrived at `arrived`: names the run whose model answered (`run`, else the one served
/// now) in [`RUN_HEADER`] unless the handler did, and counts the answer in `/metrics` under
/// that run. Done in the handlers rather than by a middleware around them, whose boxed future
/// and second look at the headers cost more than the counting.
pub fn counted(
    http: &Http,
    arrived: Instant,
    mut response: Response,
    run: Option<&str>,
) -> Response {
    let status = response.status().as_u16();
    let seconds = arrived.elapsed().as_secs_f64();
    let metrics = &http.shared.metrics;
    if let Some(named) = response.headers().get(RUN_HEADER) {
        metrics.request(named.to_str().unwrap_or(""), status, seconds);
        return response;
    }
    let served;
    let run = match run {
        Some(run) => run,
        None => {
            served = http.shared.model();
            served.info.run.as_str()
        }
    };
    if let Ok(v) = HeaderValue::from_str(run) {
        response.headers_mut().insert(RUN_HEADER, v);
    }
    metrics.request(run, status, seconds);
    response
}

/// `POST /predict`: the body → the task's `decode_request` → checks → the queue → the answer,
/// all within `--timeout-ms`.
async fn predict(State(http): State<Arc<Http>>, request: Request) -> Response {
    let arrived = Instant::now();
    // The request taken whole and split, rather than its headers extracted: that extractor
    // copies them.
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let _counted = InFlight::new(&http.shared.in_flight);
    let timeout = Duration::from_millis(http.shared.settings.timeout_ms);
    let outcome = match tokio::time::timeout(timeout, answer(&http, &headers, body, arrived)).await
    {
        Ok(outcome) => outcome,
        // Dropping the answer's future closes its reply: the model skips the request.
        Err(_) => Err((
            AppError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "no answer within {} ms (--timeout-ms)",
                    http.shared.settings.timeout_ms
                ),
            ),
            http.shared.model().info.run.clone(),
        )),
    };
    let (response, run) = match outcome {
        Ok(Answered {
            reply: Reply::Payload(payload),
            run,
        }) => {
            let kind = HeaderValue::from_str(&payload.content_type)
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            let mut response = Response::new(Body::from(payload.body));
            // Room for the headers it will have (the type, the run, the safety headers, the
            // length) at once, rather than grown along the way.
            response.headers_mut().reserve(8);
            response.headers_mut().insert(header::CONTENT_TYPE, kind);
            (response, run)
        }
        Ok(Answered { run, .. }) => (
            http.shared
                .internal_error("the model answered a tensor to /predict")
                .into_response(),
            run,
        ),
        Err((e, run)) => (e.into_response(), run),
    };
    counted(&http, arrived, response, Some(&run))
}

/// A refusal of the request, labelled with the run served when it was refused.
type Refusal = (AppError, String);

async fn answer(
    http: &Http,
    headers: &HeaderMap,
    body: Body,
    arrived: Instant,
) -> Result<Answered, Refusal> {
    let shared = &http.shared;
    let refuse = |e: AppError| (e, shared.model().info.run.clone());
    if shared.is_stopping() {
        return Err(refuse(AppError::unavailable("the server is stopping")));
    }
    body::uncompressed(headers).map_err(refuse)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let declared = body::declared_length(headers);
    let held = body::read(body, declared, &http.budget, &http.limits())
        .await
        .map_err(refuse)?;
    let (bytes, _share) = (held.bytes, held.share);
    let (decode, for_decode) = (http.decode, shared.clone());
    let (sample, checked) = read_body(bytes.len(), shared, move || {
        let sample = decode_request(decode, &bytes, &content_type, &for_decode)?;
        let model = for_decode.model();
        let sample = check(sample, &model, for_decode.non_finite_inputs)?;
        Ok::<_, AppError>((sample, model))
    })
    .await
    .map_err(refuse)?;
    if let Some(model) = inline::model_for(shared, &checked, 1) {
        let run = checked.info.run.clone();
        return match inline::compute(shared, model, &run, vec![sample], Want::Payload) {
            Ok(mut replies) => match replies.pop() {
                Some(reply) => Ok(Answered { reply, run }),
                None => Err((shared.internal_error("no answer was computed"), run)),
            },
            Err(e) => Err((e, run)),
        };
    }
    let answer = enqueue(http, sample, checked, arrived, Want::Payload, None).map_err(refuse)?;
    match wait_for(shared, answer).await {
        Ok(answer) => answer,
        Err(_) => Err(refuse(AppError::unavailable(
            "the server stopped before computing this request",
        ))),
    }
}

/// `answer`, when it comes. While this request is the only one in flight (one client, asking
/// again as soon as answered), it is looked for first for up to [`LOOK_FOR_ANSWER`]: a task
/// that waits must be woken by the model's thread, which on this project's machines took
/// about a quarter of a lone request's time (`bench/results/serve_load.md`). Under more load
/// the thread has other requests to read, and the task waits at once.
pub async fn wait_for<T>(
    shared: &Shared,
    mut answer: oneshot::Receiver<T>,
) -> Result<T, oneshot::error::RecvError> {
    if shared.alone() {
        let started = Instant::now();
        while started.elapsed() < LOOK_FOR_ANSWER {
            match answer.try_recv() {
                Ok(answered) => return Ok(answered),
                Err(oneshot::error::TryRecvError::Empty) => std::hint::spin_loop(),
                Err(oneshot::error::TryRecvError::Closed) => break,
            }
        }
    }
    answer.await
}

/// See [`wait_for`]: about what a small model takes to compute one sample and answer it.
pub const LOOK_FOR_ANSWER: Duration = Duration::from_micros(100);

/// A body is read (decoded, checked) on the thread it arrived on when it is at most this
/// large and the task's reader has proven quick, [`QUICK_READS`] readings each within
/// [`QUICK_READ`] (see `super::streak`); otherwise on the blocking pool, so that a slow reader
/// never holds up the other requests (`/health` answers while every reader sleeps). The hop
/// to the pool and back costs two thread wake-ups, which were most of a small request's time
/// (`bench/results/serve_load.md`); reading a few kilobytes of JSON costs microseconds.
pub const READ_INLINE_BYTES: usize = 8 << 10;
/// See [`READ_INLINE_BYTES`].
pub const QUICK_READS: usize = 32;
/// See [`READ_INLINE_BYTES`].
pub const QUICK_READ: Duration = Duration::from_micros(100);

/// Runs `read` (the reading of a body of `size` bytes) where the request arrived, or on the
/// blocking pool (see [`READ_INLINE_BYTES`]); a panic in it is a 500. A reader that turns
/// slow sends the next ones to the pool within a few readings, until [`QUICK_READS`] were
/// quick again (see `super::streak`).
pub async fn read_body<T: Send + 'static>(
    size: usize,
    shared: &Shared,
    read: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    let stopped = || shared.internal_error("the request's reader stopped");
    let timed = move || {
        let started = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(read));
        (result, started.elapsed())
    };
    let inline = size <= READ_INLINE_BYTES && shared.quick_reads.proven();
    let (result, took) = if inline {
        timed()
    } else {
        tokio::task::spawn_blocking(timed)
            .await
            .map_err(|_| stopped())?
    };
    shared.quick_reads.record(took <= QUICK_READ);
    result.unwrap_or_else(|_| Err(stopped()))
}

/// Queues `sample`, checked against `checked`, for the model; its answer comes through the
/// receiver. 503 when the queue is full (`--max-queue`) or the server stops. `given_up`: see
/// [`Job::given_up`].
pub fn enqueue(
    http: &Http,
    sample: Tensor,
    checked: Arc<Current>,
    arrived: Instant,
    want: Want,
    given_up: Option<Arc<AtomicBool>>,
) -> Result<oneshot::Receiver<Answer>, AppError> {
    let shared = &http.shared;
    let (reply, answer) = oneshot::channel();
    shared.queued.fetch_add(1, Ordering::Relaxed);
    let job = Job {
        sample,
        checked,
        arrived,
        want,
        reply,
        given_up,
    };
    if let Err(e) = http.jobs.try_send(job) {
        shared.queued.fetch_sub(1, Ordering::Relaxed);
        return Err(match e {
            TrySendError::Full(_) => at_capacity(shared, shared.settings.max_queue as usize),
            TrySendError::Disconnected(_) => AppError::unavailable("the server is stopping"),
        });
    }
    Ok(answer)
}

/// The 503 of a request the queue cannot take, `queued` requests in it.
pub fn at_capacity(shared: &Shared, queued: usize) -> AppError {
    AppError::unavailable(format!(
        "the server is at capacity ({queued} requests queued, --max-queue {}): retry later",
        shared.settings.max_queue
    ))
}

/// The task's `decode_request`; its errors are the client's (400), its panics the task's.
fn decode_request(
    decode: Decode,
    body: &[u8],
    content_type: &str,
    shared: &Shared,
) -> Result<Tensor, AppError> {
    match std::panic::catch_unwind(|| decode(body, content_type)) {
        Ok(Ok(sample)) => Ok(sample),
        Ok(Err(e)) => Err(AppError::bad(format!("cannot read the request: {e}"))),
        Err(_) => Err(shared.internal_error("decode_request panicked on a request")),
    }
}

/// What each endpoint does, as `GET /` lists them.
pub(super) const ENDPOINTS: &[(&str, &str)] = &[
    ("POST /predict", "one sample in the body (the task's request format): its answer"),
    ("GET /info", "the model served, its run, checkpoint, hyperparameters and sample shape, and the settings"),
    ("GET /health", "200 while the server is up (no token needed)"),
    ("GET /ready", "200 once the model has computed its warm-up batch, else 503 (no token needed)"),
    ("GET /metrics", "Prometheus' text format"),
    ("GET /openapi.json", "these endpoints as an OpenAPI 3.1 document"),
    ("POST /reload", "loads ?run=RUN&checkpoint=NAME (by default the served run's checkpoint again) and serves it"),
    ("GET /v2", "the Open Inference Protocol (v2): the server's metadata; /v2/health/live, /v2/health/ready (no token needed)"),
    ("GET /v2/models/{name}", "the model's inputs and outputs (name: the experiment; versions: the run); …/ready"),
    ("POST /v2/models/{name}/infer", "a batch of samples as the Open Inference Protocol's tensors (JSON or binary data): the model's outputs"),
];

/// `GET /`: what this server serves and its endpoints, so that the address it prints (with
/// its token, beyond loopback) opens on something.
async fn index(State(http): State<Arc<Http>>) -> Json<serde_json::Value> {
    let model = http.shared.model();
    let endpoints: serde_json::Map<String, serde_json::Value> = ENDPOINTS
        .iter()
        .map(|(route, what)| (route.to_string(), serde_json::Value::from(*what)))
        .collect();
    Json(serde_json::json!({
        "server": "flammable serve",
        "serve_run": http.shared.serve_run,
        "run": model.info.run,
        "experiment": model.info.experiment,
        "checkpoint": model.info.checkpoint,
        "ready": http.shared.ready.load(Ordering::Relaxed),
        "endpoints": endpoints,
    }))
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// `GET /ready`: 200 once the warm-up batch has gone through the model, 503 before.
async fn ready(State(http): State<Arc<Http>>) -> (StatusCode, Json<serde_json::Value>) {
    if http.shared.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, Json(serde_json::json!({ "ready": true })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "ready": false, "why": "warming up" })),
        )
    }
}

/// `GET /info`: the model served, where it comes from, how requests are batched, and the
/// limits.
async fn info(State(http): State<Arc<Http>>) -> Json<serde_json::Value> {
    let s = &http.shared.settings;
    Json(serde_json::json!({
        "serve_run": http.shared.serve_run,
        "model": &http.shared.model().info,
        "ready": http.shared.ready.load(Ordering::Relaxed),
        "batching": {
            "max_batch_size": s.max_batch_size,
            "max_wait_ms": s.max_wait_ms,
            "max_queue": s.max_queue,
            "inline": s.inline,
            "inline_possible": inline::possible(&http.shared, &http.shared.model()),
            "timeout_ms": s.timeout_ms,
            "max_body_bytes": s.max_body_bytes,
        },
        "limits": {
            "max_inflight_bytes": s.max_inflight_bytes,
            "read_timeout_ms": s.read_timeout_ms,
            "max_connections": s.max_connections,
            "shutdown_timeout_ms": s.shutdown_timeout_ms,
            "non_finite_inputs": http.shared.non_finite_inputs,
        },
    }))
}

/// `GET /metrics`: Prometheus' (OpenMetrics) text format.
async fn metrics(State(http): State<Arc<Http>>) -> impl IntoResponse {
    let text = http.shared.metrics.render(
        http.shared.queued.load(Ordering::Relaxed),
        usize::try_from(http.budget.held()).unwrap_or(usize::MAX),
        http.shared.ready.load(Ordering::Relaxed),
    );
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}

/// What `POST /reload` may name: a train run of this experiment in the store, and one of
/// its checkpoints (never a file).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReloadParams {
    run: Option<String>,
    checkpoint: Option<String>,
}

/// `POST /reload?run=RUN&checkpoint=NAME`: loads the model (by default the served run's
/// `--checkpoint` again, e.g. a newer `latest`) on a thread of its own and swaps it in once
/// warmed up; no request is dropped.
async fn reload(
    State(http): State<Arc<Http>>,
    headers: HeaderMap,
    params: Result<Query<ReloadParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, AppError> {
    let Query(params) = params.map_err(|e| AppError::bad(e.body_text()))?;
    // A body (`{"run": …}`) would be ignored, and the served run reloaded instead of the one
    // it names.
    if body::declared_length(&headers).is_some_and(|n| n > 0)
        || headers.contains_key(header::TRANSFER_ENCODING)
    {
        return Err(AppError::bad(
            "POST /reload reads no body: name the run and checkpoint in its query (/reload?run=RUN&checkpoint=NAME)",
        ));
    }
    let target = Target {
        run: params.run,
        checkpoint: params.checkpoint,
    };
    let outcome = order_reload(&http.shared, &http.reloads, target, true)
        .ok_or_else(|| AppError::unavailable("the server is stopping"))??;
    let info = outcome
        .await
        .map_err(|_| AppError::unavailable("the server is stopping"))??;
    Ok(Json(serde_json::json!({ "model": info })))
}

/// Queues a reload of `target`; `None` when the server is stopping, 503 when too many wait.
/// With `reply`, the outcome comes through the receiver returned.
pub fn order_reload(
    shared: &Shared,
    reloads: &Sender<Reload>,
    target: Target,
    reply: bool,
) -> Option<Result<oneshot::Receiver<Reloaded>, AppError>> {
    if shared.is_stopping() {
        return None;
    }
    if shared.reloads_pending.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING_RELOADS {
        shared.reloads_pending.fetch_sub(1, Ordering::Relaxed);
        return Some(Err(AppError::unavailable(format!(
            "{MAX_PENDING_RELOADS} reloads are waiting already: retry later"
        ))));
    }
    let (tx, rx) = oneshot::channel();
    let order = Reload {
        target,
        reply: reply.then_some(tx),
    };
    if reloads.send(order).is_err() {
        shared.reloads_pending.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    Some(Ok(rx))
}

/// The routes, as the refusals of a request that names none list them: `GET /` and
/// [`ENDPOINTS`].
fn routes() -> String {
    let mut all = vec!["GET /"];
    all.extend(ENDPOINTS.iter().map(|(route, _)| *route));
    all.join(", ")
}

/// The one method a route of [`router`] takes: `POST` for the routes that take a body
/// (`/predict`, `/reload`, the protocol's `…/infer`), `GET` for every other.
fn method_of(path: &str) -> &'static str {
    let posted = path == "/predict"
        || path == "/reload"
        || (path.starts_with("/v2/models/") && path.ends_with("/infer"));
    if posted {
        "POST"
    } else {
        "GET"
    }
}

/// A route asked with another method (`GET /predict`): 405 with the method it takes (also in
/// the `Allow` header, which the router sets).
async fn method_not_allowed(request: Request<Body>) -> AppError {
    let path = request.uri().path();
    AppError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} {path} is not allowed: use {} {path}",
            request.method(),
            method_of(path),
        ),
    )
}

async fn not_found(request: Request<Body>) -> AppError {
    AppError::not_found(format!(
        "no route {} {}: the server has {}",
        request.method(),
        request.uri().path(),
        routes()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: crate::serve::ServeArgs,
    }

    fn shared() -> Shared {
        let args = Cli::try_parse_from(["serve"]).map(|c| c.args);
        Shared::new(args.unwrap_or_else(|e| panic!("{e}")), "s".into(), false)
    }

    #[test]
    fn a_request_is_in_flight_while_its_guard_lives() {
        let shared = shared();
        let first = InFlight::new(&shared.in_flight);
        {
            let _second = InFlight::new(&shared.in_flight);
            assert_eq!(shared.in_flight.load(Ordering::Relaxed), 2);
        }
        assert_eq!(shared.in_flight.load(Ordering::Relaxed), 1);
        drop(first);
        assert_eq!(shared.in_flight.load(Ordering::Relaxed), 0);
    }

    /// Whether `read_body` ran the reading of `size` bytes, taking `takes`, on this thread.
    async fn here(shared: &Shared, size: usize, takes: Duration) -> bool {
        let caller = std::thread::current().id();
        read_body(size, shared, move || {
            std::thread::sleep(takes);
            Ok(std::thread::current().id() == caller)
        })
        .await
        .unwrap_or_else(|e| panic!("{}", e.message))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_reader_proven_quick_reads_small_bodies_where_they_arrive() {
        let s = shared();
        // At first, and for large bodies always, on the pool.
        for _ in 0..QUICK_READS {
            assert!(!here(&s, 100, Duration::ZERO).await);
        }
        assert!(here(&s, 100, Duration::ZERO).await);
        assert!(!here(&s, READ_INLINE_BYTES + 1, Duration::ZERO).await);
        // A slow reading right after they were proven quick (here, on this thread) sends the
        // next ones to the pool again; so do slow ones for good after a long quick run.
        assert!(here(&s, 100, QUICK_READ * 3).await);
        assert!(!here(&s, 100, Duration::ZERO).await);
        for _ in 0..super::super::streak::HELD * QUICK_READS {
            here(&s, 100, Duration::ZERO).await;
        }
        for slow in 1..=4 {
            assert!(here(&s, 100, QUICK_READ * 3).await, "{slow}");
        }
        assert!(!here(&s, 100, Duration::ZERO).await);
    }
}
