//! Shared by the benchmarks: interleaved repetitions, medians, Markdown rows.

mod digits_net;
pub use digits_net::{latest_checkpoint, DigitsNet};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Timings of one variant.
#[derive(Clone, Debug, Default)]
pub struct Samples(pub Vec<Duration>);

impl Samples {
    /// The median.
    pub fn median(&self) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    }

    /// The fastest and slowest.
    pub fn range(&self) -> (Duration, Duration) {
        let min = self.0.iter().min().copied().unwrap_or_default();
        let max = self.0.iter().max().copied().unwrap_or_default();
        (min, max)
    }
}

/// A variant that times itself: the duration of its timed part, `None` when it cannot run.
pub type TimedVariant<'a> = Box<dyn FnMut() -> Option<Duration> + 'a>;

/// The time `f` takes, as a variant that always runs.
pub fn timed(f: impl FnOnce()) -> Option<Duration> {
    let t = Instant::now();
    f();
    Some(t.elapsed())
}

/// Runs `git args` in `dir` (with `GIT_INDEX_FILE=index` when given), as a fixed identity and
/// without the user's global configuration; returns its trimmed standard output. Panics
/// with git's error when it fails: the benchmarks need git.
pub fn git(dir: &Path, index: Option<&Path>, args: &[&str]) -> String {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .args(args);
    if let Some(i) = index {
        c.env("GIT_INDEX_FILE", i);
    }
    let out = c.output().expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs each variant once as a warm-up, then `reps` rounds of every variant in turn
/// (A B A B …), so that drift in the machine's speed hits all variants alike.
pub fn interleave(
    reps: usize,
    variants: &mut [(&str, &mut dyn FnMut())],
) -> Vec<(String, Samples)> {
    let mut timed: Vec<(&str, TimedVariant<'_>)> = variants
        .iter_mut()
        .map(|(name, f)| {
            let variant: TimedVariant<'_> = Box::new(move || timed(&mut *f));
            (*name, variant)
        })
        .collect();
    interleave_timed(reps, &mut timed)
}

/// Like [`interleave`], for variants that time themselves (a peer in another process reports
/// the time of its loop, without its start-up) and may be unavailable (`None`: no sample).
pub fn interleave_timed(
    reps: usize,
    variants: &mut [(&str, TimedVariant<'_>)],
) -> Vec<(String, Samples)> {
    for (_, f) in variants.iter_mut() {
        f();
    }
    let mut out: Vec<(String, Samples)> = variants
        .iter()
        .map(|(n, _)| (n.to_string(), Samples::default()))
        .collect();
    for _ in 0..reps {
        for (i, (_, f)) in variants.iter_mut().enumerate() {
            if let Some(d) = f() {
                out[i].1 .0.push(d);
            }
        }
    }
    out
}

/// The Python of the peers' virtualenv: `$FLAMMABLE_BENCH_PYTHON`, else `bench/.venv/bin/python`
/// (which `bench/run` creates); `None` when neither exists.
pub fn python() -> Option<PathBuf> {
    let path = std::env::var_os("FLAMMABLE_BENCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| bench_dir().join(".venv/bin/python"));
    path.exists().then_some(path)
}

/// A peer script of `bench/peers/`.
pub fn peer_script(name: &str) -> PathBuf {
    bench_dir().join("peers").join(name)
}

/// The digits example's binary, beside this benchmark's (`bench/run` builds both).
pub fn digits_example() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    exe.parent()
        .expect("target dir")
        .join("examples")
        .join("digits")
}

/// The "seven" of the digits data set, as the JSON `digits serve` takes.
pub const SEVEN_JSON: &str = "[0,0,7,8,13,16,15,1,0,0,7,7,4,11,12,0,0,0,0,0,8,13,1,0,0,4,8,8,15,15,6,0,0,2,11,15,15,4,0,0,0,0,0,16,5,0,0,0,0,0,9,15,1,0,0,0,0,0,13,5,0,0,0,0]";

/// A port of 127.0.0.1 free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Makes `dir` a Git repository with one commit (of `model.rs`, saying `message`): the code
/// a benchmark's runs snapshot.
pub fn git_project(dir: &Path, message: &str) {
    git(dir, None, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("model.rs"), format!("// {message}\n")).expect("write");
    git(dir, None, &["add", "-A"]);
    git(dir, None, &["commit", "-qm", message]);
}

/// The digits example started in `project`: its store `project/store`, its code `project`.
pub fn digits_command(project: &Path) -> Command {
    let mut c = Command::new(digits_example());
    c.current_dir(project)
        .env("FLAMMABLE_STORE", project.join("store"))
        .env("FLAMMABLE_CODE_DIR", project);
    c
}

/// A train run of digits in `project`, one epoch on one thread with seed 1 and the flags
/// `extra`; its id.
pub fn train_digits(project: &Path, extra: &[&str]) -> String {
    let ok = digits_command(project)
        .args([
            "train",
            "-q",
            "--epochs",
            "1",
            "--threads",
            "1",
            "--seed",
            "1",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .status()
        .expect("digits train starts");
    assert!(ok.success(), "digits train failed");
    flammable_core::store::Store::at(project.join("store"))
        .records()
        .expect("the store reads")
        .into_iter()
        .rfind(|r| {
            r.kind == flammable_core::store::record::RunKind::Train
                && extra.iter().all(|e| r.argv.iter().any(|a| a == e))
        })
        .expect("the train run")
        .id
}

/// `flammable ARGS --quiet` (the binary beside this benchmark's) in `project`, its store
/// `project/store`.
pub fn flammable_in(project: &Path, args: &[&str]) -> Command {
    let exe = std::env::current_exe().expect("own path");
    let mut cmd = Command::new(exe.parent().expect("target dir").join("flammable"));
    cmd.args(args)
        .arg("--quiet")
        .current_dir(project)
        .env("FLAMMABLE_STORE", project.join("store"));
    cmd
}

/// How long `cmd` took, start-up included, as a user waits for it; it must succeed.
pub fn time_command(mut cmd: Command) -> Duration {
    let t = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .output()
        .expect("the command starts");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

/// The `bench/` folder.
pub fn bench_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Runs a peer that prints the seconds its timed part took as its last line of output; `None`
/// (with a warning naming the peer) when it fails.
pub fn peer_seconds(command: &mut Command) -> Option<Duration> {
    let out = match command.stdin(Stdio::null()).output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("warning: cannot start {command:?}: {e}");
            return None;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seconds = stdout
        .lines()
        .last()
        .and_then(|l| l.trim().parse::<f64>().ok())
        .filter(|s| out.status.success() && s.is_finite() && *s >= 0.0);
    if seconds.is_none() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        eprintln!(
            "warning: peer {command:?} failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        );
    }
    seconds.map(Duration::from_secs_f64)
}

/// A Markdown table: variant, median, min–max, ratio to the first variant.
pub fn table(title: &str, results: &[(String, Samples)]) -> String {
    let base = results
        .first()
        .map(|(_, s)| s.median().as_secs_f64())
        .unwrap_or(1.0);
    let mut out = format!(
        "### {title}\n\n| variant | median | min–max | ratio |\n| --- | --- | --- | --- |\n"
    );
    for (name, s) in results {
        if s.0.is_empty() {
            out.push_str(&format!("| {name} | not run | | |\n"));
            continue;
        }
        let (lo, hi) = s.range();
        out.push_str(&format!(
            "| {name} | {:.2} ms | {:.2}–{:.2} ms | {:.2}x |\n",
            s.median().as_secs_f64() * 1e3,
            lo.as_secs_f64() * 1e3,
            hi.as_secs_f64() * 1e3,
            s.median().as_secs_f64() / base
        ));
    }
    out
}

/// Facts about this machine and build, for the head of a results file.
pub fn machine_facts() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kb: u64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "rustc unknown".into());
    let kernel = read("/proc/sys/kernel/osrelease");
    format!(
        "- machine: {cpu}, {cores} cores, {:.0} GiB, Linux {}\n- flammable {}, {}, {rustc}, {}\n- date: {} (UTC)\n",
        mem_kb as f64 / 1_048_576.0,
        kernel.trim(),
        env!("CARGO_PKG_VERSION"),
        if cfg!(debug_assertions) {
            "debug build"
        } else {
            "release build"
        },
        std::env::consts::ARCH,
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
    )
}

/// Prints `text` and, unless `smoke`, writes it with the machine's facts to
/// `bench/results/<name>.md`.
pub fn report(name: &str, text: &str, smoke: bool) {
    println!("{text}");
    if smoke {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    let body = format!("# {name}\n\n{}\n{text}\n", machine_facts());
    if let Err(e) = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(format!("{name}.md")), body))
    {
        eprintln!("warning: cannot save the results: {e}");
    }
}
