//! Sharing runs: `flammable push` and `pull` of 100 runs (each with its best checkpoint) and of
//! one run with a 1 GB checkpoint, to S3 (moto's server on a loopback port) against `aws s3
//! sync` and DVC (`dvc add` then `dvc push` of the runs folder, and `dvc pull`) of the same
//! folders, and to a folder against `cp -r` (and `cp -r` then `sync`, as a push syncs); and a
//! second push of runs that did not change (goal: under a second for 100 runs). A first push
//! is timed twice: of runs whose checkpoints the trainer hashed as it wrote them (what
//! training leaves), and of files copied in by hand, hashed by the push.
//!
//! Every command is timed whole, start-up included, as a user waits for it. Each repetition
//! starts from an empty remote; the first uploads take turns at going first.
//!
//! `cargo run --release -p flammable-bench --bin remote_sync [-- --smoke] [--one] [--folder]`
//! (`--one`: the large run only; `--folder`: the folder remote only)

use flammable::store::{Record, RunKind, RunStatus, Store};
use flammable_bench::{bench_dir, flammable_in, free_port, git, report, time_command, Samples};
use flammable_core::store::hashes::{remember, HASHES_FILE};
use flammable_core::store::metrics::{MetricWriter, Point};
use flammable_core::store::record::SnapshotRecord;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    // `--one`: only the run with the large checkpoint; `--folder`: only the folder remote.
    let one_only = std::env::args().any(|a| a == "--one");
    let folder_only = std::env::args().any(|a| a == "--folder");
    let (runs, checkpoint, big, reps) = if smoke {
        (5, 64 << 10, 8 << 20, 1)
    } else {
        (100, 1 << 20, 1 << 30, 3)
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let many = dir.path().join("many");
    let one = dir.path().join("one");
    make_project(&many, runs, checkpoint);
    make_project(&one, 1, big);
    let mut out = format!(
        "{runs} runs of {} each (record, hyperparameters, 2,000 metric points, log, best checkpoint, code), and one run \
         with a checkpoint of {}. Every command timed whole, as a user waits for it; medians of {reps}.\n\n",
        mib(folder_bytes(&many.join("store/runs")) / runs as u64),
        mib(big as u64)
    );
    let mut s3 = if folder_only { None } else { S3::start() };
    if s3.is_none() && !folder_only {
        eprintln!(
            "warning: moto is not installed for the benchmarks' Python: the S3 rows are not run"
        );
    }
    let aws = if folder_only { None } else { aws_cli() };
    let dvc = if folder_only { None } else { dvc_cli() };
    for (project, what) in [
        (&many, format!("{runs} runs")),
        (&one, format!("one run of {}", mib(big as u64))),
    ]
    .into_iter()
    .skip(usize::from(one_only))
    {
        let runs_dir = project.join("store/runs");
        if let Some(s3) = s3.as_mut() {
            let mut rows = Rows::default();
            for rep in 0..reps {
                s3.reset();
                let remote = format!("s3://runs/f{rep}");
                let cold = format!("s3://runs/c{rep}");
                let peer = format!("s3://runs/a{rep}");
                let fresh = fresh_project(dir.path(), &format!("s3-{rep}"));
                let down = dir.path().join(format!("aws-down-{rep}"));
                let dvc_dir = dir.path().join(format!("dvc-{rep}"));
                let dvc_down = dir.path().join(format!("dvc-down-{rep}"));
                if let Some(dvc) = &dvc {
                    let remote = format!("s3://runs/d{rep}");
                    dvc_workspace(dvc, &dvc_dir, &remote, &s3.endpoint);
                    let copied = copy_then_sync(&runs_dir, &dvc_dir.join("runs")).status();
                    assert!(copied.is_ok_and(|s| s.success()), "cannot copy the runs");
                    dvc_workspace(dvc, &dvc_down, &remote, &s3.endpoint);
                }
                // The first uploads in turn first, second, third and fourth: an S3 server
                // that slows as it fills favours none.
                for turn in 0..4 {
                    match (turn + rep) % 4 {
                        3 => {
                            if let Some(dvc) = &dvc {
                                rows.add(
                                    DVC_FIRST,
                                    time_command(s3.env(dvc_add_push(dvc, &dvc_dir))),
                                );
                            }
                        }
                        0 => {
                            forget_hashes(&runs_dir);
                            rows.add(
                                COLD,
                                time_command(
                                    s3.env(flammable_in(project, &["push", &cold, "--all"])),
                                ),
                            );
                        }
                        1 => {
                            hash_as_training_does(&runs_dir);
                            rows.add(
                                FIRST,
                                time_command(
                                    s3.env(flammable_in(project, &["push", &remote, "--all"])),
                                ),
                            );
                        }
                        _ => {
                            if let Some(aws) = &aws {
                                rows.add(
                                    "aws s3 sync (first)",
                                    time_command(s3.env(aws_sync(
                                        aws,
                                        &s3.endpoint,
                                        &runs_dir,
                                        &peer,
                                    ))),
                                );
                            }
                        }
                    }
                }
                rows.add(
                    AGAIN,
                    time_command(s3.env(flammable_in(project, &["push", &remote, "--all"]))),
                );
                if let Some(aws) = &aws {
                    rows.add(
                        "aws s3 sync (again, nothing changed)",
                        time_command(s3.env(aws_sync(aws, &s3.endpoint, &runs_dir, &peer))),
                    );
                }
                if let Some(dvc) = &dvc {
                    rows.add(DVC_AGAIN, time_command(s3.env(dvc_add_push(dvc, &dvc_dir))));
                }
                rows.add(
                    PULL,
                    time_command(s3.env(flammable_in(&fresh, &["pull", &remote, "--all"]))),
                );
                if let Some(aws) = &aws {
                    let mut cmd = Command::new(aws);
                    cmd.args([
                        "--endpoint-url",
                        &s3.endpoint,
                        "s3",
                        "sync",
                        "--only-show-errors",
                        &peer,
                    ])
                    .arg(&down);
                    rows.add("aws s3 sync (down)", time_command(s3.env(cmd)));
                }
                if let Some(dvc) = &dvc {
                    // The other machine's clone has the pushed folder's `.dvc` file.
                    std::fs::copy(dvc_dir.join("runs.dvc"), dvc_down.join("runs.dvc"))
                        .expect("copy runs.dvc");
                    let mut cmd = Command::new(dvc);
                    cmd.args(["pull", "-q"]).current_dir(&dvc_down);
                    rows.add(DVC_PULL, time_command(s3.env(cmd)));
                }
                for d in [&fresh, &down, &dvc_dir, &dvc_down] {
                    let _ = std::fs::remove_dir_all(d);
                }
            }
            rows.compare(COLD, "aws s3 sync (first)");
            rows.compare(FIRST, "aws s3 sync (first)");
            rows.compare(AGAIN, "aws s3 sync (again, nothing changed)");
            rows.compare(PULL, "aws s3 sync (down)");
            rows.compare(COLD, DVC_FIRST);
            rows.compare(FIRST, DVC_FIRST);
            rows.compare(AGAIN, DVC_AGAIN);
            rows.compare(PULL, DVC_PULL);
            out.push_str(&rows.table(&format!("S3 (moto, loopback): {what}")));
        }
        let mut rows = Rows::default();
        for rep in 0..reps {
            let remote = dir.path().join(format!("folder-{rep}"));
            let cold = dir.path().join(format!("cold-{rep}"));
            let copy = dir.path().join(format!("cp-{rep}"));
            let copy_synced = dir.path().join(format!("cp-up-synced-{rep}"));
            let fresh = fresh_project(dir.path(), &format!("folder-{rep}"));
            let remote_s = remote.to_str().expect("utf-8");
            for turn in 0..4 {
                match (turn + rep) % 4 {
                    0 => {
                        forget_hashes(&runs_dir);
                        let cold_s = cold.to_str().expect("utf-8");
                        rows.add(
                            COLD,
                            time_command(flammable_in(project, &["push", cold_s, "--all"])),
                        );
                    }
                    1 => {
                        hash_as_training_does(&runs_dir);
                        rows.add(
                            FIRST,
                            time_command(flammable_in(project, &["push", remote_s, "--all"])),
                        );
                    }
                    2 => {
                        let mut cp = Command::new("cp");
                        cp.arg("-r").arg(&runs_dir).arg(&copy);
                        rows.add("cp -r", time_command(cp));
                    }
                    _ => {
                        // A push syncs the folder's file system before and after its
                        // manifests; cp does not.
                        rows.add(
                            "cp -r, then sync",
                            time_command(copy_then_sync(&runs_dir, &copy_synced)),
                        );
                    }
                }
            }
            rows.add(
                AGAIN,
                time_command(flammable_in(project, &["push", remote_s, "--all"])),
            );
            rows.add(
                PULL,
                time_command(flammable_in(&fresh, &["pull", remote_s, "--all"])),
            );
            let mut cp = Command::new("cp");
            cp.arg("-r")
                .arg(&copy)
                .arg(dir.path().join(format!("cp-back-{rep}")));
            rows.add("cp -r (back)", time_command(cp));
            // A pull syncs each file to disk before it moves a run in; cp does not.
            let synced = dir.path().join(format!("cp-synced-{rep}"));
            rows.add(
                "cp -r (back), then sync",
                time_command(copy_then_sync(&copy, &synced)),
            );
            for d in [
                remote,
                cold,
                copy,
                copy_synced,
                dir.path().join(format!("cp-back-{rep}")),
                dir.path().join(format!("cp-synced-{rep}")),
                fresh,
            ] {
                let _ = std::fs::remove_dir_all(d);
            }
        }
        rows.compare(COLD, "cp -r, then sync");
        rows.compare(FIRST, "cp -r, then sync");
        rows.compare(PULL, "cp -r (back), then sync");
        out.push_str(&rows.table(&format!("A folder: {what}")));
    }
    // A partial run (`--one`, `--folder`) is printed, not saved.
    report("remote_sync", &out, smoke || one_only || folder_only);
}

/// `cp -r FROM TO`, then a sync of TO's file system: a copy that is on disk when it ends.
fn copy_then_sync(from: &Path, to: &Path) -> Command {
    let mut cp = Command::new("sh");
    cp.arg("-c")
        .arg("cp -r \"$1\" \"$2\" && sync -f \"$2\"")
        .arg("sh")
        .arg(from)
        .arg(to);
    cp
}

/// The rows of Flammable's commands.
const COLD: &str = "flammable push (first; files copied in by hand, nothing hashed yet)";
const FIRST: &str = "flammable push (first; checkpoints hashed by the trainer as it wrote them)";
const AGAIN: &str = "flammable push (again, nothing changed)";
const PULL: &str = "flammable pull (into a fresh clone)";

/// Forgets every hash the runs' files are known by, as for runs copied in by hand.
fn forget_hashes(runs_dir: &Path) {
    for e in std::fs::read_dir(runs_dir).expect("runs").flatten() {
        let _ = std::fs::remove_file(e.path().join(HASHES_FILE));
    }
}

/// Hashes the runs' checkpoints as the trainer's checkpoint writer does when it writes them
/// (on its own thread, beside training), and forgets the rest.
fn hash_as_training_does(runs_dir: &Path) {
    for e in std::fs::read_dir(runs_dir).expect("runs").flatten() {
        let _ = std::fs::remove_file(e.path().join(HASHES_FILE));
        remember(
            &e.path(),
            &[
                "checkpoints/best.safetensors".to_string(),
                "checkpoints/best.ron".to_string(),
            ],
        );
    }
}

/// A Git project at `dir` whose store holds `runs` finished train runs, each with its own
/// checkpoint of `checkpoint` bytes, its code the project's commit.
fn make_project(dir: &Path, runs: usize, checkpoint: usize) {
    std::fs::create_dir_all(dir).expect("mkdir");
    flammable_bench::git_project(dir, "the model");
    let head = git(dir, None, &["rev-parse", "HEAD"]);
    let store = Store::at(dir.join("store"));
    let mut state = 0x2545f4914f6cdd1du64;
    for i in 0..runs {
        let mut r = Record::new("bench", RunKind::Train, i as u64);
        r.status = RunStatus::Finished;
        r.metrics.insert("loss".into(), 0.5 / (i + 1) as f64);
        r.snapshot = Some(SnapshotRecord {
            commit: head.clone(),
            parent: None,
            dirty: false,
            git_dir: dir.join(".git"),
            workdir: dir.to_path_buf(),
            skipped: Vec::new(),
        });
        let r = store.create(r).expect("create");
        git(
            dir,
            None,
            &[
                "update-ref",
                &format!("refs/flammable/runs/{}", r.id),
                &head,
            ],
        );
        let run = store.run_dir(&r.id);
        std::fs::write(
            run.join("hyperparameters.ron"),
            format!("(train: (lr: 0.0{i}))\n"),
        )
        .expect("write");
        std::fs::write(run.join("log.txt"), "epoch 1/1\n".repeat(50)).expect("write");
        let mut w = MetricWriter::new(run.join("metrics.bin"));
        let points: Vec<Point> = (0..2000)
            .map(|s| Point::now("loss", s, 0, 1.0 / (s + 1) as f64))
            .collect();
        w.write(&points);
        drop(w);
        let checkpoints = run.join("checkpoints");
        std::fs::create_dir_all(&checkpoints).expect("mkdir");
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(checkpoints.join("best.safetensors")).expect("create"),
        );
        let mut block = vec![0u8; 1 << 16];
        let mut left = checkpoint;
        while left > 0 {
            for b in block.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = (state >> 32) as u8;
            }
            let n = left.min(block.len());
            f.write_all(&block[..n]).expect("write");
            left -= n;
        }
        f.flush().expect("write");
        std::fs::write(checkpoints.join("best.ron"), "(step: 100)\n").expect("write");
    }
}

/// A new Git repository beside, for a pull (another machine's clone).
fn fresh_project(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(format!("fresh-{name}"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    git(&dir, None, &["init", "-q", "-b", "main"]);
    dir
}

/// The DVC peer's rows: a first push is `dvc add` (which hashes the files and copies them
/// into DVC's cache) then `dvc push`, as DVC's users push a folder; again, the same two
/// commands with nothing changed.
const DVC_FIRST: &str = "dvc add, then dvc push (first)";
const DVC_AGAIN: &str = "dvc add, then dvc push (again, nothing changed)";
const DVC_PULL: &str = "dvc pull (into a fresh clone)";

/// `dvc add runs`, then `dvc push`, in the DVC workspace `dir`.
fn dvc_add_push(dvc: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("\"$0\" add -q runs && \"$0\" push -q")
        .arg(dvc)
        .current_dir(dir);
    cmd
}

/// A Git repository at `dir` made a DVC project whose default remote is `remote` at
/// `endpoint` (not timed).
fn dvc_workspace(dvc: &Path, dir: &Path, remote: &str, endpoint: &str) {
    std::fs::create_dir_all(dir).expect("mkdir");
    git(dir, None, &["init", "-q", "-b", "main"]);
    for args in [
        &["init", "-q"][..],
        &["remote", "add", "-d", "bench", remote],
        &["remote", "modify", "bench", "endpointurl", endpoint],
        &["config", "core.analytics", "false"],
    ] {
        let ok = Command::new(dvc)
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "dvc {args:?} failed");
    }
}

/// DVC's command line (with its S3 support, `pip install 'dvc[s3]'`): `FLAMMABLE_BENCH_DVC`
/// where set, else `bench/.venv-dvc/bin/dvc`, where `bench/run` installs it (a virtualenv of
/// its own, since DVC's S3 client pins another botocore than the AWS command line's). Not
/// looked for on PATH: a DVC installed beside another botocore fails rather than runs.
fn dvc_cli() -> Option<PathBuf> {
    let dvc = std::env::var_os("FLAMMABLE_BENCH_DVC")
        .map(PathBuf::from)
        .unwrap_or_else(|| bench_dir().join(".venv-dvc/bin/dvc"));
    let found = Command::new(&dvc)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        .then_some(dvc);
    if found.is_none() {
        eprintln!("warning: DVC is not installed: its rows are not run");
    }
    found
}

/// `aws s3 sync FROM TO` against `endpoint`.
fn aws_sync(aws: &Path, endpoint: &str, from: &Path, to: &str) -> Command {
    let mut cmd = Command::new(aws);
    cmd.args([
        "--endpoint-url",
        endpoint,
        "s3",
        "sync",
        "--only-show-errors",
    ])
    .arg(from)
    .arg(to);
    cmd
}

/// The AWS command line: beside the benchmarks' Python, else on PATH.
fn aws_cli() -> Option<PathBuf> {
    let beside = flammable_bench::python().and_then(|p| p.parent().map(|d| d.join("aws")));
    let found = beside.filter(|p| p.exists()).or_else(|| {
        Command::new("aws")
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|_| PathBuf::from("aws"))
    });
    if found.is_none() {
        eprintln!("warning: the AWS command line is not installed: its rows are not run");
    }
    found
}

fn folder_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

fn mib(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.2} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

/// Samples by variant, in the order first added, and which peer's row each of ours is
/// compared with.
#[derive(Default)]
struct Rows(Vec<(String, Samples)>, Vec<(String, String)>);

impl Rows {
    fn add(&mut self, name: &str, d: Duration) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, s)) => s.0.push(d),
            None => self.0.push((name.to_string(), Samples(vec![d]))),
        }
    }

    /// Our row `ours` is to be divided by the peer's row `peer`.
    fn compare(&mut self, ours: &str, peer: &str) {
        self.1.push((ours.to_string(), peer.to_string()));
    }

    fn median(&self, name: &str) -> Option<f64> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.median().as_secs_f64())
    }

    /// A table: each variant's median and range, and for each of ours its ratio to its
    /// peer's row.
    fn table(&self, title: &str) -> String {
        let mut out = format!("### {title}\n\n| command | median | min–max | Flammable ÷ peer |\n| --- | --- | --- | --- |\n");
        for (name, s) in &self.0 {
            let (lo, hi) = s.range();
            let median = s.median().as_secs_f64();
            let ratio = self
                .1
                .iter()
                .filter(|(ours, _)| ours == name)
                .filter_map(|(_, peer)| Some((peer, self.median(peer)?)))
                .map(|(peer, theirs)| format!("{:.2} (÷ {peer})", median / theirs))
                .collect::<Vec<_>>()
                .join("; ");
            out.push_str(&format!(
                "| {name} | {:.3} s | {:.3}–{:.3} s | {ratio} |\n",
                median,
                lo.as_secs_f64(),
                hi.as_secs_f64()
            ));
        }
        out.push('\n');
        out
    }
}

/// moto's S3 server on a loopback port, with one bucket (`runs`); `reset` empties it.
struct S3 {
    child: Child,
    stdin: ChildStdin,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    endpoint: String,
}

impl S3 {
    fn start() -> Option<S3> {
        let python = flammable_bench::python()
            .filter(|p| has_moto(p))
            .or_else(|| Some(PathBuf::from("python3")).filter(|p| has_moto(p)))?;
        let port = free_port();
        let mut child = Command::new(python)
            .arg(bench_dir().join("peers/s3_server.py"))
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let stdin = child.stdin.take()?;
        let lines = BufReader::new(child.stdout.take()?).lines();
        let mut s3 = S3 {
            child,
            stdin,
            lines,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        s3.wait_ready();
        Some(s3)
    }

    fn wait_ready(&mut self) {
        for line in self.lines.by_ref() {
            if line.expect("the S3 server's output").trim() == "ready" {
                return;
            }
        }
        panic!("the S3 server ended");
    }

    fn reset(&mut self) {
        writeln!(self.stdin, "reset").expect("the S3 server reads");
        self.stdin.flush().expect("the S3 server reads");
        self.wait_ready();
    }

    fn env(&self, mut cmd: Command) -> Command {
        cmd.env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &self.endpoint);
        cmd
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn has_moto(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import moto.server, boto3"])
        .output()
        .is_ok_and(|o| o.status.success())
}
