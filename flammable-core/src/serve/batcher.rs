//! The worker: the one thread that owns the model. It takes as many queued requests as fit a
//! batch whenever the model is free, computes them in one forward pass and answers each; a
//! batch that fails is computed again one request at a time, so that one bad request fails
//! alone. Between batches it carries out reloads.

use super::shared::{Answer, Control, Current, Failure, Job, ModelInfo, Shared};
use crate::task::payload::Payload;
use crate::task::serve::Served;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A loaded model and its description.
pub struct Model {
    /// The model.
    pub served: Box<dyn Served>,
    /// Its description and sample dtype, as requests see them.
    pub current: Arc<Current>,
}

/// Loads the model a reload names: `(run, checkpoint)`, `None` meaning the one served.
pub type Load<'a> = dyn Fn(Option<&str>, Option<&str>) -> Result<Model, Failure> + 'a;

/// How often the worker looks at reload orders while no request comes.
const IDLE_TICK: Duration = Duration::from_millis(50);

/// The worker's side of the server.
pub struct Worker<'a> {
    shared: Arc<Shared>,
    jobs: Receiver<Job>,
    control: Receiver<Control>,
    model: Model,
    load: &'a Load<'a>,
    say: &'a dyn Fn(&str),
}

impl<'a> Worker<'a> {
    /// A worker over `model`, fed by `jobs` and `control`; `say` prints and logs a line.
    pub fn new(
        shared: Arc<Shared>,
        jobs: Receiver<Job>,
        control: Receiver<Control>,
        model: Model,
        load: &'a Load<'a>,
        say: &'a dyn Fn(&str),
    ) -> Self {
        shared.set_model(model.current.clone());
        Worker {
            shared,
            jobs,
            control,
            model,
            load,
            say,
        }
    }

    /// Computes a full batch of the task's own sample, so that the first requests do not pay
    /// for first-use allocations; returns what to say about it.
    pub fn warm_up(&self) -> Result<String, String> {
        let size = (self.shared.settings.max_batch_size as usize).min(256);
        warm_up(self.model.served.as_ref(), size)
    }

    /// Serves until every sender of jobs is gone (the HTTP side stopped), then answers what
    /// is still queued.
    pub fn run(&mut self) {
        let max = self.shared.settings.max_batch_size as usize;
        let wait = Duration::from_millis(self.shared.settings.max_wait_ms);
        loop {
            self.flush_log();
            self.take_orders();
            let first = match self.jobs.recv_timeout(IDLE_TICK) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let deadline = first.arrived + wait;
            let mut batch = vec![first];
            while batch.len() < max {
                match self.jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(TryRecvError::Disconnected) => break,
                    Err(TryRecvError::Empty) => {
                        let now = Instant::now();
                        if now >= deadline {
                            break;
                        }
                        match self.jobs.recv_timeout(deadline - now) {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                }
            }
            self.shared.queued.fetch_sub(batch.len(), Ordering::Relaxed);
            self.compute(batch);
        }
        self.flush_log();
    }

    /// Answers `batch`: requests whose client has gone are dropped, the rest computed together.
    fn compute(&self, batch: Vec<Job>) {
        let run = self.model.current.info.run.clone();
        let (live, gone): (Vec<Job>, Vec<Job>) =
            batch.into_iter().partition(|j| !j.reply.is_closed());
        if !gone.is_empty() {
            let mut m = self.shared.metrics();
            for _ in &gone {
                m.dropped(&run);
            }
        }
        if live.is_empty() {
            return;
        }
        let started = Instant::now();
        {
            let mut m = self.shared.metrics();
            for job in &live {
                m.queued(&run, started.duration_since(job.arrived).as_secs_f64());
            }
        }
        let samples = live.iter().map(|j| j.sample.clone()).collect();
        let outcome = infer(self.model.served.as_ref(), samples);
        self.shared
            .metrics()
            .batch(&run, live.len(), started.elapsed().as_secs_f64());
        match outcome {
            Ok(payloads) => {
                for (job, payload) in live.into_iter().zip(payloads) {
                    let _ = job.reply.send(Ok(payload));
                }
            }
            Err(message) if live.len() == 1 => {
                let failure = self.shared.internal_error(&message);
                for job in live {
                    let _ = job.reply.send(Err(failure.clone()));
                }
            }
            Err(_) => {
                // One request may have failed the batch: compute each alone, so that only
                // the requests that fail by themselves get an error.
                for job in live {
                    let started = Instant::now();
                    let answer: Answer = infer(self.model.served.as_ref(), vec![job.sample])
                        .map_err(|message| self.shared.internal_error(&message))
                        .and_then(|mut p| {
                            p.pop()
                                .ok_or_else(|| Failure::new(500, "no answer was computed"))
                        });
                    self.shared
                        .metrics()
                        .batch(&run, 1, started.elapsed().as_secs_f64());
                    let _ = job.reply.send(answer);
                }
            }
        }
    }

    /// Carries out the reload orders that came.
    fn take_orders(&mut self) {
        while let Ok(order) = self.control.try_recv() {
            match order {
                Control::Reload {
                    run,
                    checkpoint,
                    reply,
                } => {
                    let outcome = self.reload(run.as_deref(), checkpoint.as_deref());
                    match &outcome {
                        Ok(info) => (self.say)(&format!(
                            "now serving run {} (checkpoint {})",
                            info.run, info.checkpoint
                        )),
                        Err(f) => (self.say)(&format!("reload refused: {}", f.message)),
                    }
                    if let Some(reply) = reply {
                        let _ = reply.send(outcome);
                    }
                }
            }
        }
    }

    /// Loads and warms up the model `(run, checkpoint)` names, then swaps it in; the model
    /// served so far stays when anything fails.
    fn reload(
        &mut self,
        run: Option<&str>,
        checkpoint: Option<&str>,
    ) -> Result<ModelInfo, Failure> {
        let model = (self.load)(run, checkpoint)?;
        warm_up(model.served.as_ref(), 1).map_err(|e| {
            Failure::new(
                422,
                format!("the new model failed its warm-up, so the old one stays: {e}"),
            )
        })?;
        self.shared.set_model(model.current.clone());
        let info = model.current.info.clone();
        self.model = model;
        Ok(info)
    }

    fn flush_log(&self) {
        for line in self.shared.take_log() {
            (self.say)(&line);
        }
    }
}

/// `samples` through the model; a panic in task code is caught and becomes an error.
fn infer(model: &dyn Served, samples: Vec<candle_core::Tensor>) -> Result<Vec<Payload>, String> {
    let n = samples.len();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.infer(samples))) {
        Ok(Ok(payloads)) if payloads.len() == n => Ok(payloads),
        Ok(Ok(payloads)) => Err(format!(
            "serve_batch returned {} answers for {n} samples",
            payloads.len()
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

/// A batch of `size` copies of the model's sample through it.
fn warm_up(model: &dyn Served, size: usize) -> Result<String, String> {
    let Some(sample) = model.sample() else {
        return Ok("no sample of the task's data could be read: no warm-up, and requests of any shape are accepted".into());
    };
    let started = Instant::now();
    infer(model, vec![sample.clone(); size.max(1)])?;
    Ok(format!(
        "warm-up: a batch of {} sample(s) of shape {:?} in {:.1} ms",
        size.max(1),
        sample.dims(),
        started.elapsed().as_secs_f64() * 1e3
    ))
}
