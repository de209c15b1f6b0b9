//! `serve`: the first model loaded on its thread, the HTTP side started on its own (tokio),
//! and this thread supervising — reloads, the log, memory given back — until Ctrl-C or
//! SIGTERM; SIGHUP reloads.

use super::args::ServeArgs;
use super::batcher::Queue;
use super::http::{self, Http};
use super::load::Loading;
use super::reload::{self, FirstModel, Supervisor};
use super::shared::{Reload, Shared, Target};
use crate::error::{Error, Result};
use crate::store::record::Record;
use crate::store::Store;
use crate::task::serve::{Decode, Loader};
use crate::train::scalars::Results;
use crate::web::listen;
use crate::web::security::{self, Access};
use crate::web::server::{self as web_server, Deadlines};
use crate::web::shutdown;
use axum::http::StatusCode;
use candle_core::Device;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What `serve` needs of the command line and the task.
pub struct Serving<'a> {
    /// The run store.
    pub store: &'a Store,
    /// The train run to serve first.
    pub parent: Record,
    /// The task's model loader.
    pub loader: Loader,
    /// The task's request reader.
    pub decode: Decode,
    /// Whether the task takes NaN and infinite inputs (`Task::NON_FINITE_INPUTS`).
    pub non_finite_inputs: bool,
    /// Where to compute.
    pub device: Device,
    /// The command's arguments.
    pub args: ServeArgs,
    /// The socket, bound to `--host` and `--port` before the serve run was made (see
    /// [`crate::web::listen::bind_now`]).
    pub listener: std::net::TcpListener,
    /// The serve run's id.
    pub serve_run: String,
    /// Prints (unless quiet) and logs a line.
    pub say: &'a dyn Fn(&str),
}

/// How often free memory is given back to the system while requests come.
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Serves until Ctrl-C or SIGTERM; returns the totals to record with the serve run.
pub fn serve(s: Serving<'_>) -> Result<Results> {
    let args = s.args.clone();
    args.check()?;
    let token = listen::token_for(args.token.clone(), args.host)?;
    crate::util::allocator::tune_for_serving();
    let shared = Arc::new(Shared::new(
        args.clone(),
        s.serve_run.clone(),
        s.non_finite_inputs,
    ));
    let loading = Loading {
        store: s.store,
        loader: s.loader,
        device: s.device.clone(),
        experiment: s.parent.experiment.clone(),
        any_shape: args.any_shape,
        generations: AtomicU64::new(0),
    };
    let (jobs, queue) = mpsc::sync_channel(args.max_queue as usize);
    let queue: Queue = Arc::new(Mutex::new(queue));
    let (reloads, orders) = mpsc::channel();
    let say = s.say;
    std::thread::scope(|scope| {
        let warm_up = (args.max_batch_size as usize).min(256);
        let first = reload::first_model(
            scope,
            &loading,
            &shared,
            &queue,
            (s.parent.id.clone(), args.checkpoint.clone()),
            warm_up,
        );
        match first.recv() {
            Ok(FirstModel::Loaded(Ok(()))) => {}
            Ok(FirstModel::Loaded(Err(e))) => {
                return Err(if e.status.is_client_error() {
                    Error::usage(e.message)
                } else {
                    Error::msg(e.message)
                })
            }
            _ => return Err(Error::msg("the model's thread stopped before it loaded")),
        }
        let http = Arc::new(Http {
            shared: shared.clone(),
            jobs,
            reloads,
            decode: s.decode,
            budget: super::budget::Budget::new(args.max_inflight_bytes),
        });
        let (bound_tx, bound_rx) = mpsc::channel();
        let (halt, halted) = tokio::sync::oneshot::channel();
        let listener = s.listener;
        let server = scope.spawn({
            let token = token.clone();
            move || http_thread(http, token, listener, bound_tx, halted)
        });
        let bound = match bound_rx.recv() {
            Ok(Ok(bound)) => bound,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(Error::msg("the HTTP server stopped before it listened")),
        };
        let url = listen::url(bound, token.as_deref());
        listen::announce(&url);
        let model = shared.model();
        let info = &model.info;
        say(&format!(
            "serving run {} (checkpoint {}) at {}predict: batches of up to {}, {} ms wait, queue of {}{}; Ctrl-C stops",
            info.run,
            info.checkpoint,
            url.split('?').next().unwrap_or(&url),
            args.max_batch_size,
            args.max_wait_ms,
            args.max_queue,
            if super::inline::possible(&shared, &model) {
                " (a quick model computes each request on the thread that read it)"
            } else {
                ""
            }
        ));
        match first.recv() {
            Ok(FirstModel::WarmedUp(Ok(line))) => say(&line),
            outcome => {
                shared.stopping.store(true, Ordering::Relaxed);
                let _ = halt.send(());
                let why = match outcome {
                    Ok(FirstModel::WarmedUp(Err(e))) => e,
                    _ => "its thread stopped".into(),
                };
                return Err(Error::msg(format!(
                    "the model fails on a sample of its own data, so it is not served: {why}"
                )));
            }
        }
        shared.ready.store(true, Ordering::Relaxed);
        let mut supervisor = Supervisor::new(
            scope,
            &loading,
            shared.clone(),
            queue.clone(),
            orders,
            args.checkpoint.clone(),
        );
        let (mut trimmed, mut requests) = (Instant::now(), 0);
        while !server.is_finished() {
            for line in supervisor.tick().iter().chain(&shared.take_log()) {
                say(line);
            }
            // Bodies and their samples come and go in bursts: give what they freed back.
            let now = shared.metrics.totals().by_status.values().sum::<u64>();
            if now != requests && trimmed.elapsed() >= TRIM_EVERY {
                crate::util::allocator::release_free_memory();
                (trimmed, requests) = (Instant::now(), now);
            }
        }
        drop(supervisor);
        let outcome = server
            .join()
            .unwrap_or_else(|_| Err(Error::msg("the HTTP server thread panicked")));
        for line in shared.take_log() {
            say(&line);
        }
        outcome
    })?;
    for line in shared.take_log() {
        say(&line);
    }
    Ok(shared.metrics.totals().results())
}

/// The HTTP side: takes the socket, says where it listens (or why it cannot) through
/// `bound`, serves until a stop signal (or `halt`), lets the requests in flight finish within
/// `--shutdown-timeout-ms`, and drops the connections left.
fn http_thread(
    http: Arc<Http>,
    token: Option<String>,
    listener: std::net::TcpListener,
    bound: mpsc::Sender<Result<SocketAddr>>,
    halt: tokio::sync::oneshot::Receiver<()>,
) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.clamp(1, 4))
        // Requests are read (decoded) on at most one thread per core.
        .max_blocking_threads(cores)
        .enable_all()
        .build()
        .map_err(|e| Error::msg(format!("cannot start the HTTP server's runtime: {e}")))?;
    let settings = http.shared.settings.clone();
    let deadlines = Deadlines {
        header_read: Duration::from_millis(settings.read_timeout_ms),
        shutdown: Duration::from_millis(settings.shutdown_timeout_ms),
        max_connections: settings.max_connections as usize,
    };
    runtime.block_on(async move {
        let listener = match listen::into_tokio(listener) {
            Ok(l) => l,
            Err(e) => {
                let _ = bound.send(Err(e));
                return;
            }
        };
        let address = match listener.local_addr() {
            Ok(a) => {
                let _ = bound.send(Ok(a));
                a
            }
            Err(e) => {
                let _ = bound.send(Err(Error::msg(format!(
                    "cannot read the address listened on: {e}"
                ))));
                return;
            }
        };
        let access = Access {
            token,
            loopback: address.ip().is_loopback(),
            open_paths: http::OPEN_PATHS,
            cookie: security::cookie_name("serve", address.port()),
        };
        let shared = http.shared.clone();
        tokio::spawn(reload_on_hangup(shared.clone(), http.reloads.clone()));
        let stop = {
            let shared = shared.clone();
            async move {
                tokio::select! {
                    _ = shutdown::stop_signal() => {
                        shared.log(format!(
                            "stopping: answering the requests in flight (at most {} ms; Ctrl-C again exits at once)",
                            settings.shutdown_timeout_ms
                        ));
                        tokio::spawn(shutdown::exit_on_second_signal());
                    }
                    _ = halt => {}
                }
                shared.stopping.store(true, Ordering::Relaxed);
            }
        };
        let router = http::router(http, access);
        let stopped = web_server::serve(listener, router, deadlines, shared.connections.clone(), stop).await;
        if stopped.dropped > 0 {
            shared.log(format!(
                "stopped: {} connection(s) still open after {} ms dropped (--shutdown-timeout-ms)",
                stopped.dropped, settings.shutdown_timeout_ms
            ));
        }
    });
    // Readers still decoding on the blocking pool are not waited for.
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}

/// SIGHUP: reload the served run's `--checkpoint` (a newer `latest`, say); coalesced with
/// the reloads of the same target waiting.
async fn reload_on_hangup(shared: Arc<Shared>, reloads: mpsc::Sender<Reload>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangup.recv().await.is_some() {
            let target = Target {
                run: None,
                checkpoint: None,
            };
            match http::order_reload(&shared, &reloads, target, false) {
                None => return,
                Some(Err(e)) if e.status == StatusCode::SERVICE_UNAVAILABLE => {
                    shared.log(format!("SIGHUP: reload not queued: {}", e.message));
                }
                Some(_) => {}
            }
        }
    }
    #[cfg(not(unix))]
    drop((shared, reloads));
}
