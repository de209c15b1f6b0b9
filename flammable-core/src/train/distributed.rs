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
        more: Option<bool>,
    ) -> Result<GradStore> {
        if vars.first().is_some_and(|v| v.device().is_cpu()) {
            return self.average_on_host(grads, vars, examples, stop, more);
        }
        let Some(flat) = flatten(grads, vars)? else {
            return Ok(GradStore::default());
        };
        let len = flat.elem_count();
        let tail = Tensor::new(&tail_of(examples, stop, more), flat.device())?;
        let flat = Tensor::cat(&[&(flat * examples as f64)?, &tail], 0)?;
        let started = Instant::now();
        let summed = self.world.all_reduce_tensor(&flat)?;
        self.allreduce += started.elapsed();
        self.allreduces += 1;
        let tail = summed.narrow(0, len, TAIL)?.to_vec1::<f32>()?;
        let total = self.read_tail(&tail, stop)?;
        let mean = (summed.narrow(0, 0, len)? / f64::from(total))?;
        unflatten(&mean, vars)
    }

    /// [`DataParallel::average`] for variables in host memory: the gradients gathered into
    /// one buffer, scaled and summed there, and cut back out scaled, with one copy each way
    /// (no tensor operations between).
    fn average_on_host(
        &mut self,
        grads: &GradStore,
        vars: &[Var],
        examples: usize,
        stop: Option<i32>,
        more: Option<bool>,
    ) -> Result<GradStore> {
        let len: usize = vars.iter().map(|v| v.elem_count()).sum();
        let n = examples as f32;
        let mut buffer: Vec<f32> = Vec::with_capacity(len + TAIL);
        for var in vars {
            match grads.get(var) {
                Some(g) => {
                    let g = g.to_dtype(DType::F32)?.flatten_all()?;
                    buffer.extend(g.to_vec1::<f32>()?.into_iter().map(|x| x * n));
                }
                None => buffer.resize(buffer.len() + var.elem_count(), 0.0),
            }
        }
        buffer.extend(tail_of(examples, stop, more));
        let started = Instant::now();
        self.world.all_reduce_sum_f32(&mut buffer)?;
        self.allreduce += started.elapsed();
        self.allreduces += 1;
        let total = self.read_tail(&buffer[len..], stop)?;
        let scale = 1.0 / total;
        let mut averaged = GradStore::default();
        let mut offset = 0;
        for var in vars {
            let count = var.elem_count();
            let values: Vec<f32> = buffer[offset..offset + count]
                .iter()
                .map(|x| x * scale)
                .collect();
            let g = Tensor::from_vec(values, var.shape(), var.device())?.to_dtype(var.dtype())?;
            averaged.insert(var, g);
            offset += count;
        }
        Ok(averaged)
    }

    /// Reads the summed tail of a step's buffer (see [`tail_of`]): agrees on stopping, checks
    /// that the ranks' epochs end together; returns the examples of the step on all ranks.
    fn read_tail(&mut self, tail: &[f32], stop: Option<i32>) -> Result<f32> {
        let (total, stopping, signals) = (tail[0], tail[1], tail[2]);
        // Every rank says whether its epoch has a batch after this one: when some have and
        // some have not, the next step would leave the ones without waiting.
        let (knowing, with_more) = (tail[3] as usize, tail[4] as usize);
        let size = self.world.size();
        if knowing == size && with_more != 0 && with_more != size {
            return Err(Error::msg(format!(
                "the ranks' training data have different numbers of batches this epoch ({with_more} of {size} ranks have more): \
                 batches made by Batches::from_fn must come in a multiple of {size} per epoch"
            )));
        }
        if stopping > 0.0 {
            self.agreed_stop =
                Some(stop.unwrap_or_else(|| (signals / stopping).round().max(1.0) as i32));
        }
        if total <= 0.0 {
            return Err(Error::msg(
                "a training step of no example on any rank: the ranks' data are empty",
            ));
        }
        Ok(total)
    }

    /// The gradients of `vars` summed over the ranks (a half-done accumulation, for a
    /// checkpoint).
    pub(crate) fn sum(&self, grads: &GradStore, vars: &[Var]) -> Result<GradStore> {
        match flatten(grads, vars)? {
            Some(flat) => unflatten(&self.world.all_reduce_tensor(&flat)?, vars),
            None => Ok(GradStore::default()),
        }
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

/// The values a rank adds after its gradients in a step's all-reduce: its examples, whether
/// it was asked to stop and by which signal, whether it knows if its epoch has another batch,
/// and whether it has.
const TAIL: usize = 5;

fn tail_of(examples: usize, stop: Option<i32>, more: Option<bool>) -> [f32; TAIL] {
    let flag = |b: bool| f32::from(u8::from(b));
    [
        examples as f32,
        flag(stop.is_some()),
        stop.unwrap_or(0) as f32,
        flag(more.is_some()),
        flag(more == Some(true)),
    ]
}

/// The gradients of `vars`, one after the other in one flat f32 tensor (a variable without
/// a gradient in `grads` keeps its place, as zeros); `None` without variables.
fn flatten(grads: &GradStore, vars: &[Var]) -> Result<Option<Tensor>> {
    let Some(first) = vars.first() else {
        return Ok(None);
    };
    let mut parts = Vec::with_capacity(vars.len());
    for var in vars {
        parts.push(match grads.get(var) {
            Some(g) => g.to_dtype(DType::F32)?.flatten_all()?,
            None => Tensor::zeros(var.elem_count(), DType::F32, first.device())?,
        });
    }
    Ok(Some(Tensor::cat(&parts, 0)?))
}

/// The gradients of `vars` cut back out of `flat` (see [`flatten`]), in their shapes and
/// dtypes.
fn unflatten(flat: &Tensor, vars: &[Var]) -> Result<GradStore> {
    let mut grads = GradStore::default();
    let mut offset = 0;
    for var in vars {
        let count = var.elem_count();
        let g = flat
            .narrow(0, offset, count)?
            .reshape(var.shape())?
            .to_dtype(var.dtype())?;
        grads.insert(var, g);
        offset += count;
    }
    Ok(grads)
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
                .optimizer_tensors(self.pending.as_ref())?
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
        // A half-done accumulation is the sum over the ranks, which rank 0 holds.
        self.pending = None;
        Ok(())
    }
}
