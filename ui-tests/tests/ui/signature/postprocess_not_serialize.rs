use flammable::prelude::*;

struct Minimal {
    w: Tensor,
}

/// A result serde cannot write.
struct Guess {
    class: usize,
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

    #[postprocess]
    fn guess(&self, out: &Tensor) -> Result<Guess> {
        Ok(Guess { class: out.argmax(0)?.to_scalar::<u32>()? as usize })
    }
}
