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

    #[loss]
    fn loss(&self, _out: &Tensor, _y: &Tensor) -> f32 {
        0.0
    }
}
