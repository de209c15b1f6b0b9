//! Data: samples, datasets, and batches for the loops.
//!
//! candle has no data loader. A [`Dataset`] gives samples by index; a [`Batcher`] turns one
//! into batches (seeded shuffle per epoch, drop-last, collation into stacked tensors on the
//! target device, optional background prefetch); [`Batches`] is what `#[data(..)]` steps
//! return, and also wraps plain lists or iterators of batches.

mod csv;
mod scale;
mod split;
mod tensor_dataset;

pub use self::csv::Target;
pub use scale::{Fit, MeanStd, MinMax, MinRange, Scaler, Standardize};
pub use tensor_dataset::TensorDataset;

use crate::error::{Error, Result};
use crate::model::rng::rng_for;
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use std::sync::mpsc;
use std::sync::Arc;

/// One batch: an input tensor and a target tensor whose first dimension is the batch.
#[derive(Clone, Debug)]
pub struct Batch {
    /// What the model reads: `(batch, …)`.
    pub input: Tensor,
    /// What the loss and the metrics compare against: `(batch, …)`.
    pub target: Tensor,
}

impl Batch {
    /// A batch of `input` and `target`.
    pub fn new(input: Tensor, target: Tensor) -> Self {
        Batch { input, target }
    }

    /// The number of examples (the first dimension of `input`; 1 for a scalar input).
    pub fn len(&self) -> usize {
        self.input.dims().first().copied().unwrap_or(1)
    }

    /// True when the batch holds no example.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same batch on `device` (no copy when it is already there).
    pub fn to_device(&self, device: &Device) -> Result<Batch> {
        if self.input.device().same_device(device) && self.target.device().same_device(device) {
            return Ok(self.clone());
        }
        Ok(Batch {
            input: self.input.to_device(device)?,
            target: self.target.to_device(device)?,
        })
    }
}

/// A collection of examples that can be read by index.
///
/// Implement `len` and `get`; override `get_batch` when a whole batch can be gathered faster
/// than example by example (see [`TensorDataset`]).
pub trait Dataset: Send + Sync {
    /// The number of examples.
    fn len(&self) -> usize;

    /// True when there is no example.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Example `index` as an (input, target) pair without the batch dimension.
    fn get(&self, index: usize) -> Result<(Tensor, Tensor)>;

    /// The examples at `indices`, stacked along a new first dimension.
    fn get_batch(&self, indices: &[usize]) -> Result<Batch> {
        let mut inputs = Vec::with_capacity(indices.len());
        let mut targets = Vec::with_capacity(indices.len());
        for &i in indices {
            let (x, y) = self.get(i)?;
            inputs.push(x);
            targets.push(y);
        }
        Ok(Batch::new(
            Tensor::stack(&inputs, 0)?,
            Tensor::stack(&targets, 0)?,
        ))
    }
}

/// Turns a [`Dataset`] into batches; build with [`Batcher::new`] and chain the options.
#[derive(Clone)]
pub struct Batcher {
    dataset: Arc<dyn Dataset>,
    batch_size: usize,
    shuffle: bool,
    drop_last: bool,
    prefetch: usize,
}

impl Batcher {
    /// Batches of `batch_size` examples of `dataset`, in order, keeping a last short batch,
    /// without prefetch.
    pub fn new(dataset: impl Dataset + 'static, batch_size: usize) -> Self {
        Batcher {
            dataset: Arc::new(dataset),
            batch_size: batch_size.max(1),
            shuffle: false,
            drop_last: false,
            prefetch: 0,
        }
    }

    /// Shuffle the examples every epoch, with a permutation drawn from the run seed and the
    /// epoch number (the same seed gives the same order).
    pub fn shuffle(mut self, yes: bool) -> Self {
        self.shuffle = yes;
        self
    }

    /// Leave out a last batch smaller than the batch size.
    pub fn drop_last(mut self, yes: bool) -> Self {
        self.drop_last = yes;
        self
    }

    /// Build up to `batches` batches ahead on a background thread (0: none).
    pub fn prefetch(mut self, batches: usize) -> Self {
        self.prefetch = batches;
        self
    }

    /// The number of batches in one epoch.
    pub fn len(&self) -> usize {
        let n = self.dataset.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// True when an epoch yields no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of batches in one epoch of `shard`'s share (see [`Batches::shard`]).
    fn len_of(&self, shard: Shard) -> usize {
        if shard.world == 1 {
            return self.len();
        }
        if !shard.steps {
            return self.len().saturating_sub(shard.rank).div_ceil(shard.world);
        }
        let n = self.dataset.len();
        let global = self.batch_size * shard.world;
        let last = n % global;
        // A short last step is kept when every rank gets an example of it.
        n / global + usize::from(!self.drop_last && last >= shard.world)
    }

    /// The example order of `epoch`, cut into batches: for a shard of a world of processes,
    /// into steps of `world × batch size` examples (the same on every rank: the same seeded
    /// order), each rank taking its part of each step, as even as possible (see
    /// [`Batches::shard`]).
    fn order(&self, epoch: usize, seed: u64, shard: Shard) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.shuffle {
            order.shuffle(&mut rng_for(seed, "shuffle", epoch as u64));
        }
        if !shard.steps {
            let mut chunks: Vec<Vec<usize>> = order
                .chunks(self.batch_size)
                .map(<[usize]>::to_vec)
                .collect();
            if self.drop_last && chunks.last().is_some_and(|c| c.len() < self.batch_size) {
                chunks.pop();
            }
            return chunks
                .into_iter()
                .skip(shard.rank)
                .step_by(shard.world)
                .collect();
        }
        let global = self.batch_size * shard.world;
        let mut steps: Vec<&[usize]> = order.chunks(global).collect();
        if steps
            .last()
            .is_some_and(|c| c.len() < shard.world || (self.drop_last && c.len() < global))
        {
            steps.pop();
        }
        steps
            .into_iter()
            .map(|step| {
                let (base, extra) = (step.len() / shard.world, step.len() % shard.world);
                let start = shard.rank * base + shard.rank.min(extra);
                let len = base + usize::from(shard.rank < extra);
                step[start..start + len].to_vec()
            })
            .collect()
    }

    fn epoch(
        &self,
        epoch: usize,
        skip: usize,
        seed: u64,
        device: &Device,
        shard: Shard,
    ) -> BatchIter {
        let mut chunks = self.order(epoch, seed, shard);
        chunks.drain(..skip.min(chunks.len()));
        let dataset = Arc::clone(&self.dataset);
        let device = device.clone();
        let make = move |idx: Vec<usize>| dataset.get_batch(&idx)?.to_device(&device);
        if self.prefetch == 0 {
            return Box::new(chunks.into_iter().map(make));
        }
        let (tx, rx) = mpsc::sync_channel(self.prefetch);
        std::thread::spawn(move || {
            for idx in chunks {
                // A panic in the data set must fail the epoch, not end it early as if the
                // data had run out.
                let batch = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| make(idx)))
                    .unwrap_or_else(|panic| {
                        Err(Error::msg(format!(
                            "the data set panicked while building a batch: {}",
                            crate::util::panic::panic_message(panic.as_ref())
                        )))
                    });
                let failed = batch.is_err();
                // A closed channel means the loop stopped early; stop building batches.
                if tx.send(batch).is_err() || failed {
                    break;
                }
            }
        });
        Box::new(rx.into_iter())
    }
}

/// An iterator over one epoch's batches.
pub type BatchIter = Box<dyn Iterator<Item = Result<Batch>> + Send>;

type EpochFn = Box<dyn FnMut(usize) -> Result<BatchIter> + Send>;

enum Source {
    Batcher(Batcher),
    List(Vec<Batch>),
    Fn(EpochFn),
}

/// Which share of every epoch a process of a data-parallel training reads: rank `rank` of
/// `world` processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shard {
    rank: usize,
    world: usize,
    /// True for training (the ranks take each step together); false for testing (every
    /// batch read once, by one rank).
    steps: bool,
}

impl Shard {
    const WHOLE: Shard = Shard {
        rank: 0,
        world: 1,
        steps: false,
    };
}

/// The batches a `#[data(..)]` step returns: the loop asks it for each epoch's batches.
pub struct Batches {
    source: Source,
    shard: Shard,
}

impl Batches {
    /// The same list of batches every epoch.
    pub fn from_vec(batches: Vec<Batch>) -> Self {
        Batches {
            source: Source::List(batches),
            shard: Shard::WHOLE,
        }
    }

    /// Batches made anew for each epoch by `f(epoch)`, e.g. from a file reader.
    pub fn from_fn<F, I>(mut f: F) -> Self
    where
        F: FnMut(usize) -> Result<I> + Send + 'static,
        I: IntoIterator<Item = Result<Batch>>,
        I::IntoIter: Send + 'static,
    {
        Batches {
            source: Source::Fn(Box::new(move |epoch| {
                Ok(Box::new(f(epoch)?.into_iter()) as BatchIter)
            })),
            shard: Shard::WHOLE,
        }
    }

    /// The number of batches per epoch, where known in advance.
    pub fn batches_per_epoch(&self) -> Option<usize> {
        match &self.source {
            Source::Batcher(b) => Some(b.len_of(self.shard)),
            Source::List(v) if self.shard.steps => Some(v.len() / self.shard.world),
            Source::List(v) => Some(
                v.len()
                    .saturating_sub(self.shard.rank)
                    .div_ceil(self.shard.world),
            ),
            Source::Fn(_) => None,
        }
    }

    /// The share of every epoch that rank `rank` of `world` processes reads, in a
    /// data-parallel training (the loops call it; `world` 1 is the whole).
    ///
    /// A [`Batcher`] cuts its (seeded) order into steps of `world × batch size` examples and
    /// gives each rank its part of each step, as even as possible: world × batch B reads, step
    /// by step, the examples that one process reads with batch world × B. A last step with
    /// fewer examples than ranks is left out. A list of batches gives rank `r` the batches
    /// `r`, `r + world`, … (as many to each rank); batches made by a function likewise, and
    /// the function must then make a multiple of `world` batches per epoch (the ranks take
    /// a step together: a rank with one batch more would wait for the others).
    pub fn shard(mut self, rank: usize, world: usize) -> Self {
        let world = world.max(1);
        self.shard = Shard {
            rank: rank.min(world - 1),
            world,
            steps: true,
        };
        self
    }

    /// The share this reads: (rank, world); (0, 1) for the whole.
    pub fn share(&self) -> (usize, usize) {
        (self.shard.rank, self.shard.world)
    }

    /// The share of rank `rank` of `world` processes that test together: the batches `rank`,
    /// `rank + world`, … of each epoch, so that every batch is read once, by one rank, and the
    /// ranks' metrics pooled give those of the whole split.
    pub fn shard_batches(mut self, rank: usize, world: usize) -> Self {
        let world = world.max(1);
        self.shard = Shard {
            rank: rank.min(world - 1),
            world,
            steps: false,
        };
        self
    }

    /// The batches of `epoch` (counted from 0), shuffled with `seed` where the source
    /// shuffles, on `device` where the source collates.
    pub fn epoch(&mut self, epoch: usize, seed: u64, device: &Device) -> Result<BatchIter> {
        self.epoch_from(epoch, 0, seed, device)
    }

    /// Like [`Batches::epoch`], leaving out the first `skip` batches (a run resumed in the
    /// middle of an epoch); a `Batcher` skips them without building them.
    pub fn epoch_from(
        &mut self,
        epoch: usize,
        skip: usize,
        seed: u64,
        device: &Device,
    ) -> Result<BatchIter> {
        let Shard { rank, world, steps } = self.shard;
        match &mut self.source {
            Source::Batcher(b) => Ok(b.epoch(epoch, skip, seed, device, self.shard)),
            Source::List(v) => {
                let each = if steps { v.len() / world } else { v.len() };
                let mine: Vec<Batch> = v
                    .iter()
                    .skip(rank)
                    .step_by(world)
                    .take(each)
                    .cloned()
                    .collect();
                Ok(Box::new(mine.into_iter().skip(skip).map(Ok)))
            }
            Source::Fn(f) => Ok(Box::new(f(epoch)?.skip(rank).step_by(world).skip(skip))),
        }
    }
}

impl From<Batcher> for Batches {
    fn from(b: Batcher) -> Self {
        Batches {
            source: Source::Batcher(b),
            shard: Shard::WHOLE,
        }
    }
}

impl From<Vec<Batch>> for Batches {
    fn from(v: Vec<Batch>) -> Self {
        Batches::from_vec(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(n: usize) -> TensorDataset {
        let x = Tensor::arange(0f32, n as f32, &Device::Cpu)
            .unwrap()
            .reshape((n, 1))
            .unwrap();
        let y = Tensor::arange(0u32, n as u32, &Device::Cpu).unwrap();
        TensorDataset::new(x, y).unwrap()
    }

    fn targets(b: &mut Batches, epoch: usize, seed: u64) -> Vec<Vec<u32>> {
        b.epoch(epoch, seed, &Device::Cpu)
            .unwrap()
            .map(|b| b.unwrap().target.to_vec1::<u32>().unwrap())
            .collect()
    }

    #[test]
    fn batches_in_order_with_short_last() {
        let mut b: Batches = Batcher::new(dataset(5), 2).into();
        assert_eq!(b.batches_per_epoch(), Some(3));
        assert_eq!(targets(&mut b, 0, 0), vec![vec![0, 1], vec![2, 3], vec![4]]);
    }

    #[test]
    fn drop_last_and_prefetch() {
        let mut b: Batches = Batcher::new(dataset(5), 2)
            .drop_last(true)
            .prefetch(2)
            .into();
        assert_eq!(b.batches_per_epoch(), Some(2));
        assert_eq!(targets(&mut b, 0, 0), vec![vec![0, 1], vec![2, 3]]);
    }

    #[test]
    fn an_epoch_can_start_part_way() {
        let mut b: Batches = Batcher::new(dataset(50), 10)
            .shuffle(true)
            .prefetch(1)
            .into();
        let all = targets(&mut b, 2, 9);
        let rest: Vec<Vec<u32>> = b
            .epoch_from(2, 3, 9, &Device::Cpu)
            .unwrap()
            .map(|b| b.unwrap().target.to_vec1::<u32>().unwrap())
            .collect();
        assert_eq!(rest, all[3..].to_vec());
    }

    #[test]
    fn shuffle_is_seeded_per_epoch() {
        let mut b: Batches = Batcher::new(dataset(50), 50).shuffle(true).into();
        let e0 = targets(&mut b, 0, 1);
        assert_eq!(e0, targets(&mut b, 0, 1));
        assert_ne!(e0, targets(&mut b, 1, 1));
        assert_ne!(e0, targets(&mut b, 0, 2));
        let mut sorted = e0[0].clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<u32>>());
    }

    #[test]
    fn ranks_share_each_step_as_one_process_reads_it() {
        // 50 examples, 3 ranks of batch 4: steps of 12, the last of 2 left out (fewer than
        // the ranks); rank r's batch i is its part of one process's batch i of 12.
        let mut whole: Batches = Batcher::new(dataset(50), 12).shuffle(true).into();
        let global = targets(&mut whole, 1, 5);
        let shares: Vec<Vec<Vec<u32>>> = (0..3)
            .map(|r| {
                let mut b: Batches = Batcher::new(dataset(50), 4).shuffle(true).into();
                let mut b = b_shard(&mut b, r);
                assert_eq!(b.batches_per_epoch(), Some(4));
                targets(&mut b, 1, 5)
            })
            .collect();
        for (i, step) in global.iter().take(4).enumerate() {
            let joined: Vec<u32> = shares.iter().flat_map(|s| s[i].clone()).collect();
            assert_eq!(&joined, step);
        }
        // 51 examples: a last step of 3, one example a rank.
        let mut b: Batches = Batcher::new(dataset(51), 4).into();
        let mut b = b_shard(&mut b, 2);
        assert_eq!(b.batches_per_epoch(), Some(5));
        assert_eq!(targets(&mut b, 0, 0).last().unwrap(), &vec![50]);
    }

    fn b_shard(b: &mut Batches, rank: usize) -> Batches {
        std::mem::replace(b, Batches::from_vec(Vec::new())).shard(rank, 3)
    }

    #[test]
    fn ranks_test_every_batch_once() {
        let mut seen: Vec<u32> = Vec::new();
        for r in 0..3 {
            let mut b = Batches::from(Batcher::new(dataset(10), 3)).shard_batches(r, 3);
            let expected = b.batches_per_epoch().unwrap();
            let mine = targets(&mut b, 0, 0);
            assert_eq!(mine.len(), expected);
            seen.extend(mine.into_iter().flatten());
        }
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<u32>>());
    }

    #[test]
    fn plain_lists_and_functions() {
        let one = Batch::new(
            Tensor::zeros((2, 1), candle_core::DType::F32, &Device::Cpu).unwrap(),
            Tensor::new(&[7u32, 8], &Device::Cpu).unwrap(),
        );
        let mut v = Batches::from_vec(vec![one.clone()]);
        assert_eq!(targets(&mut v, 3, 0), vec![vec![7, 8]]);
        let mut f = Batches::from_fn(move |e| {
            Ok((0..e).map({
                let one = one.clone();
                move |_| Ok(one.clone())
            }))
        });
        assert_eq!(f.batches_per_epoch(), None);
        assert_eq!(targets(&mut f, 2, 0).len(), 2);
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        let x = Tensor::zeros((3, 1), candle_core::DType::F32, &Device::Cpu).unwrap();
        let y = Tensor::zeros(2, candle_core::DType::U32, &Device::Cpu).unwrap();
        assert!(TensorDataset::new(x, y).is_err());
    }
}
