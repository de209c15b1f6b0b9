//! Small tasks for the integration tests, in a library so that a test can also use them
//! in-process (`Task::from_run`); `src/bin/` holds their command lines.

use flammable::candle_nn;
use flammable::prelude::*;

/// The regression's hyperparameters.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, clap::Args)]
pub struct Hyper {
    /// Example whose loading panics (none by default).
    #[arg(long)]
    panic_at: Option<usize>,
}

/// 64 points of y = 2 x0 - 3 x1 + 1 on a fixed grid.
struct Points {
    panic_at: Option<usize>,
}

impl Dataset for Points {
    fn len(&self) -> usize {
        64
    }

    fn get(&self, index: usize) -> Result<(Tensor, Tensor)> {
        assert!(Some(index) != self.panic_at, "example {index} is broken");
        let x0 = (index % 8) as f32 / 8.0;
        let x1 = (index / 8) as f32 / 8.0;
        let x = Tensor::new(&[x0, x1], &Device::Cpu)?;
        let y = Tensor::new(&[2.0 * x0 - 3.0 * x1 + 1.0], &Device::Cpu)?;
        Ok((x, y))
    }
}

/// A small linear regression (one linear layer) with validation data, an error metric
/// (`rmse`, smaller is better), the default sample loader, and a data set that can be told
/// to panic (`--panic-at N`).
pub struct Regression {
    layer: candle_nn::Linear,
    panic_at: Option<usize>,
}

#[flammable::task(no_main, experiment = "regression", epochs = 3, lr = 0.05)]
impl Regression {
    #[init]
    fn new(hyper: &Hyper, env: &Env) -> Result<Self> {
        Ok(Regression {
            layer: candle_nn::linear(2, 1, env.builder().pp("layer"))?,
            panic_at: hyper.panic_at,
        })
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batcher> {
        let points = Points {
            panic_at: self.panic_at,
        };
        Ok(Batcher::new(points, 8).shuffle(true).prefetch(2))
    }

    #[data(validation)]
    fn validation_data(&self) -> Result<Batcher> {
        Ok(Batcher::new(Points { panic_at: None }, 16))
    }

    #[data(test)]
    fn test_data(&self) -> Result<Batcher> {
        Ok(Batcher::new(Points { panic_at: None }, 16))
    }

    #[forward]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.layer.forward(x)?)
    }

    #[loss]
    fn loss(&self, out: &Tensor, y: &Tensor) -> Result<Tensor> {
        Ok((out - y)?.sqr()?.mean_all()?)
    }

    #[metric]
    fn rmse(&self, out: &Tensor, y: &Tensor) -> Result<Tensor> {
        Ok((out - y)?.sqr()?.mean_all()?.sqrt()?)
    }
}

/// The regression with hooks at every point, each noting in `log` that it ran: two at the
/// end of an epoch (the second logs a value and, at `stop_after` epochs, stops training).
pub struct Hooked {
    layer: candle_nn::Linear,
    /// What the hooks did, in order.
    pub log: std::sync::Mutex<Vec<String>>,
    /// Epochs after which the second `epoch_end` hook stops training.
    pub stop_after: u64,
}

#[flammable::task(no_main, experiment = "hooked", epochs = 5, lr = 0.05)]
impl Hooked {
    #[init]
    fn new(env: &Env) -> Result<Self> {
        Ok(Hooked {
            layer: candle_nn::linear(2, 1, env.builder().pp("layer"))?,
            log: std::sync::Mutex::new(Vec::new()),
            stop_after: u64::MAX,
        })
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batcher> {
        Ok(Batcher::new(Points { panic_at: None }, 32))
    }

    #[data(validation)]
    fn validation_data(&self) -> Result<Batcher> {
        Ok(Batcher::new(Points { panic_at: None }, 64))
    }

    #[forward]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.layer.forward(x)?)
    }

    #[loss]
    fn loss(&self, out: &Tensor, y: &Tensor) -> Result<Tensor> {
        Ok((out - y)?.sqr()?.mean_all()?)
    }

    #[on(step_end)]
    fn note_step(&self, trainer: &mut Trainer) -> Result<()> {
        self.note(format!("step_end {}", trainer.step()));
        Ok(())
    }

    #[on(validation_end)]
    fn note_validation(&self, trainer: &mut Trainer, results: &Results) -> Result<()> {
        let names: Vec<&String> = results.keys().collect();
        self.note(format!("validation_end {} {names:?}", trainer.epoch()));
        Ok(())
    }

    #[on(epoch_end)]
    fn first_epoch_hook(&self, trainer: &mut Trainer) -> Result<()> {
        self.note(format!("epoch_end first {}", trainer.epoch()));
        Ok(())
    }

    #[on(epoch_end)]
    fn second_epoch_hook(&self, trainer: &mut Trainer) -> Result<()> {
        self.note(format!("epoch_end second {}", trainer.epoch()));
        trainer.log("hooked", trainer.epoch() as f64 + 0.5);
        trainer.log("weight_norm", self.layer.weight().sqr()?.sum_all()?.sqrt()?);
        if trainer.epoch() + 1 >= self.stop_after {
            trainer.stop("the hook had seen enough");
        }
        Ok(())
    }

    #[on(train_end)]
    fn note_end(&self, trainer: &mut Trainer) -> Result<()> {
        self.note(format!("train_end {}", trainer.epoch()));
        Ok(())
    }
}

impl Hooked {
    fn note(&self, line: String) {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
    }
}

/// Fixed scores, scored by pooled metrics: its "model" returns its input, so a test can
/// compute the same metrics itself from the data it gave.
pub struct Scored;

#[flammable::task(no_main, experiment = "scored")]
impl Scored {
    #[init]
    fn new(_env: &Env) -> Result<Self> {
        Ok(Scored)
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batches> {
        Ok(Batches::from_vec(Vec::new()))
    }

    #[forward]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.clone())
    }

    #[loss]
    fn loss(&self, out: &Tensor, _y: &Tensor) -> Result<Tensor> {
        Ok(out.sum_all()?)
    }

    /// Built in, named in the attribute.
    #[metric(f1_macro)]
    fn f1(&self, scores: &Tensor, _labels: &Tensor) -> Result<Tensor> {
        Ok(scores.clone())
    }

    #[metric(confusion)]
    fn confusion(&self, scores: &Tensor, _labels: &Tensor) -> Result<Tensor> {
        Ok(scores.clone())
    }

    /// Pooled, from a function: the first score as a prediction of the label's number.
    #[metric]
    fn rmse(&self, scores: &Tensor, labels: &Tensor) -> Result<Pooled> {
        flammable::metrics::rmse(&scores.narrow(1, 0, 1)?, &labels.to_dtype(DType::F32)?)
    }
}
