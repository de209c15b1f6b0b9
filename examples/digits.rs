//! Handwritten digits (8x8 images, 10 classes) with a small multilayer perceptron.
//!
//! cargo run --release --example digits -- train
//! cargo run --release --example digits -- test
//! cargo run --release --example digits -- eval examples/data/seven.png out.ron
//! cargo run --release --example digits -- serve

use flammable::candle_nn;
use flammable::prelude::*;
use flammable_examples::{decode_digit, load_split, read_digit, top_class, PIXELS};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The task's own hyperparameters (the shared ones — epochs, lr, batch size… — come with
/// every task).
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
struct Hyper {
    /// Width of the hidden layer.
    #[arg(long, default_value_t = 128, value_parser = flammable::values::at_least_one)]
    hidden: usize,
    /// Dropout probability after the hidden layer.
    #[arg(long, default_value_t = 0.1, value_parser = flammable::values::probability)]
    dropout: f64,
}

struct Digits {
    hidden: candle_nn::Linear,
    out: candle_nn::Linear,
    dropout: Dropout,
    train: TensorDataset,
    test: TensorDataset,
    batch_size: usize,
}

/// What `eval` writes.
#[derive(Serialize)]
struct Prediction {
    class: u32,
    probability: f32,
}

#[flammable::task(epochs = 20, lr = 3e-3)]
impl Digits {
    #[init]
    fn new(hp: &Hyper, env: &Env) -> Result<Self> {
        let vb = env.builder();
        let (train, test) = load_split()?;
        Ok(Digits {
            hidden: candle_nn::linear(PIXELS, hp.hidden, vb.pp("hidden"))?,
            out: candle_nn::linear(hp.hidden, 10, vb.pp("out"))?,
            dropout: Dropout::new(hp.dropout as f32, env, "hidden"),
            train,
            test,
            batch_size: env.config().batch_size,
        })
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batcher> {
        Ok(Batcher::new(self.train.clone(), self.batch_size).shuffle(true))
    }

    #[data(test)]
    fn test_data(&self) -> Result<Batcher> {
        Ok(Batcher::new(self.test.clone(), 512))
    }

    #[forward]
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.hidden.forward(x)?.relu()?;
        let h = self.dropout.forward(&h, train)?;
        Ok(self.out.forward(&h)?)
    }

    #[loss]
    fn cross_entropy(&self, logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::loss::cross_entropy(logits, labels)?)
    }

    #[metric]
    fn accuracy(&self, logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let hits = logits.argmax(D::Minus1)?.eq(labels)?.to_dtype(DType::F32)?;
        Ok(hits.mean_all()?)
    }

    #[eval(load)]
    fn load(&self, path: &Path) -> Result<Tensor> {
        read_digit(path)
    }

    /// `serve`: a request is a PNG image, a CSV row or a JSON array of 64 pixels 0..16.
    #[serve(decode)]
    fn decode(body: &[u8], content_type: &str) -> Result<Tensor> {
        decode_digit(body, content_type)
    }

    #[postprocess]
    fn predict(&self, logits: &Tensor) -> Result<Prediction> {
        let (class, probability) = top_class(&logits.flatten_all()?.to_vec1::<f32>()?);
        Ok(Prediction {
            class: class as u32,
            probability,
        })
    }
}
