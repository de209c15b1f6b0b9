//! The browser's view of the store: a summary of every run, kept in memory and refreshed from
//! the files' modification times, so that a page over 10,000 runs reads no record it has
//! already read.

use crate::hyper::parse_config;
use crate::store::metrics::unix_now;
use crate::store::record::{Record, RunKind, RunStatus};
use crate::store::{Store, HYPERPARAMETERS_FILE, RECORD_FILE};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
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
}

/// Where a running train run is, from the tail of its metrics file.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Progress {
    /// The last recorded step.
    pub step: u64,
    /// Its epoch (from 0).
    pub epoch: u64,
    /// The epochs it was asked for.
    pub epochs: Option<u64>,
    /// Training speed over the recorded points.
    pub steps_per_s: Option<f64>,
    /// Seconds left, once an epoch has ended (its length is known then).
    pub eta: Option<f64>,
}

struct Entry {
    summary: Arc<Summary>,
    modified: Option<SystemTime>,
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
    position: HashMap<String, usize>,
    children: HashMap<String, Vec<String>>,
}

impl Snapshot {
    /// The run with this id, or the one run whose id starts with it.
    pub fn find(&self, spec: &str) -> Option<&Arc<Summary>> {
        if let Some(&i) = self.position.get(spec) {
            return self.runs.get(i);
        }
        if spec.is_empty() {
            return None;
        }
        let mut found = self.runs.iter().filter(|r| r.id.starts_with(spec));
        match (found.next(), found.next()) {
            (Some(r), None) => Some(r),
            _ => None,
        }
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
    let stamps: Vec<(String, Option<SystemTime>)> = ids
        .into_iter()
        .filter_map(|id| {
            let meta = std::fs::metadata(runs_dir.join(&id).join(RECORD_FILE)).ok()?;
            Some((id, meta.modified().ok()))
        })
        .collect();
    let live: BTreeSet<&str> = stamps.iter().map(|(id, _)| id.as_str()).collect();
    entries.retain(|id, _| live.contains(id.as_str()));
    // Read what is new or changed, and every running run (its progress moves without its
    // record changing), spread over the cores: the first look at 10,000 runs reads them all.
    let stale: Vec<&(String, Option<SystemTime>)> = stamps
        .iter()
        .filter(|(id, modified)| match entries.get(id) {
            Some(e) => e.modified != *modified || e.summary.status == RunStatus::Running,
            None => true,
        })
        .collect();
    let mut unreadable = Vec::new();
    for (id, modified, result) in read_parallel(store, &stale) {
        match result {
            Ok(summary) => {
                entries.insert(
                    id,
                    Entry {
                        summary: Arc::new(summary),
                        modified,
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

type ReadResult = (String, Option<SystemTime>, Result<Summary, String>);

fn read_parallel(store: &Store, stale: &[&(String, Option<SystemTime>)]) -> Vec<ReadResult> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    if stale.len() < 64 || threads == 1 {
        return stale
            .iter()
            .map(|(id, m)| (id.clone(), *m, summarize(store, id)))
            .collect();
    }
    let chunk = stale.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = stale
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(id, m)| (id.clone(), *m, summarize(store, id)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
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

fn summary_of(
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
    let mut metrics = record.metrics;
    if let Some(t) = record.tests.last() {
        metrics.extend(t.metrics.iter().map(|(k, v)| (format!("test/{k}"), *v)));
    }
    Summary {
        id: record.id,
        experiment: record.experiment,
        kind: record.kind,
        status: record.status,
        parent: record.parent,
        message: record.message.unwrap_or_default(),
        started: record.started,
        duration: duration.filter(|d| d.is_finite() && *d >= 0.0),
        metrics,
        hyper,
        progress,
        error: record.error,
    }
}

/// An RFC 3339 time as seconds since the Unix epoch.
pub fn parse_time(text: &str) -> Option<f64> {
    humantime::parse_rfc3339_weak(text)
        .ok()?
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// A run's flattened hyperparameters (empty when it has none or they cannot be read).
pub fn hyperparameters(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| parse_config(t, path).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_else(|| "None".into())))
        .collect()
}

/// Bytes per point of a metrics file (see `store::metrics`): name u32, epoch u32, step u64,
/// value f64, time f64.
const POINT: u64 = 32;

/// (epoch, step, time) of point `i` of an open metrics file.
fn point_at(file: &mut std::fs::File, i: u64) -> Option<(u64, u64, f64)> {
    let mut b = [0u8; POINT as usize];
    file.seek(SeekFrom::Start(i * POINT)).ok()?;
    file.read_exact(&mut b).ok()?;
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[at..at + 8]);
        w
    };
    Some((
        u64::from(u32::from_le_bytes([b[4], b[5], b[6], b[7]])),
        u64::from_le_bytes(word(8)),
        f64::from_le_bytes(word(24)),
    ))
}

/// The progress of a running train run: its last point, and — by binary search over the
/// points, which are in step order — when its first epoch ended, for the ETA. Reads a few
/// dozen points whatever the file's size.
fn progress(metrics: &Path, record: &Record, hyper: &BTreeMap<String, String>) -> Option<Progress> {
    let mut file = std::fs::File::open(metrics).ok()?;
    let points = file.metadata().ok()?.len() / POINT;
    let epochs = hyper.get("epochs").and_then(|e| e.parse::<u64>().ok());
    if points == 0 {
        return Some(Progress {
            epochs,
            ..Progress::default()
        });
    }
    let (epoch, step, last_time) = point_at(&mut file, points - 1)?;
    let (_, _, first_time) = point_at(&mut file, 0)?;
    let started = parse_time(&record.started).unwrap_or(first_time);
    let elapsed = last_time - started;
    let steps_per_s = (elapsed > 0.0 && step > 0).then(|| step as f64 / elapsed);
    // The first point of epoch 1 tells the steps of an epoch.
    let eta = (|| {
        let epochs = epochs?;
        if epoch == 0 {
            return None;
        }
        let (mut lo, mut hi) = (0, points - 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if point_at(&mut file, mid)?.0 >= 1 {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let (_, epoch_one_step, _) = point_at(&mut file, lo)?;
        let per_epoch = epoch_one_step.max(1);
        let total = per_epoch * epochs;
        let rate = steps_per_s?;
        Some(total.saturating_sub(step) as f64 / rate - (unix_now() - last_time).max(0.0))
            .map(|s| s.max(0.0))
    })();
    Some(Progress {
        step,
        epoch,
        epochs,
        steps_per_s,
        eta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::metrics::{MetricWriter, Point};

    #[test]
    fn progress_reads_the_tail_and_the_epoch_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.bin");
        let mut w = MetricWriter::new(path.clone());
        let mut record = Record::new("x", RunKind::Train, 0);
        record.started =
            humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000))
                .to_string();
        // 10 steps an epoch, one point a step, a step a second.
        let points: Vec<Point> = (1..=25u64)
            .map(|s| Point {
                name: "loss".into(),
                step: s,
                epoch: (s - 1) / 10,
                value: 1.0,
                time: 1_000.0 + s as f64,
            })
            .collect();
        w.write(&points);
        let hyper = BTreeMap::from([("epochs".to_string(), "4".to_string())]);
        let p = progress(&path, &record, &hyper).unwrap();
        assert_eq!((p.step, p.epoch, p.epochs), (25, 2, Some(4)));
        assert!((p.steps_per_s.unwrap() - 1.0).abs() < 1e-9);
        // The first point of epoch 1 is step 11: 11 steps an epoch, 44 in all, 19 left.
        assert!(p.eta.is_some());
    }

    #[test]
    fn finds_by_prefix_only_when_unique() {
        let mk = |id: &str| {
            let mut r = Record::new("x", RunKind::Train, 0);
            r.id = id.into();
            Arc::new(summary_of(r, BTreeMap::new(), None))
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
}
