//! The smallest whole task, for `feature_cost`: a linear regression on generated points. It
//! is built outside the workspace, against `flammable` with one set of features at a time.

use flammable::candle_nn;
use flammable::prelude::*;

struct Probe {
    layer: candle_nn::Linear,
    data: TensorDataset,
}

#[flammable::task(epochs = 2)]
impl Probe {
    #[init]
    fn new(env: &Env) -> Result<Self> {
        let x = Tensor::arange(0f32, 64.0, &Device::Cpu)?.reshape((32, 2))?;
        let y = (x.sum_keepdim(1)? * 0.5)?;
        Ok(Probe {
            layer: candle_nn::linear(2, 1, env.builder().pp("layer"))?,
            data: TensorDataset::new(x, y)?,
        })
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batcher> {
        Ok(Batcher::new(self.data.clone(), 8))
    }

    #[forward]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.layer.forward(x)?)
    }

    #[loss]
    fn loss(&self, out: &Tensor, y: &Tensor) -> Result<Tensor> {
        Ok((out - y)?.sqr()?.mean_all()?)
    }
}
