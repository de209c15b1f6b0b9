//! Data-parallel training: every rank of a world of processes (see [`crate::collective`])
//! trains the same model on its share of each step's examples, and the gradients are
//! averaged over the ranks before every optimizer step, in one flat buffer: one all-reduce a
//! step (split in buckets only when it is very large). The buffer also carries each rank's
//! example count (the average is weighted by it, so that a short last step averages like one
//! process would) and whether a rank was asked to stop, so that every rank stops at the same
//! step. Rank 0 shares where training stands at the start (the weights, the optimizer's
//! state, the counters of a resumed run), and the losses are averaged over the ranks where
//! they are read back.

use crate::checkpoint::TrainingState;
use crate::collective::Collective;
use crate::error::{Error, Result};
use crate::train::trainer::Trainer;
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// The data-parallel part of a [`Trainer`] of one rank.
pub(crate) struct DataParallel {
    pub(crate) world: &'static dyn Collective,
    /// Time spent in the gradients' all-reduce, and how many.
    pub(crate) allreduce: Duration,
    pub(crate) allreduces: u64,
    /// The signal every rank agreed to stop on at the last all-reduce, if one asked.
    pub(crate) agreed_stop: Option<i32>,
}

/// Where the rank-0 state travels from, in error messages.
const FROM_RANK_0: &str = "rank 0's training state";

impl DataParallel {
    /// The data-parallel part for this process, when it is one of several.
    pub(crate) fn of_this_process() -> Option<DataParallel> {
        crate::collective::world().map(|world| DataParallel {
            world,
            allreduce: Duration::ZERO,
            allreduces: 0,
            agreed_stop: None,
        })
    }

    /// The gradients of `vars` averaged over the ranks, each rank's weighted by its
    /// `examples`; also agrees on stopping (`stop`: this rank's signal, if any).
    pub(crate) fn average(
        &mut self,
        grads: &GradStore,
        vars: &[Var],
        examples: usize,
        stop: Option<i32>,
    ) -> Result<GradStore> {
        let Some(first) = vars.first() else {
            return Ok(GradStore::default());
        };
        let device = first.device();
        let mut parts = Vec::with_capacity(vars.len() + 1);
        for var in vars {
            parts.push(match grads.get(var) {
                Some(g) => g.to_dtype(DType::F32)?.flatten_all()?,
                // A variable this rank's batch gave no gradient still has its place.
                None => Tensor::zeros(var.elem_count(), DType::F32, device)?,
            });
        }
        let len: usize = vars.iter().map(|v| v.elem_count()).sum();
        let n = examples as f64;
        let flat = (Tensor::cat(&parts, 0)? * n)?;
        let signal = stop.unwrap_or(0);
        let tail = Tensor::new(
            &[n as f32, f32::from(u8::from(stop.is_some())), signal as f32],
            device,
        )?;
        let flat = Tensor::cat(&[&flat, &tail], 0)?;
        let started = Instant::now();
        let summed = self.world.all_reduce_tensor(&flat)?;
        self.allreduce += started.elapsed();
        self.allreduces += 1;
        let tail = summed.narrow(0, len, 3)?.to_vec1::<f32>()?;
        let (total, stopping, signals) = (tail[0], tail[1], tail[2]);
        if stopping > 0.0 {
            self.agreed_stop =
                Some(stop.unwrap_or_else(|| (signals / stopping).round().max(1.0) as i32));
        }
        if total <= 0.0 {
            return Err(Error::msg(
                "a training step of no example on any rank: the ranks' data are empty",
            ));
        }
        let mean = (summed.narrow(0, 0, len)? / f64::from(total))?;
        let mut averaged = GradStore::default();
        let mut offset = 0;
        for var in vars {
            let count = var.elem_count();
            let g = mean
                .narrow(0, offset, count)?
                .reshape(var.shape())?
                .to_dtype(var.dtype())?;
            averaged.insert(var, g);
            offset += count;
        }
        Ok(averaged)
    }

    /// Replaces each of `values` by its mean over the ranks, weighted by `weights` (the
    /// examples each rank's value was computed on).
    pub(crate) fn weighted_mean(&self, values: &mut [f64], weights: &[f64]) -> Result<()> {
        let mut buffer: Vec<f64> = values
            .iter()
            .zip(weights)
            .map(|(v, w)| v * w)
            .chain(weights.iter().copied())
            .collect();
        self.world.all_reduce_sum(&mut buffer)?;
        let (sums, totals) = buffer.split_at(values.len());
        for ((v, s), t) in values.iter_mut().zip(sums).zip(totals) {
            *v = if *t > 0.0 { s / t } else { *v };
        }
        Ok(())
    }
}

impl Trainer<'_> {
    /// In a training of several processes: gives every rank rank 0's position — the
    /// weights, the optimizer's state, the counters and loss sums of a resumed run — so that
    /// all start from the same point, whatever each built or loaded. A rank whose model's
    /// variables differ from rank 0's (names, shapes) is refused. Does nothing for a process
    /// on its own.
    pub(crate) fn share_rank_0_state(&mut self) -> Result<()> {
        let Some(world) = self.parallel.as_ref().map(|p| p.world) else {
            return Ok(());
        };
        let mut bytes = Vec::new();
        if world.rank() == 0 {
            let state = ron::to_string(&self.training_state(""))
                .map_err(|e| Error::msg(format!("cannot encode the training state: {e}")))?;
            let mut tensors: HashMap<String, Tensor> = self
                .optimizer_tensors()?
                .into_iter()
                .map(|(k, t)| (format!("optimizer/{k}"), t))
                .collect();
            for (name, var) in self.env.vars().named_vars() {
                tensors.insert(
                    format!("model/{name}"),
                    var.as_tensor().to_device(&candle_core::Device::Cpu)?,
                );
            }
            let encoded = safetensors::serialize(&tensors, None)
                .map_err(|e| Error::msg(format!("cannot encode the model for the ranks: {e}")))?;
            bytes.extend((state.len() as u64).to_le_bytes());
            bytes.extend(state.as_bytes());
            bytes.extend(encoded);
        }
        world.broadcast(&mut bytes)?;
        if world.rank() == 0 {
            return Ok(());
        }
        let bad = || Error::msg(format!("{FROM_RANK_0} arrived incomplete"));
        let (len, rest) = bytes.split_at_checked(8).ok_or_else(bad)?;
        let len = u64::from_le_bytes(len.try_into().map_err(|_| bad())?) as usize;
        let (state, encoded) = rest.split_at_checked(len).ok_or_else(bad)?;
        let state: TrainingState = ron::from_str(std::str::from_utf8(state).map_err(|_| bad())?)
            .map_err(|e| Error::msg(format!("{FROM_RANK_0} cannot be read: {e}")))?;
        let mut tensors =
            candle_core::safetensors::load_buffer(encoded, &candle_core::Device::Cpu)?;
        let rank = world.rank();
        let differs = |what: String| {
            Error::msg(format!(
                "rank {rank}'s model differs from rank 0's: {what} (every rank must build the same model)"
            ))
        };
        let vars = self.env.vars().named_vars();
        let theirs = tensors.keys().filter(|k| k.starts_with("model/")).count();
        if theirs != vars.len() {
            return Err(differs(format!(
                "{} variables here, {theirs} there",
                vars.len()
            )));
        }
        for (name, var) in &vars {
            let t = tensors
                .remove(&format!("model/{name}"))
                .ok_or_else(|| differs(format!("rank 0 has no variable `{name}`")))?;
            if t.dims() != var.dims() {
                return Err(differs(format!(
                    "`{name}` is {:?} here, {:?} there",
                    var.dims(),
                    t.dims()
                )));
            }
            var.set(&t.to_device(var.device())?.to_dtype(var.dtype())?)?;
        }
        for (name, n) in &state.rng_counters {
            self.env
                .rng_counter(name)
                .store(*n, std::sync::atomic::Ordering::Relaxed);
        }
        self.restore_position(&state);
        let optimizer: HashMap<String, Tensor> = tensors
            .into_iter()
            .filter_map(|(k, t)| k.strip_prefix("optimizer/").map(|k| (k.to_string(), t)))
            .collect();
        if !optimizer.is_empty() {
            self.load_optimizer_tensors(optimizer, Path::new(FROM_RANK_0))?;
        }
        Ok(())
    }
}
