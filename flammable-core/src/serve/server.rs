//! `serve`: the model loaded, the HTTP side started on its own thread (tokio), the worker run
//! on this one until Ctrl-C or SIGTERM; SIGHUP reloads.

use super::args::ServeArgs;
use super::batcher::{Model, Worker};
use super::http::{self, Http};
use super::shared::{Control, Current, Failure, ModelInfo, Shared};
use crate::error::{Error, Result};
use crate::store::record::{Record, RunKind};
use crate::store::{Store, CHECKPOINTS_DIR, HYPERPARAMETERS_FILE};
use crate::task::serve::{Decode, Loader, Served};
use crate::train::scalars::Results;
use crate::web::listen;
use crate::web::security::Access;
use candle_core::Device;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;

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
    /// Where to compute.
    pub device: Device,
    /// The command's arguments.
    pub args: ServeArgs,
    /// The serve run's id.
    pub serve_run: String,
    /// Prints (unless quiet) and logs a line.
    pub say: &'a dyn Fn(&str),
}

/// Serves until Ctrl-C or SIGTERM; returns the totals to record with the serve run.
pub fn serve(s: Serving<'_>) -> Result<Results> {
    let args = s.args.clone();
    let token = listen::token_for(args.token.clone(), args.host)?;
    let experiment = s.parent.experiment.clone();
    let shared = Arc::new(Shared::new(args.clone(), s.serve_run.clone()));
    let load =
        |run: Option<&str>, checkpoint: Option<&str>| -> std::result::Result<Model, Failure> {
            let current = shared.model();
            let run = run.unwrap_or(&current.info.run);
            let checkpoint = checkpoint.unwrap_or(&current.info.checkpoint);
            load_model(&s, &experiment, run, checkpoint)
        };
    let first = load_model(&s, &experiment, &s.parent.id, &args.checkpoint)
        .map_err(|f| Error::msg(f.message))?;
    let (jobs, queue) = mpsc::sync_channel(args.max_queue as usize);
    let (control, orders) = mpsc::channel();
    let http = Arc::new(Http {
        shared: shared.clone(),
        jobs,
        control,
        decode: s.decode,
    });
    let access = Access {
        token: token.clone(),
        loopback: args.host.is_loopback(),
        open_paths: http::OPEN_PATHS,
    };
    let (bound_tx, bound_rx) = mpsc::channel();
    let address = SocketAddr::new(args.host, args.port);
    let server = std::thread::Builder::new()
        .name("flammable-http".into())
        .spawn(move || http_thread(http, access, address, bound_tx))
        .map_err(|e| Error::msg(format!("cannot start the HTTP thread: {e}")))?;
    let mut worker = Worker::new(shared.clone(), queue, orders, first, &load, s.say);
    let bound = match bound_rx.recv() {
        Ok(Ok(bound)) => bound,
        Ok(Err(e)) => {
            let _ = server.join();
            return Err(e);
        }
        Err(_) => {
            return Err(match server.join() {
                Ok(Err(e)) => e,
                _ => Error::msg("the HTTP server stopped before it listened"),
            })
        }
    };
    let url = listen::url(bound, token.as_deref());
    println!("{url}");
    let _ = std::io::stdout().flush();
    let info = &shared.model().info;
    (s.say)(&format!(
        "serving run {} (checkpoint {}) at {}predict: batches of up to {}, {} ms wait, queue of {}; Ctrl-C stops",
        info.run,
        info.checkpoint,
        url.split('?').next().unwrap_or(&url),
        args.max_batch_size,
        args.max_wait_ms,
        args.max_queue
    ));
    match worker.warm_up() {
        Ok(line) => (s.say)(&line),
        Err(e) => {
            shared
                .stopping
                .store(true, std::sync::atomic::Ordering::Relaxed);
            return Err(Error::msg(format!(
                "the model fails on a sample of its own data, so it is not served: {e}"
            )));
        }
    }
    shared
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);
    worker.run();
    match server.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(Error::msg("the HTTP server thread panicked")),
    }
    let totals = shared.metrics().totals();
    Ok(totals.results())
}

/// The HTTP side: binds, says where (or why not) through `bound`, serves until a stop
/// signal, then lets the requests in flight finish.
fn http_thread(
    http: Arc<Http>,
    access: Access,
    address: SocketAddr,
    bound: mpsc::Sender<Result<SocketAddr>>,
) -> Result<()> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| Error::msg(format!("cannot start the HTTP server's runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = match listen::bind(address).await {
            Ok(l) => l,
            Err(e) => {
                let _ = bound.send(Err(e));
                return Ok(());
            }
        };
        let _ = bound.send(
            listener
                .local_addr()
                .map_err(|e| Error::msg(format!("cannot read the address listened on: {e}"))),
        );
        let shared = http.shared.clone();
        let control = http.control.clone();
        tokio::spawn(reload_on_hangup(control));
        let result = axum::serve(listener, http::router(http, access))
            .with_graceful_shutdown(async move {
                stop_signal().await;
                shared
                    .stopping
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            })
            .await
            .map_err(|e| Error::msg(format!("the HTTP server stopped: {e}")));
        result
    })
}

/// Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// SIGHUP: reload the served run's checkpoint (a newer `latest`, say).
async fn reload_on_hangup(control: mpsc::Sender<Control>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangup.recv().await.is_some() {
            let order = Control::Reload {
                run: None,
                checkpoint: None,
                reply: None,
            };
            if control.send(order).is_err() {
                return;
            }
        }
    }
    #[cfg(not(unix))]
    drop(control);
}

/// Train run `run` (as `RUN` is written) of `experiment`, its checkpoint `checkpoint`
/// loaded: only runs of the store and their checkpoints, never another file.
fn load_model(
    s: &Serving<'_>,
    experiment: &str,
    run: &str,
    checkpoint: &str,
) -> std::result::Result<Model, Failure> {
    let checkpoint = crate::checkpoint::parse_checkpoint_name(checkpoint)
        .map_err(|e| Failure::new(400, format!("checkpoint `{checkpoint}`: {e}")))?;
    let record = s
        .store
        .resolve(run, |r| r.kind == RunKind::Train)
        .map_err(|e| Failure::new(404, e.to_string()))?;
    if record.experiment != experiment {
        return Err(Failure::new(
            400,
            format!(
                "run {} is of experiment `{}`, not `{experiment}`",
                record.id, record.experiment
            ),
        ));
    }
    let dir = s.store.run_dir(&record.id).join(CHECKPOINTS_DIR);
    if !dir.join(format!("{checkpoint}.safetensors")).exists() {
        let available = crate::checkpoint::checkpoint_names(&dir);
        return Err(Failure::new(
            404,
            format!(
                "run {} has no checkpoint `{checkpoint}`; it has: {}",
                record.id,
                if available.is_empty() {
                    "none".to_string()
                } else {
                    available.join(", ")
                }
            ),
        ));
    }
    let served = (s.loader)(s.store, &record, &checkpoint, s.device.clone()).map_err(|e| {
        Failure::new(
            500,
            format!(
                "cannot load run {} (checkpoint {checkpoint}): {e}",
                record.id
            ),
        )
    })?;
    let current = Arc::new(describe(s.store, served.as_ref(), s.args.any_shape));
    Ok(Model { served, current })
}

/// What `/info` says of `model`, and the dtype requests are converted to.
fn describe(store: &Store, model: &dyn Served, any_shape: bool) -> Current {
    let record = model.record();
    let sample = model.sample();
    let info = ModelInfo {
        run: record.id.clone(),
        experiment: record.experiment.clone(),
        checkpoint: model.checkpoint().to_string(),
        commit: record.snapshot.as_ref().map(|s| s.commit.clone()),
        hyperparameters: crate::hyper::read_flat(
            &store.run_dir(&record.id).join(HYPERPARAMETERS_FILE),
        ),
        sample_shape: sample.filter(|_| !any_shape).map(|t| t.dims().to_vec()),
        sample_dtype: sample.map(|t| t.dtype().as_str().to_string()),
        loaded: crate::store::now_rfc3339(),
    };
    Current {
        info,
        dtype: sample.map(|t| t.dtype()),
    }
}
