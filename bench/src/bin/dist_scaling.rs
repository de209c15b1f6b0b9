//! Data-parallel training's scaling: the digits example's `train` on one process and on two
//! (`mpiexec -n 1` and `-n 2`, one thread each), against PyTorch's DistributedDataParallel on
//! the gloo backend (`torchrun --nproc_per_node 1` and `2`, `bench/peers/torch_ddp.py`: the same
//! network, data, split, optimizer and batch sizes, one thread each), for the digits network
//! (hidden width 128, the example's default) and a wide one (4,096), where computing the
//! gradients outweighs the cost of a step's fixed work and of its all-reduce.
//!
//! Two ranks of batch B are measured against one process of batch 2B (the same global batch,
//! so the same steps and updates: strong scaling, the speed-up of a given training) and
//! against one process of batch B (weak scaling: each process keeps its batch, the global
//! batch doubles). Two ranks of Flammable also run with MPI's own all-reduce instead of the
//! ranks' shared memory (`FLAMMABLE_COLLECTIVE_SHM=off`), over MPICH's shared-memory transport
//! and held to TCP over loopback (`UCX_TLS=tcp`), as gloo always communicates. Two
//! separate trainings at once (batch B each, no communication) measure what two processes
//! can do on this machine at all: the ceiling of the weak scaling.
//!
//! Throughput is examples per second between the end of the first epoch (a warm-up) and the
//! end of the last: for Flammable, from the times of the run's `epoch/…` points (rank 0
//! writes them, after each epoch's steps); the peer times the same span on rank 0. The
//! all-reduce's share of a step is its mean time over the mean step: from the record's
//! `distributed.allreduce_seconds` (rank 0's time in the gradients' all-reduce) and, for the
//! peer, a timer around DDP's all-reduce hook. Variants interleave round by round after a
//! warm-up round; the tables give medians.
//!
//! `cargo run --release -p flammable-bench --bin dist_scaling [-- --smoke]` (after building
//! the examples with the feature `mpi`; `bench/run` does both)

use flammable_bench::{digits_example, git_project, peer_script, python, report};
use flammable_core::store::followers::read_run_series;
use flammable_core::store::metrics::read_all_series;
use flammable_core::store::record::RunKind;
use flammable_core::store::Store;
use flammable_core::Dataset as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A network and the work of one measurement.
struct Net {
    name: &'static str,
    hidden: usize,
    /// Each rank's batch (B): one process runs B and 2B.
    batch: usize,
    /// Epochs per run, the first untimed.
    epochs: usize,
}

/// Who trains.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framework {
    Flammable,
    /// Flammable with MPI's own all-reduce instead of the ranks' shared memory
    /// (`FLAMMABLE_COLLECTIVE_SHM=off`).
    FlammableMpiReduce,
    /// Flammable with MPI's own all-reduce, held to TCP (`UCX_TLS=tcp`).
    FlammableTcp,
    Torch,
    /// Two separate processes of Flammable at once, each a training of its own (no
    /// communication): the most two processes can do on this machine.
    Separate,
}

/// One configuration of a network: who trains, on how many processes, with what batch each.
#[derive(Clone, Copy)]
struct Variant {
    framework: Framework,
    ranks: usize,
    batch: usize,
}

impl Variant {
    fn name(&self) -> String {
        let who = match self.framework {
            Framework::Flammable => "Flammable (MPI)",
            Framework::FlammableMpiReduce => "Flammable (MPI's all-reduce)",
            Framework::FlammableTcp => "Flammable (MPI's all-reduce over TCP)",
            Framework::Torch => "PyTorch DDP (gloo)",
            Framework::Separate => "two separate trainings at once (no communication)",
        };
        if self.framework == Framework::Separate {
            return who.to_string();
        }
        let process = if self.ranks == 1 {
            "process"
        } else {
            "processes"
        };
        format!("{who}, {} {process}", self.ranks)
    }
}

/// One measured run.
#[derive(Clone, Copy, Debug)]
struct Measure {
    examples_per_s: f64,
    /// The mean all-reduce over the mean step (`None` on one process).
    allreduce_share: Option<f64>,
}

/// The examples of one epoch of `n` over `ranks` processes of `batch` each: a last step with
/// fewer examples than processes is left out (the digits example's Batcher and the peer agree).
fn examples_per_epoch(n: usize, batch: usize, ranks: usize) -> usize {
    let last = n % (batch * ranks);
    if last > 0 && last < ranks {
        n - last
    } else {
        n
    }
}

/// The folder the runs are recorded in: a Git project of its own, so the runs never snapshot
/// this repository.
struct Project {
    dir: tempfile::TempDir,
    runs: usize,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        git_project(dir.path(), "dist_scaling");
        Project { dir, runs: 0 }
    }

    fn store(&self) -> Store {
        Store::at(self.dir.path().join("store"))
    }

    /// `digits train` of `net` as `v` (Flammable's), measured from its run; `None` (with the
    /// reason on stderr) when it fails.
    fn flammable(&mut self, net: &Net, v: Variant, train_examples: usize) -> Option<Measure> {
        let (mut c, tag) = self.train_command(net, v);
        succeeded(&v.name(), bounded(&mut c))?;
        self.measured(&tag, v, train_examples)
    }

    /// Two separate trainings of `net` at once (one process of `v.batch` each), their
    /// throughputs added up.
    fn separate(&mut self, net: &Net, v: Variant, train_examples: usize) -> Option<Measure> {
        let one = Variant { ranks: 1, ..v };
        let (mut a, tag_a) = self.train_command(net, one);
        let (mut b, tag_b) = self.train_command(net, one);
        let other = b.stdout(Stdio::null()).stderr(Stdio::null()).spawn().ok()?;
        let first = bounded(&mut a);
        let second = other.wait_with_output();
        succeeded(&v.name(), first)?;
        second.ok().filter(|o| o.status.success())?;
        let x = self.measured(&tag_a, one, train_examples)?;
        let y = self.measured(&tag_b, one, train_examples)?;
        Some(Measure {
            examples_per_s: x.examples_per_s + y.examples_per_s,
            allreduce_share: None,
        })
    }

    /// The command of one `digits train` of `net` as `v`, and the message that finds its run.
    fn train_command(&mut self, net: &Net, v: Variant) -> (Command, String) {
        self.runs += 1;
        let tag = format!("dist-scaling-{}", self.runs);
        let mut c = Command::new("mpiexec");
        c.args(["-n", &v.ranks.to_string()]);
        if matches!(
            v.framework,
            Framework::FlammableMpiReduce | Framework::FlammableTcp
        ) {
            c.args(["-genv", "FLAMMABLE_COLLECTIVE_SHM", "off"]);
        }
        if v.framework == Framework::FlammableTcp {
            c.args(["-genv", "UCX_TLS", "tcp"]);
        }
        c.arg(digits_example())
            .args(["train", "-q", "--threads", "1", "--seed", "1", "-m", &tag])
            .args(["--epochs", &net.epochs.to_string()])
            .args(["--batch-size", &v.batch.to_string()])
            .args(["--hidden", &net.hidden.to_string()])
            .current_dir(self.dir.path())
            .env("FLAMMABLE_STORE", self.dir.path().join("store"))
            .env("FLAMMABLE_CODE_DIR", self.dir.path())
            .env_remove("RAYON_NUM_THREADS");
        (c, tag)
    }

    /// The throughput of the run whose message is `tag`, from its epochs' times.
    fn measured(&self, tag: &str, v: Variant, train_examples: usize) -> Option<Measure> {
        let store = self.store();
        let record = store
            .records()
            .ok()?
            .into_iter()
            .find(|r| r.kind == RunKind::Train && r.message.as_deref() == Some(tag))?;
        let run_dir = store.run_dir(&record.id);
        // The epoch means (`epoch/loss`), one point per epoch, written as each epoch ends.
        let epoch_metric = read_all_series(&store.metrics_path(&record.id))
            .ok()?
            .into_iter()
            .map(|(name, _)| name)
            .find(|name| name.starts_with("epoch/"))?;
        let series = read_run_series(&run_dir, &epoch_metric).ok()?;
        let (first, last) = (0, series.times.len().checked_sub(1)?);
        let seconds = series.times[last] - series.times[first];
        let steps = series.steps[last].saturating_sub(series.steps[first]);
        if last == 0 || seconds <= 0.0 || steps == 0 {
            eprintln!("warning: {}: too few epochs to time", v.name());
            return None;
        }
        let examples = examples_per_epoch(train_examples, v.batch, v.ranks) * last;
        let step_seconds = seconds / steps as f64;
        let allreduce_share = record
            .distributed
            .filter(|d| d.allreduces > 0)
            .map(|d| d.allreduce_seconds / d.allreduces as f64 / step_seconds);
        Some(Measure {
            examples_per_s: examples as f64 / seconds,
            allreduce_share,
        })
    }
}

/// The PyTorch peer's run of `net` as `v`, under `torchrun` of the peers' Python.
fn torch(python: &Path, net: &Net, v: Variant) -> Option<Measure> {
    let mut c = Command::new(python);
    c.args(["-m", "torch.distributed.run", "--standalone"])
        .args(["--nproc_per_node", &v.ranks.to_string()])
        .arg(peer_script("torch_ddp.py"))
        .args(["--hidden", &net.hidden.to_string()])
        .args(["--batch", &v.batch.to_string()])
        .args(["--epochs", &net.epochs.to_string()])
        .env("OMP_NUM_THREADS", "1")
        .env("MKL_NUM_THREADS", "1");
    let stdout = succeeded(&v.name(), bounded(&mut c))?;
    let line = stdout.lines().rfind(|l| l.starts_with('{'))?;
    let printed: serde_json::Value = serde_json::from_str(line).ok()?;
    let number = |key: &str| printed.get(key).and_then(serde_json::Value::as_f64);
    let (seconds, examples, steps) = (number("seconds")?, number("examples")?, number("steps")?);
    let allreduces = number("allreduces").filter(|n| *n > 0.0);
    let allreduce_share = allreduces
        .filter(|_| v.ranks > 1)
        .and_then(|n| Some(number("allreduce_seconds")? / n / (seconds / steps)));
    Some(Measure {
        examples_per_s: examples / seconds,
        allreduce_share,
    })
}

/// Longest a run may take: a hung job (a rank that never leaves `MPI_Finalize`) is killed,
/// with every process it started, and counted as failed.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// Runs `command` to its end, at most [`RUN_LIMIT`]; its output, or an error past the limit.
fn bounded(command: &mut Command) -> std::io::Result<Output> {
    use std::os::unix::process::CommandExt;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let read = |from: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut from) = from {
                let _ = from.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = read(child.stdout.take().map(|s| Box::new(s) as _));
    let stderr = read(child.stderr.take().map(|s| Box::new(s) as _));
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if status.is_none() {
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", child.id())])
            .status();
    }
    let status = match status {
        Some(status) => status,
        None => child.wait()?,
    };
    let (stdout, stderr) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    if !status.success() && Instant::now() >= deadline {
        return Err(std::io::Error::other(format!(
            "killed after {} s: {}",
            RUN_LIMIT.as_secs(),
            String::from_utf8_lossy(&stderr).trim()
        )));
    }
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// The standard output of a command that succeeded; `None`, with a warning naming `what`
/// and the end of its error output, when it did not.
fn succeeded(what: &str, out: std::io::Result<Output>) -> Option<String> {
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            eprintln!("warning: {what}: cannot start: {e}");
            return None;
        }
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(12).collect();
        eprintln!(
            "warning: {what} failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        );
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The measurements of each variant, median-ready.
struct Results {
    variants: Vec<Variant>,
    measures: Vec<Vec<Measure>>,
    /// Runs of each variant (a failed one leaves no measure).
    reps: usize,
}

impl Results {
    fn median(&self, i: usize) -> Option<Measure> {
        let m = &self.measures[i];
        if m.is_empty() {
            return None;
        }
        let mut rates: Vec<f64> = m.iter().map(|m| m.examples_per_s).collect();
        let mut shares: Vec<f64> = m.iter().filter_map(|m| m.allreduce_share).collect();
        Some(Measure {
            examples_per_s: median(&mut rates)?,
            allreduce_share: median(&mut shares),
        })
    }

    fn find(&self, framework: Framework, ranks: usize, batch: usize) -> Option<Measure> {
        let i = self
            .variants
            .iter()
            .position(|v| v.framework == framework && v.ranks == ranks && v.batch == batch)?;
        self.median(i)
    }
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[values.len() / 2])
}

/// Runs every variant of `net` once (a warm-up, unless `smoke`), then `reps` rounds of them
/// all in turn.
fn measure(
    project: &mut Project,
    python: Option<&Path>,
    net: &Net,
    reps: usize,
    smoke: bool,
    train_examples: usize,
) -> Results {
    let b = net.batch;
    let mut variants = Vec::new();
    let mut frameworks = vec![Framework::Flammable];
    if !smoke {
        frameworks.push(Framework::FlammableMpiReduce);
        frameworks.push(Framework::FlammableTcp);
    }
    if python.is_some() {
        frameworks.push(Framework::Torch);
    }
    for framework in frameworks {
        if !matches!(
            framework,
            Framework::FlammableMpiReduce | Framework::FlammableTcp
        ) {
            variants.push(Variant {
                framework,
                ranks: 1,
                batch: 2 * b,
            });
            variants.push(Variant {
                framework,
                ranks: 1,
                batch: b,
            });
        }
        variants.push(Variant {
            framework,
            ranks: 2,
            batch: b,
        });
    }
    if !smoke {
        variants.push(Variant {
            framework: Framework::Separate,
            ranks: 2,
            batch: b,
        });
    }
    let mut run = |v: Variant| match (v.framework, python) {
        (Framework::Torch, Some(p)) => torch(p, net, v),
        (Framework::Torch, None) => None,
        (Framework::Separate, _) => project.separate(net, v, train_examples),
        _ => project.flammable(net, v, train_examples),
    };
    let mut measures = vec![Vec::new(); variants.len()];
    if !smoke {
        for v in &variants {
            run(*v);
        }
    }
    for _ in 0..reps {
        for (i, v) in variants.iter().enumerate() {
            match run(*v) {
                Some(m) => measures[i].push(m),
                // In smoke mode (CI) a failing run of Flammable fails the benchmark; otherwise
                // it is reported as missing from the medians (the warning says why).
                None if smoke && v.framework != Framework::Torch => {
                    eprintln!("dist_scaling: {} of {} failed", v.name(), net.name);
                    std::process::exit(1);
                }
                None => {}
            }
        }
    }
    Results {
        variants,
        measures,
        reps,
    }
}

fn percent(share: Option<f64>) -> String {
    share.map_or("–".into(), |s| format!("{:.1}%", s * 100.0))
}

fn ratio(a: Option<Measure>, b: Option<Measure>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}x", a.examples_per_s / b.examples_per_s),
        _ => "–".into(),
    }
}

/// The table of one network: every variant's throughput and all-reduce share.
fn table(net: &Net, results: &Results) -> String {
    let params = net.hidden * 64 + net.hidden + net.hidden * 10 + 10;
    let mut out = format!(
        "### {} network (64→{}→10, {params} parameters: {:.0} KB of gradients a step), {} epochs (the first untimed)\n\n\
         | variant | batch per process | global batch | examples/s (median) | min–max | all-reduce share of a step |\n\
         | --- | --- | --- | --- | --- | --- |\n",
        net.name,
        net.hidden,
        params as f64 * 4.0 / 1e3,
        net.epochs,
    );
    for (i, v) in results.variants.iter().enumerate() {
        let m = &results.measures[i];
        let Some(med) = results.median(i) else {
            out.push_str(&format!(
                "| {} | {} | {} | not run | | |\n",
                v.name(),
                v.batch,
                v.batch * v.ranks
            ));
            continue;
        };
        let lo = m.iter().map(|m| m.examples_per_s).fold(f64::MAX, f64::min);
        let hi = m.iter().map(|m| m.examples_per_s).fold(0.0, f64::max);
        let failed = if m.len() < results.reps {
            format!(
                " ({} of {} runs failed)",
                results.reps - m.len(),
                results.reps
            )
        } else {
            String::new()
        };
        out.push_str(&format!(
            "| {} | {} | {} | {:.0}{failed} | {lo:.0}–{hi:.0} | {} |\n",
            v.name(),
            v.batch,
            v.batch * v.ranks,
            med.examples_per_s,
            percent(med.allreduce_share)
        ));
    }
    out
}

/// The scaling ratios of every network and framework.
fn summary(nets: &[(&Net, Results)]) -> String {
    let mut out = String::from(
        "### Scaling: two processes' throughput over one process's\n\n\
         | network | framework | strong: 2 × B over 1 × 2B | weak: 2 × B over 1 × B | all-reduce share at 2 × B |\n\
         | --- | --- | --- | --- | --- |\n",
    );
    for (net, r) in nets {
        let b = net.batch;
        let rows = [
            (
                "Flammable (MPI)",
                Framework::Flammable,
                Framework::Flammable,
            ),
            (
                "Flammable (MPI's all-reduce)",
                Framework::FlammableMpiReduce,
                Framework::Flammable,
            ),
            (
                "Flammable (MPI's all-reduce over TCP)",
                Framework::FlammableTcp,
                Framework::Flammable,
            ),
            ("PyTorch DDP (gloo)", Framework::Torch, Framework::Torch),
            (
                "two separate trainings (the machine's most)",
                Framework::Separate,
                Framework::Flammable,
            ),
        ];
        for (name, two, one) in rows {
            let Some(pair) = r.find(two, 2, b) else {
                continue;
            };
            out.push_str(&format!(
                "| {} (B = {b}) | {name} | {} | {} | {} |\n",
                net.name,
                ratio(Some(pair), r.find(one, 1, 2 * b)),
                ratio(Some(pair), r.find(one, 1, b)),
                percent(pair.allreduce_share)
            ));
        }
    }
    out
}

/// The load of the machine (its 1-minute load average): the measurements share its cores.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// `mpiexec`'s first line of version, for the results' head.
fn mpi_version() -> Option<String> {
    let out = Command::new("mpiexec")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .lines()
        .find(|l| l.trim_start().starts_with("Version:"))?
        .split(':')
        .nth(1)?
        .trim()
        .to_string();
    Some(format!("MPICH {version}"))
}

fn torch_version(python: &Path) -> Option<String> {
    let out = Command::new(python)
        .args(["-c", "import torch; print(torch.__version__)"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| format!("PyTorch {}", String::from_utf8_lossy(&out.stdout).trim()))
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    if !digits_example().exists() {
        eprintln!(
            "dist_scaling: {} is missing: build the examples with the feature mpi first (bench/run does)",
            digits_example().display()
        );
        std::process::exit(1);
    }
    let Some(mpi) = mpi_version() else {
        eprintln!("dist_scaling: no mpiexec: install MPICH (apt-get install mpich libmpich-dev)");
        std::process::exit(1);
    };
    let python: Option<PathBuf> = if smoke { None } else { python() };
    if python.is_none() && !smoke {
        eprintln!("note: the PyTorch peer not run: bench/run creates its virtualenv (or set FLAMMABLE_BENCH_PYTHON)");
    }
    let nets: Vec<Net> = if smoke {
        vec![Net {
            name: "smoke",
            hidden: 16,
            batch: 8,
            epochs: 2,
        }]
    } else {
        vec![
            Net {
                name: "digits",
                hidden: 128,
                batch: 64,
                epochs: 100,
            },
            Net {
                name: "wide",
                hidden: 4096,
                batch: 64,
                epochs: 16,
            },
        ]
    };
    let reps = if smoke { 1 } else { 5 };
    let train_examples = flammable_examples::load_split()
        .expect("the digits data")
        .0
        .len();
    let load_before = load();
    let mut project = Project::new();
    let results: Vec<(&Net, Results)> = nets
        .iter()
        .map(|net| {
            eprintln!("dist_scaling: {} network", net.name);
            let r = measure(
                &mut project,
                python.as_deref(),
                net,
                reps,
                smoke,
                train_examples,
            );
            (net, r)
        })
        .collect();
    let mut out = format!(
        "- {mpi}{}; one thread per process; load average (1 min) {load_before} before, {} after\n\n",
        python
            .as_deref()
            .and_then(torch_version)
            .map_or(String::new(), |v| format!(", {v}")),
        load()
    );
    for (net, r) in &results {
        out.push_str(&table(net, r));
        out.push('\n');
    }
    out.push_str(&summary(&results));
    report("dist_scaling", &out, smoke);
}
