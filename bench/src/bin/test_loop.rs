//! The test loop's cost with pooled metrics, and the confusion matrix's counting.
//!
//! 1. The digits test set (360 examples, 10 classes) through the same MLP (64→128→10) in
//!    batches of 64: a hand-written candle loop that counts the hits on the device and reads
//!    them back once (the baseline), against Flammable's `test_on` with pooled accuracy,
//!    top-5 accuracy, macro F1 and the confusion matrix (one read-back too).
//! 2. Confusion matrices of 360 examples in batches of 64, counted by hand two ways: one
//!    scatter-add per batch into `classes²` integer cells (what `confusion` does), against
//!    the comparison of every example with every cell (batch × classes² values per batch,
//!    what it did before), at 10, 100 and 1,000 classes (10 and 100 with `--smoke`).
//!
//! `cargo run --release -p flammable-bench --bin test_loop [-- --smoke]`

use flammable::candle_core::{DType, Device, Tensor, D};
use flammable::candle_nn::{self, Module};
use flammable::prelude::{Batch, Batches, Env, Result, Task};
use flammable::{NoHyperparameters, Vars};
use flammable_bench::{interleave, report, table};

const BATCH: usize = 64;

/// The digits network, untrained (the cost does not depend on the weights).
struct Digits {
    hidden: candle_nn::Linear,
    out: candle_nn::Linear,
}

impl Digits {
    fn new(vars: &Vars) -> Digits {
        let vb = vars.builder();
        Digits {
            hidden: candle_nn::linear(64, 128, vb.pp("hidden")).expect("hidden"),
            out: candle_nn::linear(128, 10, vb.pp("out")).expect("out"),
        }
    }

    fn forward(&self, x: &Tensor) -> flammable::candle_core::Result<Tensor> {
        self.out.forward(&self.hidden.forward(x)?.relu()?)
    }
}

/// The same network as a task with the pooled metrics.
struct Scored {
    net: Digits,
}

#[flammable::task(no_main)]
impl Scored {
    #[init]
    fn new(env: &Env) -> Result<Self> {
        Ok(Scored {
            net: Digits::new(env.vars()),
        })
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batches> {
        Ok(Batches::from_vec(Vec::new()))
    }

    #[forward]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.net.forward(x)?)
    }

    #[loss]
    fn loss(&self, logits: &Tensor, y: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::loss::cross_entropy(logits, y)?)
    }

    #[metric(accuracy)]
    fn accuracy(&self, logits: &Tensor, _y: &Tensor) -> Result<Tensor> {
        Ok(logits.clone())
    }

    #[metric(top5_accuracy)]
    fn top5(&self, logits: &Tensor, _y: &Tensor) -> Result<Tensor> {
        Ok(logits.clone())
    }

    #[metric(f1_macro)]
    fn f1(&self, logits: &Tensor, _y: &Tensor) -> Result<Tensor> {
        Ok(logits.clone())
    }

    #[metric(confusion)]
    fn confusion(&self, logits: &Tensor, _y: &Tensor) -> Result<Tensor> {
        Ok(logits.clone())
    }
}

/// The digits test set in batches of [`BATCH`].
fn digits_batches() -> Vec<Batch> {
    let (_, test) = flammable_examples::load_split().expect("the digits data");
    let n = test.inputs().dim(0).expect("examples");
    (0..n.div_ceil(BATCH))
        .map(|b| {
            let len = BATCH.min(n - b * BATCH);
            Batch::new(
                test.inputs().narrow(0, b * BATCH, len).expect("x"),
                test.targets().narrow(0, b * BATCH, len).expect("y"),
            )
        })
        .collect()
}

/// The hand-written loop: hits counted on the device, one read-back.
fn candle_loop(net: &Digits, batches: &[Batch]) -> f64 {
    let mut hits = Tensor::zeros((), DType::F32, &Device::Cpu).expect("zero");
    for b in batches {
        let logits = net.forward(&b.input).expect("forward");
        let right = logits
            .argmax(D::Minus1)
            .and_then(|p| p.eq(&b.target))
            .and_then(|r| r.to_dtype(DType::F32))
            .and_then(|r| r.sum_all())
            .expect("hits");
        hits = (hits + right).expect("sum");
    }
    f64::from(hits.to_scalar::<f32>().expect("read back"))
}

/// 360 examples of `classes` scores (a fixed pattern) and labels, in batches of [`BATCH`].
fn scored(classes: usize) -> Vec<(Tensor, Tensor)> {
    let n = 360;
    let seed = |i: usize| flammable::rng::derive_seed(3, "scores", i as u64);
    let scores: Vec<f32> = (0..n * classes).map(|i| (seed(i) % 1000) as f32).collect();
    let labels: Vec<u32> = (0..n)
        .map(|i| (seed(i + n * classes) % classes as u64) as u32)
        .collect();
    let s = Tensor::from_vec(scores, (n, classes), &Device::Cpu).expect("scores");
    let l = Tensor::from_vec(labels, n, &Device::Cpu).expect("labels");
    (0..n.div_ceil(BATCH))
        .map(|b| {
            let len = BATCH.min(n - b * BATCH);
            (
                s.narrow(0, b * BATCH, len).expect("s"),
                l.narrow(0, b * BATCH, len).expect("l"),
            )
        })
        .collect()
}

/// The matrix counted by one scatter-add per batch into `classes²` i64 cells.
fn scatter_counts(batches: &[(Tensor, Tensor)], classes: usize) -> Vec<i64> {
    let cells = classes * classes;
    let mut sum = Tensor::zeros(cells, DType::I64, &Device::Cpu).expect("cells");
    for (scores, labels) in batches {
        let predicted = scores.argmax(D::Minus1).expect("argmax");
        let index = ((labels * classes as f64).expect("row") + predicted).expect("cell");
        let ones = Tensor::ones(index.dim(0).expect("n"), DType::I64, &Device::Cpu).expect("1");
        let counts = Tensor::zeros(cells, DType::I64, &Device::Cpu)
            .and_then(|z| z.index_add(&index, &ones, 0))
            .expect("scatter");
        sum = (sum + counts).expect("sum");
    }
    sum.to_vec1().expect("read back")
}

/// The matrix counted by comparing every example's cell with every cell, in f32.
fn broadcast_counts(batches: &[(Tensor, Tensor)], classes: usize) -> Vec<i64> {
    let cells = (classes * classes) as u32;
    let mut sum = Tensor::zeros(cells as usize, DType::F32, &Device::Cpu).expect("cells");
    let all = Tensor::arange(0u32, cells, &Device::Cpu)
        .and_then(|a| a.to_dtype(DType::F32))
        .expect("all");
    for (scores, labels) in batches {
        let predicted = scores.argmax(D::Minus1).expect("argmax");
        let index = (labels.to_dtype(DType::F32).expect("f32") * classes as f64)
            .and_then(|r| r + predicted.to_dtype(DType::F32)?)
            .expect("cell");
        let counts = index
            .unsqueeze(1)
            .and_then(|i| i.broadcast_eq(&all.unsqueeze(0)?))
            .and_then(|m| m.to_dtype(DType::F32))
            .and_then(|m| m.sum(0))
            .expect("compare");
        sum = (sum + counts).expect("sum");
    }
    let counts: Vec<f32> = sum.to_vec1().expect("read back");
    counts.into_iter().map(|c| c as i64).collect()
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let reps = if smoke { 1 } else { 15 };
    let mut text = String::new();

    let batches = digits_batches();
    let vars = Vars::new(0, Device::Cpu, DType::F32);
    let net = Digits::new(&vars);
    let env = Env::new(Device::Cpu, 0);
    let task = <Scored as Task>::new(&NoHyperparameters {}, &env).expect("task");
    let mut hits = 0.0;
    let mut results = flammable::Results::new();
    let timings = interleave(
        reps,
        &mut [
            ("candle loop: accuracy, one read-back", &mut || {
                hits = candle_loop(&net, &batches);
            }),
            (
                "Flammable test_on: accuracy, top-5, macro F1, confusion (pooled)",
                &mut || {
                    results = task
                        .test_on(&mut Batches::from_vec(batches.clone()), &env)
                        .expect("test");
                },
            ),
        ],
    );
    assert!(hits >= 0.0 && results.contains_key("confusion"));
    text.push_str(&table(
        "The digits test set (360 examples, batches of 64) through the digits MLP",
        &timings,
    ));

    let sizes: &[usize] = if smoke { &[10, 100] } else { &[10, 100, 1000] };
    for &classes in sizes {
        let data = scored(classes);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let reps = if classes >= 1000 { reps.min(5) } else { reps };
        let timings = interleave(
            reps,
            &mut [
                ("scatter-add into classes² i64 cells", &mut || {
                    a = scatter_counts(&data, classes);
                }),
                (
                    "every example against every cell (batch × classes²)",
                    &mut || {
                        b = broadcast_counts(&data, classes);
                    },
                ),
            ],
        );
        assert_eq!(a, b, "the two countings differ at {classes} classes");
        text.push('\n');
        text.push_str(&table(
            &format!("A confusion matrix of {classes} classes, 360 examples in batches of 64"),
            &timings,
        ));
    }
    report("test_loop", &text, smoke);
}
