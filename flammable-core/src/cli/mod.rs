//! The command line of a task binary: `train`, `test [RUN]`, `eval [RUN] IN OUT`, and the
//! run commands (`runs`, `show`, `diff`, `checkout`, `rerun`, `rm`, `gc`).
//!
//! The only place where errors become text and an exit code.

mod provenance;
pub mod runs;
mod stdout;

use stdout::outln;

use crate::atomic::write_atomic;
use crate::config::TrainConfig;
use crate::device::open_device;
use crate::env::Env;
use crate::error::{Error, Result};
use crate::hyper::{apply_train_defaults, read_config, HyperRecord, Hyperparameters};
use crate::output::Output;
use crate::progress::table;
use crate::record::{Environment, Record, RunKind, RunStatus};
use crate::run::Run;
use crate::scalars::Results;
use crate::store::{Store, CHECKPOINTS_DIR, HYPERPARAMETERS_FILE};
use crate::task::Task;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::any::Any;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Options of every command.
#[derive(Args, Debug, Clone)]
struct Global {
    /// Compute device: auto, cpu, cuda, cuda:N, metal, metal:N.
    #[arg(long, global = true, default_value = "auto")]
    device: String,
    /// Seed of every random draw (initial weights, shuffling, dropout); random when absent,
    /// and recorded either way.
    #[arg(long, global = true)]
    seed: Option<u64>,
    /// A message recorded with the run.
    #[arg(short, long, global = true)]
    message: Option<String>,
    /// Print nothing but errors and results.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// The run store (default: $FLAMMABLE_STORE, else .flammable/ at the repository root).
    #[arg(long, global = true)]
    store: Option<PathBuf>,
    /// Go on when the code cannot be snapshotted (the run then records no code); by
    /// default such a run stops before any work, saying why.
    #[arg(long, global = true)]
    allow_no_snapshot: bool,
    /// CPU threads for candle (default 1, fastest for small models; 0: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
}

#[derive(Parser, Debug)]
#[command(version, about = "A flammable task: train it, test it, evaluate it.")]
struct Cli<H: Args> {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command<H>,
}

#[derive(Subcommand, Debug)]
enum Command<H: Args> {
    /// Train the model (a new run; checkpoints and metrics go to its folder).
    Train(TrainArgs<H>),
    /// Test a trained run on the test data (default: the latest finished train run).
    Test(TestArgs),
    /// Run one input file through a trained run's model and write the result.
    Eval(EvalArgs),
    #[command(flatten)]
    Runs(runs::RunCommand),
}

#[derive(Args, Debug)]
struct TrainArgs<H: Args> {
    /// Continue an interrupted or crashed train run from its latest checkpoint, as the same
    /// run, with its hyperparameters and seed.
    #[arg(long, value_name = "RUN")]
    resume: Option<String>,
    /// Read hyperparameters from a RON file, e.g. (lr: 0.01, epochs: 5); flags win over it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    train: TrainConfig,
    #[command(flatten)]
    task: H,
}

#[derive(Args, Debug)]
struct TestArgs {
    /// The train run to test: an id, a unique prefix, latest or latest~N.
    run: Option<String>,
    /// Which of its checkpoints: latest, best (kept with --best-metric) or step-N.
    #[arg(long, default_value = "latest", value_parser = crate::checkpoint::parse_checkpoint_name)]
    checkpoint: String,
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// [RUN] IN OUT: the train run (default: the latest), the input file, the result file.
    #[arg(required = true, num_args = 2..=3, value_name = "[RUN] IN OUT")]
    args: Vec<PathBuf>,
    /// Which of its checkpoints: latest, best (kept with --best-metric) or step-N.
    #[arg(long, default_value = "latest", value_parser = crate::checkpoint::parse_checkpoint_name)]
    checkpoint: String,
}

/// Options of every command that `train --resume` accepts: the others would change the
/// run, which continues with its own hyperparameters and seed.
const RESUME_KEEPS: [&str; 6] = [
    "resume",
    "device",
    "quiet",
    "store",
    "threads",
    "allow_no_snapshot",
];

/// Runs the command line of task `T` and returns the process exit code: 0 on success, 2 for
/// usage errors (clap's included), 1 for any other error, printed as one line.
///
/// Call it from `fn main`, before starting threads: it sets `RAYON_NUM_THREADS` and
/// `CANDLE_NUM_THREADS` (candle reads them at every matrix product) to the thread count of
/// `--threads`, which is only sound while the process has one thread.
pub fn main<T: Task>() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    if let Err(e) = set_threads(flag_value(&argv, "--threads")) {
        eprintln!("error: {e}");
        return ExitCode::from(e.exit_code());
    }
    match run::<T>(argv) {
        Ok(code) => code,
        Err(Error::OutputClosed) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// [`main`] over explicit arguments (the first is the program name). Unlike `main`, it
/// changes no environment variable: candle uses the thread count already in force.
pub fn run<T: Task>(argv: Vec<OsString>) -> Result<ExitCode> {
    refuse_shadowed_flags::<T::Hyper>()?;
    // Only the parts that know `T`'s types are generic; `matches` and `execute` are not.
    let cmd = Cli::<T::Hyper>::command().name(T::experiment());
    let known = crate::hyper::hyper_flag_ids::<T::Hyper>();
    let matches = match matches(cmd, &argv, &T::default_config(), &known)? {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    let cli = Cli::<T::Hyper>::from_arg_matches(&matches)
        .map_err(|e| Error::usage(e.to_string().trim()))?;
    let command = match cli.command {
        Command::Train(a) => Erased::Train(TrainRequest {
            resume: a.resume,
            train: a.train,
            task: Box::new(a.task),
        }),
        Command::Test(a) => Erased::Test(a),
        Command::Eval(a) => Erased::Eval(a),
        Command::Runs(c) => Erased::Runs(c),
    };
    execute(&TaskSpec::of::<T>(), &cli.global, command, argv)
}

/// The parsed command line: `cmd` with the task's training defaults, and a `--config` file's
/// values as its flags' defaults; `Err(exit code)` when clap printed help, a version or an
/// error.
fn matches(
    mut cmd: clap::Command,
    argv: &[OsString],
    defaults: &TrainConfig,
    known_flags: &[String],
) -> Result<std::result::Result<clap::ArgMatches, ExitCode>> {
    let mut train_cmd = cmd
        .find_subcommand("train")
        .cloned()
        .ok_or_else(|| Error::msg("the train command is missing"))?;
    train_cmd = apply_train_defaults(train_cmd, defaults)?;
    if let Some(path) = flag_value(argv, "--config").map(PathBuf::from) {
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
    let matches = match cmd.try_get_matches_from_mut(argv) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return Ok(Err(ExitCode::from(e.exit_code().clamp(0, 255) as u8)));
        }
    };
    refuse_changes_on_resume(&cmd, &matches)?;
    Ok(Ok(matches))
}

/// `train --resume RUN` continues RUN with its own hyperparameters and seed: a flag that
/// would change them is refused rather than silently ignored.
fn refuse_changes_on_resume(cmd: &clap::Command, matches: &clap::ArgMatches) -> Result<()> {
    let Some(("train", train)) = matches.subcommand() else {
        return Ok(());
    };
    let Some(run) = train.get_one::<String>("resume") else {
        return Ok(());
    };
    let Some(train_cmd) = cmd.find_subcommand("train") else {
        return Ok(());
    };
    let given: Vec<String> = train
        .ids()
        .map(|id| id.as_str())
        .filter(|id| !RESUME_KEEPS.contains(id))
        .filter(|id| train.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        .map(|id| {
            train_cmd
                .get_arguments()
                .chain(cmd.get_arguments())
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_long().map(|l| format!("--{l}")))
                .unwrap_or_else(|| id.to_string())
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

/// A parsed command, the task's hyperparameters type-erased.
enum Erased {
    Train(TrainRequest),
    Test(TestArgs),
    Eval(EvalArgs),
    Runs(runs::RunCommand),
}

fn execute(spec: &TaskSpec, g: &Global, command: Erased, argv: Vec<OsString>) -> Result<ExitCode> {
    if !matches!(command, Erased::Runs(_)) {
        crate::allocator::tune_for_training();
    }
    let threads = g.threads.unwrap_or_else(threads_in_force);
    let argv: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match command {
        Erased::Train(request) => train(spec, g, request, argv, threads),
        Erased::Test(a) => test(spec, g, a, argv, threads),
        Erased::Eval(a) => eval(spec, g, a, argv, threads),
        Erased::Runs(c) => runs::execute(c, &Store::locate(g.store.as_deref())?, g.quiet),
    }
}

/// What the command line needs of task `T`, its generic parts behind function pointers: the
/// command line itself is then compiled once, in this crate, instead of again in every task
/// binary (it made a task's rebuild after an edit twice as slow as a hand-written program's).
struct TaskSpec {
    experiment: &'static str,
    build_target: crate::record::BuildTarget,
    /// Builds the task from its hyperparameters, loads a checkpoint (a resumed run) or says
    /// how many parameters it has, and trains.
    fit: fn(&dyn Any, &Env, Option<&str>) -> Result<Results>,
    /// Builds the task, loads the named checkpoint and tests it.
    test: fn(&dyn Any, &Env, &str) -> Result<Results>,
    /// Builds the task, loads the named checkpoint and evaluates one input file.
    eval: fn(&dyn Any, &Env, &str, &Path, &Path) -> Result<Output>,
    /// A run's `hyperparameters.ron`.
    write_hyper: fn(&TrainConfig, &dyn Any) -> Result<String>,
    /// Reads a run's `hyperparameters.ron`.
    read_hyper: fn(&Path) -> Result<ErasedHyper>,
}

impl TaskSpec {
    fn of<T: Task>() -> TaskSpec {
        TaskSpec {
            experiment: T::experiment(),
            build_target: T::build_target(),
            fit: fit_task::<T>,
            test: test_task::<T>,
            eval: eval_task::<T>,
            write_hyper: write_hyper::<T::Hyper>,
            read_hyper: read_hyper::<T::Hyper>,
        }
    }
}

/// A run's hyperparameters: the shared ones, and the task's own, type-erased.
type ErasedHyper = (TrainConfig, Box<dyn Any>);

/// The hyperparameters of a train command.
struct TrainRequest {
    resume: Option<String>,
    train: TrainConfig,
    task: Box<dyn Any>,
}

fn hyper_of<H: 'static>(hyper: &dyn Any) -> Result<&H> {
    hyper
        .downcast_ref()
        .ok_or_else(|| Error::msg("internal error: hyperparameters of another task"))
}

fn fit_task<T: Task>(hyper: &dyn Any, env: &Env, checkpoint: Option<&str>) -> Result<Results> {
    let task = T::new(hyper_of::<T::Hyper>(hyper)?, env)?;
    match checkpoint {
        Some(name) => {
            task.load_model(env, name)?;
        }
        None => env.say(&format!("{} parameters", env.vars().parameter_count())),
    }
    task.fit(env)
}

fn test_task<T: Task>(hyper: &dyn Any, env: &Env, checkpoint: &str) -> Result<Results> {
    let task = T::new(hyper_of::<T::Hyper>(hyper)?, env)?;
    task.load_model(env, checkpoint)?;
    task.test(env)
}

fn eval_task<T: Task>(
    hyper: &dyn Any,
    env: &Env,
    checkpoint: &str,
    input: &Path,
    output: &Path,
) -> Result<Output> {
    let task = T::new(hyper_of::<T::Hyper>(hyper)?, env)?;
    task.load_model(env, checkpoint)?;
    task.eval_path(input, output, env)
}

fn write_hyper<H: Hyperparameters>(train: &TrainConfig, task: &dyn Any) -> Result<String> {
    HyperRecord {
        train: train.clone(),
        task: hyper_of::<H>(task)?.clone(),
    }
    .to_ron()
}

fn read_hyper<H: Hyperparameters>(path: &Path) -> Result<ErasedHyper> {
    let record = HyperRecord::<H>::read(path)?;
    Ok((record.train, Box::new(record.task)))
}

/// The value of flag `name` (`--name V` or `--name=V`) in `argv`, found before clap parses
/// (a `--config` file's values become the flags' defaults; the thread count must be set
/// before any thread starts).
fn flag_value(argv: &[OsString], name: &str) -> Option<String> {
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--" {
            break;
        }
        if a == name {
            return it.next().map(|v| v.to_string_lossy().into_owned());
        }
        if let Some(v) = a.strip_prefix(name).and_then(|v| v.strip_prefix('=')) {
            return Some(v.to_string());
        }
    }
    None
}

/// The CPU thread count the environment asks for: `CANDLE_NUM_THREADS`, else
/// `RAYON_NUM_THREADS`, else 1 (measured fastest for small models on CPU); 0: one per core.
fn threads_in_force() -> usize {
    ["CANDLE_NUM_THREADS", "RAYON_NUM_THREADS"]
        .iter()
        .find_map(|k| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok()))
        .unwrap_or(1)
}

/// Applies the thread policy before candle starts its pool: `threads` (the `--threads`
/// flag's text), else [`threads_in_force`]. Only for [`main`], while the process has one
/// thread: it sets environment variables.
fn set_threads(threads: Option<String>) -> Result<()> {
    let n = match threads {
        Some(text) => crate::values::count(&text)
            .map_err(|e| Error::usage(format!("invalid value '{text}' for '--threads': {e}")))?,
        None => threads_in_force(),
    };
    // Sound here: `main` runs this before the task, or anything else, starts a thread.
    if n > 0 {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    } else {
        std::env::remove_var("RAYON_NUM_THREADS");
        std::env::remove_var("CANDLE_NUM_THREADS");
    }
    Ok(())
}

/// Refuses a task whose hyperparameters reuse the name of a shared flag (`lr`, `epochs`,
/// `seed`, `device`, …): clap would mix the two up.
fn refuse_shadowed_flags<H: Args>() -> Result<()> {
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

#[allow(clippy::too_many_arguments)]
fn new_record(
    experiment: &str,
    kind: RunKind,
    parent: Option<String>,
    g: &Global,
    argv: Vec<String>,
    seed: u64,
    device: String,
    threads: usize,
) -> Record {
    Record {
        parent,
        message: g.message.clone(),
        argv,
        environment: Environment {
            device,
            threads,
            host: host_name(),
            flammable: env!("CARGO_PKG_VERSION").to_string(),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .to_string(),
        },
        ..Record::new(experiment, kind, seed)
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

thread_local! {
    /// True while task code runs under `conclude`: its panics are recorded, not printed.
    static IN_TASK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The last panic in task code: where, and the backtrace.
    static LAST_PANIC: std::cell::RefCell<Option<(String, String)>> = const { std::cell::RefCell::new(None) };
}

/// Panics in task code are caught by `conclude`, which reports them in one line and saves
/// the backtrace in the run's folder; any other panic keeps Rust's usual report.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_TASK.with(std::cell::Cell::get) {
                let backtrace = std::backtrace::Backtrace::force_capture().to_string();
                let at = info.location().map(|l| l.to_string()).unwrap_or_default();
                LAST_PANIC.with(|p| *p.borrow_mut() = Some((at, backtrace)));
            } else {
                default(info);
            }
        }));
    });
}

/// Runs `body`, then closes the run: finished on success, failed (with the message) on an
/// error or a panic in task code (whose backtrace goes to `panic.txt` in the run's folder).
fn conclude<R>(env: &Env, body: impl FnOnce() -> Result<R>) -> Result<R> {
    install_panic_hook();
    IN_TASK.with(|t| t.set(true));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
    IN_TASK.with(|t| t.set(false));
    let result = match outcome {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            let (at, backtrace) = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_default();
            if let Some(run) = env.run() {
                let text = format!("the task panicked at {at}: {what}\n\n{backtrace}");
                let _ = write_atomic(&run.dir().join("panic.txt"), text.as_bytes());
            }
            Err(Error::msg(format!("the task panicked at {at}: {what}")))
        }
    };
    if let Some(run) = env.run() {
        let (status, error) = match &result {
            Ok(_) => (RunStatus::Finished, None),
            Err(Error::Interrupted { signal, step }) => {
                let argv0 = run.record().argv.first().cloned().unwrap_or_default();
                let line = format!(
                    "interrupted by {} at step {step}: checkpoint saved; resume with `{argv0} train --resume {}`",
                    if *signal == 15 { "SIGTERM" } else { "SIGINT" },
                    run.id()
                );
                // Printed even with --quiet: it says how to continue.
                eprintln!("{line}");
                run.log_line(&line);
                (RunStatus::Interrupted, None)
            }
            Err(e) => (RunStatus::Failed, Some(e.to_string())),
        };
        if let Err(e) = run.finish(status, error) {
            eprintln!("warning: {e}");
        }
    }
    result
}

fn train(
    spec: &TaskSpec,
    g: &Global,
    a: TrainRequest,
    argv: Vec<String>,
    threads: usize,
) -> Result<ExitCode> {
    let stop = stop_on_signals();
    if let Some(resume_spec) = &a.resume {
        return resume(spec, g, resume_spec, stop);
    }
    let (device, device_name) = open_device(&g.device)?;
    let seed = g.seed.unwrap_or_else(rand::random);
    let store = Store::locate(g.store.as_deref())?;
    let record = new_record(
        spec.experiment,
        RunKind::Train,
        None,
        g,
        argv,
        seed,
        device_name.clone(),
        threads,
    );
    let record = Record {
        rerun_of: std::env::var(provenance::RERUN_OF_ENV)
            .ok()
            .filter(|s| !s.is_empty()),
        ..record
    };
    let run = Run::start(&store, record)?;
    let text = (spec.write_hyper)(&a.train, a.task.as_ref())?;
    write_atomic(&run.hyperparameters_path(), text.as_bytes())?;
    let header = format!(
        "run {} of {} (train, seed {seed}, {device_name}) in {}",
        run.id(),
        spec.experiment,
        run.dir().display()
    );
    let trains_nothing = a.train.epochs == 0;
    let env = Env::new(device, seed)
        .with_config(a.train)
        .with_run(run)
        .with_quiet(g.quiet)
        .with_stop(stop);
    env.say(&header);
    if trains_nothing {
        env.say("warning: --epochs 0 trains nothing: this run will have no checkpoint to test or evaluate");
    }
    record_code(spec, &env, &store, g.allow_no_snapshot)?;
    fit_and_report(spec, &env, a.task.as_ref(), None)
}

/// Builds the task, loads `checkpoint` (a resumed run), trains, records and prints the
/// final losses.
fn fit_and_report(
    spec: &TaskSpec,
    env: &Env,
    hyper: &dyn Any,
    checkpoint: Option<&str>,
) -> Result<ExitCode> {
    let results = conclude(env, || {
        let results = (spec.fit)(hyper, env, checkpoint)?;
        if let Some(run) = env.run() {
            run.set_metrics(&results)?;
        }
        Ok(results)
    })?;
    print_results(env, "trained", &results)?;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C and SIGTERM ask training to stop at the next step boundary (the returned flag
/// holds the signal); a second one exits at once.
fn stop_on_signals() -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::flag;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::Arc;
    let which = Arc::new(AtomicUsize::new(0));
    let asked = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Actions run in the order registered: the exit checks whether a signal came before.
        let _ = flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&asked));
        let _ = flag::register_usize(sig, Arc::clone(&which), sig as usize);
        let _ = flag::register(sig, Arc::clone(&asked));
    }
    which
}

/// `train --resume RUN`: the same run, continued from its `latest` checkpoint with its own
/// hyperparameters and seed; a changed working tree is snapshotted and recorded.
fn resume(
    spec: &TaskSpec,
    g: &Global,
    run_spec: &str,
    stop: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Result<ExitCode> {
    let store = Store::locate(g.store.as_deref())?;
    let record = store.resolve(run_spec, |r| r.kind == RunKind::Train)?;
    of_this_experiment(spec, &record)?;
    if record.status == RunStatus::Finished {
        return Err(Error::usage(format!(
            "run {} finished: there is nothing to resume",
            record.id
        )));
    }
    let dir = store.run_dir(&record.id);
    let (found, notes) = crate::checkpoint::newest_good_checkpoint(&dir.join(CHECKPOINTS_DIR));
    for note in &notes {
        eprintln!("warning: {note}");
    }
    let (train_config, task_hyper) = (spec.read_hyper)(&dir.join(HYPERPARAMETERS_FILE))?;
    let (device, device_name) = open_device(&g.device)?;
    let run = Run::reopen(&store, &record.id)?;
    let stray = crate::checkpoint::remove_temporary_files(&dir.join(CHECKPOINTS_DIR));
    if stray > 0 {
        eprintln!(
            "removed {stray} half-written checkpoint file(s) left by the interrupted process"
        );
    }
    let env = Env::new(device, record.seed)
        .with_config(train_config)
        .with_quiet(g.quiet)
        .with_stop(stop);
    let (env, checkpoint, state) = match found {
        Some((checkpoint, state)) => {
            run.truncate_metrics(state.metric_points)?;
            let env = env.with_run(run).with_resume(state.clone());
            (env, Some(checkpoint), state)
        }
        None if notes.is_empty() => {
            // Killed before its first checkpoint: nothing of it is kept but its seed, so it
            // starts again from the beginning, as the same run.
            run.truncate_metrics(0)?;
            (
                env.with_run(run),
                None,
                crate::checkpoint::TrainingState::default(),
            )
        }
        None => {
            return Err(Error::usage(format!(
                "run {} has no usable checkpoint to resume from (see the warnings above)",
                record.id
            )))
        }
    };
    match &checkpoint {
        Some(_) => env.say(&format!(
            "run {} of {} resumed at epoch {}, step {} (seed {}, {device_name})",
            record.id,
            spec.experiment,
            state.epoch + 1,
            state.step,
            record.seed
        )),
        None => env.say(&format!(
            "run {} of {} has no checkpoint yet: training it again from the start (seed {}, {device_name})",
            record.id, spec.experiment, record.seed
        )),
    }
    if let Some(original) = &record.snapshot {
        if let Ok((now, _)) =
            provenance::snapshot_code_as(&store, &record, &format!("resume-{}", state.step))
        {
            if let Some(line) = provenance::code_changes(&record, &now) {
                env.say(&format!("warning: {line}"));
                if let Some(run) = env.run() {
                    run.update(|r| r.resumed_with.push(now.clone()))?;
                }
            } else if let Ok(repo) = gix::open(&original.git_dir) {
                // The same code: the resume needs no snapshot of its own.
                let name = format!(
                    "{}{}-resume-{}",
                    crate::snapshot::RESUME_PREFIX,
                    record.id,
                    state.step
                );
                let _ = crate::snapshot::delete_reference(&repo, &name);
            }
        }
    }
    fit_and_report(spec, &env, task_hyper.as_ref(), checkpoint.as_deref())
}

/// Snapshots the code of the run in `env` and records how its binary was built. A failed
/// snapshot fails the run before any work, unless `allow_no_snapshot` (then it is reported
/// and the run goes on without code).
fn record_code(
    spec: &TaskSpec,
    env: &Env,
    store: &Store,
    allow_no_snapshot: bool,
) -> Result<Option<crate::record::SnapshotRecord>> {
    let Some(run) = env.run() else {
        return Ok(None);
    };
    let build = provenance::build_info(spec.build_target);
    if !build.stale_sources.is_empty() {
        env.say(&format!(
            "warning: this binary is older than {}: it may not be the code in the snapshot (rebuild it)",
            build.stale_sources.join(", ")
        ));
    }
    let snapshot = match provenance::snapshot_code(store, &run.record()) {
        Ok((snapshot, lines)) => {
            for line in lines {
                env.say(&line);
            }
            // A repository created just now did not exist when the store was located.
            store.hide_from_git();
            Some(snapshot)
        }
        Err(e) if allow_no_snapshot => {
            // Printed even with --quiet: the run will not know its code.
            let line = format!("warning: no snapshot of the code: {e}");
            eprintln!("{line}");
            run.log_line(&line);
            None
        }
        Err(e) => {
            let message = format!(
                "no snapshot of the code: {e} (pass --allow-no-snapshot to run without one)"
            );
            run.finish(RunStatus::Failed, Some(message.clone()))?;
            return Err(Error::msg(message));
        }
    };
    let recorded = snapshot.clone();
    run.update(|r| {
        r.build = build;
        r.snapshot = recorded;
    })?;
    Ok(snapshot)
}

/// The train run `run_spec` names, or the latest finished train run of the experiment.
fn parent_run(spec: &TaskSpec, store: &Store, run_spec: Option<&str>) -> Result<Record> {
    let parent = match run_spec {
        Some(run_spec) => store.resolve(run_spec, |r| r.kind == RunKind::Train)?,
        None => store
            .latest(spec.experiment, RunKind::Train)?
            .ok_or_else(|| {
                Error::usage(format!(
                    "no finished train run of `{}` in {}; run `train` first",
                    spec.experiment,
                    store.root().display()
                ))
            })?,
    };
    of_this_experiment(spec, &parent)?;
    Ok(parent)
}

/// An error unless `record` is a run of the task's experiment.
fn of_this_experiment(spec: &TaskSpec, record: &Record) -> Result<()> {
    if record.experiment == spec.experiment {
        return Ok(());
    }
    Err(Error::usage(format!(
        "run {} is of experiment `{}`, not `{}`",
        record.id, record.experiment, spec.experiment
    )))
}

/// Opens a test or eval run of `parent`: its hyperparameters, a fresh run, the task built
/// and its `latest` checkpoint loaded.
fn child_run(
    spec: &TaskSpec,
    g: &Global,
    kind: RunKind,
    (run_spec, checkpoint): (Option<&str>, &str),
    argv: Vec<String>,
    threads: usize,
) -> Result<(Env, Box<dyn Any>)> {
    let store = Store::locate(g.store.as_deref())?;
    let parent = parent_run(spec, &store, run_spec)?;
    let hyper_path = store.run_dir(&parent.id).join(HYPERPARAMETERS_FILE);
    let (train_config, task_hyper) = (spec.read_hyper)(&hyper_path)?;
    has_checkpoint(&store, &parent, train_config.epochs, checkpoint)?;
    let (device, device_name) = open_device(&g.device)?;
    let seed = g.seed.unwrap_or(parent.seed);
    let record = new_record(
        spec.experiment,
        kind,
        Some(parent.id.clone()),
        g,
        argv,
        seed,
        device_name,
        threads,
    );
    let run = Run::start(&store, record)?;
    let text = (spec.write_hyper)(&train_config, task_hyper.as_ref())?;
    write_atomic(&run.hyperparameters_path(), text.as_bytes())?;
    let header = format!(
        "run {} of {} ({kind} of {})",
        run.id(),
        spec.experiment,
        parent.id
    );
    let env = Env::new(device, seed)
        .with_config(train_config)
        .with_run(run)
        .with_quiet(g.quiet);
    env.say(&header);
    if let Some(snapshot) = record_code(spec, &env, &store, g.allow_no_snapshot)? {
        if let Some(line) = provenance::code_changes(&parent, &snapshot) {
            env.say(&line);
        }
    }
    Ok((env, task_hyper))
}

fn test(
    spec: &TaskSpec,
    g: &Global,
    a: TestArgs,
    argv: Vec<String>,
    threads: usize,
) -> Result<ExitCode> {
    let (env, hyper) = child_run(
        spec,
        g,
        RunKind::Test,
        (a.run.as_deref(), &a.checkpoint),
        argv,
        threads,
    )?;
    let results = conclude(&env, || {
        let results = (spec.test)(hyper.as_ref(), &env, &a.checkpoint)?;
        if let Some(run) = env.run() {
            run.set_metrics(&results)?;
            run.report_to_parent(&results)?;
        }
        Ok(results)
    })?;
    print_results(&env, "tested", &results)?;
    Ok(ExitCode::SUCCESS)
}

fn eval(
    spec: &TaskSpec,
    g: &Global,
    a: EvalArgs,
    argv: Vec<String>,
    threads: usize,
) -> Result<ExitCode> {
    let (run_spec, input, output) = match a.args.as_slice() {
        [run, i, o] => (
            Some(run.to_string_lossy().into_owned()),
            i.clone(),
            o.clone(),
        ),
        [i, o] => (None, i.clone(), o.clone()),
        _ => return Err(Error::usage("eval takes [RUN] IN OUT")),
    };
    if !input.exists() {
        return Err(Error::usage(format!(
            "input `{}` does not exist",
            input.display()
        )));
    }
    if same_file(&input, &output) {
        return Err(Error::usage(format!(
            "the result would overwrite the input `{}`: name another OUT",
            input.display()
        )));
    }
    let (env, hyper) = child_run(
        spec,
        g,
        RunKind::Eval,
        (run_spec.as_deref(), &a.checkpoint),
        argv,
        threads,
    )?;
    let result = conclude(&env, || {
        (spec.eval)(hyper.as_ref(), &env, &a.checkpoint, &input, &output)
    })?;
    outln!("{}", result.as_ron());
    env.say(&format!("wrote {}", output.display()));
    Ok(ExitCode::SUCCESS)
}

/// True when `a` and `b` name the same file (`b` need not exist).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// An error, before any run starts, unless train run `parent` has checkpoint `name`; it says
/// why there is none (no epoch trained, a failure or crash before the first one).
fn has_checkpoint(store: &Store, parent: &Record, epochs: usize, name: &str) -> Result<()> {
    let dir = store.run_dir(&parent.id).join(CHECKPOINTS_DIR);
    if dir.join(format!("{name}.safetensors")).exists() {
        return Ok(());
    }
    let available = crate::checkpoint::checkpoint_names(&dir);
    if !available.is_empty() {
        let hint = if name == "best" {
            " (train with --best-metric to keep one)"
        } else {
            ""
        };
        return Err(Error::usage(format!(
            "run {} has no checkpoint `{name}`{hint}; it has: {}",
            parent.id,
            available.join(", ")
        )));
    }
    let why = match (parent.status, epochs) {
        (_, 0) => "it trained 0 epochs".to_string(),
        (RunStatus::Failed, _) => "it failed before its first checkpoint".to_string(),
        (RunStatus::Crashed | RunStatus::Interrupted, _) => format!(
            "it stopped before its first checkpoint; `train --resume {}` trains it from the start",
            parent.id
        ),
        (RunStatus::Running, _) => "it has not written its first checkpoint yet".to_string(),
        _ => "none was written".to_string(),
    };
    Err(Error::usage(format!(
        "run {} has no checkpoint ({why})",
        parent.id
    )))
}

fn print_results(env: &Env, title: &str, results: &Results) -> Result<()> {
    if results.is_empty() {
        return Ok(());
    }
    let text = table(title, results);
    if let Some(run) = env.run() {
        run.log_line(&text);
    }
    stdout::line(&text)
}
