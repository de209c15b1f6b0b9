//! What of a sweep is left to do, from its runs in the store: a combination whose run
//! finished or failed is done (a failure is not retried: it is the run's result, and would
//! most likely fail again; `rm` the run to try it once more), one whose run stopped
//! (interrupted, crashed) is resumed from its checkpoint, one without a run is started. The
//! same rule serves `train --resume <sweep>` (every combination) and a shard run again (a
//! Slurm requeue, a Kubernetes retry, the same command typed twice): no sweep ever collects
//! two runs of one combination.

use super::*;
use crate::store::sweeps;

/// The combinations of a sweep that are done, and the runs left to resume or start.
pub(super) struct Left {
    /// The runs to resume or start, in the order asked.
    pub(super) jobs: Vec<Job>,
    /// How many combinations have a finished run.
    pub(super) finished: usize,
    /// The combinations whose run failed, with that run's id.
    pub(super) failed: Vec<(usize, String)>,
}

impl Left {
    /// How many combinations are done (finished or failed).
    pub(super) fn done(&self) -> usize {
        self.finished + self.failed.len()
    }
}

/// What is left of combinations `trials` of sweep `sweep`, each given with the arguments
/// that start it: each stopped run is resumed with `resume_with` followed by
/// `--resume RUN`. An error (one line) when one of their runs is still running.
pub(super) fn left_to_do(
    store: &Store,
    sweep: &str,
    trials: impl IntoIterator<Item = (usize, Vec<OsString>)>,
    resume_with: &[OsString],
) -> Result<Left> {
    let runs = sweeps::runs(store, sweep);
    let mut left = Left {
        jobs: Vec::new(),
        finished: 0,
        failed: Vec::new(),
    };
    for (trial, argv) in trials {
        let Some(run) = runs.get(&trial) else {
            left.jobs.push(Job {
                trial,
                argv,
                resumes: None,
            });
            continue;
        };
        match run.status {
            RunStatus::Finished => {
                left.finished += 1;
                continue;
            }
            RunStatus::Failed => {
                left.failed.push((trial, run.id.clone()));
                continue;
            }
            _ => {}
        }
        if store.is_alive(&run.id) {
            return Err(Error::usage(format!(
                "run {} of sweep {sweep} is still running: stop it first",
                run.id
            )));
        }
        let mut args = resume_with.to_vec();
        args.extend([OsString::from("--resume"), OsString::from(&run.id)]);
        left.jobs.push(Job {
            trial,
            argv: args,
            resumes: Some(run.id.clone()),
        });
    }
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::RunKind;

    fn run_of(store: &Store, trial: usize, status: RunStatus) -> String {
        store
            .create(Record {
                sweep: Some("grid".into()),
                sweep_trial: Some(trial),
                status,
                ..Record::new("digits", RunKind::Train, 1)
            })
            .unwrap()
            .id
    }

    #[test]
    fn done_combinations_are_skipped_stopped_ones_resumed_the_rest_started() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        run_of(&store, 0, RunStatus::Finished);
        let failed = run_of(&store, 1, RunStatus::Failed);
        let interrupted = run_of(&store, 2, RunStatus::Interrupted);
        // Running in its record, but no process holds its lock: it crashed.
        let crashed = run_of(&store, 3, RunStatus::Running);
        let trials = (0..5).map(|t| (t, vec![OsString::from(format!("start-{t}"))]));
        let left = left_to_do(&store, "grid", trials, &["train".into()]).unwrap();
        assert_eq!((left.finished, left.failed.clone()), (1, vec![(1, failed)]));
        assert_eq!(left.done(), 2);
        let jobs: Vec<(usize, Vec<OsString>, Option<String>)> = left
            .jobs
            .into_iter()
            .map(|j| (j.trial, j.argv, j.resumes))
            .collect();
        let resume = |id: &str| vec!["train".into(), "--resume".into(), OsString::from(id)];
        assert_eq!(
            jobs,
            [
                (2, resume(&interrupted), Some(interrupted.clone())),
                (3, resume(&crashed), Some(crashed.clone())),
                (4, vec!["start-4".into()], None),
            ]
        );
        // A run whose process holds its lock is still running: nothing is started twice.
        let (live, _held) = store
            .create_locked(Record {
                sweep: Some("grid".into()),
                sweep_trial: Some(5),
                ..Record::new("digits", RunKind::Train, 1)
            })
            .unwrap();
        let trials = (0..6).map(|t| (t, Vec::new()));
        let e = left_to_do(&store, "grid", trials, &[]).err().unwrap();
        assert!(e
            .to_string()
            .contains(&format!("run {} of sweep grid is still running", live.id)));
    }
}
