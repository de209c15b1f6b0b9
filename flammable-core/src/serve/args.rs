//! `serve`'s arguments: which run, where to listen, and how to batch.

use crate::web::listen::parse_host;
use clap::Args;
use serde::Serialize;
use std::net::IpAddr;

/// `serve [RUN]`: the run to serve, the address, the batching and the limits.
#[derive(Args, Debug, Clone, Serialize)]
pub struct ServeArgs {
    /// The train run to serve: an id, a unique prefix, latest or latest~N (default: the
    /// latest finished train run of the experiment).
    pub run: Option<String>,
    /// Which of its checkpoints: latest, best (kept with --best-metric) or step-N.
    #[arg(long, default_value = "latest", value_parser = crate::checkpoint::parse_checkpoint_name)]
    pub checkpoint: String,
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
    #[arg(long, default_value_t = 0)]
    pub max_wait_ms: u64,
    /// The most requests waiting for the model; beyond, requests get 503 at once.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_queue: u32,
    /// How long a request may take in all before it gets 504.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
    /// The largest request body, in bytes; larger ones get 413.
    #[arg(long, default_value_t = 4 << 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_body_bytes: u64,
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
