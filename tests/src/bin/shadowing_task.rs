//! A task with a hyperparameter named like a flag every task has (`--lr`): refused with
//! one line instead of clap mixing the two up.

use flammable::prelude::*;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, clap::Args)]
struct Hyper {
    /// Clashes with the shared learning rate.
    #[arg(long, default_value_t = 0.5)]
    lr: f64,
}

struct Shadowing {
    w: Tensor,
}

#[flammable::task]
impl Shadowing {
    #[init]
    fn new(_hyper: &Hyper, env: &Env) -> Result<Self> {
        Ok(Shadowing {
            w: env.builder().get((2, 1), "w")?,
        })
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batches> {
        let x = Tensor::new(&[[1f32, 2.0]], &Device::Cpu)?;
        let y = Tensor::new(&[[3f32]], &Device::Cpu)?;
        Ok(Batches::from_vec(vec![Batch::new(x, y)]))
    }

    #[forward]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&self.w)?)
    }

    #[loss]
    fn loss(&self, out: &Tensor, y: &Tensor) -> Result<Tensor> {
        Ok((out - y)?.sqr()?.mean_all()?)
    }
}
