//! Feature scaling fitted on the training split and kept with the model: [`Standardize`]
//! (zero mean, unit variance) and [`MinMax`] (into [0, 1]).
//!
//! A scaler is a layer: its statistics are variables of the model — frozen, never trained —
//! so every checkpoint saves them and every load restores them. Put it first in `forward`,
//! and `train`, `test`, `eval`, `serve` and `Task::from_run` all scale inputs with the
//! statistics of the training data the run saw; a raw sample needs no preparation of its
//! own. (A task built again for `test` or `eval` fits the scaler again on whatever data it
//! has, then loading the checkpoint puts the run's statistics back.)

use crate::error::{Error, Result};
use crate::model::vars::Vars;
use candle_core::{Module, Tensor, Var};

/// `(x − mean) / std` per feature, with the mean and standard deviation of the data it was
/// fitted on (a feature that never varies is only centred).
#[derive(Clone, Debug)]
pub struct Standardize {
    mean: Var,
    std: Var,
}

impl Standardize {
    /// Fitted on `inputs` (examples × features) — the training split — its statistics kept
    /// as the frozen variables `<name>.mean` and `<name>.std` of the model's variables `vars` (`env` or `env.vars()`).
    ///
    /// ```ignore
    /// let scale = Standardize::fit(train.inputs(), env, "standardize")?;
    /// // in forward: self.net.forward(&self.scale.forward(x)?)
    /// ```
    pub fn fit(inputs: &Tensor, vars: &(impl AsRef<Vars> + ?Sized), name: &str) -> Result<Self> {
        let vars = vars.as_ref();
        let x = features(inputs, "Standardize")?;
        let mean = x.mean_keepdim(0)?;
        let var = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim(0)?;
        let std = var.sqrt()?;
        // A constant feature has no spread to divide by.
        let std = std.ge(1e-12)?.where_cond(&std, &std.ones_like()?)?;
        Ok(Standardize {
            mean: vars.frozen(&format!("{name}.mean"), &mean)?,
            std: vars.frozen(&format!("{name}.std"), &std)?,
        })
    }

    /// The mean of each feature (1 × features).
    pub fn mean(&self) -> &Tensor {
        self.mean.as_tensor()
    }

    /// The standard deviation of each feature (1 × features).
    pub fn std(&self) -> &Tensor {
        self.std.as_tensor()
    }
}

impl Module for Standardize {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        shift_and_divide(x, &self.mean, &self.std)
    }
}

/// `(x − min) / (max − min)` per feature, with the range of the data it was fitted on (a
/// feature that never varies becomes 0).
#[derive(Clone, Debug)]
pub struct MinMax {
    min: Var,
    range: Var,
}

impl MinMax {
    /// Fitted on `inputs` (examples × features), its statistics kept as the frozen variables
    /// `<name>.min` and `<name>.range` of the model's variables `vars` (`env` or `env.vars()`) (see [`Standardize::fit`]).
    pub fn fit(inputs: &Tensor, vars: &(impl AsRef<Vars> + ?Sized), name: &str) -> Result<Self> {
        let vars = vars.as_ref();
        let x = features(inputs, "MinMax")?;
        let min = x.min_keepdim(0)?;
        let range = x.max_keepdim(0)?.sub(&min)?;
        let range = range.gt(0.0)?.where_cond(&range, &range.ones_like()?)?;
        Ok(MinMax {
            min: vars.frozen(&format!("{name}.min"), &min)?,
            range: vars.frozen(&format!("{name}.range"), &range)?,
        })
    }
}

impl Module for MinMax {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        shift_and_divide(x, &self.min, &self.range)
    }
}

/// `(x − shift) / divisor` per feature, in the statistics' dtype. Detached: the statistics
/// take no gradient.
fn shift_and_divide(x: &Tensor, shift: &Var, divisor: &Var) -> candle_core::Result<Tensor> {
    let (shift, divisor) = (shift.as_tensor().detach(), divisor.as_tensor().detach());
    x.to_dtype(shift.dtype())?
        .broadcast_sub(&shift)?
        .broadcast_div(&divisor)
}

/// `inputs` as f32 examples × features, with at least one example.
fn features(inputs: &Tensor, what: &str) -> Result<Tensor> {
    match inputs.dims() {
        [n, _] if *n > 0 => Ok(inputs.to_dtype(candle_core::DType::F32)?),
        dims => Err(Error::msg(format!(
            "{what} is fitted on examples × features (a 2-D tensor with examples); this one has shape {dims:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn fitted_statistics_scale_and_are_frozen_variables() {
        let vars = Vars::new(1, Device::Cpu, candle_core::DType::F32);
        let x = Tensor::new(&[[1f32, 10., 5.], [3., 30., 5.]], &Device::Cpu).unwrap();
        let s = Standardize::fit(&x, &vars, "scale").unwrap();
        let y = s.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(y, [[-1.0, -1.0, 0.0], [1.0, 1.0, 0.0]]);
        let m = MinMax::fit(&x, &vars, "range").unwrap();
        let y = m.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(y, [[0.0, 0.0, 0.0], [1.0, 1.0, 0.0]]);
        let names: Vec<String> = vars.named_vars().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["range.min", "range.range", "scale.mean", "scale.std"]
        );
        assert!(vars.trainable_vars().is_empty());
        assert!(
            Standardize::fit(&Tensor::new(&[1f32], &Device::Cpu).unwrap(), &vars, "s").is_err()
        );
    }
}
