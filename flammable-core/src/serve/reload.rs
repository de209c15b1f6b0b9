//! Model threads and reloads. Each model is built, warmed up and computed on a thread of its
//! own, so that loading the next model never holds up the one serving: it is swapped in once
//! it has computed a sample, and the old one's thread stops after its batch in hand.
//!
//! Reload orders (`POST /reload`, SIGHUP) wait in a short queue and are coalesced: orders for
//! the same target that arrive while another load runs are carried out by one load, and all
//! get its outcome. One load runs at a time.

use super::batcher::{Queue, Worker};
use super::load::Loading;
use super::shared::{Reload, Reloaded, Shared, Target};
use crate::web::AppError;
use axum::http::StatusCode;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::thread::Scope;
use std::time::Duration;
use tokio::sync::oneshot;

/// Reload orders that may wait at once; beyond, `POST /reload` gets 503.
pub const MAX_PENDING_RELOADS: usize = 8;

/// How long the supervisor waits for an order before it looks at the load in progress.
const TICK: Duration = Duration::from_millis(50);

/// What the first model's thread reports: the model (described) once loaded and served,
/// then how its warm-up went.
pub enum FirstModel {
    /// Loaded, and served from now on; or why it cannot be.
    Loaded(Result<(), AppError>),
    /// The line to say about the warm-up, or why the model fails on its own sample.
    WarmedUp(Result<String, String>),
}

/// Starts the first model's thread: it loads train run `run`'s checkpoint `checkpoint`,
/// serves it at once (requests queue while it warms up), computes a warm-up batch of
/// `warm_up` samples, and serves until another model replaces it or the queue closes.
pub fn first_model<'scope>(
    scope: &'scope Scope<'scope, '_>,
    loading: &'scope Loading<'_>,
    shared: &Arc<Shared>,
    queue: &Queue,
    (run, checkpoint): (String, Option<String>),
    warm_up: usize,
) -> Receiver<FirstModel> {
    let (report, reports) = mpsc::channel();
    let (shared, queue) = (shared.clone(), queue.clone());
    scope.spawn(move || {
        let model = match loading.load(&run, checkpoint.as_deref()) {
            Ok(model) => model,
            Err(e) => {
                let _ = report.send(FirstModel::Loaded(Err(e)));
                return;
            }
        };
        shared.set_model(model.current.clone());
        let worker = Worker::new(shared, queue, model);
        let _ = report.send(FirstModel::Loaded(Ok(())));
        let warmed = worker.warm_up(warm_up);
        let ok = warmed.is_ok();
        let _ = report.send(FirstModel::WarmedUp(warmed));
        if ok {
            worker.run();
        }
    });
    reports
}

/// Where the outcome of one load goes: one entry per order it carries out (`None`: SIGHUP).
type Replies = Vec<Option<oneshot::Sender<Reloaded>>>;

/// Takes reload orders, coalesces them and carries them out one at a time, each on a thread
/// that then serves the model it loaded.
pub struct Supervisor<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    loading: &'scope Loading<'env>,
    shared: Arc<Shared>,
    queue: Queue,
    orders: Receiver<Reload>,
    /// The checkpoint a reload that names none loads (`--checkpoint`; `None`: best where
    /// the run has one, else latest).
    checkpoint: Option<String>,
    /// Orders not yet started, one entry per target.
    pending: VecDeque<(Target, Replies)>,
    /// The load in progress: the orders it answers, and where its outcome comes.
    running: Option<(Replies, Receiver<Reloaded>)>,
}

impl<'scope, 'env> Supervisor<'scope, 'env> {
    /// A supervisor of the orders from `orders`; a reload that names no checkpoint loads
    /// `checkpoint`.
    pub fn new(
        scope: &'scope Scope<'scope, 'env>,
        loading: &'scope Loading<'env>,
        shared: Arc<Shared>,
        queue: Queue,
        orders: Receiver<Reload>,
        checkpoint: Option<String>,
    ) -> Self {
        Supervisor {
            scope,
            loading,
            shared,
            queue,
            orders,
            checkpoint,
            pending: VecDeque::new(),
            running: None,
        }
    }

    /// Waits a little for orders, answers the load that finished, starts the next one;
    /// returns what to say (the log).
    pub fn tick(&mut self) -> Vec<String> {
        let mut said = Vec::new();
        match self.orders.recv_timeout(TICK) {
            Ok(order) => {
                self.add(order);
                while let Ok(order) = self.orders.try_recv() {
                    self.add(order);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            // The HTTP side has stopped: nothing more will come.
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(TICK),
        }
        if let Some((replies, outcome)) = &self.running {
            let done = match outcome.try_recv() {
                Ok(done) => Some(done),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => Some(Err(AppError::internal(
                    "the thread loading the model stopped",
                    None,
                ))),
            };
            if let Some(done) = done {
                said.push(match &done {
                    Ok(info) => format!(
                        "now serving run {} (checkpoint {})",
                        info.run, info.checkpoint
                    ),
                    Err(e) => format!("reload refused: {}", e.message),
                });
                // The orders stop counting as waiting before anyone hears the outcome: a
                // client that reloads again on its answer must find their places free.
                self.shared
                    .reloads_pending
                    .fetch_sub(replies.len(), Ordering::Relaxed);
                if let Some((replies, _)) = self.running.take() {
                    for reply in replies.into_iter().flatten() {
                        let _ = reply.send(done.clone());
                    }
                }
            }
        }
        if self.running.is_none() {
            if let Some((target, replies)) = self.pending.pop_front() {
                let outcome = self.start(target);
                self.running = Some((replies, outcome));
            }
        }
        said
    }

    fn add(&mut self, order: Reload) {
        match self.pending.iter_mut().find(|(t, _)| *t == order.target) {
            Some((_, replies)) => replies.push(order.reply),
            None => self.pending.push_back((order.target, vec![order.reply])),
        }
    }

    /// Starts loading `target` on a thread of its own, which serves it once swapped in.
    fn start(&self, target: Target) -> Receiver<Reloaded> {
        let (report, outcome) = mpsc::channel();
        let run = target
            .run
            .unwrap_or_else(|| self.shared.model().info.run.clone());
        let checkpoint = target.checkpoint.or_else(|| self.checkpoint.clone());
        let (shared, queue, loading) = (self.shared.clone(), self.queue.clone(), self.loading);
        self.scope.spawn(move || {
            let model = match loading.load(&run, checkpoint.as_deref()) {
                Ok(model) => model,
                Err(e) => {
                    let _ = report.send(Err(e));
                    return;
                }
            };
            // As `serve` says of the run it starts with.
            let filled = model.served.filled();
            if let Some(line) = crate::hyper::defaults::describe(&model.current.info.run, filled) {
                shared.log(line);
            }
            let worker = Worker::new(shared.clone(), queue, model);
            if let Err(e) = worker.warm_up(1) {
                let _ = report.send(Err(AppError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("the new model failed its warm-up, so the old one stays: {e}"),
                )));
                return;
            }
            if shared.is_stopping() {
                let _ = report.send(Err(AppError::unavailable("the server is stopping")));
                return;
            }
            shared.set_model(worker.current().clone());
            let _ = report.send(Ok(worker.current().info.clone()));
            worker.run();
        });
        outcome
    }
}
