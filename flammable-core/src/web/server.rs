//! Serving a router on a listener, as both servers do: each connection under hyper's HTTP/1
//! with a deadline for a request's head, and a shutdown that stops accepting, lets the
//! requests in flight finish, and drops whatever connection is still open at a deadline — so
//! that no client, however slow or stalled, keeps a server from exiting.

use crate::util::counted::Counted;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// How long clients may take, how many may be connected, and how long a shutdown waits for
/// them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    /// The time a client has to send a request's head (request line and headers), counted
    /// from when the server starts waiting for it: a connection idle for longer between two
    /// requests is closed too.
    pub header_read: Duration,
    /// After the stop signal: how long requests in flight have to finish before their
    /// connections are dropped.
    pub shutdown: Duration,
    /// The most connections open at once: one more is closed as soon as it is accepted.
    pub max_connections: usize,
}

/// How a server stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stopped {
    /// Connections still open at the shutdown deadline, dropped.
    pub dropped: usize,
}

/// Serves `router` on `listener` until `stop` completes, then shuts down within
/// `deadlines.shutdown` (see the module's documentation), counting the connections open in
/// `open`. Errors accepting a connection (a client that hung up at once, no file descriptors
/// left) are passed over.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    deadlines: Deadlines,
    open: Arc<AtomicUsize>,
    stop: impl Future<Output = ()>,
) -> Stopped {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(deadlines.header_read)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        // Out of descriptors, say: let connections finish before trying again.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                // Forget the connections that have ended.
                while connections.try_join_next().is_some() {}
                if connections.len() >= deadlines.max_connections {
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(router.clone());
                let connection = http.serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                let counted = Counted::new(open.clone());
                connections.spawn(async move {
                    let _ = connection.await;
                    drop(counted);
                });
            }
            () = &mut stop => break,
        }
    }
    drop(listener);
    let finished = tokio::time::timeout(deadlines.shutdown, graceful.shutdown()).await;
    while connections.try_join_next().is_some() {}
    let dropped = if finished.is_ok() {
        0
    } else {
        connections.len()
    };
    // Dropping the set aborts every connection still open.
    connections.abort_all();
    Stopped { dropped }
}
