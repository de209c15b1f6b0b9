//! What the HTTP servers share (the experiment browser, `ui`, and the inference server,
//! `serve`): who may use them, and how they listen and say where.

pub mod listen;
pub mod security;
