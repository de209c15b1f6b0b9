use flammable::prelude::*;

struct Minimal<T> {
    w: Tensor,
    kind: std::marker::PhantomData<T>,
}

#[flammable::task]
impl<T: Send + Sync + 'static> Minimal<T> {
    #[init]
    fn new(env: &Env) -> Result<Self> {
        Ok(Minimal { w: env.builder().get((2, 2), "w")?, kind: std::marker::PhantomData })
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
