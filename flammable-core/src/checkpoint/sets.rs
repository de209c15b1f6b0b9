//! Checkpoint sets of a run's `checkpoints/` folder: their names (`latest`, `best`,
//! `step-N`), the links that point at a set, pruning, and the newest set that loads.

use super::{load_state, load_tensors, TrainingState, CHECKPOINT_FILES};
use crate::error::{IoContext, Result};
use crate::store::CHECKPOINTS_DIR;
use crate::util::atomic::{commit_temp, temp_path_for};
use std::path::Path;

/// Points checkpoint `alias` (`latest`, `best`) of `dir` at the set `name`: a hard link per
/// file (a copy where links are unsupported), each replacing the old one atomically.
pub fn link_checkpoint(dir: &Path, name: &str, alias: &str) -> Result<()> {
    for ext in CHECKPOINT_FILES {
        let src = dir.join(format!("{name}.{ext}"));
        if !src.exists() {
            continue;
        }
        let dst = dir.join(format!("{alias}.{ext}"));
        let tmp = temp_path_for(&dst);
        if std::fs::hard_link(&src, &tmp).is_err() {
            std::fs::copy(&src, &tmp).at("cannot copy", &src)?;
        }
        commit_temp(&tmp, &dst)?;
    }
    Ok(())
}

/// The numbered set (`step-0000000046`) that checkpoint `name` of the folder `dir` is now, and
/// its step: an alias (`latest`, `best`) as its state file names it, a numbered set as it is;
/// `None` when that cannot be read or the set is gone. Loading the set by that name rather
/// than by the alias keeps a training that moves the alias meanwhile from mixing two sets.
pub fn set_of(dir: &Path, name: &str) -> Option<(String, u64)> {
    let set = match name {
        "latest" | "best" => {
            crate::checkpoint::load_state(&dir.join(format!("{name}.ron")))
                .ok()?
                .name
        }
        _ => name.to_string(),
    };
    let step = set.strip_prefix("step-")?.parse::<u64>().ok()?;
    dir.join(format!("{set}.safetensors"))
        .exists()
        .then_some((set, step))
}

/// Checks a checkpoint name given on the command line: `latest`, `best` or `step-N`; returns
/// the name of its files (`step-N` padded as the sets are named).
pub fn parse_checkpoint_name(s: &str) -> std::result::Result<String, String> {
    match s {
        "latest" | "best" => Ok(s.to_string()),
        _ => s
            .strip_prefix("step-")
            .and_then(|n| n.parse::<u64>().ok())
            .map(|n| format!("step-{n:010}"))
            .ok_or_else(|| "expected latest, best or step-N (N a step number)".to_string()),
    }
}

/// Removes the temporary files a process killed while writing a checkpoint left in `dir`;
/// returns how many. Call only while no other process writes there (the run's lock held).
pub fn remove_temporary_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with('.') && name.ends_with(".tmp")
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// The checkpoints of `dir` a user can name: `latest`, `best` and the numbered sets, newest
/// first (for messages).
pub fn checkpoint_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = ["latest", "best"]
        .into_iter()
        .filter(|n| {
            dir.join(format!("{n}.ron")).exists() || dir.join(format!("{n}.safetensors")).exists()
        })
        .map(str::to_string)
        .collect();
    names.extend(numbered_checkpoints(dir));
    names
}

/// A checkpoint a run does not have: its name, and the ones it has (newest first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingCheckpoint {
    /// The run.
    pub run: String,
    /// The checkpoint asked for (`best`, `step-0000000046`).
    pub name: String,
    /// The checkpoints the run has (see [`checkpoint_names`]).
    pub available: Vec<String>,
}

impl MissingCheckpoint {
    /// The error for `record`'s run, with how to get the checkpoint when the run was pulled
    /// ([`pull_hint`]); a pulled run whose `best` was left on its remote or its pushing host
    /// is not told to train with `--best-metric`.
    pub fn of_run(&self, record: &crate::store::record::Record) -> String {
        let hint = pull_hint(record, &self.name);
        if kept_elsewhere(record, &self.name) {
            format!("{}{hint}", self.said(""))
        } else {
            format!("{self}{hint}")
        }
    }

    /// The message with `hint` after the checkpoint's name.
    fn said(&self, hint: &str) -> String {
        let has = if self.available.is_empty() {
            "none".to_string()
        } else {
            self.available.join(", ")
        };
        format!(
            "run {} has no checkpoint `{}`{hint}; it has: {has}",
            self.run, self.name
        )
    }
}

/// Whether pulled run `record`'s checkpoint `name` was left on its remote or its pushing
/// host (it exists, elsewhere).
fn kept_elsewhere(record: &crate::store::record::Record, name: &str) -> bool {
    let set = format!("{CHECKPOINTS_DIR}/{name}.");
    record.origin.as_ref().is_some_and(|o| {
        o.not_pulled
            .iter()
            .chain(&o.not_pushed)
            .any(|p| p.starts_with(&set))
    })
}

impl std::fmt::Display for MissingCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hint = if self.name == "best" {
            " (train with --best-metric to keep one)"
        } else {
            ""
        };
        f.write_str(&self.said(hint))
    }
}

/// For a pulled run (`flammable pull`) that lacks checkpoint `name`: how to pull it (empty
/// for a run made here).
pub fn pull_hint(record: &crate::store::record::Record, name: &str) -> String {
    let Some(o) = &record.origin else {
        return String::new();
    };
    let set = format!("{CHECKPOINTS_DIR}/{name}.");
    if o.not_pushed.iter().any(|p| p.starts_with(&set)) {
        return format!(
            "; its push from {} left it there: push it with `--checkpoints all` from that host, then pull it",
            o.host
        );
    }
    if !kept_elsewhere(record, name) {
        // Neither left on the pushing host nor on the remote: the run never had it, and a
        // pull would not bring it.
        return format!(
            "; {} held no such checkpoint either{}",
            o.remote,
            if name == "best" {
                " (the run kept no best: give --checkpoint latest)"
            } else {
                ""
            }
        );
    }
    let choice = if matches!(name, "best" | "latest") {
        name
    } else {
        "all"
    };
    format!(
        "; it was pulled from {} without it: `flammable pull {} {} --checkpoints {choice}`",
        o.remote, o.remote, record.id
    )
}

/// `Ok` when run `run`'s checkpoints folder `dir` holds checkpoint `name` (a name checked by
/// [`parse_checkpoint_name`]); otherwise what it holds instead.
pub fn require(dir: &Path, run: &str, name: &str) -> std::result::Result<(), MissingCheckpoint> {
    if dir.join(format!("{name}.safetensors")).exists() {
        return Ok(());
    }
    Err(MissingCheckpoint {
        run: run.to_string(),
        name: name.to_string(),
        available: checkpoint_names(dir),
    })
}

/// The numbered checkpoint sets of `dir` (`step-…`), newest first.
pub fn numbered_checkpoints(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_suffix(".ron")
                .filter(|s| s.starts_with("step-"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names.reverse();
    names
}

/// The step a numbered set was written at (`step-0000001234` → 1234); `None` for `latest`,
/// `best` and other names.
pub fn step_of(name: &str) -> Option<u64> {
    name.strip_prefix("step-")?.parse().ok()
}

/// Removes numbered sets beyond the newest `keep` (the `latest` and `best` links keep their
/// own copies of the files), except those after `pinned`, the lowest step a live
/// `test --follow --every` of the run has tested up to (see [`crate::run::Followers`]): they
/// go once tested. Returns the steps of the sets removed.
pub fn prune_checkpoints(dir: &Path, keep: usize, pinned: Option<u64>) -> Vec<u64> {
    let mut removed = Vec::new();
    for name in numbered_checkpoints(dir).into_iter().skip(keep) {
        let step = step_of(&name);
        if let (Some(pin), Some(step)) = (pinned, step) {
            if step > pin {
                continue;
            }
        }
        remove_checkpoint_set(dir, &name);
        removed.extend(step);
    }
    removed.sort_unstable();
    removed
}

/// Removes the files of checkpoint set `name` of `dir` that exist, the state file first, so
/// that the set stops counting as complete before its other files go.
pub fn remove_checkpoint_set(dir: &Path, name: &str) {
    for ext in CHECKPOINT_FILES.iter().rev() {
        let _ = std::fs::remove_file(dir.join(format!("{name}.{ext}")));
    }
}

/// The newest checkpoint of `dir` that loads: the set `latest` names, else the numbered sets
/// newest first. Returns its state, and a note for each corrupt one passed over.
///
/// The numbered set that `latest.ron` names is preferred over the `latest.*` links: the links
/// are replaced one file at a time, so a process killed while relinking can leave
/// `latest.safetensors` one set ahead of `latest.ron`; numbered sets are never rewritten.
pub fn newest_good_checkpoint(dir: &Path) -> (Option<(String, TrainingState)>, Vec<String>) {
    let mut notes = Vec::new();
    let named_by_latest = load_state(&dir.join("latest.ron"))
        .ok()
        .map(|state| state.name)
        .filter(|name| !name.is_empty() && dir.join(format!("{name}.ron")).exists());
    let mut candidates = vec![named_by_latest.unwrap_or_else(|| "latest".to_string())];
    for name in numbered_checkpoints(dir) {
        if !candidates.contains(&name) {
            candidates.push(name);
        }
    }
    for name in candidates {
        let state_path = dir.join(format!("{name}.ron"));
        if !state_path.exists() {
            continue;
        }
        let check = load_state(&state_path).and_then(|state| {
            load_tensors(&dir.join(format!("{name}.safetensors")))?;
            let opt = dir.join(format!("{name}.optimizer.safetensors"));
            if opt.exists() {
                load_tensors(&opt)?;
            }
            Ok(state)
        });
        match check {
            Ok(state) => return (Some((name, state)), notes),
            Err(e) => notes.push(format!(
                "checkpoint `{name}` is unusable ({e}); trying an older one"
            )),
        }
    }
    (None, notes)
}
