//! [`Task::fit`]'s default body: the optimizer and the [`Trainer`], the best-metric settings
//! checked before any work, a resumed run's position restored, then [`Task::train`].

use super::Task;
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
    match task.train(&mut trainer) {
        Err(stop @ Error::Interrupted { .. }) => {
            trainer.save_checkpoint("latest")?;
            trainer.finish()?;
            Err(stop)
        }
        other => other,
    }
}

/// Refuses, before training, settings that validation cannot serve: `--early-stop` without
/// `--best-metric`, and a `--best-metric` that validation cannot produce (a task without
/// validation data, when `validates` knows it, or a name not among the task's metrics, when it
/// lists them). The command line checks this before a run starts; [`fit`] again, with the
/// task built.
pub fn check_settings<T: Task>(config: &TrainConfig, validates: Option<bool>) -> Result<()> {
    if config.early_stop.is_some() && config.best_metric.is_none() {
        return Err(Error::usage(
            "--early-stop watches the best metric: give one with --best-metric (e.g. --best-metric accuracy)",
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
