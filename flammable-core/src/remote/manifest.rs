//! A run on a remote: its manifest (`runs/<id>.json`), written after every file it names, so
//! that a reader sees a whole run or none. Files are blobs named by their SHA-256.

use crate::error::{Error, Result};
use crate::store::hashes::HASHES_FILE;
use crate::store::record::Record;
use crate::store::{Store, LOCK_FILE, RECORD_FILE};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Component, Path};

/// The manifest format this build writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;

/// One run on a remote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The run's id.
    pub id: String,
    /// Its record, as its store had it.
    pub record: Record,
    /// Its hyperparameters flattened (`lr`, `epochs`), for listings and filters.
    #[serde(default)]
    pub hyper: BTreeMap<String, String>,
    /// Its files, by path relative to the run's folder (`/`-separated), sorted.
    pub files: Vec<FileEntry>,
    /// Files of the run the remote does not hold (checkpoints not chosen), and why.
    #[serde(default)]
    pub left_out: Vec<LeftOut>,
    /// The run's code, as a Git bundle.
    pub code: Option<Code>,
    /// Who pushed it, from where, when.
    pub pushed: Pushed,
}

/// A file of a run, stored as blob `sha256`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the run's folder, `/`-separated.
    pub path: String,
    /// Lowercase hex.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// A file of a run that its push did not send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftOut {
    /// Relative to the run's folder.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Why (`checkpoint not chosen: --checkpoints best`).
    pub why: String,
}

/// The code of a run: a Git bundle (a blob) holding its refs and every commit they need.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Code {
    /// The bundle's blob.
    pub bundle: String,
    /// Its bytes.
    pub size: u64,
    /// The run's refs (`refs/flammable/runs/<id>`, its resumes') and their commits.
    pub refs: Vec<(String, String)>,
}

/// Where a manifest came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pushed {
    /// `user@host`.
    pub by: String,
    /// The host.
    pub host: String,
    /// The store, on that host.
    pub store: String,
    /// RFC 3339.
    pub at: String,
    /// The version of Flammable that pushed it.
    pub flammable: String,
}

/// A run's files that travel (path, size) and those that do not.
pub type RunFiles = (Vec<(String, u64)>, Vec<LeftOut>);

/// The files of run `id` in `store` that travel, with their sizes, sorted by path; and those
/// that do not, with why: its record (the manifest holds it), its locks (held by live
/// processes), temporary files, and what is not a plain file with a UTF-8 name (symbolic
/// links, pipes).
pub fn run_files(store: &Store, id: &str) -> Result<RunFiles> {
    let root = store.run_dir(id);
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("cannot list", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("cannot list", &dir, e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = entry
                .file_type()
                .map_err(|e| Error::io("cannot read", &path, e))?;
            let top = dir == root;
            if top && name == HASHES_FILE {
                // This machine's cache of the files' hashes, whatever it has become.
                continue;
            }
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            if top && (name == RECORD_FILE || name == LOCK_FILE || name == "record.lock") {
                continue;
            }
            let rel_path = path.strip_prefix(&root).unwrap_or(&path);
            let shown = rel_path.to_string_lossy().into_owned();
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            let why = if kind.is_symlink() {
                Some("a symbolic link")
            } else if !kind.is_file() {
                Some("not a plain file")
            } else if name.starts_with('.') && name.ends_with(".tmp") {
                Some("a temporary file")
            } else if !top && dir.ends_with("followers") && name.ends_with(".lock") {
                Some("a follower's lock")
            } else {
                None
            };
            match (why, portable(rel_path)) {
                (None, Some(rel)) => out.push((rel, size)),
                (why, _) => skipped.push(LeftOut {
                    path: shown,
                    size,
                    why: why.unwrap_or("a name that is not UTF-8").to_string(),
                }),
            }
        }
    }
    out.sort();
    Ok((out, skipped))
}

/// A relative path as a manifest writes it (`/`-separated), when every part is plain UTF-8.
fn portable(rel: &Path) -> Option<String> {
    let parts: Option<Vec<&str>> = rel
        .components()
        .map(|c| match c {
            Component::Normal(p) => p.to_str(),
            _ => None,
        })
        .collect();
    parts.map(|p| p.join("/"))
}

/// A path read from a manifest, checked to stay inside the run's folder: relative, plain
/// parts, no `.`/`..`, no hidden temporary names, no record, lock or cache of hashes.
pub fn checked_path(path: &str) -> Result<&str> {
    let ok = !path.is_empty()
        && path.len() <= 4096
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != ".." && !p.contains(['\\', '\0']))
        && path != RECORD_FILE
        && path != LOCK_FILE
        && path != HASHES_FILE
        && !path.starts_with(&format!("{HASHES_FILE}/"));
    if ok {
        Ok(path)
    } else {
        Err(Error::msg(format!(
            "the remote names a file `{}` that cannot be part of a run: refusing it",
            path.escape_debug()
        )))
    }
}

pub use crate::store::hashes::{hex, is_sha256};

/// The SHA-256 of the file at `path`, as lowercase hex.
pub fn hash_file(path: &Path) -> Result<String> {
    crate::store::hashes::hash_file(path).map_err(|e| Error::io("cannot read", path, e))
}

/// `record` with what differs between two copies of one run on two machines left out: where
/// each keeps its code, and where a pulled one came from.
pub fn comparable(record: &Record) -> Record {
    let mut r = record.clone();
    r.origin = None;
    if let Some(s) = r.snapshot.as_mut() {
        s.git_dir = Default::default();
    }
    for s in &mut r.resumed_with {
        s.git_dir = Default::default();
    }
    r
}

/// The SHA-256 of [`comparable`]`(record)` in JSON: equal for two copies of one run.
pub fn record_hash(record: &Record) -> String {
    let json = serde_json::to_vec(&comparable(record)).unwrap_or_default();
    hex(&Sha256::digest(&json))
}

/// `user@host` of this process, and the host.
pub fn pusher() -> (String, String) {
    (crate::util::host::user_at_host(), crate::util::host::name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_from_a_remote_stay_in_the_run() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "record.ron",
            "lock",
            "a\\b",
            "./a",
        ] {
            assert!(checked_path(bad).is_err(), "{bad}");
        }
        for good in [
            "metrics.bin",
            "files/out/a.png",
            "checkpoints/best.safetensors",
        ] {
            assert!(checked_path(good).is_ok(), "{good}");
        }
        assert!(is_sha256(&"ab".repeat(32)));
        assert!(!is_sha256(&"AB".repeat(32)));
        assert!(!is_sha256("../../etc"));
    }
}
