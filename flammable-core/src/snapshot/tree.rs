//! A snapshot's tree: the index's entries, changed by what `git status` sees in the working
//! tree (modified, deleted, untracked-but-not-ignored files); only the changed files are
//! hashed. Files over the size limit are left out and listed.

use super::take::SnapshotRequest;
use super::{git, Result};
use gix::bstr::{BStr, ByteSlice};
use gix::objs::tree::EntryKind;
use gix::status::index_worktree::Item;
use gix::status::plumbing::index_as_worktree::{Change as WtChange, EntryStatus};
use std::path::Path;

/// The tree of the working tree `workdir` of `repo` as `git add -A` would stage it, written
/// to the object database, and the files left out for their size (with their sizes).
pub(super) fn write_tree(
    repo: &gix::Repository,
    workdir: &Path,
    request: &SnapshotRequest,
) -> Result<(gix::ObjectId, Vec<(String, u64)>)> {
    let excluded: Vec<Vec<u8>> = request
        .exclude
        .iter()
        .filter_map(|p| {
            let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
            let rel = p.strip_prefix(workdir).ok()?;
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
            submodule_head(workdir, path).unwrap_or(entry.id)
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
    Ok((tree, skipped))
}

/// The commit checked out in the submodule at `path`, if it is initialised.
fn submodule_head(workdir: &Path, path: &BStr) -> Option<gix::ObjectId> {
    let dir = workdir.join(gix::path::from_bstr(path).ok()?);
    let sub = gix::open(dir).ok()?;
    sub.head_id().ok().map(|id| id.detach())
}
