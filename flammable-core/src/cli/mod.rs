//! The command line of a task binary: `train`, `test [RUN]`, `eval [RUN] IN OUT`, and the
//! run commands (`runs`, `show`, `diff`, `checkout`, `rerun`, `rm`, `gc`).
//!
//! The only place where errors become text and an exit code.

pub mod runs;
mod stdout;

// The task's own commands (train, test, eval), on candle.
#[cfg(feature = "candle")]
mod commands;
#[cfg(feature = "candle")]
pub use commands::{main, main_serving, run, run_serving};

use crate::error::{Error, Result};
use std::process::ExitCode;

/// The one way a binary ends: the exit code of `result`, or its error printed as one line
/// (`error: …`) with its exit code (2 for usage errors, 1 otherwise); a closed stdout ends
/// quietly, as does an interrupted run (it has said so), with 128 + the signal.
pub fn report(result: Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(Error::OutputClosed) => ExitCode::SUCCESS,
        // The run said how it stopped and how to continue it; the signal's exit code says
        // the rest.
        Err(e @ Error::Interrupted { .. }) => ExitCode::from(e.exit_code()),
        Err(e) => {
            crate::util::stderr::errln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
