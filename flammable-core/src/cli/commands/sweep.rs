//! `train --sweep NAME=V1,V2,…`: one train run per combination of values, each a child
//! process of this binary (its own run, tagged with the sweep's id), up to `--parallel` at a
//! time; Ctrl-C interrupts them all (each keeps its checkpoint, to resume); at the end, the
//! runs ranked as `runs --sweep ID` shows them. This module plans a sweep, or the rest of
//! one (`train --resume <sweep>`), or this process's shard of one (`sweep_shard`);
//! `sweep_runs` runs it, and `sweep_emit` writes the batch script or manifest that runs it
//! on a cluster.

use super::*;
use crate::store::sweeps::SweepRecord;

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
    /// With --sweep (or --resume SWEEP): runs at a time (default: the cores divided by
    /// --threads).
    #[arg(long, value_name = "N", value_parser = crate::hyper::values::at_least_one)]
    pub(super) parallel: Option<usize>,
    /// With --sweep: at most this many runs.
    #[arg(long, value_name = "K", requires = "sweep", value_parser = crate::hyper::values::at_least_one)]
    pub(super) trials: Option<usize>,
    /// With --sweep: the combinations in a random order (from --seed; without it, from the
    /// sweep's id when it is given or the sweep runs in shards), e.g. with --trials.
    #[arg(long, requires = "sweep")]
    pub(super) random: bool,
    /// With --sweep: run only shard I (from 0) of N of the combinations (combination t is
    /// shard t mod N's), into the sweep that --sweep-id names. In a Slurm job array or a
    /// Kubernetes Indexed Job, the shard is read from the environment.
    #[arg(long, value_name = "I/N", requires = "sweep", value_parser = parse_shard)]
    pub(super) shard: Option<Shard>,
    /// With --sweep: the sweep's id, the same for every shard: the first to start records
    /// the plan, the others must plan the same runs (default: a fresh id; in a Slurm array,
    /// slurm-<the array's job id>).
    #[arg(long, value_name = "ID", requires = "sweep", value_parser = parse_sweep_id)]
    pub(super) sweep_id: Option<String>,
    /// With --sweep: print a Slurm batch script (a job array, one task per combination) or a
    /// Kubernetes Indexed Job that runs the sweep, and run nothing.
    #[arg(
        long,
        value_name = "KIND",
        requires = "sweep",
        conflicts_with = "shard"
    )]
    pub(super) emit: Option<EmitKind>,
    /// With --emit k8s: the container image that holds this program.
    #[arg(long, value_name = "IMAGE", requires = "emit")]
    pub(super) image: Option<String>,
    /// With --emit k8s: the PersistentVolumeClaim that holds the store, mounted at the
    /// store's path (default: flammable-store).
    #[arg(long, value_name = "NAME", requires = "emit")]
    pub(super) claim: Option<String>,
    /// With --emit: the program the cluster runs (default: this program's absolute path).
    #[arg(long, value_name = "PATH", requires = "emit")]
    pub(super) program: Option<String>,
}

/// A sweep, ready to run: its combinations, and the runs to start or resume.
pub(super) struct SweepPlan {
    pub(super) id: String,
    /// Per combination: (flag, value) pairs, for the progress lines.
    pub(super) settings: Vec<Vec<(String, String)>>,
    /// The runs to start or resume, in order.
    pub(super) jobs: Vec<Job>,
    pub(super) parallel: usize,
    /// The name this program was called by, for the command that continues the sweep.
    pub(super) program: String,
    /// For a sweep continued (`train --resume <sweep>`): how many of its runs were done
    /// (finished or failed) before; `None` for a new sweep.
    pub(super) resumed: Option<usize>,
    /// The shard of the sweep this process runs (`jobs` are its combinations), and where it
    /// was told; `None`: every combination.
    pub(super) shard: Option<(Shard, ShardSource)>,
    /// Whether the sweep's id was given (`--sweep-id`, a cluster's job id) or it runs in
    /// shards: its plan is then made once in the store and agreed with.
    pub(super) shared: bool,
    /// Per combination, every shard's: the arguments of its train command, as the sweep's
    /// record keeps them.
    pub(super) planned: Vec<Vec<String>>,
    /// `--emit`: the script or manifest to print instead of running anything.
    pub(super) emit: Option<Emit>,
}

/// One run of a sweep to start.
pub(super) struct Job {
    /// Its combination (an index of the plan's settings).
    pub(super) trial: usize,
    /// The arguments after the program name.
    pub(super) argv: Vec<OsString>,
    /// The run it resumes, if it resumes one.
    pub(super) resumes: Option<String>,
}

/// The flags of `train` that are not hyperparameters.
const NOT_SWEPT: [&str; 14] = [
    "sweep", "parallel", "trials", "random", "resume", "from", "config", "help", "shard",
    "sweep_id", "emit", "image", "claim", "program",
];

/// The sweep's own flags that take a value: no run of the sweep gets them.
const SWEEP_VALUED: [&str; 9] = [
    "--sweep",
    "--parallel",
    "--trials",
    "--shard",
    "--sweep-id",
    "--emit",
    "--image",
    "--claim",
    "--program",
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
    // The environment is not this process's to read when it only writes a script.
    let placement = match a.emit {
        Some(_) => Placement {
            shard: None,
            id: a.sweep_id.clone(),
        },
        None => place(a.shard, a.sweep_id.as_deref(), &|name| {
            std::env::var(name).ok()
        })
        .map_err(Error::usage)?,
    };
    let shared = placement.id.is_some();
    let id = placement.id.clone().unwrap_or_else(crate::store::fresh_id);
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
        // Every shard of a shared sweep must draw the same order.
        let seed = match g.seed {
            Some(seed) => seed,
            None if shared => order_seed(&id),
            None => rand::random(),
        };
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
        runs.push(Job {
            trial: runs.len(),
            argv: full.into_iter().skip(1).collect(),
            resumes: None,
        });
    }
    let planned = runs
        .iter()
        .map(|j| {
            j.argv
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        })
        .collect();
    if let Some((shard, _)) = placement.shard {
        runs.retain(|job| shard.owns(job.trial));
    }
    let emit = a.emit.map(|kind| Emit {
        kind,
        argv: argv.to_vec(),
        parallel: a.parallel,
        image: a.image.clone(),
        claim: a.claim.clone(),
        program: a.program.clone(),
        id_given: a.sweep_id.is_some(),
    });
    Ok(SweepPlan {
        id,
        settings,
        jobs: runs,
        parallel: parallel(a.parallel, g),
        program: program(argv),
        resumed: None,
        shard: placement.shard,
        shared,
        planned,
        emit,
    })
}

/// An error unless `sweep` made runs of `experiment`.
pub(super) fn of_experiment(experiment: &str, sweep: &SweepRecord) -> Result<()> {
    if sweep.experiment == experiment {
        return Ok(());
    }
    Err(Error::usage(format!(
        "sweep {} is of experiment `{}`, not `{experiment}`",
        sweep.id, sweep.experiment
    )))
}

/// Runs at a time: `--parallel`, else the cores divided by `--threads`.
fn parallel(given: Option<usize>, g: &Global) -> usize {
    let threads = g.threads.unwrap_or_else(threads_in_force);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // --threads 0 (one per core) leaves no room for a second run.
    given.unwrap_or_else(|| cores.checked_div(threads).unwrap_or(1).max(1))
}

fn program(argv: &[OsString]) -> String {
    argv.first()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The plan that continues `sweep` (`train --resume <sweep>`, whose command line is
/// `argv`): each combination whose run stopped (interrupted, crashed) is resumed with
/// `train --resume RUN` and the options of `argv`; each not started is started as planned;
/// finished and failed runs are left as they are.
pub(super) fn resume_plan(
    store: &Store,
    sweep: SweepRecord,
    argv: &[OsString],
    given_parallel: Option<usize>,
    g: &Global,
) -> Result<SweepPlan> {
    // This command line without `--resume <sweep>` and the sweep's flags: the options every
    // resumed run gets.
    let mut base = Vec::new();
    let mut it = without_sweep_flags(argv).into_iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--resume") => {
                it.next();
            }
            Some(s) if s.starts_with("--resume=") => {}
            _ => base.push(a),
        }
    }
    let mut jobs = Vec::new();
    let mut done = 0;
    for (trial, planned) in sweep.argv.iter().enumerate() {
        let Some(run) = crate::store::sweeps::run_of(store, &sweep.id, trial) else {
            jobs.push(Job {
                trial,
                argv: planned.iter().map(OsString::from).collect(),
                resumes: None,
            });
            continue;
        };
        if matches!(run.status, RunStatus::Finished | RunStatus::Failed) {
            done += 1;
            continue;
        }
        if store.is_alive(&run.id) {
            return Err(Error::usage(format!(
                "run {} of sweep {} is still running: stop it first",
                run.id, sweep.id
            )));
        }
        let mut args: Vec<OsString> = base.iter().skip(1).cloned().collect();
        args.extend([OsString::from("--resume"), OsString::from(&run.id)]);
        jobs.push(Job {
            trial,
            argv: args,
            resumes: Some(run.id),
        });
    }
    if jobs.is_empty() {
        return Err(Error::usage(format!(
            "sweep {} has nothing left to run: each of its runs finished or failed (`runs --sweep {}` ranks them)",
            sweep.id, sweep.id
        )));
    }
    Ok(SweepPlan {
        id: sweep.id,
        settings: sweep.settings,
        jobs,
        parallel: parallel(given_parallel, g),
        program: program(argv),
        resumed: Some(done),
        shard: None,
        shared: sweep.shared,
        planned: sweep.argv,
        emit: None,
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
    without_flags(argv, &SWEEP_VALUED, &["--random"])
}

/// `argv` without the flags `valued` (and their values, `--flag V` or `--flag=V`) and the
/// switches `switches`.
pub(super) fn without_flags(
    argv: &[OsString],
    valued: &[&str],
    switches: &[&str],
) -> Vec<OsString> {
    let mut out = Vec::with_capacity(argv.len());
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let text = a.to_string_lossy();
        if valued.contains(&text.as_ref()) {
            it.next();
            continue;
        }
        let joined = text
            .split_once('=')
            .is_some_and(|(flag, _)| valued.contains(&flag));
        if joined || switches.contains(&text.as_ref()) {
            continue;
        }
        out.push(a.clone());
    }
    out
}
