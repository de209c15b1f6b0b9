//! Layers whose randomness is seeded (candle's draw from an unseeded thread generator).

use crate::error::Result;
use crate::model::rng::rng_for;
use crate::model::vars::Vars;
use candle_core::Tensor;
use rand::Rng as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Dropout whose masks come from the run seed: the same seed drops the same units. Each
/// mask is keyed by the seed, the layer's name and how many masks it drew before, a count
/// that checkpoints save, so a resumed run draws the masks an uninterrupted one would.
pub struct Dropout {
    p: f32,
    seed: u64,
    label: String,
    draws: Arc<AtomicU64>,
}

impl Dropout {
    /// Drops each unit with probability `p` in training; `name` keys its generator, drawn
    /// from the model's variables' seed (`Dropout::new(0.1, env, "hidden")`, or
    /// `env.vars()`).
    pub fn new(p: f32, vars: &(impl AsRef<Vars> + ?Sized), name: &str) -> Self {
        let vars = vars.as_ref();
        let label = format!("dropout/{name}");
        Dropout {
            p: p.clamp(0.0, 1.0),
            seed: vars.seed(),
            draws: vars.rng_counter(&label),
            label,
        }
    }

    /// `x` with units dropped and the rest scaled by `1 / (1 - p)` when `train`; `x` itself
    /// otherwise.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.p == 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 - self.p;
        let scale = if keep > 0.0 { 1.0 / keep } else { 0.0 };
        let n = x.elem_count();
        let draw = self.draws.fetch_add(1, Ordering::Relaxed);
        let mask = mask(&mut rng_for(self.seed, &self.label, draw), n, keep, scale);
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        Ok((x * mask)?)
    }
}

/// `n` values, each `scale` with probability `keep` and 0 otherwise: value `i` is kept when the
/// generator's `i`-th draw of a uniform f32 in [0, 1) is below `keep`. Drawn as one block of
/// 32-bit words, each made a float as `rand` makes one (its top 24 bits times 2⁻²⁴), which
/// gives the masks of drawing the floats one by one and costs a fraction of it: one call to
/// the generator, and a loop the compiler turns into vector instructions.
fn mask(rng: &mut crate::model::rng::Rng, n: usize, keep: f32, scale: f32) -> Vec<f32> {
    let mut words = vec![0u32; n];
    rng.fill(&mut words[..]);
    const UNIT: f32 = 1.0 / (1u32 << 24) as f32;
    words
        .iter()
        .map(|&w| {
            if UNIT * ((w >> 8) as f32) < keep {
                scale
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn a_mask_drawn_as_one_block_is_the_mask_of_drawing_floats_one_by_one() {
        for (seed, keep) in [(1, 0.5f32), (2, 0.9), (3, 0.1), (4, 1.0), (5, 0.0)] {
            let n = 1031;
            let mut one_by_one = rng_for(seed, "dropout/x", 7);
            let expected: Vec<f32> = (0..n)
                .map(|_| {
                    if one_by_one.random::<f32>() < keep {
                        2.5
                    } else {
                        0.0
                    }
                })
                .collect();
            let got = mask(&mut rng_for(seed, "dropout/x", 7), n, keep, 2.5);
            assert_eq!(got, expected, "seed {seed}, keep {keep}");
        }
    }

    #[test]
    fn seeded_masks_repeat_and_scale() {
        let x = Tensor::ones(1000, candle_core::DType::F32, &Device::Cpu).unwrap();
        let masks = |seed| {
            let d = Dropout::new(
                0.5,
                &Vars::new(seed, Device::Cpu, candle_core::DType::F32),
                "a",
            );
            d.forward(&x, true).unwrap().to_vec1::<f32>().unwrap()
        };
        assert_eq!(masks(1), masks(1));
        assert_ne!(masks(1), masks(2));
        let m = masks(1);
        assert!(m.iter().all(|&v| v == 0.0 || v == 2.0));
        let kept = m.iter().filter(|&&v| v > 0.0).count();
        assert!((400..600).contains(&kept), "{kept}");
        let d = Dropout::new(
            0.5,
            &Vars::new(1, Device::Cpu, candle_core::DType::F32),
            "a",
        );
        assert_eq!(
            d.forward(&x, false).unwrap().to_vec1::<f32>().unwrap(),
            vec![1.0; 1000]
        );
    }
}
