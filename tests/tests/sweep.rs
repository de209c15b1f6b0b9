//! A sweep's runs and their parent: what happens when the sweep's process is killed, its
//! terminal closes, a service manager stops the whole group, or a run cannot start. Real
//! processes, real process groups, real signals (`kill`).

use crate::common::{example, lines_of, wait_for, wait_for_line, Lines, Sandbox};
use flammable::store::{Record, RunKind, RunStatus};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A sweep of the digits example in its own process group (so that a signal to the group
/// reaches no test), and the lines it writes to stderr.
struct Sweep {
    process: Child,
    said: Lines,
}

impl Sweep {
    fn start(s: &Sandbox, exe: &Path, args: &[&str], tmp: Option<&Path>) -> Sweep {
        // With SIGHUP's default action, as a terminal's session has it, even when these
        // tests run under `nohup` (which the sweep would honour by ignoring it); `env`
        // execs the program, which keeps the pid.
        let mut command = Command::new("env");
        command.arg("--default-signal=HUP").arg(exe);
        // `nohup PROGRAM ARGS…` is given its arguments whole.
        if exe != Path::new("nohup") {
            command.args(["train", "--allow-no-snapshot"]);
        }
        command
            .args(args)
            .current_dir(s.path())
            .env("FLAMMABLE_STORE", s.path().join("store"))
            .env("FLAMMABLE_CODE_DIR", s.path())
            .env_remove("RAYON_NUM_THREADS")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(tmp) = tmp {
            command.env("TMPDIR", tmp);
        }
        let mut process = command.spawn().unwrap();
        let said = lines_of(process.stderr.take().unwrap());
        Sweep { process, said }
    }

    fn pid(&self) -> String {
        self.process.id().to_string()
    }

    /// Its exit code, once it has ended (up to `secs`).
    fn exit_code(&mut self, secs: u64) -> Option<i32> {
        let mut status = None;
        wait_for(secs, "the sweep to end", || {
            status = self.process.try_wait().unwrap();
            status.is_some()
        });
        status.unwrap().code()
    }

    /// What it wrote to stderr, once it has ended.
    fn said(&self) -> String {
        // The reading thread may still hold the last lines for a moment.
        std::thread::sleep(std::time::Duration::from_millis(100));
        self.said.lock().unwrap().join("\n")
    }
}

impl Drop for Sweep {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Kills, when dropped, the runs of the sandbox's store whose process still lives: a test
/// that fails leaves no run training (a sweep's run outlives its parent when it is wrong).
struct Reaper<'s>(&'s Sandbox);

impl Drop for Reaper<'_> {
    fn drop(&mut self) {
        for r in self.0.store().records().unwrap_or_default() {
            if r.status == RunStatus::Running {
                let _ = Command::new("kill")
                    .args(["-KILL", &r.pid.to_string()])
                    .status();
            }
        }
    }
}

/// Sends `signal` (`-TERM`, …) to each of `targets` (pids; `-PGID` for a process group).
fn kill(signal: &str, targets: &[String]) {
    let sent = Command::new("kill")
        .arg(signal)
        .arg("--")
        .args(targets)
        .status()
        .unwrap();
    assert!(sent.success(), "kill {signal} {targets:?}");
}

/// The records of the train runs of the sandbox's store.
fn train_runs(s: &Sandbox) -> Vec<Record> {
    s.store()
        .records()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.kind == RunKind::Train)
        .collect()
}

/// Waits for `n` running runs of a sweep, and returns them.
fn running(s: &Sandbox, n: usize) -> Vec<Record> {
    let mut runs = Vec::new();
    wait_for(60, &format!("{n} running runs of the sweep"), || {
        runs = train_runs(s)
            .into_iter()
            .filter(|r| r.status == RunStatus::Running && r.sweep.is_some())
            .collect();
        runs.len() == n
    });
    runs
}

fn pids(runs: &[Record]) -> Vec<String> {
    runs.iter().map(|r| r.pid.to_string()).collect()
}

/// Waits until every train run of the store has status `status`, and `n` of them.
fn wait_all(s: &Sandbox, n: usize, status: RunStatus) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let runs = train_runs(s);
        if runs.len() == n && runs.iter().all(|r| r.status == status) {
            return;
        }
        let now: Vec<String> = runs
            .iter()
            .map(|r| format!("{} {}", r.id, r.status))
            .collect();
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {n} runs {status}: {now:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_killed_sweep_leaves_its_runs_stopped_with_a_checkpoint_and_resume_continues_it() {
    let s = Sandbox::new();
    let _reaper = Reaper(&s);
    // A few epochs of single examples: long enough to be caught running (seconds), short
    // enough to resume.
    let mut sweep = Sweep::start(
        &s,
        &example("digits"),
        &[
            "-q",
            "--epochs",
            "4",
            "--batch-size",
            "1",
            "--sweep",
            "hidden=8,16,32",
            "--parallel",
            "2",
        ],
        None,
    );
    // Killed while its runs train (they take seconds; they are seen within milliseconds of
    // their start). They are not stopped meanwhile: the kernel hangs up a stopped process
    // whose group its parent's death orphans.
    let runs = running(&s, 2);
    kill("-KILL", &[sweep.pid()]);
    assert_eq!(sweep.exit_code(10), None, "killed");
    // Without their sweep, the runs stop at their next step, with a checkpoint.
    wait_all(&s, 2, RunStatus::Interrupted);
    for r in &runs {
        let latest = s.store().run_dir(&r.id).join("checkpoints/latest.ron");
        assert!(latest.exists(), "{r:?}");
    }
    // The store says what the sweep left, and how to continue it.
    let id = runs[0].sweep.clone().unwrap();
    let listed = s.run("digits", &["runs", "--sweep", &id]);
    let left = String::from_utf8_lossy(&listed.stderr);
    assert!(
        left.contains("2 run(s) stopped, 1 not started (hidden=32)")
            && left.contains(&format!("`train --resume {id}` of digits continues it")),
        "{left}"
    );
    // The sweep continues: its two runs resume, the third combination starts.
    let out = s.run(
        "digits",
        &["train", "-q", "--allow-no-snapshot", "--resume", &id],
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    wait_all(&s, 3, RunStatus::Finished);
    let after = train_runs(&s);
    assert!(runs.iter().all(|r| after.iter().any(|a| a.id == r.id)));
    let mut trials: Vec<Option<usize>> = after.iter().map(|r| r.sweep_trial).collect();
    trials.sort();
    assert_eq!(trials, [Some(0), Some(1), Some(2)]);
    // Nothing is left to continue.
    let again = s.run("digits", &["train", "--resume", &id]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing left to run"));
}

#[test]
fn a_sweep_whose_terminal_closes_stops_its_runs_and_says_what_is_left() {
    let s = Sandbox::new();
    let _reaper = Reaper(&s);
    let tmp = s.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut sweep = Sweep::start(
        &s,
        &example("digits"),
        &[
            "--epochs",
            "100000",
            "--sweep",
            "hidden=8,16,32",
            "--parallel",
            "2",
        ],
        Some(&tmp),
    );
    let runs = running(&s, 2);
    // The runs' stderr is kept in one private folder, nothing else is in the temp folder.
    let entries: Vec<std::fs::DirEntry> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let meta = entries[0].metadata().unwrap();
    assert!(meta.is_dir(), "{entries:?}");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o700
    );
    kill("-HUP", &[sweep.pid()]);
    assert_eq!(sweep.exit_code(60), Some(128 + 1));
    let said = sweep.said();
    assert!(said.contains("1 not started (hidden=32)"), "{said}");
    let id = runs[0].sweep.clone().unwrap();
    assert!(said.contains(&format!("train --resume {id}`")), "{said}");
    wait_all(&s, 2, RunStatus::Interrupted);
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "left behind");
}

#[test]
fn a_sweep_under_nohup_goes_on_when_its_terminal_closes() {
    let s = Sandbox::new();
    let _reaper = Reaper(&s);
    let mut sweep = Sweep::start(
        &s,
        Path::new("nohup"),
        &[
            example("digits").to_str().unwrap(),
            "train",
            "--allow-no-snapshot",
            "--epochs",
            "100000",
            "--sweep",
            "hidden=8,16",
            "--parallel",
            "2",
        ],
        None,
    );
    running(&s, 2);
    // SIGHUP, then Ctrl-C: the sweep stops on the second, the first one ignored.
    kill("-HUP", &[sweep.pid()]);
    kill("-INT", &[sweep.pid()]);
    assert_eq!(sweep.exit_code(60), Some(128 + 2), "{}", sweep.said());
    wait_all(&s, 2, RunStatus::Interrupted);
}

#[test]
fn a_stop_sent_to_every_process_of_a_sweep_stops_each_run_once_with_a_checkpoint() {
    let s = Sandbox::new();
    let _reaper = Reaper(&s);
    let mut sweep = Sweep::start(
        &s,
        &example("digits"),
        &[
            "--epochs",
            "100000",
            "--sweep",
            "hidden=8,16",
            "--parallel",
            "2",
        ],
        None,
    );
    let runs = running(&s, 2);
    // As systemd or Slurm do: SIGTERM to every process group of the sweep, the sweep's and
    // each run's. The runs are stopped meanwhile, so that both the signal and the sweep's
    // request are there when they go on.
    kill("-STOP", &pids(&runs));
    let mut groups = vec![format!("-{}", sweep.pid())];
    groups.extend(runs.iter().map(|r| format!("-{}", r.pid)));
    kill("-TERM", &groups);
    wait_for_line(&sweep.said, 20, "stopping the sweep");
    kill("-CONT", &pids(&runs));
    // Each run took the two as one stop: interrupted, with a checkpoint of where it stood.
    wait_all(&s, 2, RunStatus::Interrupted);
    assert_eq!(sweep.exit_code(60), Some(128 + 15), "{}", sweep.said());
    for r in &runs {
        let log = std::fs::read_to_string(s.store().run_dir(&r.id).join("log.txt")).unwrap();
        assert!(log.contains("checkpoint saved"), "{log}");
    }
}

#[test]
fn a_sweep_that_cannot_start_a_run_stops_the_runs_it_started() {
    let s = Sandbox::new();
    let _reaper = Reaper(&s);
    // A copy of the example, removed while the sweep runs: its next run cannot start.
    let exe = s.path().join("digits");
    if std::fs::hard_link(example("digits"), &exe).is_err() {
        std::fs::copy(example("digits"), &exe).unwrap();
    }
    let mut sweep = Sweep::start(
        &s,
        &exe,
        &[
            "--epochs",
            "100000",
            "--sweep",
            "hidden=8,16,32",
            "--parallel",
            "2",
        ],
        None,
    );
    let runs = running(&s, 2);
    std::fs::remove_file(&exe).unwrap();
    // One run dies: the sweep starts the third, and cannot.
    kill("-KILL", &[runs[0].pid.to_string()]);
    // The other run did not go on alone: it stopped with a checkpoint.
    wait_for(60, "the other run interrupted", || {
        s.store().read(&runs[1].id).unwrap().status == RunStatus::Interrupted
    });
    assert_eq!(sweep.exit_code(60), Some(1));
    let said = sweep.said();
    assert!(said.contains("cannot start a run of the sweep"), "{said}");
    assert!(said.contains("1 not started (hidden=32)"), "{said}");
}

#[test]
fn a_sweep_finds_its_run_by_the_combination_it_gave_not_by_pid() {
    let s = Sandbox::new();
    let _reaper = Reaper(&s);
    let mut sweep = Sweep::start(
        &s,
        &example("digits"),
        // Long enough to be seen running on a loaded machine (a one-epoch run could end
        // between two looks).
        &["--epochs", "300", "--sweep", "hidden=8"],
        None,
    );
    let run = running(&s, 1).remove(0);
    kill("-STOP", &[run.pid.to_string()]);
    // Another record of the sweep, older, made by a process with the same pid (pids are
    // reused).
    let sweep_id = run.sweep.clone().unwrap();
    let decoy = Record {
        id: format!("{sweep_id}-decoy"),
        sweep: Some(sweep_id),
        pid: run.pid,
        status: RunStatus::Failed,
        error: Some("not this run".into()),
        ..Record::new("digits", RunKind::Train, 0)
    };
    std::fs::create_dir_all(s.store().run_dir(&decoy.id)).unwrap();
    s.store().write(&decoy).unwrap();
    kill("-CONT", &[run.pid.to_string()]);
    assert_eq!(sweep.exit_code(60), Some(0), "{}", sweep.said());
    let said = sweep.said();
    assert!(said.contains(&format!("run {} finished", run.id)), "{said}");
}
