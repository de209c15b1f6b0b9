//! The training settings every task has (`--epochs`, `--lr`, …): flags of `train`, recorded
//! with the run beside the task's own hyperparameters.

use crate::hyper::schedule::{Schedule, ScheduleKind};
use crate::hyper::values;
use serde::{Deserialize, Serialize};

/// Which optimizer the default `Task::optimizer` builds (`--optimizer`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam with decoupled weight decay.
    #[default]
    Adamw,
    /// Stochastic gradient descent with momentum.
    Sgd,
}

/// Training settings shared by every task. Each field is a flag of `train`
/// (`--batch-size 32`) and a key of a `--config` file (`batch_size: 32`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, clap::Args)]
pub struct TrainConfig {
    /// Passes over the training data.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Examples per batch (for data steps that build a Batcher from it).
    #[arg(long, default_value_t = 64, value_parser = values::at_least_one)]
    pub batch_size: usize,
    /// Base learning rate.
    #[arg(long, default_value_t = 1e-3, value_parser = values::positive)]
    pub lr: f64,
    /// Optimizer built by the default `optimizer` step.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Adamw)]
    pub optimizer: OptimizerKind,
    /// Momentum of SGD.
    #[arg(long, default_value_t = 0.9, value_parser = values::non_negative)]
    pub momentum: f64,
    /// Weight decay (decoupled for AdamW, an L2 term for SGD).
    #[arg(long, default_value_t = 0.01, value_parser = values::non_negative)]
    pub weight_decay: f64,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = ScheduleKind::Constant)]
    pub schedule: ScheduleKind,
    /// Optimizer steps of linear learning-rate warm-up.
    #[arg(long, default_value_t = 0)]
    pub warmup_steps: usize,
    /// Floor of the cosine and linear schedules.
    #[arg(long, default_value_t = 0.0, value_parser = values::non_negative)]
    pub min_lr: f64,
    /// Epochs between two decays of the step schedule.
    #[arg(long, default_value_t = 30, value_parser = values::at_least_one)]
    pub lr_step_epochs: usize,
    /// Factor of each decay of the step schedule.
    #[arg(long, default_value_t = 0.1, value_parser = values::positive)]
    pub lr_gamma: f64,
    /// Clip gradients to this global L2 norm (off when absent).
    #[arg(long, value_parser = values::positive)]
    pub clip_grad_norm: Option<f64>,
    /// Batches whose gradients are summed before one optimizer step.
    #[arg(long, default_value_t = 1, value_parser = values::at_least_one_u64)]
    pub accumulate: u64,
    /// Steps between two read-backs of the losses from the device.
    #[arg(long, default_value_t = 50, value_parser = values::at_least_one_u64)]
    pub log_every: u64,
    /// Epochs between two validations (when the task has validation data).
    #[arg(long, default_value_t = 1, value_parser = values::at_least_one_u64)]
    pub validate_every: u64,
    /// Test on the test data every this many epochs, while training (0: never); the results
    /// are recorded as `test/<metric>` series, as `test --follow` records them.
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub test_every: u64,
    /// Also write a checkpoint every this many steps within epochs (0: only at epoch ends).
    #[arg(long, default_value_t = 0)]
    pub checkpoint_every: u64,
    /// Checkpoints kept besides `latest` and `best` (the newest ones).
    #[arg(long, default_value_t = 3, value_parser = values::at_least_one_u64)]
    pub keep_checkpoints: u64,
    /// The validation metric whose best value is kept as the `best` checkpoint, e.g. accuracy
    /// (`none`: no best checkpoint, where the task's defaults name one).
    #[arg(long)]
    pub best_metric: Option<String>,
    /// Whether the best value of `best_metric` is the largest (`max`) or smallest (`min`);
    /// default: `min` for losses and errors (loss, error, mse, rmse, mae, perplexity, …),
    /// else `max`.
    #[arg(long, value_enum)]
    pub best_mode: Option<BestMode>,
    /// Stop training once `best_metric` has not improved by more than `min_delta` for this
    /// many validations in a row (off when absent, or `off`; needs --best-metric).
    #[arg(long, value_name = "PATIENCE", value_parser = values::patience)]
    #[serde(default)]
    pub early_stop: Option<u64>,
    /// The least change of `best_metric` that counts as an improvement for --early-stop.
    #[arg(long, default_value_t = 0.0, value_parser = values::non_negative)]
    #[serde(default)]
    pub min_delta: f64,
    /// Record the global norm of the gradients every optimizer step as `grad_norm` (it is
    /// recorded anyway when --clip-grad-norm is on).
    #[arg(long)]
    #[serde(default)]
    pub log_grad_norm: bool,
    /// Seed of the data split, for tasks that split with `env.split_seed()`: the same for
    /// every run unless set, so that runs that differ in --seed are validated on the same
    /// rows.
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
}

/// Which value of the best metric is best.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BestMode {
    /// The smallest.
    Min,
    /// The largest.
    Max,
}

impl BestMode {
    /// The usual direction of metric `name`: smaller is better for losses, errors and
    /// distances (`loss`, `nll`, `error`, `err`, `mse`, `rmse`, `mae`, `mape`, `perplexity`,
    /// `ppl`, `wer`, `cer`, `distance`), larger for anything else (accuracy, F1, AUC, …).
    pub fn guess(name: &str) -> BestMode {
        const SMALLER_IS_BETTER: [&str; 13] = [
            "loss",
            "nll",
            "error",
            "err",
            "mse",
            "rmse",
            "mae",
            "mape",
            "perplexity",
            "ppl",
            "wer",
            "cer",
            "distance",
        ];
        let lower = name.to_ascii_lowercase();
        let words = lower.split(|c: char| !c.is_ascii_alphanumeric());
        let smaller = words.clone().any(|w| SMALLER_IS_BETTER.contains(&w))
            || lower.contains("loss")
            || lower.contains("error");
        if smaller {
            BestMode::Min
        } else {
            BestMode::Max
        }
    }
}

impl std::fmt::Display for BestMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BestMode::Min => "min",
            BestMode::Max => "max",
        })
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 64,
            lr: 1e-3,
            optimizer: OptimizerKind::Adamw,
            momentum: 0.9,
            weight_decay: 0.01,
            schedule: ScheduleKind::Constant,
            warmup_steps: 0,
            min_lr: 0.0,
            lr_step_epochs: 30,
            lr_gamma: 0.1,
            clip_grad_norm: None,
            accumulate: 1,
            log_every: 50,
            validate_every: 1,
            test_every: 0,
            checkpoint_every: 0,
            keep_checkpoints: 3,
            best_metric: None,
            best_mode: None,
            early_stop: None,
            min_delta: 0.0,
            log_grad_norm: false,
            split_seed: 0,
        }
    }
}

impl TrainConfig {
    /// These settings with the words that turn a setting off read as its absence:
    /// `--best-metric none` and `--early-stop off` (which the parser reads as 0), so that a
    /// command line can turn off what a task's defaults turn on.
    pub fn settled(mut self) -> Self {
        if self.best_metric.as_deref() == Some("none") {
            self.best_metric = None;
        }
        if self.early_stop == Some(0) {
            self.early_stop = None;
        }
        self
    }

    /// The learning-rate schedule these settings describe.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            kind: self.schedule,
            lr: self.lr,
            min_lr: self.min_lr,
            warmup_steps: self.warmup_steps,
            step_epochs: self.lr_step_epochs,
            gamma: self.lr_gamma,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: TrainConfig,
    }

    #[test]
    fn error_metrics_are_minimised() {
        for name in [
            "loss",
            "val_loss",
            "rmse",
            "mae",
            "mse",
            "perplexity",
            "top1_error",
            "wer",
        ] {
            assert_eq!(BestMode::guess(name), BestMode::Min, "{name}");
        }
        for name in ["accuracy", "f1", "auc", "precision", "recall", "bleu"] {
            assert_eq!(BestMode::guess(name), BestMode::Max, "{name}");
        }
    }

    #[test]
    fn defaults_of_clap_and_of_default_agree() {
        assert_eq!(Cli::parse_from(["x"]).config, TrainConfig::default());
    }
}
