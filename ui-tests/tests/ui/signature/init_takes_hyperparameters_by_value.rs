use flammable::prelude::*;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, clap::Args)]
struct Hyper {
    #[arg(long, default_value_t = 8)]
    hidden: usize,
}

struct Minimal {
    w: Tensor,
}

#[flammable::task]
impl Minimal {
    #[init]
    fn new(hyper: Hyper, env: &Env) -> Result<Self> {
        Ok(Minimal { w: env.builder().get((2, hyper.hidden), "w")? })
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
