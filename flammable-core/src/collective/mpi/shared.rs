//! The gradients' all-reduce between ranks of one machine through memory they share: an
//! MPI-3 shared window (`MPI_Win_allocate_shared` on the ranks that
//! `MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)` puts together), in three steps —
//! every rank writes its values into its own segment; every rank sums one slice of the
//! values over all segments, in rank order, into its segment; every rank reads every
//! rank's summed slice out. Each step ends at a collective of the same ranks.
//!
//! Why not `MPI_Allreduce`: Debian's MPICH (ch4 over UCX, no shared-memory module) moves an
//! all-reduce between two processes of one machine through UCX's bounce buffers, 1.1 ms for
//! the 1.2 MB of a 300,000-parameter network, where these three steps take 0.3 ms (the
//! all-reduce's share of a step in `bench dist_scaling` went from 10.9 % to 6.7 %). MPI still starts, joins,
//! synchronises and ends the ranks; only the values' way between them is memory.
//!
//! Sums are made in rank order whoever makes them, so a rerun gives the same bits.
//!
//! The module calls MPI's C functions for windows (rsmpi has no safe API for them) and
//! reads and writes the window's memory through raw pointers, each with its reason.
#![allow(unsafe_code)]

use super::MpiWorld;
use crate::error::{Error, Result};
use mpi::collective::SystemOperation;
use mpi::ffi;
use mpi::raw::AsRaw;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::os::raw::{c_int, c_void};

/// The environment variable that turns the shared-memory all-reduce off (`off`): every
/// all-reduce then goes through MPI's own.
pub const SHARED_ENV: &str = "FLAMMABLE_COLLECTIVE_SHM";
/// The most values a rank's segment holds (16 MiB of f32): a larger buffer goes through in
/// parts.
const SEGMENT: usize = 1 << 22;
/// The fewest values worth a segment (1 MiB of f32): with less room, MPI's all-reduce.
const SMALLEST_SEGMENT: usize = 1 << 18;
/// Where MPICH keeps a shared window's memory (a file of a tmpfs: a write past its free space
/// would end the process with SIGBUS, so the segments take at most half of that).
const SHM_DIR: &str = "/dev/shm";
/// Below this many values MPI's all-reduce is as fast (three collectives cost more than
/// one small message).
const SMALLEST: usize = 4096;

/// The segments of the ranks of this machine, when every rank of the world is on it.
pub(super) struct SharedSegments {
    /// The ranks of the window (the whole world, on one machine).
    comm: SimpleCommunicator,
    window: ffi::MPI_Win,
    /// Where each rank's segment starts, in this process's address space, by rank.
    bases: Vec<*mut f32>,
    /// The values of the smallest segment.
    capacity: usize,
    rank: usize,
}

// SAFETY: the pointers are into the shared window this value owns, which lives until
// `free`; the value is only used under `MpiWorld`'s lock by the thread that joined MPI
// (MPI is initialised `Funneled`), so moving it between threads moves no access.
unsafe impl Send for SharedSegments {}

impl SharedSegments {
    /// The segments for the ranks of `world`, when they are all on this machine (several of
    /// them), this rank is `on` (see [`wanted_from_env`]) and the window can be made; `None`
    /// otherwise (then MPI's all-reduce serves). Collective: every rank calls it, at the start.
    pub(super) fn of_world(world: &SimpleCommunicator, on: bool) -> Result<Option<SharedSegments>> {
        let comm = world.split_shared(world.rank());
        let size = world.size().max(0) as usize;
        // Every rank must take the shared way or none, with segments of one size (making
        // the window is collective): a rank told `off` alone, ranks spread over machines or
        // one short of room keep them all off it.
        let wanted = on && size >= 2 && comm.size() == world.size();
        let mine = if wanted { segment_values(size) } else { 0 };
        let mut values = 0u64;
        world.all_reduce_into(&(mine as u64), &mut values, SystemOperation::min());
        let values = values as usize;
        if values < SMALLEST_SEGMENT {
            return Ok(None);
        }
        // SAFETY: the error handler is set on this communicator of our own; a window that
        // cannot be made then returns an error code instead of ending the process.
        unsafe {
            ffi::MPI_Comm_set_errhandler(comm.as_raw(), ffi::RSMPI_ERRORS_RETURN);
        }
        let made = Self::allocate(comm, size, values);
        // Whether every rank made the window, and whether every rank can use it.
        let flags = [
            i32::from(made.is_some()),
            i32::from(made.as_ref().is_some_and(|m| m.1)),
        ];
        let mut all = [0i32; 2];
        world.all_reduce_into(&flags[..], &mut all[..], SystemOperation::min());
        Ok(match made {
            Some((segments, _)) if all[1] == 1 => Some(segments),
            // Freeing is collective: only when every rank has a window to free (else it is
            // left to the end of the process).
            Some((segments, _)) if all[0] == 1 => {
                segments.free();
                None
            }
            _ => None,
        })
    }

    /// Makes the window (a segment of `values` values a rank), finds every rank's segment
    /// in it and gives this rank's segment its memory now (so that a `/dev/shm` filled
    /// later by others cannot make a write to it fail): the segments, and whether all that
    /// went well; `None` when no window was made.
    fn allocate(
        comm: SimpleCommunicator,
        size: usize,
        values: usize,
    ) -> Option<(SharedSegments, bool)> {
        let rank = comm.rank().max(0) as usize;
        // SAFETY: reads a constant of the MPI library (the null window handle).
        let mut window: ffi::MPI_Win = unsafe { ffi::RSMPI_WIN_NULL };
        let mut base: *mut f32 = std::ptr::null_mut();
        let bytes = (values * std::mem::size_of::<f32>()) as ffi::MPI_Aint;
        // SAFETY: MPI writes the window's handle and this rank's base address into the two
        // locals given; the memory is MPI's until MPI_Win_free.
        let code = unsafe {
            ffi::MPI_Win_allocate_shared(
                bytes,
                std::mem::size_of::<f32>() as c_int,
                ffi::RSMPI_INFO_NULL,
                comm.as_raw(),
                (&mut base as *mut *mut f32).cast::<c_void>(),
                &mut window,
            )
        };
        // Errors of the collectives that follow (the sums' barriers) end the job, as on the
        // world, instead of returning codes nobody reads: only making the window returns one.
        // SAFETY: the error handler of this communicator of our own, as in `of_world`.
        unsafe {
            ffi::MPI_Comm_set_errhandler(comm.as_raw(), ffi::RSMPI_ERRORS_ARE_FATAL);
        }
        if code != 0 {
            return None;
        }
        let mut bases = Vec::with_capacity(size);
        let mut capacity = usize::MAX;
        let mut usable = true;
        for other in 0..size {
            let mut their_bytes: ffi::MPI_Aint = 0;
            let mut unit: c_int = 0;
            let mut their_base: *mut f32 = std::ptr::null_mut();
            // SAFETY: asks where rank `other`'s segment of the window lies in this process.
            let code = unsafe {
                ffi::MPI_Win_shared_query(
                    window,
                    other as c_int,
                    &mut their_bytes,
                    &mut unit,
                    (&mut their_base as *mut *mut f32).cast::<c_void>(),
                )
            };
            usable &= code == 0 && !their_base.is_null();
            capacity = capacity.min(their_bytes.max(0) as usize / std::mem::size_of::<f32>());
            bases.push(their_base);
        }
        usable = usable && capacity > 0 && populate(base, values);
        // One passive epoch over the whole window for its lifetime; the steps order their
        // accesses with MPI_Win_sync and the collectives between them.
        // SAFETY: the window is valid; NOCHECK since no rank ever takes a lock on it.
        unsafe { ffi::MPI_Win_lock_all(ffi::MPI_MODE_NOCHECK as c_int, window) };
        let segments = SharedSegments {
            comm,
            window,
            bases,
            capacity,
            rank,
        };
        Some((segments, usable))
    }

    /// Frees the window (collective: every rank calls it, before MPI ends).
    pub(super) fn free(mut self) {
        // SAFETY: the window this value made, freed once: `self` is consumed.
        unsafe {
            ffi::MPI_Win_unlock_all(self.window);
            ffi::MPI_Win_free(&mut self.window);
        }
    }

    /// Makes this process's writes to the window visible to the other ranks and theirs to
    /// this one, around a collective.
    fn sync(&self) {
        // SAFETY: the window is valid and in its passive epoch (see `allocate`).
        unsafe { ffi::MPI_Win_sync(self.window) };
    }
}

impl MpiWorld {
    /// Sums over the ranks `len` values that `fill` writes into this rank's segment and
    /// hands the sums to `read` from every rank's segment (see the module and
    /// [`super::Collective::all_reduce_sum_f32_filled`]); fewer than [`SMALLEST`] values go
    /// through MPI's all-reduce. Every rank must bring as many values: the ranks agree on
    /// that first, and a difference is an error on every rank.
    pub(super) fn sum_through_memory(
        &self,
        segments: &SharedSegments,
        len: usize,
        fill: &mut dyn FnMut(usize, &mut [f32]) -> Result<()>,
        read: &mut dyn FnMut(usize, &[f32]) -> Result<()>,
        what: &str,
    ) -> Result<()> {
        // Also where every rank has read the last sums out of every segment.
        let lengths = [len as i64, -(len as i64)];
        let mut agreed = [0i64; 2];
        mpi::request::scope(|scope| {
            let request = segments.comm.immediate_all_reduce_into(
                scope,
                &lengths[..],
                &mut agreed[..],
                SystemOperation::max(),
            );
            self.wait(request, what);
        });
        if agreed[0] != -agreed[1] {
            return Err(Error::msg(format!(
                "{what}: the ranks brought different numbers of values ({} to {})",
                -agreed[1], agreed[0]
            )));
        }
        if len < SMALLEST {
            return super::through_buffer(len, fill, read, |buffer| {
                self.sum_in_buckets(buffer, what);
                Ok(())
            });
        }
        let size = segments.bases.len();
        let mut offset = 0;
        while offset < len {
            if offset > 0 {
                // Every rank has read the last part's sums out of every segment.
                self.barrier_of(segments, what);
            }
            let part = segments.capacity.min(len - offset);
            {
                // SAFETY: this rank's segment holds `capacity` ≥ `part` values, and no other
                // rank reads or writes it before the collective below.
                let mine =
                    unsafe { std::slice::from_raw_parts_mut(segments.bases[segments.rank], part) };
                fill(offset, mine)?;
            }
            self.barrier_of(segments, what);
            // This rank's slice: an even cut of the part.
            let slice = |rank: usize| {
                let per = part.div_ceil(size);
                ((per * rank).min(part), (per * rank + per).min(part))
            };
            let (start, end) = slice(segments.rank);
            sum_slice(segments, start, end);
            self.barrier_of(segments, what);
            for other in 0..size {
                let (from, to) = slice(other);
                // SAFETY: rank `other`'s slice of its segment, summed before the collective
                // just passed and not written again before the next part's first collective.
                let summed = unsafe {
                    std::slice::from_raw_parts(segments.bases[other].add(from), to - from)
                };
                read(offset + from, summed)?;
            }
            offset += part;
        }
        Ok(())
    }

    /// A barrier of the segments' ranks, with the window's memory synchronised around it.
    fn barrier_of(&self, segments: &SharedSegments, what: &str) {
        segments.sync();
        let request = segments.comm.immediate_barrier();
        self.wait(request, what);
        segments.sync();
    }
}

/// Whether this rank may sum through shared memory: [`SHARED_ENV`] unset or `on`, not `off`;
/// another value is a usage error.
pub(super) fn wanted_from_env() -> Result<bool> {
    match std::env::var(SHARED_ENV) {
        Err(_) => Ok(true),
        Ok(v) if v.trim().eq_ignore_ascii_case("on") => Ok(true),
        Ok(v) if v.trim().eq_ignore_ascii_case("off") => Ok(false),
        Ok(v) => Err(Error::usage(format!("{SHARED_ENV}={v}: `on` or `off`"))),
    }
}

/// The values of this rank's segment: [`SEGMENT`], or less where the shared-memory folder
/// has less than twice the `size` ranks' segments free.
fn segment_values(size: usize) -> usize {
    let Ok(dir) = std::ffi::CString::new(SHM_DIR) else {
        return SEGMENT;
    };
    // SAFETY: statvfs writes into the zeroed struct given, for a valid C string.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(dir.as_ptr(), &mut stat) } != 0 {
        // No such folder: MPICH keeps the window elsewhere, without this limit.
        return SEGMENT;
    }
    let free = (stat.f_bavail as u128 * stat.f_frsize as u128) as f64;
    let each = free / (2.0 * size.max(1) as f64) / std::mem::size_of::<f32>() as f64;
    SEGMENT.min(each as usize)
}

/// Gives the `values` values from `base` (this rank's segment) their memory now: Linux's
/// MADV_POPULATE_WRITE fails where there is no room, instead of a later write's SIGBUS
/// (kernels before 5.14 have it not: there the values are written once instead). Whether
/// the memory is there.
fn populate(base: *mut f32, values: usize) -> bool {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize;
    let start = base as usize / page * page;
    let end = (base as usize + values * std::mem::size_of::<f32>()).div_ceil(page) * page;
    // SAFETY: the pages from `start` to `end` hold this rank's segment and lie within the
    // window's mapping (mappings start and end on pages); populating changes no value.
    let code =
        unsafe { libc::madvise(start as *mut c_void, end - start, libc::MADV_POPULATE_WRITE) };
    if code == 0 {
        return true;
    }
    if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // SAFETY: this rank's own segment, of `values` values, which no other rank uses yet.
        unsafe { std::ptr::write_bytes(base, 0, values) };
        return true;
    }
    false
}

/// Sums the values `start..end` of every rank's segment, in rank order, into this rank's.
fn sum_slice(segments: &SharedSegments, start: usize, end: usize) {
    // A block at a time on the stack: this rank's segment is both read and written, and
    // each borrow of it ends before the next begins.
    const BLOCK: usize = 1024;
    let mut sum = [0f32; BLOCK];
    let mut from = start;
    while from < end {
        let len = BLOCK.min(end - from);
        let sum = &mut sum[..len];
        // The sum starts from rank 0's values and adds the others in rank order, so every
        // process computes the same bits for the same inputs, whichever slice is its.
        for (other, base) in segments.bases.iter().enumerate() {
            // SAFETY: `from..from + len` lies within every segment (each holds `capacity` ≥
            // the part's values); between the two collectives around this step no rank
            // writes this slice of any segment but this rank, in its own, below.
            let theirs = unsafe { std::slice::from_raw_parts(base.add(from), len) };
            if other == 0 {
                sum.copy_from_slice(theirs);
            } else {
                for (s, t) in sum.iter_mut().zip(theirs) {
                    *s += *t;
                }
            }
        }
        // SAFETY: this rank's slice of its own segment, which no other rank reads or
        // writes until the next collective; no other borrow of it is alive.
        let target =
            unsafe { std::slice::from_raw_parts_mut(segments.bases[segments.rank].add(from), len) };
        target.copy_from_slice(sum);
        from += len;
    }
}
