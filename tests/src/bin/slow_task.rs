//! A task whose serving is slow on purpose (for the server's tests): its request reader
//! sleeps as many milliseconds as the body says (a body `1500` sleeps 1.5 s, then reads as
//! the sample `[1, 2]`), and its model sleeps `--forward-ms` in every forward pass outside
//! training (the warm-up batch too).

use flammable::prelude::*;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, clap::Args)]
struct Hyper {
    /// Milliseconds each forward pass outside training sleeps.
    #[arg(long, default_value_t = 0)]
    forward_ms: u64,
}

struct Slow {
    w: Tensor,
    forward_ms: u64,
}

fn data() -> Result<Batches> {
    let x = Tensor::new(&[[1f32, 2.0], [3.0, 4.0]], &Device::Cpu)?;
    let y = Tensor::new(&[[3f32], [7.0]], &Device::Cpu)?;
    Ok(Batches::from_vec(vec![Batch::new(x, y)]))
}

#[flammable::task(epochs = 1)]
impl Slow {
    #[init]
    fn new(hp: &Hyper, env: &Env) -> Result<Self> {
        Ok(Slow {
            w: env.builder().get((2, 1), "w")?,
            forward_ms: hp.forward_ms,
        })
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batches> {
        data()
    }

    #[data(test)]
    fn test_data(&self) -> Result<Batches> {
        data()
    }

    #[forward]
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train {
            std::thread::sleep(std::time::Duration::from_millis(self.forward_ms));
        }
        Ok(x.matmul(&self.w)?)
    }

    #[loss]
    fn loss(&self, out: &Tensor, y: &Tensor) -> Result<Tensor> {
        Ok((out - y)?.sqr()?.mean_all()?)
    }

    #[serve(decode)]
    fn decode(body: &[u8], _content_type: &str) -> Result<Tensor> {
        let ms: u64 = std::str::from_utf8(body)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| Error::msg("send a number of milliseconds"))?;
        std::thread::sleep(std::time::Duration::from_millis(ms));
        Ok(Tensor::new(&[1f32, 2.0], &Device::Cpu)?)
    }
}
