//! A tabular task: the wine data set (178 wines, 13 chemical measurements on very different
//! scales, 3 cultivars) read from a CSV file, split into train, validation and test parts by
//! the run seed (stratified), standardised with statistics fitted on the training part and
//! kept in the checkpoints, the cultivars' names kept with the run, a small network scored
//! by pooled macro-F1, early stopping on it, and two hooks.
//!
//! cargo run --release --example wine -- train
//! cargo run --release --example wine -- test
//! cargo run --release --example wine -- eval examples/data/wine_sample.csv out.ron   # raw measurements in, (class: "1", …) out

use flammable::candle_nn;
use flammable::prelude::*;
use std::path::PathBuf;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, clap::Args)]
struct Hyper {
    /// Width of the hidden layer.
    #[arg(long, default_value_t = 32, value_parser = flammable::values::at_least_one)]
    hidden: usize,
}

struct Wine {
    scale: Standardize,
    hidden: candle_nn::Linear,
    out: candle_nn::Linear,
    train: TensorDataset,
    validation: TensorDataset,
    test: TensorDataset,
    batch_size: usize,
}

/// The bundled data file (see `data/README.md`).
fn data_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join("wine.csv")
}

#[flammable::task(
    epochs = 300,
    lr = 1e-2,
    batch_size = 16,
    best_metric = Some("f1".into()),
    early_stop = Some(20)
)]
impl Wine {
    #[init]
    fn new(hp: &Hyper, env: &Env) -> Result<Self> {
        let all = TensorDataset::from_csv(data_path(), "cultivar", Target::Class)?;
        // Kept with the run: eval and serve answer the cultivar, not only its index.
        env.set_classes(all.classes());
        // The run seed draws the split: its test and eval runs (same seed) see the same parts.
        let mut parts = all
            .split_stratified(&[0.6, 0.2, 0.2], env.seed())?
            .into_iter();
        let (Some(train), Some(validation), Some(test)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::msg("the split made fewer than three parts"));
        };
        // Fitted on the training part only; a checkpoint restores the run's statistics.
        let scale = Standardize::fit(train.inputs(), env, "standardize")?;
        let vb = env.builder();
        let features = train.inputs().dim(1)?;
        Ok(Wine {
            scale,
            hidden: candle_nn::linear(features, hp.hidden, vb.pp("hidden"))?,
            out: candle_nn::linear(hp.hidden, 3, vb.pp("out"))?,
            train,
            validation,
            test,
            batch_size: env.config().batch_size,
        })
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batcher> {
        Ok(Batcher::new(self.train.clone(), self.batch_size).shuffle(true))
    }

    #[data(validation)]
    fn validation_data(&self) -> Result<Batcher> {
        Ok(Batcher::new(self.validation.clone(), 64))
    }

    #[data(test)]
    fn test_data(&self) -> Result<Batcher> {
        Ok(Batcher::new(self.test.clone(), 64))
    }

    /// Raw measurements in, standardised first: eval and serve take them as they are.
    #[forward]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.scale.forward(x)?;
        Ok(self.out.forward(&self.hidden.forward(&x)?.relu()?)?)
    }

    #[loss]
    fn cross_entropy(&self, logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::loss::cross_entropy(logits, labels)?)
    }

    /// Macro-averaged F1 over the whole split, from its confusion matrix.
    #[metric(f1_macro)]
    fn f1(&self, logits: &Tensor, _labels: &Tensor) -> Result<Tensor> {
        Ok(logits.clone())
    }

    #[metric(accuracy)]
    fn accuracy(&self, logits: &Tensor, _labels: &Tensor) -> Result<Tensor> {
        Ok(logits.clone())
    }

    /// Records the output layer's weight norm each epoch (read back with the losses).
    #[on(epoch_end)]
    fn weight_norm(&self, trainer: &mut Trainer) -> Result<()> {
        trainer.log(
            "out_weight_norm",
            self.out.weight().sqr()?.sum_all()?.sqrt()?,
        );
        Ok(())
    }

    /// Nothing is left to learn once validation is perfect.
    #[on(validation_end)]
    fn stop_when_perfect(&self, trainer: &mut Trainer, results: &Results) -> Result<()> {
        if results.get("f1").is_some_and(|f1| *f1 >= 1.0) {
            trainer.stop("validation F1 reached 1.0");
        }
        Ok(())
    }
}
