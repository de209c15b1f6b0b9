//! The task behind function pointers: the command line is compiled once, in this crate, and
//! only the few functions that know the task's types are generic.

use super::*;

/// A parsed command, the task's hyperparameters type-erased.
pub(super) enum Erased {
    Train(TrainRequest),
    Test(TestArgs),
    Eval(EvalArgs),
    Serve(crate::serve::ServeArgs),
    Sweep(SweepPlan),
    Runs(runs::RunCommand),
}

/// What the command line needs of task `T`, its generic parts behind function pointers: the
/// command line itself is then compiled once, in this crate, instead of again in every task
/// binary (it made a task's rebuild after an edit twice as slow as a hand-written program's).
pub(super) struct TaskSpec {
    pub(super) experiment: &'static str,
    pub(super) build_target: crate::store::record::BuildTarget,
    /// Builds the task from its hyperparameters, loads a checkpoint (a resumed run) or says
    /// how many parameters it has, and trains.
    pub(super) fit: fn(&dyn Any, &Env, Option<&str>) -> Result<Results>,
    /// Builds the task, loads the named checkpoint and tests it.
    pub(super) test: fn(&dyn Any, &Env, &str) -> Result<Results>,
    /// Builds the task once and runs a follower's loop with a tester over it.
    pub(super) follow: Follow,
    /// Builds the task, loads the named checkpoint and evaluates one input file.
    pub(super) eval: fn(&dyn Any, &Env, &str, &Path, &Path) -> Result<Output>,
    /// Loads a train run's model for `serve`.
    #[cfg(feature = "serve")]
    pub(super) serve_loader: crate::task::serve::Loader,
    /// The task's request reader for `serve`.
    #[cfg(feature = "serve")]
    pub(super) decode_request: crate::task::serve::Decode,
    /// Whether the task takes NaN and infinite inputs (`serve` refuses them otherwise).
    #[cfg(feature = "serve")]
    pub(super) non_finite_inputs: bool,
    /// A run's `hyperparameters.ron`.
    pub(super) write_hyper: fn(&TrainConfig, &dyn Any) -> Result<String>,
    /// Refuses training settings the task's validation cannot serve, before a run starts.
    pub(super) check_settings: fn(&TrainConfig) -> Result<()>,
    /// Reads a run's `hyperparameters.ron`, with the fields it lacked (which took their
    /// defaults).
    pub(super) read_hyper: fn(&Path) -> Result<RecordedHyper>,
    /// The task's defaults of the shared training settings.
    pub(super) default_config: fn() -> TrainConfig,
    /// Refuses a run's `hyperparameters.ron` holding a value its flag would refuse (a
    /// file edited by hand: `batch_size: 0`), before `train --resume` trains with it.
    pub(super) check_hyper: fn(&Path) -> Result<()>,
}

impl TaskSpec {
    /// Task `T`'s spec, its models loaded for `serve` by `serve_loader`.
    pub(super) fn of<T: Task + 'static>(
        #[cfg_attr(not(feature = "serve"), allow(unused_variables))]
        serve_loader: crate::task::serve::Loader,
    ) -> TaskSpec {
        TaskSpec {
            experiment: T::experiment(),
            build_target: T::build_target(),
            fit: fit_task::<T>,
            test: test_task::<T>,
            follow: follow_task::<T>,
            eval: eval_task::<T>,
            #[cfg(feature = "serve")]
            serve_loader,
            #[cfg(feature = "serve")]
            decode_request: T::decode_request,
            #[cfg(feature = "serve")]
            non_finite_inputs: T::NON_FINITE_INPUTS,
            write_hyper: write_hyper::<T::Hyper>,
            read_hyper: read_hyper::<T>,
            check_settings: check_settings::<T>,
            default_config: T::default_config,
            check_hyper: check_hyper::<T>,
        }
    }
}

/// A run's recorded hyperparameters, and the fields its file lacked (added to the task since),
/// which took their flags' defaults.
pub(super) type RecordedHyper = (
    TrainConfig,
    Box<dyn Any>,
    Vec<crate::hyper::defaults::Filled>,
);

/// The hyperparameters of a train command.
pub(super) struct TrainRequest {
    pub(super) resume: Option<String>,
    pub(super) from: Option<String>,
    pub(super) train: TrainConfig,
    pub(super) task: Box<dyn Any>,
}

pub(super) fn hyper_of<H: 'static>(hyper: &dyn Any) -> Result<&H> {
    hyper
        .downcast_ref()
        .ok_or_else(|| Error::msg("internal error: hyperparameters of another task"))
}

pub(super) fn fit_task<T: Task>(
    hyper: &dyn Any,
    env: &Env,
    checkpoint: Option<&str>,
) -> Result<Results> {
    let task = T::new(hyper_of::<T::Hyper>(hyper)?, env)?;
    match checkpoint {
        Some(name) => {
            task.load_model(env, name)?;
        }
        None => env.say(&crate::store::model_summary::table(&env.vars().summary())),
    }
    task.fit(env)
}

pub(super) fn check_settings<T: Task>(config: &TrainConfig) -> Result<()> {
    crate::task::fit::check_settings::<T>(config, T::has_validation_data())
}

pub(super) fn test_task<T: Task>(hyper: &dyn Any, env: &Env, checkpoint: &str) -> Result<Results> {
    let task = T::new(hyper_of::<T::Hyper>(hyper)?, env)?;
    task.load_model(env, checkpoint)?;
    task.test(env)
}

/// A follower's loop, given the tester: a function that loads a checkpoint set into the task
/// and tests it.
pub(super) type Tester<'t> = &'t mut dyn FnMut(&str) -> Result<Results>;

/// Builds the task once and hands `body` a tester over it.
pub(super) type Follow =
    fn(&dyn Any, &Env, &mut dyn FnMut(Tester<'_>) -> Result<Results>) -> Result<Results>;

pub(super) fn follow_task<T: Task>(
    hyper: &dyn Any,
    env: &Env,
    body: &mut dyn FnMut(Tester<'_>) -> Result<Results>,
) -> Result<Results> {
    let task = T::new(hyper_of::<T::Hyper>(hyper)?, env)?;
    body(&mut |checkpoint: &str| {
        task.load_model(env, checkpoint)?;
        task.test(env)
    })
}

pub(super) fn eval_task<T: Task>(
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

pub(super) fn write_hyper<H: Hyperparameters>(
    train: &TrainConfig,
    task: &dyn Any,
) -> Result<String> {
    HyperRecord {
        train: train.clone(),
        task: hyper_of::<H>(task)?.clone(),
    }
    .to_ron()
}

/// Every value of the hyperparameter file at `path` through its flag's parser, as a
/// `--config` file's values go: an error names the file and what the flag says.
fn check_hyper<T: Task>(path: &Path) -> Result<()> {
    use clap::Args as _;
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, e))?;
    let values = crate::hyper::parse_config(text, path)?;
    let cmd = T::Hyper::augment_args(TrainConfig::augment_args(clap::Command::new("check")));
    let cmd = crate::hyper::apply_config::<T::Hyper>(cmd, values)?;
    match cmd.try_get_matches_from(["check"]) {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = e.to_string();
            let line = text
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            Err(Error::usage(format!(
                "{} holds a value its flag refuses (was it edited?): {line}",
                path.display()
            )))
        }
    }
}

pub(super) fn read_hyper<T: Task>(path: &Path) -> Result<RecordedHyper> {
    let (record, filled) = HyperRecord::<T::Hyper>::read_filled_as(path, &T::default_config())?;
    Ok((record.train, Box::new(record.task), filled))
}
