//! The state of a training run that the steps share: optimizer, counters, the loss buffer
//! and its read-backs, gradient accumulation, progress.

use crate::checkpoint::{TrainingState, PENDING_GRADIENT_PREFIX};
use crate::checkpoint_writer::{frozen_copy, CheckpointSet, CheckpointWriter};
use crate::config::BestMode;
use crate::config::TrainConfig;
use crate::env::Env;
use crate::error::{Error, Result};
use crate::grad::{accumulate, clip_grad_norm};
use crate::metrics::Point;
use crate::optim::Optimizer;
use crate::progress::Progress;
use crate::scalars::{read_back, Losses, Results};
use crate::schedule::Schedule;
use candle_core::backprop::GradStore;
use candle_core::{Device, Var};
use std::collections::BTreeMap;
use std::path::Path;

/// Everything the training steps share. Built by `Task::fit` (or by hand for a custom loop).
pub struct Trainer<'e> {
    env: &'e Env,
    optimizer: Box<dyn Optimizer>,
    vars: Vec<Var>,
    schedule: Schedule,
    epoch: u64,
    /// Batches done in the current epoch.
    batch: u64,
    /// True between the end of an epoch and the start of the next.
    epoch_complete: bool,
    first_epoch: u64,
    step: u64,
    optimizer_steps: u64,
    total_optimizer_steps: usize,
    micro_steps: u64,
    pending: Option<GradStore>,
    buffer: Vec<(u64, u64, Losses)>,
    latest: Results,
    epoch_sums: BTreeMap<String, (f64, u64)>,
    epoch_means: Results,
    progress: Option<Progress>,
    best: Option<f64>,
    best_pending: bool,
    checkpoints: CheckpointWriter,
}

impl<'e> Trainer<'e> {
    /// A trainer over the variables of `env` with `optimizer`.
    pub fn new(env: &'e Env, optimizer: Box<dyn Optimizer>) -> Self {
        Trainer {
            env,
            optimizer,
            vars: env.vars().all_vars(),
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

    /// Continues from a checkpoint: counters, the current epoch's loss sums, and the
    /// optimizer's state from the run's `latest.optimizer.safetensors`.
    pub fn restore(&mut self, state: &TrainingState) -> Result<()> {
        self.epoch = state.epoch;
        self.first_epoch = state.epoch;
        self.batch = state.batch;
        self.step = state.step;
        self.optimizer_steps = state.optimizer_steps;
        self.epoch_sums = state
            .epoch_sums
            .iter()
            .map(|(k, s, n)| (k.clone(), (*s, *n)))
            .collect();
        self.best = state.best;
        self.micro_steps = state.micro_steps;
        self.pending = None;
        if let Some(run) = self.env.run() {
            let set = if state.name.is_empty() {
                "latest"
            } else {
                state.name.as_str()
            };
            let mut path = run.checkpoint_path(&format!("{set}.optimizer"), "safetensors")?;
            if !path.exists() {
                path = run.checkpoint_path("latest.optimizer", "safetensors")?;
            }
            if path.exists() {
                let mut tensors = crate::checkpoint::load_tensors(&path)?;
                self.pending = self.take_pending_gradients(&mut tensors, &path)?;
                let tensors = state_by_index(tensors, &self.var_names(), &path)?;
                self.optimizer.load_state(&tensors)?;
            }
        }
        if self.micro_steps > 0 && self.pending.is_none() {
            return Err(Error::msg(format!(
                "the checkpoint was taken {} iterations into a gradient accumulation, but holds no accumulated gradient",
                self.micro_steps
            )));
        }
        Ok(())
    }

    /// The names of the variables the optimizer holds, in its order (the float variables of
    /// the run, sorted by name, as `Task::fit` gives them).
    fn var_names(&self) -> Vec<String> {
        let mut named = self.env.vars().named_vars();
        named.retain(|(_, v)| v.dtype().is_float());
        named.into_iter().map(|(n, _)| n).collect()
    }

    /// Moves the half-done accumulation out of a checkpoint's optimizer tensors (see
    /// [`crate::checkpoint::PENDING_GRADIENT_PREFIX`]) into a gradient store for the
    /// variables of this run, on their device.
    fn take_pending_gradients(
        &self,
        tensors: &mut std::collections::HashMap<String, candle_core::Tensor>,
        path: &Path,
    ) -> Result<Option<GradStore>> {
        let keys: Vec<String> = tensors
            .keys()
            .filter(|k| k.starts_with(PENDING_GRADIENT_PREFIX))
            .cloned()
            .collect();
        if keys.is_empty() {
            return Ok(None);
        }
        let vars = self.env.vars().named_vars();
        let mut grads = GradStore::default();
        for key in keys {
            let Some(tensor) = tensors.remove(&key) else {
                continue;
            };
            let name = &key[PENDING_GRADIENT_PREFIX.len()..];
            let var = vars.iter().find(|(n, _)| n == name).map(|(_, v)| v).ok_or_else(|| {
                Error::msg(format!(
                    "`{}` holds an accumulated gradient of `{name}`, a variable this model does not have",
                    path.display()
                ))
            })?;
            grads.insert(var.as_tensor(), tensor.to_device(var.device())?);
        }
        Ok(Some(grads))
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
        self.progress = Some(Progress::new(self.env, epochs, steps_per_epoch));
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
        let accumulate_n = self.config().accumulate.max(1);
        let mut total = losses.total()?;
        if accumulate_n > 1 {
            total = (total / accumulate_n as f64)?;
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
        if let Some(max) = self.config().clip_grad_norm {
            clip_grad_norm(&mut grads, &self.vars, max)?;
        }
        let lr = self.schedule.lr_at(
            self.optimizer_steps as usize,
            self.epoch as usize,
            self.total_optimizer_steps,
        );
        self.optimizer.set_learning_rate(lr);
        self.optimizer.step(&grads)?;
        self.optimizer_steps += 1;
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
        self.step += 1;
        self.batch += 1;
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
        if let Some(signal) = self.env.stop_signal() {
            if self.micro_steps == 0 {
                return Err(Error::Interrupted {
                    signal,
                    step: self.step,
                });
            }
        }
        Ok(())
    }

    /// Reads the buffered losses back, sends them to the metric sink and the display, and
    /// fails on a NaN or infinite loss.
    pub fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let buffer = std::mem::take(&mut self.buffer);
        let tensors: Vec<_> = buffer
            .iter()
            .flat_map(|(_, _, l)| l.iter().map(|(_, t)| t.clone()))
            .collect();
        let values = read_back(&tensors)?;
        let mut points = Vec::with_capacity(values.len());
        let mut it = values.into_iter();
        for (step, epoch, losses) in &buffer {
            for (name, _) in losses.iter() {
                let Some(v) = it.next() else { break };
                if !v.is_finite() {
                    return Err(Error::msg(format!("loss `{name}` is {v} at step {step}")));
                }
                let sum = self.epoch_sums.entry(name.to_string()).or_insert((0.0, 0));
                sum.0 += v;
                sum.1 += 1;
                self.latest.insert(name.to_string(), v);
                points.push(Point::now(name, *step, *epoch, v));
            }
        }
        if let Some(run) = self.env.run() {
            run.log_metrics(&points);
        }
        if let Some(p) = &mut self.progress {
            p.losses(self.env, self.epoch, self.step, &self.latest);
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
        let line = format!("  {prefix}: {}", crate::progress::format_values(results));
        match &mut self.progress {
            Some(p) => p.line(self.env, &line),
            None => self.env.say(&line),
        }
    }

    /// Takes a checkpoint and points `alias` (`latest`) at it: the variables, the
    /// optimizer's state and where training stands (after flushing the metrics, whose count it
    /// records), as the numbered set `step-<step>`; the state file is written last, so it only
    /// ever names a complete set. Also points `best` at it when the last validation improved
    /// the best metric, and keeps only the newest `keep_checkpoints` numbered sets. Needs a run.
    ///
    /// Returns once the tensors are copied: the files are written and synced on another
    /// thread while training goes on. A write that fails is reported by the next
    /// `save_checkpoint`, [`Trainer::wait_for_checkpoints`] or [`Trainer::finish`].
    pub fn save_checkpoint(&mut self, alias: &str) -> Result<()> {
        let Some(run) = self.env.run() else {
            return Ok(());
        };
        self.flush()?;
        let name = format!("step-{:010}", self.step);
        let dir = run.checkpoint_path(&name, "ron")?;
        let dir = dir.parent().map(Path::to_path_buf).unwrap_or_default();
        let model = self
            .env
            .vars()
            .named_vars()
            .into_iter()
            .map(|(k, v)| Ok((k, frozen_copy(v.as_tensor())?)))
            .collect::<Result<_>>()?;
        let names = self.var_names();
        let mut optimizer: std::collections::HashMap<String, candle_core::Tensor> = self
            .optimizer
            .state()?
            .into_iter()
            .map(|(k, t)| Ok((state_key_by_name(&k, &names), frozen_copy(&t)?)))
            .collect::<Result<_>>()?;
        // An epoch can end in the middle of a gradient accumulation: the gradients summed so
        // far are part of the exact position, or a resumed run would drop them.
        if let Some(pending) = &self.pending {
            for (name, var) in self.env.vars().named_vars() {
                if let Some(g) = pending.get(var.as_tensor()) {
                    optimizer.insert(format!("{PENDING_GRADIENT_PREFIX}{name}"), frozen_copy(g)?);
                }
            }
        }
        let state = self.training_state(&name);
        self.checkpoints.submit(CheckpointSet {
            dir,
            name,
            alias: alias.to_string(),
            best: std::mem::take(&mut self.best_pending),
            keep: self.config().keep_checkpoints as usize,
            model,
            optimizer,
            state,
        })
    }

    /// Waits until every checkpoint taken so far is on disk; returns the error of one that
    /// could not be written.
    pub fn wait_for_checkpoints(&mut self) -> Result<()> {
        self.checkpoints.wait()
    }

    /// Where training stands, for checkpoint set `name`.
    fn training_state(&self, name: &str) -> TrainingState {
        let (epoch, batch) = if self.epoch_complete {
            (self.epoch + 1, 0)
        } else {
            (self.epoch, self.batch)
        };
        TrainingState {
            epoch,
            batch,
            step: self.step,
            optimizer_steps: self.optimizer_steps,
            seed: self.env.seed(),
            epoch_sums: self
                .epoch_sums
                .iter()
                .map(|(k, (s, n))| (k.clone(), *s, *n))
                .collect(),
            rng_counters: self.env.rng_counters(),
            metric_points: self.env.run().map_or(0, |run| run.metric_points()),
            name: name.to_string(),
            best: self.best,
            micro_steps: self.micro_steps,
        }
    }

    /// The direction of `--best-metric`: `--best-mode`, else the metric's usual one (see
    /// [`BestMode::guess`]); `None` without a best metric.
    pub fn best_mode(&self) -> Option<BestMode> {
        let metric = self.config().best_metric.as_deref()?;
        Some(
            self.config()
                .best_mode
                .unwrap_or_else(|| BestMode::guess(metric)),
        )
    }

    /// Notes validation `results`: when `best_metric` improved, the next checkpoint also
    /// becomes `best`, and the record gets `best/val/<metric>`.
    pub fn consider_best(&mut self, results: &Results) -> Result<()> {
        let Some(metric) = self.config().best_metric.clone() else {
            return Ok(());
        };
        let Some(&value) = results.get(&metric) else {
            let names: Vec<&str> = results.keys().map(String::as_str).collect();
            return Err(Error::usage(format!(
                "--best-metric {metric}: validation has no such metric; it has: {}",
                names.join(", ")
            )));
        };
        let max = self.best_mode() == Some(BestMode::Max);
        let better = match self.best {
            None => true,
            Some(b) if max => value > b,
            Some(b) => value < b,
        };
        if better {
            self.best = Some(value);
            self.best_pending = true;
            if let Some(run) = self.env.run() {
                run.set_metrics(&Results::from([(format!("best/val/{metric}"), value)]))?;
            }
        }
        Ok(())
    }

    /// Called by `Task::train` at the end: waits for the checkpoints to be written, removes
    /// the progress bar; returns the last epoch's mean losses.
    pub fn finish(&mut self) -> Result<Results> {
        self.flush()?;
        self.wait_for_checkpoints()?;
        if let Some(p) = &self.progress {
            p.finish();
        }
        Ok(self.epoch_means.clone())
    }
}

/// An optimizer state key as saved in checkpoints: the variable index that ends it
/// (`m.3`) replaced by the variable's name (`m.fc.weight`), so that a model whose variables
/// changed cannot load moments onto the wrong variables. Other keys (`steps`) are kept.
fn state_key_by_name(key: &str, names: &[String]) -> String {
    match key.rsplit_once('.') {
        Some((kind, index)) => match index.parse::<usize>().ok().and_then(|i| names.get(i)) {
            Some(name) => format!("{kind}.{name}"),
            None => key.to_string(),
        },
        None => key.to_string(),
    }
}

/// The inverse of [`state_key_by_name`] for a whole saved state: each `kind.<name>` key back
/// to `kind.<index>` of this model; a name this model lacks is an error naming it.
/// Checkpoints written before states were keyed by name (`m.3`) load as they are.
fn state_by_index(
    state: std::collections::HashMap<String, candle_core::Tensor>,
    names: &[String],
    path: &Path,
) -> Result<std::collections::HashMap<String, candle_core::Tensor>> {
    let index: std::collections::HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut out = std::collections::HashMap::with_capacity(state.len());
    for (key, tensor) in state {
        let Some((kind, rest)) = key.split_once('.') else {
            out.insert(key, tensor);
            continue;
        };
        let renamed = match index.get(rest) {
            Some(i) => format!("{kind}.{i}"),
            None if rest.parse::<usize>().is_ok() => key.clone(),
            None => {
                return Err(Error::Checkpoint {
                    path: path.to_path_buf(),
                    message: format!(
                        "holds optimizer state `{key}` of variable `{rest}`, which this model does not have"
                    ),
                })
            }
        };
        out.insert(renamed, tensor);
    }
    Ok(out)
}
