//! [`Collective`] over MPI (the `mpi` crate on the system's MPICH or Open MPI): the world
//! the launcher started. Every operation is started non-blocking and waited for by polling,
//! so that a wait is bounded (a timeout, `FLAMMABLE_COLLECTIVE_TIMEOUT` seconds) and rank 0
//! hears, while it waits, that another rank failed (see [`Collective::fail`]).

mod shared;

use super::{peer_failed, through_buffer, Collective};
use crate::error::{Error, Result};
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::request::{Request, Scope, StaticScope};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Count;
use shared::SharedSegments;
pub use shared::SHARED_ENV;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tag of the message a failing rank sends rank 0.
const FAILURE_TAG: i32 = 0x0f1a;
/// The environment variable that sets how long a collective may wait, in seconds.
pub const TIMEOUT_ENV: &str = "FLAMMABLE_COLLECTIVE_TIMEOUT";
/// How long a collective waits by default: long enough for a rank that validates or starts
/// slowly, short enough that a job whose ranks went apart does not hold its nodes for long.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest timeout taken (about 31 years: a deadline that far is still a time).
const LONGEST_TIMEOUT: f64 = 1e9;
/// How long a failing rank leaves rank 0 to record its failure before it ends the world.
const GRACE: Duration = Duration::from_secs(5);
/// How many times a wait polls before it yields the core, and how long it yields before it
/// sleeps between polls.
const SPINS: u32 = 2_000;
const YIELDING: Duration = Duration::from_millis(5);
/// The most values one all-reduce carries (64 MiB of f32): a larger buffer goes in buckets
/// of this size, one call each, which keeps MPI's counts (C ints) and the copy of the values
/// sent bounded.
const BUCKET: usize = 1 << 24;
/// The longest failure message sent (it must travel in one small, eager message).
const MESSAGE_LIMIT: usize = 4096;

/// The MPI world of this process (`MPI_COMM_WORLD`).
pub struct MpiWorld {
    /// Finalises MPI when dropped: taken out by [`Collective::finalize`].
    universe: Mutex<Option<Universe>>,
    /// The ranks' shared memory, when they are all on this machine (see [`shared`]).
    shared: Mutex<Option<SharedSegments>>,
    rank: usize,
    size: usize,
    timeout: Duration,
}

impl MpiWorld {
    /// Initialises MPI (calls are made from the thread that calls this one only) and joins
    /// the world the launcher started.
    pub fn join() -> Result<Self> {
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled)
            .ok_or_else(|| Error::msg("MPI is already initialised in this process"))?;
        let world = universe.world();
        let timeout = timeout_from_env();
        let shared_on = shared::wanted_from_env();
        // Every process tells the others whether it takes its environment, before any other
        // collective: a process that refused its own alone would leave the others waiting in
        // the next one (MPI's own, not bounded by the timeout), and itself in MPI's end.
        let mine = i32::from(timeout.is_ok() && shared_on.is_ok());
        let mut all = 0i32;
        world.all_reduce_into(&mine, &mut all, SystemOperation::min());
        let (timeout, shared_on) = match (timeout, shared_on) {
            (Err(e), _) | (_, Err(e)) => return Err(e),
            (Ok(_), Ok(_)) if all != 1 => {
                return Err(Error::usage(format!(
                    "rank {}: another process of this training refused its environment (its own error names the variable): {TIMEOUT_ENV} and {SHARED_ENV} must be valid on every process",
                    world.rank()
                )))
            }
            (Ok(t), Ok(on)) => (t, on),
        };
        let shared = SharedSegments::of_world(&world, shared_on)?;
        Ok(MpiWorld {
            shared: Mutex::new(shared),
            rank: world.rank().max(0) as usize,
            size: world.size().max(1) as usize,
            universe: Mutex::new(Some(universe)),
            timeout,
        })
    }

    fn comm(&self) -> SimpleCommunicator {
        SimpleCommunicator::world()
    }

    /// Waits for `request`, polling: on rank 0, for a failure message of another rank too
    /// (recorded, then the world ends); on any rank, until the timeout (then the world ends).
    fn wait<'a, D: ?Sized, S: Scope<'a>>(&self, mut request: Request<'a, D, S>, what: &str) {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let mut polls: u32 = 0;
        loop {
            match request.test() {
                Ok(_) => return,
                Err(pending) => request = pending,
            }
            if self.rank == 0 {
                self.hear_failures();
            }
            if Instant::now() >= deadline {
                let message = format!(
                    "rank {}: {what} waited {} s for the other ranks (one stopped answering or is still busy, or the ranks ran different numbers of steps; {TIMEOUT_ENV} sets the limit)",
                    self.rank,
                    self.timeout.as_secs_f64()
                );
                if self.rank == 0 {
                    // The hook that records the failure prints it; without one, this does.
                    if !peer_failed(&message) {
                        crate::util::stderr::errln!("error: {message}");
                    }
                    end_world(1);
                }
                self.fail(&message, 1);
            }
            // Spin briefly (an all-reduce of a step usually completes within microseconds),
            // then give the core away: with more processes than cores, a spinning rank would
            // slow down the very rank it waits for.
            polls = polls.saturating_add(1);
            if polls < SPINS {
                std::hint::spin_loop();
            } else if started.elapsed() < YIELDING {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    /// The ranks' shared memory, locked, if they have it.
    fn shared(&self) -> Option<std::sync::MutexGuard<'_, Option<SharedSegments>>> {
        let guard = self.shared.lock().ok()?;
        guard.is_some().then_some(guard)
    }

    /// Replaces `values` by their sum over the ranks, in buckets of at most [`BUCKET`].
    fn sum_in_buckets<T: Equivalence + Copy>(&self, values: &mut [T], what: &str) {
        let comm = self.comm();
        for bucket in values.chunks_mut(BUCKET) {
            let send = bucket.to_vec();
            mpi::request::scope(|scope| {
                let request = comm.immediate_all_reduce_into(
                    scope,
                    &send[..],
                    bucket,
                    SystemOperation::sum(),
                );
                self.wait(request, what);
            });
        }
    }

    /// On rank 0: if another rank said it failed, records why and ends the world.
    fn hear_failures(&self) {
        let comm = self.comm();
        if let Some(status) = comm.any_process().immediate_probe_with_tag(FAILURE_TAG) {
            let (bytes, _) = comm
                .process_at_rank(status.source_rank())
                .receive_vec_with_tag::<u8>(FAILURE_TAG);
            // The failing rank's exit code first, then its message (see `fail`).
            let (code, text) = match bytes.split_first() {
                Some((code, text)) if *code > 0 => (i32::from(*code), text),
                _ => (1, &bytes[..]),
            };
            let message = String::from_utf8_lossy(text).into_owned();
            // The hook that records the failure prints it; without one (no run yet), this does.
            if !peer_failed(&message) {
                crate::util::stderr::errln!("error: {message}");
            }
            end_world(code);
        }
    }
}

/// How long a collective may wait: [`TIMEOUT_ENV`]'s seconds, else [`DEFAULT_TIMEOUT`]; a
/// value that is not a number of seconds in range is a usage error.
fn timeout_from_env() -> Result<Duration> {
    match std::env::var(TIMEOUT_ENV) {
        Ok(text) => match text.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && s > 0.0 && s <= LONGEST_TIMEOUT => {
                Ok(Duration::from_secs_f64(s))
            }
            _ => Err(Error::usage(format!(
                "{TIMEOUT_ENV}={text}: not a number of seconds above 0 and at most {LONGEST_TIMEOUT:e}"
            ))),
        },
        Err(_) => Ok(DEFAULT_TIMEOUT),
    }
}

/// Ends every process of the world, after a moment for the launcher to pass on what this
/// process printed (MPICH's drops a process's last lines when the world ends at once).
fn end_world(code: i32) -> ! {
    std::thread::sleep(Duration::from_millis(300));
    SimpleCommunicator::world().abort(code)
}

impl Collective for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn backend(&self) -> &'static str {
        match self.shared.lock().map(|s| s.is_some()) {
            Ok(true) => "mpi, shared memory",
            _ => "mpi",
        }
    }

    fn all_reduce_sum(&self, values: &mut [f64]) -> Result<()> {
        self.sum_in_buckets(values, "a sum over the ranks");
        Ok(())
    }

    fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<()> {
        let what = "the gradients' all-reduce";
        if self.shared().is_none() {
            self.sum_in_buckets(values, what);
            return Ok(());
        }
        let mut sums = Vec::with_capacity(values.len());
        self.all_reduce_sum_f32_filled(
            values.len(),
            &mut |offset, part| {
                part.copy_from_slice(&values[offset..offset + part.len()]);
                Ok(())
            },
            &mut |_, part| {
                sums.extend_from_slice(part);
                Ok(())
            },
        )?;
        values.copy_from_slice(&sums);
        Ok(())
    }

    fn all_reduce_sum_f32_filled(
        &self,
        len: usize,
        fill: &mut dyn FnMut(usize, &mut [f32]) -> Result<()>,
        read: &mut dyn FnMut(usize, &[f32]) -> Result<()>,
    ) -> Result<()> {
        let what = "the gradients' all-reduce";
        if let Some(segments) = self.shared().as_ref().and_then(|s| s.as_ref()) {
            return self.sum_through_memory(segments, len, fill, read, what);
        }
        through_buffer(len, fill, read, |buffer| {
            self.sum_in_buckets(buffer, what);
            Ok(())
        })
    }

    fn broadcast(&self, bytes: &mut Vec<u8>) -> Result<()> {
        let comm = self.comm();
        let root = comm.process_at_rank(0);
        let mut len = bytes.len() as u64;
        mpi::request::scope(|scope| {
            let request = root.immediate_broadcast_into(scope, &mut len);
            self.wait(request, "a broadcast from rank 0");
        });
        let len = usize::try_from(len).map_err(|_| Error::msg("a broadcast too large"))?;
        bytes.resize(len, 0);
        for chunk in bytes.chunks_mut(i32::MAX as usize) {
            mpi::request::scope(|scope| {
                let request = root.immediate_broadcast_into(scope, chunk);
                self.wait(request, "a broadcast from rank 0");
            });
        }
        Ok(())
    }

    fn all_gather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        let comm = self.comm();
        let too_large = || Error::msg("an all-gather of more than 2 GB");
        let count = Count::try_from(mine.len()).map_err(|_| too_large())?;
        let mut counts: Vec<Count> = vec![0; self.size];
        mpi::request::scope(|scope| {
            let request = comm.immediate_all_gather_into(scope, &count, &mut counts[..]);
            self.wait(request, "an all-gather");
        });
        let mut displs = Vec::with_capacity(self.size);
        let mut total: Count = 0;
        for c in &counts {
            displs.push(total);
            total = total.checked_add(*c).ok_or_else(too_large)?;
        }
        let mut all = vec![0u8; total as usize];
        {
            let mut partition = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            mpi::request::scope(|scope| {
                let request = comm.immediate_all_gather_varcount_into(scope, mine, &mut partition);
                self.wait(request, "an all-gather");
            });
        }
        Ok(counts
            .iter()
            .zip(&displs)
            .map(|(c, d)| all[*d as usize..(*d + *c) as usize].to_vec())
            .collect())
    }

    fn fail(&self, message: &str, code: i32) -> ! {
        let comm = self.comm();
        if self.rank != 0 {
            let mut end = message.len().min(MESSAGE_LIMIT);
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            // Its exit code (a usage error's 2 stays 2 for the whole job), then the message.
            // The buffer must outlive the send, which may still be pending when the world
            // ends: it is leaked (the process is ending).
            let mut bytes = vec![u8::try_from(code).ok().filter(|c| *c > 0).unwrap_or(1)];
            bytes.extend_from_slice(&message.as_bytes()[..end]);
            let buffer: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            let mut request =
                comm.process_at_rank(0)
                    .immediate_send_with_tag(StaticScope, buffer, FAILURE_TAG);
            let deadline = Instant::now() + GRACE;
            // Rank 0 records the failure and ends the world, which ends this process; if it
            // has not within the grace period (it is busy outside any collective, or gone),
            // this process ends the world itself.
            while Instant::now() < deadline {
                match request.test() {
                    Ok(_) => break,
                    Err(pending) => request = pending,
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            // Rank 0 said it, unless it could not: then this rank does, once.
            crate::util::stderr::errln!("error: {message}");
        }
        end_world(code)
    }

    fn abort(&self, code: i32) -> ! {
        end_world(code)
    }

    fn finalize(&self) {
        if let Some(segments) = self.shared.lock().ok().and_then(|mut s| s.take()) {
            segments.free();
        }
        if let Ok(mut universe) = self.universe.lock() {
            // Dropping the universe calls MPI_Finalize.
            drop(universe.take());
        }
    }
}
