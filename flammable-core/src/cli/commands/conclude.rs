//! How a run ends: finished, failed (an error or a panic in task code, its backtrace kept) or
//! interrupted; and its results printed.

use super::*;

thread_local! {
    /// True while task code runs under `conclude`: its panics are recorded, not printed.
    static IN_TASK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The last panic in task code: where, and the backtrace.
    static LAST_PANIC: std::cell::RefCell<Option<(String, String)>> = const { std::cell::RefCell::new(None) };
}

/// Panics in task code are caught by `conclude`, which reports them in one line and saves
/// the backtrace in the run's folder; any other panic keeps Rust's usual report.
pub(super) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_TASK.with(std::cell::Cell::get) {
                let backtrace = std::backtrace::Backtrace::force_capture().to_string();
                let at = info.location().map(|l| l.to_string()).unwrap_or_default();
                LAST_PANIC.with(|p| *p.borrow_mut() = Some((at, backtrace)));
            } else {
                default(info);
            }
        }));
    });
}

/// Runs `body`, then closes the run: finished on success, failed (with the message) on an
/// error or a panic in task code (whose backtrace goes to `panic.txt` in the run's folder).
pub(super) fn conclude<R>(env: &Env, body: impl FnOnce() -> Result<R>) -> Result<R> {
    install_panic_hook();
    IN_TASK.with(|t| t.set(true));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
    IN_TASK.with(|t| t.set(false));
    let result = match outcome {
        Ok(r) => r,
        Err(panic) => {
            let what = crate::util::panic::panic_message(&*panic);
            let (at, backtrace) = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_default();
            if let Some(run) = env.run() {
                let text = format!("the task panicked at {at}: {what}\n\n{backtrace}");
                let _ = write_atomic(&run.dir().join("panic.txt"), text.as_bytes());
            }
            Err(Error::msg(format!("the task panicked at {at}: {what}")))
        }
    };
    if let Some(run) = env.run() {
        let (status, error) = match &result {
            Ok(_) => (RunStatus::Finished, None),
            Err(Error::Interrupted { signal, step }) => {
                let record = run.record();
                let mut argv0 = record.argv.first().cloned().unwrap_or_default();
                if let Some(world) = crate::collective::world() {
                    // Resumed on as many processes as it trained on.
                    argv0 = format!("mpiexec -n {} {argv0}", world.size());
                }
                let by = if *signal == 15 { "SIGTERM" } else { "SIGINT" };
                let line = if record.kind == RunKind::Train {
                    format!(
                        "interrupted by {by} at step {step}: checkpoint saved; resume with `{argv0} train --resume {}`",
                        run.id()
                    )
                } else {
                    format!("interrupted by {by}: what was tested is recorded")
                };
                // Printed even with --quiet: it says how to continue.
                crate::util::stderr::errln!("{line}");
                run.log_line(&line);
                (RunStatus::Interrupted, None)
            }
            Err(e) => (RunStatus::Failed, Some(e.to_string())),
        };
        if let Err(e) = run.finish(status, error) {
            crate::util::stderr::errln!("warning: {e}");
        }
    }
    result
}

pub(super) fn print_results(env: &Env, title: &str, results: &Results) -> Result<()> {
    if results.is_empty() {
        return Ok(());
    }
    let text = table(title, results);
    if let Some(run) = env.run() {
        run.log_line(&text);
    }
    stdout::line(&text)
}
