//! `bisect`: the first commit whose metric crosses a threshold, between a good and a bad state
//! (runs' base commits, or revisions). Each commit is judged by the runs that already trained
//! its code with the same hyperparameters, else by training it again (the good run's
//! hyperparameters on that commit's code, as `rerun` does), over one or more seeds. A commit
//! that does not build is skipped, as `git bisect run` skips on exit code 125; `bisect-check`
//! judges one commit for `git bisect run`.

use super::rerun::TaskBuild;
use super::*;

/// The arguments that say what a good commit is.
#[derive(Args, Debug, Clone)]
#[command(group = clap::ArgGroup::new("threshold").args(["min", "max"]).required(true))]
pub struct Judge {
    /// The metric: a final metric of a train run (`loss`, `val/accuracy`) or of its last test
    /// (`test/accuracy`: commits trained by the bisect are then tested too).
    #[arg(long)]
    metric: String,
    /// Good when the metric is at least this (for accuracies).
    #[arg(long, conflicts_with = "max", allow_negative_numbers = true)]
    min: Option<f64>,
    /// Good when the metric is at most this (for losses and errors).
    #[arg(long, allow_negative_numbers = true)]
    max: Option<f64>,
    /// Runs (seeds) a commit is judged on, by their mean; one that falls within two standard
    /// errors of the threshold gets more, up to three more.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
    seeds: u16,
}

/// `bisect`'s arguments.
#[derive(Args, Debug)]
pub struct BisectArgs {
    /// A good state: a train run (its base commit; its hyperparameters train the commits) or
    /// a revision (`v1.2`, a commit).
    #[arg(long)]
    good: String,
    /// A bad state: a train run or a revision (`HEAD`).
    #[arg(long)]
    bad: String,
    #[command(flatten)]
    judge: Judge,
    /// The train run whose hyperparameters, package and binary train the commits (default:
    /// the good run, else the bad one; needed when both are revisions).
    #[arg(long, value_name = "RUN")]
    like: Option<String>,
}

/// `bisect-check`'s arguments.
#[derive(Args, Debug)]
pub struct BisectCheckArgs {
    /// The train run whose hyperparameters, package and binary train the commit.
    #[arg(long, value_name = "RUN")]
    like: String,
    #[command(flatten)]
    judge: Judge,
    /// The commit to judge (default: HEAD, which `git bisect run` checks out).
    #[arg(long, default_value = "HEAD")]
    commit: String,
}

/// More seeds a commit too close to call may get.
const EXTRA_SEEDS: usize = 3;

/// What a commit's runs say.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Verdict {
    /// Good, with the runs and their values.
    Good(Vec<(String, f64)>),
    /// Bad, likewise.
    Bad(Vec<(String, f64)>),
    /// Cannot be judged (does not build, training failed), and why.
    Skip(String),
}

/// Whether values `values` are good, too close to call (`None`: train another seed), given
/// the threshold. The statistic is their mean; "too close" is within two standard errors of
/// the threshold, with at least two values and fewer than `most` of them.
pub(super) fn decide(
    values: &[f64],
    min: Option<f64>,
    max: Option<f64>,
    most: usize,
) -> Option<bool> {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let threshold = min.or(max)?;
    if values.len() >= 2 && values.len() < most {
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let se = (var / n).sqrt();
        if (mean - threshold).abs() < 2.0 * se {
            return None;
        }
    }
    Some(match (min, max) {
        (Some(m), _) => mean >= m,
        (_, Some(m)) => mean <= m,
        _ => return None,
    })
}

/// The mean and the spread (min–max) of `values`, as printed.
fn summary(name: &str, values: &[(String, f64)]) -> String {
    let v: Vec<f64> = values.iter().map(|(_, v)| *v).collect();
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (lo, hi) = v
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(*x), b.max(*x))
        });
    if v.len() == 1 {
        format!("{name} {} (1 run)", metric_text(mean))
    } else {
        format!(
            "{name} {} (mean of {} runs, {}–{})",
            metric_text(mean),
            v.len(),
            metric_text(lo),
            metric_text(hi)
        )
    }
}

use crate::util::number::metric_text;

/// Judges commits of one repository like one train run.
struct Bisector<'a> {
    store: &'a Store,
    like: &'a Record,
    judge: &'a Judge,
    git_dir: PathBuf,
    build: TaskBuild<'a>,
    /// Names the runs this bisect trains (in their message).
    tag: String,
    hyper: BTreeMap<String, String>,
    /// Held while this bisect uses the model run's folder (`work_dir`).
    _lock: std::fs::File,
}

impl<'a> Bisector<'a> {
    fn new(store: &'a Store, like: &'a Record, judge: &'a Judge) -> Result<Bisector<'a>> {
        let s = snapshot_of(like)?;
        if judge.metric.trim().is_empty() {
            return Err(Error::usage(
                "--metric is empty: name a metric (`loss`, `test/accuracy`)",
            ));
        }
        if judge.min.or(judge.max).is_some_and(|x| !x.is_finite()) {
            return Err(Error::usage("--min and --max take a finite number"));
        }
        let metrics = like.all_metrics();
        if !metrics.contains_key(&judge.metric) && !judge.metric.starts_with("test/") {
            return Err(Error::usage(format!(
                "run {} has no metric `{}`; it has: {}",
                like.id,
                judge.metric,
                metrics.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let build = TaskBuild::of(store, like)?;
        let bisects = build.root.join("bisect");
        std::fs::create_dir_all(&bisects).at("cannot create", &bisects)?;
        let lock_path = bisects.join(format!("{}.lock", like.id));
        let lock = crate::store::open_lock_file(&lock_path)?;
        // One bisect at a time follows commits in the model run's folder.
        lock.lock().at("cannot lock", &lock_path)?;
        Ok(Bisector {
            store,
            like,
            judge,
            git_dir: s.git_dir.clone(),
            build,
            tag: format!("bisect {}", crate::store::fresh_id()),
            hyper: hyperparameters(store, &like.id),
            _lock: lock,
        })
    }

    /// The finished train runs of `commit`'s code with the same experiment and
    /// hyperparameters as the model run, and their value of the metric.
    fn runs_of(&self, commit: &str) -> Result<Vec<(String, u64, f64)>> {
        let mut out: Vec<(String, u64, f64)> = Vec::new();
        for r in self.store.records()? {
            let same_code = r.snapshot.as_ref().is_some_and(|s| {
                s.commit == commit || (!s.dirty && s.parent.as_deref() == Some(commit))
            });
            if r.kind != RunKind::Train
                || r.status != RunStatus::Finished
                || r.experiment != self.like.experiment
                || !same_code
                || r.distributed.as_ref().map(|d| d.world_size)
                    != self.like.distributed.as_ref().map(|d| d.world_size)
                // One run per seed: a rerun of a run is the same evidence again.
                || out.iter().any(|(_, seed, _)| *seed == r.seed)
            {
                continue;
            }
            // The same settings where both name one (code of other commits may know more or
            // fewer hyperparameters).
            let theirs = hyperparameters(self.store, &r.id);
            if theirs
                .iter()
                .any(|(k, v)| self.hyper.get(k).is_some_and(|own| own != v))
            {
                continue;
            }
            if let Some(v) = r.all_metrics().get(&self.judge.metric) {
                out.push((r.id.clone(), r.seed, *v));
            }
        }
        Ok(out)
    }

    /// Judges `commit`: its runs, more trained until there are enough. A commit that cannot
    /// be built or trained is judged by the runs it has, if any.
    fn judge(&self, commit: &str) -> Result<Verdict> {
        let mut runs = self.runs_of(commit)?;
        let wanted = usize::from(self.judge.seeds);
        let most = wanted + EXTRA_SEEDS;
        let mut built: Option<PathBuf> = None;
        let verdict = |runs: &[(String, u64, f64)], most: usize| {
            if runs.is_empty() {
                return None;
            }
            let numbers: Vec<f64> = runs.iter().map(|(_, _, v)| *v).collect();
            let values = runs.iter().map(|(id, _, v)| (id.clone(), *v)).collect();
            match decide(&numbers, self.judge.min, self.judge.max, most) {
                Some(true) => Some(Verdict::Good(values)),
                Some(false) => Some(Verdict::Bad(values)),
                None => None,
            }
        };
        loop {
            if runs.len() >= wanted {
                if let Some(v) = verdict(&runs, most) {
                    return Ok(v);
                }
            }
            let exe = match &built {
                Some(exe) => exe.clone(),
                None => match self.build_commit(commit)? {
                    Ok(exe) => {
                        built = Some(exe.clone());
                        exe
                    }
                    Err(why) => return Ok(verdict(&runs, runs.len()).unwrap_or(Verdict::Skip(why))),
                },
            };
            // The lowest seed from the model run's up that no run of this commit used.
            let mut seed = self.like.seed;
            while runs.iter().any(|(_, s, _)| *s == seed) {
                seed = seed.wrapping_add(1);
            }
            match self.train(&exe, commit, seed)? {
                Ok((id, v)) => runs.push((id, seed, v)),
                Err(why) => return Ok(verdict(&runs, runs.len()).unwrap_or(Verdict::Skip(why))),
            }
        }
    }

    /// The binary built from `commit` (a copy of its own, which a later build cannot
    /// replace under a training), or why it cannot be.
    fn build_commit(&self, commit: &str) -> Result<std::result::Result<PathBuf, String>> {
        let work = self.work_dir();
        let src = work.join("src");
        snapshot::follow_commit(&self.git_dir, &work.join("index"), &src, commit)?;
        crate::util::stderr::errln!("  {}: building", short_commit(commit));
        let exe = match self.build.build(&src)? {
            Ok(exe) => exe,
            Err(status) => return Ok(Err(format!("does not build ({status})"))),
        };
        let own = work.join("bin").join(short_commit(commit));
        std::fs::create_dir_all(own.parent().unwrap_or(&work)).at("cannot create", &work)?;
        std::fs::copy(&exe, &own).at("cannot copy", &exe)?;
        Ok(Ok(own))
    }

    /// The folder of this bisect's checkouts and binaries: one per model run, held by one
    /// bisect at a time.
    fn work_dir(&self) -> PathBuf {
        self.build.root.join("bisect").join(&self.like.id)
    }

    /// A new run of `commit` with `seed` (tested too when the metric is a test's): its id and
    /// value, or why there is none.
    fn train(
        &self,
        exe: &Path,
        commit: &str,
        seed: u64,
    ) -> Result<std::result::Result<(String, f64), String>> {
        let src = self
            .build
            .root
            .join("bisect")
            .join(&self.like.id)
            .join("src");
        let message = format!("{}: {} seed {seed}", self.tag, short_commit(commit));
        crate::util::stderr::errln!("  {}: training with seed {seed}", short_commit(commit));
        let cmd = self
            .build
            .train(exe, &src, seed, &message, commit, &self.git_dir);
        let status = self.build.start(quiet(cmd))?;
        let run = self
            .store
            .records()?
            .into_iter()
            .rev()
            .find(|r| r.message.as_deref() == Some(message.as_str()));
        let Some(run) = run else {
            return Ok(Err(format!("its training made no run ({status})")));
        };
        if !status.success() || run.status != RunStatus::Finished {
            return Ok(Err(format!("its training {} (run {})", run.status, run.id)));
        }
        if self.judge.metric.starts_with("test/") {
            let mut test = std::process::Command::new(exe);
            test.args(["test", &run.id])
                .current_dir(&src)
                .env(crate::store::STORE_ENV, &self.build.root);
            let tested = quiet(test).status().at("cannot start", exe)?;
            if !tested.success() {
                return Ok(Err(format!("its test failed ({tested}; run {})", run.id)));
            }
        }
        let run = self.store.read(&run.id)?;
        Ok(match run.all_metrics().get(&self.judge.metric) {
            Some(v) => Ok((run.id.clone(), *v)),
            None => Err(format!(
                "run {} has no metric `{}`",
                run.id, self.judge.metric
            )),
        })
    }
}

/// `cmd` with its standard output dropped (the task's tables), its errors shown.
fn quiet(mut cmd: std::process::Command) -> std::process::Command {
    cmd.arg("-q").stdout(std::process::Stdio::null());
    cmd
}

/// A state given as `--good`/`--bad`: a train run (its base commit; the run, and whether its
/// code was that commit's) or a revision.
fn state(
    store: &Store,
    git_dir: Option<&Path>,
    spec: &str,
) -> Result<(String, Option<(Record, bool)>)> {
    match store.resolve(spec, |r| r.kind == RunKind::Train) {
        Ok(r) => {
            let s = snapshot_of(&r)?;
            let base = match (&s.parent, s.dirty) {
                (Some(p), _) => p.clone(),
                (None, false) => s.commit.clone(),
                (None, true) => {
                    return Err(Error::usage(format!(
                        "run {} ran code of a repository without commits: bisect between revisions",
                        r.id
                    )))
                }
            };
            let exact = !s.dirty;
            return Ok((base, Some((r, exact))));
        }
        Err(
            crate::store::StoreError::NotFound { .. } | crate::store::StoreError::NoLatest { .. },
        ) => {}
        Err(e) => return Err(e.into()),
    }
    let git_dir = git_dir.ok_or_else(|| {
        Error::usage(format!(
            "`{spec}` names no train run here, and no repository is here to read it as a revision"
        ))
    })?;
    let commit = snapshot::resolve_commit(git_dir, spec)
        .map_err(|_| Error::usage(format!("`{spec}` is neither a train run nor a revision")))?;
    Ok((commit, None))
}

/// The repository revisions are read in: the one of the current folder (as git would),
/// else the one enclosing the store.
fn revisions_repository(store: &Store) -> Option<PathBuf> {
    std::env::current_dir()
        .ok()
        .and_then(|d| snapshot::enclosing_git_dir(&d))
        .or_else(|| snapshot::enclosing_git_dir(store.root()))
}

pub(super) fn bisect(store: &Store, a: BisectArgs) -> Result<ExitCode> {
    let revisions = revisions_repository(store);
    let (good, good_state) = state(store, revisions.as_deref(), &a.good)?;
    let (bad, bad_state) = state(store, revisions.as_deref(), &a.bad)?;
    let good_run = good_state.as_ref().map(|(r, _)| r.clone());
    let bad_run = bad_state.as_ref().map(|(r, _)| r.clone());
    // The bad end is trusted only as a run of exactly its commit's code.
    let bad_exact = bad_state.as_ref().is_some_and(|(_, exact)| *exact);
    let like = match (&a.like, &good_run, &bad_run) {
        (Some(spec), _, _) => store.resolve(spec, |r| r.kind == RunKind::Train)?,
        (None, Some(r), _) | (None, None, Some(r)) => r.clone(),
        (None, None, None) => {
            return Err(Error::usage(
                "--good and --bad are revisions: name the train run whose hyperparameters train the commits with --like RUN",
            ))
        }
    };
    let b = Bisector::new(store, &like, &a.judge)?;
    // A run given as a state must be on its side of the threshold.
    for (run, good_side) in [(&good_run, true), (&bad_run, false)] {
        if let Some(r) = run {
            let value = r
                .all_metrics()
                .get(&a.judge.metric)
                .copied()
                .ok_or_else(|| {
                    Error::usage(format!("run {} has no metric `{}`", r.id, a.judge.metric))
                })?;
            if decide(&[value], a.judge.min, a.judge.max, 1) != Some(good_side) {
                return Err(Error::usage(format!(
                    "--{} run {} has {} {}, which is {} by the threshold",
                    if good_side { "good" } else { "bad" },
                    r.id,
                    a.judge.metric,
                    metric_text(value),
                    if good_side { "bad" } else { "good" }
                )));
            }
        }
    }
    let commits = snapshot::commits_between(&b.git_dir, &good, &bad)?;
    if commits.is_empty() {
        return Err(Error::usage(format!(
            "the good and the bad state are the same commit ({})",
            short_commit(&good)
        )));
    }
    let rule = match (a.judge.min, a.judge.max) {
        (Some(m), _) => format!("good when {} ≥ {}", a.judge.metric, metric_text(m)),
        (_, Some(m)) => format!("good when {} ≤ {}", a.judge.metric, metric_text(m)),
        _ => String::new(),
    };
    crate::util::stderr::errln!(
        "{}: {rule}; {} commit{} after {} up to {}, trained like run {}",
        b.tag,
        commits.len(),
        if commits.len() == 1 { "" } else { "s" },
        short_commit(&good),
        short_commit(&bad),
        like.id
    );
    let (mut lo, mut hi) = (None::<usize>, commits.len() - 1);
    let mut verdicts: BTreeMap<usize, Verdict> = BTreeMap::new();
    loop {
        let from = lo.map_or(0, |l| l + 1);
        let open: Vec<usize> = (from..hi)
            .filter(|i| !matches!(verdicts.get(i), Some(Verdict::Skip(_))))
            .collect();
        let middle = (from + hi) / 2;
        let Some(&next) = open.iter().min_by_key(|i| i.abs_diff(middle)) else {
            break;
        };
        let (commit, subject) = &commits[next];
        let verdict = b.judge(commit)?;
        let said = match &verdict {
            Verdict::Good(v) => format!("{}: good", summary(&a.judge.metric, v)),
            Verdict::Bad(v) => format!("{}: bad", summary(&a.judge.metric, v)),
            Verdict::Skip(why) => format!("{why}: skipped"),
        };
        crate::util::stderr::errln!("{} {}: {said}", short_commit(commit), printable(subject));
        match verdict {
            Verdict::Good(_) => lo = Some(next),
            Verdict::Bad(_) => hi = next,
            Verdict::Skip(_) => {}
        }
        verdicts.insert(next, verdict);
    }
    let from = lo.map_or(0, |l| l + 1);
    let (commit, subject) = &commits[hi];
    // The bad end itself, when it was a revision or a run of uncommitted changes: judged, as
    // the search never looked at it.
    if !verdicts.contains_key(&hi) && !bad_exact {
        let verdict = b.judge(commit)?;
        if let Verdict::Good(v) = &verdict {
            return Err(Error::msg(format!(
                "the bad state {} judges good ({}): no commit up to it crosses the threshold",
                short_commit(commit),
                summary(&a.judge.metric, v)
            )));
        }
        if let Verdict::Skip(why) = &verdict {
            crate::util::stderr::errln!(
                "{} (the bad state) {why}: taken as bad, as given",
                short_commit(commit)
            );
        }
        verdicts.insert(hi, verdict);
    }
    let skipped: Vec<&str> = (from..hi).map(|i| short_commit(&commits[i].0)).collect();
    if skipped.is_empty() {
        outln!("first bad commit: {commit} {}", printable(subject));
    } else {
        outln!(
            "first bad commit: one of {} (skipped: they do not build or train) and {}",
            skipped.join(", "),
            short_commit(commit)
        );
    }
    // The runs to compare: the last good commit's (or the good run) and the first bad one's.
    let run_of = |v: Option<&Verdict>| match v {
        Some(Verdict::Good(runs)) | Some(Verdict::Bad(runs)) => {
            runs.first().map(|(id, _)| id.clone())
        }
        _ => None,
    };
    let good_id = lo
        .and_then(|l| run_of(verdicts.get(&l)))
        .or_else(|| good_run.as_ref().map(|r| r.id.clone()));
    let bad_side = run_of(verdicts.get(&hi)).or_else(|| bad_run.as_ref().map(|r| r.id.clone()));
    match (good_id, bad_side) {
        (Some(g), Some(bad)) => {
            outln!("compare: `flammable ui`, then http://127.0.0.1:7000/compare?runs={g},{bad}")
        }
        _ => outln!("compare: no run of both sides to compare"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `bisect-check`: judges one commit for `git bisect run`: exit code 0 good, 1 bad, 125 when
/// it cannot be judged (does not build), 128 (which stops `git bisect run`) on any error.
pub(super) fn bisect_check(store: &Store, a: BisectCheckArgs) -> ExitCode {
    let judged = (|| -> Result<Verdict> {
        store.require_existing()?;
        let like = store.resolve(&a.like, |r| r.kind == RunKind::Train)?;
        let b = Bisector::new(store, &like, &a.judge)?;
        let repository = revisions_repository(store).unwrap_or_else(|| b.git_dir.clone());
        let commit = snapshot::resolve_commit(&repository, &a.commit)?;
        let verdict = b.judge(&commit)?;
        let said = match &verdict {
            Verdict::Good(v) => format!("{}: good", summary(&a.judge.metric, v)),
            Verdict::Bad(v) => format!("{}: bad", summary(&a.judge.metric, v)),
            Verdict::Skip(why) => format!("{why}: skip"),
        };
        outln!("{} {said}", short_commit(&commit));
        Ok(verdict)
    })();
    match judged {
        Ok(Verdict::Good(_)) => ExitCode::SUCCESS,
        Ok(Verdict::Bad(_)) => ExitCode::from(1),
        Ok(Verdict::Skip(_)) => ExitCode::from(125),
        Err(e) => {
            crate::util::stderr::errln!("error: {e}");
            ExitCode::from(128)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::decide;

    #[test]
    fn the_mean_decides_unless_it_is_too_close_to_call() {
        // At least 0.9: clear cases.
        assert_eq!(decide(&[0.95], Some(0.9), None, 4), Some(true));
        assert_eq!(decide(&[0.5, 0.52], Some(0.9), None, 4), Some(false));
        // A mean within two standard errors of the threshold: another seed.
        assert_eq!(decide(&[0.85, 0.97], Some(0.9), None, 4), None);
        // ... unless there are as many runs as allowed: the mean decides.
        assert_eq!(
            decide(&[0.85, 0.97, 0.93, 0.92], Some(0.9), None, 4),
            Some(true)
        );
        // At most 2.0 (a loss).
        assert_eq!(decide(&[1.0, 1.1], None, Some(2.0), 4), Some(true));
        assert_eq!(decide(&[2.3], None, Some(2.0), 4), Some(false));
        // One run has no spread: its value decides.
        assert_eq!(decide(&[2.01], None, Some(2.0), 4), Some(false));
    }
}
