//! How the run store scales: listing 10,000 runs, and reading back a 1,000,000-point metric
//! series, each against a plain baseline doing the least the same answer needs.
//!
//! `cargo run --release -p flammable-bench --bin store_scale [-- --smoke]`

use flammable::metrics::{read_metrics, read_series, MetricWriter, Point};
use flammable::record::{Record, RunKind, RunStatus};
use flammable::store::Store;
use flammable_bench::{interleave, table};

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let (runs, points, reps) = if smoke {
        (50, 10_000, 2)
    } else {
        (10_000, 1_000_000, 5)
    };
    let dir = tempfile::tempdir().expect("temp dir");

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
    println!("{}", table(&format!("Listing {runs} runs"), &results));

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
    println!(
        "{}",
        table(&format!("Reading {points} metric points"), &results)
    );
}
