//! Learning-rate schedules: constant, step decay, cosine and linear decay, each with an
//! optional linear warm-up.

use serde::{Deserialize, Serialize};

/// The shape of the learning rate over training (`--schedule`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// The base learning rate throughout.
    #[default]
    Constant,
    /// Multiplied by `lr_gamma` every `lr_step_epochs` epochs.
    Step,
    /// Cosine decay from the base rate to `min_lr` at the last step.
    Cosine,
    /// Linear decay from the base rate to `min_lr` at the last step.
    Linear,
}

/// A learning-rate schedule: what the loop asks before every optimizer step.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// The shape of the decay.
    pub kind: ScheduleKind,
    /// The base learning rate.
    pub lr: f64,
    /// The floor of cosine and linear decay.
    pub min_lr: f64,
    /// Optimizer steps of linear warm-up from 0 to `lr` (0: none).
    pub warmup_steps: usize,
    /// Epochs between two decays of the step schedule.
    pub step_epochs: usize,
    /// Factor of each decay of the step schedule.
    pub gamma: f64,
}

impl Schedule {
    /// The learning rate for optimizer step `step` (from 0) in `epoch` (from 0), out of
    /// `total_steps` optimizer steps in the whole run.
    pub fn lr_at(&self, step: usize, epoch: usize, total_steps: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        match self.kind {
            ScheduleKind::Constant => self.lr,
            ScheduleKind::Step => {
                self.lr * self.gamma.powi((epoch / self.step_epochs.max(1)) as i32)
            }
            ScheduleKind::Cosine => {
                let c = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                self.min_lr + (self.lr - self.min_lr) * c
            }
            ScheduleKind::Linear => self.lr + (self.min_lr - self.lr) * progress,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(kind: ScheduleKind, warmup_steps: usize) -> Schedule {
        Schedule {
            kind,
            lr: 1.0,
            min_lr: 0.0,
            warmup_steps,
            step_epochs: 2,
            gamma: 0.5,
        }
    }

    #[test]
    fn warmup_then_constant() {
        let s = sched(ScheduleKind::Constant, 4);
        assert_eq!(s.lr_at(0, 0, 100), 0.25);
        assert_eq!(s.lr_at(3, 0, 100), 1.0);
        assert_eq!(s.lr_at(50, 3, 100), 1.0);
    }

    #[test]
    fn step_decays_by_epoch() {
        let s = sched(ScheduleKind::Step, 0);
        assert_eq!(s.lr_at(0, 1, 100), 1.0);
        assert_eq!(s.lr_at(0, 2, 100), 0.5);
        assert_eq!(s.lr_at(0, 5, 100), 0.25);
    }

    #[test]
    fn cosine_and_linear_reach_the_floor() {
        for kind in [ScheduleKind::Cosine, ScheduleKind::Linear] {
            let s = sched(kind, 0);
            assert_eq!(s.lr_at(0, 0, 100), 1.0);
            assert!((s.lr_at(50, 0, 100) - 0.5).abs() < 1e-9);
            assert!(s.lr_at(100, 0, 100).abs() < 1e-9);
        }
    }
}
