//! `train`, `test` and `eval` of a task binary, over the run commands.

mod args;
mod child;
mod conclude;
mod continued;
mod follow;
mod process;
mod ranks;
mod serve;
mod spec;
mod sweep;
mod sweep_control;
mod sweep_emit;
mod sweep_host;
mod sweep_left;
mod sweep_runs;
mod sweep_shard;
mod train;

use args::*;
use child::*;
use conclude::*;
use continued::*;
use follow::*;
use process::*;
use ranks::*;
use serve::*;
use spec::*;
use sweep::*;
use sweep_control::*;
use sweep_emit::*;
use sweep_host::*;
use sweep_left::*;
use sweep_runs::*;
use sweep_shard::*;
use train::*;

use super::runs;
use super::stdout::{self, outln};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::hyper::config::TrainConfig;
use crate::hyper::{apply_train_defaults, read_config, HyperRecord, Hyperparameters};
use crate::model::device::open_device;
use crate::run::Run;
use crate::store::record::{Environment, Record, RunKind, RunStatus};
use crate::store::{Store, CHECKPOINTS_DIR, HYPERPARAMETERS_FILE};
use crate::task::output::Output;
use crate::task::Task;
use crate::train::progress::table;
use crate::train::scalars::Results;
use crate::util::atomic::write_atomic;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::any::Any;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Runs the command line of task `T` and returns the process exit code: 0 on success, 2 for
/// usage errors (clap's included), 1 for any other error, printed as one line.
///
/// Call it from `fn main`, before starting threads: it sets `RAYON_NUM_THREADS` and
/// `CANDLE_NUM_THREADS` (candle reads them at every matrix product) to the thread count of
/// `--threads`, which is only sound while the process has one thread.
pub fn main<T: Task + 'static>() -> ExitCode {
    main_serving::<T>(crate::task::serve::loader::<T>)
}

/// [`main`], with the loader `serve` loads `T`'s models with: [`crate::task::serve::loader`],
/// or [`crate::task::serve::shared_loader`] for a task that is `Send` and `Sync` (see
/// [`crate::task::serve::LoaderProbe`]).
pub fn main_serving<T: Task + 'static>(serve_loader: crate::task::serve::Loader) -> ExitCode {
    // The MPI library's transport takes SIGHUP at load time: it is given back.
    #[cfg(all(feature = "mpi", target_os = "linux"))]
    crate::collective::hangup::restore();
    let argv: Vec<OsString> = std::env::args_os().collect();
    let threads = set_threads(flag_value(&argv, "--threads"));
    // A launcher's processes join each other before anything can fail: a rank that stopped
    // before joining would leave the others waiting in MPI's start-up.
    let result = crate::collective::start()
        .and(threads)
        .and_then(|()| run_serving::<T>(argv, serve_loader));
    match crate::collective::world() {
        Some(world) => end_ranks(world, result),
        None => super::report(result),
    }
}

/// How a rank of a training of several processes ends: together with the others (MPI is
/// finalised) when the training finished or was interrupted, which every rank agrees on;
/// otherwise it reports its error and ends every rank (rank 0 has recorded its error; another
/// rank's error goes to rank 0, which records it).
/// How long a rank that is done waits for MPI to finish before it exits all the same.
const FINALIZE_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

fn end_ranks(world: &dyn crate::collective::Collective, result: Result<ExitCode>) -> ExitCode {
    match result {
        // A command line that clap refused (clap has printed why): the other ranks may be
        // waiting for this one.
        Ok(code) if code != ExitCode::SUCCESS => {
            if world.rank() == 0 {
                world.abort(2)
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
            world.fail(
                &format!(
                    "rank {}: its command line was refused (see its output)",
                    world.rank()
                ),
                2,
            )
        }
        Ok(_) | Err(Error::Interrupted { .. }) | Err(Error::OutputClosed) => {
            let status = match &result {
                Err(e @ Error::Interrupted { .. }) => i32::from(e.exit_code()),
                _ => 0,
            };
            let code = super::report(result);
            // The run is recorded: leaving MPI must not hold the job. MPICH over UCX's TCP
            // transport was seen to wait forever in MPI_Finalize now and then.
            std::thread::spawn(move || {
                std::thread::sleep(FINALIZE_LIMIT);
                crate::util::stderr::errln!(
                    "warning: MPI did not finish within {} s of the end of training: leaving without it",
                    FINALIZE_LIMIT.as_secs()
                );
                std::process::exit(status)
            });
            world.finalize();
            code
        }
        Err(e) => {
            let code = i32::from(e.exit_code());
            if world.rank() == 0 {
                crate::util::stderr::errln!("error: {e}");
                world.abort(code)
            }
            if code == 2 {
                // A usage error is usually every rank's (the same flags): rank 0 says it and
                // ends the job meanwhile; a rank whose flags alone were bad says it after.
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            // Rank 0 prints it as it records it (`fail` prints it if rank 0 cannot).
            world.fail(&format!("rank {}: {e}", world.rank()), code)
        }
    }
}

/// [`main`] over explicit arguments (the first is the program name). Unlike `main`, it
/// changes no environment variable: candle uses the thread count already in force.
pub fn run<T: Task + 'static>(argv: Vec<OsString>) -> Result<ExitCode> {
    run_serving::<T>(argv, crate::task::serve::loader::<T>)
}

/// [`run`], with the loader `serve` loads `T`'s models with (see [`main_serving`]).
pub fn run_serving<T: Task + 'static>(
    argv: Vec<OsString>,
    serve_loader: crate::task::serve::Loader,
) -> Result<ExitCode> {
    refuse_shadowed_flags::<T::Hyper>()?;
    // Only the parts that know `T`'s types are generic; `matches` and `execute` are not.
    let cmd = Cli::<T::Hyper>::command()
        .name(T::experiment())
        .about(format!(
            "{}: a Flammable task. Train it, test it, evaluate it; every invocation is a run, kept with its code, \
             hyperparameters, metrics and checkpoints.",
            T::experiment()
        ))
        .after_help(
            "Start with `train`, then `test` (the latest train run) and `eval IN OUT`; \
             `runs`, `show RUN` and `diff A B` read the record. `<command> --help` says more.",
        )
        .mut_subcommand("eval", |eval| {
            eval.override_usage(format!(
                "{} eval [OPTIONS] [RUN] <IN> <OUT>",
                T::experiment()
            ))
        });
    let known = crate::hyper::hyper_flag_ids::<T::Hyper>();
    let from = continued_hyperparameters::<T>(&argv)?;
    // The parent and its split seed, which a run trained further from it must keep.
    let parent_split = match &from {
        Some((id, path)) => Some((
            id.clone(),
            crate::hyper::read_record_parts(path, &T::default_config())?
                .0
                .split_seed,
        )),
        None => None,
    };
    let from = from.map(|(_, path)| path);
    let (matches, prepared) = match matches(cmd, &argv, &T::default_config(), &known, from)? {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    let cli = Cli::<T::Hyper>::from_arg_matches(&matches)
        .map_err(|e| Error::usage(e.to_string().trim()))?;
    let command = match cli.command {
        Command::Train(a) if !a.sweep.sweep.is_empty() => {
            // Each combination as its run will read it, and its training settings as its run
            // will check them: a sweep whose runs would all be refused starts none.
            // The command parses them with the defaults the runs will have: the task's,
            // the --config file's, the --from run's.
            let check = |child: &[OsString]| -> Result<()> {
                let matches = prepared.clone().try_get_matches_from(child).map_err(|e| {
                    let text = e.to_string();
                    let line = text
                        .lines()
                        .next()
                        .unwrap_or("")
                        .trim_start_matches("error: ");
                    Error::usage(line.to_string())
                })?;
                let parsed = Cli::<T::Hyper>::from_arg_matches(&matches)
                    .map_err(|e| Error::usage(e.to_string().trim()))?;
                match parsed.command {
                    Command::Train(a) => {
                        let train = a.train.settled();
                        if let Some((parent, seed)) = &parent_split {
                            keeps_the_split(parent, *seed, &train)?;
                        }
                        crate::task::fit::check_settings::<T>(&train, T::has_validation_data())
                    }
                    _ => Ok(()),
                }
            };
            let plan = plan(
                &Cli::<T::Hyper>::command(),
                &argv,
                &a.sweep,
                &cli.global,
                &check,
            )?;
            Erased::Sweep(plan)
        }
        Command::Train(a) => {
            // `--resume` names a run, or a sweep to continue.
            let store = || crate::task::load::store_near_code::<T>(cli.global.store.as_deref());
            let sweep = match &a.resume {
                Some(id) => crate::store::sweeps::read(&store()?, id)?,
                None => None,
            };
            if let Some(sweep) = sweep {
                of_experiment(T::experiment(), &sweep)?;
                Erased::Sweep(resume_plan(
                    &store()?,
                    sweep,
                    &argv,
                    a.sweep.parallel,
                    &cli.global,
                )?)
            } else if a.sweep.parallel.is_some() {
                return Err(Error::usage(
                    "--parallel runs a sweep's runs at once: give it with --sweep, or with --resume SWEEP",
                ));
            } else {
                Erased::Train(TrainRequest {
                    resume: a.resume,
                    from: a.from,
                    train: a.train.settled(),
                    task: Box::new(a.task),
                })
            }
        }
        Command::Test(a) => Erased::Test(a),
        Command::Eval(a) => Erased::Eval(a),
        Command::Serve(a) => Erased::Serve(a),
        Command::Runs(c) => Erased::Runs(c),
    };
    execute(&TaskSpec::of::<T>(serve_loader), &cli.global, command, argv)
}

fn execute(spec: &TaskSpec, g: &Global, command: Erased, argv: Vec<OsString>) -> Result<ExitCode> {
    let g = &g.with_code_of(spec)?;
    // Before any store or run is made in a folder that holds no code.
    if !matches!(command, Erased::Runs(_)) {
        g.refuse_a_named_code_folder_outside_a_repository()?;
    }
    // A server tunes the allocator its own way (it gives memory back between bursts).
    if !matches!(command, Erased::Runs(_) | Erased::Serve(_)) {
        crate::util::allocator::tune_for_training();
    }
    // A launcher's processes (mpiexec, srun) train together.
    join_ranks(&command)?;
    let threads = g.threads.unwrap_or_else(threads_in_force);
    // The command line as runs record it (`show`, the browser): without the token's value.
    let argv: Vec<String> = args::redact_token(
        argv.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
    );
    match command {
        Erased::Train(request) => train(spec, g, request, argv, threads),
        Erased::Test(a) if a.follow => follow(spec, g, a, argv, threads),
        Erased::Test(a) => test(spec, g, a, argv, threads),
        Erased::Eval(a) => eval(spec, g, a, argv, threads),
        Erased::Serve(a) => serve(spec, g, a, argv, threads),
        Erased::Sweep(plan) => run_sweep(spec, g, plan),
        Erased::Runs(c) => runs::execute(c, &g.store()?, g.quiet),
    }
}
