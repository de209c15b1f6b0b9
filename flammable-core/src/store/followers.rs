//! Followers of a train run: `test --follow` processes that test its checkpoints while it
//! trains. Each writes only files of its own, in the train run's `followers/` folder, so that
//! no process ever reads, changes and writes a file another one writes:
//!
//! - `<follower>.bin` / `.names`: its results as metric points (`test/<metric>` at each
//!   checkpoint's step and epoch), read together with the run's own `metrics.bin`;
//! - `<follower>.pin`: the step of the last set it tested, when it tests every set
//!   (`--every`): the trainer keeps any set a live follower has not tested yet;
//! - `<follower>.lock`: held while the follower lives (a pin of a dead follower holds nothing);
//! - `step-N.claim`: which follower tests set N, and whether it has (see [`claim`]): two
//!   followers never test the same set, and a set whose follower died is taken over.
//!
//! The trainer, for its part, lists the sets it prunes in `checkpoints/pruned.txt`, so that a
//! follower that starts late knows which sets it can no longer test.

use super::metrics::{read_metrics_checked, read_series, Point, Series};
use super::{CHECKPOINTS_DIR, METRICS_FILE};
use crate::util::atomic::write_atomic;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The folder of a train run where its followers write.
pub const FOLLOWERS_DIR: &str = "followers";

/// The list of the checkpoint sets the trainer pruned, one step a line, in the run's
/// `checkpoints/` folder.
pub const PRUNED_FILE: &str = "pruned.txt";

/// Held while a follower claims a set (see [`claim`]).
const CLAIMS_LOCK: &str = "claims.lock";

/// The files a follower `id` writes in `run_dir`: (metrics, pin, lock).
pub fn follower_files(run_dir: &Path, id: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = run_dir.join(FOLLOWERS_DIR);
    (
        dir.join(format!("{id}.bin")),
        dir.join(format!("{id}.pin")),
        dir.join(format!("{id}.lock")),
    )
}

/// Records that the follower whose pin is `pin` has tested every set up to `step`.
pub fn write_pin(pin: &Path, step: u64) -> std::io::Result<()> {
    write_atomic(pin, format!("{step}\n").as_bytes())
}

/// The lowest step pinned by a live follower of the run in `run_dir`: sets after it must be
/// kept until that follower has tested them. `None` when no live follower pins anything.
pub fn lowest_live_pin(run_dir: &Path) -> Option<u64> {
    let dir = run_dir.join(FOLLOWERS_DIR);
    std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".pin")?.to_string();
            super::is_held(&dir.join(format!("{id}.lock"))).then_some(())?;
            std::fs::read_to_string(e.path())
                .ok()?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .min()
}

/// Adds `steps` to the list of pruned sets of the run in `run_dir` (see [`PRUNED_FILE`]).
pub fn note_pruned(run_dir: &Path, steps: &[u64]) -> std::io::Result<()> {
    if steps.is_empty() {
        return Ok(());
    }
    let text: String = steps.iter().map(|s| format!("{s}\n")).collect();
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run_dir.join(CHECKPOINTS_DIR).join(PRUNED_FILE))?
        // One write: lines of concurrent writers never interleave.
        .write_all(text.as_bytes())
}

/// The steps of the sets the trainer of the run in `run_dir` has pruned, in the order it
/// pruned them (none when it pruned none).
pub fn pruned_steps(run_dir: &Path) -> Vec<u64> {
    std::fs::read_to_string(run_dir.join(CHECKPOINTS_DIR).join(PRUNED_FILE))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Where a set stands for a follower that asks to test it ([`claim`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The follower that asked tests it: it was free, or its follower died before testing it.
    Mine,
    /// Another follower, alive, is testing it.
    Taken,
    /// A follower has tested it.
    Tested,
}

/// The claim file of set `step` in the followers' folder `dir`.
fn claim_path(dir: &Path, step: u64) -> PathBuf {
    dir.join(format!("step-{step:010}.claim"))
}

/// Asks, for follower `me` of the run in `run_dir`, to test the set at `step`: the first
/// follower to ask gets it, and no other one does while it lives, so that each set is tested
/// once however many followers there are. Claims are made one at a time, under a lock.
pub fn claim(run_dir: &Path, me: &str, step: u64) -> std::io::Result<Claim> {
    let dir = run_dir.join(FOLLOWERS_DIR);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(CLAIMS_LOCK))?;
    lock.lock()?;
    let path = claim_path(&dir, step);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mut words = text.split_whitespace();
            let owner = words.next().unwrap_or_default();
            if words.next() == Some("tested") {
                return Ok(Claim::Tested);
            }
            let owner_lives = !owner.is_empty()
                && owner != me
                && super::is_held(&dir.join(format!("{owner}.lock")));
            if owner_lives {
                return Ok(Claim::Taken);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    write_atomic(&path, format!("{me}\n").as_bytes())?;
    Ok(Claim::Mine)
}

/// Records that follower `me` has tested the set at `step` (after its results are written).
pub fn mark_tested(run_dir: &Path, me: &str, step: u64) -> std::io::Result<()> {
    let path = claim_path(&run_dir.join(FOLLOWERS_DIR), step);
    write_atomic(&path, format!("{me} tested\n").as_bytes())
}

/// Every metrics file of a run: its own `metrics.bin`, then its followers', by name.
pub fn metric_files(run_dir: &Path) -> Vec<PathBuf> {
    let mut followers: Vec<PathBuf> = std::fs::read_dir(run_dir.join(FOLLOWERS_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    followers.sort();
    let mut files = vec![run_dir.join(METRICS_FILE)];
    files.extend(followers);
    files
}

/// Every point of a run — its own and its followers' — and how many records of its files
/// name no metric (more than zero: damaged files). Missing files count as empty.
pub fn read_run_metrics(run_dir: &Path) -> std::io::Result<(Vec<Point>, usize)> {
    let mut all = Vec::new();
    let mut unnamed = 0;
    for file in metric_files(run_dir) {
        match read_metrics_checked(&file) {
            Ok((points, bad)) => {
                all.extend(points);
                unnamed += bad;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok((all, unnamed))
}

/// One metric of a run, from all its files, in step order.
pub fn read_run_series(run_dir: &Path, name: &str) -> std::io::Result<Series> {
    let mut parts = Vec::new();
    for file in metric_files(run_dir) {
        match read_series(&file, name) {
            Ok(s) if !s.steps.is_empty() => parts.push(s),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(merge(parts))
}

/// Every metric of a run, from all its files (its own first, in the order they were first
/// written), each in step order.
pub fn read_run_all_series(run_dir: &Path) -> std::io::Result<Vec<(String, Series)>> {
    let mut order: Vec<String> = Vec::new();
    let mut parts: BTreeMap<String, Vec<Series>> = BTreeMap::new();
    for file in metric_files(run_dir) {
        match super::metrics::read_all_series(&file) {
            Ok(all) => {
                for (name, s) in all {
                    if !parts.contains_key(&name) {
                        order.push(name.clone());
                    }
                    parts.entry(name).or_default().push(s);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(order
        .into_iter()
        .map(|name| {
            let s = merge(parts.remove(&name).unwrap_or_default());
            (name, s)
        })
        .collect())
}

/// One series out of several, in step order (a single part is returned as it is).
pub(crate) fn merge(mut parts: Vec<Series>) -> Series {
    if parts.len() <= 1 {
        return parts.pop().unwrap_or_default();
    }
    let mut rows: Vec<(u64, u32, f64, f64)> = parts
        .iter()
        .flat_map(|s| {
            (0..s.steps.len()).map(move |i| (s.steps[i], s.epochs[i], s.values[i], s.times[i]))
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    let mut out = Series::default();
    for (step, epoch, value, time) in rows {
        out.steps.push(step);
        out.epochs.push(epoch);
        out.values.push(value);
        out.times.push(time);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::metrics::MetricWriter;

    #[test]
    fn a_runs_series_gathers_its_followers_points_in_step_order() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        std::fs::create_dir_all(run.join(FOLLOWERS_DIR)).unwrap();
        let mut own = MetricWriter::new(run.join(METRICS_FILE));
        own.write(&[
            Point::now("loss", 10, 0, 1.0),
            Point::now("test/acc", 20, 1, 0.5),
        ]);
        let (a, _, _) = follower_files(run, "f1");
        let (b, _, _) = follower_files(run, "f2");
        MetricWriter::new(a).write(&[Point::now("test/acc", 30, 2, 0.7)]);
        MetricWriter::new(b).write(&[Point::now("test/acc", 10, 0, 0.3)]);
        let s = read_run_series(run, "test/acc").unwrap();
        assert_eq!(s.steps, [10, 20, 30]);
        assert_eq!(s.values, [0.3, 0.5, 0.7]);
        let all = read_run_all_series(run).unwrap();
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["loss", "test/acc"]);
        assert_eq!(read_run_metrics(run).unwrap().0.len(), 4);
    }

    #[test]
    fn only_a_live_followers_pin_counts() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        std::fs::create_dir_all(run.join(FOLLOWERS_DIR)).unwrap();
        let (_, pin_a, lock_a) = follower_files(run, "a");
        let (_, pin_b, _) = follower_files(run, "b");
        write_pin(&pin_a, 40).unwrap();
        write_pin(&pin_b, 10).unwrap();
        assert_eq!(lowest_live_pin(run), None, "nobody holds a lock");
        let lock = std::fs::File::create(&lock_a).unwrap();
        lock.lock().unwrap();
        assert_eq!(
            lowest_live_pin(run),
            Some(40),
            "b's pin is of a dead follower"
        );
        drop(lock);
        assert_eq!(lowest_live_pin(run), None);
    }

    #[test]
    fn a_set_is_claimed_once_and_taken_over_from_a_dead_follower() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        std::fs::create_dir_all(run.join(FOLLOWERS_DIR)).unwrap();
        let (_, _, lock_a) = follower_files(run, "a");
        let a = std::fs::File::create(&lock_a).unwrap();
        a.lock().unwrap();
        assert_eq!(claim(run, "a", 10).unwrap(), Claim::Mine);
        assert_eq!(claim(run, "a", 10).unwrap(), Claim::Mine, "its own claim");
        assert_eq!(claim(run, "b", 10).unwrap(), Claim::Taken);
        // a dies before testing it: b takes it over.
        drop(a);
        assert_eq!(claim(run, "b", 10).unwrap(), Claim::Mine);
        mark_tested(run, "b", 10).unwrap();
        assert_eq!(claim(run, "a", 10).unwrap(), Claim::Tested);
        assert_eq!(claim(run, "c", 20).unwrap(), Claim::Mine);
    }

    #[test]
    fn pruned_sets_are_listed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        assert!(pruned_steps(run).is_empty());
        std::fs::create_dir_all(run.join(CHECKPOINTS_DIR)).unwrap();
        note_pruned(run, &[10, 20]).unwrap();
        note_pruned(run, &[]).unwrap();
        note_pruned(run, &[30]).unwrap();
        assert_eq!(pruned_steps(run), [10, 20, 30]);
    }
}
