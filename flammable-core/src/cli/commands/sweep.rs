//! `train --sweep NAME=V1,V2,…`: one train run per combination of values, each a child
//! process of this binary (its own run, tagged with the sweep's id), up to `--parallel` at a
//! time; Ctrl-C interrupts them all (each keeps its checkpoint, to resume); at the end, the
//! runs ranked as `runs --sweep ID` shows them.

use super::*;
use std::collections::VecDeque;
use std::process::{Child, Stdio};

/// The environment variable through which a sweep's runs learn its id.
pub(super) const SWEEP_ENV: &str = "FLAMMABLE_SWEEP";

/// The sweep flags of `train`.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Sweeps")]
pub(super) struct SweepArgs {
    /// Train one run per combination of values: NAME=V1,V2,… where NAME is a flag of train
    /// (lr=1e-3,3e-3,1e-2; hidden=64,128); repeat it for a grid.
    #[arg(long, value_name = "NAME=VALUES", conflicts_with = "resume")]
    pub(super) sweep: Vec<String>,
    /// With --sweep: runs at a time (default: the cores divided by --threads).
    #[arg(long, value_name = "N", requires = "sweep", value_parser = crate::hyper::values::at_least_one)]
    pub(super) parallel: Option<usize>,
    /// With --sweep: at most this many runs.
    #[arg(long, value_name = "K", requires = "sweep", value_parser = crate::hyper::values::at_least_one)]
    pub(super) trials: Option<usize>,
    /// With --sweep: the combinations in a random order (from --seed), e.g. with --trials.
    #[arg(long, requires = "sweep")]
    pub(super) random: bool,
}

/// A sweep, ready to run: each run's extra flags and its whole command line.
pub(super) struct SweepPlan {
    pub(super) id: String,
    /// Per run: (flag, value) pairs, for the progress lines.
    pub(super) settings: Vec<Vec<(String, String)>>,
    /// Per run: the arguments after the program name.
    pub(super) argv: Vec<Vec<OsString>>,
    pub(super) parallel: usize,
}

/// The flags of `train` that are not hyperparameters.
const NOT_SWEPT: [&str; 7] = [
    "sweep", "parallel", "trials", "random", "resume", "config", "help",
];

/// One swept flag: its name, whether it is a switch (swept as `false,true`), its values.
struct Axis {
    flag: String,
    switch: bool,
    values: Vec<String>,
}

/// Plans the sweep `a` asks for: checks each NAME against `train`'s flags (in `cmd`), makes
/// the combinations, and checks each run's command line with `check` (clap's parse) before
/// any starts.
pub(super) fn plan(
    cmd: &clap::Command,
    argv: &[OsString],
    a: &SweepArgs,
    g: &Global,
    check: &dyn Fn(&[OsString]) -> Result<()>,
) -> Result<SweepPlan> {
    let mut axes: Vec<Axis> = Vec::new();
    for spec in &a.sweep {
        let axis = axis(cmd, argv, spec)?;
        if axes.iter().any(|x| x.flag == axis.flag) {
            return Err(Error::usage(format!(
                "--sweep {} is given twice",
                axis.flag
            )));
        }
        axes.push(axis);
    }
    // Every combination, one value per axis, in the axes' order.
    let mut settings: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for axis in &axes {
        settings = settings
            .into_iter()
            .flat_map(|done| {
                axis.values.iter().map(move |v| {
                    let mut next = done.clone();
                    next.push((axis.flag.clone(), v.clone()));
                    next
                })
            })
            .collect();
    }
    if a.random {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let seed = g.seed.unwrap_or_else(rand::random);
        settings.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    }
    if let Some(k) = a.trials {
        settings.truncate(k);
    }
    let base = without_sweep_flags(argv);
    let mut runs = Vec::with_capacity(settings.len());
    for run in &settings {
        let mut full = base.clone();
        for (axis, (flag, value)) in axes.iter().zip(run) {
            if !axis.switch {
                full.extend([format!("--{flag}").into(), value.into()]);
            } else if value == "true" {
                full.push(format!("--{flag}").into());
            }
        }
        check(&full).map_err(|e| Error::usage(format!("--sweep: {e}")))?;
        runs.push(full.into_iter().skip(1).collect());
    }
    let threads = g.threads.unwrap_or_else(threads_in_force);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // --threads 0 (one per core) leaves no room for a second run.
    let parallel = a
        .parallel
        .unwrap_or_else(|| cores.checked_div(threads).unwrap_or(1).max(1));
    Ok(SweepPlan {
        id: crate::store::fresh_id(),
        settings,
        argv: runs,
        parallel,
    })
}

/// The axis `--sweep spec` names: a hyperparameter flag of `train` (or `--seed`) that
/// `argv` does not set already, and its values.
fn axis(cmd: &clap::Command, argv: &[OsString], spec: &str) -> Result<Axis> {
    let train = cmd
        .find_subcommand("train")
        .ok_or_else(|| Error::msg("the train command is missing"))?;
    let (name, values) = spec
        .split_once('=')
        .filter(|(name, _)| !name.trim().is_empty())
        .ok_or_else(|| {
            Error::usage(format!(
                "--sweep {spec}: write NAME=V1,V2,… (e.g. --sweep lr=1e-3,3e-3)"
            ))
        })?;
    let flag = name.trim().trim_start_matches("--").replace('_', "-");
    let sweepable = |arg: &&clap::Arg| {
        !NOT_SWEPT.contains(&arg.get_id().as_str())
            && (!arg.is_global_set() || arg.get_id() == "seed")
    };
    let arg = train
        .get_arguments()
        .chain(cmd.get_arguments())
        .filter(sweepable)
        .find(|arg| arg.get_long() == Some(flag.as_str()))
        .ok_or_else(|| {
            let flags: Vec<&str> = train
                .get_arguments()
                .filter(sweepable)
                .filter_map(clap::Arg::get_long)
                .collect();
            Error::usage(format!(
                "--sweep {spec}: train has no hyperparameter --{flag}; it has: {}",
                flags.join(", ")
            ))
        })?;
    let set = format!("--{flag}");
    if argv.iter().any(|w| {
        let w = w.to_string_lossy();
        w == set.as_str() || w.starts_with(&format!("{set}="))
    }) {
        return Err(Error::usage(format!(
            "{set} is both set and swept: leave one of them out"
        )));
    }
    let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
    if values.iter().any(String::is_empty) {
        return Err(Error::usage(format!("--sweep {spec}: an empty value")));
    }
    let switch = !arg.get_action().takes_values();
    if switch && values.iter().any(|v| v != "true" && v != "false") {
        return Err(Error::usage(format!(
            "--sweep {spec}: {set} is a switch; sweep it as {flag}=false,true"
        )));
    }
    Ok(Axis {
        flag,
        switch,
        values,
    })
}

/// `argv` without the sweep's own flags (and their values).
fn without_sweep_flags(argv: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::with_capacity(argv.len());
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let text = a.to_string_lossy();
        if ["--sweep", "--parallel", "--trials"].contains(&text.as_ref()) {
            it.next();
            continue;
        }
        if text == "--random"
            || ["--sweep=", "--parallel=", "--trials="]
                .iter()
                .any(|p| text.starts_with(p))
        {
            continue;
        }
        out.push(a.clone());
    }
    out
}

/// Counts Ctrl-C and SIGTERM from now on (a background thread waits for them), instead of
/// the default of ending the process: the sweep passes them on to its runs.
fn count_signals() -> Result<std::sync::Arc<std::sync::atomic::AtomicUsize>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| Error::msg(format!("cannot watch for Ctrl-C: {e}")))?;
    let seen = count.clone();
    std::thread::spawn(move || {
        for _ in signals.forever() {
            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    Ok(count)
}

/// The run of sweep `sweep` that process `pid` made. Ids sort by start time and the
/// sweep's id was made before any of its runs, so only the newer folders are read.
fn run_of(store: &Store, sweep: &str, pid: u32) -> Option<Record> {
    store
        .ids()
        .ok()?
        .into_iter()
        .filter(|id| id.as_str() >= sweep)
        .filter_map(|id| store.read(&id).ok())
        .find(|r| r.sweep.as_deref() == Some(sweep) && r.pid == pid)
}

/// The settings of a run as `lr=0.001 hidden=64`.
fn describe(settings: &[(String, String)]) -> String {
    settings
        .iter()
        .map(|(f, v)| format!("{f}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where run `i` of sweep `id` writes its stderr while it runs.
fn stderr_path(id: &str, i: usize) -> PathBuf {
    std::env::temp_dir().join(format!("flammable-sweep-{id}-{i}.stderr"))
}

/// The last non-empty line of a file, without an `error: ` prefix.
fn last_line(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    Some(line.trim().trim_start_matches("error: ").to_string())
}

/// Runs the sweep: its runs as child processes of this binary, `parallel` at a time.
pub(super) fn run_sweep(spec: &TaskSpec, g: &Global, plan: SweepPlan) -> Result<ExitCode> {
    let signals = count_signals()?;
    let store = g.store()?;
    let exe = std::env::current_exe().map_err(|e| {
        Error::msg(format!(
            "cannot find this program to start the sweep's runs: {e}"
        ))
    })?;
    let total = plan.argv.len();
    let say = |line: &str| {
        if !g.quiet {
            eprintln!("{line}");
        }
    };
    say(&format!(
        "sweep {} of {}: {total} run(s), {} at a time (`runs --sweep {}` lists them)",
        plan.id, spec.experiment, plan.parallel, plan.id
    ));
    let mut pending: VecDeque<usize> = (0..total).collect();
    let mut running: Vec<(usize, Child)> = Vec::new();
    let (mut finished, mut failed, mut interrupted) = (0, 0, 0);
    // Signals forwarded so far: the runs get each Ctrl-C once (they are in process groups
    // of their own, so a terminal's Ctrl-C reaches only this process). A first one stops
    // them at their next step, with a checkpoint; a second one, at once.
    let mut forwarded = 0;
    let mut signalled = false;
    loop {
        let received = signals.load(std::sync::atomic::Ordering::Relaxed);
        let stopping = received > 0;
        if received > forwarded {
            if !signalled {
                say(&format!(
                    "stopping the sweep: interrupting {} run(s); {} not started (Ctrl-C again stops them at once)",
                    running.len(),
                    pending.len()
                ));
            }
            signalled = true;
            forwarded = received;
            for (_, child) in &running {
                let _ = crate::util::signal::send(child.id(), crate::util::signal::INTERRUPT);
            }
        }
        while !stopping && running.len() < plan.parallel {
            let Some(i) = pending.pop_front() else { break };
            let mut command = std::process::Command::new(&exe);
            #[cfg(unix)]
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            // A run keeps its own output in its log; stderr is kept only to say why a run
            // that failed before it started did.
            let stderr = std::fs::File::create(stderr_path(&plan.id, i))
                .map_or_else(|_| Stdio::null(), Stdio::from);
            let child = command
                .args(&plan.argv[i])
                .env(SWEEP_ENV, &plan.id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .map_err(|e| Error::msg(format!("cannot start a run of the sweep: {e}")))?;
            say(&format!(
                "[{}/{total}] {}: started",
                i + 1,
                describe(&plan.settings[i])
            ));
            running.push((i, child));
        }
        if running.is_empty() && (pending.is_empty() || stopping) {
            break;
        }
        let mut still = Vec::with_capacity(running.len());
        for (i, mut child) in running {
            match child.try_wait() {
                Ok(None) => still.push((i, child)),
                Ok(Some(status)) => {
                    let record = run_of(&store, &plan.id, child.id());
                    let run = record
                        .as_ref()
                        .map_or_else(|| "no run".to_string(), |r| format!("run {}", r.id));
                    let outcome = match (status.code(), &record) {
                        (Some(0), _) => {
                            finished += 1;
                            "finished".to_string()
                        }
                        (Some(130), _) => {
                            interrupted += 1;
                            "interrupted".to_string()
                        }
                        (_, Some(r)) => {
                            failed += 1;
                            format!("failed: {}", r.error.as_deref().unwrap_or("see its log"))
                        }
                        (code, None) => {
                            failed += 1;
                            let why = last_line(&stderr_path(&plan.id, i)).unwrap_or_else(|| {
                                format!(
                                    "exit code {}",
                                    code.map_or("none".into(), |c| c.to_string())
                                )
                            });
                            format!("failed before its run started: {why}")
                        }
                    };
                    let _ = std::fs::remove_file(stderr_path(&plan.id, i));
                    let line = format!(
                        "[{}/{total}] {}: {run} {outcome}",
                        i + 1,
                        describe(&plan.settings[i])
                    );
                    // A failure is said even with --quiet.
                    if status.success() || status.code() == Some(130) {
                        say(&line);
                    } else {
                        eprintln!("{line}");
                    }
                }
                Err(e) => return Err(Error::msg(format!("cannot watch a run of the sweep: {e}"))),
            }
        }
        running = still;
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if finished + failed + interrupted > 0 {
        runs::print_sweep(&store, &plan.id)?;
    }
    if signalled {
        eprintln!(
            "sweep {} interrupted: {finished} run(s) finished, {interrupted} interrupted (each resumes with `train --resume RUN`), {} not started",
            plan.id,
            total - finished - failed - interrupted
        );
        return Ok(ExitCode::from(130));
    }
    if failed > 0 {
        eprintln!(
            "error: {failed} of {total} run(s) of sweep {} failed",
            plan.id
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
