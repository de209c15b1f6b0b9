//! What the HTTP side and the model threads exchange: queued jobs and their answers, reload
//! orders, and the state all read (readiness, the model served, the metrics, the log).

use super::args::ServeArgs;
use super::metrics::Metrics;
use super::streak::Streak;
use crate::task::payload::Payload;
use crate::web::AppError;
use candle_core::{DType, Tensor};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;
use tokio::sync::oneshot;

/// A computed answer, and the run whose model computed it.
#[derive(Debug)]
pub struct Answered {
    /// What was asked for.
    pub reply: Reply,
    /// The train run whose model computed it.
    pub run: String,
}

/// What a request asks of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// The task's response body (`serve_batch`: `postprocess`, `encode_response`): `/predict`.
    Payload,
    /// The model's output for the sample, before `postprocess`: the Open Inference Protocol.
    Output,
}

/// A computed answer, as [`Want`] asked.
#[derive(Debug)]
pub enum Reply {
    /// The task's response body.
    Payload(Payload),
    /// The model's output for the sample, on the CPU.
    Output(Tensor),
}

/// What a queued request gets back: its answer, or a refusal or an error with the run whose
/// model refused it.
pub type Answer = std::result::Result<Answered, (AppError, String)>;

/// A decoded request waiting for the model.
pub struct Job {
    /// The sample, checked against `checked` and in its dtype.
    pub sample: Tensor,
    /// The model the sample was checked against: a model that differs re-checks it.
    pub checked: Arc<Current>,
    /// When the request arrived.
    pub arrived: Instant,
    /// What it asks for.
    pub want: Want,
    /// Where its answer goes; closed when the client has gone.
    pub reply: oneshot::Sender<Answer>,
    /// For one sample of a request of several: set when the request was answered without
    /// it (another of its samples failed), so that its closed reply is not counted as a
    /// client gone.
    pub given_up: Option<Arc<AtomicBool>>,
}

impl Job {
    /// Whether its client has gone: its reply is closed, and not because its request was
    /// answered without it.
    pub fn client_gone(&self) -> bool {
        self.reply.is_closed()
            && !self
                .given_up
                .as_ref()
                .is_some_and(|g| g.load(Ordering::Relaxed))
    }
}

/// A request counted in [`Shared::in_flight`] while this lives
/// (`Counted::new(&shared.in_flight)`).
pub type InFlight<'a> = crate::util::counted::Counted<&'a AtomicUsize>;

/// What a reload names: a train run (as `RUN` is written; `None`: the one served) and a
/// checkpoint (`None`: the one `serve` was started with).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// The run.
    pub run: Option<String>,
    /// The checkpoint.
    pub checkpoint: Option<String>,
}

/// A reload's outcome: the model now served, or why the one served stays.
pub type Reloaded = std::result::Result<ModelInfo, AppError>;

/// An order to load another model, carried out off the thread that computes.
pub struct Reload {
    /// What to load.
    pub target: Target,
    /// Where the outcome goes (`None`: SIGHUP, which nobody waits for).
    pub reply: Option<oneshot::Sender<Reloaded>>,
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
    /// The shape of the model's output for one sample (before `postprocess`; without a
    /// batch dimension, as `sample_shape`), as computed on the task's sample when loaded
    /// (`None` without a sample, or when that failed).
    pub output_shape: Option<Vec<usize>>,
    /// The dtype of that output (`f32`, …).
    pub output_dtype: Option<String>,
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
    /// Which load this is (1, 2, …): the model thread whose generation is no longer the
    /// served one stops after its batch.
    pub generation: u64,
    /// The model itself, where the threads that read requests may compute with it (see
    /// [`super::inline`]).
    pub inline: Option<super::inline::Inline>,
}

/// The state the HTTP side and the model threads share.
pub struct Shared {
    /// The settings served with.
    pub settings: ServeArgs,
    /// The serve run's id.
    pub serve_run: String,
    /// Whether the task takes NaN and infinite inputs.
    pub non_finite_inputs: bool,
    /// Set once the model has computed its warm-up batch.
    pub ready: AtomicBool,
    /// Set when the server stops taking requests.
    pub stopping: AtomicBool,
    /// Requests in the queue.
    pub queued: AtomicUsize,
    /// Reload orders waiting to be carried out.
    pub reloads_pending: AtomicUsize,
    /// Whether the task's reader has proven quick (see `http::read_body`).
    pub quick_reads: Streak,
    /// Requests between their arrival at a handler that computes and their answer (see
    /// [`InFlight`]): how the model thread knows whether a client is alone.
    pub in_flight: AtomicUsize,
    /// Connections open: with `in_flight`, how the HTTP side knows whether a client is alone.
    pub connections: Arc<AtomicUsize>,
    /// Whether the model has proven quick (see [`super::inline::QUICK_COMPUTES`]).
    pub quick_computes: Streak,
    model: RwLock<Arc<Current>>,
    /// The metrics.
    pub metrics: Metrics,
    next_error: AtomicU64,
    /// Lines for the serve run's log, written by the thread that serves.
    log: Mutex<Vec<String>>,
}

impl Shared {
    /// The state of a server with `settings`, recorded as run `serve_run`.
    pub fn new(settings: ServeArgs, serve_run: String, non_finite_inputs: bool) -> Self {
        Shared {
            settings,
            serve_run,
            non_finite_inputs,
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
            reloads_pending: AtomicUsize::new(0),
            quick_reads: Streak::new(super::http::QUICK_READS),
            in_flight: AtomicUsize::new(0),
            connections: Arc::default(),
            quick_computes: Streak::new(super::inline::QUICK_COMPUTES),
            model: RwLock::new(Arc::new(Current::default())),
            metrics: Metrics::default(),
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

    /// Whether the request in hand is the only one, from the only client connected: it is
    /// then answered soonest by two threads that look for each other's messages rather than
    /// sleep (see `http::wait_for`).
    pub fn alone(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) <= 1 && self.connections.load(Ordering::Relaxed) <= 1
    }

    /// Whether the server is stopping.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// A failure of task code: a fresh id, and the line with it for the log.
    pub fn internal_error(&self, message: &str) -> AppError {
        let id = format!("e{}", self.next_error.fetch_add(1, Ordering::Relaxed));
        self.log(format!("error {id}: {message}"));
        AppError::internal(
            format!("{message} (error {id} in the server's log)"),
            Some(id),
        )
    }

    /// Queues `line` for the serve run's log (and stderr), its control characters escaped:
    /// a line may quote a client's text (a reload's run), which must not forge lines of its
    /// own or write to the terminal.
    pub fn log(&self, line: String) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(crate::util::printable::printable(&line));
    }

    /// The log lines queued so far.
    pub fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_whose_request_was_answered_without_it_is_no_client_gone() {
        let job = |given_up: Option<Arc<AtomicBool>>| {
            let (reply, answer) = oneshot::channel();
            let job = Job {
                sample: Tensor::zeros(1, DType::F32, &candle_core::Device::Cpu).unwrap(),
                checked: Arc::new(Current::default()),
                arrived: Instant::now(),
                want: Want::Output,
                reply,
                given_up,
            };
            (job, answer)
        };
        let (alone, answer) = job(None);
        assert!(!alone.client_gone());
        drop(answer);
        assert!(alone.client_gone());
        let flag = Arc::new(AtomicBool::new(false));
        let (sibling, answer) = job(Some(flag.clone()));
        drop(answer);
        assert!(sibling.client_gone(), "not given up: its client went");
        flag.store(true, Ordering::Relaxed);
        assert!(!sibling.client_gone());
    }
}
