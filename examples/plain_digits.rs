//! The digits task written by hand with candle and clap, without Flammable: the baseline of
//! the rebuild benchmark (`bench/src/bin/build_cost.rs`). It does what `digits` does for a
//! user — train (AdamW, shuffled batches, dropout), save the weights, test, evaluate one
//! image — and nothing of the run record.
//!
//! cargo run --release --example plain_digits -- train
//! cargo run --release --example plain_digits -- test
//! cargo run --release --example plain_digits -- eval examples/data/seven.png

use clap::{Parser, Subcommand};
use flammable::candle_core::{DType, Device, Tensor, D};
use flammable::candle_nn::{self, Module, Optimizer, VarBuilder, VarMap};
use flammable_examples::{load_split, read_digit, PIXELS};
use std::path::PathBuf;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Where the weights are saved and loaded.
    #[arg(long, default_value = "plain_digits.safetensors")]
    weights: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Train and save the weights.
    Train {
        #[arg(long, default_value_t = 20)]
        epochs: usize,
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
        #[arg(long, default_value_t = 3e-3)]
        lr: f64,
        #[arg(long, default_value_t = 128)]
        hidden: usize,
        #[arg(long, default_value_t = 0.1)]
        dropout: f32,
        /// Seed of the shuffled order (candle cannot seed its CPU generator: the initial
        /// weights and dropout masks are not reproducible here).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Accuracy of the saved weights on the test split.
    Test {
        #[arg(long, default_value_t = 128)]
        hidden: usize,
    },
    /// Classify one 8x8 image (.png) or row of 64 values (.csv).
    Eval {
        input: PathBuf,
        #[arg(long, default_value_t = 128)]
        hidden: usize,
    },
}

struct Mlp {
    hidden: candle_nn::Linear,
    out: candle_nn::Linear,
    dropout: candle_nn::Dropout,
}

impl Mlp {
    fn new(vb: VarBuilder, hidden: usize, dropout: f32) -> candle_core::Result<Self> {
        Ok(Mlp {
            hidden: candle_nn::linear(PIXELS, hidden, vb.pp("hidden"))?,
            out: candle_nn::linear(hidden, 10, vb.pp("out"))?,
            dropout: candle_nn::Dropout::new(dropout),
        })
    }

    fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let h = self.hidden.forward(x)?.relu()?;
        let h = self.dropout.forward(&h, train)?;
        self.out.forward(&h)
    }
}

use flammable::candle_core;

fn accuracy(logits: &Tensor, labels: &Tensor) -> candle_core::Result<f32> {
    logits
        .argmax(D::Minus1)?
        .eq(labels)?
        .to_dtype(DType::F32)?
        .mean_all()?
        .to_scalar()
}

/// A permutation of 0..n from a small linear congruential generator.
fn shuffled(n: usize, seed: u64) -> Vec<u32> {
    let mut state = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut order: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        order.swap(i, (state >> 33) as usize % (i + 1));
    }
    order
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::Cpu;
    let (train, test) = load_split()?;
    match cli.command {
        Command::Train {
            epochs,
            batch_size,
            lr,
            hidden,
            dropout,
            seed,
        } => {
            let varmap = VarMap::new();
            let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
            let model = Mlp::new(vb, hidden, dropout)?;
            let mut opt = candle_nn::AdamW::new(
                varmap.all_vars(),
                candle_nn::ParamsAdamW {
                    lr,
                    ..Default::default()
                },
            )?;
            let n = train.inputs().dim(0)?;
            for epoch in 0..epochs {
                let order = shuffled(n, seed + epoch as u64);
                let mut sum = Tensor::zeros((), DType::F32, &device)?;
                let mut batches = 0;
                for chunk in order.chunks(batch_size) {
                    let idx = Tensor::new(chunk, &device)?;
                    let x = train.inputs().index_select(&idx, 0)?;
                    let y = train.targets().index_select(&idx, 0)?;
                    let loss = candle_nn::loss::cross_entropy(&model.forward(&x, true)?, &y)?;
                    opt.backward_step(&loss)?;
                    sum = (sum + loss.detach())?;
                    batches += 1;
                }
                let mean = sum.to_scalar::<f32>()? / batches as f32;
                println!("epoch {}/{epochs} loss {mean:.4}", epoch + 1);
            }
            varmap.save(&cli.weights)?;
        }
        Command::Test { hidden } => {
            let model = load(&cli.weights, hidden, &device)?;
            let logits = model.forward(test.inputs(), false)?;
            println!("accuracy {:.4}", accuracy(&logits, test.targets())?);
        }
        Command::Eval { input, hidden } => {
            let model = load(&cli.weights, hidden, &device)?;
            let x = read_digit(&input)?.unsqueeze(0)?;
            let probabilities = candle_nn::ops::softmax(&model.forward(&x, false)?, D::Minus1)?
                .squeeze(0)?
                .to_vec1::<f32>()?;
            let (class, p) = probabilities
                .iter()
                .enumerate()
                .fold((0, f32::MIN), |b, (i, &p)| if p > b.1 { (i, p) } else { b });
            println!("class {class} probability {p:.4}");
        }
    }
    Ok(())
}

fn load(path: &std::path::Path, hidden: usize, device: &Device) -> candle_core::Result<Mlp> {
    let mut varmap = VarMap::new();
    let model = Mlp::new(
        VarBuilder::from_varmap(&varmap, DType::F32, device),
        hidden,
        0.0,
    )?;
    varmap.load(path)?;
    Ok(model)
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
