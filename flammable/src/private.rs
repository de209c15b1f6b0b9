//! Every path `#[flammable::task]` emits. Not public API: it changes with any release, and
//! the macro crate is pinned to this exact version.

pub use ::core::option::Option::{self, None, Some};
pub use ::core::result::Result::Ok;
pub use ::std::boxed::Box;
pub use ::std::path::Path;
pub use ::std::vec::Vec;
pub use candle_core::{Device, Tensor, Var};
pub use flammable_core::cli::main_serving;
pub use flammable_core::store::record::BuildTarget;
pub use flammable_core::task::payload::Payload;
pub use flammable_core::task::serve::{LoaderProbe, LocalLoaderOf, SharedLoaderOf};
pub use flammable_core::train::pooled::{
    built_in as built_in_metric, larger_is_better as built_in_larger_is_better,
};
pub use flammable_core::{
    Batch, Batches, Env, Metrics, NoHyperparameters, Optimizer, Output, Result, Results, Task,
    TrainConfig, Trainer,
};

/// What a `#[data(..)]` step may return inside its `Result`: `Batches`, a `Batcher` or a
/// `Vec<Batch>`. Not a blanket impl over `Into<Batches>`, so that rustc shows the message
/// below instead of a missing `From` impl.
#[diagnostic::on_unimplemented(
    message = "a data step returns batches, and `{Self}` is not batches",
    label = "return `Result<Batches>`, a `Result<Batcher>` or a `Result<Vec<Batch>>`",
    note = "a dataset becomes batches in a Batcher: `Ok(Batcher::new(dataset, batch_size))`"
)]
pub trait IntoBatches {
    /// The batches.
    fn into_batches(self) -> Batches;
}

impl IntoBatches for Batches {
    fn into_batches(self) -> Batches {
        self
    }
}

impl IntoBatches for flammable_core::data::Batcher {
    fn into_batches(self) -> Batches {
        self.into()
    }
}

impl IntoBatches for Vec<Batch> {
    fn into_batches(self) -> Batches {
        self.into()
    }
}

/// Converts what a `#[data(..)]` step returns (a `Batcher`, a `Vec<Batch>`, `Batches`)
/// into `Batches`.
pub fn into_batches<B: IntoBatches>(data: Result<B>) -> Result<Batches> {
    data.map(IntoBatches::into_batches)
}

/// What a `#[postprocess]` step may return: a value serde can write (as RON for `eval`, as
/// JSON for `serve`).
#[diagnostic::on_unimplemented(
    message = "a #[postprocess] step returns a result that `eval` and `serve` write, and `{Self}` cannot be written",
    label = "return `Result<T>` where `T` implements `serde::Serialize`",
    note = "derive it: `#[derive(serde::Serialize)]` on `{Self}`"
)]
pub trait PostprocessResult: serde::Serialize {}

impl<T: serde::Serialize> PostprocessResult for T {}

/// The [`Output`] of a `#[postprocess]` step's result: its RON and JSON, written now (the
/// result may borrow the task, so it is not kept for later); a result serde cannot write is
/// refused at compile time with what to derive.
pub fn written_output<T: PostprocessResult>(result: &T) -> Result<Output> {
    Output::new(result)
}
