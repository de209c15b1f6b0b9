//! The training loop's cost: the same MLP (64→256→256→10), data, initial weights and SGD,
//! trained by a plain hand-written candle loop and by Flammable's loop as a user gets it
//! (`train` through the task's CLI: the code snapshotted, a run in a store, losses recorded,
//! a checkpoint each epoch, progress printed), at batch 8, 64 and 512, on one CPU thread.
//! Every variant runs in a process of its own; variants interleave; steps/s are medians of
//! the repetitions.
//!
//! `cargo run --release -p flammable-bench --bin train_loop [-- --smoke]`

use flammable::candle_core::{DType, Device, Tensor};
use flammable::candle_nn::{self, Module, Optimizer as _};
use flammable::prelude::{Batch, Batches, Env, Result};
use flammable::Vars;
use flammable_bench::{git, interleave_timed, peer_script, peer_seconds, Samples, TimedVariant};
use std::cell::RefCell;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const EXAMPLES: usize = 4096;

fn data(batch: usize) -> Vec<(Tensor, Tensor)> {
    let xs: Vec<f32> = (0..EXAMPLES * 64)
        .map(|i| ((flammable::rng::derive_seed(1, "x", i as u64) % 1000) as f32) / 1000.0)
        .collect();
    let ys: Vec<u32> = (0..EXAMPLES)
        .map(|i| (flammable::rng::derive_seed(1, "y", i as u64) % 10) as u32)
        .collect();
    let x = Tensor::from_vec(xs, (EXAMPLES, 64), &Device::Cpu).expect("x");
    let y = Tensor::from_vec(ys, EXAMPLES, &Device::Cpu).expect("y");
    (0..EXAMPLES / batch)
        .map(|b| {
            (
                x.narrow(0, b * batch, batch).expect("x"),
                y.narrow(0, b * batch, batch).expect("y"),
            )
        })
        .collect()
}

struct Mlp {
    l1: candle_nn::Linear,
    l2: candle_nn::Linear,
    l3: candle_nn::Linear,
}

impl Mlp {
    fn new(vars: &Vars) -> Mlp {
        let vb = vars.builder();
        Mlp {
            l1: candle_nn::linear(64, 256, vb.pp("l1")).expect("l1"),
            l2: candle_nn::linear(256, 256, vb.pp("l2")).expect("l2"),
            l3: candle_nn::linear(256, 10, vb.pp("l3")).expect("l3"),
        }
    }

    fn forward(&self, x: &Tensor) -> flammable::candle_core::Result<Tensor> {
        let h = self.l1.forward(x)?.relu()?;
        let h = self.l2.forward(&h)?.relu()?;
        self.l3.forward(&h)
    }
}

/// The hand-written loop: forward, loss, backward, step; optionally a read-back per step.
fn plain(batches: &[(Tensor, Tensor)], epochs: usize, read_each_step: bool) -> Tensor {
    let vars = Vars::new(0, Device::Cpu, DType::F32);
    let mlp = Mlp::new(&vars);
    let mut sgd = candle_nn::SGD::new(vars.all_vars(), 0.01).expect("sgd");
    let mut last = Tensor::zeros((), DType::F32, &Device::Cpu).expect("zero");
    for _ in 0..epochs {
        for (x, y) in batches {
            let logits = mlp.forward(x).expect("forward");
            let loss = candle_nn::loss::cross_entropy(&logits, y).expect("loss");
            sgd.backward_step(&loss).expect("step");
            if read_each_step {
                std::hint::black_box(loss.to_scalar::<f32>().expect("read"));
            }
            last = loss;
        }
    }
    last
}

thread_local! {
    /// The batches the Flammable task trains on (a user's task would load them in `#[init]`).
    static BATCHES: RefCell<Vec<Batch>> = const { RefCell::new(Vec::new()) };
}

/// The same model as a Flammable task.
struct Bench {
    mlp: Mlp,
    batches: Vec<Batch>,
}

#[flammable::task(no_main, optimizer = flammable::OptimizerKind::Sgd, momentum = 0.0, weight_decay = 0.0, lr = 0.01)]
impl Bench {
    #[init]
    fn new(env: &Env) -> Result<Self> {
        Ok(Bench {
            mlp: Mlp::new(env.vars()),
            batches: BATCHES.with(|b| b.borrow().clone()),
        })
    }

    #[data(train)]
    fn train_data(&self) -> Result<Batches> {
        Ok(Batches::from_vec(self.batches.clone()))
    }

    #[forward]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.mlp.forward(x)?)
    }

    #[loss]
    fn loss(&self, logits: &Tensor, y: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::loss::cross_entropy(logits, y)?)
    }
}

/// `train` of the Flammable task through its CLI, as `cargo run -- train` runs it, in the
/// current folder (the project whose code is snapshotted).
fn flammable_loop(store: &Path, batches: &[(Tensor, Tensor)], epochs: usize) {
    BATCHES.with(|b| {
        *b.borrow_mut() = batches
            .iter()
            .map(|(x, y)| Batch::new(x.clone(), y.clone()))
            .collect()
    });
    let argv: Vec<OsString> = [
        "bench",
        "--seed",
        "0",
        "train",
        "--epochs",
        &epochs.to_string(),
    ]
    .iter()
    .map(OsString::from)
    .chain(["--store".into(), store.as_os_str().to_owned()])
    .collect();
    let code = flammable_core::cli::run::<Bench>(argv).expect("train");
    assert_eq!(code, std::process::ExitCode::SUCCESS, "train failed");
}

/// A small project in a fresh Git repository, as a user's would be: this benchmark's source
/// and manifest, committed, with one uncommitted change.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let git = |args: &[&str]| drop(git(dir.path(), None, args));
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).expect("project");
    std::fs::write(src.join("main.rs"), include_str!("train_loop.rs")).expect("project");
    std::fs::write(
        dir.path().join("Cargo.toml"),
        include_str!("../../Cargo.toml"),
    )
    .expect("project");
    std::fs::write(dir.path().join(".gitignore"), "/target\n").expect("project");
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "project"]);
    std::fs::write(
        src.join("main.rs"),
        include_str!("train_loop.rs").replace("fn ", "fn  "),
    )
    .expect("project");
    dir
}

fn steps_per_s(s: &Samples, steps: usize) -> Option<f64> {
    (!s.0.is_empty()).then(|| steps as f64 / s.median().as_secs_f64().max(1e-9))
}

/// The peers in other processes, where they are installed: burn's binary (built by
/// `bench/run`) and the Python virtualenv (created by `bench/run`).
struct Peers {
    burn: Option<PathBuf>,
    python: Option<PathBuf>,
    dir: tempfile::TempDir,
}

impl Peers {
    fn find() -> Peers {
        let burn = std::env::var_os("FLAMMABLE_BENCH_BURN")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                flammable_bench::bench_dir().join("peers/burn/target/release/flammable-bench-burn")
            });
        let peers = Peers {
            burn: burn.exists().then_some(burn),
            python: flammable_bench::python(),
            dir: tempfile::tempdir().expect("temp dir"),
        };
        if peers.burn.is_none() {
            eprintln!(
                "note: burn peers not run: build them with bench/run (or set FLAMMABLE_BENCH_BURN)"
            );
        }
        if peers.python.is_none() {
            eprintln!("note: PyTorch peers not run: bench/run creates their virtualenv (or set FLAMMABLE_BENCH_PYTHON)");
        }
        peers
    }

    /// The seconds `variant` of burn's peer took for `steps` steps at `batch`.
    fn burn(&self, variant: &str, batch: usize, steps: usize) -> Option<Duration> {
        let dir = tempfile::tempdir_in(self.dir.path()).ok()?;
        peer_seconds(
            Command::new(self.burn.as_ref()?)
                .args(["--variant", variant, "--batch", &batch.to_string()])
                .args(["--steps", &steps.to_string()])
                .arg("--dir")
                .arg(dir.path()),
        )
    }

    /// The seconds `variant` of the PyTorch peer took for `steps` steps at `batch`.
    fn torch(&self, variant: &str, batch: usize, steps: usize) -> Option<Duration> {
        let dir = tempfile::tempdir_in(self.dir.path()).ok()?;
        peer_seconds(
            Command::new(self.python.as_ref()?)
                .arg(peer_script("torch_loop.py"))
                .args(["--variant", variant, "--batch", &batch.to_string()])
                .args(["--steps", &steps.to_string()])
                .arg("--root")
                .arg(dir.path())
                .current_dir(dir.path())
                .env("OMP_NUM_THREADS", "1")
                .env("MKL_NUM_THREADS", "1"),
        )
    }
}

fn rate(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{r:.0}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:.3}x", a / b),
        _ => "–".into(),
    }
}

/// The work of one batch size: its batches, epochs and steps. About the same work at every
/// batch size: 4,096 steps (8 epochs) at batch 8, 1–2 s on this machine's cores.
struct Work {
    batch: usize,
    epochs: usize,
    steps: usize,
}

impl Work {
    fn new(batch: usize, smoke: bool) -> Work {
        let per_epoch = EXAMPLES / batch;
        let epochs = if smoke {
            1
        } else {
            (32_768 / batch / per_epoch).max(1)
        };
        Work {
            batch,
            epochs,
            steps: per_epoch * epochs,
        }
    }
}

/// The candle and Flammable variants, each run in a fresh process of this program (as a
/// user's training is): what the process does before training (building the data) is not
/// timed; the whole training is, with no warm-up inside the process.
struct Variants {
    store: PathBuf,
    project: tempfile::TempDir,
}

impl Variants {
    /// The seconds `variant` (`plain`, `plain-read`, `plain-tuned`, `flammable`) took for
    /// `epochs` epochs at `batch`. `plain-tuned` is the plain loop with glibc's allocator set
    /// through `GLIBC_TUNABLES` as Flammable's `train` sets it.
    fn run(&self, variant: &str, batch: usize, epochs: usize) -> Option<Duration> {
        let exe = std::env::current_exe().ok()?;
        let mut command = Command::new(exe);
        let variant = if variant == "plain-tuned" {
            command.env(
                "GLIBC_TUNABLES",
                format!(
                    "glibc.malloc.mmap_threshold={}:glibc.malloc.trim_threshold={}",
                    flammable_core::util::allocator::MMAP_THRESHOLD,
                    flammable_core::util::allocator::TRIM_THRESHOLD
                ),
            );
            "plain"
        } else {
            variant
        };
        peer_seconds(
            command
                .args(["--child", variant, "--batch", &batch.to_string()])
                .args(["--epochs", &epochs.to_string()])
                .arg("--store")
                .arg(&self.store)
                .current_dir(self.project.path())
                .env("FLAMMABLE_CODE_DIR", self.project.path()),
        )
    }
}

impl Variants {
    /// `variant` at the size of `w`, named `label`, for [`interleave_timed`].
    fn entry<'a>(
        &'a self,
        label: &'a str,
        variant: &'a str,
        w: &'a Work,
    ) -> (&'a str, TimedVariant<'a>) {
        (
            label,
            Box::new(move || self.run(variant, w.batch, w.epochs)),
        )
    }
}

/// Appends the table of one batch size's `results` (median, min–max, ratio) to `details`.
fn push_details(details: &mut String, title: String, results: &[(String, Samples)]) {
    details.push_str(&flammable_bench::table(&title, results));
    details.push('\n');
}

/// A variant in this process (`--child VARIANT --batch B --epochs E --store DIR`): prints the
/// seconds its training took as its last line.
fn child(args: &[String]) {
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| panic!("{name} is required"))
    };
    let number = |name: &str| arg(name).parse::<usize>().expect("a number");
    let (variant, batch, epochs) = (arg("--child"), number("--batch"), number("--epochs"));
    let batches = data(batch);
    let t = Instant::now();
    match variant.as_str() {
        "plain" => drop(std::hint::black_box(plain(&batches, epochs, false))),
        "plain-read" => drop(std::hint::black_box(plain(&batches, epochs, true))),
        "flammable" => flammable_loop(Path::new(&arg("--store")), &batches, epochs),
        other => panic!("unknown variant {other}"),
    }
    println!("{}", t.elapsed().as_secs_f64());
}

/// Flammable against the plain candle loops, alone (no other process between them): the
/// table of the target, with each round's ratio.
fn against_candle(works: &[Work], v: &Variants, reps: usize, details: &mut String) -> String {
    let mut out = format!(
        "### Flammable against the plain candle loop, steps/s (median of {reps} rounds, 1 CPU thread)\n\n\
         | batch | plain candle | plain + to_scalar each step | plain, allocator tuned | Flammable | Flammable / plain | Flammable / plain, per round: median (min–max) | Flammable / plain with the allocator tuned, per round |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n"
    );
    for w in works {
        let results = interleave_timed(
            reps,
            &mut [
                v.entry("plain candle", "plain", w),
                v.entry("plain + to_scalar each step", "plain-read", w),
                v.entry("plain, allocator tuned", "plain-tuned", w),
                v.entry("Flammable", "flammable", w),
            ],
        );
        let r: Vec<Option<f64>> = results
            .iter()
            .map(|(_, s)| steps_per_s(s, w.steps))
            .collect();
        // Time of plain / time of Flammable in the same round: Flammable's relative speed.
        let per_round = |base: usize| {
            round_ratios(&results[base].1, &results[3].1).map_or("–".into(), |(med, lo, hi)| {
                format!("{med:.3}x ({lo:.3}–{hi:.3})")
            })
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            w.batch,
            rate(r[0]),
            rate(r[1]),
            rate(r[2]),
            rate(r[3]),
            ratio(r[3], r[0]),
            per_round(0),
            per_round(2),
        ));
        push_details(
            details,
            format!(
                "Batch {}: {} steps ({} epochs), time of each variant",
                w.batch, w.steps, w.epochs
            ),
            &results,
        );
    }
    out
}

/// `base`'s time over `other`'s, round by round: median, min and max.
fn round_ratios(base: &Samples, other: &Samples) -> Option<(f64, f64, f64)> {
    let mut r: Vec<f64> = base
        .0
        .iter()
        .zip(&other.0)
        .map(|(b, o)| b.as_secs_f64() / o.as_secs_f64().max(1e-9))
        .collect();
    r.sort_by(f64::total_cmp);
    Some((*r.get(r.len() / 2)?, *r.first()?, *r.last()?))
}

/// Every framework's plain loop beside its training framework, each in its own process,
/// interleaved in the same rounds.
fn with_peers(
    works: &[Work],
    v: &Variants,
    reps: usize,
    peers: &Peers,
    details: &mut String,
) -> String {
    let mut out = format!(
        "### With the peers, steps/s (median of {reps} rounds, 1 CPU thread)\n\n\
         | batch | plain candle | Flammable | Flammable / plain | plain burn | burn Learner | Learner / plain burn | PyTorch eager | Lightning | Lightning / eager |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
    );
    for w in works {
        let (batch, steps) = (w.batch, w.steps);
        let results = interleave_timed(
            reps,
            &mut [
                v.entry("plain candle", "plain", w),
                v.entry("Flammable", "flammable", w),
                ("burn", Box::new(|| peers.burn("plain", batch, steps))),
                (
                    "burn learner",
                    Box::new(|| peers.burn("learner", batch, steps)),
                ),
                ("torch", Box::new(|| peers.torch("eager", batch, steps))),
                (
                    "lightning",
                    Box::new(|| peers.torch("lightning", batch, steps)),
                ),
            ],
        );
        let r: Vec<Option<f64>> = results.iter().map(|(_, s)| steps_per_s(s, steps)).collect();
        out.push_str(&format!(
            "| {batch} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            rate(r[0]),
            rate(r[1]),
            ratio(r[1], r[0]),
            rate(r[2]),
            rate(r[3]),
            ratio(r[3], r[2]),
            rate(r[4]),
            rate(r[5]),
            ratio(r[5], r[4]),
        ));
        push_details(
            details,
            format!("Batch {batch} with the peers: {steps} steps, time of each variant"),
            &results,
        );
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--child") {
        return child(&args);
    }
    let smoke = args.iter().any(|a| a == "--smoke");
    // One thread, as Flammable's default policy (set before candle starts its pool); the
    // peers inherit the same limits.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    std::env::set_var("CANDLE_NUM_THREADS", "1");
    std::env::set_var("MATMUL_NUM_THREADS", "1");
    let (reps, peer_reps) = if smoke { (1, 1) } else { (21, 5) };
    let dir = tempfile::tempdir().expect("temp dir");
    let variants = Variants {
        store: dir.path().join("store"),
        project: project(),
    };
    let peers = Peers::find();
    let works: Vec<Work> = [8, 64, 512].iter().map(|&b| Work::new(b, smoke)).collect();

    let mut details = String::new();
    let mut out = against_candle(&works, &variants, reps, &mut details);
    // What a run costs besides its steps: `train --epochs 0` snapshots the code, writes the
    // record and hyperparameters and finishes the run, and trains nothing.
    let fixed = interleave_timed(
        reps,
        &mut [(
            "train --epochs 0",
            Box::new(|| variants.run("flammable", 64, 0)),
        )],
    );
    out.push_str(&format!(
        "\nEach candle and Flammable variant runs in a fresh process, as a user's training does, \
         and times its whole training with no warm-up inside the process (building the data \
         is not timed). Flammable's variant is `train` through the task's CLI in a small Git \
         project (its code snapshotted with one uncommitted file), with a checkpoint each \
         epoch (written beside the loop). Every variant allocates through mimalloc, which \
         `flammable`'s default feature `mimalloc` makes the global allocator of this benchmark \
         as of a task binary; `plain, allocator tuned` sets glibc's thresholds as `train` sets \
         them for a binary built without it, which changes nothing under mimalloc. Its \
         time includes what a run costs besides its steps: `train --epochs 0` (snapshot, \
         record, hyperparameters, finish) takes {:.1} ms (median of {reps}).\n\n",
        fixed[0].1.median().as_secs_f64() * 1e3
    ));
    out.push_str(&with_peers(
        &works,
        &variants,
        peer_reps,
        &peers,
        &mut details,
    ));
    out.push_str(&format!(
        "\nThe same MLP, batch shapes, step counts and SGD (lr 0.01) everywhere; every framework \
         times its own loop in its own process after a warm-up. burn {}: ndarray backend; its \
         Learner with the loss metric, a file checkpointer and its default loggers. PyTorch {}: \
         eager loop; Lightning's Trainer with its default logger, progress bar and \
         checkpointing.\n\n",
        BURN_VERSION, TORCH_VERSIONS
    ));
    out.push_str(&details);
    flammable_bench::report("train_loop", &out, smoke);
}

/// The peers' versions, as pinned in `bench/peers/`.
const BURN_VERSION: &str = "0.19";
const TORCH_VERSIONS: &str = "2.15 with Lightning 2.6";
