use flammable::prelude::*;

struct Minimal {
    w: Tensor,
}

#[flammable::task]
impl Minimal {
    #[init]
    fn new(env: &Env) -> Result<Self> {
        Ok(Minimal { w: env.builder().get((2, 2), "w")? })
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batches> {
        Ok(Batches::from_vec(vec![]))
    }

    #[forward]
    fn forward(&self, x: &[f32]) -> Result<Tensor> {
        Ok(Tensor::new(x, self.w.device())?.matmul(&self.w)?)
    }

    #[loss]
    fn loss(&self, out: &Tensor, y: &Tensor) -> Result<Tensor> {
        Ok((out - y)?.sqr()?.mean_all()?)
    }
}
