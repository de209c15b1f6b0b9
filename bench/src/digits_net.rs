//! The digits example's network (64 → hidden → 10) read straight from a checkpoint, computed
//! with candle outside any server: what `serve_load` times alone and what `bare_axum` computes
//! in its handler.

use flammable::candle_core::{Device, Tensor};
use flammable::candle_nn::{Linear, Module};
use std::path::{Path, PathBuf};

/// The `latest` checkpoint of run `run` in `project`'s store.
pub fn latest_checkpoint(project: &Path, run: &str) -> PathBuf {
    flammable_core::store::Store::at(project.join("store"))
        .run_dir(run)
        .join("checkpoints/latest.safetensors")
}

/// The layers `hidden` and `out` of a digits checkpoint.
pub struct DigitsNet {
    hidden: Linear,
    out: Linear,
}

impl DigitsNet {
    /// The network of the checkpoint at `path`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let t = flammable::checkpoint::load_tensors(path)
            .map_err(|e| format!("cannot read {shown}: {e}"))?;
        let layer = |name: &str| -> Result<Linear, String> {
            let get = |part: &str| {
                t.get(&format!("{name}.{part}"))
                    .cloned()
                    .ok_or_else(|| format!("{shown} has no {name}.{part}"))
            };
            Ok(Linear::new(get("weight")?, Some(get("bias")?)))
        };
        Ok(DigitsNet {
            hidden: layer("hidden")?,
            out: layer("out")?,
        })
    }

    /// The class and its probability for 64 pixels 0..16, as the digits example answers
    /// (scaled to 0..1, the network, the softmax on the host).
    pub fn predict(&self, pixels: Vec<f32>) -> flammable::candle_core::Result<(usize, f32)> {
        let x = (Tensor::from_vec(pixels, (1, 64), &Device::Cpu)? / 16.0)?;
        let h = self.hidden.forward(&x)?.relu()?;
        let logits = self.out.forward(&h)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(flammable_examples::top_class(&logits))
    }
}
