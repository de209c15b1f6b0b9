//! Gradient tools candle lacks: clipping by global norm and accumulation. Both stay on the
//! device: no value is read back to the host.

use crate::error::Result;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

/// The global L2 norm of the gradients of `vars`, as a device tensor (`None` without any
/// gradient).
pub fn grad_norm(grads: &GradStore, vars: &[Var]) -> Result<Option<Tensor>> {
    let mut total: Option<Tensor> = None;
    for var in vars {
        if let Some(g) = grads.get(var) {
            let sq = g.to_dtype(candle_core::DType::F32)?.sqr()?.sum_all()?;
            total = Some(match total {
                Some(t) => (t + sq)?,
                None => sq,
            });
        }
    }
    Ok(match total {
        Some(total) => Some(total.sqrt()?),
        None => None,
    })
}

/// Scales the gradients of `vars` so that their global L2 norm is at most `max_norm`;
/// returns the norm before clipping, as a device tensor (read it back only when logging).
pub fn clip_grad_norm(
    grads: &mut GradStore,
    vars: &[Var],
    max_norm: f64,
) -> Result<Option<Tensor>> {
    let Some(norm) = grad_norm(grads, vars)? else {
        return Ok(None);
    };
    // min(1, max_norm / (norm + ε)), computed on the device.
    let scale = ((norm.clone() + 1e-6)?.recip()? * max_norm)?.clamp(0f64, 1f64)?;
    for var in vars {
        if let Some(g) = grads.remove(var) {
            let clipped = g.broadcast_mul(&scale.to_dtype(g.dtype())?)?;
            grads.insert(var, clipped);
        }
    }
    Ok(Some(norm))
}

/// Adds the gradients of `next` for `vars` into `acc`.
pub fn accumulate(acc: &mut GradStore, next: GradStore, vars: &[Var]) -> Result<()> {
    let mut next = next;
    for var in vars {
        if let Some(g) = next.remove(var) {
            let sum = match acc.remove(var) {
                Some(a) => (a + g)?,
                None => g,
            };
            acc.insert(var, sum);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn clipping_scales_to_max_norm_and_leaves_small_gradients() {
        let w = Var::new(&[0f32, 0.0], &Device::Cpu).unwrap();
        // d/dw of 3 w0 + 4 w1 = (3, 4): norm 5.
        let loss = (w.as_tensor() * &Tensor::new(&[3f32, 4.0], &Device::Cpu).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let mut grads = loss.backward().unwrap();
        let norm = clip_grad_norm(&mut grads, std::slice::from_ref(&w), 1.0)
            .unwrap()
            .unwrap();
        assert!((norm.to_scalar::<f32>().unwrap() - 5.0).abs() < 1e-5);
        let g = grads.get(&w).unwrap().to_vec1::<f32>().unwrap();
        assert!(
            (g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5,
            "{g:?}"
        );

        let mut grads = loss.backward().unwrap();
        clip_grad_norm(&mut grads, std::slice::from_ref(&w), 10.0).unwrap();
        assert_eq!(
            grads.get(&w).unwrap().to_vec1::<f32>().unwrap(),
            vec![3.0, 4.0]
        );
    }

    #[test]
    fn accumulation_sums() {
        let w = Var::new(&[1f32], &Device::Cpu).unwrap();
        let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
        let mut acc = loss.backward().unwrap();
        accumulate(&mut acc, loss.backward().unwrap(), std::slice::from_ref(&w)).unwrap();
        assert_eq!(acc.get(&w).unwrap().to_vec1::<f32>().unwrap(), vec![4.0]);
    }
}
