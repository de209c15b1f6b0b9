//! Faults: Ctrl-C and SIGTERM stop a real training process at a step boundary with a
//! checkpoint; `--resume` then ends bit-identical to an uninterrupted run; so does a resume
//! after SIGKILL, from the last epoch checkpoint.

use crate::common::{example, Sandbox};
use flammable::checkpoint::load_tensors;
use flammable::store::RunStatus;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EPOCHS: &str = "40";

fn start(s: &Sandbox, seed: &str) -> std::process::Child {
    spawn(
        s,
        &[
            "train",
            "-q",
            "--epochs",
            EPOCHS,
            "--seed",
            seed,
            "--log-every",
            "5",
        ],
    )
}

/// The digits example started with `args` in the sandbox, its stderr piped.
fn spawn(s: &Sandbox, args: &[&str]) -> std::process::Child {
    Command::new(example("digits"))
        .args(args)
        .current_dir(s.path())
        .env("FLAMMABLE_STORE", s.path().join("store"))
        .env("FLAMMABLE_CODE_DIR", s.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until a run other than `reference` has recorded at least `points` metric points.
fn wait_for_points(s: &Sandbox, points: u64, reference: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the run never got that far");
        if let Some(id) = s.store().ids().unwrap().iter().find(|i| *i != reference) {
            if metric_points(s, id) >= points {
                return id.clone();
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The metric points run `id` has written so far.
fn metric_points(s: &Sandbox, id: &str) -> u64 {
    std::fs::metadata(s.store().metrics_path(id)).map_or(0, |m| m.len()) / 32
}

fn signal(child: &std::process::Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Run `id`'s latest weights by name, for comparing runs bit for bit.
pub(crate) fn weights(s: &Sandbox, id: &str) -> Vec<(String, Vec<f32>)> {
    let t = load_tensors(&s.store().run_dir(id).join("checkpoints/latest.safetensors")).unwrap();
    let mut v: Vec<_> = t
        .into_iter()
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn series(s: &Sandbox, id: &str) -> Vec<(String, u64, f64)> {
    flammable::store::read_metrics(&s.store().metrics_path(id))
        .unwrap()
        .into_iter()
        .map(|p| (p.name.to_string(), p.step, p.value))
        .collect()
}

/// The reference: the same seed, never interrupted.
fn uninterrupted(s: &Sandbox, seed: &str) -> String {
    s.ok(
        "digits",
        &[
            "train",
            "-q",
            "--epochs",
            EPOCHS,
            "--seed",
            seed,
            "--log-every",
            "5",
        ],
    );
    s.store().ids().unwrap().pop().unwrap()
}

fn interrupt_and_resume(sig: &str, code: i32, after_points: u64) {
    let s = Sandbox::new();
    let reference = uninterrupted(&s, "21");
    let child = start(&s, "21");
    let id = wait_for_points(&s, after_points, &reference);
    signal(&child, sig);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(&format!("train --resume {id}")), "{stderr}");
    // Said once, without an error line after it.
    assert!(!stderr.contains("error:"), "{stderr}");
    let record = s.store().read(&id).unwrap();
    assert_eq!(record.status, RunStatus::Interrupted);

    s.ok("digits", &["train", "-q", "--resume", &id]);
    let record = s.store().read(&id).unwrap();
    assert_eq!(record.status, RunStatus::Finished);
    assert_eq!(
        weights(&s, &id),
        weights(&s, &reference),
        "bit-identical weights"
    );
    assert_eq!(
        series(&s, &id),
        series(&s, &reference),
        "identical metric series"
    );
    assert_eq!(record.metrics, s.store().read(&reference).unwrap().metrics);
}

#[test]
fn ctrl_c_then_resume_is_bit_identical() {
    interrupt_and_resume("-INT", 130, 40);
}

#[test]
fn sigterm_then_resume_is_bit_identical() {
    interrupt_and_resume("-TERM", 143, 130);
}

#[test]
fn sigkill_then_resume_from_the_last_epoch_checkpoint_is_bit_identical() {
    let s = Sandbox::new();
    let reference = uninterrupted(&s, "22");
    let mut child = start(&s, "22");
    // Past the first epoch's checkpoint (23 steps per epoch).
    let id = wait_for_points(&s, 60, &reference);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(s.store().read(&id).unwrap().status, RunStatus::Crashed);
    s.ok("digits", &["train", "-q", "--resume", &id]);
    assert_eq!(weights(&s, &id), weights(&s, &reference));
    assert_eq!(series(&s, &id), series(&s, &reference));
}

#[test]
fn sigkill_then_resume_keeps_what_the_epoch_end_hooks_logged() {
    // The wine example logs a weight norm in an `epoch_end` hook: the epoch's checkpoint is
    // written after it, so a run killed in the next epoch resumes with that point (it lost
    // it when the checkpoint came before the hook, and the resumed run did not log it again).
    let s = Sandbox::new();
    let args = [
        "train",
        "-q",
        "--epochs",
        "60",
        "--lr",
        "1e-3",
        "--seed",
        "23",
        "--log-every",
        "5",
    ];
    s.ok("wine", &args);
    let reference = s.store().ids().unwrap().pop().unwrap();
    let mut child = Command::new(example("wine"))
        .args(args)
        .current_dir(s.path())
        .env("FLAMMABLE_STORE", s.path().join("store"))
        .env("FLAMMABLE_CODE_DIR", s.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A few epochs in: past several checkpoints and the hooks' points before them.
    let id = wait_for_points(&s, 80, &reference);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(s.store().read(&id).unwrap().status, RunStatus::Crashed);
    s.ok("wine", &["train", "-q", "--resume", &id]);
    assert_eq!(weights(&s, &id), weights(&s, &reference));
    let norms = |id: &str| {
        series(&s, id)
            .into_iter()
            .filter(|(name, _, _)| name == "out_weight_norm")
            .collect::<Vec<_>>()
    };
    assert!(norms(&reference).len() >= 10, "one point an epoch");
    assert_eq!(norms(&id), norms(&reference));
    assert_eq!(series(&s, &id), series(&s, &reference));
}

#[test]
fn sigkill_during_gradient_accumulation_then_resume_is_bit_identical_at_every_point() {
    // 23 batches an epoch and 3 iterations per optimizer step: the epoch checkpoints fall
    // after 2, 1 and 0 iterations of an accumulation in turn. The same run is killed at
    // several points and resumed each time; it must end exactly as an uninterrupted one.
    let args = |seed| {
        vec![
            "train",
            "-q",
            "--epochs",
            "12",
            "--seed",
            seed,
            "--log-every",
            "1",
            "--accumulate",
            "3",
        ]
    };
    let s = Sandbox::new();
    s.ok("digits", &args("7"));
    let reference = s.store().ids().unwrap().pop().unwrap();
    let mut child = spawn(&s, &args("7"));
    let id = wait_for_points(&s, 30, &reference);
    let mut kills = 0;
    for until in [75, 110, 150, 190, 230] {
        // Wait for more points than the last checkpoint's, or for the run to end.
        let deadline = Instant::now() + Duration::from_secs(60);
        while metric_points(&s, &id) < until && child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the run never got that far");
            std::thread::sleep(Duration::from_millis(2));
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        assert_eq!(s.store().read(&id).unwrap().status, RunStatus::Crashed);
        child = spawn(&s, &["train", "-q", "--resume", &id]);
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(kills >= 3, "killed only {kills} times");
    assert_eq!(
        weights(&s, &id),
        weights(&s, &reference),
        "bit-identical weights"
    );
    assert_eq!(series(&s, &id), series(&s, &reference), "identical metrics");
}

#[test]
fn a_second_ctrl_c_exits_at_once_and_the_run_still_resumes_bit_identical() {
    let s = Sandbox::new();
    let reference = uninterrupted(&s, "24");
    let child = start(&s, "24");
    let id = wait_for_points(&s, 60, &reference);
    signal(&child, "-INT");
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    // Whether the first signal's checkpoint finished or not, every reader sees a consistent
    // run: interrupted, or crashed (its lock released), with whole metric records.
    let record = s.store().read(&id).unwrap();
    assert!(
        matches!(record.status, RunStatus::Interrupted | RunStatus::Crashed),
        "{:?}",
        record.status
    );
    let bytes = std::fs::metadata(s.store().metrics_path(&id))
        .unwrap()
        .len();
    assert_eq!(bytes % 32, 0, "whole metric records");
    assert!(s.ok("digits", &["runs"]).contains(&id));
    s.ok("digits", &["train", "-q", "--resume", &id]);
    assert_eq!(weights(&s, &id), weights(&s, &reference));
    assert_eq!(series(&s, &id), series(&s, &reference));
}

#[test]
fn resuming_changed_code_warns_and_records_the_new_snapshot() {
    let s = Sandbox::new();
    let child = start(&s, "25");
    let id = wait_for_points(&s, 60, "");
    signal(&child, "-INT");
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(130));
    let before = s.store().read(&id).unwrap();
    assert!(before.snapshot.is_some() && before.resumed_with.is_empty());
    std::fs::write(s.path().join("notes.txt"), "tried a wider layer\n").unwrap();
    let out = s.run("digits", &["train", "--resume", &id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: code changed") && stderr.contains("notes.txt"),
        "{stderr}"
    );
    let after = s.store().read(&id).unwrap();
    assert_eq!(after.resumed_with.len(), 1);
    assert_ne!(
        after.resumed_with[0].commit,
        before.snapshot.unwrap().commit
    );
}

#[test]
fn resume_refuses_what_cannot_be_resumed() {
    let s = Sandbox::new();
    s.ok("digits", &["train", "-q", "--epochs", "1"]);
    let finished = s.store().ids().unwrap().pop().unwrap();
    for (args, says) in [
        (
            vec!["train", "--resume", finished.as_str()],
            "nothing to resume",
        ),
        (vec!["train", "--resume", "nosuchrun"], "no run"),
    ] {
        let out = s.run("digits", &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}

#[test]
fn a_nan_loss_fails_the_run_with_its_step() {
    let s = Sandbox::new();
    let out = s.run(
        "digits",
        &[
            "train",
            "-q",
            "--epochs",
            "3",
            "--lr",
            "1e30",
            "--log-every",
            "10",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("loss `loss` is") && stderr.contains("at step"),
        "{stderr}"
    );
    let record = &s.store().records().unwrap()[0];
    assert_eq!(record.status, RunStatus::Failed);
    assert!(record.error.as_deref().unwrap_or("").contains("at step"));
}

#[test]
fn a_corrupt_record_is_reported_and_the_others_still_list() {
    let s = Sandbox::new();
    s.ok("digits", &["train", "-q", "--epochs", "1"]);
    s.ok("digits", &["train", "-q", "--epochs", "1"]);
    let ids = s.store().ids().unwrap();
    std::fs::write(
        s.store().run_dir(&ids[0]).join("record.ron"),
        "(version: 1, garbage",
    )
    .unwrap();
    let out = s.run("digits", &["runs"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&ids[0]), "{stderr}");
    assert!(
        stdout.contains(&ids[1]) && !stdout.contains(&ids[0]),
        "{stdout}"
    );
    // A record from a newer flammable is refused by name, not misread.
    let newer = std::fs::read_to_string(s.store().run_dir(&ids[1]).join("record.ron")).unwrap();
    std::fs::write(
        s.store().run_dir(&ids[1]).join("record.ron"),
        newer.replacen("version: 1", "version: 99", 1),
    )
    .unwrap();
    let out = s.run("digits", &["show", &ids[1]]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("newer flammable"),
        "{stderr}"
    );
}

#[test]
fn a_corrupt_latest_checkpoint_falls_back_to_an_older_one() {
    let s = Sandbox::new();
    let reference = uninterrupted(&s, "23");
    let child = start(&s, "23");
    // Past three epoch checkpoints (23 steps per epoch).
    let id = wait_for_points(&s, 100, &reference);
    signal(&child, "-INT");
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(130));
    let dir = s.store().run_dir(&id).join("checkpoints");
    let sets = flammable::checkpoint::numbered_checkpoints(&dir);
    assert!(sets.len() >= 2 && sets.len() <= 3, "kept: {sets:?}");
    // Truncate the newest weights (latest links to the same file).
    std::fs::write(dir.join("latest.safetensors"), b"truncated").unwrap();
    let out = s.run("digits", &["train", "-q", "--resume", &id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("unusable") && stderr.contains("trying an older one"),
        "{stderr}"
    );
    assert_eq!(
        weights(&s, &id),
        weights(&s, &reference),
        "bit-identical after the fallback"
    );
    assert_eq!(series(&s, &id), series(&s, &reference));
}

#[test]
fn mid_epoch_checkpoints_and_the_newest_k_are_kept() {
    let s = Sandbox::new();
    s.ok(
        "digits",
        &[
            "train",
            "-q",
            "--epochs",
            "2",
            "--checkpoint-every",
            "10",
            "--keep-checkpoints",
            "2",
        ],
    );
    let id = s.store().ids().unwrap().pop().unwrap();
    let dir = s.store().run_dir(&id).join("checkpoints");
    // 46 steps: sets at 10, 20, 23 (epoch end), 30, 40, 46; the newest two remain.
    assert_eq!(
        flammable::checkpoint::numbered_checkpoints(&dir),
        vec!["step-0000000046".to_string(), "step-0000000040".to_string()]
    );
    assert!(dir.join("latest.safetensors").exists());
}

#[test]
fn a_panic_in_task_code_fails_the_run_and_keeps_the_backtrace() {
    let s = Sandbox::new();
    let out = Command::new(env!("CARGO_BIN_EXE_panicky_task"))
        .args(["train", "-q", "--epochs", "3"])
        .current_dir(s.path())
        .env("FLAMMABLE_STORE", s.path().join("store"))
        .env("FLAMMABLE_CODE_DIR", s.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("the model broke at call 5") && stderr.contains("panicky_task.rs"),
        "{stderr}"
    );
    let record = &s.store().records().unwrap()[0];
    assert_eq!(record.status, RunStatus::Failed);
    let saved = std::fs::read_to_string(s.store().run_dir(&record.id).join("panic.txt")).unwrap();
    assert!(
        saved.contains("the model broke") && saved.lines().count() > 3,
        "{saved}"
    );
}
