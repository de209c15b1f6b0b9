//! How the experiment browser scales: a generated store of 10,000 runs (50 of them with
//! 100,000-step series, one with 1,000,000 points) and a 1,000-file repository, served by a
//! real `flammable ui` process and read over loopback HTTP; charts grouped and smoothed; and a
//! 10,000,000-point run followed live for a minute (what each refresh reads, from `/proc`). Beside it, when the bench
//! virtualenv has MLflow, the same 500 runs listed by MLflow's tracking server.
//!
//! `cargo run --release -p flammable-bench --bin ui_scale [-- --smoke]` (after building
//! `flammable-cli`; `bench/run` does both)

use flammable_bench::{bench_dir, git, machine_facts, Samples};
use flammable_core::snapshot::REF_PREFIX;
use flammable_core::store::metrics::{MetricWriter, Point};
use flammable_core::store::record::SnapshotRecord;
use flammable_core::store::record::{Record, RunKind, RunStatus};
use flammable_core::store::{Store, HYPERPARAMETERS_FILE};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Sizes {
    runs: usize,
    live_points: u64,
    refreshes: usize,
    refresh_every: Duration,
    long_runs: usize,
    long_steps: u64,
    big_points: u64,
    files: usize,
    reps: usize,
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let sizes = if smoke {
        Sizes {
            runs: 200,
            live_points: 100_000,
            refreshes: 5,
            refresh_every: Duration::from_millis(200),
            long_runs: 5,
            long_steps: 1_000,
            big_points: 10_000,
            files: 50,
            reps: 3,
        }
    } else {
        Sizes {
            runs: 10_000,
            live_points: 10_000_000,
            refreshes: 30,
            refresh_every: Duration::from_secs(2),
            long_runs: 50,
            long_steps: 100_000,
            big_points: 1_000_000,
            files: 1_000,
            reps: 30,
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (ids, commits) = generate(dir.path(), &sizes);
    let server = Server::start(&dir.path().join("store"));
    let mut out = format!(
        "## The experiment browser at {} runs\n\n{}\n",
        sizes.runs,
        machine_facts()
    );
    out.push_str(&format!(
        "- cold start: process start to the first runs page answered, with the {} records read: {:.0} ms\n\n",
        sizes.runs,
        server.first_page.as_secs_f64() * 1e3
    ));

    let long: Vec<&str> = ids[..sizes.long_runs].iter().map(String::as_str).collect();
    let big = &ids[sizes.long_runs];
    let paths: Vec<(&str, String)> = vec![
        (
            "runs page: HTML and its four assets (first paint)",
            String::new(),
        ),
        (
            "API: a 100-row page",
            "/api/runs?per_page=100&page=7".into(),
        ),
        (
            "API: filter + sort (lr<0.005 hidden=128, by loss)",
            "/api/runs?q=lr%3C0.005+hidden%3D128&sort=metric:loss&order=asc".into(),
        ),
        (
            "a 1,000,000-point series downsampled (1,000 buckets)",
            format!("/api/runs/{big}/series?name=loss&buckets=1000"),
        ),
        (
            "overlaid chart of 50 runs x 100,000 steps (SVG)",
            format!("/chart?runs={}&name=loss", long.join(",")),
        ),
        (
            "the same 50 runs grouped by everything but the seed (9 groups, bands), smoothed (ema 0.9)",
            format!("/chart?runs={}&name=loss&group=*&smooth=ema:0.9", long.join(",")),
        ),
        (
            "the 1,000,000-point series smoothed (ema 0.9) and drawn",
            format!("/chart?runs={big}&name=loss&smooth=ema:0.9"),
        ),
        (
            "runs page grouped by lr,hidden (10,000 runs, 9 groups)",
            "/?group=lr,hidden".into(),
        ),
        (
            "parallel coordinates of 1,000 runs (val/accuracy<0.1; lr, hidden and seed axes)",
            "/parallel?q=val/accuracy%3C0.1&metric=loss".into(),
        ),
        (
            "code diff of two snapshots (1,000 files, 20 changed)",
            format!("/api/diff?a={}&b={}", commits.0, commits.1),
        ),
    ];
    let mut rows = Vec::new();
    for (name, path) in &paths {
        let mut samples = Samples::default();
        for _ in 0..sizes.reps {
            let t = Instant::now();
            if path.is_empty() {
                for p in [
                    "/",
                    "/assets/app.css",
                    "/assets/chart.css",
                    "/assets/app.js",
                    "/assets/highlight.css",
                ] {
                    server.get_ok(p);
                }
            } else {
                server.get_ok(path);
            }
            samples.0.push(t.elapsed());
        }
        rows.push((name.to_string(), samples));
    }
    let live = live_run(&server, &dir.path().join("store"), &sizes);
    let rss = server.peak_rss_mib();
    out.push_str("| request | p50 | p95 | max |\n| --- | --- | --- | --- |\n");
    for (name, s) in &rows {
        let mut v = s.0.clone();
        v.sort();
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
        out.push_str(&format!(
            "| {name} | {:.1} ms | {:.1} ms | {:.1} ms |\n",
            at(0.5),
            at(0.95),
            at(1.0)
        ));
    }
    out.push_str(&format!(
        "\n- server memory at the end (peak resident): {rss:.0} MiB\n"
    ));
    out.push_str(&live);

    // MLflow's tracking server over the same first 500 runs, against our API's 500-run page.
    let ours_500 = {
        let mut s = Samples::default();
        for _ in 0..sizes.reps {
            let t = Instant::now();
            server.get_ok("/api/runs?per_page=500");
            s.0.push(t.elapsed());
        }
        s.median()
    };
    match mlflow_peer(dir.path(), if smoke { 50 } else { 500 }, sizes.reps) {
        Some(theirs) => out.push_str(&format!(
            "\n| 500 runs with their parameters and metrics | median | ratio |\n| --- | --- | --- |\n| flammable ui, `/api/runs?per_page=500` | {:.1} ms | 1.00x |\n| MLflow tracking server, `runs/search` max_results=500 | {:.1} ms | {:.2}x |\n",
            ours_500.as_secs_f64() * 1e3,
            theirs.as_secs_f64() * 1e3,
            theirs.as_secs_f64() / ours_500.as_secs_f64()
        )),
        None => out.push_str(&format!(
            "\n- 500-run page from the API: {:.1} ms (MLflow peer not run: it needs `mlflow` in the bench virtualenv)\n",
            ours_500.as_secs_f64() * 1e3
        )),
    }
    print!("{out}");
    if !smoke {
        let results = bench_dir().join("results");
        let _ = std::fs::create_dir_all(&results);
        let _ = std::fs::write(results.join("ui_scale.md"), &out);
    }
}

/// The store, its runs' series and the repository; returns the run ids (the long runs first,
/// then the 1M-point one) and the two snapshot commits.
fn generate(dir: &Path, s: &Sizes) -> (Vec<String>, (String, String)) {
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("src")).expect("repo");
    git(&repo, None, &["init", "-q", "-b", "main"]);
    for i in 0..s.files {
        let body: String = (0..40)
            .map(|l| format!("fn f{i}_{l}() -> u32 {{ {l} }}\n"))
            .collect();
        std::fs::write(repo.join(format!("src/m{i:04}.rs")), body).expect("write");
    }
    git(&repo, None, &["add", "-A"]);
    git(&repo, None, &["commit", "-qm", "one"]);
    let a = git(&repo, None, &["rev-parse", "HEAD"]);
    for i in (0..s.files).step_by((s.files / 20).max(1)).take(20) {
        let p = repo.join(format!("src/m{i:04}.rs"));
        let text = std::fs::read_to_string(&p)
            .expect("read")
            .replace(" 7 }", " 7 + 1 }");
        std::fs::write(p, text).expect("write");
    }
    git(&repo, None, &["commit", "-qam", "two"]);
    let b = git(&repo, None, &["rev-parse", "HEAD"]);
    git(&repo, None, &["update-ref", &format!("{REF_PREFIX}a"), &a]);
    git(&repo, None, &["update-ref", &format!("{REF_PREFIX}b"), &b]);

    let store = Store::at(dir.join("store"));
    let mut ids = Vec::with_capacity(s.runs);
    for i in 0..s.runs {
        let mut r = Record::new("bench", RunKind::Train, i as u64);
        r.status = RunStatus::Finished;
        r.message = Some(format!("run {i}"));
        r.metrics
            .insert("loss".into(), 1.0 / (1.0 + i as f64 % 97.0));
        r.metrics
            .insert("val/accuracy".into(), (i % 100) as f64 / 100.0);
        r.ended = Some(r.started.clone());
        if i < 2 {
            r.snapshot = Some(SnapshotRecord {
                commit: if i == 0 { a.clone() } else { b.clone() },
                parent: None,
                dirty: false,
                git_dir: repo.join(".git"),
                workdir: repo.clone(),
                skipped: Vec::new(),
            });
        }
        let r = store.create(r).expect("create");
        let lr = [0.001, 0.003, 0.01][i % 3];
        let hidden = [64, 128, 256][(i / 3) % 3];
        std::fs::write(
            store.run_dir(&r.id).join(HYPERPARAMETERS_FILE),
            format!("(train: (epochs: 10, lr: {lr}, batch_size: 64), task: (hidden: {hidden}))\n"),
        )
        .expect("hyperparameters");
        ids.push(r.id);
    }
    let series = |id: &str, points: u64| {
        let mut w = MetricWriter::new(store.metrics_path(id));
        let mut batch = Vec::with_capacity(10_000);
        for step in 0..points {
            let v = 2.0 / (1.0 + step as f64 * 1e-3) + ((step * 7919) % 101) as f64 * 1e-3;
            batch.push(Point {
                name: "loss".into(),
                step,
                epoch: step / 1000,
                value: v,
                time: 0.0,
            });
            if batch.len() == 10_000 {
                w.write(&batch);
                batch.clear();
            }
        }
        w.write(&batch);
    };
    for id in &ids[..s.long_runs] {
        series(id, s.long_steps);
    }
    series(&ids[s.long_runs], s.big_points);
    // The snapshots' runs are the first two: a and b name their commits for the diff.
    let pair = (ids[0].clone(), ids[1].clone());
    (ids, pair)
}

struct Server {
    child: std::process::Child,
    addr: String,
    first_page: Duration,
}

impl Server {
    fn start(store: &Path) -> Server {
        let exe = std::env::current_exe().expect("own path");
        let bin: PathBuf = exe.parent().expect("target dir").join("flammable");
        let started = Instant::now();
        let mut child = Command::new(&bin)
            .args(["ui", "--port", "0", "--store"])
            .arg(store)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {} ({e}): build flammable-cli", bin.display())
            });
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("address");
        let port = line
            .trim()
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .unwrap_or("")
            .to_string();
        let mut server = Server {
            child,
            addr: format!("127.0.0.1:{port}"),
            first_page: Duration::ZERO,
        };
        server.get_ok("/");
        server.first_page = started.elapsed();
        server
    }

    /// GET `path`, reading the whole answer; panics unless it is 200.
    /// The whole answer to `GET path`, head and body.
    fn get(&self, path: &str) -> Vec<u8> {
        let mut stream = TcpStream::connect(&self.addr).expect("connect");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .expect("send");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read");
        answer
    }

    fn get_ok(&self, path: &str) -> usize {
        let answer = self.get(path);
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "{path}: {}",
            String::from_utf8_lossy(&answer[answer.len().saturating_sub(300)..])
        );
        answer.len()
    }

    /// The status of `GET path`.
    fn status(&self, path: &str) -> u16 {
        String::from_utf8_lossy(&self.get(path))
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    fn peak_rss_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            })
            .unwrap_or(0.0)
            / 1024.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bytes a process has read so far (`rchar`: files and sockets alike).
fn bytes_read(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("rchar: "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A run of `live_points` points followed live, as its page does: a first look, then a
/// refresh (the page's one request) every `refresh_every` while the run appends 1,000 points
/// between refreshes. Says what the server read and how long it took, as Markdown.
fn live_run(server: &Server, store_dir: &Path, s: &Sizes) -> String {
    let store = Store::at(store_dir);
    let mut r = Record::new("bench-live", RunKind::Train, 0);
    r.status = RunStatus::Running;
    let id = store.create(r).expect("create").id;
    let mut w = MetricWriter::new(store.metrics_path(&id));
    let point = |step: u64| Point {
        name: "loss".into(),
        step,
        epoch: step / 10_000,
        value: 2.0 / (1.0 + step as f64 * 1e-6),
        time: step as f64 * 1e-3,
    };
    let mut batch = Vec::with_capacity(100_000);
    for step in 0..s.live_points {
        batch.push(point(step));
        if batch.len() == 100_000 {
            w.write(&batch);
            batch.clear();
        }
    }
    w.write(&batch);
    let file = std::fs::metadata(store.metrics_path(&id)).map_or(0, |m| m.len());
    let pid = server.child.id();
    // The server looks at the store again after at most 750 ms: until then the run is new to it.
    let seen = Instant::now();
    while server.status(&format!("/api/runs/{id}/live")) != 200 {
        assert!(
            seen.elapsed() < Duration::from_secs(10),
            "the server never saw run {id}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let path = format!("/run/{id}/live");
    let before = bytes_read(pid);
    let t = Instant::now();
    server.get_ok(&path);
    let first = (t.elapsed(), bytes_read(pid) - before);
    let (mut times, mut reads) = (Samples::default(), Vec::new());
    let mut next = s.live_points;
    for _ in 0..s.refreshes {
        std::thread::sleep(s.refresh_every);
        w.write(&(next..next + 1_000).map(point).collect::<Vec<_>>());
        next += 1_000;
        let before = bytes_read(pid);
        let t = Instant::now();
        server.get_ok(&path);
        times.0.push(t.elapsed());
        reads.push(bytes_read(pid) - before);
    }
    reads.sort();
    let median_read = reads[reads.len() / 2];
    format!(
        "\n### A live run of {} points ({:.0} MB of metrics), its page open for {} refreshes, {} s apart\n\n\
         | | time | bytes the server read |\n| --- | --- | --- |\n\
         | first look (every point read) | {:.0} ms | {:.1} MB |\n\
         | a refresh after 1,000 points (32 kB) were appended: median | {:.1} ms | {:.1} kB |\n\
         | the same, largest | {:.1} ms | {:.1} kB |\n\n\
         - server memory after it (peak resident): {:.0} MiB\n",
        s.live_points,
        file as f64 / 1e6,
        s.refreshes,
        s.refresh_every.as_secs_f64(),
        first.0.as_secs_f64() * 1e3,
        first.1 as f64 / 1e6,
        times.median().as_secs_f64() * 1e3,
        median_read as f64 / 1e3,
        times.0.iter().max().copied().unwrap_or_default().as_secs_f64() * 1e3,
        reads.last().copied().unwrap_or(0) as f64 / 1e3,
        server.peak_rss_mib()
    )
}

/// The median time MLflow's tracking server takes to answer a search for `runs` runs (the
/// request its runs page makes), over a SQLite store of the same runs; `None` when the bench
/// virtualenv has no MLflow server.
fn mlflow_peer(dir: &Path, runs: usize, reps: usize) -> Option<Duration> {
    let python = flammable_bench::python()?;
    let out = Command::new(python)
        .arg(flammable_bench::peer_script("mlflow_ui.py"))
        .args([
            "--runs",
            &runs.to_string(),
            "--reps",
            &reps.to_string(),
            "--dir",
        ])
        .arg(dir.join("mlflow"))
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "note: MLflow peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<f64>()
        .ok()
        .map(Duration::from_secs_f64)
}
