//! What a checkpoint keeps of a [`Trainer`] and how it comes back: the numbered set written
//! beside the loop, the optimizer's state keyed by variable name, a half-done gradient
//! accumulation, and where training stood.

use crate::checkpoint::writer::{frozen_copy, CheckpointSet};
use crate::checkpoint::{TrainingState, PENDING_GRADIENT_PREFIX};
use crate::error::{Error, Result};
use crate::train::trainer::Trainer;
use candle_core::backprop::GradStore;
use std::path::Path;

impl Trainer<'_> {
    /// Continues from a checkpoint: counters, the current epoch's loss sums, and the
    /// optimizer's state from the run's `latest.optimizer.safetensors`.
    pub fn restore(&mut self, state: &TrainingState) -> Result<()> {
        self.restore_position(state);
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
                let tensors = crate::checkpoint::load_tensors(&path)?;
                self.load_optimizer_tensors(tensors, &path)?;
            }
        }
        self.weigh_pending_for_this_world(state.pending_ranks)?;
        if self.micro_steps > 0 && self.pending.is_none() {
            return Err(Error::msg(format!(
                "the checkpoint was taken {} iterations into a gradient accumulation, but holds no accumulated gradient",
                self.micro_steps
            )));
        }
        Ok(())
    }

    /// A half-done accumulation summed over `ranks` processes, resumed on this world's: the
    /// sum is what the step's average over `ranks` processes divides by their number, and
    /// this world's divides by its own (one process, none), so it is scaled by their ratio.
    /// The same number leaves it as it is, bit for bit, as does a checkpoint that does not say
    /// (`ranks` 0: written before they said, resumed on the same number as before).
    fn weigh_pending_for_this_world(&mut self, ranks: u64) -> Result<()> {
        let (saved, here) = (ranks as usize, self.processes());
        let Some(pending) = self.pending.as_mut() else {
            return Ok(());
        };
        if saved == 0 || saved == here {
            return Ok(());
        }
        let ratio = here as f64 / saved as f64;
        for var in &self.vars {
            if let Some(g) = pending.remove(var) {
                pending.insert(var, (g * ratio)?);
            }
        }
        Ok(())
    }

    /// The processes this training runs on (1 alone).
    fn processes(&self) -> usize {
        self.parallel.as_ref().map_or(1, |p| p.world.size())
    }

    /// Where training stands, from `state`: counters, loss sums, the best metric's values.
    pub(crate) fn restore_position(&mut self, state: &TrainingState) {
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
        self.early_best = state.early_best;
        self.stale_validations = state.stale_validations;
        self.micro_steps = state.micro_steps;
        self.pending = None;
        // A position restored is between two iterations: a value logged before the next one
        // (an `epoch_end` hook of a run resumed at its epoch's end) is the last step's, as in
        // the training that was not interrupted.
        self.between_steps = state.step > 0;
    }

    /// Loads the optimizer's state and a half-done accumulation from `tensors` (keyed by
    /// variable name, as checkpoints keep them; `origin` names where they came from).
    pub(crate) fn load_optimizer_tensors(
        &mut self,
        mut tensors: std::collections::HashMap<String, candle_core::Tensor>,
        origin: &Path,
    ) -> Result<()> {
        self.pending = self.take_pending_gradients(&mut tensors, origin)?;
        let tensors = state_by_index(tensors, &self.var_names(), origin)?;
        self.optimizer.load_state(&tensors)
    }

    /// The optimizer's state keyed by variable name, with a half-done accumulation's
    /// gradients: what a checkpoint keeps of the optimizer (copies, frozen).
    pub(crate) fn optimizer_tensors(
        &self,
        pending: Option<&GradStore>,
    ) -> Result<std::collections::HashMap<String, candle_core::Tensor>> {
        let names = self.var_names();
        let mut optimizer: std::collections::HashMap<String, candle_core::Tensor> = self
            .optimizer
            .state()?
            .into_iter()
            .map(|(k, t)| Ok((state_key_by_name(&k, &names), frozen_copy(&t)?)))
            .collect::<Result<_>>()?;
        // An epoch can end in the middle of a gradient accumulation: the gradients summed so
        // far are part of the exact position, or a resumed run would drop them.
        if let Some(pending) = pending {
            for (name, var) in self.env.vars().named_vars() {
                if let Some(g) = pending.get(var.as_tensor()) {
                    optimizer.insert(format!("{PENDING_GRADIENT_PREFIX}{name}"), frozen_copy(g)?);
                }
            }
        }
        Ok(optimizer)
    }

    /// The names of the variables the optimizer holds, in its order (the float variables of
    /// the run, sorted by name, as `Task::fit` gives them).
    fn var_names(&self) -> Vec<String> {
        let mut named = self.env.vars().trainable_named_vars();
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
        // Before the run is asked for: in a training of several processes, every rank
        // flushes (the losses are averaged over the ranks), and only rank 0 has a run.
        self.flush()?;
        // Several processes, in the middle of a gradient accumulation: every rank has summed
        // gradients of its own; the checkpoint keeps their sum, which rank 0 resumes with
        // (the other ranks resume with none: the step's all-reduce adds them up the same).
        let pending_over_ranks = match (&self.parallel, &self.pending) {
            (Some(parallel), Some(pending)) => Some(parallel.sum(pending, &self.vars)?),
            _ => None,
        };
        let Some(run) = self.env.run() else {
            return Ok(());
        };
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
        let optimizer =
            self.optimizer_tensors(pending_over_ranks.as_ref().or(self.pending.as_ref()))?;
        let state = self.training_state(&name);
        self.checkpoints.submit(CheckpointSet {
            dir,
            name,
            alias: alias.to_string(),
            best: std::mem::take(&mut self.best_pending),
            keep: self.config().keep_checkpoints as usize,
            model,
            metadata: crate::checkpoint::model_metadata(self.env.vars())?,
            optimizer,
            state,
            followers: Some(run.followers()),
        })
    }

    /// Waits until every checkpoint taken so far is on disk; returns the error of one that
    /// could not be written.
    pub fn wait_for_checkpoints(&mut self) -> Result<()> {
        self.checkpoints.wait()
    }

    /// Where training stands, for checkpoint set `name`.
    pub(crate) fn training_state(&self, name: &str) -> TrainingState {
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
            pending_ranks: self.pending.as_ref().map_or(0, |_| self.processes() as u64),
            early_best: self.early_best,
            stale_validations: self.stale_validations,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use std::collections::HashMap;

    fn tensor(v: f32) -> candle_core::Tensor {
        candle_core::Tensor::new(&[v], &Device::Cpu).unwrap()
    }

    #[test]
    fn optimizer_state_is_saved_by_variable_name_and_loaded_by_this_models_order() {
        let saved_names = ["a.weight".to_string(), "b.weight".to_string()];
        assert_eq!(state_key_by_name("m.1", &saved_names), "m.b.weight");
        assert_eq!(state_key_by_name("steps", &saved_names), "steps");
        // The model now has a variable before the others: moments follow the names.
        let now = [
            "0.new".to_string(),
            "a.weight".to_string(),
            "b.weight".to_string(),
        ];
        let state = HashMap::from([
            ("m.a.weight".to_string(), tensor(1.0)),
            ("m.b.weight".to_string(), tensor(2.0)),
            ("steps".to_string(), tensor(3.0)),
        ]);
        let loaded = state_by_index(state, &now, Path::new("x")).unwrap();
        let value = |k: &str| loaded[k].to_vec1::<f32>().unwrap()[0];
        assert_eq!(
            (value("m.1"), value("m.2"), value("steps")),
            (1.0, 2.0, 3.0)
        );
        // A name the model lacks is an error that names it.
        let state = HashMap::from([("v.gone.weight".to_string(), tensor(1.0))]);
        let err = state_by_index(state, &now, Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("gone.weight"), "{err}");
        // States written before names (index keys) load as they are.
        let state = HashMap::from([("m.0".to_string(), tensor(1.0))]);
        assert!(state_by_index(state, &now, Path::new("x"))
            .unwrap()
            .contains_key("m.0"));
    }
}
