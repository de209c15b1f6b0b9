//! What can go wrong with the run store that is not plain I/O: runs that are not there, or
//! not uniquely named, or not of the right kind; records written by a newer version; runs
//! that are still running.

use std::path::PathBuf;

/// A store error; converted into [`crate::Error`] (exit code 2 for the ones the command line
/// caused, see [`StoreError::is_usage`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No run has this name.
    #[error("no run `{spec}` in {}", store.display())]
    NotFound {
        /// The name given (an id, a prefix).
        spec: String,
        /// The store searched.
        store: PathBuf,
    },
    /// `latest~N` with fewer train runs than that, or a malformed `latest…`.
    #[error("no run `{spec}`: {why}")]
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
    /// A run that is still running, where that is refused.
    #[error("run {id} is still running; stop it first, or use `rm --force` to stop and remove it")]
    Live {
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
                | StoreError::Ambiguous { .. }
                | StoreError::WrongKind { .. }
                | StoreError::Live { .. }
        )
    }
}
