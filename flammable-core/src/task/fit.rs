//! The training loop's default bodies: [`Task::fit`] (the optimizer and the [`Trainer`], the
//! best-metric settings checked before any work, a resumed run's position restored),
//! [`Task::train`] (the epochs), [`Task::epoch`] (the batches) and [`Task::every_n_epochs`]
//! (validation, test, checkpoint).

use super::Task;
use crate::data::Batches;
use crate::env::Env;
use crate::error::{Error, Result};
use crate::hyper::config::{BestMode, TrainConfig};
use crate::train::scalars::Results;
use crate::train::trainer::Trainer;

/// Builds the optimizer and a [`Trainer`] over `env` (restored from `env.resume_state()` for
/// a resumed run), then runs [`Task::train`]. When training stops on a signal, writes the
/// `latest` checkpoint of the exact position before returning the interruption.
pub fn fit<T: Task>(task: &T, env: &Env) -> Result<Results> {
    let optimizer = task.optimizer(env.vars().trainable_vars(), env)?;
    let mut trainer = Trainer::new(env, optimizer);
    // The validation data are asked for only when a best metric needs them.
    let validates = match env.config().best_metric {
        Some(_) => Some(task.validation_data()?.is_some()),
        None => None,
    };
    check_settings::<T>(env.config(), validates)?;
    if let Some(metric) = &env.config().best_metric {
        if env.config().best_mode.is_none() {
            if let Some(larger) = T::larger_is_better(metric) {
                trainer.set_best_mode(if larger { BestMode::Max } else { BestMode::Min });
            }
        }
        let mode = trainer.best_mode().unwrap_or(BestMode::Max);
        env.say(&format!(
            "best checkpoint: the {} val/{metric} (--best-mode to change)",
            if mode == BestMode::Max {
                "largest"
            } else {
                "smallest"
            }
        ));
    }
    if let Some(state) = env.resume_state() {
        trainer.restore(state)?;
    }
    // Several processes: all start where rank 0 stands.
    trainer.share_rank_0_state()?;
    match task.train(&mut trainer) {
        Err(stop @ Error::Interrupted { .. }) => {
            trainer.save_checkpoint("latest")?;
            trainer.finish()?;
            Err(stop)
        }
        other => other,
    }
}

/// [`Task::epoch`]'s default body: an iteration per batch, each batch's losses recorded
/// (kept on the device, read back every `log_every` steps); a resumed run starts its first
/// epoch after the batches it had done.
pub fn epoch<T: Task>(task: &T, data: &mut Batches, trainer: &mut Trainer) -> Result<()> {
    let env = trainer.env();
    let (epoch, skip) = (trainer.epoch() as usize, trainer.batch() as usize);
    // Several processes: each rank looks one batch ahead, so that the ranks can check that
    // their epochs end together.
    let ahead = trainer.parallel.is_some();
    let mut batches = data
        .epoch_from(epoch, skip, env.seed(), env.device())?
        .peekable();
    if let Some(parallel) = trainer.parallel.as_mut() {
        parallel.check_epoch_start(batches.peek().is_some())?;
    }
    while let Some(batch) = batches.next() {
        let batch = batch?;
        if ahead {
            trainer.more_batches = Some(batches.peek().is_some());
        }
        trainer.note_input(&batch.input)?;
        let losses = task.iteration(batch, trainer)?;
        trainer.record(&losses)?;
        task.on_step_end(trainer)?;
    }
    Ok(())
}

/// [`Task::every_n_epochs`]'s default body: validation when due (the best checkpoint and
/// early stopping considered), a test when due, then the `latest` checkpoint — unless the
/// default [`train`] called it, which writes that checkpoint after the `epoch_end` hooks.
pub fn every_n_epochs<T: Task>(task: &T, trainer: &mut Trainer) -> Result<()> {
    let every = trainer.config().validate_every.max(1);
    if (trainer.epoch() + 1).is_multiple_of(every) {
        if let Some(data) = task.validation_data()? {
            let mut data = share_of_test_data(data);
            let results = task.validate(&mut data, trainer)?;
            trainer.report("val", &results);
            trainer.consider_best(&results)?;
            task.on_validation_end(trainer, &results)?;
        }
    }
    let test_every = trainer.config().test_every;
    if test_every > 0 && (trainer.epoch() + 1).is_multiple_of(test_every) {
        let mut data = share_of_test_data(task.test_data()?);
        let results = task.test_on(&mut data, trainer.env())?;
        trainer.report("test", &results);
    }
    if trainer.checkpoint_after_hooks {
        return Ok(());
    }
    trainer.save_checkpoint("latest")
}

/// This process's share of validation or test data: all of it, or in a training of several
/// processes, every rank's batches (`test_on` pools the ranks' metrics).
fn share_of_test_data(data: Batches) -> Batches {
    match crate::collective::world() {
        Some(world) => data.shard_batches(world.rank(), world.size()),
        None => data,
    }
}

/// [`Task::train`]'s default body: the epochs, each followed by `every_n_epochs` and the
/// `epoch_end` hooks, then the `latest` checkpoint, until the last or a stop; then the
/// `train_end` hooks. The checkpoint comes after the hooks so that it holds what they did
/// (values logged, a stop): a run killed after it resumes with them, as it resumes from it.
pub fn train<T: Task>(task: &T, trainer: &mut Trainer) -> Result<Results> {
    let mut data = task.train_data()?;
    if let Some(world) = crate::collective::world() {
        data = data.shard(world.rank(), world.size());
    }
    trainer.begin(data.batches_per_epoch());
    for epoch in trainer.first_epoch()..trainer.config().epochs as u64 {
        trainer.begin_epoch(epoch);
        task.epoch(&mut data, trainer)?;
        trainer.end_epoch()?;
        trainer.checkpoint_after_hooks = true;
        let validated = task.every_n_epochs(trainer);
        trainer.checkpoint_after_hooks = false;
        validated?;
        task.on_epoch_end(trainer)?;
        trainer.save_checkpoint("latest")?;
        if trainer.stopping().is_some() {
            break;
        }
    }
    task.on_train_end(trainer)?;
    trainer.finish()
}

/// Refuses, before training, settings that validation cannot serve: `--early-stop` without
/// `--best-metric`, and a `--best-metric` that validation cannot produce (a task without
/// validation data, when `validates` knows it, or a name not among the task's metrics, when it
/// lists them). The command line checks this before a run starts; [`fit`] again, with the
/// task built.
pub fn check_settings<T: Task>(config: &TrainConfig, validates: Option<bool>) -> Result<()> {
    if config.early_stop.is_some() && config.best_metric.is_none() {
        return Err(Error::usage(
            "--early-stop watches the best metric: give one with --best-metric (e.g. --best-metric accuracy), or turn early stopping off with --early-stop off",
        ));
    }
    if config.min_delta > 0.0 && config.early_stop.is_none() {
        return Err(Error::usage(
            "--min-delta is the least improvement --early-stop counts: give --early-stop PATIENCE too",
        ));
    }
    match &config.best_metric {
        Some(metric) => check_best_metric(metric, T::metric_names(), validates),
        None => Ok(()),
    }
}

/// Refuses, before training, a `--best-metric` that validation cannot produce: a task
/// without validation data, or a name not among the task's metrics (when it lists them).
fn check_best_metric(
    metric: &str,
    names: Option<Vec<&'static str>>,
    validates: Option<bool>,
) -> Result<()> {
    if validates == Some(false) {
        return Err(Error::usage(format!(
            "--best-metric {metric}: this task has no validation data (add a #[data(validation)] step)"
        )));
    }
    match names {
        Some(names) if !names.contains(&metric) => Err(Error::usage(format!(
            "--best-metric {metric}: the task has no such metric; it has: {}",
            names.join(", ")
        ))),
        _ => Ok(()),
    }
}
