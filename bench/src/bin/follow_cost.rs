//! What testing while training costs the training: the digits example's `train` alone, and
//! with a `test --follow --every` beside it on the other core (each one thread), interleaved
//! round by round; and how long a checkpoint set waits between its completion and the start
//! of its test, with file-system events and with polling (the follower's `follow/delay_s`
//! series).
//!
//! `cargo run --release -p flammable-bench --bin follow_cost [-- --smoke]` (after building the
//! examples; `bench/run` does both)

use flammable_bench::{
    digits_command, digits_example, git_project, interleave_timed, report, table, TimedVariant,
};
use flammable_core::store::followers::read_run_series;
use flammable_core::store::record::RunKind;
use flammable_core::store::Store;
use std::cell::{Cell, RefCell};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        git_project(dir.path(), "bench");
        Project { dir }
    }

    fn store(&self) -> Store {
        Store::at(self.dir.path().join("store"))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = digits_command(self.dir.path());
        c.args(args)
            .args(["--threads", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    /// The newest train run, once it exists.
    fn newest_train_run(&self, after: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let runs: Vec<_> = self
                .store()
                .records()
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.kind == RunKind::Train)
                .collect();
            if runs.len() > after {
                if let Some(r) = runs.last() {
                    return r.id.clone();
                }
            }
            assert!(Instant::now() < deadline, "no train run appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn wait(mut child: Child) -> bool {
    child.wait().map(|s| s.success()).unwrap_or(false)
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let (epochs, reps) = if smoke { ("3", 1) } else { ("200", 7) };
    if !digits_example().exists() {
        eprintln!(
            "follow_cost: {} is missing: build the examples first (bench/run does)",
            digits_example().display()
        );
        std::process::exit(1);
    }
    let project = Project::new();
    let train = ["train", "-q", "--epochs", epochs, "--keep-checkpoints", "2"];
    // Train runs made so far (the newest one is the one a follower follows), and the delays
    // the followers recorded, with events and with polling.
    let trained = Cell::new(0usize);
    let delays: RefCell<[Vec<f64>; 2]> = RefCell::new([Vec::new(), Vec::new()]);
    let round = Cell::new(0usize);
    let alone = || -> Option<Duration> {
        let t = Instant::now();
        let ok = wait(project.command(&train).spawn().ok()?);
        trained.set(trained.get() + 1);
        ok.then(|| t.elapsed())
    };
    let followed = || -> Option<Duration> {
        // Every other round polls instead of waiting for events.
        round.set(round.get() + 1);
        let poll = round.get().is_multiple_of(2);
        let t = Instant::now();
        let trainer = project.command(&train).spawn().ok()?;
        let run = project.newest_train_run(trained.get());
        trained.set(trained.get() + 1);
        let mut follow = vec!["test", "--follow", "--every", run.as_str()];
        if poll {
            follow.push("--poll");
        }
        let follower = project.command(&follow).spawn().ok()?;
        let ok = wait(trainer);
        let elapsed = t.elapsed();
        if !(wait(follower) && ok) {
            return None;
        }
        let d = read_run_series(&project.store().run_dir(&run), "follow/delay_s").ok()?;
        delays.borrow_mut()[usize::from(poll)].extend(d.values);
        Some(elapsed)
    };
    let results = interleave_timed(
        reps,
        &mut [
            ("train alone", Box::new(alone) as TimedVariant<'_>),
            (
                "train with test --follow --every beside it",
                Box::new(followed),
            ),
        ],
    );
    let mut out = table(
        &format!("digits `train --epochs {epochs}` (one thread), wall time"),
        &results,
    );
    out.push_str("\n| from a set's completion to its test starting | sets | median | max |\n| --- | --- | --- | --- |\n");
    let delays = delays.into_inner();
    for (how, d) in ["file-system events", "polling (--poll)"]
        .iter()
        .zip(delays)
    {
        let mut d = d;
        d.sort_by(f64::total_cmp);
        if d.is_empty() {
            out.push_str(&format!("| {how} | 0 | | |\n"));
            continue;
        }
        out.push_str(&format!(
            "| {how} | {} | {:.0} ms | {:.0} ms |\n",
            d.len(),
            d[d.len() / 2] * 1e3,
            d[d.len() - 1] * 1e3
        ));
    }
    report("follow_cost", &out, smoke);
}
