//! The store's trash: `rm` moves run folders into it, `gc` removes them for good with their
//! Git refs, and also the refs of runs whose folders were deleted by hand.

use super::error::IoAt;
use super::{Result, Store, StoreError, RECORD_FILE};
use crate::snapshot;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The trash folder of a store.
const TRASH_DIR: &str = "trash";
/// How long `rm --force` waits for a stopped run to write its checkpoint and exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// What `rm` did to one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removal {
    /// The run's id.
    pub id: String,
    /// True when the run was still running and was stopped first (`--force`).
    pub stopped: bool,
}

/// What `gc` removed (or would remove, on a dry run).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Trashed runs removed with their refs.
    pub runs: Vec<String>,
    /// Refs of runs whose folders no longer exist (deleted by hand), removed.
    pub orphan_refs: Vec<String>,
    /// Trashed runs of `runs` that are in the store again: their copy went, their refs stay.
    pub kept_refs: Vec<String>,
    /// Trashed runs of `runs` that another store of this machine holds too (a copy of the
    /// store, or the store the run was pulled from): their refs stay, for that store, named.
    pub shared_refs: Vec<(String, PathBuf)>,
    /// Folders of runs that never got a record (their process stopped between making the
    /// folder and writing it: killed, or a full disk), removed: no other command names them.
    pub unrecorded: Vec<String>,
    /// What could not be done, one line each; the rest went ahead.
    pub warnings: Vec<String>,
}

/// The line a snapshot's commit message carries to name the store of its run: `gc` removes
/// a ref whose run folder is gone only when the ref's commit names this store, so that runs
/// of another store in the same repository are never touched.
pub fn store_line(root: &Path) -> String {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    format!("{STORE_LINE_PREFIX}{}", root.display())
}

/// What begins a [`store_line`].
const STORE_LINE_PREFIX: &str = "store: ";

impl Store {
    /// The store's trash folder.
    fn trash_dir(&self) -> PathBuf {
        self.root.join(TRASH_DIR)
    }

    /// True when run `id` is in the trash (removed, not yet collected by `gc`).
    pub fn is_trashed(&self, id: &str) -> bool {
        self.trash_dir().join(id).exists()
    }

    /// Moves run `spec` (an id, a unique prefix, `latest`…; a full id also when its record is
    /// unreadable) into the trash. A run that is still running is refused unless `force`,
    /// which stops it first (SIGTERM: a training writes its checkpoint and exits) and waits
    /// for its process to end.
    pub fn remove(&self, spec: &str, force: bool) -> Result<Removal> {
        let id = match self.resolve(spec, |_| true) {
            Ok(r) => r.id,
            // A corrupt record must not make its run impossible to remove.
            Err(_) if is_plain_id(spec) && self.run_dir(spec).is_dir() => spec.to_string(),
            Err(e) => return Err(e),
        };
        let mut stopped = false;
        if self.is_alive(&id) {
            if !force {
                return Err(StoreError::Live { id });
            }
            self.stop(&id)?;
            stopped = true;
        }
        let trash = self.trash_dir();
        std::fs::create_dir_all(&trash).at("cannot create", &trash)?;
        let from = self.run_dir(&id);
        // One rename, whose failure says what happened: no check before it, which another
        // removal of the same run could overtake.
        match std::fs::rename(&from, trash.join(&id)) {
            Ok(()) => Ok(Removal { id, stopped }),
            // Moved to the trash by someone else a moment ago.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(if self.is_trashed(&id) {
                StoreError::InTrash { id }
            } else {
                StoreError::NotFound {
                    spec: id,
                    store: self.root.clone(),
                }
            }),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::DirectoryNotEmpty | std::io::ErrorKind::AlreadyExists
                ) =>
            {
                Err(StoreError::Trash(format!(
                    "run {id} is in the trash already (an older copy): `flammable gc` removes that copy (and keeps this run's code), then remove it"
                )))
            }
            Err(e) => Err(e).at("cannot move to the trash", &from),
        }
    }

    /// The ids of the trashed runs (removed, not yet collected by `gc`), oldest first.
    pub fn trashed(&self) -> Result<Vec<String>> {
        let trash = self.trash_dir();
        let mut ids: Vec<String> = match std::fs::read_dir(&trash) {
            Ok(entries) => entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).at("cannot list", trash),
        };
        ids.sort();
        Ok(ids)
    }

    /// The record of trashed run `id`, as written.
    pub fn read_trashed(&self, id: &str) -> Result<super::record::Record> {
        super::read_record_file(&self.trash_dir().join(id).join(RECORD_FILE))
    }

    /// The one trashed run whose id is `spec` or starts with it, if there is one.
    pub(super) fn trashed_fitting(&self, spec: &str) -> Option<String> {
        let trashed = self.trashed().ok()?;
        if trashed.iter().any(|t| t == spec) {
            return Some(spec.to_string());
        }
        let mut fits = trashed.into_iter().filter(|t| t.starts_with(spec));
        match (fits.next(), fits.next()) {
            (Some(one), None) if !spec.is_empty() => Some(one),
            _ => None,
        }
    }

    /// The id of trashed run `spec` (its id, or a prefix that fits one trashed run); the
    /// error says why it names none.
    pub fn resolve_trashed(&self, spec: &str) -> Result<String> {
        if spec.trim().is_empty() {
            return Err(StoreError::EmptyName);
        }
        let trashed = self.trashed()?;
        let id = if trashed.iter().any(|t| t == spec) {
            spec.to_string()
        } else {
            let fits: Vec<String> = trashed
                .into_iter()
                .filter(|t| t.starts_with(spec))
                .collect();
            match fits.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(StoreError::Trash(format!(
                        "no run `{spec}` in the trash of {} (`gc` empties it for good)",
                        self.root.display()
                    )))
                }
                _ => {
                    return Err(StoreError::Trash(super::ambiguous_prefix(
                        spec,
                        &fits,
                        "trashed runs",
                    )))
                }
            }
        };
        Ok(id)
    }

    /// Refuses to restore trashed run `id` when a run of that id is in the store again
    /// (pulled since it was removed).
    pub fn check_restorable(&self, id: &str) -> Result<()> {
        if self.run_dir(id).exists() {
            return Err(StoreError::Trash(format!(
                "run {id} is in the store again (pulled since it was removed): `gc` removes the trashed copy"
            )));
        }
        Ok(())
    }

    /// Brings trashed run `id` back into the store, as it was. Refused when a run of that id
    /// is in the store again (pulled since).
    pub fn restore(&self, id: &str) -> Result<()> {
        self.check_restorable(id)?;
        let to = self.run_dir(id);
        let from = self.trash_dir().join(id);
        match std::fs::rename(&from, &to) {
            Ok(()) => Ok(()),
            // Restored by someone else a moment ago.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::Trash(format!(
                "no run `{id}` in the trash of {} (restored already?)",
                self.root.display()
            ))),
            Err(e) => Err(e).at("cannot move out of the trash", &from),
        }
    }

    /// Asks the process of live run `id` to stop (SIGTERM) and waits until its lock is
    /// released.
    fn stop(&self, id: &str) -> Result<()> {
        let record = self.read_as_written(id)?;
        let pid = record.pid;
        // A pid is a process of the host that recorded it: on a store shared by several
        // hosts, the same number here is another process.
        let host = record.environment.host;
        if !crate::util::host::is_this_host(&host) {
            return Err(StoreError::OtherHost {
                id: id.to_string(),
                host,
                here: crate::util::host::name(),
            });
        }
        terminate(pid).map_err(|e| StoreError::Stop {
            id: id.to_string(),
            pid,
            reason: e.to_string(),
        })?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while self.is_alive(id) {
            if Instant::now() > deadline {
                return Err(StoreError::Stop {
                    id: id.to_string(),
                    pid,
                    reason: format!("it did not stop within {} s", STOP_TIMEOUT.as_secs()),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Removes the trashed runs for good, with their Git refs, and the refs of this store's
    /// runs whose folders are gone. `dry_run` removes nothing and reports what it would.
    pub fn gc(&self, dry_run: bool) -> Result<GcReport> {
        let mut report = GcReport::default();
        let mut git_dirs = BTreeSet::new();
        let mut listed: std::collections::BTreeMap<PathBuf, Vec<snapshot::RunRef>> =
            std::collections::BTreeMap::new();
        let trash = self.trash_dir();
        let trashed: Vec<PathBuf> = match std::fs::read_dir(&trash) {
            Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).at("cannot list", trash),
        };
        for dir in trashed {
            let Some(id) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            let git_dir = super::read_record_file(&dir.join(RECORD_FILE))
                .ok()
                .and_then(|r| r.snapshot)
                .map(|s| s.git_dir);
            // A trashed copy of a run that is in the store again (pulled, or copied back by
            // hand): the copy goes, the code the run in the store needs stays.
            let back = self.run_dir(&id).exists();
            if back {
                report.kept_refs.push(id.clone());
            }
            let git_dir = git_dir.filter(|_| !back);
            // The ref is shared with any store that holds a run of this id in the same
            // repository; the one its commit names (where the run was made) keeps it. The
            // repository's refs are listed once, whatever the trashed runs in it.
            let other = git_dir.as_ref().and_then(|g| {
                let refs = listed
                    .entry(g.clone())
                    .or_insert_with(|| snapshot::run_refs(g).unwrap_or_default());
                self.other_store_holding(refs, &id)
            });
            if let Some(other) = &other {
                report.shared_refs.push((id.clone(), other.clone()));
            }
            let git_dir = git_dir.filter(|_| other.is_none());
            if !dry_run {
                if let Some(g) = &git_dir {
                    if let Err(e) = snapshot::delete_ref(g, &id) {
                        report.warnings.push(format!("run {id}: {e}"));
                    }
                }
                std::fs::remove_dir_all(&dir).at("cannot remove", &dir)?;
            }
            git_dirs.extend(git_dir);
            report.runs.push(id);
        }
        self.collect_unrecorded(dry_run, &mut report)?;
        for record in self.records()? {
            git_dirs.extend(record.snapshot.map(|s| s.git_dir));
        }
        git_dirs.extend(snapshot::enclosing_git_dir(&self.root));
        self.collect_orphan_refs(&git_dirs, dry_run, &mut report);
        Ok(report)
    }

    /// The store, other than this one, that the commit of run `id`'s ref (among `refs`, its
    /// repository's) names and that holds the run (in its runs or its trash), if any.
    fn other_store_holding(&self, refs: &[snapshot::RunRef], id: &str) -> Option<PathBuf> {
        let mine = store_line(&self.root);
        let name = format!("{}{id}", snapshot::REF_PREFIX);
        let message = &refs.iter().find(|r| r.name == name)?.message;
        message
            .lines()
            .filter(|l| *l != mine)
            .filter_map(|l| l.strip_prefix(STORE_LINE_PREFIX))
            .map(PathBuf::from)
            .find(|root| {
                let other = Store::at(root);
                other.run_dir(id).exists() || other.trash_dir().join(id).exists()
            })
    }

    /// Removes the run folders without a record whose process is gone: a folder a minute old
    /// at least, so that a run being made this moment (its folder made, its lock not yet
    /// taken) is left alone.
    fn collect_unrecorded(&self, dry_run: bool, report: &mut GcReport) -> Result<()> {
        for entry in self.run_folder_entries()? {
            let Ok(id) = entry.file_name().into_string() else {
                continue;
            };
            let dir = entry.path();
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= Duration::from_secs(60));
            if !super::is_valid_id(&id)
                || !dir.is_dir()
                || dir.join(RECORD_FILE).exists()
                || !old
                || self.is_alive(&id)
            {
                continue;
            }
            if !dry_run {
                std::fs::remove_dir_all(&dir).at("cannot remove", &dir)?;
            }
            report.unrecorded.push(id);
        }
        Ok(())
    }

    /// Removes the refs, in `git_dirs`, of this store's runs that have no folder any more.
    fn collect_orphan_refs(
        &self,
        git_dirs: &BTreeSet<PathBuf>,
        dry_run: bool,
        report: &mut GcReport,
    ) {
        let mine = store_line(&self.root);
        for git_dir in git_dirs {
            let refs = match snapshot::run_refs(git_dir) {
                Ok(refs) => refs,
                Err(e) => {
                    report.warnings.push(format!("{}: {e}", git_dir.display()));
                    continue;
                }
            };
            for r in refs {
                let Some(id) = run_id_of_ref(&r.name) else {
                    continue;
                };
                let ours = r.message.lines().any(|l| l == mine);
                if !ours || self.run_dir(id).exists() || self.trash_dir().join(id).exists() {
                    continue;
                }
                if !dry_run {
                    if let Err(e) = snapshot::delete_named_ref(git_dir, &r.name) {
                        report.warnings.push(format!("{}: {e}", r.name));
                        continue;
                    }
                }
                report.orphan_refs.push(r.name);
            }
        }
    }
}

/// The run id a run or resume ref belongs to.
fn run_id_of_ref(name: &str) -> Option<&str> {
    if let Some(id) = name.strip_prefix(snapshot::REF_PREFIX) {
        return Some(id);
    }
    let rest = name.strip_prefix(snapshot::RESUME_PREFIX)?;
    rest.rfind("-resume-").map(|at| &rest[..at])
}

/// True when `spec` can only be a run id, not a path or a `latest` form.
fn is_plain_id(spec: &str) -> bool {
    !spec.is_empty()
        && spec != "."
        && spec != ".."
        && spec
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Sends SIGTERM to process `pid`: the caller has just seen its lock held, so it is that
/// live process.
fn terminate(pid: u32) -> std::io::Result<()> {
    crate::util::signal::send(pid, crate::util::signal::TERMINATE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_name_their_run() {
        assert_eq!(
            run_id_of_ref("refs/flammable/runs/20261127-055756-0k3m"),
            Some("20261127-055756-0k3m")
        );
        assert_eq!(
            run_id_of_ref("refs/flammable/resumes/20261127-055756-0k3m-resume-46"),
            Some("20261127-055756-0k3m")
        );
        assert_eq!(run_id_of_ref("refs/heads/main"), None);
        assert!(is_plain_id("20261127-055756-0k3m"));
        assert!(!is_plain_id("../x") && !is_plain_id("..") && !is_plain_id(""));
    }

    #[test]
    fn a_removed_run_comes_back_from_the_trash_as_it_was() {
        use crate::store::record::{Record, RunKind};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let run = store.create(Record::new("x", RunKind::Train, 1)).unwrap();
        store.remove(&run.id, false).unwrap();
        assert_eq!(store.trashed().unwrap(), std::slice::from_ref(&run.id));
        assert_eq!(store.read_trashed(&run.id).unwrap().id, run.id);
        assert!(store.read(&run.id).is_err());
        assert_eq!(store.resolve_trashed(&run.id[..12]).unwrap(), run.id);
        let e = store.resolve(&run.id, |_| true).unwrap_err();
        assert!(e.to_string().contains("is in the trash"), "{e}");
        store.restore(&run.id).unwrap();
        assert_eq!(store.read(&run.id).unwrap().started, run.started);
        assert!(store.trashed().unwrap().is_empty());
        let e = store.resolve_trashed(&run.id).unwrap_err();
        assert!(e.to_string().contains("no run"), "{e}");
        assert!(e.is_usage());
        // A run of the same id in the store again (pulled since) is not replaced.
        store.remove(&run.id, false).unwrap();
        std::fs::create_dir_all(store.run_dir(&run.id)).unwrap();
        let e = store.restore(&run.id).unwrap_err();
        assert!(e.to_string().contains("in the store again"), "{e}");
        assert!(store.is_trashed(&run.id));
    }

    #[test]
    fn rm_force_never_signals_the_pid_of_a_run_of_another_host() {
        use crate::store::record::{Environment, Record, RunKind};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        // A process of this host with the pid the record names: the one a signal would hit.
        let mut bystander = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let record = Record {
            pid: bystander.id(),
            environment: Environment {
                host: "elsewhere.example".into(),
                ..Environment::default()
            },
            ..Record::new("x", RunKind::Train, 1)
        };
        // Alive: its lock is held (as a process of the other host holds it on NFS).
        let (run, lock) = store.create_locked(record).unwrap();
        let err = store.remove(&run.id, true).unwrap_err();
        assert!(matches!(err, StoreError::OtherHost { .. }), "{err}");
        assert!(err.is_usage());
        assert!(err.to_string().contains("elsewhere.example"), "{err}");
        assert!(store.run_dir(&run.id).is_dir(), "kept");
        drop(lock);
        let _ = bystander.kill();
        let status = bystander.wait().unwrap();
        // Killed by this test's SIGKILL, not by a SIGTERM from `rm`.
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));
    }
}
