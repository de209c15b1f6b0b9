//! What the HTTP servers share (the experiment browser, `ui`, and the inference server,
//! `serve`): who may use them, how they listen and say where, how they serve connections and
//! shut down, and how a handler fails.

pub mod error;
pub mod listen;
pub mod openapi;
pub mod security;
pub mod server;
pub mod shutdown;

pub use error::AppError;
