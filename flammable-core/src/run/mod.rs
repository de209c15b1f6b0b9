//! The `Run` handle: all that the loops see of the store — where files go, where metrics
//! go, where checkpoints are saved and loaded from, and how the run ends.

pub mod code_dir;
pub mod provenance;
pub mod select;

use crate::error::{IoContext, Result};
use crate::store::metrics::{MetricWriter, Point};
use crate::store::record::{Record, RunKind, RunStatus, TestResult};
use crate::store::{
    now_rfc3339, Store, CHECKPOINTS_DIR, FILES_DIR, HYPERPARAMETERS_FILE, LOG_FILE,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// What the checkpoint writer needs of a train run's followers (`test --follow`): the sets
/// they still need, and where to list the sets it prunes. Owned, for the writer's thread.
#[derive(Clone, Debug)]
pub struct Followers {
    run_dir: PathBuf,
}

impl Followers {
    /// The lowest step pinned by a live `test --follow --every` of the run: the sets after it
    /// are kept until that follower has tested them. `None` when no live follower pins one.
    pub fn lowest_live_pin(&self) -> Option<u64> {
        crate::store::followers::lowest_live_pin(&self.run_dir)
    }

    /// Lists the steps of sets just pruned, for followers that start later (they say which
    /// sets they could not test).
    pub fn note_pruned(&self, steps: &[u64]) -> Result<()> {
        crate::store::followers::note_pruned(&self.run_dir, steps)
            .at("cannot list the pruned sets of", &self.run_dir)
    }
}

/// One run in progress.
pub struct Run {
    store: Store,
    dir: PathBuf,
    record: Mutex<Record>,
    metrics: Mutex<MetricWriter>,
    log: Mutex<Option<std::fs::File>>,
    parent_dir: Option<PathBuf>,
    /// Held for the life of the process: readers that can take it know the run crashed.
    _lock: Option<std::fs::File>,
}

/// The run whose checkpoints a run loads: a test, eval or serve run's parent; a train run's
/// own (one trained further from a parent has copied the parent's set in).
fn checkpoints_parent(store: &Store, record: &Record) -> Option<PathBuf> {
    if record.kind == RunKind::Train {
        return None;
    }
    record.parent.as_ref().map(|p| store.run_dir(p))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere does not make the record or the writer unusable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Run {
    /// Reopens an existing run to continue it (`train --resume`): takes its lock, sets it
    /// running again. Fails when its process is still alive.
    pub fn reopen(store: &Store, id: &str) -> Result<Run> {
        let lock_path = store.lock_path(id);
        let lock = crate::store::open_lock_file(&lock_path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(crate::error::Error::usage(format!(
                    "run {id} is still running"
                )))
            }
            // Not a sign of a live process (a file system without locks): said as it is.
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(crate::error::Error::io("cannot lock", &lock_path, e))
            }
        }
        let record = store.update(id, |record| {
            record.status = crate::store::record::RunStatus::Running;
            record.ended = None;
            record.error = None;
            // The process, and the host its id means something on (it may be resumed on
            // another host of a shared store).
            record.pid = std::process::id();
            record.environment.host = crate::util::host::name();
        })?;
        let dir = store.run_dir(id);
        let parent_dir = checkpoints_parent(store, &record);
        Ok(Run {
            store: store.clone(),
            metrics: Mutex::new(MetricWriter::new(store.metrics_path(id))),
            log: Mutex::new(None),
            dir,
            record: Mutex::new(record),
            parent_dir,
            _lock: Some(lock),
        })
    }

    /// Starts a run in `store` from `record` (status running; its id is assigned here).
    pub fn start(store: &Store, record: Record) -> Result<Run> {
        Run::start_with(store, record, None)
    }

    /// Like [`Run::start`], with the run's `hyperparameters.ron` (its text) written before
    /// its record (see [`Store::create_locked_with`]).
    pub fn start_with(store: &Store, record: Record, hyperparameters: Option<&str>) -> Result<Run> {
        let (record, lock) = store.create_locked_with(record, hyperparameters)?;
        let dir = store.run_dir(&record.id);
        let parent_dir = checkpoints_parent(store, &record);
        Ok(Run {
            store: store.clone(),
            metrics: Mutex::new(MetricWriter::new(store.metrics_path(&record.id))),
            log: Mutex::new(None),
            dir,
            record: Mutex::new(record),
            parent_dir,
            _lock: lock,
        })
    }

    /// The run's id.
    pub fn id(&self) -> String {
        lock(&self.record).id.clone()
    }

    /// A copy of the record as it stands.
    pub fn record(&self) -> Record {
        lock(&self.record).clone()
    }

    /// The run's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store the run lives in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A path for a file the task writes, `files/<name>` in the run's folder.
    pub fn file(&self, name: &str) -> Result<PathBuf> {
        let dir = self.dir.join(FILES_DIR);
        std::fs::create_dir_all(&dir).at("cannot create", &dir)?;
        Ok(dir.join(name))
    }

    /// Where this run saves checkpoint `name` (`checkpoints/<name>.<ext>`).
    pub fn checkpoint_path(&self, name: &str, ext: &str) -> Result<PathBuf> {
        let dir = self.dir.join(CHECKPOINTS_DIR);
        std::fs::create_dir_all(&dir).at("cannot create", &dir)?;
        Ok(dir.join(format!("{name}.{ext}")))
    }

    /// The run's followers, as the checkpoint writer sees them.
    pub fn followers(&self) -> Followers {
        Followers {
            run_dir: self.dir.clone(),
        }
    }

    /// Where checkpoint `name` is loaded from: the parent run's (the run a test or eval run
    /// uses), else this run's own.
    pub fn checkpoint_to_load(&self, name: &str, ext: &str) -> PathBuf {
        self.parent_dir
            .as_deref()
            .unwrap_or(&self.dir)
            .join(CHECKPOINTS_DIR)
            .join(format!("{name}.{ext}"))
    }

    /// Where this run's `hyperparameters.ron` is written.
    pub fn hyperparameters_path(&self) -> PathBuf {
        self.dir.join(HYPERPARAMETERS_FILE)
    }

    /// Appends metric points (in one batch).
    pub fn log_metrics(&self, points: &[Point]) {
        lock(&self.metrics).write(points);
    }

    /// How many metric points the run has recorded.
    pub fn metric_points(&self) -> u64 {
        lock(&self.metrics).points()
    }

    /// Drops the metric points after the first `points` (see [`MetricWriter::truncate`]).
    pub fn truncate_metrics(&self, points: u64) -> Result<()> {
        let mut m = lock(&self.metrics);
        let path = m.path().to_path_buf();
        m.truncate(points).at("cannot truncate", path)
    }

    /// How many batches of metrics were written so far.
    pub fn metric_batches(&self) -> u64 {
        lock(&self.metrics).batches_written()
    }

    /// Appends a line to the run's `log.txt` (a copy of what the run printed).
    pub fn log_line(&self, line: &str) {
        let mut log = lock(&self.log);
        if log.is_none() {
            let path = self.dir.join(LOG_FILE);
            *log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok();
        }
        if let Some(f) = log.as_mut() {
            let _ = writeln!(f, "{line}");
        }
    }

    /// Changes the record and writes it.
    pub fn update(&self, change: impl FnOnce(&mut Record)) -> Result<()> {
        let mut r = lock(&self.record);
        change(&mut r);
        self.save(&mut r)
    }

    /// Writes this process's copy of the record, keeping what other processes add to it
    /// (the results of test runs of this run), under the record's lock.
    fn save(&self, record: &mut Record) -> Result<()> {
        let saved = self.store.update(&record.id, |on_disk| {
            // What others write into this record is kept: test runs' results, and what users
            // wrote about the run (a change made while this process started, before it took
            // the run, must not be undone by its copy).
            let tests = std::mem::take(&mut on_disk.tests);
            let message = on_disk.message.take();
            let tags = std::mem::take(&mut on_disk.tags);
            let note = on_disk.note.take();
            let edits = std::mem::take(&mut on_disk.edits);
            *on_disk = record.clone();
            on_disk.tests = tests;
            on_disk.message = message;
            on_disk.tags = tags;
            on_disk.note = note;
            on_disk.edits = edits;
        })?;
        record.tests = saved.tests;
        record.message = saved.message;
        record.tags = saved.tags;
        record.note = saved.note;
        record.edits = saved.edits;
        Ok(())
    }

    /// Sets final metrics on the record and writes it.
    pub fn set_metrics(&self, metrics: &BTreeMap<String, f64>) -> Result<()> {
        let mut r = lock(&self.record);
        r.metrics
            .extend(metrics.iter().map(|(k, v)| (k.clone(), *v)));
        self.save(&mut r)
    }

    /// Adds this run's test results to the record of its parent.
    pub fn report_to_parent(&self, metrics: &BTreeMap<String, f64>) -> Result<()> {
        let (id, parent, checkpoint, step) = {
            let r = lock(&self.record);
            (
                r.id.clone(),
                r.parent.clone(),
                r.checkpoint.clone(),
                r.checkpoint_step,
            )
        };
        if let Some(parent) = parent {
            self.store.update(&parent, |p| {
                p.tests.push(TestResult {
                    run: id,
                    metrics: metrics.clone(),
                    checkpoint,
                    step,
                })
            })?;
        }
        Ok(())
    }

    /// Ends the run: status, end time and error message, written to the record.
    pub fn finish(&self, status: RunStatus, error: Option<String>) -> Result<()> {
        let mut r = lock(&self.record);
        r.status = status;
        r.ended = Some(now_rfc3339());
        r.error = error;
        self.save(&mut r)
    }
}
