//! How the run store scales: listing 10,000 runs, and reading back a 1,000,000-point metric
//! series, each against a plain baseline doing the least the same answer needs.
//!
//! `cargo run --release -p flammable-bench --bin store_scale [-- --smoke]`

use flammable::store::Store;
use flammable::store::{Record, RunKind, RunStatus};
use flammable_bench::{interleave, interleave_timed, peer_script, peer_seconds, table};
use flammable_core::store::metrics::{read_metrics, read_series, MetricWriter, Point};
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let (runs, points, reps) = if smoke {
        (50, 10_000, 2)
    } else {
        (10_000, 1_000_000, 5)
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut out = String::new();

    let store = Store::at(dir.path().join("store"));
    for i in 0..runs {
        let mut r = Record::new("bench", RunKind::Train, i as u64);
        r.status = RunStatus::Finished;
        r.metrics.insert("loss".into(), 0.5);
        r.argv = vec![
            "bench".into(),
            "train".into(),
            "--epochs".into(),
            "10".into(),
        ];
        store.create(r).expect("create");
    }
    let mut listed = 0;
    let mut count_files = 0;
    let runs_dir = dir.path().join("store/runs");
    let results = interleave(
        reps,
        &mut [
            ("read every record.ron (bytes only)", &mut || {
                count_files = std::fs::read_dir(&runs_dir)
                    .expect("list")
                    .flatten()
                    .filter_map(|e| std::fs::read(e.path().join("record.ron")).ok())
                    .count();
            }),
            ("Store::records (parse + liveness)", &mut || {
                listed = store.records().expect("records").len()
            }),
        ],
    );
    assert_eq!((listed, count_files), (runs, runs));
    out.push_str(&table(&format!("Listing {runs} runs"), &results));
    out.push('\n');

    let path = dir.path().join("metrics.bin");
    let mut w = MetricWriter::new(path.clone());
    let batch: Vec<Point> = (0..1000)
        .map(|i| Point::now("loss", i, 0, 0.001 * i as f64))
        .collect();
    for _ in 0..points / 1000 {
        w.write(&batch);
    }
    let (mut n, mut m) = (0, 0);
    let mut bytes = 0;
    let results = interleave(
        reps,
        &mut [
            ("read the file (bytes only)", &mut || {
                bytes = std::fs::read(&path).expect("read").len()
            }),
            ("read_series (one metric, columns)", &mut || {
                n = read_series(&path, "loss").expect("read").values.len()
            }),
            ("read_metrics (every point, as structs)", &mut || {
                m = read_metrics(&path).expect("read").len()
            }),
        ],
    );
    assert_eq!((n, m), (points, points));
    assert!(bytes > 0);
    out.push_str(&table(&format!("Reading {points} metric points"), &results));
    out.push('\n');

    // Ingestion: the same points through the run's metric sink (batches of 1,000, as the
    // trainer sends them) and through a plain buffered append of their values to a file.
    let batches: Vec<Vec<Point>> = (0..points / 1000)
        .map(|b| {
            (0..1000)
                .map(|i| Point::now("loss", (b * 1000 + i) as u64, 0, 0.5))
                .collect()
        })
        .collect();
    let sink_path = dir.path().join("ingest.bin");
    let plain_path = dir.path().join("ingest.txt");
    // The Python peers log fewer points (MLflow's log_metric manages about a hundred a
    // second); points per second compare them.
    let python = flammable_bench::python();
    if python.is_none() {
        eprintln!("note: MLflow and TensorBoard peers not run: bench/run creates their virtualenv (or set FLAMMABLE_BENCH_PYTHON)");
    }
    let peer = |tool: &str, n: usize| -> Option<Duration> {
        let work = tempfile::tempdir_in(dir.path()).ok()?;
        peer_seconds(
            Command::new(python.as_ref()?)
                .arg(peer_script("ingest.py"))
                .args(["--tool", tool, "--points", &n.to_string()])
                .arg("--dir")
                .arg(work.path())
                .current_dir(work.path()),
        )
    };
    let (n_log_metric, n_log_batch, n_tensorboard) = if smoke {
        (100, 1_000, 1_000)
    } else {
        (1_000, 20_000, 100_000)
    };
    let counts = [points, points, n_log_metric, n_log_batch, n_tensorboard];
    let results = interleave_timed(
        reps,
        &mut [
            (
                "plain buffered append (value per line)",
                Box::new(|| {
                    let t = Instant::now();
                    use std::io::Write;
                    let f = std::fs::File::create(&plain_path).expect("create");
                    let mut w = std::io::BufWriter::new(f);
                    for b in &batches {
                        for p in b {
                            writeln!(w, "{},{}", p.step, p.value).expect("write");
                        }
                    }
                    w.flush().expect("flush");
                    Some(t.elapsed())
                }),
            ),
            (
                "Flammable's metric sink",
                Box::new(|| {
                    let t = Instant::now();
                    let _ = std::fs::remove_file(&sink_path);
                    let _ = std::fs::remove_file(sink_path.with_extension("names"));
                    let mut w = MetricWriter::new(sink_path.clone());
                    for b in &batches {
                        w.write(b);
                    }
                    drop(w);
                    Some(t.elapsed())
                }),
            ),
            (
                "MLflow log_metric (a call per point, SQLite store)",
                Box::new(|| peer("mlflow-log-metric", n_log_metric)),
            ),
            (
                "MLflow log_batch (1,000 points a call, SQLite store)",
                Box::new(|| peer("mlflow-log-batch", n_log_batch)),
            ),
            (
                "TensorBoard SummaryWriter.add_scalar",
                Box::new(|| peer("tensorboard", n_tensorboard)),
            ),
        ],
    );
    assert_eq!(
        read_series(&sink_path, "loss").expect("read").values.len(),
        points
    );
    out.push_str(&table(
        &format!("Ingesting {points} metric points"),
        &results[..2],
    ));
    out.push('\n');
    let rate = |i: usize| {
        let s = &results[i].1;
        (!s.0.is_empty()).then(|| counts[i] as f64 / s.median().as_secs_f64().max(1e-9))
    };
    out.push_str(&format!(
        "### Ingestion rate, points/s (median of {reps})\n\n| variant | points | points/s | ratio to the plain append |\n| --- | --- | --- | --- |\n"
    ));
    for (i, (name, _)) in results.iter().enumerate() {
        let cell = |r: Option<f64>| r.map_or("not run".to_string(), |r| format!("{r:.0}"));
        let ratio = match (rate(i), rate(0)) {
            (Some(r), Some(b)) => format!("{:.3}x", r / b),
            _ => "–".into(),
        };
        out.push_str(&format!(
            "| {name} | {} | {} | {ratio} |\n",
            counts[i],
            cell(rate(i))
        ));
    }
    out.push('\n');
    flammable_bench::report("store_scale", &out, smoke);
}
