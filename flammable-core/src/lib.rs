//! flammable-core: everything that runs in a Flammable task.
//!
//! Users depend on the `flammable` facade; this crate holds the [`Task`] trait whose default
//! methods are the train, test and eval meta-algorithms, the data loader, optimizers,
//! schedules, checkpoints, the run store and its `Run` handle, and the CLI.
#![deny(missing_docs)]

pub mod allocator;
pub mod atomic;
pub mod checkpoint;
pub mod checkpoint_writer;
pub mod cli;
pub mod config;
pub mod data;
pub mod device;
pub mod env;
pub mod error;
pub mod grad;
pub mod hyper;
pub mod metrics;
pub mod nn;
pub mod optim;
pub mod output;
pub mod progress;
pub mod record;
pub mod rng;
pub mod ron_text;
pub mod run;
pub mod sample;
pub mod scalars;
pub mod schedule;
pub mod snapshot;
pub mod store;
pub mod task;
pub mod trainer;
pub mod values;
pub mod vars;

pub use config::{BestMode, OptimizerKind, TrainConfig};
pub use data::{Batch, BatchIter, Batcher, Batches, Dataset, TensorDataset};
pub use env::Env;
pub use error::{Error, Result};
pub use hyper::{HyperRecord, Hyperparameters, NoHyperparameters};
pub use optim::{AdamW, AdamWConfig, Optimizer, Sgd, SgdConfig};
pub use output::{Output, Prediction};
pub use run::Run;
pub use scalars::{Losses, Metrics, Results, Scalars};
pub use schedule::{Schedule, ScheduleKind};
pub use task::Task;
pub use trainer::Trainer;
pub use vars::Vars;
