//! Flammable's integration tests, linked into one binary: real runs in temporary folders,
//! the digits example as a real subprocess.

mod common;
mod digits;
mod hyperparameters;
mod loops;
