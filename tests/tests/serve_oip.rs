//! The Open Inference Protocol (v2) of `serve`: the digits model served, driven by a real
//! client of the protocol — `tritonclient[http]` from PyPI — with JSON and with binary
//! tensor data, and its refusals checked over raw HTTP.

use crate::common::python_json;
use crate::serve::{fixture, test_set, Server};
use serde_json::{json, Value};

/// What tritonclient makes of the server at `addr`, sending `samples` (each 64 values in
/// 0..1, the model's input) as one batch: `None` where tritonclient is not installed.
fn with_tritonclient(addr: &str, run: &str, samples: &[Vec<f32>]) -> Option<Value> {
    let script = r#"
import json, sys
import numpy as np
import tritonclient.http as http
addr, run, samples = sys.argv[1], sys.argv[2], np.array(json.loads(sys.argv[3]), dtype=np.float32)
client = http.InferenceServerClient(url=addr)
out = {"live": client.is_server_live(), "ready": client.is_server_ready(),
       "model_ready": client.is_model_ready("digits"),
       "server": client.get_server_metadata(), "model": client.get_model_metadata("digits")}
def infer(binary_in, binary_out, version=""):
    x = http.InferInput("input", list(samples.shape), "FP32")
    x.set_data_from_numpy(samples, binary_data=binary_in)
    wanted = http.InferRequestedOutput("output", binary_data=binary_out)
    result = client.infer("digits", [x], model_version=version, outputs=[wanted], request_id="r-1")
    response = result.get_response()
    return {"output": result.as_numpy("output").tolist(), "id": response.get("id"),
            "version": response.get("model_version"), "shape": response["outputs"][0]["shape"]}
out["json"] = infer(False, False)
out["binary"] = infer(True, True)
out["mixed"] = infer(False, True, version=run)
try:
    infer(False, False, version="no-such-version")
    out["wrong_version"] = None
except Exception as e:
    out["wrong_version"] = str(e)
print(json.dumps(out))
"#;
    let samples = serde_json::to_string(samples).unwrap();
    python_json(
        "import tritonclient.http, numpy",
        "tritonclient (pip install 'tritonclient[http]')",
        script,
        &[addr, run, &samples],
    )
}

#[test]
fn a_triton_client_infers_batches_with_json_and_binary_tensors() {
    let f = fixture();
    let server = Server::ready(&[&f.a, "--max-batch-size", "8"]);
    // The model's inputs: the test set's pixels as the task decodes them (0..1).
    let set = test_set();
    let samples: Vec<Vec<f32>> = set
        .iter()
        .take(20)
        .map(|(p, _)| p.iter().map(|v| v / 16.0).collect())
        .collect();
    let Some(got) = with_tritonclient(&server.addr, &f.a, &samples) else {
        return;
    };
    assert_eq!(got["live"], true);
    assert_eq!(got["ready"], true);
    assert_eq!(got["model_ready"], true);
    assert_eq!(got["server"]["name"], "flammable");
    let model = &got["model"];
    assert_eq!(model["name"], "digits");
    assert_eq!(model["versions"], json!([f.a]));
    assert_eq!(
        model["inputs"],
        json!([{"name": "input", "datatype": "FP32", "shape": [-1, 64]}])
    );
    assert_eq!(
        model["outputs"],
        json!([{"name": "output", "datatype": "FP32", "shape": [-1, 10]}])
    );
    // One answer of 20 rows, the same whichever way the tensors travel — up to the last
    // bits, which depend on how the server happened to batch the samples (README).
    let flat = |way: &str| -> Vec<f64> {
        got[way]["output"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
            .collect()
    };
    for way in ["json", "binary", "mixed"] {
        assert_eq!(got[way]["shape"], json!([20, 10]), "{way}");
        assert_eq!(got[way]["id"], "r-1", "{way}");
        assert_eq!(got[way]["version"], f.a.as_str(), "{way}");
        let (these, json) = (flat(way), flat("json"));
        assert_eq!(these.len(), 200, "{way}");
        for (a, b) in these.iter().zip(&json) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{way}: {a} vs {b}");
        }
    }
    // Each row is the model's output for its sample: its largest value is /predict's class.
    let rows = got["json"]["output"].as_array().unwrap();
    for (row, (pixels, _)) in rows.iter().zip(&set) {
        let row: Vec<f64> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let best = (0..row.len())
            .max_by(|a, b| row[*a].total_cmp(&row[*b]))
            .unwrap();
        let predicted = server.predict(pixels).json()["class"].as_u64().unwrap();
        assert_eq!(best as u64, predicted);
    }
    let wrong = got["wrong_version"].as_str().unwrap();
    assert!(wrong.contains("no version"), "{wrong}");
}

#[test]
fn inference_requests_the_model_cannot_take_get_the_protocols_error() {
    let f = fixture();
    let server = Server::ready(&[&f.a]);
    let infer = |path: &str, body: Value| {
        let a = server.post(
            path,
            &[("Content-Type", "application/json")],
            &serde_json::to_vec(&body).unwrap(),
        );
        let error = a.json()["error"].as_str().unwrap_or_default().to_string();
        (a.status, error)
    };
    let input = |shape: Value, datatype: &str, data: Value| json!({"inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data}]});
    let zeros = |n: usize| json!(vec![0.0; n]);
    let path = "/v2/models/digits/infer";
    let (status, error) = infer(path, input(json!([2, 63]), "FP32", zeros(126)));
    assert_eq!(status, 422, "{error}");
    assert!(error.contains("shape [64]"), "{error}");
    let (status, error) = infer(path, input(json!([1, 64]), "BYTES", zeros(64)));
    assert_eq!(status, 400, "{error}");
    assert!(error.contains("FP32"), "{error}");
    let (status, error) = infer(path, input(json!([2, 64]), "FP32", zeros(100)));
    assert_eq!(status, 400, "{error}");
    assert!(error.contains("holds 128 values; data has 100"), "{error}");
    let (status, error) = infer(path, json!({"inputs": []}));
    assert_eq!(status, 400, "{error}");
    let (status, error) = infer(path, json!({"nonsense": 1}));
    assert_eq!(status, 400, "{error}");
    let (status, error) = infer(
        "/v2/models/nosuch/infer",
        input(json!([1, 64]), "FP32", zeros(64)),
    );
    assert_eq!(status, 404, "{error}");
    assert!(error.contains("digits"), "{error}");
    // A shape with no values but a vast batch: refused before anything is allocated.
    let (status, error) = infer(
        path,
        input(json!([1_000_000_000_000_i64, 0]), "FP32", json!([])),
    );
    assert!(status == 413 || status == 422, "{status} {error}");
    let (status, error) = infer(
        path,
        json!({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": zeros(64)}]}),
    );
    assert_eq!(status, 400, "{error}");
    assert!(error.contains("\"input\""), "{error}");
    // Numbers beyond the model's dtype (f32) are not finite there.
    let (status, error) = infer(path, input(json!([1, 64]), "FP64", json!(vec![1e300; 64])));
    assert_eq!(status, 422, "{error}");
    let (status, error) = infer(path, input(json!([1, 64]), "UINT8", json!(vec![300; 64])));
    assert_eq!(status, 400, "{error}");
    // A whole number beyond an integer datatype is out of its range, not "not an integer".
    let (status, error) = infer(
        path,
        input(json!([1, 64]), "INT64", json!(vec![u64::MAX; 64])),
    );
    assert_eq!(status, 400, "{error}");
    assert!(error.contains("beyond INT64's range"), "{error}");
    // A batch its data cannot fill is the request's mistake (400), not a load (413).
    let (status, error) = infer(
        path,
        input(
            json!([4_611_686_018_427_387_904_i64, 64]),
            "FP32",
            zeros(64),
        ),
    );
    assert_eq!(status, 400, "{error}");
    assert!(error.contains("more than its data"), "{error}");
    // Values sent both as JSON and as binary data: which to take is not guessed.
    let (status, error) = infer(
        path,
        json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": zeros(64), "parameters": {"binary_data_size": 256}}]}),
    );
    assert_eq!(status, 400, "{error}");
    assert!(error.contains("both data and binary_data_size"), "{error}");
    // A model name that is not UTF-8 once decoded: the protocol's error shape.
    let a = server.get("/v2/models/%ff/ready");
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(a.json()["error"].is_string(), "{}", a.text());
    let a = server.post(
        path,
        &[("Content-Encoding", "gzip")],
        &serde_json::to_vec(&input(json!([1, 64]), "FP32", zeros(64))).unwrap(),
    );
    assert_eq!(a.status, 415, "{}", a.text());
    // An integer tensor is converted to the model's dtype; one sample answers one row.
    let ints = input(json!([1, 64]), "INT64", json!(vec![0; 64]));
    let a = server.post(path, &[], &serde_json::to_vec(&ints).unwrap());
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["outputs"][0]["shape"], json!([1, 10]));
    assert_eq!(a.json()["model_name"], "digits");
    // Binary data that does not add up.
    let head = serde_json::to_vec(&json!({"inputs": [{"name": "input", "shape": [1, 64],
        "datatype": "FP32", "parameters": {"binary_data_size": 256}}]}))
    .unwrap();
    let mut body = head.clone();
    body.extend_from_slice(&[0u8; 100]);
    let length = head.len().to_string();
    let a = server.post(path, &[("Inference-Header-Content-Length", &length)], &body);
    assert_eq!(a.status, 400, "{}", a.text());
    // The server still answers.
    assert_eq!(server.get("/v2/health/ready").status, 200);
    let info = server.get("/info").json();
    assert_eq!(info["model"]["output_shape"], json!([10]));
}

#[test]
fn samples_left_when_another_of_their_request_failed_count_no_client_gone() {
    let f = fixture();
    // Each sample alone through the queue: the first of each request overflows the network
    // (its output is not finite, a 500), and the request is answered without its second,
    // which the model then skips.
    let server = Server::ready(&[&f.a, "--inline", "off", "--max-batch-size", "1"]);
    let mut data = vec![3e38f32; 64];
    data.extend(vec![0.0f32; 64]);
    let body = serde_json::to_vec(
        &json!({"inputs": [{"name": "input", "shape": [2, 64], "datatype": "FP32", "data": data}]}),
    )
    .unwrap();
    for _ in 0..30 {
        let a = server.post(
            "/v2/models/digits/infer",
            &[("Content-Type", "application/json")],
            &body,
        );
        assert_eq!(a.status, 500, "{}", a.text());
    }
    let metrics = server.get("/metrics").text();
    assert!(!metrics.contains("flammable_dropped_total{"), "{metrics}");
}
