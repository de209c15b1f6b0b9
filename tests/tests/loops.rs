//! The meta-algorithms in-process: step order, overrides, no per-step read-back,
//! checkpoints, seeds.

use crate::common::Sandbox;
use flammable::candle_nn;
use flammable::prelude::*;
use flammable_core::train::scalars::read_backs;
use std::sync::Mutex;

/// A linear model on a fixed regression problem that records every step it is asked for.
struct Recorder {
    calls: Mutex<Vec<&'static str>>,
    lin: candle_nn::Linear,
    batches: usize,
}

impl Recorder {
    fn log(&self, step: &'static str) {
        self.calls.lock().unwrap().push(step);
    }

    fn calls(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    fn weights(&self) -> Vec<f32> {
        self.lin.weight().flatten_all().unwrap().to_vec1().unwrap()
    }
}

fn batches(n: usize) -> Batches {
    let dev = Device::Cpu;
    let data = (0..n)
        .map(|i| {
            let v = i as f32 / n as f32;
            let x = Tensor::new(&[[v, 1.0], [1.0, -v]], &dev).unwrap();
            let y = Tensor::new(&[[2.0f32], [-1.0]], &dev).unwrap();
            Batch::new(x, y)
        })
        .collect();
    Batches::from_vec(data)
}

#[flammable::task(no_main, epochs = 2, lr = 0.01)]
impl Recorder {
    #[init]
    fn new(env: &Env) -> Result<Self> {
        Ok(Recorder {
            calls: Mutex::new(vec!["new"]),
            lin: candle_nn::linear(2, 1, env.builder().pp("lin"))?,
            batches: 2,
        })
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batches> {
        self.log("train_data");
        Ok(batches(self.batches))
    }

    #[data(validation)]
    fn validation_data(&self) -> Result<Batches> {
        self.log("validation_data");
        Ok(batches(1))
    }

    #[data(test)]
    fn test_data(&self) -> Result<Batches> {
        self.log("test_data");
        Ok(batches(1))
    }

    #[optimizer]
    fn sgd(&self, vars: Vec<Var>, env: &Env) -> Result<Box<dyn Optimizer>> {
        self.log("optimizer");
        let c = flammable::SgdConfig {
            lr: env.config().lr,
            momentum: 0.0,
            weight_decay: 0.0,
        };
        Ok(Box::new(flammable::Sgd::new(vars, c)))
    }

    #[prepare(train)]
    fn prepare_train(&self, batch: Batch, device: &Device) -> Result<Batch> {
        self.log("prepare_train");
        batch.to_device(device)
    }

    #[prepare(test)]
    fn prepare_test(&self, batch: Batch, device: &Device) -> Result<Batch> {
        self.log("prepare_test");
        batch.to_device(device)
    }

    #[forward]
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.log(if train { "forward(train)" } else { "forward" });
        Ok(self.lin.forward(x)?)
    }

    #[loss]
    fn mse(&self, out: &Tensor, y: &Tensor) -> Result<Tensor> {
        self.log("loss");
        Ok(candle_nn::loss::mse(out, y)?)
    }

    #[metric]
    fn mae(&self, out: &Tensor, batch: &Batch) -> Result<Tensor> {
        self.log("metric");
        Ok((out - &batch.target)?.abs()?.mean_all()?)
    }
}

/// Same model, but its iteration computes the losses and never steps the optimizer.
struct Frozen {
    inner: Recorder,
}

#[flammable::task(no_main, epochs = 2, lr = 0.01)]
impl Frozen {
    #[init]
    fn new(env: &Env) -> Result<Self> {
        Ok(Frozen {
            inner: <Recorder as Task>::new(&NoHyperparameters {}, env)?,
        })
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batches> {
        Ok(batches(2))
    }

    #[forward]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.inner.lin.forward(x)?)
    }

    #[loss]
    fn mse(&self, out: &Tensor, y: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::loss::mse(out, y)?)
    }

    #[step(iteration)]
    fn look_only(&self, batch: Batch, _trainer: &mut Trainer) -> Result<Losses> {
        let out = self.forward_train(&batch)?;
        self.losses(&out, &batch)
    }
}

#[test]
fn every_default_step_runs_in_order() {
    let env = Env::new(Device::Cpu, 1).with_config(<Recorder as Task>::default_config());
    let task = <Recorder as Task>::new(&NoHyperparameters {}, &env).unwrap();
    let before = task.weights();
    task.fit(&env).unwrap();
    let batch = ["prepare_train", "forward(train)", "loss"];
    let validation = ["validation_data", "prepare_test", "forward", "metric"];
    let epoch: Vec<&str> = [&batch[..], &batch[..], &validation[..]].concat();
    let expected: Vec<&str> = [&["new", "optimizer", "train_data"][..], &epoch, &epoch].concat();
    assert_eq!(task.calls(), expected);
    assert_ne!(task.weights(), before, "training changed nothing");

    let results = task.test(&env).unwrap();
    assert_eq!(
        task.calls(),
        ["test_data", "prepare_test", "forward", "metric"]
    );
    assert!(results.contains_key("mae"), "{results:?}");
}

#[test]
fn an_overridden_step_changes_behaviour() {
    let env = Env::new(Device::Cpu, 1).with_config(<Frozen as Task>::default_config());
    let task = <Frozen as Task>::new(&NoHyperparameters {}, &env).unwrap();
    let before = task.inner.weights();
    let results = task.fit(&env).unwrap();
    assert_eq!(
        task.inner.weights(),
        before,
        "the custom iteration never steps"
    );
    assert!(results["loss"] > 0.0);
}

#[test]
fn losses_are_read_back_every_log_every_steps_not_every_step() {
    let sandbox = Sandbox::new();
    for (log_every, max_reads) in [(50, 3), (1, 120)] {
        let env = sandbox.env(1, None);
        let config = TrainConfig {
            epochs: 1,
            log_every,
            validate_every: 1000,
            ..TrainConfig::default()
        };
        let env = env.with_config(config);
        let mut task = <Recorder as Task>::new(&NoHyperparameters {}, &env).unwrap();
        task.batches = 120;
        let reads = read_backs();
        task.fit(&env).unwrap();
        let reads = read_backs() - reads;
        // 120 steps: flushes after 50, 100 and at the end of the epoch.
        assert_eq!(reads, max_reads, "log_every {log_every}");
        let run = env.run().unwrap();
        assert_eq!(
            run.metric_batches(),
            max_reads + 1,
            "one more batch: the epoch means"
        );
        let points = flammable::store::read_metrics(&run.dir().join("metrics.bin")).unwrap();
        let steps: Vec<u64> = points
            .iter()
            .filter(|p| &*p.name == "loss")
            .map(|p| p.step)
            .collect();
        assert_eq!(
            steps,
            (0..120).collect::<Vec<u64>>(),
            "every step's loss is recorded"
        );
    }
}

#[test]
fn checkpoint_round_trip_gives_identical_weights() {
    let sandbox = Sandbox::new();
    let env = sandbox.env(1, None);
    let task = <Recorder as Task>::new(&NoHyperparameters {}, &env).unwrap();
    task.fit(&env).unwrap();
    let saved = task.save_model(&env, "latest").unwrap();
    assert!(saved.exists());

    let parent = env.run().unwrap().id();
    let fresh_env = sandbox.env(2, Some(&parent));
    let fresh = <Recorder as Task>::new(&NoHyperparameters {}, &fresh_env).unwrap();
    assert_ne!(
        fresh.weights(),
        task.weights(),
        "another seed starts elsewhere"
    );
    fresh.load_model(&fresh_env, "latest").unwrap();
    assert_eq!(fresh.weights(), task.weights());
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    let train = |seed| {
        let env = Env::new(Device::Cpu, seed).with_config(<Recorder as Task>::default_config());
        let task = <Recorder as Task>::new(&NoHyperparameters {}, &env).unwrap();
        task.fit(&env).unwrap();
        task.weights()
    };
    assert_eq!(train(3), train(3));
    assert_ne!(train(3), train(4));
}

#[test]
fn the_best_validation_metric_keeps_its_own_checkpoint() {
    let sandbox = Sandbox::new();
    let config = TrainConfig {
        epochs: 4,
        lr: 0.01,
        best_metric: Some("mae".into()),
        best_mode: Some(flammable::BestMode::Min),
        ..TrainConfig::default()
    };
    let env = sandbox.env(1, None).with_config(config);
    let task = <Recorder as Task>::new(&NoHyperparameters {}, &env).unwrap();
    task.fit(&env).unwrap();
    let run = env.run().unwrap();
    let best = run.record().metrics["best/val/mae"];
    let dir = run.dir().join("checkpoints");
    assert!(dir.join("best.safetensors").exists() && dir.join("best.ron").exists());
    let state = flammable::checkpoint::load_state(&dir.join("best.ron")).unwrap();
    assert_eq!(state.best, Some(best));
}
