//! Making a snapshot: the index's entries, changed by what `git status` sees in the working
//! tree (modified, deleted, untracked-but-not-ignored files), written as a tree and a commit.

use super::{git, Result, SnapshotError, REF_PREFIX, RESUME_PREFIX};
use gix::bstr::{BStr, ByteSlice};
use gix::objs::tree::EntryKind;
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::status::index_worktree::Item;
use gix::status::plumbing::index_as_worktree::{Change as WtChange, EntryStatus};
use std::path::{Path, PathBuf};

/// Files larger than this (bytes) are left out of snapshots unless told otherwise: 10 MB.
pub const DEFAULT_SIZE_LIMIT: u64 = 10 * 1024 * 1024;

/// What to snapshot and how to name it.
#[derive(Clone, Debug)]
pub struct SnapshotRequest {
    /// A folder inside the working tree (or where to create a repository if there is none).
    pub dir: PathBuf,
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

/// Snapshots the working tree around `request.dir` (creating a repository there if there is
/// none) and points `refs/flammable/runs/<run_id>` at the commit.
pub fn take(request: &SnapshotRequest) -> Result<Snapshot> {
    let (repo, created_repository) = match gix::discover(&request.dir) {
        Ok(repo) => (repo, false),
        // Only "no repository here or above" may create one: a repository that exists but
        // cannot be opened (another object format, a broken config) must never get a second
        // one nested inside it.
        Err(e) if is_no_repository(&e) => match gix::init(&request.dir) {
            Ok(repo) => {
                ignore_cargo_target(repo.git_dir())?;
                (repo, true)
            }
            // Runs started together (a sweep's) race to create it: the loser opens the
            // winner's, once that one is complete.
            Err(init) => (
                created_meanwhile(&request.dir).ok_or_else(|| SnapshotError::Git {
                    action: "create a repository",
                    message: init.to_string(),
                })?,
                false,
            ),
        },
        Err(e) => {
            return Err(SnapshotError::Git {
                action: "open the repository",
                message: e.to_string(),
            })
        }
    };
    refuse_unsupported(&repo)?;
    let workdir = repo
        .workdir()
        .map(Path::to_path_buf)
        .ok_or_else(|| SnapshotError::Bare(repo.git_dir().to_path_buf()))?;
    let workdir = std::fs::canonicalize(&workdir).unwrap_or(workdir);
    let excluded: Vec<Vec<u8>> = request
        .exclude
        .iter()
        .filter_map(|p| {
            let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
            let rel = p.strip_prefix(&workdir).ok()?;
            let rel = gix::path::into_bstr(rel).ok()?.into_owned();
            (!rel.is_empty()).then(|| rel.to_vec())
        })
        .collect();
    let is_excluded = |path: &BStr| {
        excluded
            .iter()
            .any(|e| path.starts_with(e) && (path.len() == e.len() || path[e.len()] == b'/'))
    };

    let index = repo.index_or_empty().map_err(git("read the index"))?;
    let file_mode = repo
        .config_snapshot()
        .boolean("core.fileMode")
        .unwrap_or(true);
    let (mut pipeline, _) = repo.filter_pipeline(None).map_err(git("set up filters"))?;
    let mut editor = repo
        .edit_tree(gix::ObjectId::empty_tree(repo.object_hash()))
        .map_err(git("edit a tree"))?;
    let mut skipped = Vec::new();

    // 1. The index as it is: stage-0 entries (conflicts and intent-to-add come from status).
    for entry in index.entries() {
        if entry.stage_raw() != 0
            || entry
                .flags
                .contains(gix::index::entry::Flags::INTENT_TO_ADD)
        {
            continue;
        }
        let path = entry.path(&index);
        if is_excluded(path) {
            continue;
        }
        let kind = match entry.mode {
            m if m == gix::index::entry::Mode::FILE_EXECUTABLE => EntryKind::BlobExecutable,
            m if m == gix::index::entry::Mode::SYMLINK => EntryKind::Link,
            m if m == gix::index::entry::Mode::COMMIT => EntryKind::Commit,
            m if m == gix::index::entry::Mode::DIR => EntryKind::Tree,
            _ => EntryKind::Blob,
        };
        let id = if kind == EntryKind::Commit {
            submodule_head(&workdir, path).unwrap_or(entry.id)
        } else {
            entry.id
        };
        editor
            .upsert(path, kind, id)
            .map_err(git("build the tree"))?;
    }

    // 2. What the working tree changed: hash only those files.
    let status = repo
        .status(gix::progress::Discard)
        .map_err(git("read the status"))?
        .index(index.clone().into())
        .untracked_files(gix::status::UntrackedFiles::Files)
        .index_worktree_submodules(None)
        .dirwalk_options(|o| {
            o.emit_ignored(None)
                .emit_pruned(false)
                .emit_tracked(false)
                .emit_empty_directories(false)
                .emit_collapsed(None)
        })
        .index_worktree_rewrites(None)
        .into_index_worktree_iter(Vec::new())
        .map_err(git("read the status"))?;
    // Collect first, then hash: the status iterator holds the index while it runs.
    let mut to_add: Vec<(gix::bstr::BString, Option<EntryKind>)> = Vec::new();
    let mut to_remove: Vec<gix::bstr::BString> = Vec::new();
    for item in status {
        let item = item.map_err(git("read the status"))?;
        match item {
            Item::Modification {
                rela_path,
                status,
                entry,
                ..
            } => {
                if is_excluded(rela_path.as_ref()) || entry.mode == gix::index::entry::Mode::COMMIT
                {
                    continue;
                }
                let index_kind = entry.mode.to_tree_entry_mode().map(|m| m.kind());
                match status {
                    EntryStatus::Change(WtChange::Removed) => to_remove.push(rela_path),
                    EntryStatus::Change(WtChange::SubmoduleModification(_))
                    | EntryStatus::NeedsUpdate(_) => {}
                    EntryStatus::Change(_)
                    | EntryStatus::IntentToAdd
                    | EntryStatus::Conflict { .. } => {
                        to_add.push((rela_path, index_kind));
                    }
                }
            }
            Item::DirectoryContents { entry, .. } => {
                let untracked = entry.status == gix::dir::entry::Status::Untracked;
                let trackable = matches!(
                    entry.disk_kind,
                    Some(
                        gix::dir::entry::Kind::File
                            | gix::dir::entry::Kind::Symlink
                            | gix::dir::entry::Kind::Repository
                    )
                );
                if untracked && trackable && !is_excluded(entry.rela_path.as_ref()) {
                    to_add.push((entry.rela_path, None));
                }
            }
            Item::Rewrite { .. } => {}
        }
    }
    // Racily clean entries: written in the same timestamp tick as the index, their stat data
    // cannot tell a change; git re-reads them, and so do we (hashing an unchanged file only
    // writes the same blob again).
    if let Ok(index_time) = std::fs::metadata(repo.index_path()).and_then(|m| m.modified()) {
        let index_time = index_time
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| (d.as_secs(), d.subsec_nanos()))
            .unwrap_or_default();
        for entry in index.entries() {
            let mode = entry.mode;
            if entry.stage_raw() != 0
                || mode == gix::index::entry::Mode::COMMIT
                || mode == gix::index::entry::Mode::DIR
            {
                continue;
            }
            let mtime = (u64::from(entry.stat.mtime.secs), entry.stat.mtime.nsecs);
            let path = entry.path(&index);
            if mtime >= index_time && !is_excluded(path) && !to_add.iter().any(|(p, _)| p == path) {
                to_add.push((path.to_owned(), mode.to_tree_entry_mode().map(|m| m.kind())));
            }
        }
    }
    for path in to_remove {
        editor
            .remove(path.as_bstr())
            .map_err(git("build the tree"))?;
    }
    for (path, index_kind) in to_add {
        let path = path.as_bstr();
        let full = workdir.join(gix::path::from_bstr(path).map_err(git("read a path"))?);
        if let Ok(md) = std::fs::symlink_metadata(&full) {
            if md.is_file() && md.len() > request.size_limit {
                // Left out for real: a tracked file's older version from the index would
                // otherwise stand in for the one the run used.
                skipped.push((path.to_string(), md.len()));
                editor.remove(path).map_err(git("build the tree"))?;
                continue;
            }
        }
        match pipeline
            .worktree_file_to_object(path, &index)
            .map_err(git("hash a file"))?
        {
            Some((id, mut kind, _)) => {
                // With core.fileMode=false the executable bit on disk means nothing: keep the index's.
                let blob = |k: EntryKind| matches!(k, EntryKind::Blob | EntryKind::BlobExecutable);
                if let Some(k) = index_kind.filter(|k| !file_mode && blob(*k) && blob(kind)) {
                    kind = k;
                }
                editor
                    .upsert(path, kind, id)
                    .map_err(git("build the tree"))?;
            }
            None => {
                editor.remove(path).map_err(git("build the tree"))?;
            }
        }
    }
    let tree = editor.write().map_err(git("write the tree"))?.detach();

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

/// The repository another process has just created in `dir`, once it can be opened (for
/// up to a second: `init` writes a few files).
fn created_meanwhile(dir: &Path) -> Option<gix::Repository> {
    for _ in 0..50 {
        if let Ok(repo) = gix::discover(dir) {
            return Some(repo);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    None
}

/// Makes a repository Flammable created ignore Cargo's build folder, `/target/`, as the
/// `.gitignore` of `cargo new` would have (in its `info/exclude`: the user's folder gets no
/// file). Without it, the first snapshot of a project that never had Git would hash every
/// build product.
fn ignore_cargo_target(git_dir: &Path) -> Result<()> {
    let exclude = git_dir.join("info").join("exclude");
    let mut text = std::fs::read_to_string(&exclude).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("# Cargo's build folder (Flammable created this repository)\n/target/\n");
    std::fs::create_dir_all(git_dir.join("info"))
        .and_then(|()| std::fs::write(&exclude, text))
        .map_err(git("write the new repository's info/exclude"))
}

/// True when `error` says that no repository encloses the folder (and nothing else).
fn is_no_repository(error: &gix::Error) -> bool {
    use gix::discover::upwards::Error as Upwards;
    matches!(
        error.downcast_any_ref::<Upwards>(),
        Some(
            Upwards::NoGitRepository { .. }
                | Upwards::NoGitRepositoryWithinCeiling { .. }
                | Upwards::NoGitRepositoryWithinFs { .. }
        )
    )
}

/// Refuses, with the reason, repositories whose snapshot would not be what `git add -A`
/// gives: a sparse checkout or sparse index (gix would add files outside the sparse
/// patterns) and reftable ref storage (gix cannot write its refs).
fn refuse_unsupported(repo: &gix::Repository) -> Result<()> {
    let config = repo.config_snapshot();
    let unsupported = |what: &str| {
        Err(SnapshotError::Unsupported(format!(
            "{what} (in {})",
            repo.git_dir().display()
        )))
    };
    if config.boolean("index.sparse").unwrap_or(false)
        || config.boolean("core.sparseCheckout").unwrap_or(false)
    {
        return unsupported("a sparse checkout or sparse index");
    }
    if config
        .string("extensions.refStorage")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"reftable"))
    {
        return unsupported("reftable ref storage");
    }
    Ok(())
}

/// Points `refs/flammable/runs/<run_id>` of the repository at `git_dir` at an existing
/// commit (a rerun runs exactly the code of an earlier snapshot).
pub fn reuse(git_dir: &Path, commit: &str, run_id: &str) -> Result<()> {
    let repo = gix::open(git_dir).map_err(git("open the repository"))?;
    let id = gix::ObjectId::from_hex(commit.as_bytes()).map_err(git("read a commit id"))?;
    let name = format!("{REF_PREFIX}{run_id}");
    repo.edit_reference(RefEdit {
        change: Change::Update {
            log: LogChange::default(),
            expected: PreviousValue::MustNotExist,
            new: gix::refs::Target::Object(id),
        },
        name: name.as_str().try_into().map_err(git("name the ref"))?,
        deref: false,
    })
    .map_err(git("write the ref"))?;
    Ok(())
}

/// Deletes `refs/flammable/runs/<run_id>` and the refs of its resumes
/// (`refs/flammable/resumes/<run_id>-…`); the commits go with the next `git gc`.
pub fn delete_ref(git_dir: &Path, run_id: &str) -> Result<bool> {
    let repo = gix::open(git_dir).map_err(git("open the repository"))?;
    let mut names = vec![format!("{REF_PREFIX}{run_id}")];
    let prefix = format!("{RESUME_PREFIX}{run_id}-");
    let refs = repo.references().map_err(git("list refs"))?;
    for r in refs
        .prefixed(RESUME_PREFIX)
        .map_err(git("list refs"))?
        .flatten()
    {
        let name = r.name().as_bstr().to_string();
        if name.starts_with(&prefix) {
            names.push(name);
        }
    }
    let mut deleted = false;
    for name in names {
        deleted |= delete_reference(&repo, &name)?;
    }
    Ok(deleted)
}

/// Deletes ref `name` of the repository at `git_dir` if it exists; true when it did.
pub fn delete_named_ref(git_dir: &Path, name: &str) -> Result<bool> {
    let repo = gix::open(git_dir).map_err(git("open the repository"))?;
    delete_reference(&repo, name)
}

/// Deletes ref `name` if it exists; true when it did.
fn delete_reference(repo: &gix::Repository, name: &str) -> Result<bool> {
    let found = repo.try_find_reference(name).map_err(git("read a ref"))?;
    if found.is_none() {
        return Ok(false);
    }
    repo.edit_reference(RefEdit {
        change: Change::Delete {
            expected: PreviousValue::Any,
            log: RefLog::AndReference,
        },
        name: name.try_into().map_err(git("name the ref"))?,
        deref: false,
    })
    .map_err(git("delete the ref"))?;
    Ok(true)
}

/// The commit checked out in the submodule at `path`, if it is initialised.
fn submodule_head(workdir: &Path, path: &BStr) -> Option<gix::ObjectId> {
    let dir = workdir.join(gix::path::from_bstr(path).ok()?);
    let sub = gix::open(dir).ok()?;
    sub.head_id().ok().map(|id| id.detach())
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
