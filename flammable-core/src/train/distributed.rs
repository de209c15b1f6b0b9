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
    /// `examples`; also agrees on stopping (`stop`: this rank's signal, if any). `grads` are
    /// this step's own (from its backward pass, held by nothing else): in host memory, the
    /// averages are written over them.
    pub(crate) fn average(
        &mut self,
        grads: GradStore,
        vars: &[Var],
        examples: usize,
        stop: Option<i32>,
        more: Option<bool>,
    ) -> Result<GradStore> {
        if vars.first().is_some_and(|v| v.device().is_cpu()) {
            return self.average_on_host(grads, vars, examples, stop, more);
        }
        let Some(flat) = flatten(&grads, vars)? else {
            return Ok(GradStore::default());
        };
        let len = flat.elem_count();
        let tail = Tensor::new(&tail_of(examples, stop, more), flat.device())?;
        let flat = Tensor::cat(&[&(flat * examples as f64)?, &tail], 0)?;
        let world = self.world;
        let summed = self.timed(|| world.all_reduce_tensor(&flat))?;
        let tail = summed.narrow(0, len, TAIL)?.to_vec1::<f32>()?;
        let total = self.read_tail(&tail, stop)?;
        let mean = (summed.narrow(0, 0, len)? / f64::from(total))?;
        unflatten(&mean, vars)
    }

    /// [`DataParallel::average`] for variables in host memory: each rank's gradients,
    /// scaled by its examples, are written straight into the buffer the transport sums
    /// (after the step's tail, which comes first so that the sums' scale is known before
    /// the gradients' sums arrive), and the sums, scaled, straight over the gradients: one
    /// pass over the values each way, no tensor operation and no new memory.
    fn average_on_host(
        &mut self,
        grads: GradStore,
        vars: &[Var],
        examples: usize,
        stop: Option<i32>,
        more: Option<bool>,
    ) -> Result<GradStore> {
        // The gradients as flat, contiguous f32 tensors in host memory: the step's own when
        // they are already (a view of the same memory), else copies; zeros for a variable
        // without a gradient.
        let mut host: Vec<Tensor> = Vec::with_capacity(vars.len());
        for var in vars {
            host.push(match grads.get(var) {
                Some(g) => g.to_dtype(DType::F32)?.flatten_all()?.contiguous()?,
                None => Tensor::zeros(var.elem_count(), DType::F32, &candle_core::Device::Cpu)?,
            });
        }
        let starts = offsets(vars);
        let len = starts.last().copied().unwrap_or(TAIL);
        let n = examples as f32;
        let tail = tail_of(examples, stop, more);
        let mut fill = |offset: usize, part: &mut [f32]| -> Result<()> {
            for (i, value) in tail.iter().enumerate() {
                if let Some(slot) = i.checked_sub(offset).and_then(|j| part.get_mut(j)) {
                    *slot = *value;
                }
            }
            for (var, range, at) in overlaps(&starts, offset, part.len()) {
                let target = &mut part[at..at + range.len()];
                with_host_slice(&host[var], |values| {
                    for (t, v) in target.iter_mut().zip(&values[range.clone()]) {
                        *t = v * n;
                    }
                })?;
            }
            Ok(())
        };
        let mut summed_tail = [0f32; TAIL];
        let mut scale = None;
        // A part's sums are read after the same part was filled (they are its sums), so the
        // gradients they are written over have been read.
        let mut read = |offset: usize, part: &[f32]| -> Result<()> {
            for (i, slot) in summed_tail.iter_mut().enumerate() {
                if let Some(v) = i.checked_sub(offset).and_then(|j| part.get(j)) {
                    *slot = *v;
                }
            }
            for (var, range, at) in overlaps(&starts, offset, part.len()) {
                // The parts come in order, so the tail (first) is complete here.
                let scale = *scale.get_or_insert_with(|| 1.0 / summed_tail[0]);
                host[var].inplace_op1(&Scaled {
                    values: &part[at..at + range.len()],
                    from: range.start,
                    scale,
                })?;
            }
            Ok(())
        };
        let world = self.world;
        self.timed(|| world.all_reduce_sum_f32_filled(len, &mut fill, &mut read))?;
        self.read_tail(&summed_tail, stop)?;
        drop(grads);
        let mut averaged = GradStore::default();
        for (var, g) in vars.iter().zip(host) {
            averaged.insert(var, g.reshape(var.shape())?.to_dtype(var.dtype())?);
        }
        Ok(averaged)
    }

    /// With gradient accumulation, the weight of this rank's micro-batch of `examples` in the
    /// step: its share of the micro-batch of every rank, times the ranks (`size × examples /
    /// all examples`, exactly 1 when every rank's micro-batch is as large). Scaled by it, the
    /// ranks' sums average with equal weights into what one process with their micro-batches
    /// together computes, an epoch's short last micro-batch included. One small all-reduce
    /// for each micro-batch, which also checks that the ranks' epochs end together (`more`:
    /// whether this rank's epoch has another batch, where it knows).
    pub(crate) fn micro_batch_share(&mut self, examples: usize, more: Option<bool>) -> Result<f64> {
        let flag = |b: bool| f64::from(u8::from(b));
        let mut sums = [
            examples as f64,
            flag(more.is_some()),
            flag(more == Some(true)),
        ];
        let started = Instant::now();
        let summed = self.world.all_reduce_sum(&mut sums);
        // Counted in the time spent averaging, not as a step's all-reduce.
        self.allreduce += started.elapsed();
        summed?;
        check_epochs_end_together(self.world.size(), sums[1] as usize, sums[2] as usize)?;
        if sums[0] <= 0.0 {
            return Err(no_example());
        }
        Ok(self.world.size() as f64 * examples as f64 / sums[0])
    }

    /// At the start of an epoch: an error on every rank when some ranks have batches in it
    /// and some have none (a rank without any would never meet the others' first step).
    pub(crate) fn check_epoch_start(&mut self, has_batches: bool) -> Result<()> {
        let mut with = [f64::from(u8::from(has_batches))];
        self.world.all_reduce_sum(&mut with)?;
        let size = self.world.size();
        check_epochs_end_together(size, size, with[0] as usize)
    }

    /// Runs `all_reduce` (a step's gradients' all-reduce), adding its time to the run's.
    fn timed<T>(&mut self, all_reduce: impl FnOnce() -> Result<T>) -> Result<T> {
        let started = Instant::now();
        let result = all_reduce();
        self.allreduce += started.elapsed();
        self.allreduces += 1;
        result
    }

    /// Reads the summed tail of a step's buffer (see [`tail_of`]): agrees on stopping, checks
    /// that the ranks' epochs end together; returns the examples of the step on all ranks.
    fn read_tail(&mut self, tail: &[f32], stop: Option<i32>) -> Result<f32> {
        let (total, stopping, signals) = (tail[0], tail[1], tail[2]);
        // Every rank says whether its epoch has a batch after this one: when some have and
        // some have not, the next step would leave the ones without waiting.
        let (knowing, with_more) = (tail[3] as usize, tail[4] as usize);
        check_epochs_end_together(self.world.size(), knowing, with_more)?;
        if stopping > 0.0 {
            self.agreed_stop =
                Some(stop.unwrap_or_else(|| (signals / stopping).round().max(1.0) as i32));
        }
        if total <= 0.0 {
            return Err(no_example());
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

/// An error when, of the `size` ranks, all `knowing` whether their epoch has another batch,
/// some (`with_more`) have one and some have not: the next step would leave the ones without
/// waiting.
fn check_epochs_end_together(size: usize, knowing: usize, with_more: usize) -> Result<()> {
    if knowing == size && with_more != 0 && with_more != size {
        return Err(Error::msg(format!(
            "the ranks' training data have different numbers of batches this epoch ({with_more} of {size} ranks have more): \
             batches made by Batches::from_fn must come in a multiple of {size} per epoch"
        )));
    }
    Ok(())
}

/// A step of no example on any rank.
fn no_example() -> Error {
    Error::msg("a training step of no example on any rank: the ranks' data are empty")
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

/// Where each variable's gradient starts in a step's buffer on the host (after the tail),
/// and, last, where the buffer ends.
fn offsets(vars: &[Var]) -> Vec<usize> {
    let mut starts = Vec::with_capacity(vars.len() + 1);
    let mut at = TAIL;
    starts.push(at);
    for var in vars {
        at += var.elem_count();
        starts.push(at);
    }
    starts
}

/// The variables whose values in the buffer (see [`offsets`]) overlap `len` values from
/// `offset`: each variable's index, the range of its own values, and where they start in
/// the part.
fn overlaps(
    starts: &[usize],
    offset: usize,
    len: usize,
) -> impl Iterator<Item = (usize, std::ops::Range<usize>, usize)> + '_ {
    let end = offset + len;
    starts.windows(2).enumerate().filter_map(move |(var, w)| {
        let (from, to) = (w[0].max(offset), w[1].min(end));
        (from < to).then(|| (var, from - w[0]..to - w[0], from - offset))
    })
}

/// Calls `f` with the values of `tensor` (contiguous, f32, in host memory), without a copy.
fn with_host_slice(tensor: &Tensor, f: impl FnOnce(&[f32])) -> Result<()> {
    let (storage, layout) = tensor.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        return Err(Error::msg(
            "the gradients' average on the host met a tensor on a device",
        ));
    };
    f(super::host_values::values(cpu, layout, AVERAGE)?);
    Ok(())
}

/// Names the gradients' average in the error of a tensor it cannot take.
const AVERAGE: &str = "the gradients' average";

/// Writes `values × scale` over a flat f32 tensor in host memory from its value `from`.
struct Scaled<'a> {
    values: &'a [f32],
    from: usize,
    scale: f32,
}

impl candle_core::InplaceOp1 for Scaled<'_> {
    fn name(&self) -> &'static str {
        "scaled-sums"
    }

    fn cpu_fwd(
        &self,
        storage: &mut candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        let target = super::host_values::values_mut(storage, layout, AVERAGE)?
            .get_mut(self.from..self.from + self.values.len())
            .ok_or_else(|| {
                candle_core::Error::Msg("the gradients' average met a tensor too short".into())
            })?;
        for (t, v) in target.iter_mut().zip(self.values) {
            *t = v * self.scale;
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_the_buffer_map_onto_the_variables_they_overlap() {
        // The tail (5 values), then variables of 3, 0 and 4 values: the buffer is 12 long.
        let starts = vec![TAIL, TAIL + 3, TAIL + 3, TAIL + 7];
        let all: Vec<_> = overlaps(&starts, 0, 12).collect();
        assert_eq!(all, vec![(0, 0..3, 5), (2, 0..4, 8)]);
        // A part that starts inside the first variable and ends inside the last.
        let cut: Vec<_> = overlaps(&starts, 6, 4).collect();
        assert_eq!(cut, vec![(0, 1..3, 0), (2, 0..2, 2)]);
        // A part of the tail alone overlaps no variable.
        assert_eq!(overlaps(&starts, 0, TAIL).count(), 0);
    }
}
