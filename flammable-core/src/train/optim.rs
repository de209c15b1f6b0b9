//! Optimizers whose state can be saved and restored: SGD with momentum and AdamW.
//!
//! candle's optimizers keep their moments private and its SGD has no momentum; these
//! implement both flammable's object-safe [`Optimizer`] (what the loop holds) and
//! `candle_nn::Optimizer` (for use outside flammable). Every update stays on the device
//! (AdamW's on the CPU is three passes over each variable, in place: see `adamw_cpu`).

use crate::error::{Error, Result};
use crate::hyper::config::{OptimizerKind, TrainConfig};
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use std::collections::HashMap;

/// What the training loop needs of an optimizer.
pub trait Optimizer: Send {
    /// Applies one update from `grads` to the variables it was built with.
    fn step(&mut self, grads: &GradStore) -> Result<()>;
    /// The current learning rate.
    fn learning_rate(&self) -> f64;
    /// Sets the learning rate (schedules call this before each step).
    fn set_learning_rate(&mut self, lr: f64);
    /// The optimizer's state as named tensors, for checkpoints (empty if stateless). The
    /// tensors may share memory with the optimizer, whose next step can change them in
    /// place: copy them (`Tensor::copy`) to keep them.
    fn state(&self) -> Result<Vec<(String, Tensor)>>;
    /// Restores a state written by [`Optimizer::state`] (into tensors of its own: later steps
    /// leave `state` as it is).
    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()>;
}

/// The optimizer `--optimizer` names over `vars`, with `--lr`, `--momentum` (SGD) and
/// `--weight-decay`: what [`crate::Task::optimizer`] builds by default.
pub fn from_config(vars: Vec<Var>, c: &TrainConfig) -> Result<Box<dyn Optimizer>> {
    Ok(match c.optimizer {
        OptimizerKind::Adamw => Box::new(AdamW::new(
            vars,
            AdamWConfig {
                lr: c.lr,
                weight_decay: c.weight_decay,
                ..AdamWConfig::default()
            },
        )?),
        OptimizerKind::Sgd => Box::new(Sgd::new(
            vars,
            SgdConfig {
                lr: c.lr,
                momentum: c.momentum,
                weight_decay: c.weight_decay,
            },
        )),
    })
}

/// Settings of [`Sgd`].
#[derive(Clone, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (0: plain SGD).
    pub momentum: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
}

/// Stochastic gradient descent with momentum: `b = μ·b + g`, `w -= lr·b`.
pub struct Sgd {
    vars: Vec<Var>,
    buffers: Vec<Option<Tensor>>,
    config: SgdConfig,
}

impl Sgd {
    /// SGD over `vars` (non-float variables are skipped).
    pub fn new(vars: Vec<Var>, config: SgdConfig) -> Self {
        let vars: Vec<Var> = vars.into_iter().filter(|v| v.dtype().is_float()).collect();
        let buffers = vec![None; vars.len()];
        Sgd {
            vars,
            buffers,
            config,
        }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let c = &self.config;
        for (var, buf) in self.vars.iter().zip(self.buffers.iter_mut()) {
            let Some(g) = grads.get(var) else { continue };
            let mut g = g.clone();
            if c.weight_decay != 0.0 {
                g = (g + (var.as_tensor() * c.weight_decay)?)?;
            }
            if c.momentum != 0.0 {
                g = match buf.take() {
                    Some(b) => ((b * c.momentum)? + g)?,
                    None => g,
                };
                *buf = Some(g.clone());
            }
            var.set(&var.as_tensor().sub(&(g * c.lr)?)?)?;
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.config.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(self
            .buffers
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.as_ref().map(|b| (format!("momentum.{i}"), b.clone())))
            .collect())
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        for (i, (var, buf)) in self.vars.iter().zip(self.buffers.iter_mut()).enumerate() {
            // On the variable's device and dtype: a checkpoint is read onto the CPU.
            *buf = match state.get(&format!("momentum.{i}")) {
                Some(b) => Some(b.to_device(var.device())?.to_dtype(var.dtype())?),
                None => None,
            };
        }
        Ok(())
    }
}

/// Settings of [`AdamW`].
#[derive(Clone, Debug, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator for stability.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// AdamW's constants for step `t` (from 1), in f64 as [`AdamWConfig`] holds them: what both
/// ways of updating a variable (tensor operations, `adamw_cpu`'s loops) compute from.
#[derive(Clone, Copy, Debug)]
pub(super) struct AdamWStep {
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// The first moment's bias correction, `1 / (1 - β₁ᵗ)`.
    pub scale_m: f64,
    /// The second moment's bias correction, `1 / (1 - β₂ᵗ)`.
    pub scale_v: f64,
    /// Learning rate.
    pub lr: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Added to the denominator.
    pub eps: f64,
}

impl AdamWStep {
    /// The constants of step `t` under `c`.
    pub fn of(c: &AdamWConfig, t: u64) -> Self {
        let t = t as i32;
        AdamWStep {
            beta1: c.beta1,
            beta2: c.beta2,
            scale_m: 1.0 / (1.0 - c.beta1.powi(t)),
            scale_v: 1.0 / (1.0 - c.beta2.powi(t)),
            lr: c.lr,
            weight_decay: c.weight_decay,
            eps: c.eps,
        }
    }
}

/// Adam with decoupled weight decay.
pub struct AdamW {
    vars: Vec<Var>,
    moments: Vec<(Tensor, Tensor)>,
    steps: u64,
    config: AdamWConfig,
}

impl AdamW {
    /// AdamW over `vars` (non-float variables are skipped).
    pub fn new(vars: Vec<Var>, config: AdamWConfig) -> Result<Self> {
        let vars: Vec<Var> = vars.into_iter().filter(|v| v.dtype().is_float()).collect();
        let moments = vars
            .iter()
            .map(|v| Ok((v.zeros_like()?, v.zeros_like()?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW {
            vars,
            moments,
            steps: 0,
            config,
        })
    }
}

impl Optimizer for AdamW {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.steps += 1;
        let c = &self.config;
        let k = AdamWStep::of(c, self.steps);
        for (var, (m, v)) in self.vars.iter().zip(self.moments.iter_mut()) {
            let Some(g) = grads.get(var) else { continue };
            // On the CPU, in three passes; elsewhere (and for other dtypes), as tensor operations
            // on the device, which give the same values.
            if !super::adamw_cpu::update(var, g, m, v, k)? {
                let (next_m, next_v) = update_on_device(var, g, m, v, k)?;
                *m = next_m;
                *v = next_v;
            }
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.config.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![(
            "steps".to_string(),
            Tensor::new(&[self.steps as f64], &candle_core::Device::Cpu)?,
        )];
        for (i, (m, v)) in self.moments.iter().enumerate() {
            out.push((format!("m.{i}"), m.clone()));
            out.push((format!("v.{i}"), v.clone()));
        }
        Ok(out)
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let missing = |k: &str| Error::msg(format!("optimizer state lacks `{k}`"));
        let steps = state.get("steps").ok_or_else(|| missing("steps"))?;
        self.steps = steps
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?
            .first()
            .copied()
            .unwrap_or(0.0) as u64;
        for (i, (var, (m, v))) in self.vars.iter().zip(self.moments.iter_mut()).enumerate() {
            let (mk, vk) = (format!("m.{i}"), format!("v.{i}"));
            let sm = state.get(&mk).ok_or_else(|| missing(&mk))?;
            let sv = state.get(&vk).ok_or_else(|| missing(&vk))?;
            // Copies of their own: the update writes over the moments in place, which must
            // not change the tensors of `state` (a checkpoint, another optimizer's).
            *m = sm.to_device(var.device())?.to_dtype(var.dtype())?.copy()?;
            *v = sv.to_device(var.device())?.to_dtype(var.dtype())?.copy()?;
        }
        Ok(())
    }
}

/// AdamW's update of `var` from its gradient `g` and moments `m`, `v` as tensor operations on
/// their device: the new moments.
fn update_on_device(
    var: &Var,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    k: AdamWStep,
) -> Result<(Tensor, Tensor)> {
    let next_m = ((m * k.beta1)? + (g * (1.0 - k.beta1))?)?;
    let next_v = ((v * k.beta2)? + (g.sqr()? * (1.0 - k.beta2))?)?;
    let m_hat = (&next_m * k.scale_m)?;
    let v_hat = (&next_v * k.scale_v)?;
    let decayed = (var.as_tensor() * (1.0 - k.lr * k.weight_decay))?;
    let update = (m_hat / (v_hat.sqrt()? + k.eps)?)?;
    var.set(&decayed.sub(&(update * k.lr)?)?)?;
    Ok((next_m, next_v))
}

macro_rules! candle_optimizer {
    ($ty:ty, $config:ty, $new:expr) => {
        impl candle_nn::Optimizer for $ty {
            type Config = $config;

            fn new(vars: Vec<Var>, config: $config) -> candle_core::Result<Self> {
                #[allow(clippy::redundant_closure_call)]
                ($new)(vars, config).map_err(candle_core::Error::wrap)
            }

            fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
                Optimizer::step(self, grads).map_err(candle_core::Error::wrap)
            }

            fn learning_rate(&self) -> f64 {
                Optimizer::learning_rate(self)
            }

            fn set_learning_rate(&mut self, lr: f64) {
                Optimizer::set_learning_rate(self, lr)
            }
        }
    };
}

candle_optimizer!(Sgd, SgdConfig, |v, c| Ok::<_, Error>(Sgd::new(v, c)));
candle_optimizer!(AdamW, AdamWConfig, AdamW::new);

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Minimises (w - 3)^2 and returns w after `steps` steps.
    fn minimise(opt: &mut dyn Optimizer, w: &Var, steps: usize) -> f32 {
        for _ in 0..steps {
            let loss = (w.as_tensor() - 3.0)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
        }
        w.as_tensor().to_vec1::<f32>().unwrap()[0]
    }

    #[test]
    fn adamw_on_the_cpu_gives_the_bits_of_its_tensor_operations() {
        // Values of every sign and size, zeros among them (whose sign `x * a + 0.0` sets).
        let values = |seed: u32, n: usize| -> Vec<f32> {
            (0..n as u32)
                .map(|i| {
                    let x = (i.wrapping_mul(2654435761) ^ seed.wrapping_mul(40503)) % 2001;
                    match x % 7 {
                        0 => 0.0,
                        1 => -0.0,
                        _ => (x as f32 - 1000.0) * 10f32.powi((x % 5) as i32 - 3),
                    }
                })
                .collect()
        };
        let n = 257;
        let tensor = |seed| Tensor::from_vec(values(seed, n), n, &Device::Cpu).unwrap();
        let (one_pass, on_device) = (
            Var::from_tensor(&tensor(1)).unwrap(),
            Var::from_tensor(&tensor(1)).unwrap(),
        );
        let (m1, v1) = (tensor(2), tensor(3).abs().unwrap());
        let (mut m2, mut v2) = (m1.copy().unwrap(), v1.copy().unwrap());
        for t in 1..=5u64 {
            let g = tensor(10 + t as u32);
            let k = AdamWStep::of(
                &AdamWConfig {
                    lr: 3e-3,
                    ..AdamWConfig::default()
                },
                t,
            );
            assert!(
                super::super::adamw_cpu::update(&one_pass, &g, &m1, &v1, k).unwrap(),
                "contiguous f32 on the CPU"
            );
            (m2, v2) = update_on_device(&on_device, &g, &m2, &v2, k).unwrap();
            let bits = |t: &Tensor| -> Vec<u32> {
                t.to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect()
            };
            assert_eq!(
                bits(one_pass.as_tensor()),
                bits(on_device.as_tensor()),
                "step {t}"
            );
            assert_eq!(bits(&m1), bits(&m2), "step {t}");
            assert_eq!(bits(&v1), bits(&v2), "step {t}");
        }
        // Not contiguous: left to the tensor operations.
        let w =
            Var::from_tensor(&Tensor::zeros((4, 3), DType::F32, &Device::Cpu).unwrap()).unwrap();
        let strided = Tensor::zeros((3, 4), DType::F32, &Device::Cpu)
            .unwrap()
            .t()
            .unwrap();
        let k = AdamWStep::of(&AdamWConfig::default(), 1);
        assert!(!super::super::adamw_cpu::update(&w, &strided, &strided, &strided, k).unwrap());
    }

    #[test]
    fn sgd_with_momentum_converges_faster_than_without() {
        let run = |momentum| {
            let w = Var::new(&[0f32], &Device::Cpu).unwrap();
            let cfg = SgdConfig {
                lr: 0.01,
                momentum,
                weight_decay: 0.0,
            };
            let mut opt = Sgd::new(vec![w.clone()], cfg);
            (3.0 - minimise(&mut opt, &w, 20)).abs()
        };
        assert!(run(0.9) < run(0.0));
    }

    #[test]
    fn adamw_converges_and_state_round_trips() {
        let w = Var::new(&[0f32], &Device::Cpu).unwrap();
        let cfg = AdamWConfig {
            lr: 0.1,
            weight_decay: 0.0,
            ..Default::default()
        };
        let mut opt = AdamW::new(vec![w.clone()], cfg.clone()).unwrap();
        assert!((3.0 - minimise(&mut opt, &w, 200)).abs() < 0.1);

        // A copy restored from the state takes exactly the same next step.
        let state: HashMap<_, _> = opt.state().unwrap().into_iter().collect();
        let w2 = Var::new(&w.as_tensor().to_vec1::<f32>().unwrap()[..], &Device::Cpu).unwrap();
        let mut opt2 = AdamW::new(vec![w2.clone()], cfg).unwrap();
        opt2.load_state(&state).unwrap();
        assert_eq!(minimise(&mut opt, &w, 3), minimise(&mut opt2, &w2, 3));
    }
}
