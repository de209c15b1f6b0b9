//! Hyperparameters derived through flammable's re-exports of clap and serde: a task needs no
//! dependency of its own on either.
// A test program: it states its expectations with unwrap.
#![allow(clippy::unwrap_used)]

use flammable::prelude::*;
use flammable::{clap, serde};

/// The task's hyperparameters, through the facade.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, clap::Args)]
#[serde(crate = "flammable::serde")]
struct Hyper {
    /// Width of the layer.
    #[arg(long, default_value_t = 3)]
    width: usize,
}

struct Facade {
    w: Tensor,
}

#[flammable::task(no_main)]
impl Facade {
    #[init]
    fn new(hyper: &Hyper, env: &Env) -> Result<Self> {
        Ok(Facade {
            w: env.builder().get((2, hyper.width), "w")?,
        })
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batches> {
        Ok(Batches::from_vec(vec![]))
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

fn main() {
    let env = Env::new(Device::Cpu, 0);
    let task = <Facade as Task>::new(&Hyper { width: 3 }, &env).unwrap();
    assert_eq!(task.w.dims(), &[2, 3]);
    let text = flammable::HyperRecord {
        train: flammable::TrainConfig::default(),
        task: Hyper { width: 5 },
    }
    .to_ron()
    .unwrap();
    assert!(text.contains("width: 5"), "{text}");
}
