//! The digits task with more of the meta-algorithm replaced: a network with two heads (the
//! digit, and whether it is 5 or more), two named losses, two metrics, a custom iteration
//! that masks input pixels, SGD with momentum on a cosine schedule.
//!
//! cargo run --release --example digits_twohead -- train
//! cargo run --release --example digits_twohead -- test

use flammable::candle_nn;
use flammable::prelude::*;
use flammable::{OptimizerKind, ScheduleKind};
use flammable_examples::{load_split, read_digit, PIXELS};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
struct Hyper {
    /// Width of the shared hidden layer.
    #[arg(long, default_value_t = 128, value_parser = flammable::values::at_least_one)]
    hidden: usize,
    /// Weight of the "5 or more" loss in the total.
    #[arg(long, default_value_t = 0.5)]
    aux_weight: f64,
    /// Probability of masking each input pixel in training.
    #[arg(long, default_value_t = 0.1, value_parser = flammable::values::probability)]
    mask: f64,
}

struct TwoHead {
    trunk: candle_nn::Linear,
    digit: candle_nn::Linear,
    high: candle_nn::Linear,
    mask: Dropout,
    aux_weight: f64,
    train: TensorDataset,
    test: TensorDataset,
    batch_size: usize,
}

/// Splits the network's output into the digit logits (10) and the "5 or more" logits (2).
fn heads(output: &Tensor) -> Result<(Tensor, Tensor)> {
    Ok((output.narrow(1, 0, 10)?, output.narrow(1, 10, 2)?))
}

/// 1 for digits 5..9, 0 for 0..4.
fn high_labels(labels: &Tensor) -> Result<Tensor> {
    Ok(labels.ge(5u32)?.to_dtype(DType::U32)?)
}

fn accuracy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    Ok(logits
        .argmax(D::Minus1)?
        .eq(labels)?
        .to_dtype(DType::F32)?
        .mean_all()?)
}

#[derive(Serialize)]
struct Prediction {
    class: u32,
    five_or_more: bool,
}

#[flammable::task(epochs = 15, lr = 0.1, optimizer = OptimizerKind::Sgd, schedule = ScheduleKind::Cosine, warmup_steps = 20)]
impl TwoHead {
    #[init]
    fn new(hp: &Hyper, env: &Env) -> Result<Self> {
        let vb = env.builder();
        let (train, test) = load_split()?;
        Ok(TwoHead {
            trunk: candle_nn::linear(PIXELS, hp.hidden, vb.pp("trunk"))?,
            digit: candle_nn::linear(hp.hidden, 10, vb.pp("digit"))?,
            high: candle_nn::linear(hp.hidden, 2, vb.pp("high"))?,
            mask: Dropout::new(hp.mask as f32, env, "input-mask"),
            aux_weight: hp.aux_weight,
            train,
            test,
            batch_size: env.config().batch_size,
        })
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batcher> {
        Ok(Batcher::new(self.train.clone(), self.batch_size)
            .shuffle(true)
            .drop_last(true))
    }

    #[data(test)]
    fn test_data(&self) -> Result<Batcher> {
        Ok(Batcher::new(self.test.clone(), 512))
    }

    /// Both heads side by side: 12 columns.
    #[forward]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.trunk.forward(x)?.relu()?;
        Ok(Tensor::cat(
            &[self.digit.forward(&h)?, self.high.forward(&h)?],
            1,
        )?)
    }

    /// Two named losses; the default backward minimises their sum.
    #[step(losses)]
    fn two_losses(&self, output: &Tensor, batch: &Batch) -> Result<Losses> {
        let (digit, high) = heads(output)?;
        let digit_loss = candle_nn::loss::cross_entropy(&digit, &batch.target)?;
        let high_loss = (candle_nn::loss::cross_entropy(&high, &high_labels(&batch.target)?)?
            * self.aux_weight)?;
        Ok(Losses::new()
            .with("digit", digit_loss)
            .with("five_or_more", high_loss))
    }

    /// The default iteration with the input pixels masked at random (seeded) first.
    #[step(iteration)]
    fn masked_iteration(&self, batch: Batch, trainer: &mut Trainer) -> Result<Losses> {
        let batch = self.prepare_train(batch, trainer.device())?;
        let masked = Batch::new(self.mask.forward(&batch.input, true)?, batch.target);
        let output = self.forward_train(&masked)?;
        let losses = self.losses(&output, &masked)?;
        self.backward(&losses, trainer)?;
        Ok(losses)
    }

    #[metric]
    fn digit_accuracy(&self, output: &Tensor, labels: &Tensor) -> Result<Tensor> {
        accuracy(&heads(output)?.0, labels)
    }

    #[metric]
    fn five_or_more_accuracy(&self, output: &Tensor, labels: &Tensor) -> Result<Tensor> {
        accuracy(&heads(output)?.1, &high_labels(labels)?)
    }

    #[eval(load)]
    fn load(&self, path: &Path) -> Result<Tensor> {
        read_digit(path)
    }

    #[postprocess]
    fn predict(&self, output: &Tensor) -> Result<Prediction> {
        let (digit, high) = heads(output)?;
        let class = digit.argmax(D::Minus1)?.squeeze(0)?.to_scalar::<u32>()?;
        let high = high.argmax(D::Minus1)?.squeeze(0)?.to_scalar::<u32>()?;
        Ok(Prediction {
            class,
            five_or_more: high == 1,
        })
    }
}
