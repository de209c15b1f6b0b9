//! Making a snapshot: the repository opened (or created), the working tree's tree written,
//! then a commit whose parent is `HEAD`, and the run's ref pointing at it.

use super::open::open_or_create;
use super::tree::write_tree;
use super::{git, Result, REF_PREFIX};
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use std::path::PathBuf;

/// Files larger than this (bytes) are left out of snapshots unless told otherwise: 10 MB.
pub const DEFAULT_SIZE_LIMIT: u64 = 10 * 1024 * 1024;

/// What to snapshot and how to name it.
#[derive(Clone, Debug)]
pub struct SnapshotRequest {
    /// A folder inside the working tree (or where to create a repository if there is none).
    pub dir: PathBuf,
    /// Whether a repository may be created in `dir` when none encloses it; otherwise that
    /// is [`super::SnapshotError::NoRepository`].
    pub create_repository: bool,
    /// The run id: the ref is `refs/flammable/runs/<run_id>`.
    pub run_id: String,
    /// The commit message.
    pub message: String,
    /// Files above this many bytes are left out.
    pub size_limit: u64,
    /// Paths (absolute) never snapshotted, e.g. the run store.
    pub exclude: Vec<PathBuf>,
    /// The full ref name to write instead of `refs/flammable/runs/<run_id>`.
    pub reference: Option<String>,
}

/// A snapshot that was made.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The commit.
    pub commit: String,
    /// Its tree.
    pub tree: String,
    /// `HEAD`'s commit, its parent (none in a repository without commits).
    pub parent: Option<String>,
    /// The repository's `.git` folder.
    pub git_dir: PathBuf,
    /// The working tree's root.
    pub workdir: PathBuf,
    /// True when the tree differs from `HEAD`'s: the run had uncommitted changes.
    pub dirty: bool,
    /// Files left out for their size, with their sizes.
    pub skipped: Vec<(String, u64)>,
    /// True when no repository existed and one was created.
    pub created_repository: bool,
}

/// Snapshots the working tree around `request.dir` (creating a repository there when none
/// encloses it and `request.create_repository` allows it) and points
/// `refs/flammable/runs/<run_id>` at the commit.
pub fn take(request: &SnapshotRequest) -> Result<Snapshot> {
    let (repo, workdir, created_repository) =
        open_or_create(&request.dir, request.create_repository)?;
    let (tree, skipped) = write_tree(&repo, &workdir, request)?;

    // 3. The commit, its parent HEAD, and the ref.
    let head = repo.head_id().ok().map(|id| id.detach());
    let head_tree = head
        .and_then(|id| repo.find_commit(id).ok())
        .and_then(|c| c.tree_id().ok())
        .map(|t| t.detach());
    let signature = signature(&repo);
    let commit = gix::objs::Commit {
        tree,
        parents: head.into_iter().collect(),
        author: signature.clone(),
        committer: signature,
        encoding: None,
        message: request.message.clone().into(),
        extra_headers: Vec::new(),
    };
    let commit_id = repo
        .write_object(&commit)
        .map_err(git("write the commit"))?
        .detach();
    let name = request
        .reference
        .clone()
        .unwrap_or_else(|| format!("{REF_PREFIX}{}", request.run_id));
    repo.edit_reference(RefEdit {
        change: Change::Update {
            log: LogChange {
                mode: RefLog::AndReference,
                force_create_reflog: false,
                message: format!("flammable: run {}", request.run_id).into(),
            },
            expected: PreviousValue::MustNotExist,
            new: gix::refs::Target::Object(commit_id),
        },
        name: name.as_str().try_into().map_err(git("name the ref"))?,
        deref: false,
    })
    .map_err(git("write the ref"))?;
    Ok(Snapshot {
        commit: commit_id.to_string(),
        tree: tree.to_string(),
        parent: head.map(|h| h.to_string()),
        git_dir: repo.git_dir().to_path_buf(),
        workdir,
        dirty: head_tree != Some(tree),
        skipped,
        created_repository,
    })
}

/// The configured committer, or a fixed one when none is configured (a snapshot must not
/// fail for want of `user.name`).
fn signature(repo: &gix::Repository) -> gix::actor::Signature {
    let now = gix::date::Time::now_local_or_utc();
    match repo.committer() {
        Some(Ok(sig)) => gix::actor::Signature {
            name: sig.name.into(),
            email: sig.email.into(),
            time: now,
        },
        _ => gix::actor::Signature {
            name: "flammable".into(),
            email: "flammable@localhost".into(),
            time: now,
        },
    }
}
