//! A tabular task: the wine data set (178 wines, 13 chemical measurements on very different
//! scales, 3 cultivars) read from a CSV file, split into train, validation and test parts by
//! the split seed (stratified), standardised with statistics fitted on the training part and
//! kept in the checkpoints, the cultivars' names kept with the run, a small network scored
//! by pooled macro-F1, early stopping on it, and two hooks. `eval` and `serve` of a trained
//! run read nothing but the run's folder: the data are loaded only where they are used.
//!
//! cargo run --release --example wine -- train
//! cargo run --release --example wine -- test
//! cargo run --release --example wine -- eval examples/data/wine_sample.csv out.ron   # raw measurements in, (class: "1", …) out

use flammable::candle_nn;
use flammable::prelude::*;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, clap::Args)]
struct Hyper {
    /// Width of the hidden layer.
    #[arg(long, default_value_t = 32, value_parser = flammable::values::at_least_one)]
    hidden: usize,
    /// The data: a CSV file with a header, 13 measurement columns and the `cultivar` column.
    #[arg(long, default_value_os_t = bundled_data())]
    data: PathBuf,
}

/// Measurements per wine: the model's input width, known without reading the data.
const FEATURES: usize = 13;
/// Cultivars: the model's output width.
const CULTIVARS: usize = 3;

/// The parts of the data the model trains, validates and is tested on.
struct Parts {
    train: TensorDataset,
    validation: TensorDataset,
    test: TensorDataset,
}

struct Wine {
    scale: Standardize,
    hidden: candle_nn::Linear,
    out: candle_nn::Linear,
    /// `None` where the task only computes predictions (`eval`, `serve`).
    data: Option<Parts>,
    batch_size: usize,
}

/// The bundled data file (see `data/README.md`).
fn bundled_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join("wine.csv")
}

/// Reads `path` and splits it (stratified) by the split seed, so that runs that differ only in
/// `--seed` train and validate on the same rows; the cultivars' names go with the run.
fn load(path: &Path, env: &Env) -> Result<Parts> {
    let all = TensorDataset::from_csv(path, "cultivar", Target::Class)?;
    let features = all.inputs().dim(1)?;
    if features != FEATURES {
        return Err(Error::msg(format!(
            "`{}` has {features} measurement columns; a wine has {FEATURES}",
            path.display()
        )));
    }
    env.set_classes(all.classes());
    let mut parts = all
        .split_stratified(&[0.6, 0.2, 0.2], env.split_seed())?
        .into_iter();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(train), Some(validation), Some(test)) => Ok(Parts {
            train,
            validation,
            test,
        }),
        _ => Err(Error::msg("the split made fewer than three parts")),
    }
}

impl Wine {
    /// The data, for the steps that use them (only `train` and `test` build the task with
    /// them).
    fn parts(&self) -> Result<&Parts> {
        self.data
            .as_ref()
            .ok_or_else(|| Error::msg("this command did not load the data"))
    }
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
        let data = if env.needs_data() {
            Some(load(&hp.data, env)?)
        } else {
            None
        };
        // Fitted on the training part only. Without the data, the checkpoint that `eval` and
        // `serve` load puts the run's statistics in.
        let scale = match &data {
            Some(parts) => Standardize::fit(parts.train.inputs(), env, "standardize")?,
            None => Standardize::unfitted(env, "standardize", FEATURES)?,
        };
        let vb = env.builder();
        Ok(Wine {
            scale,
            hidden: candle_nn::linear(FEATURES, hp.hidden, vb.pp("hidden"))?,
            out: candle_nn::linear(hp.hidden, CULTIVARS, vb.pp("out"))?,
            data,
            batch_size: env.config().batch_size,
        })
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batcher> {
        Ok(Batcher::new(self.parts()?.train.clone(), self.batch_size).shuffle(true))
    }

    #[data(validation)]
    fn validation_data(&self) -> Result<Batcher> {
        Ok(Batcher::new(self.parts()?.validation.clone(), 64))
    }

    #[data(test)]
    fn test_data(&self) -> Result<Batcher> {
        Ok(Batcher::new(self.parts()?.test.clone(), 64))
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
