//! The processes of one data-parallel training: their rank and number, and the few
//! collective operations the training loop needs (a sum over every process of a flat
//! buffer, a broadcast from rank 0, an all-gather), behind the [`Collective`] trait.
//!
//! A launcher (`mpiexec`, `srun`) starts the processes; [`launched`] reads how many from the
//! environment it sets. With the feature `mpi`, [`start`] joins them through MPI (the
//! [`mpi`] module); another transport (NCCL for GPUs, bootstrapped by the same launcher) is
//! one more implementation of the trait. The world is process-wide, as MPI's is: the
//! command line installs it once, and the loops ask [`world`] for it.

#[cfg(all(feature = "mpi", target_os = "linux"))]
pub mod hangup;
#[cfg(feature = "mpi")]
pub mod mpi;

use crate::error::Result;
use candle_core::Tensor;
use std::sync::{Mutex, OnceLock};

/// The operations data-parallel training needs from the processes of a world. Every
/// process calls the same operations in the same order (they are collective): a process
/// that skips one leaves the others waiting, which implementations bound with a timeout.
pub trait Collective: Send + Sync {
    /// This process's rank, from 0.
    fn rank(&self) -> usize;

    /// The number of processes.
    fn size(&self) -> usize;

    /// The transport's name, for the record: `mpi`, or `mpi, shared memory` when the
    /// gradients' sums go through memory the ranks share (all on one machine).
    fn backend(&self) -> &'static str;

    /// Replaces `values` by their element-wise sum over every process.
    fn all_reduce_sum(&self, values: &mut [f64]) -> Result<()>;

    /// Like [`Collective::all_reduce_sum`], in single precision (gradients).
    fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<()>;

    /// Like [`Collective::all_reduce_sum_f32`] on a buffer of `len` values that the
    /// transport provides: `fill` writes the values, part by part (given each part's offset
    /// in the buffer; together the parts cover it once), and `read` is handed their sums,
    /// part by part in order of offset. A transport whose processes share memory lets them
    /// write into and read from it directly, without a buffer of the caller's own and its
    /// two copies. The default goes through a buffer.
    fn all_reduce_sum_f32_filled(
        &self,
        len: usize,
        fill: &mut dyn FnMut(usize, &mut [f32]) -> Result<()>,
        read: &mut dyn FnMut(usize, &[f32]) -> Result<()>,
    ) -> Result<()> {
        through_buffer(len, fill, read, |buffer| self.all_reduce_sum_f32(buffer))
    }

    /// The element-wise sum over every process of the flat tensor `flat` (f32), on its
    /// device. The default goes through host memory; a transport that reduces device memory
    /// in place (NCCL) overrides it.
    fn all_reduce_tensor(&self, flat: &Tensor) -> Result<Tensor> {
        let mut host = flat.to_vec1::<f32>()?;
        self.all_reduce_sum_f32(&mut host)?;
        Ok(Tensor::from_vec(host, flat.dims(), flat.device())?)
    }

    /// Rank 0's `bytes`, on every process (the other processes' `bytes` are replaced).
    fn broadcast(&self, bytes: &mut Vec<u8>) -> Result<()>;

    /// Every process's `mine`, in rank order, on every process.
    fn all_gather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>>;

    /// Tells rank 0 why this process stops (a rank other than 0 that fails), so that the
    /// run records it and says it; says it itself when rank 0 does not end the world within
    /// a grace period; then ends every process of the world. Never returns.
    fn fail(&self, message: &str, code: i32) -> !;

    /// Ends every process of the world at once (rank 0 after recording a failure). Never
    /// returns.
    fn abort(&self, code: i32) -> !;

    /// Leaves the world cleanly, once every process is done (after the last collective).
    fn finalize(&self);
}

/// [`Collective::all_reduce_sum_f32_filled`] through a buffer of `len` values: filled whole,
/// summed in place by `sum`, read whole.
pub(crate) fn through_buffer(
    len: usize,
    fill: &mut dyn FnMut(usize, &mut [f32]) -> Result<()>,
    read: &mut dyn FnMut(usize, &[f32]) -> Result<()>,
    sum: impl FnOnce(&mut [f32]) -> Result<()>,
) -> Result<()> {
    let mut buffer = vec![0f32; len];
    fill(0, &mut buffer)?;
    sum(&mut buffer)?;
    read(0, &buffer)
}

static WORLD: OnceLock<Box<dyn Collective>> = OnceLock::new();

/// What rank 0 does when another rank says it failed (see [`Collective::fail`]), before the
/// world ends: the command line records the run as failed with the message.
type FailureHook = Box<dyn Fn(&str) + Send>;
static ON_PEER_FAILURE: Mutex<Option<FailureHook>> = Mutex::new(None);

/// The world of this process when it is one of several: `None` for a process on its own
/// (no launcher, or a launcher of one process).
pub fn world() -> Option<&'static dyn Collective> {
    WORLD.get().map(Box::as_ref).filter(|w| w.size() > 1)
}

/// Makes `world` the process's world; a second call is ignored (there is one per process).
pub fn install(world: Box<dyn Collective>) {
    let _ = WORLD.set(world);
}

/// Sets what rank 0 does when another rank reports a failure: record it (see
/// [`Collective::fail`]).
pub fn on_peer_failure(hook: impl Fn(&str) + Send + 'static) {
    if let Ok(mut slot) = ON_PEER_FAILURE.lock() {
        *slot = Some(Box::new(hook));
    }
}

/// Runs the hook of [`on_peer_failure`] with `message` (implementations call it on rank 0);
/// whether there was one.
pub fn peer_failed(message: &str) -> bool {
    let Ok(slot) = ON_PEER_FAILURE.lock() else {
        return false;
    };
    match slot.as_ref() {
        Some(hook) => {
            hook(message);
            true
        }
        None => false,
    }
}

/// How many processes a launcher started this one among, read from the variables it sets:
/// MPICH's and Intel MPI's hydra (`PMI_SIZE`), Open MPI (`OMPI_COMM_WORLD_SIZE`) and Slurm's
/// `srun` (`SLURM_STEP_NUM_TASKS` with `SLURM_PROCID`; a batch script alone is one task).
/// `None` without a launcher.
pub fn launched() -> Option<usize> {
    let number = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
    };
    number("PMI_SIZE")
        .or_else(|| number("OMPI_COMM_WORLD_SIZE"))
        .or_else(|| std::env::var_os("SLURM_PROCID").and_then(|_| number("SLURM_STEP_NUM_TASKS")))
}

/// Joins the processes of the launcher that started this one, when it started several:
/// installs the world and returns it. Without a launcher, or with one process, returns
/// `None` and changes nothing. A binary built without a transport refuses several
/// processes (instead of training the same model once per process).
pub fn start() -> Result<Option<&'static dyn Collective>> {
    let Some(size) = launched() else {
        return Ok(None);
    };
    if size <= 1 || WORLD.get().is_some() {
        return Ok(world());
    }
    #[cfg(feature = "mpi")]
    {
        let joined = mpi::MpiWorld::join()?;
        if joined.size() != size {
            return Err(crate::error::Error::usage(format!(
                "this process was started as one of {size} processes, but MPI sees {}: the launcher did not tell MPI how to join them \
                 (with srun, give --mpi=pmi2, or set MpiDefault=pmi2 in slurm.conf)",
                joined.size()
            )));
        }
        install(Box::new(joined));
        Ok(world())
    }
    #[cfg(not(feature = "mpi"))]
    Err(crate::error::Error::usage(format!(
        "this binary was started as one of {size} processes (by mpiexec or srun), but it was built without MPI: \
         rebuild it with the feature `mpi` of flammable (cargo build --features flammable/mpi), or start one process"
    )))
}

/// A hash of `parts` (each part delimited, so that `["ab", "c"]` and `["a", "bc"]` differ):
/// how ranks compare their hyperparameters and binaries without sending them. The same
/// binary gives the same hash in every process, which is all the comparison needs.
pub fn fingerprint(parts: &[&[u8]]) -> u64 {
    use std::hash::Hasher;
    let mut hasher = std::hash::DefaultHasher::new();
    for part in parts {
        hasher.write_usize(part.len());
        hasher.write(part);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_parts_apart() {
        assert_eq!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"ab", b"c"]));
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
        assert_ne!(fingerprint(&[b"lr=1"]), fingerprint(&[b"lr=2"]));
    }
}
