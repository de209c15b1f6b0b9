//! The burn peers of the training-loop benchmark: the benchmark's MLP (64→256→256→10),
//! in-memory batches made once, plain SGD (lr 0.01), on burn's ndarray backend, trained by a
//! plain burn loop or by burn's `Learner` (loss metric, file checkpointer, its default renderer
//! and loggers, as its guide sets it up).
//!
//! Prints the seconds the timed part took (the loop, or `Learner::fit`) after an untimed
//! warm-up. bench's `train_loop` runs it once per round, interleaved with the other variants.
//!
//! flammable-bench-burn --variant plain|learner --batch 64 --steps 256 --dir D

use burn::backend::{Autodiff, NdArray};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::InMemDataset;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLoss;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::record::CompactRecorder;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use burn::train::metric::LossMetric;
use burn::train::{
    ClassificationOutput, LearnerBuilder, LearningStrategy, TrainOutput, TrainStep, ValidStep,
};
use std::time::Instant;

type Train = Autodiff<NdArray>;

const EXAMPLES: usize = 4096;
const LR: f64 = 0.01;

#[derive(Module, Debug)]
struct Mlp<B: Backend> {
    l1: Linear<B>,
    l2: Linear<B>,
    l3: Linear<B>,
    relu: Relu,
}

impl<B: Backend> Mlp<B> {
    fn new(device: &B::Device) -> Self {
        Mlp {
            l1: LinearConfig::new(64, 256).init(device),
            l2: LinearConfig::new(256, 256).init(device),
            l3: LinearConfig::new(256, 10).init(device),
            relu: Relu::new(),
        }
    }

    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let h = self.relu.forward(self.l1.forward(x));
        let h = self.relu.forward(self.l2.forward(h));
        self.l3.forward(h)
    }

    fn classify(&self, batch: XY<B>) -> ClassificationOutput<B> {
        let logits = self.forward(batch.x);
        let loss =
            CrossEntropyLoss::new(None, &logits.device()).forward(logits.clone(), batch.y.clone());
        ClassificationOutput::new(loss, logits, batch.y)
    }
}

/// One batch: inputs and class labels.
#[derive(Clone, Debug)]
struct XY<B: Backend> {
    x: Tensor<B, 2>,
    y: Tensor<B, 1, Int>,
}

/// The batches of one epoch, made once (the candle loops get theirs the same way).
fn batches<B: Backend>(batch: usize, device: &B::Device) -> Vec<XY<B>> {
    // A small linear congruential generator: any fixed values do, only the shapes matter.
    let mut state = 1u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let xs: Vec<f32> = (0..EXAMPLES * 64)
        .map(|_| (next() % 1000) as f32 / 1000.0)
        .collect();
    let ys: Vec<i64> = (0..EXAMPLES).map(|_| (next() % 10) as i64).collect();
    (0..EXAMPLES / batch)
        .map(|b| XY {
            x: Tensor::from_data(
                TensorData::new(
                    xs[b * batch * 64..(b + 1) * batch * 64].to_vec(),
                    [batch, 64],
                ),
                device,
            ),
            y: Tensor::from_data(
                TensorData::new(ys[b * batch..(b + 1) * batch].to_vec(), [batch]),
                device,
            ),
        })
        .collect()
}

fn plain(data: &[XY<Train>], steps: usize) {
    let device = Default::default();
    let mut model = Mlp::<Train>::new(&device);
    let mut optim = SgdConfig::new().init();
    for batch in data.iter().cycle().take(steps) {
        let loss = model.classify(batch.clone()).loss;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(LR, model, grads);
    }
    std::hint::black_box(model);
}

impl<B: AutodiffBackend> TrainStep<XY<B>, ClassificationOutput<B>> for Mlp<B> {
    fn step(&self, batch: XY<B>) -> TrainOutput<ClassificationOutput<B>> {
        let item = self.classify(batch);
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl<B: Backend> ValidStep<XY<B>, ClassificationOutput<B>> for Mlp<B> {
    fn step(&self, batch: XY<B>) -> ClassificationOutput<B> {
        self.classify(batch)
    }
}

/// Hands out the pre-made batches one at a time (the loaders use batch size 1).
#[derive(Clone)]
struct PreMade;

impl<B: Backend> Batcher<B, XY<B>, XY<B>> for PreMade {
    fn batch(&self, mut items: Vec<XY<B>>, _device: &B::Device) -> XY<B> {
        items
            .pop()
            .expect("the loader hands out one pre-made batch at a time")
    }
}

fn learner(data: &[XY<Train>], steps: usize, dir: &std::path::Path) {
    let device = Default::default();
    let epochs = (steps / data.len()).max(1);
    let train = DataLoaderBuilder::new(PreMade)
        .batch_size(1)
        .build(InMemDataset::new(data.to_vec()));
    // No validation data: the Flammable and candle variants validate nothing either.
    let valid = DataLoaderBuilder::new(PreMade)
        .batch_size(1)
        .build(InMemDataset::<XY<NdArray>>::new(Vec::new()));
    let learner = LearnerBuilder::new(dir)
        .metric_train_numeric(LossMetric::new())
        .with_file_checkpointer(CompactRecorder::new())
        .learning_strategy(LearningStrategy::SingleDevice(device))
        .num_epochs(epochs)
        .build(
            Mlp::<Train>::new(&Default::default()),
            SgdConfig::new().init(),
            LR,
        );
    std::hint::black_box(learner.fit(train, valid));
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let usage = "usage: flammable-bench-burn --variant plain|learner --batch N --steps N --dir D";
    let (Some(variant), Some(batch), Some(steps)) = (
        arg("--variant"),
        arg("--batch").and_then(|b| b.parse::<usize>().ok()),
        arg("--steps").and_then(|s| s.parse::<usize>().ok()),
    ) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let dir = std::path::PathBuf::from(arg("--dir").unwrap_or_else(|| ".".into()));
    <Train as Backend>::seed(&Default::default(), 0);
    let data = batches::<Train>(batch, &Default::default());
    let run = |steps: usize, dir: &std::path::Path| match variant.as_str() {
        "plain" => plain(&data, steps),
        "learner" => learner(&data, steps, dir),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    run(data.len().min(steps), &dir.join("warm-up")); // first-call allocations
    let start = Instant::now();
    run(steps, &dir.join("timed"));
    println!("{:.6}", start.elapsed().as_secs_f64());
}
