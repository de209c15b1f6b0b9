//! The Open Inference Protocol (v2, KServe's and Triton's HTTP/REST API) beside `/predict`:
//! `GET /v2`, `/v2/health/live`, `/v2/health/ready`, `GET /v2/models/{name}[/versions/{v}]`
//! (its metadata), `…/ready`, and `POST …/infer`. The model is named after the served run's
//! experiment, its version is the run's id. An inference request's input is split along its
//! first (batch) dimension into samples that queue with every other request, and their outputs
//! — the model's, before the task's `postprocess` — are put back together into one answer.
//! JSON data and the binary tensor extension both ways; errors keep the protocol's
//! `{"error": "…"}`.

pub mod tensor;

use super::check::check;
use super::http::{counted, enqueue, read_body, wait_for, Http, RUN_HEADER};
use super::inline;
use super::shared::{Answer, InFlight, Reply, Want};
use crate::web::AppError;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use candle_core::{DType, Tensor};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The header that says how many bytes of a body are its JSON, the rest binary tensor data.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// The one input the model takes, and its output.
pub const INPUT: &str = "input";
/// The output's name.
pub const OUTPUT: &str = "output";

/// `GET /v2`: the server's metadata.
pub async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "flammable",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"],
    }))
}

/// `GET /v2/health/live`.
pub async fn live() -> Json<Value> {
    Json(json!({ "live": true }))
}

/// `GET /v2/health/ready`: 200 once the model has computed its warm-up batch, else 503.
pub async fn ready(State(http): State<Arc<Http>>) -> Response {
    readiness(&http)
}

fn readiness(http: &Http) -> Response {
    let ready = http.shared.ready.load(Ordering::Relaxed);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": ready }))).into_response()
}

/// The path's model name and version (`/v2/models/{name}` or
/// `/v2/models/{name}/versions/{version}`).
#[derive(Deserialize)]
pub struct ModelPath {
    name: String,
    version: Option<String>,
}

/// The model the path names: the served one, named by its experiment (or its run's id),
/// its version (if named) its run's id; 404 otherwise.
fn named(http: &Http, path: &ModelPath) -> Result<Arc<super::shared::Current>, AppError> {
    let model = http.shared.model();
    let info = &model.info;
    if path.name != info.experiment && path.name != info.run {
        return Err(AppError::not_found(format!(
            "no model {:?}: this server serves {:?} (version {})",
            path.name, info.experiment, info.run
        )));
    }
    if let Some(v) = &path.version {
        if *v != info.run {
            return Err(AppError::not_found(format!(
                "model {:?} has no version {v:?}: the version served is {}",
                info.experiment, info.run
            )));
        }
    }
    Ok(model)
}

/// `GET /v2/models/{name}[/versions/{version}]`: the model's inputs and outputs, their
/// datatypes and shapes (the batch dimension -1).
pub async fn model_metadata(
    State(http): State<Arc<Http>>,
    path: Result<Path<ModelPath>, PathRejection>,
) -> Result<Json<Value>, AppError> {
    let model = named(&http, &model_path(path)?)?;
    let info = &model.info;
    let batched = |dims: Option<&[usize]>| -> Value {
        let mut shape = vec![-1i64];
        match dims {
            Some(d) => shape.extend(d.iter().map(|d| i64::try_from(*d).unwrap_or(i64::MAX))),
            // Any shape: one dimension more, of any size.
            None => shape.push(-1),
        }
        json!(shape)
    };
    let datatype = |name: &Option<String>| {
        name.as_deref()
            .and_then(|n| n.parse::<DType>().ok())
            .and_then(|d| tensor::datatype_of(d).or(Some("FP32")))
            .unwrap_or("FP32")
    };
    Ok(Json(json!({
        "name": info.experiment,
        "versions": [info.run],
        "platform": "flammable",
        "inputs": [{
            "name": INPUT,
            "datatype": datatype(&info.sample_dtype),
            "shape": batched(info.sample_shape.as_deref()),
        }],
        "outputs": [{
            "name": OUTPUT,
            "datatype": datatype(&info.output_dtype),
            "shape": batched(info.output_shape.as_deref()),
        }],
    })))
}

/// `GET /v2/models/{name}[/versions/{version}]/ready`.
pub async fn model_ready(
    State(http): State<Arc<Http>>,
    path: Result<Path<ModelPath>, PathRejection>,
) -> Result<Response, AppError> {
    named(&http, &model_path(path)?)?;
    Ok(readiness(&http))
}

/// The model's name (and version) in the path, or a 400 in the protocol's error shape (a
/// name that is not UTF-8 once decoded: axum's own answer is plain text).
fn model_path(path: Result<Path<ModelPath>, PathRejection>) -> Result<ModelPath, AppError> {
    path.map(|Path(p)| p)
        .map_err(|e| AppError::bad(e.body_text()))
}

/// An inference request's JSON.
#[derive(Deserialize)]
struct InferRequest {
    id: Option<String>,
    #[serde(default)]
    parameters: Map<String, Value>,
    inputs: Vec<RequestInput>,
    #[serde(default)]
    outputs: Vec<RequestOutput>,
}

#[derive(Deserialize)]
struct RequestInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Map<String, Value>,
    data: Option<Value>,
}

#[derive(Deserialize)]
struct RequestOutput {
    name: String,
    #[serde(default)]
    parameters: Map<String, Value>,
}

/// What a request asks, read and checked.
struct Parsed {
    id: Option<String>,
    /// Its samples, each checked against `checked` and in its dtype.
    samples: Vec<Tensor>,
    checked: Arc<super::shared::Current>,
    /// Whether the output goes back as binary data.
    binary: bool,
}

/// `POST /v2/models/{name}[/versions/{version}]/infer`, within `--timeout-ms`.
pub async fn infer(
    State(http): State<Arc<Http>>,
    path: Result<Path<ModelPath>, PathRejection>,
    request: Request,
) -> Response {
    let arrived = Instant::now();
    // Taken whole and split: the headers' extractor copies them.
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let path = match model_path(path) {
        Ok(path) => path,
        Err(e) => return counted(&http, arrived, e.into_response(), None),
    };
    let _counted = InFlight::new(&http.shared.in_flight);
    let timeout = Duration::from_millis(http.shared.settings.timeout_ms);
    let response =
        match tokio::time::timeout(timeout, answer(&http, &path, &headers, body, arrived)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => e.into_response(),
            // Dropping the answer's future closes its replies: the model skips the samples.
            Err(_) => AppError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "no answer within {} ms (--timeout-ms)",
                    http.shared.settings.timeout_ms
                ),
            )
            .into_response(),
        };
    counted(&http, arrived, response, None)
}

/// The model's output in `reply`; a response body (which only `/predict` asks for) is the
/// server's error.
fn output(http: &Http, reply: Reply) -> Result<Tensor, AppError> {
    match reply {
        Reply::Output(t) => Ok(t),
        Reply::Payload(_) => Err(http
            .shared
            .internal_error("the model answered a body to an inference request")),
    }
}

async fn answer(
    http: &Arc<Http>,
    path: &ModelPath,
    headers: &HeaderMap,
    body: Body,
    arrived: Instant,
) -> Result<Response, AppError> {
    if http.shared.is_stopping() {
        return Err(AppError::unavailable("the server is stopping"));
    }
    let model = named(http, path)?;
    super::body::uncompressed(headers)?;
    let declared = super::body::declared_length(headers);
    let json_length = match headers.get(HEADER_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    AppError::bad(format!("{HEADER_LENGTH} must be a number of bytes"))
                })?,
        ),
    };
    let held = super::body::read(body, declared, &http.budget, &http.limits()).await?;
    let (bytes, _share) = (held.bytes, held.share);
    let shared = http.shared.clone();
    let max_queue = usize::try_from(http.shared.settings.max_queue).unwrap_or(usize::MAX);
    let parsed = read_body(bytes.len(), &http.shared, move || {
        parse(
            &bytes,
            json_length,
            &model,
            shared.non_finite_inputs,
            max_queue,
        )
    })
    .await?;
    // Every row of one answer from one model: samples a model swapped out computed (a
    // reload while the request was queued) go again, to the model now served.
    let mut computed: Vec<Option<(Tensor, String)>> = vec![None; parsed.samples.len()];
    if let Some(model) = inline::model_for(&http.shared, &parsed.checked, parsed.samples.len()) {
        let run = parsed.checked.info.run.clone();
        let replies = inline::compute(
            &http.shared,
            model,
            &run,
            parsed.samples.clone(),
            Want::Output,
        )?;
        for (slot, reply) in computed.iter_mut().zip(replies) {
            *slot = Some((output(http, reply)?, run.clone()));
        }
    }
    for _ in 0..3 {
        let served = http.shared.model().info.run.clone();
        let again: Vec<usize> = (0..computed.len())
            .filter(|i| computed[*i].as_ref().is_none_or(|(_, run)| *run != served))
            .collect();
        if again.is_empty() {
            break;
        }
        // A batch that the queue cannot take whole is refused before any of it is queued:
        // samples queued and then given up would be computed for no one, and count as
        // dropped. (Other requests may fill the queue meanwhile: then a refusal midway still
        // drops the replies queued so far, and the model skips those.)
        let queued = http.shared.queued.load(Ordering::Relaxed);
        if again.len() > 1 && queued + again.len() > http.shared.settings.max_queue as usize {
            return Err(super::http::at_capacity(&http.shared, queued));
        }
        // Set when this request is answered without some of its samples (one was refused or
        // failed): their replies close, and the model skips them without counting them as
        // dropped by a client gone.
        let given_up = (again.len() > 1).then(|| Arc::new(AtomicBool::new(false)));
        let give_up = |e: AppError| {
            if let Some(g) = &given_up {
                g.store(true, Ordering::Relaxed);
            }
            e
        };
        let mut replies = Vec::with_capacity(again.len());
        for &i in &again {
            let sample = parsed.samples[i].clone();
            let queued = enqueue(
                http,
                sample,
                parsed.checked.clone(),
                arrived,
                Want::Output,
                given_up.clone(),
            );
            replies.push(queued.map_err(give_up)?);
        }
        for (&i, reply) in again.iter().zip(replies) {
            let answered: Answer = wait_for(&http.shared, reply).await.map_err(|_| {
                AppError::unavailable("the server stopped before computing this request")
            })?;
            let a = answered.map_err(|(e, _)| give_up(e))?;
            computed[i] = Some((output(http, a.reply).map_err(give_up)?, a.run));
        }
    }
    let run = computed
        .first()
        .and_then(|c| c.as_ref())
        .map(|(_, run)| run.clone())
        .unwrap_or_default();
    let mut outputs = Vec::with_capacity(computed.len());
    for c in computed {
        match c {
            Some((t, r)) if r == run => outputs.push(t),
            _ => {
                return Err(AppError::unavailable(
                    "the model was replaced while this request was computed: send it again",
                ))
            }
        }
    }
    let output = assemble(outputs)
        .and_then(tensor::answerable)
        .map_err(|e| {
            http.shared
                .internal_error(&format!("cannot assemble the outputs: {e}"))
        })?;
    let name = &parsed.checked.info.experiment;
    let mut response = respond(name, &run, parsed.id, &output, parsed.binary).map_err(|e| {
        http.shared
            .internal_error(&format!("cannot write the answer: {e}"))
    })?;
    if let Ok(v) = HeaderValue::from_str(&run) {
        response.headers_mut().insert(RUN_HEADER, v);
    }
    Ok(response)
}

/// Reads a request: its JSON (the first `json_length` bytes with the binary extension), its
/// one input's tensor split along the first dimension into samples checked against `model`.
fn parse(
    bytes: &[u8],
    json_length: Option<usize>,
    model: &Arc<super::shared::Current>,
    non_finite_inputs: bool,
    max_samples: usize,
) -> Result<Parsed, AppError> {
    let (json_bytes, mut binary) = match json_length {
        Some(n) if n > bytes.len() => {
            return Err(AppError::bad(format!(
                "{HEADER_LENGTH} says {n} bytes of JSON; the body has {}",
                bytes.len()
            )))
        }
        Some(n) => bytes.split_at(n),
        None => (bytes, &[][..]),
    };
    let request: InferRequest = serde_json::from_slice(json_bytes)
        .map_err(|e| AppError::bad(format!("cannot read the inference request: {e}")))?;
    let [input] = request.inputs.as_slice() else {
        return Err(AppError::bad(format!(
            "the model takes one input, {INPUT:?}; the request has {}",
            request.inputs.len()
        )));
    };
    if input.name != INPUT {
        return Err(AppError::bad(format!(
            "no input {:?}: the model's input is {INPUT:?}",
            input.name
        )));
    }
    for p in ["classification", "class_count"] {
        if request.outputs.iter().any(|o| o.parameters.contains_key(p))
            || request.parameters.contains_key(p)
        {
            return Err(AppError::bad(format!(
                "{p} is not taken: the answer is the model's output tensor"
            )));
        }
    }
    for o in &request.outputs {
        if o.name != OUTPUT {
            return Err(AppError::bad(format!(
                "no output {:?}: the model's output is {OUTPUT:?}",
                o.name
            )));
        }
    }
    let dtype = tensor::dtype_of(&input.datatype)?;
    let shape = tensor::shape_of(&input.shape, &input.name)?;
    let Some((&batch, sample_shape)) = shape.split_first() else {
        return Err(AppError::bad(format!(
            "input {:?}: its shape needs a first (batch) dimension",
            input.name
        )));
    };
    if batch == 0 {
        return Err(AppError::bad(format!(
            "input {:?}: a batch of no samples",
            input.name
        )));
    }
    // A shape larger than the body could fill is a mistake of the request, not a load.
    if let Some(serde_json::Value::Array(top)) = &input.data {
        let each_holds_values = sample_shape.iter().all(|&d| d > 0);
        if each_holds_values
            && top.len() < batch
            && input.parameters.get("binary_data_size").is_none()
        {
            return Err(AppError::bad(format!(
                "input {:?}: its shape {shape:?} has a batch of {batch} samples, more than its \
                 data's {} values at its top level can fill",
                input.name,
                top.len()
            )));
        }
    }
    if batch > max_samples {
        return Err(AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request holds {batch} samples; the server queues at most {max_samples} \
                 (--max-queue): send fewer at a time"
            ),
        ));
    }
    // Before any data is read: a shape the model can never take.
    if let Some(want) = &model.info.sample_shape {
        if sample_shape != want.as_slice() {
            return Err(AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "input {:?}: a sample of this model has shape {want:?}; this request's \
                     samples have shape {sample_shape:?} (its shape is {shape:?}, the first \
                     dimension the batch)",
                    input.name
                ),
            ));
        }
    }
    let tensor = match (input.parameters.get("binary_data_size"), &input.data) {
        (Some(_), Some(_)) => {
            return Err(AppError::bad(format!(
                "input {:?} has both data and binary_data_size: send its values one way",
                input.name
            )))
        }
        (Some(size), None) => {
            let size = size
                .as_u64()
                .and_then(|s| usize::try_from(s).ok())
                .ok_or_else(|| AppError::bad("binary_data_size must be a number of bytes"))?;
            if size > binary.len() {
                return Err(AppError::bad(format!(
                    "input {:?}: binary_data_size is {size}; the body has {} bytes after its JSON",
                    input.name,
                    binary.len()
                )));
            }
            let (mine, rest) = binary.split_at(size);
            binary = rest;
            tensor::from_bytes(mine, dtype, &shape, &input.name)?
        }
        (None, Some(data)) => tensor::from_json(data, dtype, &shape, &input.name)?,
        (None, None) => {
            return Err(AppError::bad(format!(
                "input {:?} has neither data nor binary_data_size",
                input.name
            )))
        }
    };
    if !binary.is_empty() {
        return Err(AppError::bad(format!(
            "{} bytes of binary data follow the inputs' binary_data_size",
            binary.len()
        )));
    }
    let mut samples = Vec::with_capacity(batch);
    for i in 0..batch {
        let sample = tensor
            .get(i)
            .map_err(|e| AppError::bad(format!("input {:?}: {e}", input.name)))?;
        samples.push(
            check(sample, model, non_finite_inputs).map_err(|e| AppError {
                message: format!("sample {i} of input {:?}: {}", input.name, e.message),
                ..e
            })?,
        );
    }
    let wants_binary = |p: &Map<String, Value>, key: &str| p.get(key) == Some(&Value::Bool(true));
    let binary = wants_binary(&request.parameters, "binary_data_output")
        || request
            .outputs
            .iter()
            .any(|o| wants_binary(&o.parameters, "binary_data"));
    Ok(Parsed {
        id: request.id,
        samples,
        checked: model.clone(),
        binary,
    })
}

/// The samples' outputs as one tensor, along the first dimension: outputs that carry the
/// sample's batch of one are concatenated, others stacked.
fn assemble(outputs: Vec<Tensor>) -> candle_core::Result<Tensor> {
    let batched = outputs.iter().all(|t| t.dims().first() == Some(&1));
    if batched {
        Tensor::cat(&outputs, 0)
    } else {
        Tensor::stack(&outputs, 0)
    }
}

/// The answer: JSON, or JSON then the output's bytes (the binary extension).
fn respond(
    name: &str,
    run: &str,
    id: Option<String>,
    output: &Tensor,
    binary: bool,
) -> candle_core::Result<Response> {
    let datatype = tensor::datatype_of(output.dtype()).unwrap_or("FP32");
    let (data, bytes) = if binary {
        (None, Some(tensor::to_bytes(output)?))
    } else {
        (Some(tensor::to_json(output)?), None)
    };
    // Written as serde writes these types, not built as a `serde_json::Value` first (which
    // was a fifteenth of a request's time).
    let head = InferResponse {
        id,
        model_name: name,
        model_version: run,
        outputs: [ResponseOutput {
            data,
            datatype,
            name: OUTPUT,
            parameters: bytes.as_ref().map(|b| BinaryParameters {
                binary_data_size: b.len(),
            }),
            shape: output.dims(),
        }],
    };
    let mut body = serde_json::to_vec(&head).map_err(candle_core::Error::wrap)?;
    Ok(match bytes {
        None => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Some(bytes) => {
            let json_length = body.len();
            body.extend_from_slice(&bytes);
            let mut response =
                ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response();
            if let Ok(v) = HeaderValue::from_str(&json_length.to_string()) {
                response.headers_mut().insert(HEADER_LENGTH, v);
            }
            response
        }
    })
}

/// An inference response's JSON (its keys in the order a `serde_json::Value` writes them).
#[derive(serde::Serialize)]
struct InferResponse<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    model_name: &'a str,
    model_version: &'a str,
    outputs: [ResponseOutput<'a>; 1],
}

/// One output tensor of an [`InferResponse`]: its data as JSON, or the size of its binary data.
#[derive(serde::Serialize)]
struct ResponseOutput<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<tensor::Data>,
    datatype: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinaryParameters>,
    shape: &'a [usize],
}

/// The binary data extension's parameter of an output.
#[derive(serde::Serialize)]
struct BinaryParameters {
    binary_data_size: usize,
}
