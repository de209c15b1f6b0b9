//! The inference server, `serve [RUN]`: a trained run's model over HTTP, through the task's
//! own serving steps, with dynamic batching (feature `serve`; without it, `serve` says how to
//! get it).
//!
//! One thread owns the model and computes; the HTTP side (axum on tokio) reads each request
//! within its limits, decodes it (a large body on a bounded blocking pool), refuses what can never be
//! computed, and queues the rest in a bounded queue. Whenever the model is free, its thread
//! takes as many queued requests as fit a batch, runs one forward pass and answers each. A
//! model that any thread may use, on the CPU and quick, computes a request on the HTTP thread
//! that read it instead (module `inline`). A reload builds the next model on a thread of its own,
//! which takes over once warmed up.

// Compiled in every build, so that its test runs where the feature is on too.
#[cfg_attr(feature = "serve", allow(dead_code))]
mod disabled;
#[cfg(not(feature = "serve"))]
pub use disabled::ServeArgs;

#[cfg(feature = "serve")]
mod args;
#[cfg(feature = "serve")]
pub use args::ServeArgs;
#[cfg(feature = "serve")]
mod batcher;
#[cfg(feature = "serve")]
mod body;
#[cfg(feature = "serve")]
mod budget;
#[cfg(feature = "serve")]
mod check;
#[cfg(feature = "serve")]
mod histogram;
#[cfg(feature = "serve")]
mod http;
#[cfg(feature = "serve")]
mod inline;
#[cfg(feature = "serve")]
mod load;
#[cfg(feature = "serve")]
mod metrics;
#[cfg(feature = "serve")]
mod oip;
#[cfg(feature = "serve")]
mod openapi;
#[cfg(feature = "serve")]
mod reload;
#[cfg(feature = "serve")]
mod server;
#[cfg(feature = "serve")]
mod shared;
#[cfg(feature = "serve")]
mod streak;
#[cfg(feature = "serve")]
pub use server::{serve, Serving};

/// What a task binary built without the `serve` feature says when asked to serve.
pub const UNAVAILABLE: &str =
    "this binary was built without the inference server: build the task with flammable's \
     `serve` feature (flammable = { version = \"…\", features = [\"serve\"] })";
