//! The command line's shape: the options of every command, `train`/`test`/`eval` and their
//! arguments, and the checks made before anything runs (flags `--resume` would ignore, task
//! hyperparameters that shadow shared flags).

use super::*;
use crate::run::code_dir::CodeDir;
use std::ffi::OsStr;

/// Options of every command.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Run options (every command)")]
pub(super) struct Global {
    /// Compute device: auto, cpu, cuda, cuda:N, metal, metal:N.
    #[arg(long, global = true, default_value = "auto")]
    pub(super) device: String,
    /// Seed of every random draw (initial weights, shuffling, dropout); random when absent,
    /// and recorded either way.
    #[arg(long, global = true)]
    pub(super) seed: Option<u64>,
    /// A message recorded with the run.
    #[arg(short, long, global = true)]
    pub(super) message: Option<String>,
    /// Print nothing but errors and results.
    #[arg(short, long, global = true)]
    pub(super) quiet: bool,
    /// The run store (default: $FLAMMABLE_STORE, else .flammable/ at the root of the task's
    /// repository).
    #[arg(long, global = true)]
    pub(super) store: Option<PathBuf>,
    /// Go on when the code cannot be snapshotted (the run then records no code); by
    /// default such a run stops before any work, saying why.
    #[arg(long, global = true)]
    pub(super) allow_no_snapshot: bool,
    /// CPU threads for candle (default 1, fastest for small models; 0: one per core; at most
    /// 1024).
    #[arg(long, global = true, value_parser = crate::hyper::values::threads)]
    pub(super) threads: Option<usize>,
    /// Where the task's code is (see [`CodeDir`]): set once, before any command runs.
    #[arg(skip)]
    pub(super) code: Option<CodeDir>,
    /// The task's experiment, which `latest` counts the runs of.
    #[arg(skip)]
    pub(super) experiment: Option<&'static str>,
}

impl Global {
    /// These options with the task's code folder chosen (`$FLAMMABLE_CODE_DIR`, else the
    /// task's crate folder, else the current one).
    pub(super) fn with_code_of(&self, spec: &TaskSpec) -> Result<Global> {
        let code = CodeDir::of_task(spec.build_target.manifest_dir).map_err(Error::usage)?;
        Ok(Global {
            code: Some(code),
            experiment: Some(spec.experiment),
            ..self.clone()
        })
    }

    /// An error when `$FLAMMABLE_CODE_DIR` names a folder that no Git repository encloses
    /// (none is created there, so no run can record its code) and `--allow-no-snapshot`
    /// was not given: said before anything is written in that folder.
    pub(super) fn refuse_a_named_code_folder_outside_a_repository(&self) -> Result<()> {
        let Some(code) = &self.code else {
            return Ok(());
        };
        let named = code.source == crate::run::code_dir::CodeSource::Named;
        if !named || self.allow_no_snapshot {
            return Ok(());
        }
        if code.path.ancestors().any(|d| d.join(".git").exists()) {
            return Ok(());
        }
        Err(Error::usage(super::train::no_snapshot(
            &code.no_repository_hint(),
        )))
    }

    /// The task's code folder (the current folder until [`Global::with_code_of`]).
    pub(super) fn code(&self) -> CodeDir {
        match &self.code {
            Some(code) => code.clone(),
            None => CodeDir {
                path: PathBuf::from("."),
                source: crate::run::code_dir::CodeSource::CurrentFolder,
                crate_dir: PathBuf::new(),
            },
        }
    }

    /// The run store: `--store`, else `$FLAMMABLE_STORE`, else the one of the task's
    /// repository.
    pub(super) fn store(&self) -> Result<Store> {
        let store = Store::locate_near(self.store.as_deref(), &self.code().path)?;
        Ok(match self.experiment {
            Some(experiment) => store.scoped_to(experiment),
            None => store,
        })
    }
}

#[derive(Parser, Debug)]
#[command(version, about = "A flammable task: train it, test it, evaluate it.")]
pub(super) struct Cli<H: Args> {
    #[command(flatten)]
    pub(super) global: Global,
    #[command(subcommand)]
    pub(super) command: Command<H>,
}

// Parsed once per process: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub(super) enum Command<H: Args> {
    /// Train the model (a new run; checkpoints and metrics go to its folder).
    Train(TrainArgs<H>),
    /// Test a trained run on the test data (default: the latest finished train run).
    Test(TestArgs),
    /// Run one input file through a trained run's model and write the result.
    Eval(EvalArgs),
    /// Serve a trained run's model over HTTP (POST /predict), batching requests.
    Serve(crate::serve::ServeArgs),
    #[command(flatten)]
    Runs(runs::RunCommand),
}

#[derive(Args, Debug)]
pub(super) struct TrainArgs<H: Args> {
    /// Continue an interrupted or crashed train run from its latest checkpoint, as the same
    /// run, with its hyperparameters and seed; or, given a sweep's id, the sweep: its stopped
    /// runs resumed, the combinations not started started.
    #[arg(long, value_name = "RUN|SWEEP")]
    pub(super) resume: Option<String>,
    /// Train further from another train run's latest checkpoint (weights, optimizer, epoch),
    /// as a new run whose parent it is, with its hyperparameters and seed unless flags (or a
    /// --config file) say otherwise: `--from RUN --epochs 40` trains a 20-epoch run 20 epochs
    /// more.
    #[arg(long, value_name = "RUN", conflicts_with = "resume")]
    pub(super) from: Option<String>,
    /// Read hyperparameters from a RON file, e.g. (lr: 0.01, epochs: 5); flags win over it.
    #[arg(long, value_name = "FILE")]
    pub(super) config: Option<PathBuf>,
    #[command(flatten, next_help_heading = "Training settings (every task)")]
    pub(super) train: TrainConfig,
    #[command(flatten, next_help_heading = "The task's hyperparameters")]
    pub(super) task: H,
    #[command(flatten)]
    pub(super) sweep: SweepArgs,
}

#[derive(Args, Debug)]
pub(super) struct TestArgs {
    /// The train run to test: an id, a unique prefix, latest or latest~N (with --follow: the
    /// newest running train run, else the newest).
    pub(super) run: Option<String>,
    /// Which of its checkpoints: best (kept with --best-metric), latest or step-N; default:
    /// best where the run kept one, else latest.
    #[arg(long, value_parser = crate::checkpoint::parse_checkpoint_name, conflicts_with = "follow")]
    pub(super) checkpoint: Option<String>,
    /// Test each checkpoint set as the run writes it, while it trains; record the results as
    /// test/<metric> series on the train run; end when it ends.
    #[arg(long)]
    pub(super) follow: bool,
    /// With --follow: test every set, in order (training keeps the sets not tested yet);
    /// without it, the newest set, skipping older ones when sets come faster than tests.
    #[arg(long, requires = "follow")]
    pub(super) every: bool,
    /// With --follow: look for new sets every second instead of waiting for file-system
    /// events (for file systems that send none).
    #[arg(long, requires = "follow")]
    pub(super) poll: bool,
}

#[derive(Args, Debug)]
pub(super) struct EvalArgs {
    /// [RUN] IN OUT: the train run (default: the latest), the input file, the result file.
    // Checked by `eval` itself, which says what it takes: clap cannot show an optional first
    // positional before two required ones.
    #[arg(num_args = 0..=3, value_names = ["RUN", "IN", "OUT"])]
    pub(super) args: Vec<PathBuf>,
    /// Which of its checkpoints: best (kept with --best-metric), latest or step-N; default:
    /// best where the run kept one, else latest.
    #[arg(long, value_parser = crate::checkpoint::parse_checkpoint_name)]
    pub(super) checkpoint: Option<String>,
}

/// Options of every command that `train --resume` accepts: the others would change the
/// run, which continues with its own hyperparameters and seed.
pub(super) const RESUME_KEEPS: [&str; 7] = [
    "resume",
    // Runs at a time, for a sweep continued.
    "parallel",
    "device",
    "quiet",
    "store",
    "threads",
    "allow_no_snapshot",
];

/// The parsed command line: `cmd` with the task's training defaults, and a `--config` file's
/// values as its flags' defaults; `Err(exit code)` when clap printed help, a version or an
/// error.
pub(super) fn matches(
    cmd: clap::Command,
    argv: &[OsString],
    defaults: &TrainConfig,
    known_flags: &[String],
    from: Option<PathBuf>,
) -> Result<std::result::Result<(clap::ArgMatches, clap::Command), ExitCode>> {
    let mut cmd = with_defaults(cmd, argv, defaults, known_flags, from)?;
    let matches = match cmd.try_get_matches_from_mut(argv) {
        Ok(m) => m,
        Err(e) => {
            // Under a launcher every rank says it: ranks may be given other command lines
            // (`mpiexec -n 1 A : -n 1 B`), and one rank cannot know what another was given.
            let _ = e.print();
            return Ok(Err(ExitCode::from(e.exit_code().clamp(0, 255) as u8)));
        }
    };
    refuse_changes_on_resume(&cmd, &matches)?;
    Ok(Ok((matches, cmd)))
}

/// `cmd` with the defaults `train` takes: the task's (`defaults`), then those of the
/// `--config` file or of the run `--from` names (`from`, its hyperparameter file).
pub(super) fn with_defaults(
    mut cmd: clap::Command,
    argv: &[OsString],
    defaults: &TrainConfig,
    known_flags: &[String],
    from: Option<PathBuf>,
) -> Result<clap::Command> {
    let mut train_cmd = cmd
        .find_subcommand("train")
        .cloned()
        .ok_or_else(|| Error::msg("the train command is missing"))?;
    train_cmd = apply_train_defaults(train_cmd, defaults)?;
    // `--from RUN`: that run's hyperparameters are the defaults, as a config file's would be;
    // a `--config` file's values then replace those it holds (`rerun` of a run trained
    // further gives the run's own file).
    let config = flag_value(argv, "--config").map(PathBuf::from);
    for path in from.into_iter().chain(config) {
        let values = read_config(&path).map_err(Error::usage)?;
        train_cmd = crate::hyper::apply_config_to(train_cmd, values, known_flags)?;
    }
    // `--lr -1` and a task's `--offset -0.5` are values, not unknown flags.
    train_cmd = train_cmd.mut_args(|a| {
        if a.get_action().takes_values() {
            a.allow_negative_numbers(true)
        } else {
            a
        }
    });
    cmd = cmd.mut_subcommand("train", |_| train_cmd);
    Ok(cmd)
}

/// `train --resume RUN` continues RUN with its own hyperparameters and seed: a flag that
/// would change them is refused rather than silently ignored.
pub(super) fn refuse_changes_on_resume(
    cmd: &clap::Command,
    matches: &clap::ArgMatches,
) -> Result<()> {
    let Some(("train", train)) = matches.subcommand() else {
        return Ok(());
    };
    let Some(run) = train.get_one::<String>("resume") else {
        return Ok(());
    };
    let Some(train_cmd) = cmd.find_subcommand("train") else {
        return Ok(());
    };
    // Flags only: the ids of a flattened struct's group (`TrainConfig`) are no flags.
    let given: Vec<String> = train
        .ids()
        .map(|id| id.as_str())
        .filter(|id| !RESUME_KEEPS.contains(id))
        .filter(|id| train.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        .filter_map(|id| {
            train_cmd
                .get_arguments()
                .chain(cmd.get_arguments())
                .find(|a| a.get_id() == id)
                .map(|a| match a.get_long() {
                    Some(l) => format!("--{l}"),
                    None => id.to_string(),
                })
        })
        .collect();
    if given.is_empty() {
        return Ok(());
    }
    Err(Error::usage(format!(
        "train --resume {run} continues the run with its own hyperparameters and seed: {} cannot change (start a new run for that)",
        given.join(", ")
    )))
}

/// What a recorded command line shows instead of a secret.
pub(super) const REDACTED: &str = "[redacted]";

/// `argv` with the value of `--token` (`--token V` or `--token=V`) replaced by
/// [`REDACTED`]: a command line is recorded with its run, and shown by `show` and the
/// browser to whoever reads the store.
pub(super) fn redact_token(mut argv: Vec<String>) -> Vec<String> {
    let mut after_flag = false;
    for arg in argv.iter_mut().skip(1) {
        if after_flag {
            *arg = REDACTED.to_string();
            after_flag = false;
        } else if arg == "--token" {
            after_flag = true;
        } else if arg.starts_with("--token=") {
            *arg = format!("--token={REDACTED}");
        } else if arg == "--" {
            break;
        }
    }
    argv
}

/// The value of flag `name` (`--name V` or `--name=V`) in `argv`, found before clap parses
/// (a `--config` file's values become the flags' defaults; the thread count must be set
/// before any thread starts).
pub(super) fn flag_value<A: AsRef<OsStr>>(argv: &[A], name: &str) -> Option<String> {
    let at = flag_values(argv, name).into_iter().next()?;
    Some(argv[at.word].as_ref().to_string_lossy()[at.from..].to_string())
}

/// Where a value of a flag stands in a command line: in word `word`, from byte `from` (0 for
/// `--name V`'s `V`, past `--name=` for the joined form).
pub(super) struct FlagValue {
    pub word: usize,
    pub from: usize,
}

/// Each value of flag `name` in `argv` (after the program's name, before `--`), in order.
pub(super) fn flag_values<A: AsRef<OsStr>>(argv: &[A], name: &str) -> Vec<FlagValue> {
    let mut found = Vec::new();
    let mut i = 1;
    while let Some(a) = argv.get(i) {
        let a = a.as_ref().to_string_lossy();
        if a == "--" {
            break;
        }
        if a == name {
            if i + 1 < argv.len() {
                found.push(FlagValue {
                    word: i + 1,
                    from: 0,
                });
            }
            i += 2;
            continue;
        }
        if a.strip_prefix(name).is_some_and(|v| v.starts_with('=')) {
            found.push(FlagValue {
                word: i,
                from: name.len() + 1,
            });
        }
        i += 1;
    }
    found
}

/// Refuses a task whose hyperparameters reuse the name of a shared flag (`lr`, `epochs`,
/// `seed`, `device`, …): clap would mix the two up.
pub(super) fn refuse_shadowed_flags<H: Args>() -> Result<()> {
    let own = H::augment_args(clap::Command::new("task"));
    let shared = TrainArgs::<crate::hyper::NoHyperparameters>::augment_args(Global::augment_args(
        clap::Command::new("shared"),
    ));
    let clashes: Vec<String> = own
        .get_arguments()
        .filter(|a| shared.get_arguments().any(|s| s.get_id() == a.get_id()))
        .map(|a| format!("`{}`", a.get_id()))
        .collect();
    if clashes.is_empty() {
        return Ok(());
    }
    Err(Error::msg(format!(
        "the task's hyperparameter(s) {} have the name of a flag every task has (see `train --help`): rename them",
        clashes.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_never_reaches_a_record() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            redact_token(argv(&[
                "digits", "serve", "--token", "s3cret", "--port", "0"
            ])),
            argv(&["digits", "serve", "--token", REDACTED, "--port", "0"])
        );
        assert_eq!(
            redact_token(argv(&["digits", "serve", "--token=s3cret"])),
            argv(&["digits", "serve", "--token=[redacted]"])
        );
        let plain = argv(&["digits", "train", "--epochs", "3"]);
        assert_eq!(redact_token(plain.clone()), plain);
    }
}
