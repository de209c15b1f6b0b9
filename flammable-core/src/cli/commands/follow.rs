//! `test --follow [RUN]`: tests a train run's checkpoint sets as they are completed, while it
//! trains, and records the results as `test/<metric>` series on the train run (in a file of
//! the follower's own, see [`crate::store::followers`]).
//!
//! A set counts once its state file (`step-N.ron`, written last) exists. New sets are found
//! by file-system events (`notify`), with a poll every second as the fallback that network
//! file systems need. The follower ends by itself once the train run has ended and its last
//! set is tested.
//!
//! Several followers of one run share its sets: each set is claimed by one of them, and a set
//! whose follower dies is taken over (see [`crate::store::followers::claim`]). With `--every`,
//! the follower pins the sets it still has to test before it does anything else, and says
//! which sets were pruned before it started.

use super::*;
use crate::checkpoint::{load_state, numbered_checkpoints, step_of};
use crate::error::IoContext;
use crate::store::followers::{
    follower_files, pruned_steps, read_run_all_series, write_pin, Claim, FOLLOWERS_DIR,
};
use crate::store::metrics::{MetricWriter, Point};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The series of how long each set waited between its completion and its test (seconds).
const DELAY_SERIES: &str = "follow/delay_s";

/// How long the follower waits for an event before it looks again.
const POLL: Duration = Duration::from_millis(1000);

/// The train run to follow: RUN, else the newest running train run of the experiment, else
/// the newest train run.
fn followed_run(spec: &TaskSpec, store: &Store, run: Option<&str>) -> Result<Record> {
    if let Some(run) = run {
        return parent_run(spec, store, Some(run));
    }
    let records = store.records()?;
    let mine = |r: &&Record| r.experiment == spec.experiment && r.kind == RunKind::Train;
    if let Some(r) = records
        .iter()
        .rev()
        .filter(mine)
        .find(|r| r.status == RunStatus::Running)
    {
        return Ok(r.clone());
    }
    records.iter().rev().find(mine).cloned().ok_or_else(|| {
        Error::usage(format!(
            "no train run of {} to follow: start one with `train`",
            spec.experiment
        ))
    })
}

/// What tells the follower of new files: a file-system watcher and its events.
#[cfg(feature = "follow-events")]
type Watcher = (notify::RecommendedWatcher, std::sync::mpsc::Receiver<()>);
/// Without the `follow-events` feature there is no watcher: the follower polls.
#[cfg(not(feature = "follow-events"))]
type Watcher = ((), std::sync::mpsc::Receiver<()>);

/// Without the `follow-events` feature, the follower polls every second.
#[cfg(not(feature = "follow-events"))]
fn watch(_dir: &Path) -> Option<Watcher> {
    None
}

/// Watches `dir` for new files; `None` when the platform or file system cannot (then the
/// follower polls).
#[cfg(feature = "follow-events")]
fn watch(dir: &Path) -> Option<Watcher> {
    use notify::Watcher as _;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |_event| {
        let _ = tx.send(());
    })
    .ok()?;
    watcher
        .watch(dir, notify::RecursiveMode::NonRecursive)
        .ok()?;
    Some((watcher, rx))
}

pub(super) fn follow(
    spec: &TaskSpec,
    g: &Global,
    a: TestArgs,
    argv: Vec<String>,
    threads: usize,
) -> Result<ExitCode> {
    let stop = stop_on_signals();
    let store = g.store()?;
    let parent = followed_run(spec, &store, a.run.as_deref())?;
    let (env, hyper) = child_run(
        spec,
        g,
        RunKind::Test,
        (Some(&parent.id), None),
        argv,
        threads,
    )?;
    let results = conclude(&env, || {
        (spec.follow)(hyper.as_ref(), &env, &mut |tester| {
            follow_checkpoints(&store, &parent, &env, tester, &a, &stop)
        })
    })?;
    if !results.is_empty() {
        print_results(&env, "tested (the last set)", &results)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// This follower's pin (`--every`, see [`crate::store::followers`]), written when it changes.
struct Pin {
    path: PathBuf,
    at: Option<u64>,
}

impl Pin {
    fn set(&mut self, step: u64) -> Result<()> {
        if self.at != Some(step) {
            write_pin(&self.path, step).map_err(|e| Error::io("cannot write", &self.path, e))?;
            self.at = Some(step);
        }
        Ok(())
    }
}

/// The pin of a follower that has tested (or knows tested) the sets `done`, while the sets
/// at `present` (ascending) are on disk: just below the first set not tested, so that the
/// trainer keeps it and every later one; the newest set when all are tested.
fn pin_for(present: &[u64], done: &BTreeSet<u64>) -> u64 {
    match present.iter().find(|s| !done.contains(s)) {
        Some(s) => s.saturating_sub(1),
        None => present.last().copied().unwrap_or(0),
    }
}

/// `step-…` names of `steps`, the first few and how many more.
fn set_names(steps: &[u64]) -> String {
    const SHOWN: usize = 5;
    let mut names: Vec<String> = steps
        .iter()
        .take(SHOWN)
        .map(|s| format!("step-{s}"))
        .collect();
    if steps.len() > SHOWN {
        names.push(format!("and {} more", steps.len() - SHOWN));
    }
    names.join(", ")
}

fn follow_checkpoints(
    store: &Store,
    parent: &Record,
    env: &Env,
    tester: &mut dyn FnMut(&str) -> Result<Results>,
    a: &TestArgs,
    stop: &std::sync::atomic::AtomicUsize,
) -> Result<Results> {
    let run = env
        .run()
        .ok_or_else(|| Error::msg("internal error: a follower without its run"))?;
    let me = run.id();
    let run_dir = store.run_dir(&parent.id);
    let checkpoints = run_dir.join(CHECKPOINTS_DIR);
    let followers = run_dir.join(FOLLOWERS_DIR);
    std::fs::create_dir_all(&followers).at("cannot create", &followers)?;
    let (metrics_path, pin_path, lock_path) = follower_files(&run_dir, &me);
    // Held for as long as this process lives: the trainer trusts the pin of a live follower
    // only, and other followers take over the sets a dead one claimed.
    let lock = crate::store::open_lock_file(&lock_path)?;
    lock.lock().at("cannot lock", &lock_path)?;
    let mut pin = Pin {
        path: pin_path,
        at: None,
    };
    if a.every {
        // Before anything else: from here on the trainer prunes no set until this follower
        // knows which ones it has to test (reading the metrics can take long).
        pin.set(0)?;
    }
    let mut writer = MetricWriter::new(metrics_path);
    // What any follower (or the trainer's --test-every) already recorded is not tested again.
    let mut done: BTreeSet<u64> = read_run_all_series(&run_dir)
        .map_err(|e| Error::io("cannot read metrics of", &run_dir, e))?
        .into_iter()
        .filter(|(name, _)| name.starts_with("test/"))
        .flat_map(|(_, s)| s.steps)
        .collect();
    // Sets pruned before this follower pinned: nobody can test them any more.
    let mut missed: Vec<u64> = if a.every {
        pruned_steps(&run_dir)
            .into_iter()
            .filter(|s| !done.contains(s))
            .collect()
    } else {
        Vec::new()
    };
    env.say(&format!(
        "following run {} ({}): testing {} as its checkpoint sets complete",
        parent.id,
        parent.status,
        if a.every {
            "every set"
        } else {
            "the newest set"
        }
    ));
    if !missed.is_empty() {
        env.say(&format!(
            "warning: {} set(s) were pruned before this follower started and cannot be tested: {}",
            missed.len(),
            set_names(&missed)
        ));
    }
    let mut watcher = None;
    let mut last = Results::new();
    loop {
        if let Some(signal) = std::num::NonZeroUsize::new(stop.load(Ordering::SeqCst)) {
            return Err(Error::Interrupted {
                signal: signal.get() as i32,
                step: done.last().copied().unwrap_or(0),
            });
        }
        // Looked at before the sets: a set written just before the trainer ends is seen.
        let alive = store.is_alive(&parent.id);
        let mut present: Vec<(u64, String)> = numbered_checkpoints(&checkpoints)
            .into_iter()
            .filter_map(|n| Some((step_of(&n)?, n)))
            .collect();
        present.sort();
        let mut waiting: Vec<(u64, String)> = present
            .iter()
            .filter(|(s, _)| !done.contains(s))
            .cloned()
            .collect();
        if !a.every {
            let newest = waiting.pop();
            if !waiting.is_empty() {
                let names: Vec<&str> = waiting.iter().map(|(_, n)| n.as_str()).collect();
                env.say(&format!(
                    "skipped {} (sets came faster than tests; --every tests each)",
                    names.join(", ")
                ));
                done.extend(waiting.iter().map(|(s, _)| *s));
            }
            waiting = newest.into_iter().collect();
        }
        // The first set waiting that no other follower tests or has tested.
        let mut chosen = None;
        let mut elsewhere = false;
        for (step, name) in waiting {
            let claim = crate::store::followers::claim(&run_dir, &me, step)
                .map_err(|e| Error::io("cannot claim a set in", &followers, e))?;
            match claim {
                Claim::Mine => {
                    chosen = Some((step, name));
                    break;
                }
                Claim::Tested => {
                    done.insert(step);
                }
                Claim::Taken => elsewhere = true,
            }
        }
        if a.every {
            let steps: Vec<u64> = present.iter().map(|(s, _)| *s).collect();
            pin.set(pin_for(&steps, &done))?;
        }
        if let Some((step, name)) = chosen {
            // How long the set waited for its test: from its completion (its state file) to now.
            let waited = std::fs::metadata(checkpoints.join(format!("{name}.ron")))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .map(|d| d.as_secs_f64());
            match test_set(&checkpoints, &name, tester) {
                Ok((epoch, results)) => {
                    let mut points: Vec<Point> = results
                        .iter()
                        .map(|(m, v)| Point::now(format!("test/{m}"), step, epoch, *v))
                        .collect();
                    points.extend(waited.map(|w| Point::now(DELAY_SERIES, step, epoch, w)));
                    writer.write(&points);
                    crate::store::followers::mark_tested(&run_dir, &me, step)
                        .map_err(|e| Error::io("cannot record a tested set in", &followers, e))?;
                    let shown: Vec<String> = results
                        .iter()
                        .map(|(m, v)| format!("{m} {}", crate::util::number::metric_text(*v)))
                        .collect();
                    // Epochs are counted from 1 on the console, as training prints them.
                    env.say(&format!(
                        "{name} (epoch {}): {}",
                        epoch + 1,
                        shown.join(", ")
                    ));
                    last = results;
                }
                // Pruned by the trainer before it could be read: without --every, or in the
                // moment before an --every follower's first pin.
                Err(e) if !checkpoints.join(format!("{name}.ron")).exists() => {
                    env.say(&format!("{name} was removed before it was tested ({e})"));
                    if a.every {
                        missed.push(step);
                    }
                }
                Err(e) => return Err(e),
            }
            done.insert(step);
            continue;
        }
        // Sets another follower is testing are waited for: should it die, they are taken over.
        if !alive && !elsewhere {
            let status = store
                .read(&parent.id)
                .map(|r| r.status)
                .unwrap_or(RunStatus::Crashed);
            let outcome = if present.is_empty() && missed.is_empty() {
                "it left no checkpoint set to test".to_string()
            } else if !a.every {
                "its newest set is tested".to_string()
            } else if missed.is_empty() {
                "every set is tested".to_string()
            } else {
                missed.sort_unstable();
                format!(
                    "every set is tested but {} pruned before they could be ({}); start the follower with the run, or train with a larger --keep-checkpoints",
                    missed.len(),
                    set_names(&missed)
                )
            };
            env.say(&format!("run {} ended ({status}): {outcome}", parent.id));
            break;
        }
        if watcher.is_none() && !a.poll {
            watcher = watch(&checkpoints);
        }
        match &watcher {
            Some((_, events)) => {
                let _ = events.recv_timeout(POLL);
                // Several events come for one set: take them all.
                while events.try_recv().is_ok() {}
            }
            None => std::thread::sleep(POLL),
        }
    }
    drop(lock);
    let _ = std::fs::remove_file(&pin.path);
    if !last.is_empty() {
        run.set_metrics(&last)?;
        run.report_to_parent(&last)?;
    }
    Ok(last)
}

/// Tests set `name`: (its epoch, the results).
fn test_set(
    checkpoints: &Path,
    name: &str,
    tester: &mut dyn FnMut(&str) -> Result<Results>,
) -> Result<(u64, Results)> {
    let state = load_state(&checkpoints.join(format!("{name}.ron")))?;
    // A set written at the end of an epoch says the next epoch is where to continue.
    let epoch = if state.batch == 0 {
        state.epoch.saturating_sub(1)
    } else {
        state.epoch
    };
    Ok((epoch, tester(name)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_stays_below_the_first_set_not_tested() {
        let done = BTreeSet::from([20, 40]);
        assert_eq!(pin_for(&[10, 20, 30, 40], &done), 9);
        assert_eq!(pin_for(&[20, 30, 40], &done), 29);
        assert_eq!(pin_for(&[20, 40], &done), 40, "all tested: the newest");
        assert_eq!(pin_for(&[], &done), 0);
    }

    #[test]
    fn a_long_list_of_sets_is_cut_short() {
        assert_eq!(set_names(&[1, 2]), "step-1, step-2");
        let many: Vec<u64> = (1..=8).collect();
        assert_eq!(
            set_names(&many),
            "step-1, step-2, step-3, step-4, step-5, and 3 more"
        );
    }
}
