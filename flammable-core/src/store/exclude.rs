//! Hiding the store from Git: its folder goes into the repository's `info/exclude` (the
//! user's `.gitignore` is never edited).

use super::Store;
use crate::util::atomic::write_atomic;
use std::path::{Path, PathBuf};

/// The folder that holds the shared `info/exclude` of the repository whose `.git` is at
/// `dot_git`: `.git` itself, or, when `.git` is a file (a linked worktree, a submodule), the
/// folder it names, and from there its common folder (`commondir`).
fn common_git_dir(dot_git: &Path) -> Option<PathBuf> {
    if dot_git.is_dir() {
        return Some(dot_git.to_path_buf());
    }
    let text = std::fs::read_to_string(dot_git).ok()?;
    let named = text.lines().find_map(|l| l.strip_prefix("gitdir:"))?.trim();
    let base = dot_git.parent()?;
    let git_dir = base.join(named);
    match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(common) => Some(git_dir.join(common.trim())),
        Err(_) => Some(git_dir),
    }
}

/// `path` without its `.` components and with each `..` taken with the name before it, as
/// the folder it names (`sub/./st` is `sub/st`, `sub/../st` is `st`): the line written to
/// `info/exclude` must match the store folder, and a store outside the working tree must
/// not be mistaken for a folder inside it.
pub(crate) fn lexically_normal(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                let named = matches!(out.components().next_back(), Some(Component::Normal(_)));
                if named {
                    out.pop();
                } else {
                    out.push(part);
                }
            }
            other => out.push(other),
        }
    }
    out
}

impl Store {
    /// Adds the store folder to the `info/exclude` of the repository whose working tree holds
    /// it (the common one, for a linked worktree), once, so that `git status` does not list
    /// it and `git add -A` does not commit it; the user's `.gitignore` is never edited. Best
    /// effort: a read-only repository is left alone.
    pub fn hide_from_git(&self) {
        let store = &lexically_normal(&self.root);
        let Some(top) = store.ancestors().skip(1).find(|d| d.join(".git").exists()) else {
            return;
        };
        let Ok(rel) = store.strip_prefix(top) else {
            return;
        };
        let Some(git) = common_git_dir(&top.join(".git")) else {
            return;
        };
        if rel.as_os_str().is_empty() {
            return;
        }
        let line = format!("/{}/", rel.to_string_lossy().replace('\\', "/"));
        let exclude = git.join("info").join("exclude");
        let current = std::fs::read_to_string(&exclude).unwrap_or_default();
        if current.lines().any(|l| l.trim() == line) {
            return;
        }
        let mut text = current;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&line);
        text.push('\n');
        if std::fs::create_dir_all(git.join("info")).is_ok() {
            let _ = write_atomic(&exclude, text.as_bytes());
        }
    }
}
