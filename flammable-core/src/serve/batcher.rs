//! A model thread: the one thread that owns a model (models are not `Send`: each is built,
//! warmed up and used on one thread). Whenever its model is free, it takes as many queued
//! requests as fit a batch, computes them in one forward pass and answers each; a batch that
//! fails is computed again one request at a time, so that one bad request fails alone. It
//! stops once another model is served (after the batch in hand) or the queue closes.

use super::check::check;
use super::shared::{Answer, Answered, Current, Job, Reply, Shared, Want};
use crate::task::serve::Served;
use candle_core::Tensor;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A loaded model and its description.
pub struct Model {
    /// The model.
    pub served: Box<dyn Served>,
    /// Its description and sample dtype, as requests see them.
    pub current: Arc<Current>,
}

/// The queue of decoded requests, taken from by the model thread that serves.
pub type Queue = Arc<Mutex<Receiver<Job>>>;

/// How long a model thread waits for a request before it looks whether it still serves.
const IDLE_TICK: Duration = Duration::from_millis(50);

/// How long a model thread that has answered the only request in flight looks for the next
/// one before it sleeps (see [`Worker::next_job`]): a client on loopback sends its next request
/// within a few tens of microseconds.
const LOOK_BEFORE_SLEEP: Duration = Duration::from_micros(60);

/// What the queue gave.
enum Gathered {
    /// A batch to compute.
    Batch(Vec<Job>),
    /// Nothing for a while.
    Idle,
    /// The HTTP side has stopped and the queue is empty.
    Closed,
}

/// A model serving from the queue.
pub struct Worker {
    shared: Arc<Shared>,
    jobs: Queue,
    model: Model,
}

impl Worker {
    /// A worker of `model` over `jobs`.
    pub fn new(shared: Arc<Shared>, jobs: Queue, model: Model) -> Self {
        Worker {
            shared,
            jobs,
            model,
        }
    }

    /// The model's description.
    pub fn current(&self) -> &Arc<Current> {
        &self.model.current
    }

    /// Computes a batch of `size` copies of the task's own sample, so that the first requests
    /// do not pay for first-use allocations; returns what to say about it.
    pub fn warm_up(&self, size: usize) -> Result<String, String> {
        let model = self.model.served.as_ref();
        let Some(sample) = model.sample() else {
            return Ok("no sample of the task's data could be read: no warm-up, and requests of any shape are accepted".into());
        };
        let started = Instant::now();
        infer(model, vec![sample.clone(); size.max(1)], Want::Payload)?;
        Ok(format!(
            "warm-up: a batch of {} sample(s) of shape {:?} in {:.1} ms",
            size.max(1),
            sample.dims(),
            started.elapsed().as_secs_f64() * 1e3
        ))
    }

    /// Serves until another model is served or the queue closes.
    pub fn run(&self) {
        let generation = self.model.current.generation;
        let mut answered = false;
        loop {
            if self.shared.model().generation != generation {
                return;
            }
            match self.gather(answered) {
                Gathered::Batch(batch) => {
                    self.shared.queued.fetch_sub(batch.len(), Ordering::Relaxed);
                    self.compute(batch);
                    answered = true;
                }
                Gathered::Idle => answered = false,
                Gathered::Closed => return,
            }
        }
    }

    /// Waits for a first request (looked for a while first when `answered`, see
    /// [`Worker::next_job`]), then takes what is queued up to a batch, waiting for more
    /// until `--max-wait-ms` after the first one's arrival — or until the server stops: the
    /// batch in hand then goes through at once, so that its clients are answered within the
    /// shutdown deadline.
    fn gather(&self, answered: bool) -> Gathered {
        let max = self.shared.settings.max_batch_size as usize;
        let wait = Duration::from_millis(self.shared.settings.max_wait_ms);
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let first = match self.next_job(&jobs, answered) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => return Gathered::Idle,
            Err(RecvTimeoutError::Disconnected) => return Gathered::Closed,
        };
        let deadline = first.arrived + wait;
        let mut batch = vec![first];
        while batch.len() < max {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= deadline || self.shared.is_stopping() {
                        break;
                    }
                    // In short steps, so that a stop is seen within one.
                    match jobs.recv_timeout((deadline - now).min(IDLE_TICK)) {
                        Ok(job) => batch.push(job),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
        }
        Gathered::Batch(batch)
    }

    /// The next request, waited for up to [`IDLE_TICK`]. Right after a batch (`answered`),
    /// while at most one request is in flight (one client, asking again as soon as answered),
    /// it is looked for first for up to [`LOOK_BEFORE_SLEEP`]: a thread that sleeps must be
    /// woken by the request's sender, which on this project's machines took about a quarter of
    /// a lone request's time (`bench/results/serve_load.md`). Under more load the cores are
    /// the HTTP threads', and the thread sleeps at once.
    fn next_job(&self, jobs: &Receiver<Job>, answered: bool) -> Result<Job, RecvTimeoutError> {
        if answered && self.shared.in_flight.load(Ordering::Relaxed) <= 1 {
            let started = Instant::now();
            while started.elapsed() < LOOK_BEFORE_SLEEP {
                match jobs.try_recv() {
                    Ok(job) => return Ok(job),
                    Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                    Err(TryRecvError::Empty) => std::hint::spin_loop(),
                }
            }
        }
        jobs.recv_timeout(IDLE_TICK)
    }

    /// Answers `batch`: requests whose client has gone are dropped, those checked against
    /// another model checked again, the rest computed together.
    fn compute(&self, batch: Vec<Job>) {
        let current = &self.model.current;
        let run = current.info.run.as_str();
        let metrics = &self.shared.metrics;
        let mut live = Vec::with_capacity(batch.len());
        for mut job in batch {
            if job.reply.is_closed() {
                if job.client_gone() {
                    metrics.dropped(run);
                }
                continue;
            }
            if job.checked.generation != current.generation {
                // A reload came between the request's check and its turn.
                match check(job.sample, current, self.shared.non_finite_inputs) {
                    Ok(sample) => job.sample = sample,
                    Err(e) => {
                        let _ = job.reply.send(Err((e, run.to_string())));
                        continue;
                    }
                }
            }
            live.push(job);
        }
        if live.is_empty() {
            return;
        }
        let started = Instant::now();
        for job in &live {
            metrics.queued(run, started.duration_since(job.arrived).as_secs_f64());
        }
        // /predict's requests and the Open Inference Protocol's go through the model apart:
        // the task's serve_batch may be its own.
        let (outputs, payloads): (Vec<Job>, Vec<Job>) =
            live.into_iter().partition(|j| j.want == Want::Output);
        for group in [payloads, outputs] {
            if let Some(want) = group.first().map(|j| j.want) {
                self.compute_group(group, want, run);
            }
        }
    }

    /// Computes `live` (all wanting `want`) together; a batch that fails is computed again
    /// one request at a time, so that only the requests that fail by themselves get an error.
    fn compute_group(&self, live: Vec<Job>, want: Want, run: &str) {
        let started = Instant::now();
        let metrics = &self.shared.metrics;
        let served = self.model.served.as_ref();
        let samples = live.iter().map(|j| j.sample.clone()).collect();
        let outcome = infer(served, samples, want);
        let took = started.elapsed();
        super::inline::timed(&self.shared, live.len(), took);
        metrics.batch(run, live.len(), took.as_secs_f64());
        let answered = |reply| {
            Ok(Answered {
                reply,
                run: run.to_string(),
            })
        };
        match outcome {
            Ok(replies) => {
                for (job, reply) in live.into_iter().zip(replies) {
                    let _ = job.reply.send(answered(reply));
                }
            }
            Err(message) if live.len() == 1 => {
                let failure = self.shared.internal_error(&message);
                for job in live {
                    let _ = job.reply.send(Err((failure.clone(), run.to_string())));
                }
            }
            Err(_) => {
                for job in live {
                    // Answered already without it: another sample of its request failed.
                    if job.reply.is_closed() {
                        continue;
                    }
                    let started = Instant::now();
                    let answer: Answer = match infer(served, vec![job.sample], want) {
                        Ok(mut p) => match p.pop() {
                            Some(reply) => answered(reply),
                            None => Err((
                                self.shared.internal_error("no answer was computed"),
                                run.to_string(),
                            )),
                        },
                        Err(message) => {
                            Err((self.shared.internal_error(&message), run.to_string()))
                        }
                    };
                    metrics.batch(run, 1, started.elapsed().as_secs_f64());
                    let _ = job.reply.send(answer);
                }
            }
        }
    }
}

/// `samples` through the model, answered as `want` asks (results in JSON only, see
/// [`crate::task::output::answering_json`]); a panic in task code is caught and becomes an error.
pub fn infer(model: &dyn Served, samples: Vec<Tensor>, want: Want) -> Result<Vec<Reply>, String> {
    let n = samples.len();
    // The server answers JSON: results need not be written as RON text too.
    let computed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::task::output::answering_json(|| match want {
            Want::Payload => model
                .infer(samples)
                .map(|p| p.into_iter().map(Reply::Payload).collect::<Vec<_>>()),
            Want::Output => model
                .infer_outputs(samples)
                .map(|o| o.into_iter().map(Reply::Output).collect()),
        })
    }));
    match computed {
        Ok(Ok(replies)) if replies.len() == n => Ok(replies),
        Ok(Ok(replies)) => Err(format!(
            "serve_batch returned {} answers for {n} samples",
            replies.len()
        )),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(format!(
            "the task panicked: {}",
            panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into())
        )),
    }
}
