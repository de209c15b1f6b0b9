//! Running a sweep: its runs as child processes of this binary, `--parallel` at a time. Each
//! is told its sweep and its combination, which it records: that is how the sweep finds the
//! run it started. Their stderr goes to a private temporary folder (0700), read only to say
//! why a run failed before it started.
//!
//! A run's stdin is its control pipe from the sweep (see `sweep_control`): a run stops, with a
//! checkpoint, when the sweep asks or dies. Runs have process groups of their own (a
//! terminal's Ctrl-C reaches only the sweep), and a stop asked both through the pipe and by a
//! signal sent to every process (systemd, Slurm) counts once. A second Ctrl-C stops them at
//! once.
//!
//! The plan is in the store before the first run starts: `train --resume <sweep>`
//! continues a sweep that stopped, and a sweep that stops says so and what it left.

use super::*;
use crate::store::sweeps::{self, SweepRecord};
use std::collections::VecDeque;
use std::io::Write;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The signals the sweep received (SIGINT, SIGTERM, SIGHUP): how many, and the first.
struct Signals {
    count: Arc<AtomicUsize>,
    first: Arc<AtomicUsize>,
}

/// Counts the stop signals from now on (a background thread waits for them), instead of the
/// default of ending the process: the sweep passes them on to its runs.
fn watch_signals() -> Result<Signals> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let count = Arc::new(AtomicUsize::new(0));
    let first = Arc::new(AtomicUsize::new(0));
    let mut stops = vec![SIGINT, SIGTERM];
    // Under `nohup`, which ignores SIGHUP, a closed terminal leaves the sweep running.
    if !crate::util::signal::is_ignored(SIGHUP) {
        stops.push(SIGHUP);
    }
    let mut signals = signal_hook::iterator::Signals::new(stops)
        .map_err(|e| Error::msg(format!("cannot watch for Ctrl-C: {e}")))?;
    let (seen, which) = (count.clone(), first.clone());
    std::thread::spawn(move || {
        for signal in signals.forever() {
            // The first before the count: whoever sees the count sees which signal it was.
            let _ = which.compare_exchange(0, signal as usize, Ordering::SeqCst, Ordering::SeqCst);
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    Ok(Signals { count, first })
}

/// A line to stderr that never panics: the sweep's terminal may be gone (SIGHUP).
fn tell(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The settings of a run as `lr=0.001 hidden=64`.
pub(super) fn describe(settings: &[(String, String)]) -> String {
    settings
        .iter()
        .map(|(f, v)| format!("{f}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last non-empty line of a file, without an `error: ` prefix.
fn last_line(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    Some(line.trim().trim_start_matches("error: ").to_string())
}

/// What became of the runs of this sweep's process.
#[derive(Default)]
struct Tally {
    finished: usize,
    failed: usize,
    interrupted: usize,
}

/// The line that says how run `child` ended (it has, with `status`), counted in `tally`;
/// whether it is a failure.
fn outcome(
    store: &Store,
    plan: &SweepPlan,
    child: &Running,
    status: ExitStatus,
    stderr_dir: &Path,
    tally: &mut Tally,
) -> (String, bool) {
    let record = sweeps::run_of(store, &plan.id, child.trial);
    let run = record
        .as_ref()
        .map_or_else(String::new, |r| format!("run {}", r.id));
    let stopped = record
        .as_ref()
        .is_some_and(|r| r.status == RunStatus::Interrupted);
    let (what, failure) = match (status.success(), &record) {
        (true, _) => {
            tally.finished += 1;
            ("finished".to_string(), false)
        }
        (false, _) if stopped => {
            tally.interrupted += 1;
            ("interrupted (checkpoint saved)".to_string(), false)
        }
        (false, Some(_)) if child.killed => {
            tally.interrupted += 1;
            (
                "stopped at once (it resumes from its last checkpoint)".to_string(),
                false,
            )
        }
        (false, Some(r)) => {
            tally.failed += 1;
            let why = r.error.as_deref().unwrap_or("see its log");
            (format!("failed: {why}"), true)
        }
        (false, None) => {
            tally.failed += 1;
            let stderr = stderr_dir.join(format!("{}.stderr", child.trial));
            let why = last_line(&stderr).unwrap_or_else(|| match status.code() {
                Some(code) => format!("exit code {code}"),
                None => "killed by a signal".to_string(),
            });
            (format!("failed before its run started: {why}"), true)
        }
    };
    // A run that never started has no id to name: the line says what happened alone.
    let line = match &record {
        Some(_) => format!(
            "[{}/{}] {}: {run} {what}",
            child.trial + 1,
            plan.settings.len(),
            describe(&plan.settings[child.trial])
        ),
        None => format!(
            "[{}/{}] {}: {what}",
            child.trial + 1,
            plan.settings.len(),
            describe(&plan.settings[child.trial])
        ),
    };
    (line, failure)
}

/// An error unless `found`, the plan of sweep `mine.id` in the store, plans the runs `mine`
/// plans: every shard of a sweep must run the same plan. Only what defines the runs is
/// compared, not each host's own flags (`--store`, `--threads`, `-m`, …: `sweep_host`).
fn agree(mine: &SweepRecord, found: &SweepRecord) -> Result<()> {
    // Compared as they define runs: without the per-host flags, and numbers by value
    // (`lr=0.001` on one host and `lr=1e-3` on another plan the same runs).
    let defined = |r: &SweepRecord| SweepRecord {
        argv: r
            .argv
            .iter()
            .map(|a| defining(a).iter().map(|w| by_value(w)).collect())
            .collect(),
        settings: r
            .settings
            .iter()
            .map(|c| c.iter().map(|(k, v)| (k.clone(), by_value(v))).collect())
            .collect(),
        ..r.clone()
    };
    let (given_mine, given_found) = (mine, found);
    let (mine, found) = (&defined(mine), &defined(found));
    if mine.same_plan(found) {
        return match (&mine.configs, &found.configs) {
            (Some(ours), Some(theirs)) if ours != theirs => Err(Error::usage(format!(
                "sweep {} in the store plans other runs: its --config file held other values than this command's; give every shard the same file, or another --sweep-id",
                mine.id
            ))),
            _ => Ok(()),
        };
    }
    let why = if mine.experiment != found.experiment {
        format!(
            "it is of experiment `{}`, not `{}`",
            found.experiment, mine.experiment
        )
    } else if mine.argv.len() != found.argv.len() {
        format!(
            "it has {} combination(s), this command {}",
            found.argv.len(),
            mine.argv.len()
        )
    } else {
        let differing = found
            .argv
            .iter()
            .zip(&mine.argv)
            .enumerate()
            .find(|(_, (a, b))| a != b);
        // Said as they were given (the values compared are numbers rewritten: `8.0`).
        let given = |r: &SweepRecord, t: usize| {
            r.argv
                .get(t)
                .map(|a| defining(a).join(" "))
                .unwrap_or_default()
        };
        match differing {
            Some((t, _)) => format!(
                "its combination {} runs `{}`, this command's `{}`",
                t + 1,
                given(given_found, t),
                given(given_mine, t)
            ),
            None => "its swept values differ".to_string(),
        }
    };
    Err(Error::usage(format!(
        "sweep {} in the store plans other runs: {why}; give every shard the same flags, or another --sweep-id",
        mine.id
    )))
}

/// `word` with a number in it (`0.001`, `--lr=1e-3`) written as its value reads, so that
/// two spellings of one number compare equal; any other word as it is.
fn by_value(word: &str) -> String {
    let number = |text: &str| {
        text.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(|v| format!("{v:?}"))
    };
    if let Some(v) = number(word) {
        return v;
    }
    match word.split_once('=') {
        Some((flag, value)) if flag.starts_with("--") => match number(value) {
            Some(v) => format!("{flag}={v}"),
            None => word.to_string(),
        },
        _ => word.to_string(),
    }
}

/// A digest of what the `--config` files that `argv` names hold (`--config FILE`,
/// `--config=FILE`), in order; `None` when it names none, or one cannot be read (the training
/// then says why).
fn configs_digest(argv: &[String]) -> Option<String> {
    use sha2::Digest as _;
    let files = flag_values(argv, "--config");
    if files.is_empty() {
        return None;
    }
    let mut hash = sha2::Sha256::new();
    for at in files {
        let bytes = std::fs::read(&argv[at.word][at.from..]).ok()?;
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
    }
    Some(crate::store::hashes::hex(&hash.finalize())[..32].to_string())
}

/// An error unless shard `shard` counts the shards of sweep `found` as its first shard did.
fn same_shards(found: &SweepRecord, shard: Shard) -> Result<()> {
    match found.shards {
        Some(count) if count != shard.count => Err(Error::usage(format!(
            "sweep {} runs in {count} shards, not {}: give --shard I/{count} (a sweep's shards are counted once, when it is planned)",
            found.id, shard.count
        ))),
        _ => Ok(()),
    }
}

/// Runs the sweep: its runs as child processes of this binary, `parallel` at a time.
pub(super) fn run_sweep(spec: &TaskSpec, g: &Global, mut plan: SweepPlan) -> Result<ExitCode> {
    if let Some(e) = &plan.emit {
        return emit(spec, g, &plan, e);
    }
    let signals = watch_signals()?;
    let store = g.store()?;
    let exe = std::env::current_exe().map_err(|e| {
        Error::msg(format!(
            "cannot find this program to start the sweep's runs: {e}"
        ))
    })?;
    // Held while the sweep runs: `train --resume <sweep>` refuses a sweep still running
    // (its shards hold it shared, each its own alone).
    let _lock = match plan.shard {
        None => sweeps::lock(&store, &plan.id)?.map(|l| vec![l]),
        Some((shard, _)) => {
            sweeps::lock_shard(&store, &plan.id, shard.index, shard.count)?.map(Vec::from)
        }
    };
    if _lock.is_none() {
        let holder = match plan.shard {
            None => "its process holds it".to_string(),
            Some((shard, _)) => format!("or its shard {shard} is, or it is being resumed"),
        };
        return Err(Error::usage(format!(
            "sweep {} is running ({holder}): stop that one first",
            plan.id
        )));
    }
    if plan.resumed.is_none() {
        let record = SweepRecord {
            id: plan.id.clone(),
            experiment: spec.experiment.to_string(),
            settings: plan.settings.clone(),
            argv: plan.planned.clone(),
            shared: plan.shared,
            shards: plan.shard.map(|(shard, _)| shard.count),
            configs: plan.planned.first().and_then(|argv| configs_digest(argv)),
        };
        if plan.shared {
            let found = sweeps::create_or_agree(&store, &record)?;
            agree(&record, &found)?;
            if let Some((shard, _)) = plan.shard {
                same_shards(&found, shard).inspect_err(|_| {
                    sweeps::forget_shard_lock(&store, &plan.id, shard.index, shard.count)
                })?;
            }
        } else {
            sweeps::write(&store, &record)?;
        }
    }
    // A shared sweep's combinations may have runs already (a shard run again, requeued,
    // retried): those done are skipped, those stopped resumed.
    let mut before = None;
    if plan.resumed.is_none() && plan.shared {
        let planned = plan.jobs.len();
        let jobs = std::mem::take(&mut plan.jobs)
            .into_iter()
            .map(|job| (job.trial, job.argv));
        let mut resume_with = vec![OsString::from("train")];
        resume_with.extend(plan.host.iter().cloned());
        let left = left_to_do(&store, &plan.id, jobs, &resume_with)?;
        plan.jobs = left.jobs;
        before = Some((planned, left.finished, left.failed));
    }
    let stderr_dir = private_folder()?;
    let total = plan.settings.len();
    let say = |line: &str| {
        if !g.quiet {
            tell(line);
        }
    };
    // Who this process is, for its lines: a shard, or the sweep.
    let who = match plan.shard {
        Some((shard, source)) => format!(
            "shard {shard} of sweep {} (from {})",
            plan.id,
            source.describe()
        ),
        None => format!("sweep {}", plan.id),
    };
    let (finished_before, failed_before) = match &before {
        Some((_, finished, failed)) => (*finished, failed.clone()),
        None => (0, Vec::new()),
    };
    if let Some((planned, _, _)) = &before {
        if *planned == 0 {
            say(&format!(
                "{who}: no combination is this shard's (the sweep has {total}); nothing to run"
            ));
            return Ok(ExitCode::SUCCESS);
        }
        if plan.jobs.is_empty() {
            return Ok(nothing_left(
                &who,
                &plan.id,
                *planned,
                finished_before,
                &failed_before,
                g.quiet,
            ));
        }
    }
    let at_once = match plan.parallel.min(plan.jobs.len()) {
        1 => "one at a time".to_string(),
        n => format!("{n} at a time"),
    };
    let resuming = plan.jobs.iter().filter(|j| j.resumes.is_some()).count();
    let done_before = finished_before + failed_before.len();
    let already = match (resuming, done_before) {
        (0, 0) => String::new(),
        (r, 0) => format!(" ({r} to resume)"),
        (0, d) => format!(" ({d} done already)"),
        (r, d) => format!(" ({r} to resume, {d} done already)"),
    };
    match (&plan.resumed, plan.shard) {
        (None, None) => say(&format!(
            "sweep {} of {}: {} run(s){already}, {at_once} (`runs --sweep {}` lists them)",
            plan.id,
            spec.experiment,
            plan.jobs.len(),
            plan.id
        )),
        (None, Some((shard, source))) => say(&format!(
            "sweep {} of {}, shard {shard} (from {}): {} of the sweep's {total} combination(s){already}, {at_once} (`runs --sweep {}` lists them)",
            plan.id,
            spec.experiment,
            source.describe(),
            plan.jobs.len(),
            plan.id
        )),
        (Some(done), _) => say(&format!(
            "sweep {} of {} continued: {} run(s) to resume or start, {done} done, {at_once}",
            plan.id,
            spec.experiment,
            plan.jobs.len(),
        )),
    }
    let mut pending: VecDeque<&Job> = plan.jobs.iter().collect();
    let mut children = Children::default();
    let mut tally = Tally::default();
    let mut handled = 0;
    let mut failure: Option<Error> = None;
    loop {
        let received = signals.count.load(Ordering::SeqCst);
        if received > handled {
            if handled == 0 {
                // SIGHUP (the terminal closed) and SIGTERM stop the runs as SIGTERM does.
                let signal = match signals.first.load(Ordering::SeqCst) as i32 {
                    s if s == crate::util::signal::INTERRUPT => s,
                    _ => crate::util::signal::TERMINATE,
                };
                for child in &mut children.0 {
                    child.ask_to_stop(signal);
                }
                say(&format!(
                    "stopping the sweep: {} run(s) asked to stop with a checkpoint; {} not started ({} again stops them at once)",
                    children.0.len(),
                    pending.len(),
                    signal_name(signals.first.load(Ordering::SeqCst) as i32)
                ));
            } else {
                for child in &mut children.0 {
                    child.killed |= child.process.kill().is_ok();
                }
            }
            handled = received;
        }
        let stopping = received > 0 || failure.is_some();
        while !stopping && children.0.len() < plan.parallel {
            let Some(job) = pending.pop_front() else {
                break;
            };
            match start_run(&exe, &plan, job, stderr_dir.path()) {
                Ok(child) => {
                    let verb = if job.resumes.is_some() {
                        "resumed"
                    } else {
                        "started"
                    };
                    say(&format!(
                        "[{}/{total}] {}: {verb}",
                        job.trial + 1,
                        describe(&plan.settings[job.trial])
                    ));
                    children.0.push(child);
                }
                Err(e) => {
                    // The runs started stop with a checkpoint; the sweep ends once they have.
                    pending.push_front(job);
                    for child in &mut children.0 {
                        child.ask_to_stop(crate::util::signal::TERMINATE);
                    }
                    tell(&format!("stopping the sweep: {e}"));
                    failure = Some(e);
                    break;
                }
            }
        }
        if children.0.is_empty() && (pending.is_empty() || stopping) {
            break;
        }
        let mut i = 0;
        while i < children.0.len() {
            // An error returns with the others still running: `children` stops them.
            let status = children.0[i]
                .process
                .try_wait()
                .map_err(|e| Error::msg(format!("cannot watch a run of the sweep: {e}")))?;
            let Some(status) = status else {
                i += 1;
                continue;
            };
            let child = children.0.remove(i);
            let (line, failed) =
                outcome(&store, &plan, &child, status, stderr_dir.path(), &mut tally);
            // A failure is said even with --quiet.
            if failed {
                tell(&line);
            } else {
                say(&line);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let stopped = handled > 0;
    if tally.finished + tally.failed + tally.interrupted > 0 {
        // The terminal of a sweep stopped by SIGHUP is gone: what it leaves is in the store.
        if let Err(e) = runs::print_sweep(&store, &plan.id) {
            if !stopped {
                return Err(e);
            }
        }
    }
    if stopped || failure.is_some() {
        let left: Vec<String> = pending
            .iter()
            .map(|j| describe(&plan.settings[j.trial]))
            .collect();
        let mut line = format!(
            "sweep {} stopped: {} run(s) finished, {} interrupted, {} failed, {} not started",
            plan.id,
            tally.finished,
            tally.interrupted,
            tally.failed,
            left.len()
        );
        if !left.is_empty() {
            line.push_str(&format!(" ({})", left.join("; ")));
        }
        if tally.interrupted + left.len() > 0 {
            line.push_str(&continue_hint(&plan, &|name| std::env::var(name).ok()));
        }
        tell(&line);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if stopped {
        let signal = signals.first.load(Ordering::SeqCst) as u8;
        return Ok(ExitCode::from(128u8.saturating_add(signal)));
    }
    if tally.failed > 0 {
        tell(&format!(
            "error: {} of {} run(s) of sweep {} failed",
            tally.failed,
            plan.jobs.len(),
            plan.id
        ));
        return Ok(ExitCode::from(1));
    }
    if !failed_before.is_empty() {
        tell(&format!("error: {who}: {}", failed_earlier(&failed_before)));
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// How a line names the stop signal `signal` that a second one of repeats.
fn signal_name(signal: i32) -> &'static str {
    match signal {
        s if s == crate::util::signal::INTERRUPT => "Ctrl-C",
        s if s == signal_hook::consts::SIGHUP => "a second SIGHUP",
        _ => "a second SIGTERM",
    }
}

/// The end of the line of a sweep that stopped: how to continue it. A shard is continued
/// where it ran (in a Slurm array, by submitting its task again into the same sweep; by hand
/// or in a Kubernetes Job, by running it again), or the whole sweep on one host.
fn continue_hint(plan: &SweepPlan, env: &dyn Fn(&str) -> Option<String>) -> String {
    let on_one_host = format!("`{} train --resume {}`", plan.program, plan.id);
    if plan.shard.is_none() {
        return format!("; continue it with {on_one_host}");
    }
    match env("SLURM_ARRAY_TASK_ID").filter(|t| t.chars().all(|c| c.is_ascii_digit())) {
        Some(task) => format!(
            "; continue this task with `SWEEP_ID={} sbatch --array={task} SCRIPT` (SCRIPT: the sweep's sbatch script), or the whole sweep on one host with {on_one_host}",
            plan.id
        ),
        None => format!(
            "; continue it by running this shard again (it resumes its stopped runs and skips those done), or the whole sweep on one host with {on_one_host}"
        ),
    }
}

/// What to say of the combinations whose run `failed` (combination, run) before this
/// process started.
fn failed_earlier(failed: &[(usize, String)]) -> String {
    let runs: Vec<&str> = failed.iter().map(|(_, run)| run.as_str()).collect();
    format!(
        "{} of its combination(s) failed in an earlier run ({}), which is not retried (`rm` the run to run its combination again)",
        failed.len(),
        runs.join(", ")
    )
}

/// The end of a shard (or a shared sweep) run again with nothing left to run: each of its
/// `planned` combinations has a finished or failed run. Exit code 0 when all finished; 1
/// (and a line, even with `quiet`) when one failed, so that a cluster's retry of a failed
/// shard fails too (a Kubernetes Job then counts the index as failed, Slurm the task).
fn nothing_left(
    who: &str,
    id: &str,
    planned: usize,
    finished: usize,
    failed: &[(usize, String)],
    quiet: bool,
) -> ExitCode {
    if failed.is_empty() {
        if !quiet {
            tell(&format!(
                "{who}: its {planned} combination(s) are done already ({finished} finished); nothing to run (`runs --sweep {id}` ranks them)"
            ));
        }
        return ExitCode::SUCCESS;
    }
    tell(&format!(
        "error: {who}: nothing to run: {}",
        failed_earlier(failed)
    ));
    ExitCode::from(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_that_spell_a_number_otherwise_plan_the_same_sweep() {
        let record = |lr: &str| SweepRecord {
            id: "s".into(),
            experiment: "digits".into(),
            settings: vec![vec![("lr".into(), lr.into())]],
            argv: vec![vec![
                "train".into(),
                format!("--lr={lr}"),
                "--hidden".into(),
                "8".into(),
            ]],
            shared: true,
            shards: Some(2),
            configs: None,
        };
        assert!(agree(&record("0.001"), &record("1e-3")).is_ok());
        let refused = agree(&record("0.001"), &record("0.002"))
            .unwrap_err()
            .to_string();
        // Said as given, not as compared (`8.0`).
        assert!(
            refused.contains(
                "runs `train --lr=0.002 --hidden 8`, this command's `train --lr=0.001 --hidden 8`"
            ),
            "{refused}"
        );
        assert_eq!(by_value("--lr=1e-3"), by_value("--lr=0.0010"));
        assert_eq!(by_value("--name=1e-3x"), "--name=1e-3x");
        assert_eq!(by_value("inf"), "inf");
    }

    #[test]
    fn a_stopped_shard_says_how_to_continue_it_where_it_ran() {
        let mut plan = SweepPlan {
            id: "slurm-5".into(),
            settings: Vec::new(),
            jobs: Vec::new(),
            parallel: 1,
            program: "/bin/digits".into(),
            resumed: None,
            shard: None,
            shared: true,
            planned: Vec::new(),
            emit: None,
            host: Vec::new(),
        };
        let none = |_: &str| None;
        assert_eq!(
            continue_hint(&plan, &none),
            "; continue it with `/bin/digits train --resume slurm-5`"
        );
        plan.shard = Some((Shard { index: 2, count: 4 }, ShardSource::Flag));
        let slurm = |name: &str| (name == "SLURM_ARRAY_TASK_ID").then(|| "2".to_string());
        let hint = continue_hint(&plan, &slurm);
        assert!(
            hint.contains("`SWEEP_ID=slurm-5 sbatch --array=2 SCRIPT`"),
            "{hint}"
        );
        assert!(
            hint.contains("`/bin/digits train --resume slurm-5`"),
            "{hint}"
        );
        let by_hand = continue_hint(&plan, &none);
        assert!(by_hand.contains("running this shard again"), "{by_hand}");
    }
}
