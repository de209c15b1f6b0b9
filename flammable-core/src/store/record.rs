//! The record of a run: what ran, how, and how it ended, written as RON in the run's folder.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version of the record format this build writes.
pub const RECORD_VERSION: u32 = 1;

/// What an invocation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// `train`: fits the model, writes checkpoints.
    Train,
    /// `test`: measures a trained run on the test data.
    Test,
    /// `eval`: one input through a trained run's model.
    Eval,
    /// `serve`: a trained run's model over HTTP.
    Serve,
}

/// A train run that stopped before its last epoch: after how many epochs, at which step, why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoppedEarly {
    /// Epochs trained.
    pub epochs: u64,
    /// Iterations done.
    pub step: u64,
    /// Why, in a sentence.
    pub reason: String,
}

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Still going (or its process died without closing it).
    Running,
    /// Ended normally.
    Finished,
    /// Ended with an error.
    Failed,
    /// Stopped by a signal.
    Interrupted,
    /// Its process died without closing it (found by readers: nobody holds the run's lock).
    Crashed,
}

impl std::fmt::Display for RunKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunKind::Train => "train",
            RunKind::Test => "test",
            RunKind::Eval => "eval",
            RunKind::Serve => "serve",
        })
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunStatus::Running => "running",
            RunStatus::Finished => "finished",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Crashed => "crashed",
        })
    }
}

impl RunKind {
    /// Every kind, in the order the documentation lists them.
    pub const ALL: [RunKind; 4] = [RunKind::Train, RunKind::Test, RunKind::Eval, RunKind::Serve];
}

impl RunStatus {
    /// Every status, in the order the documentation lists them.
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Running,
        RunStatus::Finished,
        RunStatus::Failed,
        RunStatus::Interrupted,
        RunStatus::Crashed,
    ];
}

/// Parses a name as [`Display`](std::fmt::Display) writes it; the error lists the names.
fn parse_named<T: Copy + std::fmt::Display>(s: &str, all: &[T]) -> Result<T, String> {
    all.iter()
        .copied()
        .find(|v| v.to_string() == s)
        .ok_or_else(|| {
            let names: Vec<String> = all.iter().map(T::to_string).collect();
            format!("`{s}` is not one of {}", names.join(", "))
        })
}

impl std::str::FromStr for RunKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_named(s, &RunKind::ALL)
    }
}

impl std::str::FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_named(s, &RunStatus::ALL)
    }
}

/// The results of a test run, kept on the record of the run it tested.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// The test run's id.
    pub run: String,
    /// Its reduced metrics.
    pub metrics: BTreeMap<String, f64>,
    /// The checkpoint it tested (absent in records written before it was kept).
    #[serde(default)]
    pub checkpoint: Option<String>,
    /// The step of the set it tested (`latest` of a run still training moves on: two tests
    /// of it are told apart by this); absent where it was not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u64>,
}

/// One input of a model: its shape (without the batch dimension) and dtype (`f32`, `u32`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSpec {
    /// The shape of one sample.
    pub shape: Vec<usize>,
    /// Its dtype, as candle names it.
    pub dtype: String,
}

/// Facts about the process that made the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// The compute device, e.g. `cpu` or `cuda:0`.
    pub device: String,
    /// Threads candle's CPU backend uses.
    pub threads: usize,
    /// The host name.
    pub host: String,
    /// The version of flammable.
    pub flammable: String,
    /// `debug` or `release`.
    pub profile: String,
}

impl Record {
    /// The processes it trained on (`mpiexec -n N`): 1 unless it was spread over several.
    pub fn processes(&self) -> usize {
        self.distributed.as_ref().map_or(1, |d| d.world_size)
    }

    /// Its final metrics and, as `test/<name>`, those of its last test.
    pub fn all_metrics(&self) -> BTreeMap<String, f64> {
        let mut m = self.metrics.clone();
        if let Some(t) = self.tests.last() {
            m.extend(t.metrics.iter().map(|(k, v)| (format!("test/{k}"), *v)));
        }
        m
    }

    /// A new record of a running `kind` run of `experiment`, started now; the store assigns
    /// its id.
    pub fn new(experiment: &str, kind: RunKind, seed: u64) -> Self {
        Record {
            version: RECORD_VERSION,
            id: String::new(),
            experiment: experiment.to_string(),
            kind,
            status: RunStatus::Running,
            parent: None,
            message: None,
            argv: Vec::new(),
            seed,
            pid: std::process::id(),
            // The host its pid belongs to.
            environment: Environment {
                host: crate::util::host::name(),
                ..Environment::default()
            },
            started: crate::store::now_rfc3339(),
            ended: None,
            metrics: BTreeMap::new(),
            tests: Vec::new(),
            error: None,
            snapshot: None,
            build: Build::default(),
            rerun_of: None,
            resumed_with: Vec::new(),
            stopped_early: None,
            sweep: None,
            checkpoint: None,
            checkpoint_step: None,
            split_seed: None,
            input: None,
            sweep_trial: None,
            distributed: None,
            origin: None,
            tags: Vec::new(),
            note: None,
            edits: Vec::new(),
        }
    }
}

/// The Git snapshot of the code a run ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// The snapshot commit (`refs/flammable/runs/<id>` points at it).
    pub commit: String,
    /// `HEAD` when the run started (the snapshot's parent).
    pub parent: Option<String>,
    /// True when the working tree differed from `HEAD`.
    pub dirty: bool,
    /// The repository's `.git` folder.
    pub git_dir: std::path::PathBuf,
    /// The working tree's root.
    pub workdir: std::path::PathBuf,
    /// Files left out for their size (path, bytes).
    pub skipped: Vec<(String, u64)>,
}

/// Where a task's binary comes from, captured at compile time by `#[flammable::task]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuildTarget {
    /// `CARGO_PKG_NAME`.
    pub package: &'static str,
    /// `CARGO_CRATE_NAME`: the binary or example.
    pub name: &'static str,
    /// `CARGO_MANIFEST_DIR`.
    pub manifest_dir: &'static str,
}

/// How the binary that made the run was built.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Build {
    /// `rustc --version` of the compiler.
    pub rustc: String,
    /// The target triple.
    pub target: String,
    /// The Cargo profile: `dev`, `release` or a custom one.
    pub profile: String,
    /// Enabled features of flammable (`cuda`, `metal`, `mkl`, `accelerate`).
    pub features: Vec<String>,
    /// The Cargo package of the task.
    pub package: String,
    /// The binary or example name.
    pub name: String,
    /// `bin` or `example`.
    pub kind: String,
    /// The package's folder when it was built.
    pub manifest_dir: std::path::PathBuf,
    /// Source files newer than the binary when the run started: the binary may not be the
    /// code in the snapshot.
    pub stale_sources: Vec<String>,
}

/// Everything recorded about one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Format version (see [`RECORD_VERSION`]).
    pub version: u32,
    /// The run's id: time-sortable and unique.
    pub id: String,
    /// The experiment: the binary or example that ran.
    pub experiment: String,
    /// train, test or eval.
    pub kind: RunKind,
    /// Where it stands.
    pub status: RunStatus,
    /// The run this one tested or evaluated.
    pub parent: Option<String>,
    /// `-m/--message`.
    pub message: Option<String>,
    /// The command line.
    pub argv: Vec<String>,
    /// The seed every random draw derives from.
    pub seed: u64,
    /// Where and how it ran.
    pub environment: Environment,
    /// The process that made the run.
    #[serde(default)]
    pub pid: u32,
    /// Start time, RFC 3339.
    pub started: String,
    /// End time, RFC 3339.
    pub ended: Option<String>,
    /// Final metrics (training losses at the end, or test results).
    pub metrics: BTreeMap<String, f64>,
    /// Results of test runs of this run.
    pub tests: Vec<TestResult>,
    /// Why it failed.
    pub error: Option<String>,
    /// The code it ran.
    #[serde(default)]
    pub snapshot: Option<SnapshotRecord>,
    /// How its binary was built.
    #[serde(default)]
    pub build: Build,
    /// The run this one re-ran.
    #[serde(default)]
    pub rerun_of: Option<String>,
    /// The sweep (`train --sweep`) this run is one of.
    #[serde(default)]
    pub sweep: Option<String>,
    /// Which combination of its sweep this run trains (from 0, in the sweep's order): how
    /// the sweep finds the run it started.
    #[serde(default)]
    pub sweep_trial: Option<usize>,
    /// Why and when training stopped before its last epoch (`--early-stop`, or a hook).
    #[serde(default)]
    pub stopped_early: Option<StoppedEarly>,
    /// Snapshots of changed code this run was resumed with (`train --resume`).
    #[serde(default)]
    pub resumed_with: Vec<SnapshotRecord>,
    /// The checkpoint of the parent run that a test, eval or serve run used (`best`,
    /// `latest`, `step-0000000046`).
    #[serde(default)]
    pub checkpoint: Option<String>,
    /// The step of the set `checkpoint` named when the run loaded it (an alias, `latest` or
    /// `best`, names another set as its train run goes on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_step: Option<u64>,
    /// What one input of the model looked like in training (its shape without the batch
    /// dimension, and its dtype): what `serve` checks requests against and warms up with,
    /// without the run's data.
    #[serde(default)]
    pub input: Option<InputSpec>,
    /// The seed that drew the run's data split, when the task took it from
    /// `env.split_seed()`: runs with different ones were validated on different rows.
    #[serde(default)]
    pub split_seed: Option<u64>,
    /// For a train run of several processes (`mpiexec -n N … train`): how it was spread.
    #[serde(default)]
    pub distributed: Option<Distributed>,
    /// For a run pulled from a remote (`flammable pull`): where it came from.
    #[serde(default)]
    pub origin: Option<Origin>,
    /// Labels given to the run after the fact (`edit --tag`, the browser): sorted, each once.
    #[serde(default)]
    pub tags: Vec<String>,
    /// A note written about the run after the fact (`edit --note`, the browser).
    #[serde(default)]
    pub note: Option<String>,
    /// Every change of the message, note and tags made after the run started, oldest first.
    #[serde(default)]
    pub edits: Vec<Edit>,
}

/// What an [`Edit`] changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EditedField {
    /// The message (`-m`).
    Message,
    /// The note.
    Note,
    /// The tags.
    Tags,
}

impl std::fmt::Display for EditedField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EditedField::Message => "message",
            EditedField::Note => "note",
            EditedField::Tags => "tags",
        })
    }
}

/// One change of a run's message, note or tags: when, by whom, and the value before and
/// after (tags as one line, separated by spaces; `None`: none).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Edit {
    /// When, RFC 3339.
    pub at: String,
    /// Who: `user@host`, and how (`edit`, `browser`).
    pub by: String,
    /// What changed.
    pub field: EditedField,
    /// The value before.
    #[serde(default)]
    pub from: Option<String>,
    /// The value after.
    #[serde(default)]
    pub to: Option<String>,
}

/// Where a pulled run came from: the remote, and who pushed it from where.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    /// The remote it was pulled from (`s3://bucket/prefix`, a folder).
    pub remote: String,
    /// Who pushed it (`user@host`).
    pub pushed_by: String,
    /// The host it was pushed from.
    pub host: String,
    /// The store it was pushed from, on that host.
    pub store: String,
    /// When it was pushed, RFC 3339.
    pub pushed_at: String,
    /// When it was pulled here, RFC 3339.
    pub pulled_at: String,
    /// Files the remote holds that the pull did not take (checkpoint sets not chosen): `pull
    /// --checkpoints all` brings them.
    #[serde(default)]
    pub not_pulled: Vec<String>,
    /// Files of the run its push left on the pushing host (checkpoint sets not chosen there).
    #[serde(default)]
    pub not_pushed: Vec<String>,
    /// The SHA-256 of the record as pulled (without what differs between machines): a later
    /// pull tells whether the run changed here (tested), there (pushed again), or both.
    #[serde(default)]
    pub record_sha256: String,
}

/// How a train run was spread over processes: rank 0 is the run, every rank trains on its
/// share of each batch, and the gradients are averaged over the ranks at every step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Distributed {
    /// The transport of the collectives: `mpi`, or `mpi, shared memory` when the ranks, all
    /// on one machine, summed the gradients through an MPI shared window.
    pub backend: String,
    /// The number of processes (ranks).
    pub world_size: usize,
    /// `--batch-size`: the examples of one rank's share of a step.
    pub rank_batch: usize,
    /// The examples of one step over all ranks: world size × the rank batch.
    pub global_batch: usize,
    /// The host of each rank, by rank.
    pub hosts: Vec<String>,
    /// Seconds rank 0 spent in the gradients' all-reduce, and how many it made (one per
    /// optimizer step): with the run's duration, the communication's share of a step.
    #[serde(default)]
    pub allreduce_seconds: f64,
    /// See `allreduce_seconds`.
    #[serde(default)]
    pub allreduces: u64,
}
