//! Browsing a snapshot without writing it out: its file list and one file's bytes (for the
//! experiment browser).

use super::read::{files, tree_of};
use super::{git, Result, SnapshotError};
use gix::objs::tree::EntryKind;
use std::path::Path;

/// What a path of a snapshot is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryType {
    /// A regular file.
    File,
    /// An executable file.
    Executable,
    /// A symbolic link (its content is the target).
    Link,
    /// A submodule (a commit of another repository; no content here).
    Submodule,
}

/// One path of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeFile {
    /// The path, `/`-separated.
    pub path: String,
    /// What it is.
    pub kind: EntryType,
    /// Its size in bytes (0 for submodules).
    pub size: u64,
}

/// Every file of snapshot `commit`, sorted by path.
pub fn tree_files(git_dir: &Path, commit: &str) -> Result<Vec<TreeFile>> {
    let repo = gix::open(git_dir).map_err(git("open the repository"))?;
    let Some(tree) = tree_of(&repo, commit)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (path, (kind, id)) in files(&repo, tree)? {
        let kind = match kind {
            EntryKind::BlobExecutable => EntryType::Executable,
            EntryKind::Link => EntryType::Link,
            EntryKind::Commit => EntryType::Submodule,
            _ => EntryType::File,
        };
        let size = if kind == EntryType::Submodule {
            0
        } else {
            repo.find_header(id)
                .map_err(git("read a file's header"))?
                .size()
        };
        out.push(TreeFile { path, kind, size });
    }
    Ok(out)
}

/// The bytes of `path` in snapshot `commit`; `None` when the snapshot has no such file (or it
/// is a folder or a submodule).
pub fn file_bytes(git_dir: &Path, commit: &str, path: &str) -> Result<Option<Vec<u8>>> {
    let repo = gix::open(git_dir).map_err(git("open the repository"))?;
    let Some(tree) = tree_of(&repo, commit)? else {
        return Ok(None);
    };
    let tree = repo.find_tree(tree).map_err(git("read a tree"))?;
    let entry = tree
        .lookup_entry_by_path(path)
        .map_err(git("look a path up"))?;
    let Some(entry) = entry else {
        return Ok(None);
    };
    if !entry.mode().is_blob_or_symlink() {
        return Ok(None);
    }
    let blob = repo
        .find_blob(entry.object_id())
        .map_err(|_| SnapshotError::Missing(format!("{commit}:{path}")))?;
    Ok(Some(blob.data.clone()))
}
