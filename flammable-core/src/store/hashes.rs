//! The SHA-256 of a run's files, remembered from when they were written, pushed or pulled,
//! so that pushing a run reads a large file only when it changed since.
//!
//! Each run keeps them in `<run>/.hashes.json`, a cache: an entry counts only while the
//! file's inode, size, modification time and change time are those it was hashed with
//! (rewriting a file changes its modification time; replacing it, even by a file of the same
//! size and time on a reused inode, changes its change time), and a cache that is missing,
//! damaged or written by two processes at once costs a new hash. A hash taken from here is
//! checked against the bytes as they are sent: one that no longer matches fails that push
//! and clears the run's cache ([`forget`]), so the next push hashes again.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::Metadata;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// The cache's file in a run's folder (not part of what a run pushes).
pub const HASHES_FILE: &str = ".hashes.json";

/// What identifies one version of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Hash)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl Stamp {
    fn of(meta: &Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
            ctime_ns: meta
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.ctime_nsec()),
        }
    }
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Entry {
    stamp: Stamp,
    sha256: String,
}

/// The remembered hashes of one run's files, by path relative to the run's folder
/// (`/`-separated).
#[derive(Debug, Default)]
pub struct KnownHashes {
    run_dir: PathBuf,
    entries: BTreeMap<String, Entry>,
    /// The entries' hashes by stamp: another name of the same file (a checkpoint's `latest`
    /// and `best` are links) is found at once.
    by_stamp: std::collections::HashMap<Stamp, String>,
    changed: bool,
}

impl KnownHashes {
    /// The hashes remembered for the run in `run_dir` (none when its cache is missing or
    /// cannot be read).
    pub fn load(run_dir: &Path) -> KnownHashes {
        let path = run_dir.join(HASHES_FILE);
        // A plain file of a sane size only: anything else is no cache of ours.
        let sane = std::fs::symlink_metadata(&path)
            .is_ok_and(|m| m.is_file() && m.len() <= MAX_CACHE_BYTES);
        let entries: BTreeMap<String, Entry> = sane
            .then(|| std::fs::read(&path).ok())
            .flatten()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let by_stamp = entries
            .values()
            .filter(|e| is_sha256(&e.sha256))
            .map(|e| (e.stamp, e.sha256.clone()))
            .collect();
        KnownHashes {
            run_dir: run_dir.to_path_buf(),
            entries,
            by_stamp,
            changed: false,
        }
    }

    /// The hash of file `rel` as it is now (`meta` its metadata), if remembered.
    pub fn get(&self, rel: &str, meta: &Metadata) -> Option<&str> {
        self.entries
            .get(rel)
            .filter(|e| e.stamp == Stamp::of(meta) && is_sha256(&e.sha256))
            .map(|e| e.sha256.as_str())
    }

    /// Remembers that file `rel`, as `meta` describes it, hashes to `sha256`.
    pub fn insert(&mut self, rel: &str, meta: &Metadata, sha256: &str) {
        let entry = Entry {
            stamp: Stamp::of(meta),
            sha256: sha256.to_string(),
        };
        let same = self
            .entries
            .get(rel)
            .is_some_and(|e| e.stamp == entry.stamp && e.sha256 == entry.sha256);
        if !same {
            self.by_stamp.insert(entry.stamp, entry.sha256.clone());
            self.entries.insert(rel.to_string(), entry);
            self.changed = true;
        }
    }

    /// The hash of file `rel` of the run, and the file's metadata when it had that hash:
    /// remembered, else read from the file and remembered. A file that changed while it was
    /// read is not remembered (its metadata then no longer match).
    pub fn hash(&mut self, rel: &str) -> io::Result<(String, Metadata)> {
        let path = self.run_dir.join(rel);
        let before = std::fs::metadata(&path)?;
        if let Some(sha) = self.get(rel, &before) {
            return Ok((sha.to_string(), before));
        }
        // Another name of the same file (a checkpoint's `latest` and `best` are links).
        if let Some(sha) = self.by_stamp.get(&Stamp::of(&before)).cloned() {
            self.insert(rel, &before, &sha);
            return Ok((sha, before));
        }
        let sha = hash_file(&path)?;
        let after = std::fs::metadata(&path)?;
        if Stamp::of(&after) == Stamp::of(&before) {
            self.insert(rel, &after, &sha);
        }
        Ok((sha, before))
    }

    /// Writes the cache back when it changed, without the entries of files that are gone.
    /// A failure is not an error of the caller's: the next push hashes again.
    pub fn save(&mut self) {
        if !self.changed {
            return;
        }
        let dir = &self.run_dir;
        self.entries.retain(|rel, _| dir.join(rel).exists());
        let path = dir.join(HASHES_FILE);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            // Not ours to replace.
            return;
        }
        if let Ok(json) = serde_json::to_vec(&self.entries) {
            let tmp = crate::util::atomic::temp_path_for(&path);
            // No fsync: a cache lost in a crash is hashed again.
            if std::fs::write(&tmp, json).is_err() || std::fs::rename(&tmp, &path).is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
        }
        self.changed = false;
    }
}

/// The largest cache read: far more than the entries of any run's files.
const MAX_CACHE_BYTES: u64 = 64 << 20;

/// Clears the remembered hashes of the run in `run_dir`: one of them proved wrong.
pub fn forget(run_dir: &Path) {
    let path = run_dir.join(HASHES_FILE);
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() || m.is_symlink()) {
        let _ = std::fs::remove_file(path);
    }
}

/// Hashes the files `rels` of the run in `run_dir` (paths relative to it) and remembers
/// them, for the files a process has just written; a file that cannot be read is left out.
/// The caller's own links and unlinks change a file's change time and nothing else: an
/// entry that differs from its file by that alone is taken again, not hashed again.
pub fn remember(run_dir: &Path, rels: &[String]) {
    let mut known = KnownHashes::load(run_dir);
    for rel in rels {
        let Ok(meta) = std::fs::metadata(run_dir.join(rel)) else {
            continue;
        };
        let now = Stamp::of(&meta);
        let relinked = known
            .entries
            .values()
            .find(|e| {
                Stamp {
                    ctime_ns: now.ctime_ns,
                    ..e.stamp
                } == now
                    && is_sha256(&e.sha256)
            })
            .map(|e| e.sha256.clone());
        match relinked {
            Some(sha) => known.insert(rel, &meta, &sha),
            None => {
                let _ = known.hash(rel);
            }
        }
    }
    known.save();
}

/// The SHA-256 of the file at `path`, as lowercase hex.
pub fn hash_file(path: &Path) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hex(&hasher.finalize()))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// True when `text` is 64 lowercase hex digits.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha_of(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    #[test]
    fn a_remembered_hash_counts_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("checkpoints")).unwrap();
        let rel = "checkpoints/best.safetensors".to_string();
        let path = dir.path().join(&rel);
        std::fs::write(&path, b"weights").unwrap();
        remember(dir.path(), std::slice::from_ref(&rel));
        let known = KnownHashes::load(dir.path());
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(known.get(&rel, &meta), Some(sha_of(b"weights").as_str()));

        // Rewritten in place (same inode, same size): the modification time tells.
        std::fs::write(&path, b"WEIGHTS").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(known.get(&rel, &meta), None);
        let mut known = KnownHashes::load(dir.path());
        assert_eq!(known.hash(&rel).unwrap().0, sha_of(b"WEIGHTS"));

        // Replaced by a rename with the same size and time: the inode tells.
        let other = dir.path().join("other");
        std::fs::write(&other, b"wEIGHTS").unwrap();
        let f = std::fs::File::options().write(true).open(&other).unwrap();
        f.set_modified(meta.modified().unwrap()).unwrap();
        drop(f);
        std::fs::rename(&other, &path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(known.get(&rel, &meta), None);
    }

    #[test]
    fn a_file_replaced_by_one_of_the_same_size_and_time_is_hashed_again() {
        // What `tar -x` of an archive with fixed times does: unlink, create (the file system
        // may give the new file the freed inode), set the modification time.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.txt");
        std::fs::write(&path, b"version A").unwrap();
        remember(dir.path(), &["w.txt".to_string()]);
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"version B").unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(modified).unwrap();
        drop(f);
        let mut known = KnownHashes::load(dir.path());
        assert_eq!(known.hash("w.txt").unwrap().0, sha_of(b"version B"));
    }

    #[test]
    fn a_damaged_cache_costs_a_new_hash_not_a_wrong_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("log.txt"), b"epoch 1").unwrap();
        std::fs::write(dir.path().join(HASHES_FILE), b"{\"log.txt\": garbage").unwrap();
        let mut known = KnownHashes::load(dir.path());
        assert_eq!(known.hash("log.txt").unwrap().0, sha_of(b"epoch 1"));
        known.save();
        let meta = std::fs::metadata(dir.path().join("log.txt")).unwrap();
        let again = KnownHashes::load(dir.path());
        assert_eq!(
            again.get("log.txt", &meta),
            Some(sha_of(b"epoch 1").as_str())
        );
        // An entry whose hash is not one is not believed.
        let text = std::fs::read_to_string(dir.path().join(HASHES_FILE)).unwrap();
        std::fs::write(
            dir.path().join(HASHES_FILE),
            text.replace(&sha_of(b"epoch 1"), "not-a-hash"),
        )
        .unwrap();
        assert_eq!(KnownHashes::load(dir.path()).get("log.txt", &meta), None);
    }

    #[test]
    fn entries_of_files_that_are_gone_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a", "b"] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        remember(dir.path(), &["a".to_string(), "b".to_string()]);
        std::fs::remove_file(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("c"), "c").unwrap();
        remember(dir.path(), &["c".to_string()]);
        let text = std::fs::read_to_string(dir.path().join(HASHES_FILE)).unwrap();
        assert!(!text.contains("\"a\"") && text.contains("\"b\"") && text.contains("\"c\""));
    }
}
