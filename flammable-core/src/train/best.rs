//! The best checkpoint and stopping early: which validations improve `--best-metric` (the
//! next checkpoint then becomes `best`), `--early-stop`'s patience, and [`Trainer::stop`].

use crate::error::{Error, Result};
use crate::hyper::config::BestMode;
use crate::train::scalars::Results;
use crate::train::trainer::Trainer;

impl Trainer<'_> {
    /// The direction of `--best-metric`: `--best-mode`, else the one the task knows
    /// ([`crate::Task::larger_is_better`]), else the metric's usual one (see
    /// [`BestMode::guess`]); `None` without a best metric.
    pub fn best_mode(&self) -> Option<BestMode> {
        let metric = self.config().best_metric.as_deref()?;
        Some(
            self.config()
                .best_mode
                .or(self.known_mode)
                .unwrap_or_else(|| BestMode::guess(metric)),
        )
    }

    /// The best metric's direction, as the task knows it (`--best-mode` still wins).
    pub fn set_best_mode(&mut self, mode: BestMode) {
        self.known_mode = Some(mode);
    }

    /// Notes validation `results`: when `best_metric` improved, the next checkpoint also
    /// becomes `best`, and the record gets `best/val/<metric>`. A NaN or infinite value is
    /// never the best, and counts as a validation without improvement for `--early-stop`.
    pub fn consider_best(&mut self, results: &Results) -> Result<()> {
        let Some(metric) = self.config().best_metric.clone() else {
            return Ok(());
        };
        let Some(&value) = results.get(&metric) else {
            let names: Vec<&str> = results.keys().map(String::as_str).collect();
            return Err(Error::usage(format!(
                "--best-metric {metric}: validation has no such metric; it has: {}",
                names.join(", ")
            )));
        };
        let max = self.best_mode() == Some(BestMode::Max);
        // A diverged validation (NaN, infinite) is never the best.
        let better = value.is_finite()
            && match self.best {
                None => true,
                Some(b) if max => value > b,
                Some(b) => value < b,
            };
        if better {
            self.best = Some(value);
            self.best_pending = true;
            if let Some(run) = self.env.run() {
                run.set_metrics(&Results::from([(format!("best/val/{metric}"), value)]))?;
            }
        }
        self.consider_stopping(&metric, value, max);
        Ok(())
    }

    /// `--early-stop`: counts the validations in a row that did not improve the best metric
    /// by more than `--min-delta`, and asks training to stop once they reach the patience.
    fn consider_stopping(&mut self, metric: &str, value: f64, max: bool) {
        let Some(patience) = self.config().early_stop else {
            return;
        };
        let delta = self.config().min_delta;
        // A non-finite value improves nothing, and counts towards the patience.
        let improved = value.is_finite()
            && match self.early_best {
                None => true,
                Some(b) if max => value > b + delta,
                Some(b) => value < b - delta,
            };
        if improved {
            self.early_best = Some(value);
            self.stale_validations = 0;
            return;
        }
        self.stale_validations += 1;
        if self.stale_validations >= patience {
            let best = self.early_best.unwrap_or(value);
            self.stop(format!(
                "val/{metric} has not improved by more than {delta} for {patience} validation(s) (best {best:.6}, last {value:.6})"
            ));
        }
    }

    /// Asks training to stop after the current epoch (its validation, checkpoint and hooks
    /// still run), for `reason`; the run then ends `finished`, its record saying why in
    /// `stopped_early`. `--early-stop` calls it; so may a hook.
    pub fn stop(&mut self, reason: impl Into<String>) {
        if self.stop_reason.is_none() {
            self.stop_reason = Some(reason.into());
        }
    }

    /// Why training is stopping early, once [`Trainer::stop`] was called.
    pub fn stopping(&self) -> Option<&str> {
        self.stop_reason.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use crate::env::Env;
    use crate::hyper::config::{BestMode, TrainConfig};
    use crate::train::optim::from_config;
    use crate::train::scalars::Results;
    use crate::train::trainer::Trainer;
    use candle_core::Device;

    #[test]
    fn a_nan_validation_is_never_best_and_does_not_improve() {
        let config = TrainConfig {
            best_metric: Some("f1".into()),
            best_mode: Some(BestMode::Max),
            early_stop: Some(2),
            ..TrainConfig::default()
        };
        let env = Env::new(Device::Cpu, 0).with_config(config);
        let mut t = Trainer::new(&env, from_config(Vec::new(), env.config()).unwrap());
        let f1 = |v: f64| Results::from([("f1".to_string(), v)]);
        // A NaN first: no best yet, and the next finite value is one.
        t.consider_best(&f1(f64::NAN)).unwrap();
        assert_eq!((t.best, t.best_pending), (None, false));
        t.consider_best(&f1(0.5)).unwrap();
        assert_eq!(
            (t.best, t.best_pending, t.stale_validations),
            (Some(0.5), true, 0)
        );
        t.best_pending = false;
        // Then neither NaN nor infinity beats it; two in a row use up the patience.
        t.consider_best(&f1(f64::INFINITY)).unwrap();
        assert_eq!((t.best, t.best_pending), (Some(0.5), false));
        assert!(t.stopping().is_none());
        t.consider_best(&f1(f64::NAN)).unwrap();
        assert_eq!(t.best, Some(0.5));
        let reason = t.stopping().unwrap_or_default();
        assert!(reason.contains("for 2 validation(s) (best 0.5"), "{reason}");
    }
}
