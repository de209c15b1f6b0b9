//! Model variables with seeded initialisation.
//!
//! candle's `VarMap` initialises new variables from an unseeded thread RNG. [`Vars`] is a
//! `VarBuilder` backend that draws each new variable from a generator keyed by the run seed
//! and the variable's full name, so the same seed gives bit-identical initial weights.

use crate::model::rng::rng_for;
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The trainable variables of a task, created on first use with seeded values.
///
/// Cheap to clone (shared). Build layers with [`Vars::builder`] exactly as with a
/// `VarMap`-backed `VarBuilder`: `candle_nn::linear(64, 10, vars.builder().pp("fc"))`.
#[derive(Clone)]
pub struct Vars {
    inner: Arc<Inner>,
}

struct Inner {
    map: VarMap,
    seed: u64,
    device: Device,
    dtype: DType,
    /// Variables kept in checkpoints but never trained (a scaler's statistics).
    frozen: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// How many draws each seeded generator of the model made (dropout masks), by name.
    rng_counters: std::sync::Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    /// The names of the classes the model's outputs score, index by index (none: empty).
    /// A read-write lock: every served batch reads them, on as many threads as compute.
    classes: std::sync::RwLock<Arc<[String]>>,
}

impl Vars {
    /// Empty variables for `seed`, created on `device` with `dtype` (F32 for training).
    pub fn new(seed: u64, device: Device, dtype: DType) -> Self {
        Vars {
            inner: Arc::new(Inner {
                map: VarMap::new(),
                seed,
                device,
                dtype,
                frozen: std::sync::Mutex::new(std::collections::BTreeSet::new()),
                rng_counters: std::sync::Mutex::new(BTreeMap::new()),
                classes: std::sync::RwLock::new(Arc::from(Vec::new())),
            }),
        }
    }

    /// A `VarBuilder` whose new variables land here, seeded.
    pub fn builder(&self) -> VarBuilder<'static> {
        let backend: Box<dyn SimpleBackend> = Box::new(self.clone());
        VarBuilder::from_backend(backend, self.inner.dtype, self.inner.device.clone())
    }

    /// The underlying `VarMap` (for saving, loading, or the optimizer).
    pub fn var_map(&self) -> &VarMap {
        &self.inner.map
    }

    /// Every variable, sorted by name so that optimizers visit them in a stable order.
    pub fn all_vars(&self) -> Vec<Var> {
        self.named_vars().into_iter().map(|(_, v)| v).collect()
    }

    /// The variables the optimizer trains: every one but the frozen ones
    /// ([`Vars::frozen`]), sorted by name.
    pub fn trainable_vars(&self) -> Vec<Var> {
        self.trainable_named_vars()
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    /// [`Vars::trainable_vars`] with their names.
    pub fn trainable_named_vars(&self) -> Vec<(String, Var)> {
        let frozen = self
            .inner
            .frozen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut v = self.named_vars();
        v.retain(|(name, _)| !frozen.contains(name));
        v
    }

    /// A variable named `name` holding `value` (on the variables' device), saved and loaded
    /// with the others but never trained: statistics fitted on data, such as
    /// [`crate::data::Standardize`]'s. An existing variable of that name takes the value.
    pub fn frozen(&self, name: &str, value: &Tensor) -> crate::error::Result<Var> {
        let value = value
            .to_dtype(self.inner.dtype)?
            .to_device(&self.inner.device)?;
        let var = {
            let mut map = lock(&self.inner.map);
            match map.get(name) {
                Some(v) if v.shape() == value.shape() => {
                    v.set(&value)?;
                    v.clone()
                }
                Some(v) => {
                    return Err(crate::error::Error::msg(format!(
                        "variable `{name}` exists with shape {:?}; the frozen value has shape {:?}",
                        v.shape(),
                        value.shape()
                    )))
                }
                None => {
                    let v = Var::from_tensor(&value)?;
                    map.insert(name.to_string(), v.clone());
                    v
                }
            }
        };
        self.inner
            .frozen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string());
        Ok(var)
    }

    /// Every variable with its name, sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let data = lock(&self.inner.map);
        let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Each variable's name and shape, for the model summary `train` prints.
    pub fn summary(&self) -> Vec<crate::store::model_summary::Variable> {
        self.named_vars()
            .into_iter()
            .map(|(name, v)| crate::store::model_summary::Variable {
                name,
                shape: v.dims().to_vec(),
            })
            .collect()
    }

    /// The number of scalar parameters.
    pub fn parameter_count(&self) -> usize {
        lock(&self.inner.map).values().map(|v| v.elem_count()).sum()
    }

    /// The device the variables live on.
    pub fn device(&self) -> &Device {
        &self.inner.device
    }

    /// The seed new variables are drawn from (the run seed).
    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// The counter of the seeded generator `name` (how many draws it made): seeded layers
    /// key each draw by it, so that a checkpoint can record and restore their positions.
    pub fn rng_counter(&self, name: &str) -> Arc<AtomicU64> {
        let mut counters = self
            .inner
            .rng_counters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Arc::clone(counters.entry(name.to_string()).or_default())
    }

    /// Names the classes the model's outputs score: output `i` is class `names[i]`. Saved
    /// with every checkpoint (in its metadata) and put back by every load, like a frozen
    /// variable; empty names none.
    pub fn set_classes(&self, names: &[String]) {
        *self
            .inner
            .classes
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::from(names);
    }

    /// The names of the classes, index by index (see [`Vars::set_classes`]); empty when
    /// none were named.
    pub fn classes(&self) -> Arc<[String]> {
        Arc::clone(&self.inner.classes.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The positions of every seeded generator.
    pub fn rng_counters(&self) -> BTreeMap<String, u64> {
        let counters = self
            .inner
            .rng_counters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        counters
            .iter()
            .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
            .collect()
    }

    fn create(&self, shape: &Shape, name: &str, init: Init) -> candle_core::Result<Var> {
        let n = shape.elem_count();
        if n == 0 {
            // Its initialiser would divide by a fan of 0; say what happened instead.
            candle_core::bail!(
                "variable `{name}` would have shape {shape:?}, with no elements: a layer of size 0 (check the hyperparameters that size it)"
            );
        }
        // A size typed by mistake (`--hidden 100000000`) must be refused, not abort the process
        // when the values are allocated.
        let bytes = (n as u64).saturating_mul(self.inner.dtype.size_in_bytes().max(4) as u64);
        if let Some(available) = crate::util::memory::available_bytes() {
            if bytes > available {
                candle_core::bail!(
                    "variable `{name}` of shape {shape:?} needs {}, more than this machine has free ({}): check the hyperparameters that size it",
                    crate::util::memory::human_bytes(bytes),
                    crate::util::memory::human_bytes(available)
                );
            }
        }
        let mut rng = rng_for(self.inner.seed, name, 0);
        let uniform = |rng: &mut crate::model::rng::Rng, lo: f64, up: f64| -> Vec<f32> {
            (0..n).map(|_| rng.random_range(lo..up) as f32).collect()
        };
        let normal = |rng: &mut crate::model::rng::Rng, mean: f64, std: f64| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    let z: f64 = StandardNormal.sample(rng);
                    (mean + std * z) as f32
                })
                .collect()
        };
        let values = match init {
            Init::Const(c) => vec![c as f32; n],
            Init::Uniform { lo, up } if !(lo.is_finite() && up.is_finite()) => {
                candle_core::bail!(
                    "variable `{name}`: uniform initialisation over [{lo}, {up}) is not finite"
                )
            }
            Init::Uniform { lo, up } if lo < up => uniform(&mut rng, lo, up),
            Init::Uniform { lo, .. } => vec![lo as f32; n],
            Init::Randn { mean, stdev } => normal(&mut rng, mean, stdev),
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let std = non_linearity.gain() / (fan.for_shape(shape).max(1) as f64).sqrt();
                if !std.is_finite() {
                    candle_core::bail!("variable `{name}`: its initialiser's scale is {std}");
                }
                match dist {
                    NormalOrUniform::Uniform => {
                        let bound = 3f64.sqrt() * std;
                        uniform(&mut rng, -bound, bound)
                    }
                    NormalOrUniform::Normal => normal(&mut rng, 0.0, std),
                }
            }
        };
        let t = Tensor::from_vec(values, shape.clone(), &Device::Cpu)?
            .to_dtype(self.inner.dtype)?
            .to_device(&self.inner.device)?;
        Var::from_tensor(&t)
    }
}

fn lock(map: &VarMap) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Var>> {
    // A poisoned lock only means another thread panicked while holding it; the map itself
    // is still a valid map of variables.
    map.data().lock().unwrap_or_else(|p| p.into_inner())
}

impl AsRef<Vars> for Vars {
    fn as_ref(&self) -> &Vars {
        self
    }
}

impl SimpleBackend for Vars {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Some(v) = lock(&self.inner.map).get(name) {
            if v.shape() != &s {
                candle_core::bail!(
                    "variable `{name}` exists with shape {:?}, asked for {s:?}",
                    v.shape()
                );
            }
            return v.as_tensor().to_dtype(dtype)?.to_device(dev);
        }
        let var = self.create(&s, name, h)?;
        let t = var.as_tensor().clone();
        lock(&self.inner.map).insert(name.to_string(), var);
        t.to_dtype(dtype)?.to_device(dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        match lock(&self.inner.map).get(name) {
            Some(v) => v.as_tensor().to_dtype(dtype)?.to_device(dev),
            None => candle_core::bail!("no variable named `{name}`"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        lock(&self.inner.map).contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(seed: u64) -> Vec<f32> {
        let vars = Vars::new(seed, Device::Cpu, DType::F32);
        let l = candle_nn::linear(8, 4, vars.builder().pp("fc")).unwrap();
        l.weight().flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn same_seed_same_weights_other_seed_other_weights() {
        assert_eq!(weights(7), weights(7));
        assert_ne!(weights(7), weights(8));
    }

    #[test]
    fn a_layer_of_size_zero_is_an_error_not_a_panic() {
        let vars = Vars::new(1, Device::Cpu, DType::F32);
        let err = candle_nn::linear(8, 0, vars.builder().pp("fc")).unwrap_err();
        assert!(err.to_string().contains("size 0"), "{err}");
        let err = candle_nn::linear(0, 4, vars.builder().pp("fc2")).unwrap_err();
        assert!(err.to_string().contains("size 0"), "{err}");
    }

    #[test]
    fn existing_variable_is_reused() {
        let vars = Vars::new(1, Device::Cpu, DType::F32);
        let a = vars.builder().get((2, 2), "w").unwrap();
        let b = vars.builder().get((2, 2), "w").unwrap();
        assert_eq!(a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
        assert!(vars.builder().get((3, 2), "w").is_err());
        assert_eq!(vars.parameter_count(), 4);
    }
}
