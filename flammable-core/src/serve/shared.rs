//! What the HTTP side and the worker exchange: queued jobs and their answers, reload orders,
//! and the state both read (readiness, the model's description, the metrics).

use super::args::ServeArgs;
use super::metrics::Metrics;
use crate::task::payload::Payload;
use candle_core::{DType, Tensor};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Instant;
use tokio::sync::oneshot;

/// A refusal or an error, as the client gets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, in one line.
    pub message: String,
    /// For errors in task code: the id of the log line that has the details.
    pub id: Option<String>,
}

impl Failure {
    /// A refusal with `status` and `message`.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
            id: None,
        }
    }
}

/// What a queued request gets back.
pub type Answer = std::result::Result<Payload, Failure>;

/// A decoded request waiting for the model.
pub struct Job {
    /// The sample, checked and in the model's dtype.
    pub sample: Tensor,
    /// When the request arrived.
    pub arrived: Instant,
    /// Where its answer goes; closed when the client has gone.
    pub reply: oneshot::Sender<Answer>,
}

/// An order for the worker, taken between batches.
pub enum Control {
    /// Load another checkpoint of the served run (`run: None`), or another train run of the
    /// same experiment, warm it up, then swap it in.
    Reload {
        /// The run (as `RUN` is written on the command line); `None`: the one served.
        run: Option<String>,
        /// The checkpoint; `None`: the one served.
        checkpoint: Option<String>,
        /// Where the outcome goes.
        reply: Option<oneshot::Sender<std::result::Result<ModelInfo, Failure>>>,
    },
}

/// The model being served, as `GET /info` shows it.
#[derive(Clone, Debug, Serialize, Default)]
pub struct ModelInfo {
    /// The train run.
    pub run: String,
    /// Its experiment.
    pub experiment: String,
    /// The checkpoint loaded.
    pub checkpoint: String,
    /// The commit of the run's code snapshot.
    pub commit: Option<String>,
    /// Its hyperparameters, flattened.
    pub hyperparameters: BTreeMap<String, String>,
    /// The shape requests must have (`None`: any).
    pub sample_shape: Option<Vec<usize>>,
    /// The dtype samples are converted to.
    pub sample_dtype: Option<String>,
    /// When it was loaded (RFC 3339).
    pub loaded: String,
}

/// The model being served, as requests see it: its description, and the dtype samples are
/// converted to.
#[derive(Clone, Debug, Default)]
pub struct Current {
    /// What `/info` shows.
    pub info: ModelInfo,
    /// The dtype of the task's samples (`None`: none could be read).
    pub dtype: Option<DType>,
}

/// The state the HTTP side and the worker share.
pub struct Shared {
    /// The settings served with.
    pub settings: ServeArgs,
    /// The serve run's id.
    pub serve_run: String,
    /// Set once the model has computed its warm-up batch.
    pub ready: AtomicBool,
    /// Set when the server stops taking requests.
    pub stopping: AtomicBool,
    /// Requests in the queue.
    pub queued: AtomicUsize,
    model: RwLock<Arc<Current>>,
    metrics: Mutex<Metrics>,
    next_error: AtomicU64,
    /// Lines for the serve run's log, written by the worker.
    log: Mutex<Vec<String>>,
}

impl Shared {
    /// The state of a server with `settings`, recorded as run `serve_run`.
    pub fn new(settings: ServeArgs, serve_run: String) -> Self {
        Shared {
            settings,
            serve_run,
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
            model: RwLock::new(Arc::new(Current::default())),
            metrics: Mutex::new(Metrics::default()),
            next_error: AtomicU64::new(1),
            log: Mutex::new(Vec::new()),
        }
    }

    /// The model served now (a shared pointer: cheap for every request).
    pub fn model(&self) -> Arc<Current> {
        self.model
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Serves `current` from now on.
    pub fn set_model(&self, current: Arc<Current>) {
        *self.model.write().unwrap_or_else(PoisonError::into_inner) = current;
    }

    /// The metrics, to update or read.
    pub fn metrics(&self) -> MutexGuard<'_, Metrics> {
        self.metrics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A failure of task code: a fresh id, and the line with it for the log.
    pub fn internal_error(&self, message: &str) -> Failure {
        let id = format!("e{}", self.next_error.fetch_add(1, Ordering::Relaxed));
        self.log(format!("error {id}: {message}"));
        Failure {
            status: 500,
            message: format!("{message} (error {id} in the server's log)"),
            id: Some(id),
        }
    }

    /// Queues `line` for the serve run's log (and stderr).
    pub fn log(&self, line: String) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }

    /// The log lines queued so far.
    pub fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
