//! Computing a request on the thread that read it. Handing a request to the model's thread and
//! its answer back costs two thread wake-ups, more than a small model's forward pass
//! (`bench/results/serve_load.md`). So where the task's model may be used by any thread
//! ([`crate::task::serve::Served::shared`]: a task that is `Send` and `Sync`), on the CPU, and
//! batches are not told to wait for company (`--max-wait-ms 0`), a request of at most
//! `--max-batch-size` samples is computed where it was read — as long as the model computes
//! quickly (nearly always: see [`QUICK_COMPUTES`]), and while 2 to [`INLINE_MAX_CLIENTS`]
//! clients are connected (two threads that look for each other's messages answer a lone
//! client sooner: see `Shared::alone`; more clients are served better by batches). Every
//! other request goes through the queue and its batches, as all do with `--inline off`.

use super::args::InlineMode;
use super::batcher::infer;
use super::shared::{Current, Reply, Shared, Want};
use crate::task::serve::SharedModel;
use crate::web::AppError;
use candle_core::Tensor;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A model the threads that read requests may compute with.
#[derive(Clone)]
pub struct Inline(pub SharedModel);

impl std::fmt::Debug for Inline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inline")
    }
}

/// A computation within this per sample is quick: about what the hand-off to the model's thread
/// and back costs on this project's machines. A model that takes longer gains more from batches
/// under load than computing where read saves (`bench/results/serve_load.md`: the 64→4096→10
/// network, 0.04 ms a sample, answered 17 % fewer requests at 64 clients computed where read),
/// and it would hold up the other requests its thread reads.
pub const QUICK_COMPUTE: Duration = Duration::from_micros(25);
/// Quick computations (of either path) before requests are computed where they were read;
/// a model that turns slow sends them to the queue within a few computations, one that the
/// scheduler now and then interrupts mid-computation stays (see `super::streak`). When one
/// slow computation sent requests to the queue until eight in a row were quick, a third to
/// two fifths of the digits network's requests went through the queue at 8 and 64 clients.
pub const QUICK_COMPUTES: usize = 8;
/// The most clients connected while requests are computed where read. With more, requests
/// arrive faster than one at a time can be computed, and the queue's batches answer more of
/// them: on 2 cores (wrk, the digits network, interleaved), computed where read answered
/// 10–20 % more requests than the queue at 8 and 16 clients, and 5–20 % fewer at 32 and 64.
pub const INLINE_MAX_CLIENTS: usize = 16;

/// The model to compute a request of `samples` samples with on this thread, checked against
/// `current`; `None` when it goes through the queue.
pub fn model_for<'a>(shared: &Shared, current: &'a Current, samples: usize) -> Option<&'a Inline> {
    current
        .inline
        .as_ref()
        .filter(|_| may_compute_here(shared, samples))
}

/// Whether requests may be computed where they are read with `current` served: its model
/// allows it, and so do the settings (`--inline auto`, `--max-wait-ms 0`); whether one is
/// depends on the load and on how quickly the model computes.
pub fn possible(shared: &Shared, current: &Current) -> bool {
    let settings = &shared.settings;
    current.inline.is_some() && settings.inline == InlineMode::Auto && settings.max_wait_ms == 0
}

/// Whether a request of `samples` samples may be computed where it was read, by a model that
/// allows it (see the module's documentation).
fn may_compute_here(shared: &Shared, samples: usize) -> bool {
    let settings = &shared.settings;
    settings.inline == InlineMode::Auto
        && settings.max_wait_ms == 0
        && samples <= settings.max_batch_size as usize
        && shared.quick_computes.proven()
        && !shared.alone()
        && shared.connections.load(Ordering::Relaxed) <= INLINE_MAX_CLIENTS
}

/// Counts a computation of `samples` samples that took `took` (see [`QUICK_COMPUTES`]).
pub fn timed(shared: &Shared, samples: usize, took: Duration) {
    let quick = took.as_secs_f64() <= QUICK_COMPUTE.as_secs_f64() * samples.max(1) as f64;
    shared.quick_computes.record(quick);
}

/// `samples` through `model` on this thread, answered as `want` asks and counted in the
/// metrics as computed here, in a batch of their own; a failure of task code is a 500 with its id.
pub fn compute(
    shared: &Shared,
    model: &Inline,
    run: &str,
    samples: Vec<Tensor>,
    want: Want,
) -> Result<Vec<Reply>, AppError> {
    let n = samples.len();
    let started = Instant::now();
    let outcome = infer(model.0.as_ref(), samples, want);
    let took = started.elapsed();
    timed(shared, n, took);
    shared.metrics.computed_inline(run, n, took.as_secs_f64());
    outcome.map_err(|message| shared.internal_error(&message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: crate::serve::ServeArgs,
    }

    fn shared(flags: &[&str]) -> Shared {
        let args = Cli::try_parse_from(std::iter::once("serve").chain(flags.iter().copied()))
            .map(|c| c.args);
        let shared = Shared::new(args.unwrap_or_else(|e| panic!("{e}")), "s".into(), false);
        // Two clients connected, one request each: not alone.
        shared.connections.store(2, Ordering::Relaxed);
        shared.in_flight.store(2, Ordering::Relaxed);
        shared
    }

    fn quick(shared: &Shared, times: usize) {
        for _ in 0..times {
            timed(shared, 1, Duration::from_micros(10));
        }
    }

    #[test]
    fn requests_are_computed_where_read_after_enough_quick_computations_in_a_row() {
        let s = shared(&[]);
        quick(&s, QUICK_COMPUTES - 1);
        assert!(!may_compute_here(&s, 1));
        quick(&s, 1);
        assert!(may_compute_here(&s, 1));
        // A batch is quick by its time per sample.
        timed(&s, 32, QUICK_COMPUTE * 16);
        assert!(may_compute_here(&s, 1));
        // A slow computation takes back as many quick ones: with no more held, requests go
        // to the queue until as many were quick again.
        timed(&s, 1, QUICK_COMPUTE * 2);
        assert!(!may_compute_here(&s, 1));
        quick(&s, QUICK_COMPUTES);
        assert!(may_compute_here(&s, 1));
        // One slow computation among many quick ones (a thread interrupted) changes nothing;
        // slow ones more often than one in nine send requests to the queue.
        quick(&s, super::super::streak::HELD * QUICK_COMPUTES);
        for _ in 0..100 {
            quick(&s, 9);
            timed(&s, 1, QUICK_COMPUTE * 2);
            assert!(may_compute_here(&s, 1));
        }
        for round in 0.. {
            quick(&s, 7);
            timed(&s, 1, QUICK_COMPUTE * 2);
            if !may_compute_here(&s, 1) {
                assert!(round < 40, "{round}");
                break;
            }
        }
        // A model that became slow: to the queue within four computations.
        quick(&s, super::super::streak::HELD * QUICK_COMPUTES);
        for _ in 0..4 {
            timed(&s, 1, QUICK_COMPUTE * 2);
        }
        assert!(!may_compute_here(&s, 1));
        quick(&s, QUICK_COMPUTES);
        // More samples than a batch holds go through the queue.
        assert!(may_compute_here(&s, 32));
        assert!(!may_compute_here(&s, 33));
    }

    #[test]
    fn a_lone_client_waiting_and_inline_off_go_through_the_queue() {
        let s = shared(&[]);
        quick(&s, QUICK_COMPUTES);
        s.connections.store(1, Ordering::Relaxed);
        s.in_flight.store(1, Ordering::Relaxed);
        assert!(!may_compute_here(&s, 1), "alone");
        s.connections.store(2, Ordering::Relaxed);
        assert!(may_compute_here(&s, 1), "another client connected");
        s.connections.store(INLINE_MAX_CLIENTS, Ordering::Relaxed);
        assert!(may_compute_here(&s, 1), "{INLINE_MAX_CLIENTS} clients");
        s.connections
            .store(INLINE_MAX_CLIENTS + 1, Ordering::Relaxed);
        assert!(!may_compute_here(&s, 1), "more clients: batches");
        s.connections.store(2, Ordering::Relaxed);
        for flags in [&["--inline", "off"][..], &["--max-wait-ms", "5"]] {
            let s = shared(flags);
            quick(&s, QUICK_COMPUTES);
            assert!(!may_compute_here(&s, 1), "{flags:?}");
        }
    }
}
