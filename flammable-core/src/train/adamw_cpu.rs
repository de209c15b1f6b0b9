//! AdamW's update of one variable on the CPU in three vectorised passes over its values (the
//! new first moment, the second, the variable). The same update as tensor operations is
//! sixteen passes, each of which reads and writes the whole variable into a new buffer
//! (`m * β₁`, `+`, `sqrt`, …): a sixth of a step of the 64→4096→10 network on one core, by
//! perf; in three passes, about 6 % more examples a second on one rank and on two. Each value
//! is computed with the same f32 operations in the same order as those tensor operations, so
//! the two give the same bits (see the test).

use super::optim::AdamWStep as Step;
use crate::error::Result;
use candle_core::{CpuStorage, DType, Device, Layout, Storage, Tensor, Var};

/// Updates `var` from its gradient `g` and moments `m`, `v` in three passes: the new moments, or
/// `None` (nothing done) unless all four are contiguous f32 tensors on the CPU.
pub fn update(
    var: &Var,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    k: Step,
) -> Result<Option<(Tensor, Tensor)>> {
    let tensors = [var.as_tensor(), g, m, v];
    if tensors
        .iter()
        .any(|t| t.dtype() != DType::F32 || !t.device().is_cpu() || t.shape() != var.shape())
    {
        return Ok(None);
    }
    let (next_p, next_m, next_v) = {
        let guards = tensors.map(|t| t.storage_and_layout());
        let [Some(p), Some(g), Some(m), Some(v)] = guards.each_ref().map(|(s, l)| values(s, l))
        else {
            return Ok(None);
        };
        compute(p, g, m, v, k)
        // The read locks end here: `set` below takes the variable's write lock.
    };
    let shape = var.shape().clone();
    var.set(&Tensor::from_vec(next_p, shape.clone(), &Device::Cpu)?)?;
    Ok(Some((
        Tensor::from_vec(next_m, shape.clone(), &Device::Cpu)?,
        Tensor::from_vec(next_v, shape, &Device::Cpu)?,
    )))
}

/// The f32 values of a contiguous CPU tensor's storage.
fn values<'a>(storage: &'a Storage, layout: &Layout) -> Option<&'a [f32]> {
    let Storage::Cpu(CpuStorage::F32(all)) = storage else {
        return None;
    };
    let (start, end) = layout.contiguous_offsets()?;
    all.get(start..end)
}

/// The new variable and moments. Each line is one of the tensor path's operations, as candle
/// computes it on the CPU: a tensor times or plus a float is `x * a + b` with `a` and `b`
/// made f32 first (`affine`), which adds 0.0 even to a product alone.
fn compute(p: &[f32], g: &[f32], m: &[f32], v: &[f32], k: Step) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let f = |x: f64| x as f32;
    let (beta1, one_minus_beta1) = (f(k.beta1), f(1.0 - k.beta1));
    let (beta2, one_minus_beta2) = (f(k.beta2), f(1.0 - k.beta2));
    let (scale_m, scale_v) = (f(k.scale_m), f(k.scale_v));
    let (decay, lr, eps) = (f(1.0 - k.lr * k.weight_decay), f(k.lr), f(k.eps));
    // Maps over the indices of slices of one length, which the compiler turns into vector
    // instructions (and which fill their vectors without zeroing them first); a loop pushing
    // the three outputs did not vectorise and was slower than the tensor operations.
    let n = p.len().min(g.len()).min(m.len()).min(v.len());
    let (p, g, m, v) = (&p[..n], &g[..n], &m[..n], &v[..n]);
    let next_m: Vec<f32> = (0..n)
        .map(|i| (m[i] * beta1 + 0.0) + (g[i] * one_minus_beta1 + 0.0))
        .collect();
    let next_v: Vec<f32> = (0..n)
        .map(|i| (v[i] * beta2 + 0.0) + ((g[i] * g[i]) * one_minus_beta2 + 0.0))
        .collect();
    let (nm, nv) = (&next_m[..n], &next_v[..n]);
    let next_p = (0..n)
        .map(|i| {
            let m_hat = nm[i] * scale_m + 0.0;
            let v_hat = nv[i] * scale_v + 0.0;
            let update = m_hat / (v_hat.sqrt() * 1.0 + eps);
            (p[i] * decay + 0.0) - (update * lr + 0.0)
        })
        .collect();
    (next_p, next_m, next_v)
}
