//! What training records beside the losses, and the read-back: [`Trainer::log`] keeps values
//! on the device, [`Trainer::flush`] reads them and the buffered losses back in one transfer
//! every `log_every` steps and sends them to the run's metric sink.

use crate::error::{Error, Result};
use crate::store::metrics::Point;
use crate::train::scalars::{read_back, Scalar};
use crate::train::trainer::Trainer;

impl Trainer<'_> {
    /// Records `value` as series `name` at the current step: a scalar tensor stays on the
    /// device until the next read-back of the losses (no host sync), a number is kept as it
    /// is. The step is the iteration in progress, or, between two iterations (a `step_end`
    /// hook), the one just recorded. The default backward pass logs `lr` every optimizer
    /// step, and `grad_norm` with `--clip-grad-norm` or `--log-grad-norm`.
    ///
    /// ```ignore
    /// #[on(step_end)]
    /// fn weight_norm(&self, trainer: &mut Trainer) -> Result<()> {
    ///     trainer.log("weight_norm", self.out.weight().sqr()?.sum_all()?.sqrt()?);
    ///     Ok(())
    /// }
    /// ```
    pub fn log(&mut self, name: &str, value: impl Into<Scalar>) {
        let step = if self.between_steps {
            self.step.saturating_sub(1)
        } else {
            self.step
        };
        let value = match value.into() {
            Scalar::Tensor(t) => Scalar::Tensor(t.detach()),
            number => number,
        };
        self.logged
            .push((step, self.epoch, name.to_string(), value));
    }

    /// Reads the buffered losses and logged values back (in one transfer), sends them to the
    /// metric sink and the display, and fails on a NaN or infinite loss.
    pub fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() && self.logged.is_empty() {
            return Ok(());
        }
        let buffer = std::mem::take(&mut self.buffer);
        let examples = std::mem::take(&mut self.buffer_examples);
        let logged = std::mem::take(&mut self.logged);
        let mut tensors: Vec<_> = buffer
            .iter()
            .flat_map(|(_, _, l)| l.iter().map(|(_, t)| t.clone()))
            .collect();
        let loss_count = tensors.len();
        tensors.extend(logged.iter().filter_map(|(_, _, _, v)| match v {
            Scalar::Tensor(t) => Some(t.clone()),
            Scalar::Number(_) => None,
        }));
        // What read_back calls value `i` if it is not one value (its error only).
        let describe = |i: usize| match i.checked_sub(loss_count) {
            None => buffer
                .iter()
                .flat_map(|(step, _, l)| l.iter().map(move |(n, _)| (n, step)))
                .nth(i)
                .map(|(n, step)| format!("loss `{n}` at step {step}")),
            Some(j) => logged
                .iter()
                .filter(|(_, _, _, v)| matches!(v, Scalar::Tensor(_)))
                .nth(j)
                .map(|(step, _, n, _)| format!("trainer.log(\"{n}\", …) at step {step}")),
        };
        let mut values = read_back(&tensors, |i| describe(i).unwrap_or_default())?;
        let mut logged_values = values.split_off(loss_count.min(values.len())).into_iter();
        if let (Some(parallel), false) = (&self.parallel, buffer.is_empty()) {
            // Every rank flushes at the same steps: the losses become their mean over the
            // ranks, each rank's weighted by its examples.
            let weights: Vec<f64> = buffer
                .iter()
                .zip(examples.iter().chain(std::iter::repeat(&1.0)))
                .flat_map(|((_, _, l), w)| std::iter::repeat_n(*w, l.len()))
                .collect();
            parallel.weighted_mean(&mut values, &weights)?;
        }
        let mut points = Vec::with_capacity(values.len());
        let mut it = values.into_iter();
        for (step, epoch, losses) in &buffer {
            for (name, _) in losses.iter() {
                let Some(v) = it.next() else { break };
                if !v.is_finite() {
                    return Err(Error::msg(format!("loss `{name}` is {v} at step {step}")));
                }
                let sum = self.epoch_sums.entry(name.to_string()).or_insert((0.0, 0));
                sum.0 += v;
                sum.1 += 1;
                self.latest.insert(name.to_string(), v);
                points.push(Point::now(name, *step, *epoch, v));
            }
        }
        for (step, epoch, name, value) in &logged {
            let v = match value {
                Scalar::Number(v) => *v,
                Scalar::Tensor(_) => match logged_values.next() {
                    Some(v) => v,
                    None => break,
                },
            };
            points.push(Point::now(name.as_str(), *step, *epoch, v));
        }
        // By step, each step's losses before its logged values: the file's order then does
        // not depend on where flushes fell (a resumed run writes what an uninterrupted one
        // does). The sort is stable, and losses were pushed first.
        points.sort_by_key(|p| p.step);
        if let Some(run) = self.env.run() {
            run.log_metrics(&points);
        }
        if let Some(p) = &mut self.progress {
            p.losses(self.env, self.epoch, self.step, &self.latest);
        }
        Ok(())
    }
}
