//! `GET /openapi.json` of both servers: every route a server has is described, each described
//! operation answers as described for the examples the document gives, and Schemathesis
//! (PyPI `schemathesis`, installed by `.ci/run`) fuzzes both running servers from their
//! documents: no 5xx, every answer of a described status, media type and schema, and data the
//! document calls invalid refused.

use crate::common::skip_or_fail;
use crate::http::{get, request};
use serde_json::Value;
use std::process::Command;

/// The Schemathesis command line, where it is installed.
fn schemathesis() -> Option<Command> {
    let found = Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        skip_or_fail("schemathesis is not installed (pip install schemathesis)");
        return None;
    }
    Some(Command::new("schemathesis"))
}

/// What Schemathesis is told besides its command line (see the file: two checks off where
/// JSON Schema cannot state a rule).
const CONFIG: &str = include_str!("../schemathesis.toml");

/// Runs Schemathesis against the server at `addr` from its document, its every check on (but
/// for [`CONFIG`]'s), a few examples an operation; fails the test with its report unless everything passed.
fn fuzz(addr: &str) {
    let Some(mut st) = schemathesis() else {
        return;
    };
    // Its configuration, reports and cache in a folder of the test's own.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(&config, CONFIG).unwrap();
    st.arg("--no-color")
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("http://{addr}/openapi.json"))
        // Every check is on by default; the configuration turns one off where it must.
        .args(["--max-examples", "30", "--workers", "1"])
        .args(["--request-timeout", "20", "--suppress-health-check", "all"])
        .args(["--seed", "7"]);
    let out = st
        .current_dir(dir.path())
        .env(
            "HYPOTHESIS_STORAGE_DIRECTORY",
            dir.path().join("hypothesis"),
        )
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems ({}):\n{report}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The document at `addr`, checked to be OpenAPI 3.1 with an operation per path.
fn document(addr: &str) -> Value {
    let doc = get(addr, "/openapi.json");
    assert_eq!(doc.status, 200, "{}", doc.text());
    assert!(doc.header("content-type").starts_with("application/json"));
    let doc = doc.json();
    assert_eq!(doc["openapi"], "3.1.0");
    doc
}

/// Every operation of `doc`, its path filled with its parameters' examples, the required
/// query parameters too: `(method, path?query)`.
fn examples(doc: &Value) -> Vec<(String, String)> {
    let mut all = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let mut filled = path.clone();
            let mut query = Vec::new();
            for p in op["parameters"].as_array().cloned().unwrap_or_default() {
                let (name, example) = (p["name"].as_str().unwrap(), &p["example"]);
                match (p["in"].as_str().unwrap(), example.as_str()) {
                    ("path", Some(e)) => filled = filled.replace(&format!("{{{name}}}"), e),
                    ("path", None) => panic!("{path}: path parameter {name} has no example"),
                    ("query", Some(e)) => query.push(format!("{name}={e}")),
                    _ => {}
                }
            }
            if !query.is_empty() {
                filled = format!("{filled}?{}", query.join("&"));
            }
            all.push((method.to_uppercase(), filled));
        }
    }
    all
}

#[test]
fn the_inference_server_describes_its_endpoints_and_keeps_to_them() {
    let f = crate::serve::fixture();
    let server = crate::serve::Server::ready(&[&f.a]);
    let doc = document(&server.addr);
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for route in [
        "/",
        "/health",
        "/ready",
        "/info",
        "/metrics",
        "/reload",
        "/predict",
        "/openapi.json",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}",
        "/v2/models/{name}/versions/{version}/ready",
        "/v2/models/{name}/versions/{version}/infer",
    ] {
        assert!(paths.iter().any(|p| *p == route), "{route} not described");
    }
    // The model's own shape in the bodies it takes: 64 pixels.
    let body =
        &doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["minItems"], 64, "{body}");
    assert_eq!(
        doc["paths"]["/v2/models/{name}"]["get"]["parameters"][0]["example"],
        "digits"
    );
    // Every GET answers 200 for the document's own examples.
    for (method, path) in examples(&doc) {
        if method == "GET" {
            let answer = get(&server.addr, &path);
            assert_eq!(answer.status, 200, "GET {path}: {}", answer.text());
        }
    }
    fuzz(&server.addr);
    // Still serving, and still the same model after whatever the fuzzing reloaded.
    assert_eq!(get(&server.addr, "/health").status, 200);
}

#[test]
fn the_browser_describes_its_api_and_keeps_to_it() {
    let f = crate::ui::fixture();
    let ui = crate::ui::start_ui(&f.sandbox, &[]);
    let doc = document(&ui.addr);
    for route in [
        "/api/runs",
        "/api/runs/{id}",
        "/api/runs/{id}/live",
        "/api/runs/{id}/series",
        "/api/runs/{id}/log",
        "/api/runs/{id}/files",
        "/api/runs/{id}/tree",
        "/api/runs/{id}/code/{path}",
        "/api/runs/{id}/changes",
        "/api/diff",
        "/chart",
        "/files/{id}/{path}",
        "/openapi.json",
    ] {
        assert!(doc["paths"].get(route).is_some(), "{route} not described");
    }
    // Each described operation is served, and answers 200 for the document's examples.
    for (method, path) in examples(&doc) {
        let answer = request(&method, &ui.addr, &path, &[], b"").unwrap();
        assert_eq!(answer.status, 200, "{method} {path}: {}", answer.text());
    }
    // A prefix several runs share is a 400 saying so, as the document says, not "no run".
    let shared = get(&ui.addr, "/api/runs/2/live");
    assert_eq!(shared.status, 400, "{}", shared.text());
    assert!(
        shared.text().contains("type more of it"),
        "{}",
        shared.text()
    );
    fuzz(&ui.addr);
}
