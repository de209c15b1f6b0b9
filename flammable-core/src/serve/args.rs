//! `serve`'s arguments: which run, where to listen, how to batch, and the limits that keep
//! the server up whatever its clients send.

use crate::error::{Error, Result};
use crate::web::listen::parse_host;
use clap::Args;
use serde::Serialize;
use std::net::IpAddr;

/// The largest `--max-body-bytes` (1 GiB).
pub const MAX_BODY_BYTES: u64 = 1 << 30;

/// `--inline`: whether a request may be computed on the thread that read it.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InlineMode {
    /// Where the model and the load allow (see `ServeArgs::inline`).
    Auto,
    /// Never: every request goes through the queue.
    Off,
}

/// `serve [RUN]`: the run to serve, the address, the batching and the limits.
#[derive(Args, Debug, Clone, Serialize)]
pub struct ServeArgs {
    /// The train run to serve: an id, a unique prefix, latest or latest~N (default: the
    /// latest finished train run of the experiment).
    pub run: Option<String>,
    /// Which of its checkpoints: best (kept with --best-metric), latest or step-N; default:
    /// best where the run kept one, else latest. A reload that names no checkpoint loads the
    /// same choice of the run it loads (a newer `latest`, say).
    #[arg(long, value_parser = crate::checkpoint::parse_checkpoint_name)]
    pub checkpoint: Option<String>,
    /// The address to listen on; an address other than loopback needs a token.
    #[arg(long, default_value = "127.0.0.1", value_parser = parse_host)]
    pub host: IpAddr,
    /// The port (0: any free one; the address is printed).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// The most requests computed in one forward pass (1: no batching).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_batch_size: u32,
    /// How long a batch may wait for more requests, counted from its first request's
    /// arrival (0: compute whatever is queued as soon as the model is free).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub max_wait_ms: u64,
    /// The most requests waiting for the model; beyond, requests get 503 at once.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_queue: u32,
    /// Where requests are computed: `auto` computes a request on the thread that read it
    /// when the model allows (a task that is `Send` and `Sync`, on the CPU, --max-wait-ms 0,
    /// a model that computes a sample within 25 µs) and 2 to 16 clients are connected; `off`
    /// sends every request through the queue and its batches (and --max-queue's 503s).
    #[arg(long, value_enum, default_value_t = InlineMode::Auto)]
    pub inline: InlineMode,
    /// How long a request may take in all, its body's arrival included, before it gets 504.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub timeout_ms: u64,
    /// The largest request body, in bytes (at most 1 GiB); larger ones get 413.
    #[arg(long, default_value_t = 4 << 20, value_parser = clap::value_parser!(u64).range(1..=MAX_BODY_BYTES))]
    pub max_body_bytes: u64,
    /// The most request bytes the server holds at once (bodies arriving, being read or
    /// waiting for the model); a request that would pass it gets 503. At least
    /// --max-body-bytes, at most 16 GiB.
    #[arg(long, default_value_t = 64 << 20, value_parser = clap::value_parser!(u64).range(1..=16 * MAX_BODY_BYTES))]
    pub max_inflight_bytes: u64,
    /// How long a client may take to send a request's head, and may leave its body without
    /// a new byte; beyond, its connection is closed (head) or it gets 408 (body).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub read_timeout_ms: u64,
    /// The most client connections open at once; beyond, new ones are closed at once.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_connections: u32,
    /// After Ctrl-C or SIGTERM: how long requests in flight have to finish before their
    /// connections are dropped (a second Ctrl-C exits at once).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub shutdown_timeout_ms: u64,
    /// Accept samples of any shape (for tasks whose inputs vary in size); by default a
    /// request must have the shape of the task's data samples, else 422.
    #[arg(long)]
    pub any_shape: bool,
    /// The token clients must give (default: $FLAMMABLE_SERVE_TOKEN; generated and printed
    /// when listening beyond this machine).
    #[arg(long, env = "FLAMMABLE_SERVE_TOKEN", hide_env_values = true)]
    #[serde(skip)]
    pub token: Option<String>,
}

impl ServeArgs {
    /// Refuses settings that cannot work together (one line, exit code 2).
    pub fn check(&self) -> Result<()> {
        if self.max_inflight_bytes < self.max_body_bytes {
            return Err(Error::usage(format!(
                "--max-inflight-bytes ({}) is smaller than --max-body-bytes ({}): no body of the largest size could ever be taken",
                self.max_inflight_bytes, self.max_body_bytes
            )));
        }
        if self.max_wait_ms >= self.timeout_ms {
            return Err(Error::usage(format!(
                "--max-wait-ms ({}) is not below --timeout-ms ({}): a request alone would wait for company until it timed out",
                self.max_wait_ms, self.timeout_ms
            )));
        }
        Ok(())
    }
}
