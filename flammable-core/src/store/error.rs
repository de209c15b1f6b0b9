//! What can go wrong with the run store: runs that are not there, or not uniquely named, or
//! not of the right kind; records written by a newer version; runs that are still running;
//! files of the store that cannot be read or written (with the path).

use std::path::PathBuf;

/// A store error; converted into [`crate::Error`] (exit code 2 for the ones the command line
/// caused, see [`StoreError::is_usage`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No run has this name.
    #[error("no run `{}` in {}", spec.escape_debug(), store.display())]
    NotFound {
        /// The name given (an id, a prefix).
        spec: String,
        /// The store searched.
        store: PathBuf,
    },
    /// An empty run name (which would otherwise fit every run as a prefix).
    #[error("an empty run name: give a run's id, a prefix of it, or latest")]
    EmptyName,
    /// `latest~N` with fewer train runs than that, or a malformed `latest…`.
    #[error("no run `{}`: {why}", spec.escape_debug())]
    NoLatest {
        /// The name given.
        spec: String,
        /// Why it names no run.
        why: &'static str,
    },
    /// A prefix that fits several runs.
    #[error("run prefix `{prefix}` fits {} runs ({}); type more of it", candidates.len(), candidates.join(", "))]
    Ambiguous {
        /// The prefix given.
        prefix: String,
        /// The ids it fits.
        candidates: Vec<String>,
    },
    /// A run of a kind the command does not take (a test run given to `test`).
    #[error("run `{id}` is a {kind} run, which does not fit here")]
    WrongKind {
        /// The run.
        id: String,
        /// Its kind.
        kind: String,
    },
    /// A record written by a newer version of Flammable.
    #[error("`{}` was written by a newer flammable (record version {version}); upgrade to read it", path.display())]
    NewerVersion {
        /// The record file.
        path: PathBuf,
        /// Its version.
        version: u32,
    },
    /// A record that does not parse.
    #[error("cannot parse `{}`: {message}", path.display())]
    Corrupt {
        /// The record file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A file or folder of the store could not be read or written.
    #[error("{action} `{}`: {source}", path.display())]
    Io {
        /// What was being done, e.g. "cannot read the record".
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file of the store could not be written (the message names it).
    #[error("{0}")]
    Write(#[source] std::io::Error),
    /// `--store` or `$FLAMMABLE_STORE` names no folder.
    #[error("{0}")]
    BadLocation(String),
    /// A store named by `--store` or `$FLAMMABLE_STORE` that does not exist, given to a
    /// command that only reads one.
    #[error("no run store at {}: check --store or $FLAMMABLE_STORE (a store is made by a task's first run)", path.display())]
    Missing {
        /// The folder named.
        path: PathBuf,
    },
    /// A record that cannot be written as RON.
    #[error("cannot write the record of run {id} as RON: {message}")]
    Encode {
        /// The run.
        id: String,
        /// What the serializer said.
        message: String,
    },
    /// A live run that could not be stopped (`rm --force`).
    #[error("cannot stop run {id} (pid {pid}): {reason}")]
    Stop {
        /// The run.
        id: String,
        /// Its process.
        pid: u32,
        /// Why.
        reason: String,
    },
    /// A live run of another host, which this one cannot signal (`rm --force`).
    #[error(
        "run {id} runs on host `{host}`, not on this one (`{here}`): stop it there, then remove it"
    )]
    OtherHost {
        /// The run.
        id: String,
        /// The host its record names (empty when it names none).
        host: String,
        /// This host.
        here: String,
    },
    /// A run that is still running, where that is refused.
    #[error("run {id} is still running; stop it first, or use `rm --force` to stop and remove it")]
    Live {
        /// The run.
        id: String,
    },
    /// A run that is still running, whose notes (tags, note, message) were to change: its
    /// process writes its record from its own copy, which would drop the change.
    #[error("run {id} is still running: its tags, note and message can change once it ends (its process writes the record as it goes)")]
    LiveEdit {
        /// The run.
        id: String,
    },
    /// A change of a run's notes that the record should not hold (the reason).
    #[error("{0}")]
    BadEdit(String),
    /// A run that cannot go into the trash or come out of it: the reason.
    #[error("{0}")]
    Trash(String),
    /// A run named that is in the trash, not in the store.
    #[error("run {id} is in the trash: `flammable restore {id}` brings it back")]
    InTrash {
        /// The run.
        id: String,
    },
}

impl StoreError {
    /// True for errors in what the user typed (exit code 2): an unknown, ambiguous or
    /// unfitting run, a live run to remove.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            StoreError::NotFound { .. }
                | StoreError::NoLatest { .. }
                | StoreError::EmptyName
                | StoreError::Ambiguous { .. }
                | StoreError::WrongKind { .. }
                | StoreError::Live { .. }
                | StoreError::LiveEdit { .. }
                | StoreError::BadEdit(_)
                | StoreError::Trash(_)
                | StoreError::InTrash { .. }
                | StoreError::OtherHost { .. }
                | StoreError::BadLocation(_)
                | StoreError::Missing { .. }
        )
    }
}

/// Adds a path and an action to the store's I/O results: `fs::read(p).at("cannot read", p)?`.
pub(crate) trait IoAt<T> {
    /// Turns an `io::Error` into a [`StoreError::Io`] naming `path`.
    fn at(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T, StoreError>;
}

impl<T> IoAt<T> for std::io::Result<T> {
    fn at(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Io {
            action,
            path: path.into(),
            source,
        })
    }
}
