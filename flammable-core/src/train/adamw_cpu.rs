//! AdamW's update of one variable on the CPU in three vectorised passes, each in place: the
//! first moment, the second, then the variable. The same update as tensor operations is
//! sixteen passes, each of which reads and writes the whole variable into a new buffer
//! (`m * β₁`, `+`, `sqrt`, …): a sixth of a step of the 64→4096→10 network on one core, by
//! perf. Writing the new values over the old ones, instead of into three new buffers (the
//! variable's then copied into it), leaves a step no fresh memory to fill and no copy. Each value is computed with the same f32 operations in the same order as those
//! tensor operations, so the two give the same bits (see the test in `optim`).

use super::host_values::{values, values_mut};
use super::optim::AdamWStep as Step;
use crate::error::Result;
use candle_core::{CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Tensor, Var};

/// Updates `var` and its moments `m`, `v` in place from its gradient `g`; whether it did:
/// nothing is done unless all four are contiguous f32 tensors of one shape on the CPU. The
/// moments are overwritten: they must be the optimizer's own, sharing their memory with no
/// other tensor.
pub fn update(var: &Var, g: &Tensor, m: &Tensor, v: &Tensor, k: Step) -> Result<bool> {
    let tensors = [var.as_tensor(), g, m, v];
    if tensors.iter().any(|t| {
        t.dtype() != DType::F32
            || !t.device().is_cpu()
            || t.shape() != var.shape()
            || !t.is_contiguous()
    }) {
        return Ok(false);
    }
    let f = |x: f64| x as f32;
    m.inplace_op2(
        g,
        &Moment {
            decay: f(k.beta1),
            weight: f(1.0 - k.beta1),
            squared: false,
        },
    )?;
    v.inplace_op2(
        g,
        &Moment {
            decay: f(k.beta2),
            weight: f(1.0 - k.beta2),
            squared: true,
        },
    )?;
    var.as_tensor().inplace_op3(
        m,
        v,
        &Parameter {
            scale_m: f(k.scale_m),
            scale_v: f(k.scale_v),
            decay: f(1.0 - k.lr * k.weight_decay),
            lr: f(k.lr),
            eps: f(k.eps),
        },
    )?;
    Ok(true)
}

/// Names AdamW's kernels in the error of a tensor they cannot take.
const WHAT: &str = "AdamW's update";

/// A moment's update in place from the gradient: `x ← x·decay + g·weight`, or with `g²`. Each
/// line is the tensor path's operation as candle computes it on the CPU: a tensor times or
/// plus a float is `x * a + b` with `a` and `b` made f32 first (`affine`), which adds 0.0 even
/// to a product alone.
struct Moment {
    decay: f32,
    weight: f32,
    squared: bool,
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "adamw-moment"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let (x, g) = (values_mut(s1, l1, WHAT)?, values(s2, l2, WHAT)?);
        let n = x.len().min(g.len());
        let (x, g) = (&mut x[..n], &g[..n]);
        let (decay, weight) = (self.decay, self.weight);
        // Separate loops, so that each vectorises.
        if self.squared {
            for (x, g) in x.iter_mut().zip(g) {
                *x = (*x * decay + 0.0) + ((g * g) * weight + 0.0);
            }
        } else {
            for (x, g) in x.iter_mut().zip(g) {
                *x = (*x * decay + 0.0) + (g * weight + 0.0);
            }
        }
        Ok(())
    }
}

/// The variable's update in place from the new moments: `p ← p·decay − lr·m̂ / (√v̂ + ε)`.
struct Parameter {
    scale_m: f32,
    scale_v: f32,
    decay: f32,
    lr: f32,
    eps: f32,
}

impl InplaceOp3 for Parameter {
    fn name(&self) -> &'static str {
        "adamw-parameter"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<()> {
        let (p, m, v) = (
            values_mut(s1, l1, WHAT)?,
            values(s2, l2, WHAT)?,
            values(s3, l3, WHAT)?,
        );
        let n = p.len().min(m.len()).min(v.len());
        let (p, m, v) = (&mut p[..n], &m[..n], &v[..n]);
        let k = self;
        for ((p, m), v) in p.iter_mut().zip(m).zip(v) {
            let m_hat = m * k.scale_m + 0.0;
            let v_hat = v * k.scale_v + 0.0;
            let update = m_hat / (v_hat.sqrt() * 1.0 + k.eps);
            *p = (*p * k.decay + 0.0) - (update * k.lr + 0.0);
        }
        Ok(())
    }
}
