//! The run store: one folder per run under `<store>/runs/<id>/`, each with its RON record.
//!
//! The store knows nothing of candle or of tasks. By default it is `.flammable/` at the root
//! of the enclosing Git repository (or the current folder), hidden from Git through
//! `.git/info/exclude`; `FLAMMABLE_STORE` or `--store` move it.

use crate::atomic::write_atomic;
use crate::error::{Error, IoContext, Result};
use crate::record::{Record, RunKind, RunStatus, RECORD_VERSION};
use std::path::{Path, PathBuf};

/// The environment variable that moves the store.
pub const STORE_ENV: &str = "FLAMMABLE_STORE";

/// A folder of runs.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The store at `root` (created on the first run).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    /// The store to use: `explicit` (`--store`), else `$FLAMMABLE_STORE`, else `.flammable/`
    /// at the root of the Git repository enclosing the current folder (or the current folder).
    pub fn locate(explicit: Option<&Path>) -> Result<Self> {
        if let Some(p) = explicit {
            return Ok(Store::at(p));
        }
        if let Some(p) = std::env::var_os(STORE_ENV).filter(|p| !p.is_empty()) {
            return Ok(Store::at(PathBuf::from(p)));
        }
        let cwd = std::env::current_dir().at("cannot read", ".")?;
        let top = cwd
            .ancestors()
            .find(|d| d.join(".git").exists())
            .unwrap_or(&cwd)
            .to_path_buf();
        hide_from_git(&top);
        Ok(Store::at(top.join(".flammable")))
    }

    /// The store's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of run `id`.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.root.join("runs").join(id)
    }

    /// Makes a new run folder with a fresh id and writes `record` (its id replaced) into it.
    pub fn create(&self, mut record: Record) -> Result<Record> {
        let runs = self.root.join("runs");
        std::fs::create_dir_all(&runs).at("cannot create the run store", &runs)?;
        let now = std::time::SystemTime::now();
        record.started = humantime::format_rfc3339_seconds(now).to_string();
        let stamp = compact_time(&record.started);
        let mut micros = now
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_micros())
            .unwrap_or(0);
        loop {
            let id = format!("{stamp}-{}", sortable_micros(micros));
            let dir = runs.join(&id);
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    record.id = id;
                    self.write(&record)?;
                    return Ok(record);
                }
                // Another run took this id in the same microsecond: take the next one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => micros += 1,
                Err(e) => return Err(Error::io("cannot create run folder", dir, e)),
            }
        }
    }

    /// Writes `record` atomically into its run's folder.
    pub fn write(&self, record: &Record) -> Result<()> {
        let text = ron::ser::to_string_pretty(record, ron::ser::PrettyConfig::default())
            .map_err(|e| Error::msg(format!("cannot write a record as RON: {e}")))?;
        write_atomic(
            &self.run_dir(&record.id).join("record.ron"),
            text.as_bytes(),
        )
    }

    /// Reads the record of run `id`.
    pub fn read(&self, id: &str) -> Result<Record> {
        let path = self.run_dir(id).join("record.ron");
        let text = std::fs::read_to_string(&path).at("cannot read the record", &path)?;
        let record: Record = ron::from_str(&text).map_err(|e| Error::Ron {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if record.version > RECORD_VERSION {
            return Err(Error::msg(format!(
                "`{}` was written by a newer flammable (record version {}); upgrade to read it",
                path.display(),
                record.version
            )));
        }
        Ok(record)
    }

    /// Reads, changes and writes back the record of run `id`.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut Record)) -> Result<Record> {
        let mut record = self.read(id)?;
        change(&mut record);
        self.write(&record)?;
        Ok(record)
    }

    /// The ids of all runs, oldest first.
    pub fn ids(&self) -> Result<Vec<String>> {
        let runs = self.root.join("runs");
        let entries = match std::fs::read_dir(&runs) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("cannot list", runs, e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("record.ron").exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The records that can be read, oldest first (unreadable ones are skipped).
    pub fn records(&self) -> Result<Vec<Record>> {
        Ok(self
            .ids()?
            .iter()
            .filter_map(|id| self.read(id).ok())
            .collect())
    }

    /// The newest finished run of `experiment` and `kind`.
    pub fn latest(&self, experiment: &str, kind: RunKind) -> Result<Option<Record>> {
        Ok(self.records()?.into_iter().rev().find(|r| {
            r.experiment == experiment && r.kind == kind && r.status == RunStatus::Finished
        }))
    }

    /// The run `spec` names: a full id, a unique prefix of one, `latest` or `latest~N`
    /// (counted among `candidates`' runs, newest first).
    pub fn resolve(&self, spec: &str, candidates: impl Fn(&Record) -> bool) -> Result<Record> {
        let records: Vec<Record> = self
            .records()?
            .into_iter()
            .filter(|r| candidates(r))
            .collect();
        if let Some(back) = spec.strip_prefix("latest") {
            let n: usize = match back.strip_prefix('~') {
                None if back.is_empty() => 0,
                Some(n) => n.parse().map_err(|_| {
                    Error::usage(format!("`{spec}`: write latest~N with a number N"))
                })?,
                None => return Err(Error::usage(format!("no run `{spec}`"))),
            };
            return records
                .into_iter()
                .rev()
                .nth(n)
                .ok_or_else(|| Error::usage(format!("no run `{spec}`: there are fewer runs")));
        }
        if let Some(r) = records.iter().find(|r| r.id == spec) {
            return Ok(r.clone());
        }
        let matches: Vec<&Record> = records.iter().filter(|r| r.id.starts_with(spec)).collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::usage(format!(
                "no run `{spec}` in {}",
                self.root.display()
            ))),
            many => Err(Error::usage(format!(
                "run prefix `{spec}` fits {} runs ({}); type more of it",
                many.len(),
                many.iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

/// `2026-11-27T05:48:45Z` → `20261127-054845`.
fn compact_time(rfc3339: &str) -> String {
    let digits: String = rfc3339
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    let (date, time) = digits.split_at(digits.len().min(8));
    format!("{date}-{time}")
}

/// Microseconds (< 2^20) as four base-32 digits whose ASCII order is their numeric order,
/// so that ids sort by start time within a second.
fn sortable_micros(micros: u32) -> String {
    const DIGITS: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    (0..4)
        .rev()
        .map(|i| DIGITS[((micros >> (5 * i)) & 31) as usize] as char)
        .collect()
}

/// The current time, RFC 3339 in UTC to the second.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Adds `.flammable/` to `.git/info/exclude` of the repository at `top`, once. Best effort:
/// a repository whose `.git` is a file (a linked worktree) or read-only is left alone.
fn hide_from_git(top: &Path) {
    let info = top.join(".git").join("info");
    if !top.join(".git").is_dir() {
        return;
    }
    let exclude = info.join("exclude");
    let current = std::fs::read_to_string(&exclude).unwrap_or_default();
    if current
        .lines()
        .any(|l| l.trim() == "/.flammable/" || l.trim() == ".flammable/")
    {
        return;
    }
    let mut text = current;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("/.flammable/\n");
    let _ = std::fs::create_dir_all(&info).and_then(|()| std::fs::write(&exclude, text));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(experiment: &str, kind: RunKind, status: RunStatus) -> Record {
        Record {
            status,
            ..Record::new(experiment, kind, 1)
        }
    }

    #[test]
    fn create_list_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let a = store
            .create(record("x", RunKind::Train, RunStatus::Finished))
            .unwrap();
        let b = store
            .create(record("x", RunKind::Train, RunStatus::Running))
            .unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(store.ids().unwrap().len(), 2);
        assert_eq!(store.latest("x", RunKind::Train).unwrap().unwrap().id, a.id);
        assert!(store.latest("y", RunKind::Train).unwrap().is_none());
        let all = |_: &Record| true;
        let newest = if a.id > b.id { &a.id } else { &b.id };
        assert_eq!(&store.resolve("latest", all).unwrap().id, newest);
        assert_eq!(store.resolve(&a.id, all).unwrap().id, a.id);
        assert!(store.resolve("latest~5", all).is_err());
        assert!(store.resolve("nope", all).is_err());
        // Both ids share the date: the prefix is ambiguous, and the error lists both.
        let err = store.resolve(&a.id[..8], all).unwrap_err().to_string();
        assert!(err.contains(&a.id) && err.contains(&b.id), "{err}");
    }

    #[test]
    fn update_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let a = store
            .create(record("x", RunKind::Train, RunStatus::Running))
            .unwrap();
        store
            .update(&a.id, |r| r.status = RunStatus::Failed)
            .unwrap();
        assert_eq!(store.read(&a.id).unwrap().status, RunStatus::Failed);
    }

    #[test]
    fn ids_sort_by_time() {
        assert_eq!(compact_time("2026-11-27T05:48:45Z"), "20261127-054845");
        let ids: Vec<String> = [0, 1, 31, 32, 999_999]
            .into_iter()
            .map(sortable_micros)
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert_eq!(ids[0], "0000");
    }

    #[test]
    fn runs_created_in_a_row_list_in_that_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let made: Vec<String> = (0..20)
            .map(|_| {
                store
                    .create(record("x", RunKind::Train, RunStatus::Running))
                    .unwrap()
                    .id
            })
            .collect();
        assert_eq!(store.ids().unwrap(), made);
    }
}
