//! Feature scaling fitted on the training split and kept with the model: one affine layer,
//! `(x − shift) / divisor` per feature ([`Scaler`]), fitted one of two ways — [`Standardize`]
//! (zero mean, unit variance) or [`MinMax`] (into [0, 1]) — or any way a [`Fit`] says.
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
use std::marker::PhantomData;

/// How a [`Scaler`] fits its shift and divisor on training inputs.
pub trait Fit {
    /// The scaler's name in messages (`Standardize`).
    const NAME: &'static str;
    /// The names of its two frozen variables after the scaler's own: `<name>.<NAMES[0]>`
    /// (the shift) and `<name>.<NAMES[1]>` (the divisor). Checkpoints hold them by these
    /// names.
    const NAMES: [&'static str; 2];
    /// The shift and the divisor of each feature (each 1 × features) of `x` (examples ×
    /// features, f32, at least one example); a feature that never varies gets a divisor of
    /// 1.
    fn statistics(x: &Tensor) -> Result<(Tensor, Tensor)>;
}

/// [`Fit`] by the mean and the standard deviation (a feature that never varies is only
/// centred): [`Standardize`].
#[derive(Clone, Copy, Debug)]
pub struct MeanStd;

impl Fit for MeanStd {
    const NAME: &'static str = "Standardize";
    const NAMES: [&'static str; 2] = ["mean", "std"];

    fn statistics(x: &Tensor) -> Result<(Tensor, Tensor)> {
        let mean = x.mean_keepdim(0)?;
        let std = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim(0)?.sqrt()?;
        // A constant feature has no spread to divide by.
        let std = std.ge(1e-12)?.where_cond(&std, &std.ones_like()?)?;
        Ok((mean, std))
    }
}

/// [`Fit`] by the minimum and the range (a feature that never varies becomes 0): [`MinMax`].
#[derive(Clone, Copy, Debug)]
pub struct MinRange;

impl Fit for MinRange {
    const NAME: &'static str = "MinMax";
    const NAMES: [&'static str; 2] = ["min", "range"];

    fn statistics(x: &Tensor) -> Result<(Tensor, Tensor)> {
        let min = x.min_keepdim(0)?;
        let range = x.max_keepdim(0)?.sub(&min)?;
        let range = range.gt(0.0)?.where_cond(&range, &range.ones_like()?)?;
        Ok((min, range))
    }
}

/// `(x − shift) / divisor` per feature, with statistics fitted by `F` on the training inputs
/// and kept as frozen variables of the model.
#[derive(Clone, Debug)]
pub struct Scaler<F> {
    shift: Var,
    divisor: Var,
    fit: PhantomData<F>,
}

/// Zero mean, unit variance per feature: `(x − mean) / std`, with the mean and standard
/// deviation of the data it was fitted on (a feature that never varies is only centred).
pub type Standardize = Scaler<MeanStd>;

/// Into [0, 1] per feature: `(x − min) / (max − min)`, with the range of the data it was
/// fitted on (a feature that never varies becomes 0).
pub type MinMax = Scaler<MinRange>;

impl<F: Fit> Scaler<F> {
    /// Fitted on `inputs` (examples × features) — the training split — its statistics kept
    /// as the frozen variables `<name>.<…>` (see [`Fit::NAMES`]: `<name>.mean` and
    /// `<name>.std` for [`Standardize`], `<name>.min` and `<name>.range` for [`MinMax`]) of
    /// the model's variables `vars` (`env` or `env.vars()`).
    ///
    /// ```ignore
    /// let scale = Standardize::fit(train.inputs(), env, "standardize")?;
    /// // in forward: self.net.forward(&self.scale.forward(x)?)
    /// ```
    pub fn fit(inputs: &Tensor, vars: &(impl AsRef<Vars> + ?Sized), name: &str) -> Result<Self> {
        let vars = vars.as_ref();
        let x = match inputs.dims() {
            [n, _] if *n > 0 => inputs.to_dtype(candle_core::DType::F32)?,
            dims => {
                return Err(Error::msg(format!(
                    "{} is fitted on examples × features (a 2-D tensor with examples); this one has shape {dims:?}",
                    F::NAME
                )))
            }
        };
        let (shift, divisor) = F::statistics(&x)?;
        let [shift_name, divisor_name] = F::NAMES;
        Ok(Scaler {
            shift: vars.frozen(&format!("{name}.{shift_name}"), &shift)?,
            divisor: vars.frozen(&format!("{name}.{divisor_name}"), &divisor)?,
            fit: PhantomData,
        })
    }

    /// A scaler of `features` features whose statistics a checkpoint fills in: for a task
    /// built to compute predictions from a trained run, without its data
    /// (`!env.needs_data()`). Until a checkpoint is loaded it leaves inputs as they are.
    ///
    /// ```ignore
    /// let scale = match &data {
    ///     Some(d) => Standardize::fit(d.train.inputs(), env, "standardize")?,
    ///     None => Standardize::unfitted(env, "standardize", FEATURES)?,
    /// };
    /// ```
    pub fn unfitted(
        vars: &(impl AsRef<Vars> + ?Sized),
        name: &str,
        features: usize,
    ) -> Result<Self> {
        let vars = vars.as_ref();
        let cpu = candle_core::Device::Cpu;
        let shift = Tensor::zeros((1, features), candle_core::DType::F32, &cpu)?;
        let divisor = Tensor::ones((1, features), candle_core::DType::F32, &cpu)?;
        let [shift_name, divisor_name] = F::NAMES;
        Ok(Scaler {
            shift: vars.frozen(&format!("{name}.{shift_name}"), &shift)?,
            divisor: vars.frozen(&format!("{name}.{divisor_name}"), &divisor)?,
            fit: PhantomData,
        })
    }

    /// What is subtracted from each feature (1 × features).
    pub fn shift(&self) -> &Tensor {
        self.shift.as_tensor()
    }

    /// What each feature is then divided by (1 × features).
    pub fn divisor(&self) -> &Tensor {
        self.divisor.as_tensor()
    }
}

impl Standardize {
    /// The mean of each feature (1 × features).
    pub fn mean(&self) -> &Tensor {
        self.shift()
    }

    /// The standard deviation of each feature (1 × features).
    pub fn std(&self) -> &Tensor {
        self.divisor()
    }
}

impl MinMax {
    /// The minimum of each feature (1 × features).
    pub fn min(&self) -> &Tensor {
        self.shift()
    }

    /// The range (maximum − minimum) of each feature (1 × features).
    pub fn range(&self) -> &Tensor {
        self.divisor()
    }
}

impl<F> Module for Scaler<F> {
    /// `(x − shift) / divisor` per feature, in the statistics' dtype. Detached: the
    /// statistics take no gradient.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let shift = self.shift.as_tensor().detach();
        let divisor = self.divisor.as_tensor().detach();
        x.to_dtype(shift.dtype())?
            .broadcast_sub(&shift)?
            .broadcast_div(&divisor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn an_unfitted_scaler_takes_the_statistics_of_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let x = Tensor::new(&[[1f32, 10.], [3., 30.]], &Device::Cpu).unwrap();
        let trained = Vars::new(1, Device::Cpu, candle_core::DType::F32);
        let fitted = Standardize::fit(&x, &trained, "scale").unwrap();
        crate::checkpoint::save_vars(&trained, &path).unwrap();
        // Built again without the data, as eval and serve build it.
        let loaded = Vars::new(1, Device::Cpu, candle_core::DType::F32);
        let restored = Standardize::unfitted(&loaded, "scale", 2).unwrap();
        assert_eq!(
            restored.forward(&x).unwrap().to_vec2::<f32>().unwrap(),
            [[1.0, 10.0], [3.0, 30.0]]
        );
        crate::checkpoint::load_vars(&loaded, &path).unwrap();
        assert_eq!(
            restored.forward(&x).unwrap().to_vec2::<f32>().unwrap(),
            fitted.forward(&x).unwrap().to_vec2::<f32>().unwrap()
        );
        assert!(loaded.trainable_vars().is_empty());
    }

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
        let row = |t: &Tensor| t.to_vec2::<f32>().unwrap();
        assert_eq!(
            (row(s.mean()), row(s.std())),
            (vec![vec![2., 20., 5.]], vec![vec![1., 10., 1.]])
        );
        assert_eq!(
            (row(m.min()), row(m.range())),
            (vec![vec![1., 10., 5.]], vec![vec![2., 20., 1.]])
        );
        let one = Tensor::new(&[1f32], &Device::Cpu).unwrap();
        let refused = MinMax::fit(&one, &vars, "s").unwrap_err().to_string();
        assert!(
            refused.starts_with("MinMax is fitted on examples × features"),
            "{refused}"
        );
        // An Env gives its variables.
        let env = crate::env::Env::new(Device::Cpu, 1);
        Standardize::fit(&x, &env, "scale").unwrap();
        assert_eq!(env.vars().named_vars().len(), 2);
    }
}
