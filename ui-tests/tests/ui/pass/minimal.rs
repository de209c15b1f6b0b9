// A test program: it states its expectations with unwrap.
#![allow(clippy::unwrap_used)]
use flammable::prelude::*;

struct Minimal {
    w: Tensor,
}

/// The generated `main` would parse a command line; this case runs the task directly.
#[flammable::task(no_main)]
impl Minimal {
    #[init]
    fn new(env: &Env) -> Result<Self> {
        Ok(Minimal {
            w: env.builder().get((2, 2), "w")?,
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
    let task = <Minimal as Task>::new(&NoHyperparameters {}, &env).unwrap();
    task.fit(&env).unwrap();
}
