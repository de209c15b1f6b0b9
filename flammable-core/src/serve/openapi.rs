//! `GET /openapi.json`: the inference server's endpoints as an OpenAPI 3.1 document, made for
//! the model served now (its name, its sample's shape in `/predict`'s and the protocol's
//! request bodies).

use super::http::Http;
use super::oip::{HEADER_LENGTH, INPUT, OUTPUT};
use super::shared::ModelInfo;
use crate::web::openapi::{
    add, add_document_itself, document, example, json_response, open, operation, path_parameter,
    query_parameter, responses, schema, text_response,
};
use axum::Json;
use serde_json::{json, Map, Value};

/// `GET /openapi.json` of a server that needs a token when `token`.
pub fn serve_document(http: &Http, token: bool) -> Json<Value> {
    let settings = &http.shared.settings;
    Json(describe(
        &http.shared.model().info,
        settings.max_queue,
        token,
    ))
}

/// The refusals a request carrying a sample may get, besides its own.
const SAMPLE_REFUSALS: &[(&str, &str)] = &[
    ("400", "the body cannot be read as a sample"),
    ("408", "the body came too slowly (--read-timeout-ms)"),
    ("413", "the body is over --max-body-bytes, or an inference request holds more samples than --max-queue"),
    ("415", "a content encoding the server does not take"),
    (
        "422",
        "the sample's shape is not the model's, or it holds a NaN or an infinity",
    ),
    (
        "503",
        "the server is at capacity (--max-queue, --max-inflight-bytes), or stopping",
    ),
    ("500", "the task's own step failed on it (the error's id names its line in the server's log)"),
    ("504", "no answer within --timeout-ms"),
];

/// The document for a server serving `model` with at most `max_queue` requests queued, that
/// needs a token when `token`.
pub fn describe(model: &ModelInfo, max_queue: u32, token: bool) -> Value {
    let mut paths = Map::new();
    add(
        &mut paths,
        "/",
        "get",
        operation(
            "What the server serves, and its endpoints",
            vec![],
            responses(json_response("the server", schema("Index")), &[]),
        ),
    );
    add_document_itself(&mut paths);
    add(
        &mut paths,
        "/health",
        "get",
        open(operation(
            "Whether the server is up",
            vec![],
            responses(
                json_response(
                    "up",
                    json!({
                        "type": "object",
                        "required": ["status"],
                        "properties": { "status": { "const": "ok" } },
                    }),
                ),
                &[],
            ),
        )),
    );
    add(
        &mut paths,
        "/ready",
        "get",
        open(operation(
            "Whether the model has computed its warm-up batch",
            vec![],
            with_warming_up(
                responses(json_response("ready", schema("Ready")), &[]),
                "Ready",
            ),
        )),
    );
    add(
        &mut paths,
        "/info",
        "get",
        operation(
            "The model served, where it comes from, how requests are batched, the limits",
            vec![],
            responses(
                json_response("the model and the settings", schema("Info")),
                &[],
            ),
        ),
    );
    add(
        &mut paths,
        "/metrics",
        "get",
        operation(
            "Prometheus' text format",
            vec![],
            responses(
                text_response(
                    "the metrics",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
                &[],
            ),
        ),
    );
    add(
        &mut paths,
        "/reload",
        "post",
        operation(
            "Loads a checkpoint of a train run of this experiment and serves it once warmed up",
            vec![
                query_parameter(
                    "run",
                    "the train run (an id, an unambiguous prefix, `latest` or `latest~N`); by default the run served",
                    json!({ "type": "string", "minLength": 1 }),
                ),
                query_parameter(
                    "checkpoint",
                    "its checkpoint: `latest`, `best` or `step-N`; by default the one served",
                    json!({ "type": "string", "pattern": "^(latest|best|step-[0-9]{1,18})$" }),
                ),
            ],
            responses(
                json_response(
                    "the model now served",
                    json!({
                        "type": "object",
                        "required": ["model"],
                        "properties": { "model": schema("Model") },
                    }),
                ),
                &[
                    ("400", "a parameter the server does not take, an ambiguous run, or a run that is not a train run of this experiment"),
                    ("404", "no such run or checkpoint"),
                    ("422", "the checkpoint does not load into the task's model, or fails on its warm-up batch"),
                    ("503", "too many reloads wait already, or the server is stopping"),
                ],
            ),
        ),
    );
    let mut predict = operation(
        "One sample in, the task's answer out (queued and batched with the others)",
        vec![],
        responses(
            json!({
                "description": "the task's answer (by default the model's output as JSON)",
                "headers": run_header(),
                "content": { "application/json": { "schema": {} }, "*/*": { "schema": {} } },
            }),
            SAMPLE_REFUSALS,
        ),
    );
    predict["requestBody"] = json!({
        "required": true,
        "description": "One sample in the task's request format: by default (without the task's own `decode_request`) JSON numbers in nested arrays of the sample's shape.",
        "content": { "application/json": { "schema": sample_schema(model) } },
    });
    add(&mut paths, "/predict", "post", predict);
    describe_oip(&mut paths, model);
    document(
        "flammable serve",
        &format!(
            "The inference server of run {} (experiment {}): `/predict` in the task's own format, and the Open Inference Protocol (v2) under `/v2`.",
            model.run, model.experiment
        ),
        paths,
        schemas(model, max_queue),
        token,
    )
}

/// The header that names the run whose model answered.
fn run_header() -> Value {
    json!({
        "x-flammable-run": {
            "description": "the train run whose model answered",
            "schema": { "type": "string" },
        },
    })
}

/// `responses` with a 503 of schema `body`: the model is still warming up.
fn with_warming_up(mut responses: Value, body: &str) -> Value {
    responses["503"] = json_response("warming up", schema(body));
    responses
}

/// The Open Inference Protocol's endpoints.
fn describe_oip(paths: &mut Map<String, Value>, model: &ModelInfo) {
    add(
        paths,
        "/v2",
        "get",
        operation(
            "The server's metadata (Open Inference Protocol)",
            vec![],
            responses(
                json_response(
                    "the server",
                    json!({
                        "type": "object",
                        "required": ["name", "version", "extensions"],
                        "properties": {
                            "name": { "type": "string" },
                            "version": { "type": "string" },
                            "extensions": { "type": "array", "items": { "type": "string" } },
                        },
                    }),
                ),
                &[],
            ),
        ),
    );
    add(
        paths,
        "/v2/health/live",
        "get",
        open(operation(
            "Whether the server is up",
            vec![],
            responses(json_response("up", schema("Live")), &[]),
        )),
    );
    add(
        paths,
        "/v2/health/ready",
        "get",
        open(operation(
            "Whether the model is ready",
            vec![],
            with_warming_up(
                responses(json_response("ready", schema("OipReady")), &[]),
                "OipReady",
            ),
        )),
    );
    let name = example(
        path_parameter(
            "name",
            &format!(
                "the model: `{}` (the experiment), or the served run's id",
                model.experiment
            ),
        ),
        &model.experiment,
    );
    let version = example(
        path_parameter(
            "version",
            &format!("the version: `{}` (the served run's id)", model.run),
        ),
        &model.run,
    );
    let no_model = [("404", "no such model, or no such version of it")];
    for versioned in [false, true] {
        let base = if versioned {
            "/v2/models/{name}/versions/{version}"
        } else {
            "/v2/models/{name}"
        };
        let mut parameters = vec![name.clone()];
        if versioned {
            parameters.push(version.clone());
        }
        add(
            paths,
            base,
            "get",
            operation(
                "The model's inputs and outputs (the batch dimension -1)",
                parameters.clone(),
                responses(
                    json_response("the model", schema("ModelMetadata")),
                    &no_model,
                ),
            ),
        );
        let ready = with_warming_up(
            responses(json_response("ready", schema("OipReady")), &no_model),
            "OipReady",
        );
        add(
            paths,
            &format!("{base}/ready"),
            "get",
            operation("Whether the model is ready", parameters.clone(), ready),
        );
        let mut refusals = no_model.to_vec();
        refusals.extend_from_slice(SAMPLE_REFUSALS);
        let mut with_header = parameters;
        with_header.push(json!({
            "name": HEADER_LENGTH,
            "in": "header",
            "required": false,
            "description": "with binary tensor data: the bytes of the JSON header at the body's start",
            "schema": { "type": "integer", "minimum": 0 },
        }));
        let mut infer = operation(
            "A batch of samples in, the model's outputs out (each sample queued with the others)",
            with_header,
            responses(
                json!({
                    "description": "the outputs: JSON, or with the binary tensor extension the JSON header followed by the bytes",
                    "headers": run_header(),
                    "content": {
                        "application/json": { "schema": schema("InferResponse") },
                        "application/octet-stream": { "schema": { "type": "string", "format": "binary" } },
                    },
                }),
                &refusals,
            ),
        );
        infer["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": schema("InferRequest") } },
        });
        add(paths, &format!("{base}/infer"), "post", infer);
    }
}

/// The numbers an `f32` rounds to a finite value stay below this magnitude (`f32::MAX` and
/// half its last step, 2^128 - 2^103); from it on they become infinities, which are refused.
const F32_ROUNDS_FINITE: f64 = 340_282_356_779_733_661_637_539_395_458_142_568_448.0;

/// A finite number a sample may hold.
fn finite_number() -> Value {
    json!({
        "type": "number",
        "exclusiveMinimum": -F32_ROUNDS_FINITE,
        "exclusiveMaximum": F32_ROUNDS_FINITE,
    })
}

/// `/predict`'s body under the default reader: nested arrays of the sample's shape.
fn sample_schema(model: &ModelInfo) -> Value {
    let Some(shape) = &model.sample_shape else {
        return json!({ "description": "any shape the model takes" });
    };
    let mut s = finite_number();
    for &n in shape.iter().rev() {
        s = json!({ "type": "array", "items": s, "minItems": n, "maxItems": n });
    }
    s
}

/// The named schemas.
fn schemas(model: &ModelInfo, max_queue: u32) -> Value {
    let strings = json!({ "type": "object", "additionalProperties": { "type": "string" } });
    let maybe_shape =
        json!({ "type": ["array", "null"], "items": { "type": "integer", "minimum": 0 } });
    let maybe_string = json!({ "type": ["string", "null"] });
    let tensor_meta = json!({
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": { "type": "string" },
            "datatype": { "type": "string" },
            "shape": { "type": "array", "items": { "type": "integer", "minimum": -1 } },
        },
    });
    let parameters = json!({ "type": "object" });
    // The batch dimension, then the sample's (where the model has a fixed one).
    let shape = match &model.sample_shape {
        Some(dims) => {
            let mut items = vec![json!({ "type": "integer", "minimum": 1, "maximum": max_queue })];
            items.extend(dims.iter().map(|d| json!({ "const": d })));
            json!({ "type": "array", "prefixItems": items, "minItems": dims.len() + 1, "maxItems": dims.len() + 1 })
        }
        None => json!({
            "type": "array",
            "prefixItems": [{ "type": "integer", "minimum": 1, "maximum": max_queue }],
            "items": { "type": "integer", "minimum": 0 },
            "minItems": 1,
        }),
    };
    let datatypes: Vec<&str> = super::oip::tensor::DATATYPES
        .iter()
        .map(|(n, _)| *n)
        .collect();
    json!({
        "Index": {
            "type": "object",
            "required": ["server", "run", "experiment", "checkpoint", "ready", "endpoints"],
            "properties": {
                "server": { "const": "flammable serve" },
                "serve_run": maybe_string,
                "run": { "type": "string" },
                "experiment": { "type": "string" },
                "checkpoint": { "type": "string" },
                "ready": { "type": "boolean" },
                "endpoints": strings,
            },
        },
        "Ready": {
            "type": "object",
            "required": ["ready"],
            "properties": { "ready": { "type": "boolean" }, "why": { "type": "string" } },
        },
        "Live": {
            "type": "object",
            "required": ["live"],
            "properties": { "live": { "type": "boolean" } },
        },
        "OipReady": {
            "type": "object",
            "required": ["ready"],
            "properties": { "ready": { "type": "boolean" } },
        },
        "Model": {
            "type": "object",
            "required": ["run", "experiment", "checkpoint", "hyperparameters", "loaded"],
            "properties": {
                "run": { "type": "string" },
                "experiment": { "type": "string" },
                "checkpoint": { "type": "string" },
                "commit": maybe_string,
                "hyperparameters": strings,
                "sample_shape": maybe_shape,
                "sample_dtype": maybe_string,
                "output_shape": maybe_shape,
                "output_dtype": maybe_string,
                "loaded": { "type": "string", "description": "RFC 3339" },
            },
        },
        "Info": {
            "type": "object",
            "required": ["model", "ready", "batching", "limits"],
            "properties": {
                "serve_run": maybe_string,
                "model": schema("Model"),
                "ready": { "type": "boolean" },
                "batching": { "type": "object" },
                "limits": { "type": "object" },
            },
        },
        "ModelMetadata": {
            "type": "object",
            "required": ["name", "versions", "platform", "inputs", "outputs"],
            "properties": {
                "name": { "type": "string" },
                "versions": { "type": "array", "items": { "type": "string" } },
                "platform": { "type": "string" },
                "inputs": { "type": "array", "items": tensor_meta },
                "outputs": { "type": "array", "items": tensor_meta },
            },
        },
        "InferRequest": {
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "id": { "type": "string" },
                "parameters": parameters,
                "inputs": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "shape", "datatype"],
                        // The values in `data`, or after the JSON (the binary extension).
                        "anyOf": [
                            { "required": ["data"] },
                            {
                                "required": ["parameters"],
                                "properties": { "parameters": { "required": ["binary_data_size"] } },
                            },
                        ],
                        "description": format!(
                            "the one input, `{INPUT}`: shape [batch, {}], its values in `data` (flat or nested, row-major) or, with the binary extension, after the JSON",
                            model.sample_shape.as_ref().map(|s| s.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")).unwrap_or_else(|| "…".into())
                        ),
                        "properties": {
                            "name": { "const": INPUT },
                            "shape": shape,
                            "datatype": { "enum": datatypes },
                            "parameters": {
                                "type": "object",
                                "properties": {
                                    "binary_data_size": { "type": "integer", "minimum": 0 },
                                },
                            },
                            "data": {
                                "type": ["array", "number"],
                                "description": "the values, flat or nested as the shape is (its product of them); absent with binary_data_size",
                            },
                        },
                    },
                },
                "outputs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": { "const": OUTPUT },
                            "parameters": {
                                "type": "object",
                                "properties": { "binary_data": { "type": "boolean" } },
                            },
                        },
                    },
                },
            },
        },
        "InferResponse": {
            "type": "object",
            "required": ["model_name", "outputs"],
            "properties": {
                "model_name": { "type": "string" },
                "model_version": { "type": "string" },
                "id": { "type": "string" },
                "outputs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "datatype", "shape"],
                        "properties": {
                            "name": { "type": "string" },
                            "datatype": { "type": "string" },
                            "shape": { "type": "array", "items": { "type": "integer", "minimum": 0 } },
                            "parameters": parameters,
                            "data": { "type": "array" },
                        },
                    },
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::openapi::described;

    fn digits() -> ModelInfo {
        ModelInfo {
            run: "20261206-000000-abcd".into(),
            experiment: "digits".into(),
            sample_shape: Some(vec![64]),
            ..ModelInfo::default()
        }
    }

    #[test]
    fn every_endpoint_the_index_lists_is_described_with_its_method() {
        let doc = describe(&digits(), 512, false);
        let paths = described(&doc);
        for (route, _) in super::super::http::ENDPOINTS {
            let (method, path) = route.split_once(' ').unwrap();
            assert!(paths.iter().any(|p| p == path), "{path} not described");
            assert!(
                doc["paths"][path][method.to_lowercase()].is_object(),
                "{route} not described"
            );
        }
    }

    #[test]
    fn the_bodies_have_the_models_sample_shape() {
        let doc = describe(&digits(), 512, false);
        let predict = &doc["paths"]["/predict"]["post"]["requestBody"]["content"]
            ["application/json"]["schema"];
        assert_eq!(predict["type"], "array");
        assert_eq!(
            (predict["minItems"].clone(), predict["maxItems"].clone()),
            (json!(64), json!(64))
        );
        assert_eq!(predict["items"]["type"], "number");
        let input = &doc["components"]["schemas"]["InferRequest"]["properties"]["inputs"]["items"];
        assert_eq!(
            input["properties"]["shape"]["prefixItems"][1],
            json!({ "const": 64 })
        );
        assert_eq!(input["properties"]["name"], json!({ "const": "input" }));
        // A model of any shape: no shape promised.
        let any = describe(&ModelInfo::default(), 512, false);
        let predict = &any["paths"]["/predict"]["post"]["requestBody"]["content"]
            ["application/json"]["schema"];
        assert!(predict.get("type").is_none());
    }
}
