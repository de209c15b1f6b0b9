//! The run store: one folder per run under `<store>/runs/<id>/`, each with its RON record.
//!
//! The store knows nothing of candle or of tasks. By default it is `.flammable/` at the root
//! of the enclosing Git repository (or the current folder), hidden from Git through
//! `.git/info/exclude`; `FLAMMABLE_STORE` or `--store` move it.

pub mod followers;
pub mod growing;
pub mod hashes;
pub mod metrics;
pub mod model_summary;
pub mod notes;
pub mod progress;
pub mod record;
pub mod sweeps;

mod error;
mod exclude;
pub(crate) use exclude::lexically_normal;
mod incoming;
mod resolve;
mod trash;

pub use error::StoreError;
pub use incoming::is_valid_id;
pub use resolve::ambiguous_prefix;

pub use trash::{store_line, GcReport, Removal};

use error::IoAt;

/// The store's results: its own error, converted into [`crate::Error`] where a command uses it.
type Result<T, E = StoreError> = std::result::Result<T, E>;
use crate::store::record::{Record, RunStatus, RECORD_VERSION};
use crate::util::atomic::write_atomic;
use std::path::{Path, PathBuf};

/// The record of a run, in its folder.
pub const RECORD_FILE: &str = "record.ron";
/// A run's hyperparameters (RON, usable as `--config`).
pub const HYPERPARAMETERS_FILE: &str = "hyperparameters.ron";
/// A run's checkpoint sets.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// A run's metric points (and `metrics.names`).
pub const METRICS_FILE: &str = "metrics.bin";
/// A copy of what a run printed.
pub const LOG_FILE: &str = "log.txt";
/// Held by the process of a running run.
pub const LOCK_FILE: &str = "lock";
/// Files a task writes through `Run::file`.
pub const FILES_DIR: &str = "files";
/// Held (locked) while a process reads, changes and writes a run's record.
const RECORD_LOCK_FILE: &str = "record.lock";

/// A run whose record cannot be read: its id and why.
pub type Unreadable = (String, StoreError);

/// The environment variable that moves the store.
pub const STORE_ENV: &str = "FLAMMABLE_STORE";

/// A folder of runs.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
    /// Named by `--store` or `$FLAMMABLE_STORE` rather than found at the repository root.
    named: bool,
    /// The experiment whose train runs `latest` counts (a task binary's own); all when `None`.
    experiment: Option<String>,
}

impl Store {
    /// The store at `root` (created on the first run).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Store {
            root: root.into(),
            named: true,
            experiment: None,
        }
    }

    /// The same store, `latest` and `latest~N` counting only the train runs of `experiment`
    /// (as a task binary names its runs: `digits test latest` is never another task's run).
    pub fn scoped_to(mut self, experiment: &str) -> Self {
        self.experiment = Some(experiment.to_string());
        self
    }

    /// An error when the store was named (`--store`, `$FLAMMABLE_STORE`) but does not exist:
    /// for commands that only read one, an empty list would hide a typo. The default store
    /// (`.flammable/` at the repository root) may be absent: there are no runs yet.
    pub fn require_existing(&self) -> Result<()> {
        if self.named && !self.root.is_dir() {
            return Err(StoreError::Missing {
                path: self.root.clone(),
            });
        }
        Ok(())
    }

    /// The store to use: `explicit` (`--store`), else `$FLAMMABLE_STORE`, else `.flammable/`
    /// at the root of the Git repository enclosing the current folder (or the current folder).
    pub fn locate(explicit: Option<&Path>) -> Result<Self> {
        let cwd = std::env::current_dir().at("cannot read the current folder", ".")?;
        Self::locate_near(explicit, &cwd)
    }

    /// [`Store::locate`], the default store being the one of the code in folder `code`:
    /// `.flammable/` at the root of the Git repository enclosing `code` (or in `code`). A
    /// task binary passes its crate's folder, so that it finds its store from anywhere. A
    /// relative `explicit` path is relative to the current folder, where it was typed.
    pub fn locate_near(explicit: Option<&Path>, code: &Path) -> Result<Self> {
        let cwd = std::env::current_dir().at("cannot read the current folder", ".")?;
        let chosen = match explicit {
            Some(p) if p.as_os_str().is_empty() => {
                return Err(StoreError::BadLocation(
                    "--store is empty: name a folder".into(),
                ))
            }
            Some(p) => Some(p.to_path_buf()),
            None => match std::env::var_os(STORE_ENV) {
                Some(p) if p.is_empty() => {
                    return Err(StoreError::BadLocation(format!(
                        "{STORE_ENV} is set but empty: unset it or name a folder"
                    )))
                }
                p => p.map(PathBuf::from),
            },
        };
        let named = chosen.is_some();
        let root = match chosen {
            Some(p) if p.is_absolute() => p,
            Some(p) => cwd.join(p),
            None => {
                let top = code
                    .ancestors()
                    .find(|d| d.join(".git").exists())
                    .unwrap_or(code);
                top.join(".flammable")
            }
        };
        let store = Store {
            root,
            named,
            experiment: None,
        };
        store.hide_from_git();
        Ok(store)
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
    pub fn create(&self, record: Record) -> Result<Record> {
        self.create_locked(record).map(|(r, _)| r)
    }

    /// Like [`Store::create`], also returning the run's lock, taken before the record is
    /// written: while the returned file lives, readers see the run as alive.
    pub fn create_locked(&self, record: Record) -> Result<(Record, Option<std::fs::File>)> {
        self.create_locked_with(record, None)
    }

    /// Like [`Store::create_locked`], writing `hyperparameters` (the text of
    /// `hyperparameters.ron`) into the folder before the record: a folder is a run once its
    /// record is there, and a train run with a record always has what it trains with, so a
    /// process killed in between leaves a run that resumes, not one that never can.
    pub fn create_locked_with(
        &self,
        mut record: Record,
        hyperparameters: Option<&str>,
    ) -> Result<(Record, Option<std::fs::File>)> {
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
                    let lock = std::fs::File::create(self.lock_path(&record.id))
                        .ok()
                        .filter(|f| f.lock().is_ok());
                    if let Some(text) = hyperparameters {
                        write_atomic(&dir.join(HYPERPARAMETERS_FILE), text.as_bytes())
                            .map_err(StoreError::Write)?;
                    }
                    self.write(&record)?;
                    return Ok((record, lock));
                }
                // Another run took this id in the same microsecond: take the next one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => micros += 1,
                Err(e) => return Err(e).at("cannot create run folder", dir),
            }
        }
    }

    /// Writes `record` atomically into its run's folder.
    pub fn write(&self, record: &Record) -> Result<()> {
        let text = record_text(record)?;
        let path = self.run_dir(&record.id).join(RECORD_FILE);
        write_atomic(&path, text.as_bytes()).map_err(StoreError::Write)
    }

    /// Reads the record of run `id`; a running run whose process is gone reads as crashed.
    pub fn read(&self, id: &str) -> Result<Record> {
        let mut record = self.read_as_written(id)?;
        if record.status == RunStatus::Running && !self.is_alive(id) {
            record.status = RunStatus::Crashed;
        }
        Ok(record)
    }

    /// Reads the record of run `id` exactly as written (a crashed run still says running).
    fn read_as_written(&self, id: &str) -> Result<Record> {
        read_record_file(&self.run_dir(id).join(RECORD_FILE))
    }

    /// Takes the lock that serialises changes to the record of run `id` (released when the
    /// returned file is dropped): processes that read, change and write one record (a
    /// trainer, several `test` runs adding their results) never lose each other's changes.
    fn lock_record(&self, id: &str) -> Result<std::fs::File> {
        let path = self.run_dir(id).join(RECORD_LOCK_FILE);
        let file = open_lock_file(&path)?;
        file.lock().at("cannot lock", &path)?;
        Ok(file)
    }

    /// The metric points of run `id` (see [`crate::store::metrics`]).
    pub fn metrics_path(&self, id: &str) -> PathBuf {
        self.run_dir(id).join(METRICS_FILE)
    }

    /// The lock file a running run holds for as long as its process lives.
    pub fn lock_path(&self, id: &str) -> PathBuf {
        self.run_dir(id).join(LOCK_FILE)
    }

    /// True while the process of run `id` holds its lock (a crashed process releases it).
    pub fn is_alive(&self, id: &str) -> bool {
        is_held(&self.lock_path(id))
    }

    /// Reads, changes and writes back the record of run `id`, holding the record's lock, so
    /// that concurrent updates from several processes all land.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut Record)) -> Result<Record> {
        let _lock = self.lock_record(id)?;
        let mut record = self.read_as_written(id)?;
        change(&mut record);
        self.write(&record)?;
        Ok(record)
    }

    /// Every entry of the folder of runs, with a record or not (none when there is no
    /// such folder yet).
    pub(crate) fn run_folder_entries(&self) -> Result<Vec<std::fs::DirEntry>> {
        let runs = self.root.join("runs");
        match std::fs::read_dir(&runs) {
            Ok(entries) => Ok(entries.flatten().collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).at("cannot list", runs),
        }
    }

    /// The ids of all runs, oldest first.
    pub fn ids(&self) -> Result<Vec<String>> {
        let mut ids: Vec<String> = self
            .run_folder_entries()?
            .into_iter()
            .filter(|e| e.path().join(RECORD_FILE).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The records that can be read, oldest first (unreadable ones are skipped).
    pub fn records(&self) -> Result<Vec<Record>> {
        Ok(self.records_and_errors()?.0)
    }

    /// The records that can be read, oldest first, and the ids of those that cannot, with why.
    pub fn records_and_errors(&self) -> Result<(Vec<Record>, Vec<Unreadable>)> {
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        for id in self.ids()? {
            match self.read(&id) {
                Ok(r) => ok.push(r),
                Err(e) => bad.push((id, e)),
            }
        }
        Ok((ok, bad))
    }
}

/// True while some process holds the lock file `path` (a process that dies releases it, and
/// so does a host that dies, once the NFS server's lease on its locks ends).
///
/// The holders take the lock exclusively on a file opened for writing; this asks for it
/// shared, on a file opened for reading (which needs no write permission): on a local
/// file system both are `flock`, and on NFS, where the client turns `flock` into POSIX
/// locks on the server (seen by every host), a shared lock needs only read access while
/// an exclusive one needs write access. Only "would block" counts as held: any other
/// error (a file system without locks) is no proof that a process lives. A process never
/// asks this of a lock it holds: with POSIX locks, closing any descriptor of the file
/// would release its own lock.
pub(crate) fn is_held(path: &Path) -> bool {
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock))
}

/// Opens (creating it if need be, never truncating it) the lock file at `path`, for
/// reading and writing: on NFS an exclusive lock needs a file opened for writing and a
/// shared one a file opened for reading.
pub(crate) fn open_lock_file(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .at("cannot open", path)
}

/// The text of a record file.
pub(crate) fn record_text(record: &Record) -> Result<String> {
    ron::ser::to_string_pretty(record, ron::ser::PrettyConfig::default()).map_err(|e| {
        StoreError::Encode {
            id: record.id.clone(),
            message: e.to_string(),
        }
    })
}

/// Reads the record file at `path` exactly as written.
fn read_record_file(path: &Path) -> Result<Record> {
    let path = path.to_path_buf();
    let text = std::fs::read_to_string(&path).at("cannot read the record", &path)?;
    let record: Record = ron::from_str(&text).map_err(|e| StoreError::Corrupt {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if record.version > RECORD_VERSION {
        return Err(StoreError::NewerVersion {
            path,
            version: record.version,
        });
    }
    Ok(record)
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

/// A fresh id in the form of a run id (`20261130-074512-k3vd`), for things that group runs
/// (a sweep).
pub fn fresh_id() -> String {
    let now = std::time::SystemTime::now();
    let stamp = compact_time(&humantime::format_rfc3339_seconds(now).to_string());
    let micros = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_micros())
        .unwrap_or(0);
    format!("{stamp}-{}", sortable_micros(micros))
}

/// The current time, RFC 3339 in UTC to the second.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::RunKind;

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
        assert!(matches!(store.resolve("", all), Err(StoreError::EmptyName)));
        // Both ids share the date: the prefix is ambiguous, and the error lists both.
        let err = store.resolve(&a.id[..8], all).unwrap_err().to_string();
        assert!(err.contains(&a.id) && err.contains(&b.id), "{err}");
    }

    #[test]
    fn a_store_inside_a_repository_is_hidden_from_git() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".git/info")).unwrap();
        let store = Store::locate(Some(&dir.path().join("runs/here"))).unwrap();
        assert_eq!(store.root(), dir.path().join("runs/here"));
        Store::locate(Some(&dir.path().join("runs/here"))).unwrap();
        let exclude = std::fs::read_to_string(dir.path().join(".git/info/exclude")).unwrap();
        assert_eq!(exclude, "/runs/here/\n", "added once");
        // Named through `.` and `..`: the folder's own line, once; outside the tree: none.
        let sub = dir.path().join("sub");
        std::fs::create_dir_all(&sub).unwrap();
        Store::locate(Some(&sub.join("./st"))).unwrap();
        Store::locate(Some(&sub.join("../runs/./here"))).unwrap();
        let outside = tempfile::tempdir().unwrap();
        let name = outside.path().file_name().unwrap();
        Store::locate(Some(&dir.path().join("..").join(name))).unwrap();
        let exclude = std::fs::read_to_string(dir.path().join(".git/info/exclude")).unwrap();
        assert_eq!(exclude, "/runs/here/\n/sub/st/\n");
    }

    #[test]
    fn a_running_run_without_a_live_process_reads_as_crashed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let (alive, lock) = store
            .create_locked(record("x", RunKind::Train, RunStatus::Running))
            .unwrap();
        assert_eq!(store.read(&alive.id).unwrap().status, RunStatus::Running);
        drop(lock);
        assert_eq!(store.read(&alive.id).unwrap().status, RunStatus::Crashed);
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
