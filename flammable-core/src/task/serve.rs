//! Serving: [`Task::serve_batch`]'s default body, and a trained model behind a trait object
//! ([`Served`]) for the inference server, which knows no task's types.

use super::load::load_run_filled;
use super::payload::Payload;
use super::request;
use super::Task;
use crate::env::Env;
use crate::error::{Error, Result};
use crate::hyper::defaults::Filled;
use crate::store::record::Record;
use crate::store::Store;
use candle_core::{Device, Tensor};
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::Arc;

/// A batch of decoded samples through the model, one response body per sample in order:
/// `prepare_eval` each → `collate` → `forward_eval` → one read-back of the output to the
/// CPU → `uncollate` → `postprocess` and `encode_response` each.
pub fn serve_batch<T: Task>(task: &T, samples: Vec<Tensor>, env: &Env) -> Result<Vec<Payload>> {
    let parts = forward_parts(task, samples, env)?;
    let classes = env.classes();
    parts
        .iter()
        .map(|part| {
            let result = task
                .postprocess(part)
                .and_then(|result| result.with_classes(&classes))
                .map_err(|e| e.in_step("postprocess"))?;
            task.encode_response(&result)
                .map_err(|e| e.in_step("encode_response"))
        })
        .collect()
}

/// A batch of decoded samples through the model, one output per sample in order, on the
/// CPU: `prepare_eval` each → `collate` → `forward_eval` → one read-back of the output →
/// `uncollate`. An output holding NaN or an infinite value is an error.
pub fn forward_parts<T: Task>(task: &T, samples: Vec<Tensor>, env: &Env) -> Result<Vec<Tensor>> {
    let n = samples.len();
    let mut inputs = Vec::with_capacity(n);
    for sample in samples {
        inputs.push(
            task.prepare_eval(sample, env.device())
                .map_err(|e| e.in_step("prepare_eval"))?,
        );
    }
    let sizes: Vec<usize> = inputs
        .iter()
        .map(|t| t.dims().first().copied().unwrap_or(1))
        .collect();
    let batch = task.collate(inputs).map_err(|e| e.in_step("collate"))?;
    let output = task
        .forward_eval(&batch)
        .map_err(|e| e.in_step("forward"))?;
    // One transfer per batch, rather than one per sample in `postprocess`.
    let output = output
        .to_device(&Device::Cpu)
        .map_err(|e| Error::from(e).in_step("forward"))?;
    // The server computes each sample of a failed batch alone: only the one whose output is
    // not finite fails.
    request::check_finite_output(&output).map_err(|e| e.in_step("forward"))?;
    let parts = task
        .uncollate(&output, &sizes)
        .map_err(|e| e.in_step("uncollate"))?;
    if parts.len() != n {
        return Err(Error::msg(format!(
            "uncollate returned {} outputs for {n} samples",
            parts.len()
        )));
    }
    Ok(parts)
}

/// A trained model ready to serve, its task's types hidden: what the inference server holds.
/// Not `Send` in general: it lives on the one thread that built it, unless [`Served::shared`]
/// hands out a handle that any thread may use.
pub trait Served {
    /// The train run it was loaded from.
    fn record(&self) -> &Record;
    /// The checkpoint it was loaded from (`latest`, `best`, `step-N`).
    fn checkpoint(&self) -> &str;
    /// One sample of the task's data (the first of its test data, else of its validation
    /// or training data), on the CPU: what requests should look like, and the warm-up input.
    fn sample(&self) -> Option<&Tensor>;
    /// Samples through [`Task::serve_batch`]: one response body per sample, in order.
    fn infer(&self, samples: Vec<Tensor>) -> Result<Vec<Payload>>;
    /// Samples through the model ([`forward_parts`]): its output for each sample, in order, on
    /// the CPU, before `postprocess` (what the Open Inference Protocol answers).
    fn infer_outputs(&self, samples: Vec<Tensor>) -> Result<Vec<Tensor>>;
    /// The hyperparameters the run recorded none of (it was recorded before they existed),
    /// which took their defaults.
    fn filled(&self) -> &[Filled] {
        &[]
    }
    /// The same model as a handle other threads may use at once, where its task is `Send` and
    /// `Sync` (loaded by [`shared_loader`]); `None` where only the thread that built it may.
    fn shared(&self) -> Option<SharedModel> {
        None
    }
}

/// A model any thread may compute with, at the same time as others.
pub type SharedModel = Arc<dyn Served + Send + Sync>;

/// Task `T` built with train run `record`'s hyperparameters, its checkpoint `checkpoint`
/// loaded on `device`.
pub struct Loaded<T: Task> {
    task: T,
    env: Env,
    record: Record,
    checkpoint: String,
    sample: Option<Tensor>,
    filled: Vec<Filled>,
}

impl<T: Task> Loaded<T> {
    /// Builds the task of train run `record` of `store` and loads its checkpoint `checkpoint`.
    pub fn load(store: &Store, record: &Record, checkpoint: &str, device: Device) -> Result<Self> {
        let (task, env, filled) = load_run_filled::<T>(store, record, checkpoint, device)?;
        // What the run recorded of its inputs needs no data; an older run's data stand in.
        let sample = recorded_sample(record).or_else(|| first_sample(&task, &env));
        Ok(Loaded {
            task,
            env,
            record: record.clone(),
            checkpoint: checkpoint.to_string(),
            sample,
            filled,
        })
    }
}

/// The task's request reader ([`Task::decode_request`]), for the server.
pub type Decode = fn(&[u8], &str) -> Result<Tensor>;

/// The function the server loads models with: [`Loaded::load`] behind a trait object.
pub type Loader = fn(&Store, &Record, &str, Device) -> Result<Box<dyn Served>>;

/// [`Loader`] of task `T`.
pub fn loader<T: Task + 'static>(
    store: &Store,
    record: &Record,
    checkpoint: &str,
    device: Device,
) -> Result<Box<dyn Served>> {
    Ok(Box::new(Loaded::<T>::load(
        store, record, checkpoint, device,
    )?))
}

/// [`Loader`] of task `T` whose models other threads may use ([`Served::shared`]): the
/// server then computes small requests on the thread that read them, sparing the hand-off to
/// the model's thread and back.
pub fn shared_loader<T: Task + Send + Sync + 'static>(
    store: &Store,
    record: &Record,
    checkpoint: &str,
    device: Device,
) -> Result<Box<dyn Served>> {
    Ok(Box::new(SharedLoaded(Arc::new(Loaded::<T>::load(
        store, record, checkpoint, device,
    )?))))
}

/// A loaded model behind a shared pointer (see [`shared_loader`]).
struct SharedLoaded<T: Task>(Arc<Loaded<T>>);

impl<T: Task + Send + Sync + 'static> Served for SharedLoaded<T> {
    fn record(&self) -> &Record {
        self.0.record()
    }

    fn checkpoint(&self) -> &str {
        self.0.checkpoint()
    }

    fn sample(&self) -> Option<&Tensor> {
        self.0.sample()
    }

    fn infer(&self, samples: Vec<Tensor>) -> Result<Vec<Payload>> {
        self.0.infer(samples)
    }

    fn infer_outputs(&self, samples: Vec<Tensor>) -> Result<Vec<Tensor>> {
        self.0.infer_outputs(samples)
    }

    fn filled(&self) -> &[Filled] {
        self.0.filled()
    }

    fn shared(&self) -> Option<SharedModel> {
        Some(self.0.clone())
    }
}

/// Picks the [`Loader`] of task `T` where `T` is a concrete type (the `main` that
/// `#[flammable::task]` writes): `(&&LoaderProbe::<T>::NEW).serve_loader()`, with
/// [`SharedLoaderOf`] and [`LocalLoaderOf`] in scope, is [`shared_loader`] where `T` is `Send`
/// and `Sync` and [`loader`] otherwise. (Method lookup tries the receiver `&&LoaderProbe<T>`
/// before `&LoaderProbe<T>`, and passes over an impl whose bounds `T` does not meet.)
pub struct LoaderProbe<T>(PhantomData<T>);

impl<T> LoaderProbe<T> {
    /// The probe.
    pub const NEW: Self = LoaderProbe(PhantomData);
}

/// See [`LoaderProbe`]: tasks that are `Send` and `Sync`.
pub trait SharedLoaderOf {
    /// The task's loader.
    fn serve_loader(&self) -> Loader;
    /// Whether its models may be used by any thread (true).
    fn shares_models(&self) -> bool;
}

impl<T: Task + Send + Sync + 'static> SharedLoaderOf for &LoaderProbe<T> {
    fn serve_loader(&self) -> Loader {
        shared_loader::<T>
    }

    fn shares_models(&self) -> bool {
        true
    }
}

/// See [`LoaderProbe`]: every task.
pub trait LocalLoaderOf {
    /// The task's loader.
    fn serve_loader(&self) -> Loader;
    /// Whether its models may be used by any thread (false).
    fn shares_models(&self) -> bool;
}

impl<T: Task + 'static> LocalLoaderOf for LoaderProbe<T> {
    fn serve_loader(&self) -> Loader {
        loader::<T>
    }

    fn shares_models(&self) -> bool {
        false
    }
}

impl<T: Task> Served for Loaded<T> {
    fn record(&self) -> &Record {
        &self.record
    }

    fn checkpoint(&self) -> &str {
        &self.checkpoint
    }

    fn sample(&self) -> Option<&Tensor> {
        self.sample.as_ref()
    }

    fn infer(&self, samples: Vec<Tensor>) -> Result<Vec<Payload>> {
        self.task.serve_batch(samples, &self.env)
    }

    fn infer_outputs(&self, samples: Vec<Tensor>) -> Result<Vec<Tensor>> {
        forward_parts(&self.task, samples, &self.env)
    }

    fn filled(&self) -> &[Filled] {
        &self.filled
    }
}

/// A sample of zeros shaped as run `record`'s training inputs were (see
/// [`crate::store::record::InputSpec`]), on the CPU; `None` for a run that recorded none.
fn recorded_sample(record: &Record) -> Option<Tensor> {
    let spec = record.input.as_ref()?;
    let dtype = candle_core::DType::from_str(&spec.dtype).ok()?;
    Tensor::zeros(spec.shape.as_slice(), dtype, &Device::Cpu).ok()
}

/// The first sample of the task's test data, else validation data, else training data, on
/// the CPU; `None` when none can be read.
fn first_sample<T: Task>(task: &T, env: &Env) -> Option<Tensor> {
    let from = |data: Option<crate::data::Batches>| -> Option<Tensor> {
        let batch = data?
            .epoch(0, env.seed(), env.device())
            .ok()?
            .next()?
            .ok()?;
        batch.input.get(0).ok()?.to_device(&Device::Cpu).ok()
    };
    from(task.test_data().ok())
        .or_else(|| from(task.validation_data().ok().flatten()))
        .or_else(|| from(task.train_data().ok()))
}
