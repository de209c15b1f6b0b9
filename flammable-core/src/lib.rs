//! flammable-core: everything that runs in a Flammable task.
//!
//! Users depend on the `flammable` facade; this crate holds the [`Task`] trait whose default
//! methods are the train, test and eval meta-algorithms, the data loader, optimizers,
//! schedules, checkpoints, the run store and its `Run` handle, and the CLI.
#![deny(missing_docs)]

pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod error;
pub mod hyper;
pub mod model;
pub mod run;
pub mod snapshot;
pub mod store;
pub mod task;
pub mod train;
pub mod util;

pub use data::{Batch, BatchIter, Batcher, Batches, Dataset, TensorDataset};
pub use error::{Error, Result};
pub use hyper::config::{BestMode, OptimizerKind, TrainConfig};
pub use hyper::{HyperRecord, Hyperparameters, NoHyperparameters};
pub use model::vars::Vars;
pub use run::Run;
pub use task::env::Env;
pub use task::output::{Output, Prediction};
pub use task::Task;
pub use train::optim::{AdamW, AdamWConfig, Optimizer, Sgd, SgdConfig};
pub use train::scalars::{Losses, Metrics, Results, Scalars};
pub use train::schedule::{Schedule, ScheduleKind};
pub use train::trainer::Trainer;
