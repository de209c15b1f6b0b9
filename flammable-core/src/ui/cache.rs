//! The series the browser has read, kept between requests: each metrics file is parsed once
//! and then only its new tail is read ([`GrowingFile`]), so a page refreshing a live run
//! every two seconds reads what the run appended, not the whole file again. Bounded: past its
//! budget of points (`ui --cache-mib`), the files used longest ago are let go.

use crate::store::followers::{merge, metric_files};
use crate::store::growing::GrowingFile;
use crate::store::metrics::Series;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// What a point takes in memory: step, epoch, value and time.
pub const POINT_BYTES: u64 = 28;

struct Slot {
    file: Arc<Mutex<GrowingFile>>,
    used: u64,
    points: u64,
}

/// Parsed metrics files by path.
pub struct SeriesCache {
    slots: Mutex<HashMap<PathBuf, Slot>>,
    clock: AtomicU64,
    budget: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl SeriesCache {
    /// An empty cache of at most `budget` points beyond the file being read (one larger run
    /// is still read, and kept until another is asked for).
    pub fn new(budget: u64) -> Self {
        SeriesCache {
            slots: Mutex::new(HashMap::new()),
            clock: AtomicU64::new(0),
            budget,
        }
    }

    /// Every series of one metrics file, brought up to date (empty when it does not exist).
    fn file(&self, path: &Path) -> std::io::Result<Vec<(String, Arc<Series>)>> {
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let file = {
            let mut slots = lock(&self.slots);
            let slot = slots.entry(path.to_path_buf()).or_insert_with(|| Slot {
                file: Arc::new(Mutex::new(GrowingFile::new())),
                used: tick,
                points: 0,
            });
            slot.used = tick;
            slot.file.clone()
        };
        // Two requests for one file read its tail once; other files are read meanwhile.
        let (series, points) = {
            let mut growing = lock(&file);
            growing.update(path)?;
            let series: Vec<(String, Arc<Series>)> = growing
                .series()
                .map(|(n, s)| (n.to_string(), s.clone()))
                .collect();
            (series, growing.points())
        };
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.get_mut(path) {
            slot.points = points;
        }
        evict(&mut slots, path, self.budget);
        Ok(series)
    }

    /// Every series of the run in `run_dir` — its own and its followers' — in the order first
    /// written, each in step order.
    pub fn run(&self, run_dir: &Path) -> std::io::Result<Vec<(String, Arc<Series>)>> {
        let mut order: Vec<(String, Vec<Arc<Series>>)> = Vec::new();
        for path in metric_files(run_dir) {
            for (name, series) in self.file(&path)? {
                match order.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, parts)) => parts.push(series),
                    None => order.push((name, vec![series])),
                }
            }
        }
        Ok(order
            .into_iter()
            .map(|(name, mut parts)| {
                let series = if parts.len() == 1 {
                    parts.remove(0)
                } else {
                    Arc::new(merge(parts.iter().map(|s| Series::clone(s)).collect()))
                };
                (name, series)
            })
            .collect())
    }

    /// Series `name` of the run in `run_dir` (empty when it has none).
    pub fn one(&self, run_dir: &Path, name: &str) -> std::io::Result<Arc<Series>> {
        Ok(self
            .run(run_dir)?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
            .unwrap_or_default())
    }
}

/// Lets go of the files used longest ago until the rest fit `budget` points (`keep` stays).
fn evict(slots: &mut HashMap<PathBuf, Slot>, keep: &Path, budget: u64) {
    let mut total: u64 = slots.values().map(|s| s.points).sum();
    while total > budget {
        let oldest = slots
            .iter()
            .filter(|(p, _)| p.as_path() != keep)
            .min_by_key(|(_, s)| s.used)
            .map(|(p, s)| (p.clone(), s.points));
        let Some((path, points)) = oldest else {
            return;
        };
        slots.remove(&path);
        total -= points;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::followers::{follower_files, read_run_all_series, FOLLOWERS_DIR};
    use crate::store::metrics::{MetricWriter, Point};
    use crate::store::METRICS_FILE;

    #[test]
    fn a_run_reads_as_the_store_reads_it_and_keeps_up_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        std::fs::create_dir_all(run.join(FOLLOWERS_DIR)).unwrap();
        let mut own = MetricWriter::new(run.join(METRICS_FILE));
        own.write(&[
            Point::now("loss", 10, 0, 1.0),
            Point::now("test/acc", 20, 1, 0.5),
        ]);
        let (f, _, _) = follower_files(run, "f1");
        MetricWriter::new(f).write(&[Point::now("test/acc", 10, 0, 0.3)]);
        let cache = SeriesCache::new(1_000_000);
        let plain = |v: Vec<(String, Arc<Series>)>| -> Vec<(String, Series)> {
            v.into_iter().map(|(n, s)| (n, Series::clone(&s))).collect()
        };
        assert_eq!(
            plain(cache.run(run).unwrap()),
            read_run_all_series(run).unwrap()
        );
        own.write(&[Point::now("loss", 30, 2, 0.25)]);
        assert_eq!(
            plain(cache.run(run).unwrap()),
            read_run_all_series(run).unwrap()
        );
        assert_eq!(cache.one(run, "loss").unwrap().values, [1.0, 0.25]);
        assert_eq!(cache.one(run, "test/acc").unwrap().steps, [10, 20]);
        assert!(cache.one(run, "nothing").unwrap().steps.is_empty());
    }

    #[test]
    fn the_files_used_longest_ago_go_first() {
        let mut slots = HashMap::new();
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            slots.insert(
                PathBuf::from(name),
                Slot {
                    file: Arc::new(Mutex::new(GrowingFile::new())),
                    used: i as u64,
                    points: 50,
                },
            );
        }
        evict(&mut slots, Path::new("a"), 100);
        let mut left: Vec<&PathBuf> = slots.keys().collect();
        left.sort();
        assert_eq!(left, [Path::new("a"), Path::new("c")]);
    }
}
