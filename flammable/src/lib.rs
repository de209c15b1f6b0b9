//! # Flammable
//!
//! Machine-learning experiments on [candle]: write the steps specific to your problem in an
//! `impl` block, and `#[flammable::task]` turns it into an implementation of [`Task`] — whose
//! default methods are the train, test and eval meta-algorithms — plus a `main` with a
//! command line: `train`, `test [RUN]`, `eval [RUN] IN OUT`.
//!
//! ```no_run
//! use flammable::prelude::*;
//!
//! #[derive(Clone, Debug, serde::Serialize, serde::Deserialize, clap::Args)]
//! struct Hyper {
//!     /// Width of the hidden layer.
//!     #[arg(long, default_value_t = 32)]
//!     hidden: usize,
//! }
//!
//! struct Xor {
//!     net: candle_nn::Sequential,
//!     data: Vec<Batch>,
//! }
//!
//! #[flammable::task(no_main)]
//! impl Xor {
//!     #[init]
//!     fn new(hp: &Hyper, env: &Env) -> Result<Self> {
//!         let vb = env.builder();
//!         let net = candle_nn::seq()
//!             .add(candle_nn::linear(2, hp.hidden, vb.pp("l1"))?)
//!             .add(candle_nn::Activation::Relu)
//!             .add(candle_nn::linear(hp.hidden, 2, vb.pp("l2"))?);
//!         let x = Tensor::new(&[[0f32, 0.], [0., 1.], [1., 0.], [1., 1.]], env.device())?;
//!         let y = Tensor::new(&[0u32, 1, 1, 0], env.device())?;
//!         Ok(Xor { net, data: vec![Batch::new(x, y)] })
//!     }
//!
//!     #[data(train)]
//!     fn train_data(&self) -> Result<Batches> {
//!         Ok(Batches::from_vec(self.data.clone()))
//!     }
//!
//!     #[forward]
//!     fn forward(&self, x: &Tensor) -> Result<Tensor> {
//!         Ok(self.net.forward(x)?)
//!     }
//!
//!     #[loss]
//!     fn loss(&self, out: &Tensor, y: &Tensor) -> Result<Tensor> {
//!         Ok(candle_nn::loss::cross_entropy(out, y)?)
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     flammable::main::<Xor>()
//! }
//! ```
//!
//! ## Step attributes
//!
//! Each attribute fills the [`Task`] method of the same name, and every other step has a
//! default that can be replaced: the table, with the signature each step takes, is on
//! [`task`](macro@task) (where an editor shows it on hover).
//!
//! [candle]: https://github.com/huggingface/candle
#![warn(missing_docs)]

/// The global allocator of every binary that links Flammable with its default feature
/// `mimalloc`: see that feature in `Cargo.toml` for why. A binary that declares its own
/// `#[global_allocator]` builds Flammable with `default-features = false`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use flammable_core::{
    BestMode, Env, Error, HyperRecord, Hyperparameters, Losses, Metrics, NoHyperparameters,
    OptimizerKind, Output, Prediction, Result, Results, Run, Scalars, Schedule, ScheduleKind, Task,
    TrainConfig, Trainer, Vars,
};
pub use flammable_macros::task;

/// The data loader: [`data::Dataset`], [`data::TensorDataset`] (from tensors, or from a CSV
/// file with [`data::TensorDataset::from_csv`]; split by fractions), [`data::Batcher`]
/// (shuffling, prefetch), what data steps return — [`data::Batches`] of [`data::Batch`]es —
/// and the scalers kept with the model, [`data::Standardize`] and [`data::MinMax`] (one
/// [`data::Scaler`] fitted two ways).
pub mod data {
    pub use flammable_core::data::{
        Batch, BatchIter, Batcher, Batches, Dataset, Fit, MeanStd, MinMax, MinRange, Scaler,
        Standardize, Target, TensorDataset,
    };
}
pub use data::{Batch, BatchIter, Batcher, Batches, Dataset, TensorDataset};

/// What the serving steps exchange (`serve`): [`serving::Payload`], a response body;
/// [`serving::decode_json`], the default request reader, and [`serving::decode_json_at_most`]
/// for a reader that knows how many numbers a sample has; [`serving::check_finite`], the check
/// `serve` and `eval` make of every sample (unless the task takes non-finite inputs).
pub mod serving {
    pub use flammable_core::task::payload::Payload;
    pub use flammable_core::task::request::{
        check_finite, decode_json, decode_json_at_most, read_json,
    };
}
pub use serving::Payload;

/// Metrics pooled over the whole test split — accuracy, top-k accuracy, precision, recall
/// and F1 (macro, micro), the confusion matrix, MSE, RMSE, MAE, R² — from a `#[metric]`
/// function that returns a [`metrics::Pooled`], or named in the attribute:
/// `#[metric(f1_macro)]` (see [`metrics::BUILT_IN`]).
pub mod metrics {
    pub use flammable_core::train::pooled::{
        accuracy, built_in, confusion, f1_macro, mae, mse, r2, rmse, score, top_k_accuracy,
        Average, Finish, Pooled, Score, BUILT_IN,
    };
}

/// Optimizers whose state checkpoints keep, and learning-rate schedules.
pub mod optim {
    pub use flammable_core::hyper::schedule::{Schedule, ScheduleKind};
    pub use flammable_core::train::optim::{AdamW, AdamWConfig, Optimizer, Sgd, SgdConfig};
}
pub use optim::{AdamW, AdamWConfig, Optimizer, Sgd, SgdConfig};

/// Layers candle lacks, seeded from the run: [`nn::Dropout`].
pub mod nn {
    pub use flammable_core::model::nn::Dropout;
}

/// Seeded random generators: the same draws for the same run seed, label and index.
pub mod rng {
    pub use flammable_core::model::rng::*;
}

/// Value parsers for hyperparameter flags (`value_parser = flammable::values::probability`).
pub mod values {
    pub use flammable_core::hyper::values::*;
}

/// Gradient clipping and accumulation, on the device (for custom backward steps).
pub mod grad {
    pub use flammable_core::train::grad::{accumulate, clip_grad_norm};
}

/// The processes of one data-parallel training (`mpiexec -n N <task> train`, feature `mpi`):
/// [`collective::world`] is this process's world (`None` alone), [`collective::Collective`]
/// its operations.
pub mod collective {
    pub use flammable_core::collective::{world, Collective};
}

/// Checkpoint files: loading tensors and training states, the numbered sets of a run.
pub mod checkpoint {
    pub use flammable_core::checkpoint::{
        load_state, load_tensors, numbered_checkpoints, save_tensors, TrainingState,
    };
}
pub use checkpoint::TrainingState;

/// The run store, for tools that read runs: [`store::Store`] (locate, list, resolve `RUN`),
/// each run's [`store::Record`], and its metric points.
pub mod store {
    pub use flammable_core::store::followers::{read_run_metrics, read_run_series};
    pub use flammable_core::store::metrics::{read_metrics, read_series, Point, Series};
    pub use flammable_core::store::record::{
        Build, BuildTarget, Distributed, Environment, Record, RunKind, RunStatus, SnapshotRecord,
        TestResult,
    };
    pub use flammable_core::store::{GcReport, Removal, Store, STORE_ENV};
}

/// Git snapshots of the working tree: take one, list, diff and check them out.
pub mod snapshot {
    pub use flammable_core::snapshot::*;
}

/// Re-exported so that tasks use the same candle as flammable.
pub use candle_core;
/// Re-exported so that tasks use the same candle-nn as flammable.
pub use candle_nn;
/// Re-exported for hyperparameter structs, so that a task needs only `flammable` in its
/// `Cargo.toml`: `use flammable::clap;` puts `clap::Args` (and what its derive expands to) in
/// scope.
pub use clap;
/// Re-exported for hyperparameter structs: with `use flammable::serde;`, derive as usual and
/// add `#[serde(crate = "flammable::serde")]` (serde's derive names its crate otherwise).
pub use serde;

/// The [`store::BuildTarget`] of the crate it is written in: for a hand-written
/// [`Task::build_target`], so that `rerun` can build the task again (the macro writes it
/// for you).
///
/// ```ignore
/// impl flammable::Task for MyTask {
///     fn build_target() -> flammable::store::BuildTarget {
///         flammable::build_target!()
///     }
///     // …
/// }
/// ```
#[macro_export]
macro_rules! build_target {
    () => {
        $crate::store::BuildTarget {
            package: ::core::env!("CARGO_PKG_NAME"),
            name: ::core::env!("CARGO_CRATE_NAME"),
            manifest_dir: ::core::env!("CARGO_MANIFEST_DIR"),
        }
    };
}

/// Runs the command line of task `T`: what the generated `main` calls. Call it from
/// `fn main`, before starting threads (it sets the CPU thread count candle reads from the
/// environment).
pub fn main<T: Task + 'static>() -> std::process::ExitCode {
    flammable_core::cli::main::<T>()
}

/// [`main`] for a task that is `Send` and `Sync` (as a task of candle layers, tensors and
/// plain values is): `serve` may then compute a small request on the thread that read it,
/// instead of handing it to the model's thread and back. The `main` that `#[flammable::task]`
/// writes picks this one by itself where the task allows it.
pub fn main_shared<T: Task + Send + Sync + 'static>() -> std::process::ExitCode {
    flammable_core::cli::main_serving::<T>(flammable_core::task::serve::shared_loader::<T>)
}

/// The names most tasks use: `use flammable::prelude::*;`.
pub mod prelude {
    pub use candle_core::{DType, Device, Tensor, Var, D};
    pub use candle_nn::{Module, VarBuilder};
    pub use flammable_core::data::{MinMax, Standardize, Target};
    pub use flammable_core::model::nn::Dropout;
    pub use flammable_core::task::payload::Payload;
    pub use flammable_core::train::pooled::Pooled;
    pub use flammable_core::{
        Batch, Batcher, Batches, Dataset, Env, Error, Losses, Metrics, NoHyperparameters,
        Optimizer, Output, Result, Results, Task, TensorDataset, TrainConfig, Trainer,
    };
}
