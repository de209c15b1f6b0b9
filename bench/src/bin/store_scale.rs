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
    let results = interleave(
        reps,
        &mut [
            ("plain buffered append (value per line)", &mut || {
                use std::io::Write;
                let f = std::fs::File::create(&plain_path).expect("create");
                let mut w = std::io::BufWriter::new(f);
                for b in &batches {
                    for p in b {
                        writeln!(w, "{},{}", p.step, p.value).expect("write");
                    }
                }
                w.flush().expect("flush");
            }),
            ("Flammable's metric sink", &mut || {
                let _ = std::fs::remove_file(&sink_path);
                let _ = std::fs::remove_file(sink_path.with_extension("names"));
                let mut w = MetricWriter::new(sink_path.clone());
                for b in &batches {
                    w.write(b);
                }
            }),
        ],
    );
    assert_eq!(
        read_series(&sink_path, "loss").expect("read").values.len(),
        points
    );
    out.push_str(&table(
        &format!("Ingesting {points} metric points"),
        &results,
    ));
    out.push('\n');
    flammable_bench::report("store_scale", &out, smoke);
}
