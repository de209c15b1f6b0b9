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
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&self.w)?)
    }

    #[loss]
    fn loss(&self, out: &Tensor, y: &Tensor) -> Result<Tensor> {
        Ok((out - y)?.sqr()?.mean_all()?)
    }

    #[metric(f1_score)]
    fn f1(&self, out: &Tensor, _y: &Tensor) -> Result<Tensor> {
        Ok(out.clone())
    }
}
