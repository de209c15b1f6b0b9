//! Runs that arrive from elsewhere (`pull`): assembled in a folder of the store beside
//! `runs/`, then moved into place in one rename, so that no reader sees half a run.

use super::error::IoAt;
use super::{Result, Store, StoreError, RECORD_FILE};
use crate::store::record::Record;
use crate::util::atomic::write_atomic;
use std::path::{Path, PathBuf};

/// Where runs are assembled (on the store's file system, so that moving one is a rename).
const INCOMING_DIR: &str = "incoming";
/// Held by the one pull at a time that assembles runs.
const INCOMING_LOCK: &str = "incoming.lock";

/// True when `id` can name a run folder: the characters of the ids this store makes and
/// `_`, not starting with a dot. Ids read from elsewhere (a remote's manifest) are checked
/// before they name a folder.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Store {
    /// Takes the lock that one pull at a time holds on the store (released when the returned
    /// file is dropped), and removes what pulls interrupted before left in the folder where
    /// runs are assembled.
    pub fn lock_incoming(&self) -> Result<std::fs::File> {
        std::fs::create_dir_all(&self.root).at("cannot create the run store", &self.root)?;
        let path = self.root.join(INCOMING_LOCK);
        let file = super::open_lock_file(&path)?;
        file.lock().at("cannot lock", &path)?;
        let _ = std::fs::remove_dir_all(self.root.join(INCOMING_DIR));
        Ok(file)
    }

    /// Removes the folder where runs are assembled, once a pull is done with it.
    pub fn clear_incoming(&self) {
        let _ = std::fs::remove_dir_all(self.root.join(INCOMING_DIR));
    }

    /// A new, empty folder in which to assemble run `id` before [`Store::place`] moves it in.
    pub fn incoming_dir(&self, id: &str) -> Result<PathBuf> {
        if !is_valid_id(id) {
            return Err(StoreError::BadLocation(format!(
                "`{id}` cannot name a run (letters, digits, `-`, `_` and `.` only)"
            )));
        }
        let base = self.root.join(INCOMING_DIR);
        std::fs::create_dir_all(&base).at("cannot create", &base)?;
        let dir = crate::util::atomic::temp_path_for(&base.join(id));
        std::fs::create_dir(&dir).at("cannot create", &dir)?;
        Ok(dir)
    }

    /// Writes `record` into the assembled folder `dir` and moves the folder to the run's
    /// place; refused (and `dir` left for the caller to remove) when the run exists.
    pub fn place(&self, dir: &Path, record: &Record) -> Result<()> {
        let text = super::record_text(record)?;
        write_atomic(&dir.join(RECORD_FILE), text.as_bytes()).map_err(StoreError::Write)?;
        let runs = self.root.join("runs");
        std::fs::create_dir_all(&runs).at("cannot create the run store", &runs)?;
        let to = self.run_dir(&record.id);
        if to.exists() {
            return Err(StoreError::BadLocation(format!(
                "run {} appeared in {} meanwhile",
                record.id,
                self.root.display()
            )));
        }
        std::fs::rename(dir, &to).at("cannot move the pulled run into", &to)?;
        crate::util::atomic::sync_parent(&to).at("cannot sync", &runs)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_elsewhere_cannot_leave_the_store() {
        for bad in [
            "",
            "..",
            ".hidden",
            "a/b",
            "../x",
            "a\\b",
            "a b",
            &"x".repeat(129),
        ] {
            assert!(!is_valid_id(bad), "{bad:?}");
        }
        for good in ["20261205-120000-123456", "run_1", "a.b"] {
            assert!(is_valid_id(good), "{good}");
        }
    }
}
