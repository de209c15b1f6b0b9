//! Exports: how many metric points a second `flammable export mlflow`, `export tensorboard`
//! and `export parquet` write, against the tools' own Python writers logging the same points
//! — MLflow's client (`log_batch`, 1000 points a call) into the same `mlflow server` (SQLite,
//! loopback), and TensorBoard's `EventFileWriter` (what PyTorch's `SummaryWriter` writes
//! through).
//!
//! Our exports are timed whole (start-up, reading the store, every request), as a user waits
//! for them; the peers only while they log (their start-up and the reading of the points are
//! left out, as a training script has its values in memory). Each repetition writes into new
//! experiments and folders, the two MLflow writers taking turns at going first.
//!
//! `cargo run --release -p flammable-bench --bin export_speed [-- --smoke]`

use flammable::store::{Record, RunKind, RunStatus, Store};
use flammable_bench::{
    flammable_in, free_port, git, peer_script, peer_seconds, python, report, table, time_command,
    Samples,
};
use flammable_core::store::metrics::{MetricWriter, Point};
use flammable_core::store::record::SnapshotRecord;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The series each run writes.
const SERIES: [&str; 4] = ["loss", "lr", "val/loss", "val/accuracy"];

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let (runs, steps, reps) = if smoke { (2, 100, 1) } else { (10, 5000, 3) };
    let dir = tempfile::tempdir().expect("temp dir");
    let project = dir.path().join("project");
    let points_json = dir.path().join("runs.json");
    make_project(&project, runs, steps, &points_json);
    let points = runs * steps * SERIES.len();
    let mut out = format!(
        "{runs} runs of {} series × {steps} steps: {points} points. Our exports timed whole, as a \
         user waits for them; the peers only while they log. Medians of {reps}.\n\n",
        SERIES.len()
    );
    let python = python();
    let server = python.as_deref().and_then(|p| Mlflow::start(p, dir.path()));
    if server.is_none() {
        eprintln!("warning: no `mlflow` in the benchmarks' Python: the MLflow rows are not run");
    }
    let mut ours_mlflow = Samples::default();
    let mut theirs_mlflow = Samples::default();
    let mut ours_tb = Samples::default();
    let mut theirs_tb = Samples::default();
    let mut ours_parquet = Samples::default();
    for rep in 0..reps {
        if let (Some(server), Some(python)) = (&server, &python) {
            let ours = |samples: &mut Samples| {
                let prefix = format!("ours-{rep}-");
                samples.0.push(time_command(flammable_in(
                    &project,
                    &[
                        "export",
                        "mlflow",
                        &server.uri,
                        "--experiment-prefix",
                        &prefix,
                    ],
                )));
            };
            let theirs = |samples: &mut Samples| {
                let mut cmd = Command::new(python);
                cmd.arg(peer_script("export_peers.py")).args([
                    "mlflow",
                    &server.uri,
                    &format!("peer-{rep}"),
                    points_json.to_str().expect("a UTF-8 path"),
                ]);
                if let Some(d) = peer_seconds(&mut cmd) {
                    samples.0.push(d);
                }
            };
            if rep % 2 == 0 {
                ours(&mut ours_mlflow);
                theirs(&mut theirs_mlflow);
            } else {
                theirs(&mut theirs_mlflow);
                ours(&mut ours_mlflow);
            }
        }
        let tb = dir.path().join(format!("tb-{rep}"));
        ours_tb.0.push(time_command(flammable_in(
            &project,
            &["export", "tensorboard", tb.to_str().expect("a UTF-8 path")],
        )));
        if let Some(python) = &python {
            let mut cmd = Command::new(python);
            cmd.arg(peer_script("export_peers.py")).args([
                "tensorboard",
                dir.path()
                    .join(format!("torch-tb-{rep}"))
                    .to_str()
                    .expect("a UTF-8 path"),
                points_json.to_str().expect("a UTF-8 path"),
            ]);
            if let Some(d) = peer_seconds(&mut cmd) {
                theirs_tb.0.push(d);
            }
        }
        let tables = dir.path().join(format!("parquet-{rep}"));
        ours_parquet.0.push(time_command(flammable_in(
            &project,
            &["export", "parquet", tables.to_str().expect("a UTF-8 path")],
        )));
    }
    let rate = |s: &Samples| {
        if s.0.is_empty() {
            "not run".to_string()
        } else {
            format!("{:.0} points/s", points as f64 / s.median().as_secs_f64())
        }
    };
    for (title, rows) in [
        (
            "To MLflow (mlflow server, SQLite)",
            vec![
                ("flammable export mlflow".to_string(), ours_mlflow),
                (
                    "MLflow's Python client (log_batch)".to_string(),
                    theirs_mlflow,
                ),
            ],
        ),
        (
            "For TensorBoard",
            vec![
                ("flammable export tensorboard".to_string(), ours_tb),
                (
                    "TensorBoard's EventFileWriter (Python)".to_string(),
                    theirs_tb,
                ),
            ],
        ),
        (
            "As Parquet",
            vec![("flammable export parquet".to_string(), ours_parquet)],
        ),
    ] {
        out.push_str(&table(title, &rows));
        for (name, samples) in &rows {
            out.push_str(&format!("\n- {name}: {}", rate(samples)));
        }
        out.push_str("\n\n");
    }
    report("export_speed", &out, smoke);
}

/// A Git repository with `runs` finished train runs, each `steps` points of every series,
/// and the same points as the peers read them in `points_json`.
fn make_project(dir: &Path, runs: usize, steps: usize, points_json: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    flammable_bench::git_project(dir, "the model");
    let head = git(dir, None, &["rev-parse", "HEAD"]);
    let store = Store::at(dir.join("store"));
    let mut peers = Vec::new();
    let start = 1_780_000_000.0;
    for i in 0..runs {
        let mut r = Record::new("bench", RunKind::Train, i as u64);
        r.status = RunStatus::Finished;
        r.snapshot = Some(SnapshotRecord {
            commit: head.clone(),
            parent: Some(head.clone()),
            dirty: false,
            git_dir: dir.join(".git"),
            workdir: dir.to_path_buf(),
            skipped: Vec::new(),
        });
        let r = store.create(r).expect("create");
        let run = store.run_dir(&r.id);
        let lr = format!("0.00{}", i + 1);
        std::fs::write(
            run.join("hyperparameters.ron"),
            format!("(train: (lr: {lr}, epochs: 10), task: (hidden: 128))\n"),
        )
        .expect("write");
        let mut points = Vec::with_capacity(steps * SERIES.len());
        for step in 0..steps {
            for (k, name) in SERIES.iter().enumerate() {
                points.push(Point {
                    name: (*name).into(),
                    step: step as u64,
                    epoch: (step / 500) as u64,
                    value: 1.0 / (step + k + 1) as f64,
                    time: start + i as f64 * 100.0 + step as f64 * 0.01,
                });
            }
        }
        let mut w = MetricWriter::new(run.join("metrics.bin"));
        w.write(&points);
        drop(w);
        peers.push(serde_json::json!({
            "id": r.id,
            "params": {"lr": lr, "epochs": "10", "hidden": "128"},
            "points": points
                .iter()
                .map(|p| serde_json::json!([&*p.name, p.step, p.value, p.time]))
                .collect::<Vec<_>>(),
        }));
    }
    std::fs::write(
        points_json,
        serde_json::to_vec(&peers).expect("the points as JSON"),
    )
    .expect("write");
}

/// `mlflow server` on SQLite on a loopback port, its processes killed as a group when dropped.
struct Mlflow {
    child: Child,
    uri: String,
}

impl Mlflow {
    fn start(python: &Path, dir: &Path) -> Option<Mlflow> {
        let has = Command::new(python)
            .args(["-c", "import mlflow.server"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has {
            return None;
        }
        let port = free_port();
        let db: PathBuf = dir.join("mlflow.db");
        let child = Command::new(python)
            .args([
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--workers",
                "1",
            ])
            .args(["--port", &port.to_string()])
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", db.display()))
            .arg("--artifacts-destination")
            .arg(dir.join("mlartifacts"))
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .ok()?;
        let server = Mlflow {
            child,
            uri: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("warning: mlflow server did not start");
        None
    }
}

impl Drop for Mlflow {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // The server and the processes it started (uvicorn, its job runner): its group.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
        let _ = self.child.wait();
    }
}
