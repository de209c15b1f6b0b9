//! The pieces both servers' `GET /openapi.json` are built of: an OpenAPI 3.1 document, its
//! token scheme, the `{"error": "…"}` every refusal answers, and the usual parameters and
//! responses. Each server lists its own operations (`serve::openapi`, `ui::openapi`); a test
//! of each checks that every route it serves is described, and CI runs Schemathesis against
//! both running servers (no 5xx, every answer as described).

use serde_json::{json, Map, Value};

/// The document: `paths` (path → operations) and the named `schemas`, with the token
/// scheme. Operations made [`open`] need no token; the others need it (`Authorization:
/// Bearer`, `?token=` or the cookie) when the server has one (`token`: off loopback, or
/// given), and nothing otherwise.
pub fn document(
    title: &str,
    description: &str,
    paths: Map<String, Value>,
    schemas: Value,
    token: bool,
) -> Value {
    let mut components = json!({
        "securitySchemes": {
            "token": {
                "type": "http",
                "scheme": "bearer",
                "description": "The token the server printed (`--token`, or a fresh one off loopback); a server on loopback without `--token` takes requests without it.",
            }
        },
    });
    let mut all = Map::new();
    all.insert("Error".into(), error_schema());
    if let Value::Object(own) = schemas {
        all.extend(own);
    }
    components["schemas"] = Value::Object(all);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": env!("CARGO_PKG_VERSION"),
            "description": description,
        },
        // Without a token, none is needed (the empty requirement).
        "security": if token { json!([{ "token": [] }]) } else { json!([{}, { "token": [] }]) },
        "paths": paths,
        "components": components,
    })
}

/// `{"error": "…"}`, and the run it concerns where there is one.
fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": { "type": "string", "description": "Why, in one line." },
            "id": { "type": "string", "description": "For a 500: the id of the error's line in the server's log." },
        },
    })
}

/// A reference to schema `name` of the document.
pub fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// A JSON response of schema `body`.
pub fn json_response(description: &str, body: Value) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": body } },
    })
}

/// A text response of media type `media` (`text/plain`, `image/svg+xml`, …).
pub fn text_response(description: &str, media: &str) -> Value {
    json!({
        "description": description,
        "content": { media: { "schema": { "type": "string" } } },
    })
}

/// A refusal: `{"error": "…"}` with status `why`.
pub fn error_response(why: &str) -> Value {
    json_response(why, schema("Error"))
}

/// Responses: `ok` under "200", then each `(status, why)` as an [`error_response`].
pub fn responses(ok: Value, refusals: &[(&str, &str)]) -> Value {
    let mut all = Map::new();
    all.insert("200".into(), ok);
    for (status, why) in refusals {
        all.insert((*status).into(), error_response(why));
    }
    all.entry("401").or_insert_with(|| {
        error_response("no token, or a wrong one (a server off loopback, or started with --token)")
    });
    all.entry("403").or_insert_with(|| {
        error_response("the Host header names another machine, or the Origin header another site")
    });
    Value::Object(all)
}

/// A required path parameter.
pub fn path_parameter(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "required": true,
        "description": description,
        "schema": { "type": "string", "minLength": 1 },
    })
}

/// An optional query parameter of schema `schema`.
pub fn query_parameter(name: &str, description: &str, schema: Value) -> Value {
    json!({
        "name": name,
        "in": "query",
        "required": false,
        "description": description,
        "schema": schema,
    })
}

/// `parameter` with an `example` (one the server has: a run, a metric).
pub fn example(mut parameter: Value, example: &str) -> Value {
    parameter["example"] = Value::from(example);
    parameter
}

/// `parameter`, made required.
pub fn required(mut parameter: Value) -> Value {
    parameter["required"] = Value::Bool(true);
    parameter
}

/// An integer from `lo` to `hi`, or empty (the default: the pages' forms send empty fields).
pub fn integer(lo: u64, hi: u64) -> Value {
    json!({ "anyOf": [{ "type": "integer", "minimum": lo, "maximum": hi }, { "const": "" }] })
}

/// One operation: its summary, parameters and responses.
pub fn operation(summary: &str, parameters: Vec<Value>, responses: Value) -> Value {
    let mut op = json!({ "summary": summary, "responses": responses });
    if !parameters.is_empty() {
        op["parameters"] = Value::Array(parameters);
    }
    op
}

/// An operation that needs no token, even off loopback (a health probe).
pub fn open(mut operation: Value) -> Value {
    operation["security"] = json!([]);
    if let Some(r) = operation["responses"].as_object_mut() {
        r.remove("401");
    }
    operation
}

/// Adds `GET /openapi.json`, the document itself, to `paths`.
pub fn add_document_itself(paths: &mut Map<String, Value>) {
    add(
        paths,
        "/openapi.json",
        "get",
        operation(
            "This document",
            vec![],
            responses(
                json_response("the document", json!({ "type": "object" })),
                &[],
            ),
        ),
    );
}

/// Adds `operation` under `method` (`get`, `post`) of `path`.
pub fn add(paths: &mut Map<String, Value>, path: &str, method: &str, operation: Value) {
    let entry = paths
        .entry(path.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    entry[method] = operation;
}

/// The paths of `document`, as written (`/v2/models/{name}`): what the tests check a server's
/// routes against.
#[cfg(test)]
pub fn described(document: &Value) -> Vec<String> {
    document["paths"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_names_its_paths_and_the_error_schema() {
        let mut paths = Map::new();
        add(
            &mut paths,
            "/health",
            "get",
            open(operation(
                "up?",
                vec![],
                responses(json_response("up", json!({"type": "object"})), &[]),
            )),
        );
        let doc = document("t", "d", paths, json!({}), false);
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(described(&doc), ["/health"]);
        assert_eq!(doc["paths"]["/health"]["get"]["security"], json!([]));
        assert!(doc["components"]["schemas"]["Error"].is_object());
        assert!(doc["paths"]["/health"]["get"]["responses"]["401"].is_null());
        assert!(doc["paths"]["/health"]["get"]["responses"]["403"].is_object());
        assert_eq!(doc["security"], json!([{}, { "token": [] }]));
        let with_token = document("t", "d", Map::new(), json!({}), true);
        assert_eq!(with_token["security"], json!([{ "token": [] }]));
    }
}
