//! The process a task runs in: the CPU thread count, the host's name, stop signals.

use super::*;

/// The CPU thread count the environment asks for: `CANDLE_NUM_THREADS`, else
/// `RAYON_NUM_THREADS`, else 1 (measured fastest for small models on CPU); 0: one per core.
pub(super) fn threads_in_force() -> usize {
    ["CANDLE_NUM_THREADS", "RAYON_NUM_THREADS"]
        .iter()
        .find_map(|k| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok()))
        .unwrap_or(1)
}

/// Applies the thread policy before candle starts its pool: `threads` (the `--threads`
/// flag's text), else [`threads_in_force`]. Only for [`main`], while the process has one
/// thread: it sets environment variables.
pub(super) fn set_threads(threads: Option<String>) -> Result<()> {
    let n = match threads {
        Some(text) => crate::hyper::values::count(&text)
            .map_err(|e| Error::usage(format!("invalid value '{text}' for '--threads': {e}")))?,
        None => threads_in_force(),
    };
    // Sound here: `main` runs this before the task, or anything else, starts a thread.
    if n > 0 {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    } else {
        std::env::remove_var("RAYON_NUM_THREADS");
        std::env::remove_var("CANDLE_NUM_THREADS");
    }
    Ok(())
}

pub(super) fn host_name() -> String {
    crate::util::host::name()
}

/// Ctrl-C and SIGTERM ask training to stop at the next step boundary (the returned flag
/// holds the signal); a second one exits at once.
pub(super) fn stop_on_signals() -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::flag;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::Arc;
    let which = Arc::new(AtomicUsize::new(0));
    let asked = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Actions run in the order registered: the exit checks whether a signal came before.
        let _ = flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&asked));
        let _ = flag::register_usize(sig, Arc::clone(&which), sig as usize);
        let _ = flag::register(sig, Arc::clone(&asked));
    }
    which
}
