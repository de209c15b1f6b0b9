//! The one error type of flammable-core, and the exit codes the CLI maps it to.

use std::path::PathBuf;

/// Everything that can go wrong in a task, a loop, a checkpoint or the CLI.
///
/// Step functions return [`Result`], so `?` works on candle, I/O and RON errors
/// as well as on errors made with [`Error::msg`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed (shape mismatch, device error, …). Shown on one line,
    /// without the backtrace candle attaches when `RUST_BACKTRACE` is set.
    #[cfg(feature = "candle")]
    #[error("{}", one_line(.0))]
    Candle(#[from] candle_core::Error),
    /// A file could not be read or written.
    #[error("{action} `{}`: {source}", path.display())]
    Io {
        /// What was being done, e.g. "cannot read".
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An I/O error without a known path (e.g. from user code using `?`).
    #[error(transparent)]
    PlainIo(#[from] std::io::Error),
    /// A RON file could not be parsed into the expected shape.
    #[error("cannot parse `{}`: {message}", path.display())]
    Ron {
        /// The file involved.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The command line or a hyperparameter file is wrong; exits with code 2.
    #[error("{0}")]
    Usage(String),
    /// A checkpoint is missing, corrupt or does not fit the model.
    #[error("checkpoint `{}`: {message}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Training was stopped by a signal at a step boundary (a checkpoint was written).
    #[error("interrupted by signal {signal} at step {step}")]
    Interrupted {
        /// The signal number (2: SIGINT, 15: SIGTERM).
        signal: i32,
        /// The iterations done.
        step: u64,
    },
    /// The run store: a run that is not there, ambiguous, of another kind, live, or written
    /// by a newer version.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A Git snapshot could not be taken, read or checked out (exit code 1: the repository's
    /// state, not the command line, is at fault).
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    /// A step of the task failed: which step, and why.
    #[error("in step `{step}`: {source}")]
    InStep {
        /// The step (`forward`, `loss`, `prepare_train`, …).
        step: &'static str,
        /// What went wrong.
        source: Box<Error>,
    },
    /// The reader of stdout went away (`runs | head -1`): the command ends quietly.
    #[error("stdout was closed")]
    OutputClosed,
    /// Something a task or a step reported in its own words.
    #[error("{0}")]
    Message(String),
}

/// `Result` with flammable's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with a message of the task's own, for use in step functions:
    /// `return Err(Error::msg(format!("bad label {y}")))`.
    pub fn msg(message: impl std::fmt::Display) -> Self {
        Error::Message(message.to_string())
    }

    /// A usage error: bad flag, bad hyperparameter file, unknown run.
    pub fn usage(message: impl std::fmt::Display) -> Self {
        Error::Usage(message.to_string())
    }

    /// This error as having happened in `step` of the task: a tensor error says which step
    /// it came from. Other errors (an interruption, a usage error, one already placed) are
    /// returned as they are.
    #[cfg(feature = "candle")]
    pub fn in_step(self, step: &'static str) -> Self {
        match self {
            Error::Candle(_) => Error::InStep {
                step,
                source: Box::new(self),
            },
            other => other,
        }
    }

    /// Wraps an I/O error with the path and the action that failed.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The process exit code for this error: 2 for usage errors, 128 + the signal for an
    /// interruption (130 for Ctrl-C, 143 for SIGTERM), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::Store(e) if e.is_usage() => 2,
            Error::Snapshot(e) if e.is_usage() => 2,
            Error::Interrupted { signal, .. } => (128 + signal).clamp(1, 255) as u8,
            Error::OutputClosed => 0,
            _ => 1,
        }
    }
}

#[cfg(feature = "candle")]
/// `e` as one line: candle's backtraces left out (they are for debugging candle, and would
/// be stored in the run's record), its context lines joined.
fn one_line(e: &candle_core::Error) -> String {
    let mut e = e;
    while let candle_core::Error::WithBacktrace { inner, .. } = e {
        e = inner;
    }
    let text = match e {
        candle_core::Error::Context { inner, context } => format!("{context}: {}", one_line(inner)),
        candle_core::Error::WithPath { inner, path } => {
            format!("{}: {}", path.display(), one_line(inner))
        }
        other => other.to_string(),
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

/// Adds a path and an action to I/O results: `fs::read(p).at("cannot read", p)?`.
pub trait IoContext<T> {
    /// Turns an `io::Error` into an [`Error::Io`] naming `path`.
    fn at(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::result::Result<T, std::io::Error> {
    fn at(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(action, path, e))
    }
}
