//! The state of a training run that the steps share: optimizer, counters, the loss buffer
//! and its read-backs, gradient accumulation, progress.

use crate::checkpoint::writer::CheckpointWriter;
use crate::env::Env;
use crate::error::{Error, Result};
use crate::hyper::config::BestMode;
use crate::hyper::config::TrainConfig;
use crate::hyper::schedule::Schedule;
use crate::store::metrics::Point;
use crate::train::distributed::DataParallel;
use crate::train::grad::{accumulate, clip_grad_norm, grad_norm};
use crate::train::optim::Optimizer;
use crate::train::progress::Progress;
use crate::train::scalars::{Losses, Results, Scalar};
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use std::collections::BTreeMap;

/// Everything the training steps share. Built by `Task::fit` (or by hand for a custom loop).
pub struct Trainer<'e> {
    pub(crate) env: &'e Env,
    pub(crate) optimizer: Box<dyn Optimizer>,
    pub(crate) vars: Vec<Var>,
    pub(crate) schedule: Schedule,
    pub(crate) epoch: u64,
    /// Batches done in the current epoch.
    pub(crate) batch: u64,
    /// True between the end of an epoch and the start of the next.
    pub(crate) epoch_complete: bool,
    pub(crate) first_epoch: u64,
    pub(crate) step: u64,
    pub(crate) optimizer_steps: u64,
    pub(crate) total_optimizer_steps: usize,
    pub(crate) micro_steps: u64,
    pub(crate) pending: Option<GradStore>,
    pub(crate) buffer: Vec<(u64, u64, Losses)>,
    pub(crate) latest: Results,
    pub(crate) epoch_sums: BTreeMap<String, (f64, u64)>,
    pub(crate) epoch_means: Results,
    pub(crate) progress: Option<Progress>,
    pub(crate) best: Option<f64>,
    pub(crate) best_pending: bool,
    pub(crate) checkpoints: CheckpointWriter,
    /// Values of [`Trainer::log`] not yet read back: (step, epoch, name, value).
    pub(crate) logged: Vec<(u64, u64, String, Scalar)>,
    /// True between `record` and the next iteration's backward pass (see [`Trainer::log`]).
    pub(crate) between_steps: bool,
    /// True while the default `train` runs `every_n_epochs`: it writes the epoch's `latest`
    /// checkpoint itself, after the `epoch_end` hooks (see [`crate::task::fit::train`]).
    pub(crate) checkpoint_after_hooks: bool,
    /// The best value of the best metric by the early-stopping rule (improvements larger
    /// than `min_delta`), and how many validations in a row have not improved it.
    pub(crate) early_best: Option<f64>,
    pub(crate) stale_validations: u64,
    /// Why training stops before its last epoch, once something asked it to.
    pub(crate) stop_reason: Option<String>,
    /// The best metric's direction as the task knows it (`Task::larger_is_better`).
    pub(crate) known_mode: Option<BestMode>,
    /// Set once the run's record has what a training input looks like.
    pub(crate) input_noted: bool,
    /// The examples of the current batch (from [`Trainer::note_input`]), and of each
    /// iteration in `buffer`: the weights of the averages over the ranks.
    pub(crate) batch_examples: usize,
    pub(crate) buffer_examples: Vec<f64>,
    /// In a training of several processes: the averaging of gradients and losses over the
    /// ranks (see [`crate::collective`]).
    pub(crate) parallel: Option<DataParallel>,
    /// Whether the epoch has a batch after the current one, when the loop knows (the default
    /// `Task::epoch` under several processes): the ranks check that they agree.
    pub(crate) more_batches: Option<bool>,
}

impl<'e> Trainer<'e> {
    /// A trainer over the variables of `env` with `optimizer`.
    pub fn new(env: &'e Env, optimizer: Box<dyn Optimizer>) -> Self {
        Trainer {
            env,
            optimizer,
            vars: env.vars().trainable_vars(),
            schedule: env.config().schedule(),
            epoch: 0,
            batch: 0,
            epoch_complete: false,
            first_epoch: 0,
            step: 0,
            optimizer_steps: 0,
            total_optimizer_steps: 0,
            micro_steps: 0,
            pending: None,
            buffer: Vec::new(),
            latest: Results::new(),
            epoch_sums: BTreeMap::new(),
            epoch_means: Results::new(),
            progress: None,
            best: None,
            best_pending: false,
            checkpoints: CheckpointWriter::default(),
            logged: Vec::new(),
            between_steps: false,
            checkpoint_after_hooks: false,
            early_best: None,
            stale_validations: 0,
            stop_reason: None,
            known_mode: None,
            input_noted: false,
            batch_examples: 1,
            buffer_examples: Vec::new(),
            parallel: DataParallel::of_this_process(),
            more_batches: None,
        }
    }

    /// The environment.
    pub fn env(&self) -> &'e Env {
        self.env
    }

    /// The device.
    pub fn device(&self) -> &'e Device {
        self.env.device()
    }

    /// The training settings.
    pub fn config(&self) -> &'e TrainConfig {
        self.env.config()
    }

    /// The current epoch (from 0).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Iterations done so far.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Batches of the current epoch done so far (at the start of an epoch of a resumed run:
    /// the batches to skip).
    pub fn batch(&self) -> u64 {
        self.batch
    }

    /// The epoch to start from: 0, or where a resumed run stopped.
    pub fn first_epoch(&self) -> u64 {
        self.first_epoch
    }

    /// The optimizer.
    pub fn optimizer(&mut self) -> &mut dyn Optimizer {
        self.optimizer.as_mut()
    }

    /// The mean of each loss over the last finished epoch.
    pub fn epoch_losses(&self) -> &Results {
        &self.epoch_means
    }

    /// Called by `Task::train` before the first epoch: sizes the schedule and the progress
    /// display for `steps_per_epoch` batches per epoch (when known).
    pub fn begin(&mut self, steps_per_epoch: Option<usize>) {
        let epochs = self.config().epochs as u64;
        let per_epoch = steps_per_epoch.unwrap_or(0) / self.config().accumulate.max(1) as usize;
        self.total_optimizer_steps = per_epoch * epochs as usize;
        self.progress = Some(Progress::new(self.env, epochs, steps_per_epoch, self.step));
    }

    /// Called by `Task::train` at the start of each epoch. (For the epoch a resumed run
    /// stopped in, the batches already done and their loss sums are kept.)
    pub fn begin_epoch(&mut self, epoch: u64) {
        if let Some(p) = &self.progress {
            p.epoch(epoch);
        }
        let resumed = epoch == self.epoch && self.batch > 0 && !self.epoch_complete;
        self.epoch = epoch;
        self.epoch_complete = false;
        if !resumed {
            self.batch = 0;
            self.epoch_sums.clear();
        }
    }

    /// The default backward pass: sums the losses, back-propagates, accumulates gradients
    /// over `accumulate` iterations, clips them to `clip_grad_norm`, sets the scheduled
    /// learning rate and steps the optimizer. Reads nothing back from the device.
    pub fn backward(&mut self, losses: &Losses) -> Result<()> {
        self.between_steps = false;
        let accumulate_n = self.config().accumulate.max(1);
        let mut total = losses.total()?;
        if accumulate_n > 1 {
            total = (total / accumulate_n as f64)?;
            // Several processes: each micro-batch weighs by its share of every rank's (an
            // epoch's last may be shorter on some ranks), and the step's average over the
            // ranks then weighs them alike.
            if let Some(parallel) = &mut self.parallel {
                let share = parallel.micro_batch_share(self.batch_examples, self.more_batches)?;
                if share != 1.0 {
                    total = (total * share)?;
                }
            }
        }
        let grads = total.backward()?;
        let mut grads = match self.pending.take() {
            Some(mut acc) => {
                accumulate(&mut acc, grads, &self.vars)?;
                acc
            }
            None => grads,
        };
        self.micro_steps += 1;
        if self.micro_steps < accumulate_n {
            self.pending = Some(grads);
            return Ok(());
        }
        self.micro_steps = 0;
        if let Some(parallel) = &mut self.parallel {
            let stop = self.env.stop_signal();
            let more = self.more_batches.take();
            // With accumulation the micro-batches were weighed already (above).
            let weight = if accumulate_n > 1 {
                1
            } else {
                self.batch_examples
            };
            grads = parallel.average(grads, &self.vars, weight, stop, more)?;
        }
        let norm = match self.config().clip_grad_norm {
            Some(max) => clip_grad_norm(&mut grads, &self.vars, max)?,
            None if self.config().log_grad_norm => grad_norm(&grads, &self.vars)?,
            None => None,
        };
        if let Some(norm) = norm {
            self.log("grad_norm", norm);
        }
        let lr = self.schedule.lr_at(
            self.optimizer_steps as usize,
            self.epoch as usize,
            self.total_optimizer_steps,
        );
        self.optimizer.set_learning_rate(lr);
        self.log("lr", lr);
        self.optimizer.step(&grads)?;
        self.optimizer_steps += 1;
        Ok(())
    }

    /// Notes, once per run, what one training input looks like (`input`'s shape without its
    /// batch dimension, and its dtype) in the run's record: `serve` checks requests against
    /// it and warms up with it without the run's data. The default `Task::epoch` calls it
    /// with each batch; it costs a flag test after the first. It also counts the batch's
    /// examples: in a training of several processes, each rank's gradients and losses weigh
    /// by them in the averages over the ranks (a loop of your own that does not call it
    /// weighs every rank's step the same).
    pub fn note_input(&mut self, input: &Tensor) -> Result<()> {
        self.batch_examples = input.dims().first().copied().unwrap_or(1);
        if self.input_noted {
            return Ok(());
        }
        self.input_noted = true;
        if let Some(run) = self.env.run() {
            let spec = crate::store::record::InputSpec {
                shape: input.dims().get(1..).unwrap_or_default().to_vec(),
                dtype: input.dtype().as_str().to_string(),
            };
            run.update(|r| r.input = Some(spec))?;
        }
        Ok(())
    }

    /// Records the losses of one iteration: kept on the device, read back every `log_every`
    /// iterations in one transfer.
    ///
    /// Also where a stop request (Ctrl-C, SIGTERM) takes effect: at the first step boundary
    /// after it that is not in the middle of a gradient accumulation, this returns
    /// [`Error::Interrupted`], and `Task::fit` writes a checkpoint of this exact position.
    pub fn record(&mut self, losses: &Losses) -> Result<()> {
        self.buffer.push((self.step, self.epoch, losses.detach()));
        self.buffer_examples.push(self.batch_examples as f64);
        self.step += 1;
        self.batch += 1;
        self.between_steps = true;
        if let Some(p) = &self.progress {
            p.step();
        }
        if self.buffer.len() as u64 >= self.config().log_every {
            self.flush()?;
        }
        let every = self.config().checkpoint_every;
        if every > 0 && self.step.is_multiple_of(every) && self.micro_steps == 0 {
            self.save_checkpoint("latest")?;
        }
        // The ranks of a training of several processes stop at the step they agreed on
        // (see `backward`): one that stopped on its own signal would leave the others waiting.
        let stop = match &self.parallel {
            Some(parallel) => parallel.agreed_stop,
            None => self.env.stop_signal(),
        };
        if let Some(signal) = stop {
            if self.micro_steps == 0 {
                return Err(Error::Interrupted {
                    signal,
                    step: self.step,
                });
            }
        }
        Ok(())
    }

    /// Called by `Task::train` after each epoch: flushes, records the epoch means, prints
    /// the epoch line.
    pub fn end_epoch(&mut self) -> Result<()> {
        self.flush()?;
        self.epoch_complete = true;
        self.epoch_means = self
            .epoch_sums
            .iter()
            .map(|(k, (s, n))| (k.clone(), s / (*n).max(1) as f64))
            .collect();
        let points: Vec<Point> = self
            .epoch_means
            .iter()
            .map(|(k, v)| Point::now(format!("epoch/{k}"), self.step, self.epoch, *v))
            .collect();
        if let Some(run) = self.env.run() {
            run.log_metrics(&points);
        }
        let means = self.epoch_means.clone();
        if let Some(p) = &mut self.progress {
            p.epoch_end(self.env, self.epoch, self.step, &means);
        }
        Ok(())
    }

    /// Records results (e.g. of validation) under `prefix/` and prints them.
    pub fn report(&mut self, prefix: &str, results: &Results) {
        let points: Vec<Point> = results
            .iter()
            .map(|(k, v)| Point::now(format!("{prefix}/{k}"), self.step, self.epoch, *v))
            .collect();
        if let Some(run) = self.env.run() {
            run.log_metrics(&points);
        }
        let line = format!(
            "  {prefix}: {}",
            crate::train::progress::format_values(results)
        );
        match &mut self.progress {
            Some(p) => p.line(self.env, &line),
            None => self.env.say(&line),
        }
    }

    /// Called by `Task::train` at the end: waits for the checkpoints to be written, removes
    /// the progress bar; returns the last epoch's mean losses.
    pub fn finish(&mut self) -> Result<Results> {
        self.flush()?;
        self.wait_for_checkpoints()?;
        if let (Some(parallel), Some(run)) = (&self.parallel, self.env.run()) {
            let (seconds, count) = (parallel.allreduce.as_secs_f64(), parallel.allreduces);
            run.update(|r| {
                if let Some(d) = &mut r.distributed {
                    d.allreduce_seconds += seconds;
                    d.allreduces += count;
                }
            })?;
        }
        if let Some(p) = &self.progress {
            p.finish();
        }
        if let Some(reason) = self.stop_reason.clone() {
            let epochs = self.epoch + 1;
            let line = format!(
                "stopped early after epoch {epochs} of {} (step {}): {reason}",
                self.config().epochs,
                self.step
            );
            self.env.say(&line);
            if let Some(run) = self.env.run() {
                let stopped = crate::store::record::StoppedEarly {
                    epochs,
                    step: self.step,
                    reason,
                };
                run.update(|r| r.stopped_early = Some(stopped))?;
            }
        }
        Ok(self.epoch_means.clone())
    }
}
