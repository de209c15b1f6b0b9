//! Git snapshots of the working tree, made with gix: the exact code a run ran, as a commit
//! on `refs/flammable/runs/<id>`, without touching the user's HEAD, branches, index, working
//! tree, stash or config, and without running hooks.
//!
//! This module knows nothing of candle or of tasks.

mod browse;
mod bundle;
mod open;
mod read;
mod refs;
mod take;
mod tree;
mod walk;

pub use browse::{file_bytes, tree_files, EntryType, TreeFile};
pub use bundle::{
    create_bundle, fetch_bundle, has_remote, open_or_init_bare, push_refs, ref_target, refs_of_run,
};

pub use read::{
    changed_paths, checkout, diff, enclosing_git_dir, enclosing_workdir, has_ref, list, run_refs,
    ChangeKind, FileChange, RunRef,
};
pub use refs::{delete_named_ref, delete_ref, reuse};
pub use take::{take, Snapshot, SnapshotRequest, DEFAULT_SIZE_LIMIT};
pub use walk::{commits_between, follow_commit, resolve_commit};

use std::path::PathBuf;

/// The prefix of the refs that keep snapshots alive.
pub const REF_PREFIX: &str = "refs/flammable/runs/";
/// The prefix of the refs of code a resumed run continued with.
pub const RESUME_PREFIX: &str = "refs/flammable/resumes/";

/// What can go wrong while snapshotting or reading snapshots.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A Git operation failed.
    #[error("git: cannot {action}: {message}")]
    Git {
        /// What was being done.
        action: &'static str,
        /// What gix said.
        message: String,
    },
    /// No repository encloses the folder, and none may be created there.
    #[error("no Git repository at or above {}", .0.display())]
    NoRepository(PathBuf),
    /// The repository has no working tree.
    #[error("the repository at {} is bare: there is no working tree to snapshot", .0.display())]
    Bare(PathBuf),
    /// A file could not be read or written.
    #[error("{action} `{}`: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `checkout` was given a folder that is not empty (or a file).
    #[error("`{}` is {}: check out into a new or empty folder", .0.display(), if .0.is_dir() { "not an empty folder" } else { "a file" })]
    NotEmptyFolder(PathBuf),
    /// The repository uses a feature snapshots do not support.
    #[error("snapshots do not support {0} yet")]
    Unsupported(String),
    /// A snapshot's tree holds a name that could write outside the checkout folder.
    #[error("the snapshot holds an unsafe path `{0}`: refusing to write it")]
    UnsafePath(String),
    /// The snapshot a run names is not in the repository.
    #[error("no snapshot `{0}` in this repository")]
    Missing(String),
}

impl SnapshotError {
    /// True for errors in what the user typed (exit code 2), not in the repository.
    pub fn is_usage(&self) -> bool {
        matches!(self, SnapshotError::NotEmptyFolder(_))
    }
}

/// `Result` of snapshot operations.
pub type Result<T, E = SnapshotError> = std::result::Result<T, E>;

/// Maps any gix error to [`SnapshotError::Git`] with `action`.
pub(crate) fn git<E: std::fmt::Display>(action: &'static str) -> impl Fn(E) -> SnapshotError {
    move |e| SnapshotError::Git {
        action,
        message: e.to_string(),
    }
}
