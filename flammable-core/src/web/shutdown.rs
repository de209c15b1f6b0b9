//! The servers' stop signals: Ctrl-C or SIGTERM starts a shutdown; a second one ends the
//! process at once (a shutdown that waits on something the user does not want to wait for).

/// Waits for Ctrl-C (SIGINT) or SIGTERM; returns the signal's number (2 or 15).
pub async fn stop_signal() -> i32 {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return 2;
        };
        tokio::select! {
            _ = interrupt.recv() => 2,
            _ = terminate.recv() => 15,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        2
    }
}

/// After a first stop signal: the next one ends the process at once, with 128 + its number
/// (130 for Ctrl-C). Spawn it on the server's runtime.
pub async fn exit_on_second_signal() {
    let signal = stop_signal().await;
    std::process::exit(128 + signal);
}
