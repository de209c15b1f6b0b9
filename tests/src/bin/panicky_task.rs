//! A task whose forward step panics after a few steps (for the crash tests).

use flammable::prelude::*;

struct Panicky {
    w: Tensor,
    calls: std::sync::atomic::AtomicUsize,
}

#[flammable::task]
impl Panicky {
    #[init]
    fn new(env: &Env) -> Result<Self> {
        Ok(Panicky {
            w: env.builder().get((2, 1), "w")?,
            calls: Default::default(),
        })
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batches> {
        let x = Tensor::new(&[[1f32, 2.0]], &Device::Cpu)?;
        let y = Tensor::new(&[[3f32]], &Device::Cpu)?;
        Ok(Batches::from_vec(vec![Batch::new(x, y); 4]))
    }

    #[forward]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(n < 5, "the model broke at call {n}");
        Ok(x.matmul(&self.w)?)
    }

    #[loss]
    fn loss(&self, out: &Tensor, y: &Tensor) -> Result<Tensor> {
        Ok((out - y)?.sqr()?.mean_all()?)
    }
}
