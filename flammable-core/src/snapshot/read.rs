//! Reading snapshots back: list them, diff two trees (or a tree and its parent), write one
//! into a folder.

use super::{git, Result, SnapshotError, REF_PREFIX};
use gix::objs::tree::EntryKind;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How a path changed between two snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// Only in the second.
    Added,
    /// Only in the first.
    Deleted,
    /// In both, different.
    Modified,
}

impl ChangeKind {
    /// The word for it: `added`, `deleted`, `modified`.
    pub fn word(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Modified => "modified",
        }
    }
}

/// One changed path, with the text of both sides when they are text.
#[derive(Clone, Debug, PartialEq)]
pub struct FileChange {
    /// The path, `/`-separated.
    pub path: String,
    /// How it changed.
    pub kind: ChangeKind,
    /// A unified diff of the contents (empty for binary files and submodules).
    pub patch: String,
}

/// Every (run id, commit) under `refs/flammable/runs/`.
pub fn list(git_dir: &Path) -> Result<Vec<(String, String)>> {
    let repo = gix::open(git_dir).map_err(git("open the repository"))?;
    let refs = repo.references().map_err(git("list refs"))?;
    let mut out = Vec::new();
    for r in refs.prefixed(REF_PREFIX).map_err(git("list refs"))? {
        let r = r.map_err(git("list refs"))?;
        let name = r.name().as_bstr().to_string();
        if let Some(id) = r.target().try_id() {
            out.push((
                name.trim_start_matches(REF_PREFIX).to_string(),
                id.to_string(),
            ));
        }
    }
    out.sort();
    Ok(out)
}

/// A ref that keeps a run's code alive: `refs/flammable/runs/<id>` or
/// `refs/flammable/resumes/<id>-…`.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRef {
    /// The full ref name.
    pub name: String,
    /// The commit's message (it names the run and the store it was made for).
    pub message: String,
}

/// Every run and resume ref of the repository at `git_dir`, with its commit's message.
pub fn run_refs(git_dir: &Path) -> Result<Vec<RunRef>> {
    let repo = gix::open(git_dir).map_err(git("open the repository"))?;
    let refs = repo.references().map_err(git("list refs"))?;
    let mut out = Vec::new();
    for prefix in [REF_PREFIX, super::RESUME_PREFIX] {
        for r in refs.prefixed(prefix).map_err(git("list refs"))? {
            let r = r.map_err(git("list refs"))?;
            let name = r.name().as_bstr().to_string();
            let message = r
                .target()
                .try_id()
                .and_then(|id| repo.find_commit(id.to_owned()).ok())
                .and_then(|c| c.message_raw().ok().map(|m| m.to_string()))
                .unwrap_or_default();
            out.push(RunRef { name, message });
        }
    }
    Ok(out)
}

/// True when the repository at `git_dir` has ref `name` (false when it cannot be read).
pub fn has_ref(git_dir: &Path, name: &str) -> bool {
    gix::open(git_dir)
        .ok()
        .is_some_and(|repo| matches!(repo.try_find_reference(name), Ok(Some(_))))
}

/// The repository whose working tree holds `dir`, if any (its Git folder).
pub fn enclosing_git_dir(dir: &Path) -> Option<std::path::PathBuf> {
    gix::discover(dir).ok().map(|r| r.git_dir().to_path_buf())
}

/// The working tree of the repository that holds `dir`, if any.
pub fn enclosing_workdir(dir: &Path) -> Option<std::path::PathBuf> {
    gix::discover(dir)
        .ok()
        .and_then(|r| r.workdir().map(Path::to_path_buf))
}

/// Every blob path of `tree` with its (kind, id).
pub(super) fn files(
    repo: &gix::Repository,
    tree: gix::ObjectId,
) -> Result<BTreeMap<String, (EntryKind, gix::ObjectId)>> {
    let tree = repo.find_tree(tree).map_err(git("read a tree"))?;
    let mut recorder = gix::traverse::tree::Recorder::default();
    tree.traverse()
        .breadthfirst(&mut recorder)
        .map_err(git("walk a tree"))?;
    Ok(recorder
        .records
        .into_iter()
        .filter(|e| !e.mode.is_tree())
        .map(|e| (e.filepath.to_string(), (e.mode.kind(), e.oid)))
        .collect())
}

pub(super) fn tree_of(repo: &gix::Repository, commit: &str) -> Result<Option<gix::ObjectId>> {
    let id = gix::ObjectId::from_hex(commit.as_bytes())
        .map_err(|_| SnapshotError::Missing(commit.into()))?;
    let c = repo
        .find_commit(id)
        .map_err(|_| SnapshotError::Missing(commit.into()))?;
    Ok(Some(c.tree_id().map_err(git("read a commit"))?.detach()))
}

/// The paths that differ between commits `a` and `b` (`a = None`: the empty tree), with
/// unified diffs of text files when `patches` is set. Sorted by path.
pub fn diff(git_dir: &Path, a: Option<&str>, b: &str, patches: bool) -> Result<Vec<FileChange>> {
    let repo = gix::open(git_dir).map_err(git("open the repository"))?;
    let empty = BTreeMap::new();
    let old = match a {
        Some(a) => match tree_of(&repo, a)? {
            Some(t) => files(&repo, t)?,
            None => empty.clone(),
        },
        None => empty.clone(),
    };
    let new = match tree_of(&repo, b)? {
        Some(t) => files(&repo, t)?,
        None => empty,
    };
    let mut out = Vec::new();
    let paths: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for path in paths {
        let (kind, before, after) = match (old.get(path), new.get(path)) {
            (Some(x), Some(y)) if x == y => continue,
            (Some(x), Some(y)) => (ChangeKind::Modified, Some(*x), Some(*y)),
            (None, Some(y)) => (ChangeKind::Added, None, Some(*y)),
            (Some(x), None) => (ChangeKind::Deleted, Some(*x), None),
            (None, None) => continue,
        };
        let patch = if patches {
            unified(&repo, path, before, after)?
        } else {
            String::new()
        };
        out.push(FileChange {
            path: path.clone(),
            kind,
            patch,
        });
    }
    Ok(out)
}

/// The paths a snapshot changed compared with its parent (its uncommitted changes).
pub fn changed_paths(git_dir: &Path, commit: &str) -> Result<Vec<FileChange>> {
    let repo = gix::open(git_dir).map_err(git("open the repository"))?;
    let id = gix::ObjectId::from_hex(commit.as_bytes())
        .map_err(|_| SnapshotError::Missing(commit.into()))?;
    let c = repo
        .find_commit(id)
        .map_err(|_| SnapshotError::Missing(commit.into()))?;
    let parent = c.parent_ids().next().map(|p| p.detach().to_string());
    drop(c);
    diff(git_dir, parent.as_deref(), commit, false)
}

fn blob_text(
    repo: &gix::Repository,
    id: Option<(EntryKind, gix::ObjectId)>,
) -> Result<Option<String>> {
    match id {
        None => Ok(Some(String::new())),
        Some((EntryKind::Commit, id)) => Ok(Some(format!("Subproject commit {id}\n"))),
        Some((_, id)) => {
            let blob = repo.find_blob(id).map_err(git("read a file"))?;
            Ok(std::str::from_utf8(&blob.data)
                .ok()
                .filter(|s| !s.contains('\0'))
                .map(str::to_string))
        }
    }
}

fn unified(
    repo: &gix::Repository,
    path: &str,
    before: Option<(EntryKind, gix::ObjectId)>,
    after: Option<(EntryKind, gix::ObjectId)>,
) -> Result<String> {
    // A name is shown with its control characters escaped (as `diff --stat` shows it): a
    // file named with a terminal's escape sequences cannot rewrite the screen.
    let path = &crate::util::printable::printable(path);
    let (Some(a), Some(b)) = (blob_text(repo, before)?, blob_text(repo, after)?) else {
        return Ok(format!("Binary file {path} differs\n"));
    };
    let (old_name, new_name) = (
        if before.is_some() {
            format!("a/{path}")
        } else {
            "/dev/null".into()
        },
        if after.is_some() {
            format!("b/{path}")
        } else {
            "/dev/null".into()
        },
    );
    // As git writes them: a file made, removed, or whose mode changed says so, so that an
    // empty file or a mode of its own (no lines differ) is not an empty patch.
    let mode = |e: Option<(EntryKind, gix::ObjectId)>| e.map(|(kind, _)| git_mode(kind));
    let modes = match (mode(before), mode(after)) {
        (None, Some(m)) => format!("new file mode {m}\n"),
        (Some(m), None) => format!("deleted file mode {m}\n"),
        (Some(x), Some(y)) if x != y => format!("old mode {x}\nnew mode {y}\n"),
        _ => String::new(),
    };
    let lines = similar::TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header(&old_name, &new_name)
        .to_string();
    if modes.is_empty() {
        return Ok(lines);
    }
    Ok(format!("diff --git a/{path} b/{path}\n{modes}{lines}"))
}

/// The mode git writes for a tree entry of `kind`.
fn git_mode(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Blob => "100644",
        EntryKind::BlobExecutable => "100755",
        EntryKind::Link => "120000",
        EntryKind::Commit => "160000",
        EntryKind::Tree => "040000",
    }
}

/// Writes the tree of `commit` into `dir` (which must be empty or absent): files with their
/// executable bits, symlinks; submodules as empty folders. The user's checkout is untouched.
///
/// A snapshot's tree is not trusted: a name that could leave `dir` or write into Git's own
/// folder (`..`, `.`, `.git`, one holding a separator or NUL) is refused, nothing is ever
/// written through a symlink or over an existing path (so a crafted tree with a link and a
/// folder of the same name fails instead of writing elsewhere), and names keep their exact
/// bytes where the platform allows (Unix).
pub fn checkout(git_dir: &Path, commit: &str, dir: &Path) -> Result<usize> {
    let taken = dir.exists()
        && (!dir.is_dir()
            || std::fs::read_dir(dir)
                .map_err(io("cannot read", dir))?
                .next()
                .is_some());
    if taken {
        return Err(SnapshotError::NotEmptyFolder(dir.to_path_buf()));
    }
    let repo = gix::open(git_dir).map_err(git("open the repository"))?;
    let tree = tree_of(&repo, commit)?.ok_or_else(|| SnapshotError::Missing(commit.into()))?;
    // Written beside `dir` and renamed into place: a checkout that fails half-way (a missing
    // object, a full disk) leaves nothing behind.
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io("cannot create", &parent))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkout".into());
    let staging = parent.join(format!(".{name}.checkout-{}.tmp", std::process::id()));
    std::fs::create_dir(&staging).map_err(io("cannot create", &staging))?;
    let written = write_tree(&repo, tree, &staging, "").and_then(|n| {
        // Onto a missing or empty folder (checked above), which the rename replaces.
        std::fs::rename(&staging, dir).map_err(io("cannot move the checkout to", dir))?;
        Ok(n)
    });
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    written
}

/// Writes the entries of `tree` into the existing folder `dir`; `shown` is its path within
/// the snapshot, for messages. Returns the number of files, links and submodules written.
fn write_tree(
    repo: &gix::Repository,
    tree: gix::ObjectId,
    dir: &Path,
    shown: &str,
) -> Result<usize> {
    let object = repo.find_tree(tree).map_err(git("read a tree"))?;
    let decoded = object.decode().map_err(git("read a tree"))?;
    let mut written = 0;
    for entry in &decoded.entries {
        let name: &[u8] = entry.filename.as_ref();
        let path_shown = format!("{shown}{}", String::from_utf8_lossy(name));
        let target = dir.join(safe_name(name, &path_shown)?);
        let id = entry.oid.to_owned();
        match entry.mode.kind() {
            EntryKind::Tree => {
                std::fs::create_dir(&target).map_err(io("cannot create", &target))?;
                written += write_tree(repo, id, &target, &format!("{path_shown}/"))?;
            }
            EntryKind::Commit => {
                std::fs::create_dir(&target).map_err(io("cannot create", &target))?;
                written += 1;
            }
            EntryKind::Link => {
                let blob = repo.find_blob(id).map_err(git("read a file"))?;
                let to = gix::path::from_byte_slice(&blob.data).map_err(git("read a link"))?;
                symlink(to, &target).map_err(io("cannot create link", &target))?;
                written += 1;
            }
            kind @ (EntryKind::Blob | EntryKind::BlobExecutable) => {
                let blob = repo.find_blob(id).map_err(git("read a file"))?;
                // create_new: never through a link, never over a path already written.
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(io("cannot write", &target))?;
                std::io::Write::write_all(&mut file, &blob.data)
                    .map_err(io("cannot write", &target))?;
                if kind == EntryKind::BlobExecutable {
                    set_executable(&target).map_err(io("cannot set mode of", &target))?;
                }
                written += 1;
            }
        }
    }
    Ok(written)
}

/// `name` as one path component, or an error naming `shown` when it could escape the
/// checkout folder or write into Git's own folder.
fn safe_name<'a>(name: &'a [u8], shown: &str) -> Result<&'a std::ffi::OsStr> {
    let unsafe_name = name.is_empty()
        || name == b"."
        || name == b".."
        || name.eq_ignore_ascii_case(b".git")
        || name.contains(&b'/')
        || name.contains(&0)
        || (cfg!(windows) && (name.contains(&b'\\') || name.contains(&b':')));
    if unsafe_name {
        return Err(SnapshotError::UnsafePath(shown.to_string()));
    }
    os_name(name).ok_or_else(|| SnapshotError::UnsafePath(shown.to_string()))
}

#[cfg(unix)]
fn os_name(name: &[u8]) -> Option<&std::ffi::OsStr> {
    use std::os::unix::ffi::OsStrExt;
    Some(std::ffi::OsStr::from_bytes(name))
}

#[cfg(not(unix))]
fn os_name(name: &[u8]) -> Option<&std::ffi::OsStr> {
    std::str::from_utf8(name).ok().map(std::ffi::OsStr::new)
}

/// Maps an I/O error on `path` to [`SnapshotError::Io`].
fn io(action: &'static str, path: &Path) -> impl Fn(std::io::Error) -> SnapshotError {
    let path = path.to_path_buf();
    move |source| SnapshotError::Io {
        action,
        path: path.clone(),
        source,
    }
}

#[cfg(unix)]
fn symlink(to: &Path, at: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(to, at)
}

#[cfg(not(unix))]
fn symlink(to: &Path, at: &Path) -> std::io::Result<()> {
    std::fs::write(at, to.to_string_lossy().as_bytes())
}

#[cfg(unix)]
fn set_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut p = std::fs::metadata(path)?.permissions();
    p.set_mode(p.mode() | 0o111);
    std::fs::set_permissions(path, p)
}

#[cfg(not(unix))]
fn set_executable(_: &Path) -> std::io::Result<()> {
    Ok(())
}
