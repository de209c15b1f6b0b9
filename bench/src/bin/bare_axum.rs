//! The limit `serve_load` measures `serve` against: a bare axum server on the same runtime
//! settings that does only the HTTP part of a prediction — it reads the same request body
//! (`POST /predict`: 64 numbers as JSON; `POST /v2/models/digits/infer`: an Open Inference
//! Protocol request) and answers a fixed answer of the same shape, with no model and no queue.
//!
//! Given a digits run's checkpoint, `/predict` also computes the answer: the same network
//! (64 → hidden → 10, candle, the checkpoint's weights), in the handler, one request at a
//! time, on whichever HTTP thread read it — what the model adds to the HTTP part when
//! nothing stands between them (no queue, no batching, no other thread).
//!
//! `bare_axum PORT [CHECKPOINT]`

// Linked for its global allocator alone (`flammable`'s default feature `mimalloc`): the limit
// is measured on the allocator `serve` runs on.
extern crate flammable;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use flammable_bench::DigitsNet;
use serde_json::{json, Value};
use std::sync::Arc;

/// `/predict` computed by the network in the handler.
async fn predict_computed(State(model): State<Arc<DigitsNet>>, body: Bytes) -> impl IntoResponse {
    match serde_json::from_slice::<Vec<f32>>(&body) {
        Ok(pixels) if pixels.len() == 64 => match model.predict(pixels) {
            Ok((class, probability)) => {
                Json(json!({ "class": class, "probability": probability })).into_response()
            }
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        },
        _ => (StatusCode::BAD_REQUEST, "not 64 numbers").into_response(),
    }
}

/// `/predict`'s body read as `serve`'s default reader takes it: numbers, as `f32`.
async fn predict(body: Bytes) -> impl IntoResponse {
    match serde_json::from_slice::<Vec<f32>>(&body) {
        Ok(pixels) if pixels.len() == 64 => {
            Json(json!({ "class": 7, "probability": 0.99 })).into_response()
        }
        _ => (StatusCode::BAD_REQUEST, "not 64 numbers").into_response(),
    }
}

/// An inference request read whole, answered with ten values a sample.
async fn infer(body: Bytes) -> impl IntoResponse {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let batch = request["inputs"][0]["shape"][0].as_u64().unwrap_or(1) as usize;
    Json(json!({
        "model_name": "digits",
        "outputs": [{
            "name": "output",
            "datatype": "FP32",
            "shape": [batch, 10],
            "data": vec![0.1f32; batch * 10],
        }],
    }))
    .into_response()
}

fn main() {
    let Some(port) = std::env::args().nth(1).and_then(|p| p.parse::<u16>().ok()) else {
        eprintln!("usage: bare_axum PORT [CHECKPOINT]");
        std::process::exit(2);
    };
    let model = match std::env::args()
        .nth(2)
        .map(|path| DigitsNet::load(std::path::Path::new(&path)))
    {
        None => None,
        Some(Ok(model)) => Some(Arc::new(model)),
        Some(Err(e)) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start tokio: {e}");
            std::process::exit(1);
        }
    };
    let predicting = match model {
        Some(model) => Router::new()
            .route("/predict", post(predict_computed))
            .with_state(model),
        None => Router::new().route("/predict", post(predict)),
    };
    let app = predicting
        .route("/v2/models/digits/infer", post(infer))
        .route("/ready", get(|| async { "ok" }));
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        axum::serve(listener, app).await
    });
    if let Err(e) = served {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
