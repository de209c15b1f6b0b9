//! The browser's view of the store: a summary of every run, kept in memory and refreshed from
//! what the file system says of each record (its [`Stamp`]), so that a page over 10,000 runs
//! reads no record it has already read.

use crate::hyper::read_flat as hyperparameters;
use crate::store::metrics::unix_now;
pub use crate::store::progress::{parse_time, progress, Progress};
use crate::store::record::{Record, RunKind, RunStatus};
use crate::store::{Store, HYPERPARAMETERS_FILE, RECORD_FILE};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// How long a refreshed index is trusted before the store is looked at again.
const FRESH_FOR: Duration = Duration::from_millis(750);

/// What the pages and the API show of one run.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Summary {
    /// The run's id.
    pub id: String,
    /// Its experiment.
    pub experiment: String,
    /// train, test or eval.
    pub kind: RunKind,
    /// Where it stands (a running run whose process is gone is crashed).
    pub status: RunStatus,
    /// The run it tested or evaluated.
    pub parent: Option<String>,
    /// The sweep it is one of.
    pub sweep: Option<String>,
    /// The seed every random draw derived from.
    pub seed: u64,
    /// `-m`, or empty.
    pub message: String,
    /// Start time, RFC 3339.
    pub started: String,
    /// Seconds it ran (so far, for a running run).
    pub duration: Option<f64>,
    /// Final metrics, and the last test's as `test/<name>`.
    pub metrics: BTreeMap<String, f64>,
    /// Flattened hyperparameters (`lr`, `epochs`, …) as their command-line text.
    pub hyper: BTreeMap<String, String>,
    /// Where a running run is.
    pub progress: Option<Progress>,
    /// Why it failed.
    pub error: Option<String>,
    /// Its tags, sorted.
    pub tags: Vec<String>,
    /// Its note, or empty.
    pub note: String,
}

struct Entry {
    summary: Arc<Summary>,
    stamp: Stamp,
}

impl Summary {
    /// Hyperparameter `name`, unless absent or an optional setting left unset (`None`): what
    /// sorting and parallel coordinates place.
    pub fn setting(&self, name: &str) -> Option<&String> {
        self.hyper.get(name).filter(|v| v.as_str() != "None")
    }
}

/// What tells that a record file changed without reading it: its modification time, size
/// and (on Unix) inode and change time. The modification time alone misses a record
/// rewritten within the file system's time resolution, or replaced by one whose time was
/// kept (copied with its times, pulled from elsewhere); records are written to a new file
/// renamed over the old, which gets a new inode and change time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: u64,
    #[cfg(unix)]
    changed: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt as _;
        Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            #[cfg(unix)]
            inode: meta.ino(),
            #[cfg(unix)]
            changed: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The runs at one moment, oldest first.
#[derive(Default)]
pub struct Snapshot {
    /// Every readable run, oldest first.
    pub runs: Vec<Arc<Summary>>,
    /// Runs whose record cannot be read, with why.
    pub unreadable: Vec<(String, String)>,
    /// Every metric name of any run.
    pub metric_names: BTreeSet<String>,
    /// Every hyperparameter name of any run.
    pub hyper_names: BTreeSet<String>,
    /// Every tag of any run.
    pub tag_names: BTreeSet<String>,
    position: HashMap<String, usize>,
    children: HashMap<String, Vec<String>>,
}

impl Snapshot {
    /// The run with this id, or the one run whose id starts with it.
    pub fn find(&self, spec: &str) -> Option<&Arc<Summary>> {
        if let Some(&i) = self.position.get(spec) {
            return self.runs.get(i);
        }
        let mut found = self.starting_with(spec);
        match (found.next(), found.next()) {
            (Some(r), None) => Some(r),
            _ => None,
        }
    }

    /// The runs whose id starts with `prefix` (none for an empty one), oldest first.
    pub fn starting_with<'a, 'p>(
        &'a self,
        prefix: &'p str,
    ) -> impl Iterator<Item = &'a Arc<Summary>> + use<'a, 'p> {
        self.runs
            .iter()
            .filter(move |r| !prefix.is_empty() && r.id.starts_with(prefix))
    }

    /// The ids of the runs whose parent is `id`, oldest first.
    pub fn children(&self, id: &str) -> &[String] {
        self.children.get(id).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// The summaries of a store's runs, refreshed at most every [`FRESH_FOR`].
pub struct RunIndex {
    store: Store,
    entries: Mutex<(HashMap<String, Entry>, Option<Instant>)>,
    current: RwLock<Arc<Snapshot>>,
}

impl RunIndex {
    /// An empty index of `store` (the first [`RunIndex::snapshot`] reads it).
    pub fn new(store: Store) -> Self {
        RunIndex {
            store,
            entries: Mutex::new((HashMap::new(), None)),
            current: RwLock::new(Arc::new(Snapshot::default())),
        }
    }

    /// The store it indexes.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Makes the next [`RunIndex::snapshot`] look at the store, whatever its age: after a
    /// change made through the browser, the next page shows it.
    pub fn invalidate(&self) {
        let mut guard = match self.entries.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard.1 = None;
    }

    /// The runs now: refreshed from the store when the last look is older than
    /// [`FRESH_FOR`]. Blocks on file I/O (call it off the async executor).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        let mut guard = match self.entries.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let fresh = guard.1.is_some_and(|t| t.elapsed() < FRESH_FOR);
        if !fresh {
            let next = refresh(&self.store, &mut guard.0);
            guard.1 = Some(Instant::now());
            let mut current = match self.current.write() {
                Ok(c) => c,
                Err(poisoned) => poisoned.into_inner(),
            };
            *current = Arc::new(next);
        }
        drop(guard);
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Brings `entries` up to date with the store and builds the snapshot from them.
fn refresh(store: &Store, entries: &mut HashMap<String, Entry>) -> Snapshot {
    let runs_dir = store.root().join("runs");
    let ids: Vec<String> = std::fs::read_dir(&runs_dir)
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    let stamps: Vec<(String, Stamp)> = ids
        .into_iter()
        .filter_map(|id| {
            let meta = std::fs::metadata(runs_dir.join(&id).join(RECORD_FILE)).ok()?;
            Some((id, Stamp::of(&meta)))
        })
        .collect();
    let live: BTreeSet<&str> = stamps.iter().map(|(id, _)| id.as_str()).collect();
    entries.retain(|id, _| live.contains(id.as_str()));
    // Read what is new or changed, and every running run (its progress moves without its
    // record changing), spread over the cores: the first look at 10,000 runs reads them all.
    let stale: Vec<&(String, Stamp)> = stamps
        .iter()
        .filter(|(id, stamp)| match entries.get(id) {
            Some(e) => e.stamp != *stamp || e.summary.status == RunStatus::Running,
            None => true,
        })
        .collect();
    let mut unreadable = Vec::new();
    for (id, stamp, result) in read_parallel(store, &stale) {
        match result {
            Ok(summary) => {
                entries.insert(
                    id,
                    Entry {
                        summary: Arc::new(summary),
                        stamp,
                    },
                );
            }
            Err(why) => {
                entries.remove(&id);
                unreadable.push((id, why));
            }
        }
    }
    let mut runs: Vec<Arc<Summary>> = entries.values().map(|e| e.summary.clone()).collect();
    runs.sort_by(|a, b| a.id.cmp(&b.id));
    unreadable.sort();
    let mut snapshot = Snapshot {
        unreadable,
        ..Snapshot::default()
    };
    for (i, r) in runs.iter().enumerate() {
        snapshot.position.insert(r.id.clone(), i);
        snapshot.metric_names.extend(r.metrics.keys().cloned());
        snapshot.hyper_names.extend(r.hyper.keys().cloned());
        snapshot.tag_names.extend(r.tags.iter().cloned());
        if let Some(p) = &r.parent {
            snapshot
                .children
                .entry(p.clone())
                .or_default()
                .push(r.id.clone());
        }
    }
    snapshot.runs = runs;
    snapshot
}

type ReadResult = (String, Stamp, Result<Summary, String>);

fn read_parallel(store: &Store, stale: &[&(String, Stamp)]) -> Vec<ReadResult> {
    crate::util::parallel::map(stale, 64, |(id, m)| {
        (id.clone(), *m, summarize(store, id).map(with_seed))
    })
}

/// `summary` with its seed among its hyperparameters (as `seed`, unless the task has one of
/// its own), so the browser filters, groups, sorts and sets runs side by side by seed as by
/// any setting. (Exports keep the seed apart: TensorBoard groups runs that differ only by it.)
fn with_seed(mut summary: Summary) -> Summary {
    let seed = summary.seed.to_string();
    summary.hyper.entry("seed".to_string()).or_insert(seed);
    summary
}

/// Reads the summary of run `id`; the error says why its record cannot be read.
pub fn summarize(store: &Store, id: &str) -> Result<Summary, String> {
    let record = store.read(id).map_err(|e| e.to_string())?;
    let hyper = hyperparameters(&store.run_dir(id).join(HYPERPARAMETERS_FILE));
    let progress = (record.status == RunStatus::Running && record.kind == RunKind::Train)
        .then(|| progress(&store.metrics_path(id), &record, &hyper))
        .flatten();
    Ok(summary_of(record, hyper, progress))
}

/// What the pages show of `record`, its hyperparameters flattened and its progress.
pub(crate) fn summary_of(
    record: Record,
    hyper: BTreeMap<String, String>,
    progress: Option<Progress>,
) -> Summary {
    let started = parse_time(&record.started);
    let ended = record.ended.as_deref().and_then(parse_time);
    let duration = match (started, ended, record.status) {
        (Some(s), Some(e), _) => Some(e - s),
        (Some(s), None, RunStatus::Running) => Some(unix_now() - s),
        _ => None,
    };
    let metrics = record.all_metrics();
    Summary {
        id: record.id,
        experiment: record.experiment,
        kind: record.kind,
        status: record.status,
        parent: record.parent,
        sweep: record.sweep,
        seed: record.seed,
        message: record.message.unwrap_or_default(),
        started: record.started,
        duration: duration.filter(|d| d.is_finite() && *d >= 0.0),
        metrics,
        hyper,
        progress,
        error: record.error,
        tags: record.tags,
        note: record.note.unwrap_or_default(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The summary of `record`, without hyperparameters or progress.
    pub(crate) fn summary(record: Record) -> Summary {
        summary_of(record, BTreeMap::new(), None)
    }

    #[test]
    fn finds_by_prefix_only_when_unique() {
        let mk = |id: &str| {
            let mut r = Record::new("x", RunKind::Train, 0);
            r.id = id.into();
            Arc::new(summary(r))
        };
        let mut s = Snapshot {
            runs: vec![mk("20260101-aa"), mk("20260101-ab"), mk("20260102-b")],
            ..Snapshot::default()
        };
        for (i, r) in s.runs.iter().enumerate() {
            s.position.insert(r.id.clone(), i);
        }
        assert_eq!(
            s.find("20260102").map(|r| r.id.as_str()),
            Some("20260102-b")
        );
        assert!(s.find("20260101-a").is_none());
        assert_eq!(
            s.find("20260101-ab").map(|r| r.id.as_str()),
            Some("20260101-ab")
        );
        assert!(s.find("").is_none());
    }

    #[test]
    fn a_record_rewritten_within_its_modification_time_is_read_again() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::at(tmp.path().join("store"));
        let mut record = Record::new("x", RunKind::Train, 0);
        record.status = RunStatus::Finished;
        record.message = Some("old".into());
        let id = store.create(record).unwrap().id;
        let path = store.run_dir(&id).join(RECORD_FILE);
        let mut entries = HashMap::new();
        let first = refresh(&store, &mut entries);
        assert_eq!(first.runs[0].message, "old");
        // Rewritten as the store writes records (a new file renamed over the old), as long
        // as before and with the modification time it had: a clock too coarse to tell.
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        store
            .update(&id, |r| r.message = Some("new".into()))
            .unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(modified))
            .unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            modified
        );
        let second = refresh(&store, &mut entries);
        assert_eq!(second.runs[0].message, "new");
    }
}
