//! flammable-core: everything that runs in a Flammable task.
//!
//! Users depend on the `flammable` facade; this crate holds the [`Task`] trait whose default
//! methods are the train, test and eval meta-algorithms, the data loader, optimizers,
//! schedules, checkpoints, the run store and its `Run` handle, and the CLI.
#![deny(missing_docs)]

// Without candle (`--no-default-features`): the store, snapshots, the Run handle, the
// hyperparameter files and the run commands.
pub mod cli;
pub mod error;
#[cfg(feature = "export")]
pub mod export;
// The layer order and the test that keeps imports pointing down it.
pub mod hyper;
#[cfg(test)]
mod layers;
pub mod remote;
pub mod run;
pub mod snapshot;
pub mod store;
pub mod ui;
pub mod util;
#[cfg(feature = "web")]
pub mod web;

// The task layers, on candle.
#[cfg(feature = "candle")]
pub mod checkpoint;
#[cfg(feature = "candle")]
pub mod collective;
#[cfg(feature = "candle")]
pub mod data;
#[cfg(feature = "candle")]
pub mod env;
#[cfg(feature = "candle")]
pub mod model;
#[cfg(feature = "candle")]
pub mod serve;
#[cfg(feature = "candle")]
pub mod task;
#[cfg(feature = "candle")]
pub mod train;

#[cfg(feature = "candle")]
pub use data::{Batch, BatchIter, Batcher, Batches, Dataset, TensorDataset};
#[cfg(feature = "candle")]
pub use env::Env;
pub use error::{Error, Result};
pub use hyper::config::{BestMode, OptimizerKind, TrainConfig};
pub use hyper::schedule::{Schedule, ScheduleKind};
pub use hyper::{HyperRecord, Hyperparameters, NoHyperparameters};
#[cfg(feature = "candle")]
pub use model::vars::Vars;
pub use run::Run;
#[cfg(feature = "candle")]
pub use task::output::{Output, Prediction};
#[cfg(feature = "candle")]
pub use task::Task;
#[cfg(feature = "candle")]
pub use train::optim::{AdamW, AdamWConfig, Optimizer, Sgd, SgdConfig};
#[cfg(feature = "candle")]
pub use train::scalars::{Losses, Metrics, Results, Scalars};
#[cfg(feature = "candle")]
pub use train::trainer::Trainer;
