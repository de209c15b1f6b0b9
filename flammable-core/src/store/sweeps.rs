//! Sweeps (`train --sweep`) in the store: each sweep's plan, `sweeps/<id>.ron`, written
//! before its first run starts, so that a sweep whose process died can be listed and
//! continued (`train --resume <sweep>`); and `sweeps/<id>.lock`, held by the process that
//! runs it. Its runs are ordinary runs whose record names the sweep and the combination.
//!
//! A sweep run in shards (several processes, maybe on several hosts sharing the store) has
//! its plan written once, by whichever shard comes first ([`create_or_agree`]: a hard link,
//! atomic on one file system and on NFS); each shard holds `sweeps/<id>.lock` shared and
//! its own `sweeps/<id>.shard-I-of-N.lock` alone.

use super::error::IoAt;
use super::record::Record;
use super::{Result, Store, StoreError};
use crate::util::atomic::write_atomic;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The folder of the store where sweeps are kept.
pub const SWEEPS_DIR: &str = "sweeps";

/// What a sweep runs: one train command per combination of values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepRecord {
    /// The sweep's id (its runs' records name it).
    pub id: String,
    /// The experiment whose runs it makes.
    pub experiment: String,
    /// Per combination, in order: the swept flags and their values (`[("lr", "1e-3")]`).
    pub settings: Vec<Vec<(String, String)>>,
    /// Per combination: the arguments of its train command, after the program's name.
    pub argv: Vec<Vec<String>>,
    /// True for a sweep whose id was given (`--sweep-id`, a cluster's job id) or that runs
    /// in shards: its runs may be made on several hosts, whose clocks differ, so its runs
    /// are looked for among all runs rather than among those newer than its id.
    #[serde(default)]
    pub shared: bool,
    /// For a sweep run in shards: how many, as its first shard planned it (every other shard
    /// must count as many, or combinations would be run twice or never); `None` for a sweep
    /// run whole.
    #[serde(default)]
    pub shards: Option<usize>,
    /// What the `--config` files of the command that planned it held (a digest of their
    /// bytes), when it named any: shards on several hosts each read their own copy, and a
    /// copy with other values would plan other runs under the same flags. `None` for a sweep
    /// planned without one, or before this was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configs: Option<String>,
}

impl SweepRecord {
    /// True when `other` plans the same runs (the same experiment, combinations and
    /// command lines, as given: a caller that compares only what defines the runs passes
    /// the command lines without the rest).
    pub fn same_plan(&self, other: &SweepRecord) -> bool {
        self.experiment == other.experiment
            && self.settings == other.settings
            && self.argv == other.argv
    }
}

fn path(store: &Store, id: &str, ext: &str) -> PathBuf {
    store.root().join(SWEEPS_DIR).join(format!("{id}.{ext}"))
}

/// The store's folder of sweeps (made if need be) and the text of `sweep`'s plan.
fn prepare(store: &Store, sweep: &SweepRecord) -> Result<(PathBuf, String)> {
    let dir = store.root().join(SWEEPS_DIR);
    std::fs::create_dir_all(&dir).at("cannot create", &dir)?;
    let text =
        ron::ser::to_string_pretty(sweep, ron::ser::PrettyConfig::default()).map_err(|e| {
            StoreError::Encode {
                id: sweep.id.clone(),
                message: e.to_string(),
            }
        })?;
    Ok((dir, text))
}

/// Writes the plan of sweep `sweep.id` (atomically).
pub fn write(store: &Store, sweep: &SweepRecord) -> Result<()> {
    let (_, text) = prepare(store, sweep)?;
    write_atomic(&path(store, &sweep.id, "ron"), text.as_bytes()).map_err(StoreError::Write)
}

/// Writes the plan of sweep `sweep.id` unless the store has it already, atomically: the
/// plan is written whole to a temporary file, then hard-linked to its name, which fails
/// when the name exists (on NFS too, where `link` is one call to the server). Returns the
/// plan in the store: `sweep` when this call made it, else the one another process made
/// first (which the caller compares).
pub fn create_or_agree(store: &Store, sweep: &SweepRecord) -> Result<SweepRecord> {
    let (dir, text) = prepare(store, sweep)?;
    if let Some(existing) = read(store, &sweep.id)? {
        return Ok(existing);
    }
    let final_path = path(store, &sweep.id, "ron");
    // A name of this writer's own: shards on several hosts may have the same pid (hence the
    // time), and two threads of one process the same microsecond (hence the count).
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let temp = dir.join(format!(
        ".{}.{}-{}-{}.tmp",
        sweep.id,
        std::process::id(),
        crate::store::fresh_id(),
        WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    write_atomic(&temp, text.as_bytes()).map_err(StoreError::Write)?;
    let linked = std::fs::hard_link(&temp, &final_path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(sweep.clone()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(store, &sweep.id)?
            .ok_or_else(|| StoreError::Corrupt {
                path: final_path,
                message: "it vanished while it was read".into(),
            }),
        Err(e) => Err(e).at("cannot write the sweep", final_path),
    }
}

/// The plan of sweep `id`; `None` when the store has no sweep of that id.
pub fn read(store: &Store, id: &str) -> Result<Option<SweepRecord>> {
    // An id names a file of the folder, never a path elsewhere.
    if id.is_empty() || id.contains(['/', '\\', '.']) {
        return Ok(None);
    }
    let file = path(store, id, "ron");
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at("cannot read the sweep", file),
    };
    ron::from_str(&text)
        .map(Some)
        .map_err(|e| StoreError::Corrupt {
            path: file,
            message: e.to_string(),
        })
}

/// The run of combination `trial` of sweep `sweep`, the newest if several. Ids sort by
/// start time and the sweep's id was made before any of its runs, so only the newer folders
/// are read.
pub fn run_of(store: &Store, sweep: &str, trial: usize) -> Option<Record> {
    runs_newer_than(store, sweep)
        .into_iter()
        .find(|r| r.sweep.as_deref() == Some(sweep) && r.sweep_trial == Some(trial))
}

/// The runs of sweep `sweep` by combination (the newest of each).
pub fn runs(store: &Store, sweep: &str) -> std::collections::BTreeMap<usize, Record> {
    let mut by_trial = std::collections::BTreeMap::new();
    for r in runs_newer_than(store, sweep) {
        if r.sweep.as_deref() != Some(sweep) {
            continue;
        }
        if let Some(trial) = r.sweep_trial {
            by_trial.entry(trial).or_insert(r);
        }
    }
    by_trial
}

/// The readable records that may be runs of sweep `id`, newest first: those whose id sorts
/// after the sweep's, or all for a shared sweep (see [`SweepRecord::shared`]).
fn runs_newer_than(store: &Store, id: &str) -> Vec<Record> {
    let shared = read(store, id).ok().flatten().is_none_or(|s| s.shared);
    store
        .ids()
        .unwrap_or_default()
        .into_iter()
        .rev()
        .take_while(|run| shared || run.as_str() >= id)
        .filter_map(|run| store.read(&run).ok())
        .collect()
}

/// Takes the lock of sweep `id` for as long as the returned file lives; `None` when another
/// process holds it (that sweep is running, whole or in shards).
pub fn lock(store: &Store, id: &str) -> Result<Option<std::fs::File>> {
    take(store, &path(store, id, "lock"), Hold::Alone)
}

/// Takes what shard `index` of `count` of sweep `id` holds while it runs: the sweep's lock,
/// shared with the other shards (so that `train --resume <sweep>` waits for all of them),
/// and the shard's own, alone (so that one shard never runs twice at once). `None` when
/// either is held.
pub fn lock_shard(
    store: &Store,
    id: &str,
    index: usize,
    count: usize,
) -> Result<Option<[std::fs::File; 2]>> {
    let Some(sweep) = take(store, &path(store, id, "lock"), Hold::Shared)? else {
        return Ok(None);
    };
    let own = shard_lock(store, id, index, count);
    Ok(take(store, &own, Hold::Alone)?.map(|shard| [sweep, shard]))
}

/// Removes the lock file of shard `index` of `count` of sweep `id`, held by this process: a
/// shard refused for counting the shards otherwise than the sweep does leaves no file of a
/// count the sweep never has. (Removing it while held is harmless: no other process can hold
/// it, and one that opens it meanwhile locks a file no longer named.)
pub fn forget_shard_lock(store: &Store, id: &str, index: usize, count: usize) {
    let _ = std::fs::remove_file(shard_lock(store, id, index, count));
}

/// The lock file of shard `index` of `count` of sweep `id`.
fn shard_lock(store: &Store, id: &str, index: usize, count: usize) -> PathBuf {
    path(store, id, &format!("shard-{index}-of-{count}.lock"))
}

/// How a lock is held.
enum Hold {
    Alone,
    Shared,
}

/// Takes the lock file `file` of the sweeps' folder; `None` when another process holds it
/// (only "would block" says so: any other error is reported, not taken for a holder).
fn take(store: &Store, file: &std::path::Path, hold: Hold) -> Result<Option<std::fs::File>> {
    let dir = store.root().join(SWEEPS_DIR);
    std::fs::create_dir_all(&dir).at("cannot create", &dir)?;
    let f = super::open_lock_file(file)?;
    let taken = match hold {
        Hold::Alone => f.try_lock(),
        Hold::Shared => f.try_lock_shared(),
    };
    match taken {
        Ok(()) => Ok(Some(f)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e).at("cannot lock", file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_reads_back_and_its_lock_is_held_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        assert_eq!(read(&store, "20261130-080131-egs1").unwrap(), None);
        let sweep = SweepRecord {
            id: "20261130-080131-egs1".into(),
            experiment: "digits".into(),
            settings: vec![vec![("lr".into(), "1e-3".into())]],
            argv: vec![vec!["train".into(), "--lr".into(), "1e-3".into()]],
            shared: false,
            shards: None,
            configs: None,
        };
        write(&store, &sweep).unwrap();
        assert_eq!(read(&store, &sweep.id).unwrap(), Some(sweep.clone()));
        assert_eq!(read(&store, "../runs/x").unwrap(), None);
        let held = lock(&store, &sweep.id).unwrap();
        assert!(held.is_some());
        // Another process's try (a second open file description) finds it held.
        assert!(lock(&store, &sweep.id).unwrap().is_none());
        drop(held);
        assert!(lock(&store, &sweep.id).unwrap().is_some());
    }

    fn plan(id: &str, lr: &str) -> SweepRecord {
        SweepRecord {
            id: id.into(),
            experiment: "digits".into(),
            settings: vec![vec![("lr".into(), lr.into())]],
            argv: vec![vec!["train".into(), "--lr".into(), lr.into()]],
            shared: true,
            shards: Some(2),
            configs: None,
        }
    }

    #[test]
    fn the_first_shard_writes_the_plan_and_the_others_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let first = plan("grid", "1e-3");
        assert_eq!(create_or_agree(&store, &first).unwrap(), first);
        let other = plan("grid", "1e-2");
        let found = create_or_agree(&store, &other).unwrap();
        assert_eq!(found, first, "the plan in the store, not the caller's");
        assert!(!found.same_plan(&other));
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path().join(SWEEPS_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["grid.ron"]);
        // Many shards at once: one plan wins, and every one reads that one.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let found: Vec<SweepRecord> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let store = &store;
                    s.spawn(move || create_or_agree(store, &plan("race", &i.to_string())).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(found.iter().all(|f| f == &found[0]), "{found:?}");
        assert_eq!(read(&store, "race").unwrap().as_ref(), Some(&found[0]));
    }

    #[test]
    fn shards_share_the_sweep_lock_and_hold_their_own_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let zero = lock_shard(&store, "s", 0, 2).unwrap();
        let one = lock_shard(&store, "s", 1, 2).unwrap();
        assert!(zero.is_some() && one.is_some());
        // The same shard twice, or the whole sweep (a resume), waits for them.
        assert!(lock_shard(&store, "s", 0, 2).unwrap().is_none());
        assert!(lock(&store, "s").unwrap().is_none());
        drop((zero, one));
        assert!(lock(&store, "s").unwrap().is_some());
    }

    #[test]
    fn runs_of_a_shared_sweep_older_than_its_id_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        // A run made on a host whose clock is behind: its id sorts before the sweep's.
        let run = store
            .create(Record {
                sweep: Some("zzz-shared".into()),
                sweep_trial: Some(0),
                status: crate::store::record::RunStatus::Finished,
                ..Record::new("digits", crate::store::record::RunKind::Train, 1)
            })
            .unwrap();
        assert!(run_of(&store, "zzz-shared", 0).is_some());
        let mut sweep = plan("zzz-shared", "1");
        sweep.shared = false;
        write(&store, &sweep).unwrap();
        assert!(run_of(&store, "zzz-shared", 0).is_none(), "pruned by id");
        sweep.shared = true;
        write(&store, &sweep).unwrap();
        assert_eq!(run_of(&store, "zzz-shared", 0).unwrap().id, run.id);
    }
}
