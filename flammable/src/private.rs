//! Every path `#[flammable::task]` emits. Not public API: it changes with any release, and
//! the macro crate is pinned to this exact version.

pub use ::core::option::Option::{self, Some};
pub use ::core::result::Result::Ok;
pub use ::std::boxed::Box;
pub use ::std::path::Path;
pub use ::std::vec::Vec;
pub use candle_core::{Device, Tensor, Var};
pub use flammable_core::cli::main;
pub use flammable_core::store::record::BuildTarget;
pub use flammable_core::{
    Batch, Batches, Env, Metrics, NoHyperparameters, Optimizer, Output, Result, Task, TrainConfig,
};

/// Converts what a `#[data(..)]` step returns (a `Batcher`, a `Vec<Batch>`, `Batches`, …)
/// into `Batches`.
pub fn into_batches<B: Into<Batches>>(data: Result<B>) -> Result<Batches> {
    data.map(Into::into)
}
