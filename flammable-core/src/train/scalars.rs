//! Named scalar tensors: the losses of an iteration, the metrics of a test batch. They stay
//! on the device; the loops read them back in batches.

use crate::error::{Error, Result};
use candle_core::Tensor;
use std::collections::BTreeMap;

/// Ordered (name, scalar tensor) pairs; as the metrics of a test batch, also pooled
/// metrics (whose totals add up over the batches, see [`crate::train::pooled`]).
#[derive(Clone, Debug, Default)]
pub struct Scalars {
    items: Vec<(String, Tensor)>,
    pooled: Vec<(String, crate::train::pooled::Pooled)>,
}

/// What a metric step may return: a scalar tensor (averaged over batches by `reduce`) or a
/// [`crate::train::pooled::Pooled`] metric (computed from totals over the whole split).
pub trait MetricValue {
    /// Adds the value to `metrics` as `name`.
    fn add_to(self, name: String, metrics: &mut Scalars);
}

impl MetricValue for Tensor {
    fn add_to(self, name: String, metrics: &mut Scalars) {
        metrics.push(name, self);
    }
}

impl MetricValue for crate::train::pooled::Pooled {
    fn add_to(self, name: String, metrics: &mut Scalars) {
        metrics.pooled.push((name, self));
    }
}

/// The losses of one iteration; their sum is what the default `backward` minimises.
pub type Losses = Scalars;

/// The metric values of one test batch.
pub type Metrics = Scalars;

/// Reduced results by name, e.g. `{"accuracy": 0.97}`.
pub type Results = BTreeMap<String, f64>;

/// A value for [`crate::Trainer::log`]: a scalar tensor (read back later, with the losses)
/// or a number.
#[derive(Clone, Debug)]
pub enum Scalar {
    /// A scalar tensor, still on its device.
    Tensor(Tensor),
    /// A number on the host.
    Number(f64),
}

impl From<Tensor> for Scalar {
    fn from(t: Tensor) -> Self {
        Scalar::Tensor(t)
    }
}

impl From<&Tensor> for Scalar {
    fn from(t: &Tensor) -> Self {
        Scalar::Tensor(t.clone())
    }
}

impl From<f64> for Scalar {
    fn from(v: f64) -> Self {
        Scalar::Number(v)
    }
}

impl From<f32> for Scalar {
    fn from(v: f32) -> Self {
        Scalar::Number(f64::from(v))
    }
}

impl Scalars {
    /// No values.
    pub fn new() -> Self {
        Scalars::default()
    }

    /// One value named `name`.
    pub fn single(name: impl Into<String>, value: Tensor) -> Self {
        Scalars::new().with(name, value)
    }

    /// These values and `name` = `value`.
    pub fn with(mut self, name: impl Into<String>, value: Tensor) -> Self {
        self.push(name, value);
        self
    }

    /// Adds `name` = `value`.
    pub fn push(&mut self, name: impl Into<String>, value: Tensor) {
        self.items.push((name.into(), value));
    }

    /// These metrics and `name` = `value`, a scalar tensor or a pooled metric.
    pub fn with_metric(mut self, name: impl Into<String>, value: impl MetricValue) -> Self {
        value.add_to(name.into(), &mut self);
        self
    }

    /// The pooled metrics, in order.
    pub fn pooled(&self) -> impl Iterator<Item = (&str, &crate::train::pooled::Pooled)> {
        self.pooled.iter().map(|(n, p)| (n.as_str(), p))
    }

    /// The value named `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.items.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The (name, value) pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.items.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// The number of values (scalar and pooled).
    pub fn len(&self) -> usize {
        self.items.len() + self.pooled.len()
    }

    /// True when there is no value.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.pooled.is_empty()
    }

    /// The sum of all values (the total loss).
    pub fn total(&self) -> Result<Tensor> {
        let mut it = self.items.iter();
        let Some((_, first)) = it.next() else {
            return Err(Error::msg("an iteration returned no loss"));
        };
        let mut total = first.clone();
        for (_, t) in it {
            total = (total + t)?;
        }
        Ok(total)
    }

    /// The same values cut off from the autograd graph (so keeping them keeps no graph).
    pub fn detach(&self) -> Scalars {
        Scalars {
            items: self
                .items
                .iter()
                .map(|(n, t)| (n.clone(), t.detach()))
                .collect(),
            pooled: self
                .pooled
                .iter()
                .map(|(n, p)| {
                    let mut p = p.clone();
                    p.totals = p.totals.detach();
                    (n.clone(), p)
                })
                .collect(),
        }
    }
}

/// Reads many scalar tensors back to the host in one transfer per device dtype. A tensor
/// that is not one value is refused before any transfer, with `describe(index)` (what the
/// caller calls it, e.g. "loss `mse`") and its shape.
///
/// This and the test loop's reduction are the only places the loops read device values.
pub fn read_back(values: &[Tensor], describe: impl Fn(usize) -> String) -> Result<Vec<f64>> {
    if values.is_empty() {
        return Ok(Vec::new());
    }
    if let Some((i, bad)) = values.iter().enumerate().find(|(_, t)| t.elem_count() != 1) {
        return Err(Error::msg(format!(
            "{}: a tensor of shape {:?} where one value is expected",
            describe(i),
            bad.dims()
        )));
    }
    let flat = values
        .iter()
        .map(|t| t.flatten_all()?.to_dtype(candle_core::DType::F32))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let all = Tensor::cat(&flat, 0)?;
    count_read_back();
    Ok(all.to_vec1::<f32>()?.into_iter().map(f64::from).collect())
}

thread_local! {
    // Per thread, because the loops run on the caller's thread and tests run in parallel.
    static READ_BACKS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn count_read_back() {
    READ_BACKS.with(|n| n.set(n.get() + 1));
}

/// How many times the loops have read values back from the device on this thread (what
/// tests use to prove there is no per-step synchronisation).
pub fn read_backs() -> u64 {
    READ_BACKS.with(|n| n.get())
}
