//! Data-parallel training under a real `mpiexec` (MPICH): N ranks × batch B is the same
//! training as 1 rank × batch N·B; reruns are bit-identical; Ctrl-C and resume restore every
//! rank; a dead or failing rank ends the job instead of hanging it.

use crate::common::*;
use flammable::store::{RunKind, RunStatus};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `mpiexec -n N` of example `name` in the sandbox, or `None` (the test skipped) without it.
fn mpiexec(s: &Sandbox, n: usize, name: &str) -> Option<Command> {
    mpiexec_of(s, n, &example(name))
}

/// `mpiexec -n N` of the program `exe` in the sandbox, or `None` (the test skipped).
fn mpiexec_of(s: &Sandbox, n: usize, exe: &std::path::Path) -> Option<Command> {
    if Command::new("mpiexec").arg("--version").output().is_err() {
        skip_or_fail("mpiexec is not installed (apt-get install mpich libmpich-dev)");
        return None;
    }
    let mut c = Command::new("mpiexec");
    c.current_dir(s.path())
        .env("FLAMMABLE_STORE", s.path().join("store"))
        .env("FLAMMABLE_CODE_DIR", s.path())
        .env_remove("RAYON_NUM_THREADS")
        .args(["-n", &n.to_string()])
        .arg(exe);
    Some(c)
}

/// The flags of a small, deterministic digits training.
const SMALL: [&str; 10] = [
    "--dropout",
    "0",
    "--seed",
    "3",
    "--threads",
    "1",
    "--log-every",
    "1",
    "--test-every",
    "1",
];

fn newest_train_run(s: &Sandbox) -> flammable::store::Record {
    s.store()
        .records()
        .unwrap()
        .into_iter()
        .rev()
        .find(|r| r.kind == RunKind::Train)
        .expect("a train run")
}

fn losses(s: &Sandbox, id: &str) -> Vec<(u64, f64)> {
    flammable::store::read_metrics(&s.store().metrics_path(id))
        .unwrap()
        .into_iter()
        .filter(|p| &*p.name == "loss")
        .map(|p| (p.step, p.value))
        .collect()
}

fn metric(s: &Sandbox, id: &str, name: &str) -> Vec<f64> {
    flammable::store::read_metrics(&s.store().metrics_path(id))
        .unwrap()
        .into_iter()
        .filter(|p| &*p.name == name)
        .map(|p| p.value)
        .collect()
}

/// The final weights of run `id` (its `latest` checkpoint), by name.
fn weights(s: &Sandbox, id: &str) -> Vec<(String, Vec<f32>)> {
    let path = s
        .store()
        .run_dir(id)
        .join("checkpoints")
        .join("latest.safetensors");
    let mut all: Vec<(String, Vec<f32>)> = flammable_core::checkpoint::load_tensors(&path)
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// Asserts that runs `a` and `b` end with the same weights, each within `tolerance`.
fn assert_weights_within(s: &Sandbox, a: &str, b: &str, tolerance: f32) {
    for ((name, x), (_, y)) in weights(s, a).iter().zip(weights(s, b)) {
        let worst = x
            .iter()
            .zip(&y)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(worst <= tolerance, "{name}: weights differ by {worst}");
    }
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn two_ranks_train_as_one_with_twice_the_batch_and_reruns_are_bit_identical() {
    let s = Sandbox::new();
    let Some(mut two) = mpiexec(&s, 2, "digits") else {
        return;
    };
    let args = [
        &["train", "--epochs", "2", "--batch-size", "32"],
        &SMALL[..],
    ]
    .concat();
    ok(&two.args(&args).output().unwrap());
    let a = newest_train_run(&s);
    ok(&mpiexec(&s, 2, "digits")
        .unwrap()
        .args(&args)
        .output()
        .unwrap());
    let b = newest_train_run(&s);
    let one = [
        &["train", "--epochs", "2", "--batch-size", "64"],
        &SMALL[..],
    ]
    .concat();
    ok(&s.run("digits", &one));
    let c = newest_train_run(&s);
    assert!(a.id != b.id && b.id != c.id);

    let d = a
        .distributed
        .as_ref()
        .expect("the record says how the run was spread");
    assert_eq!((d.world_size, d.rank_batch, d.global_batch), (2, 32, 64));
    assert_eq!(d.hosts.len(), 2);
    assert_eq!(d.backend, "mpi, shared memory");
    assert!(d.allreduces > 0 && d.allreduce_seconds > 0.0, "{d:?}");
    assert!(c.distributed.is_none());
    // `diff` says what else made the steps alike: two processes of 32, one of 64.
    let diff = s.ok("digits", &["diff", "--stat", &c.id, &a.id]);
    assert!(
        diff.contains("batch_size: 64 → 32")
            && diff.contains("processes: 1 → 2 (examples a step: 64 → 64)"),
        "{diff}"
    );

    // The same world and seed: bit for bit.
    assert_eq!(losses(&s, &a.id), losses(&s, &b.id));
    assert_eq!(weights(&s, &a.id), weights(&s, &b.id));

    // 2 × 32 against 1 × 64, step for step: the same examples in every step, the gradient
    // of the mean loss over them; only the order of float sums differs (two means of 32
    // averaged, against one mean of 64). The tolerance is a few ulps of f32 per step,
    // grown over 2 epochs of AdamW.
    let (two_losses, one_losses) = (losses(&s, &a.id), losses(&s, &c.id));
    assert_eq!(two_losses.len(), one_losses.len());
    assert!(two_losses.len() > 40, "{}", two_losses.len());
    for ((step, x), (_, y)) in two_losses.iter().zip(&one_losses) {
        assert!(
            (x - y).abs() <= 1e-4 * y.abs().max(1.0),
            "step {step}: {x} vs {y}"
        );
    }
    assert_weights_within(&s, &a.id, &c.id, 1e-4);
    // The test metrics are pooled over the ranks' shares of the test split: those of the
    // whole split, as one process computes them.
    let (two_acc, one_acc) = (
        metric(&s, &a.id, "test/accuracy"),
        metric(&s, &c.id, "test/accuracy"),
    );
    assert_eq!(two_acc.len(), 2);
    for (x, y) in two_acc.iter().zip(&one_acc) {
        assert!((x - y).abs() <= 2e-3, "test accuracy {x} vs {y}");
    }
}

#[test]
fn with_accumulation_two_ranks_train_as_one_with_twice_the_batch() {
    let s = Sandbox::new();
    let Some(mut two) = mpiexec(&s, 2, "digits") else {
        return;
    };
    // 1,437 training examples: 44 micro-batches of 32 and one of 29 an epoch, which the ranks
    // split 16 + 13. The short one weighs as one process weighs it, not the rank's whole
    // accumulation by its last micro-batch.
    let flags = ["--epochs", "2", "--accumulate", "3"];
    let args = [&["train", "--batch-size", "16"], &flags[..], &SMALL[..6]].concat();
    ok(&two.args(&args).output().unwrap());
    let a = newest_train_run(&s);
    let one = [&["train", "--batch-size", "32"], &flags[..], &SMALL[..6]].concat();
    ok(&s.run("digits", &one));
    let c = newest_train_run(&s);
    assert!(a.id != c.id);
    assert_weights_within(&s, &a.id, &c.id, 1e-4);
}

/// Waits for `child` to end, up to `secs`.
fn exits_within(child: &mut std::process::Child, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the job did not end within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ctrl_c_stops_every_rank_at_one_step_and_resume_continues_them_exactly() {
    let s = Sandbox::new();
    let Some(mut reference) = mpiexec(&s, 2, "digits") else {
        return;
    };
    let args = [
        &[
            "train",
            "--epochs",
            "16",
            "--batch-size",
            "16",
            "--hidden",
            "512",
        ],
        &SMALL[..],
    ]
    .concat();
    ok(&reference.args(&args).output().unwrap());
    let whole = newest_train_run(&s);

    let mut job = mpiexec(&s, 2, "digits").unwrap();
    let mut child = job
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stderr.take().unwrap());
    wait_for_line(&lines, 60, "epoch 1/16");
    // Ctrl-C reaches mpiexec, which passes it on to every rank.
    flammable_core::util::signal::send(child.id(), 2).unwrap();
    // Every rank exits 130; what mpiexec itself returns after a Ctrl-C is MPICH's choice (0
    // or 130, measured): the record says how the run ended.
    exits_within(&mut child, 30);
    let stopped = newest_train_run(&s);
    assert_eq!(stopped.status, RunStatus::Interrupted);
    assert!(
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("resume with `mpiexec -n 2 ")),
        "{:?}",
        lines.lock().unwrap()
    );

    // Resumed alone, its position would count other steps: refused.
    let alone = s.run("digits", &["train", "--resume", &stopped.id]);
    assert_one_line_error(
        &alone,
        2,
        &[
            "trained on 2 process(es)",
            "mpiexec -n 2",
            "from the middle of an epoch with --batch-size ",
        ],
    );

    let resumed = mpiexec(&s, 2, "digits")
        .unwrap()
        .args(["train", "--resume", &stopped.id])
        .output()
        .unwrap();
    ok(&resumed);
    let after = s.store().read(&stopped.id).unwrap();
    assert_eq!(after.status, RunStatus::Finished);
    // Interrupted and resumed, or not: the same training, bit for bit.
    assert_eq!(weights(&s, &stopped.id), weights(&s, &whole.id));
    assert_eq!(losses(&s, &stopped.id), losses(&s, &whole.id));
}

/// The pid of rank `rank` of the job whose processes use `store`.
fn rank_pid(store: &std::path::Path, rank: usize) -> Option<i32> {
    let want_rank = format!("PMI_RANK={rank}");
    let want_store = format!("FLAMMABLE_STORE={}", store.display());
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let vars: Vec<String> = environ
            .split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        let exe = std::fs::read_link(entry.path().join("exe")).unwrap_or_default();
        if vars.contains(&want_rank)
            && vars.contains(&want_store)
            && exe.file_name().is_some_and(|n| n == "digits")
        {
            return Some(pid);
        }
    }
    None
}

#[test]
fn a_killed_rank_ends_the_job_the_run_reads_crashed_and_resumes_on_every_rank() {
    let s = Sandbox::new();
    let Some(mut job) = mpiexec(&s, 2, "digits") else {
        return;
    };
    let args = [
        "train",
        "--epochs",
        "16",
        "--batch-size",
        "16",
        "--hidden",
        "512",
        "--threads",
        "1",
    ];
    let mut child = job
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stderr.take().unwrap());
    // After epoch 2 begins, epoch 1's checkpoint is written.
    wait_for_line(&lines, 60, "epoch 2/16");
    let pid = rank_pid(&s.path().join("store"), 1).expect("rank 1 runs");
    flammable_core::util::signal::send(pid as u32, 9).unwrap();
    let status = exits_within(&mut child, 15);
    assert!(!status.success());
    let run = newest_train_run(&s);
    assert_eq!(run.status, RunStatus::Crashed, "{run:?}");

    let resumed = mpiexec(&s, 2, "digits")
        .unwrap()
        .args(["train", "--resume", &run.id])
        .output()
        .unwrap();
    ok(&resumed);
    let run = s.store().read(&run.id).unwrap();
    assert_eq!(run.status, RunStatus::Finished);
    let last = losses(&s, &run.id).last().map(|(step, _)| *step);
    // Every step once, none twice, none missing: the resume started where the checkpoint was.
    let steps = losses(&s, &run.id);
    let mut seen: Vec<u64> = steps.iter().map(|(step, _)| *step).collect();
    seen.dedup();
    assert_eq!(seen.len(), steps.len(), "a step recorded twice");
    assert_eq!(last, Some(steps.len() as u64 - 1));
}

#[test]
fn a_rank_that_fails_is_named_in_the_record_of_rank_0() {
    let s = Sandbox::new();
    if mpiexec(&s, 2, "digits").is_none() {
        return;
    }
    // Rank 1 waits at most a millisecond for the others (rank 0 is still snapshotting its
    // code): it fails, and tells rank 0, which records it and ends the job.
    let started = Instant::now();
    let out = Command::new("mpiexec")
        .current_dir(s.path())
        .env("FLAMMABLE_STORE", s.path().join("store"))
        .env("FLAMMABLE_CODE_DIR", s.path())
        .args(["-n", "1"])
        .arg(example("digits"))
        .args(["train", "--epochs", "1"])
        .arg(":")
        .args(["-n", "1", "-env", "FLAMMABLE_COLLECTIVE_TIMEOUT", "0.001"])
        .arg(example("digits"))
        .args(["train", "--epochs", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(30));
    let run = newest_train_run(&s);
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap_or_default();
    assert!(
        error.starts_with("rank 1: ") && error.contains("waited"),
        "{error}"
    );

    // Ranks started with other hyperparameters are refused before any step.
    let out = Command::new("mpiexec")
        .current_dir(s.path())
        .env("FLAMMABLE_STORE", s.path().join("store"))
        .env("FLAMMABLE_CODE_DIR", s.path())
        .args(["-n", "1"])
        .arg(example("digits"))
        .args(["train", "--epochs", "1", "--hidden", "32"])
        .arg(":")
        .args(["-n", "1"])
        .arg(example("digits"))
        .args(["train", "--epochs", "1", "--hidden", "64"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let run = newest_train_run(&s);
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap_or_default();
    assert!(
        error.contains("rank 1") && error.contains("other hyperparameters"),
        "{error}"
    );
    assert!(!s
        .store()
        .run_dir(&run.id)
        .join("checkpoints")
        .join("latest.safetensors")
        .exists());
}

#[test]
fn only_train_runs_on_several_processes() {
    let s = Sandbox::new();
    let Some(mut job) = mpiexec(&s, 2, "digits") else {
        return;
    };
    let out = job.args(["runs"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("only `train` runs on several processes"),
        "{err}"
    );
}

/// The test task of several processes (`tests/src/bin/ranks_task.rs`).
fn ranks_task() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_ranks_task"))
}

#[test]
fn ranks_whose_epochs_differ_in_length_stop_with_the_reason_instead_of_waiting() {
    // Batches made by a function: of 5, rank 0 gets 3 and rank 1 gets 2; of 1, rank 1 gets
    // none, and never meets rank 0's first step.
    for batches in ["5", "1"] {
        let s = Sandbox::new();
        let Some(mut job) = mpiexec_of(&s, 2, &ranks_task()) else {
            return;
        };
        let started = Instant::now();
        let out = job
            .args(["train", "--epochs", "1", "--batches", batches])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{batches} batches");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{batches} batches"
        );
        let run = newest_train_run(&s);
        assert_eq!(run.status, RunStatus::Failed, "{batches} batches");
        let error = run.error.unwrap_or_default();
        assert!(
            error.contains("different numbers of batches") && error.contains("multiple of 2"),
            "{batches} batches: {error}"
        );
    }
}

#[test]
fn a_rank_whose_step_fails_mid_training_is_named_by_rank_0() {
    let s = Sandbox::new();
    let Some(mut job) = mpiexec_of(&s, 2, &ranks_task()) else {
        return;
    };
    let started = Instant::now();
    let out = job
        .args([
            "train",
            "--epochs",
            "3",
            "--batches",
            "8",
            "--fail-rank",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(30));
    let run = newest_train_run(&s);
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap_or_default();
    assert!(
        error.starts_with("rank 1: ") && error.contains("data source broke"),
        "{error}"
    );
    // Said once, by rank 0 as it records it (rank 1 said it too, before).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("data source broke").count(), 1, "{stderr}");
}

#[test]
fn a_checkpoint_in_the_middle_of_an_accumulation_keeps_every_ranks_gradients() {
    let s = Sandbox::new();
    let Some(mut job) = mpiexec(&s, 2, "digits") else {
        return;
    };
    // 45 steps an epoch: the checkpoint of epoch 3 is taken one step into an accumulation
    // of 2, and each rank has summed a gradient of its own.
    let flags = [
        "--batch-size",
        "16",
        "--accumulate",
        "2",
        "--dropout",
        "0",
        "--seed",
        "5",
        "--threads",
        "1",
    ];
    let three = [&["train", "--epochs", "3"], &flags[..]].concat();
    ok(&job.args(&three).output().unwrap());
    let parent = newest_train_run(&s);
    let further = mpiexec(&s, 2, "digits")
        .unwrap()
        .args(["train", "--from", &parent.id, "--epochs", "4"])
        .output()
        .unwrap();
    ok(&further);
    let continued = newest_train_run(&s);
    let four = [&["train", "--epochs", "4"], &flags[..]].concat();
    ok(&mpiexec(&s, 2, "digits")
        .unwrap()
        .args(&four)
        .output()
        .unwrap());
    let whole = newest_train_run(&s);
    assert!(continued.id != parent.id && whole.id != continued.id);
    // The same training but for the order of a few float sums.
    assert_weights_within(&s, &continued.id, &whole.id, 1e-6);
    // Trained further on one process of both ranks' batch: the accumulated sum of two ranks
    // weighs as one process's would (it was twice too heavy).
    ok(&s.run(
        "digits",
        &[
            "train",
            "--from",
            &parent.id,
            "--epochs",
            "4",
            "--batch-size",
            "32",
        ],
    ));
    let alone = newest_train_run(&s);
    assert!(alone.id != whole.id);
    assert_weights_within(&s, &alone.id, &whole.id, 1e-4);
}

#[test]
fn a_rank_that_stops_before_joining_ends_the_job() {
    let s = Sandbox::new();
    if mpiexec(&s, 2, "digits").is_none() {
        return;
    }
    // Rank 1's flags are bad: it stops before training, and rank 0 must not wait for it.
    let started = Instant::now();
    let out = Command::new("timeout")
        .arg("60")
        .arg("mpiexec")
        .current_dir(s.path())
        .env("FLAMMABLE_STORE", s.path().join("store"))
        .env("FLAMMABLE_CODE_DIR", s.path())
        .args(["-n", "1"])
        .arg(example("digits"))
        .args(["train", "--epochs", "1"])
        .arg(":")
        .args(["-n", "1"])
        .arg(example("digits"))
        .args(["train", "--epochs", "x"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(124), "the job hung");
    assert!(started.elapsed() < Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    // A usage error, whichever rank made it: the job's exit code is 2.
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("invalid value 'x' for '--epochs"), "{err}");
    let run = newest_train_run(&s);
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error
            .as_deref()
            .unwrap_or_default()
            .starts_with("rank 1: "),
        "{run:?}"
    );
}

/// The output of the shell script `job` run in a mount namespace of its own (where it may
/// mount a tmpfs of its own on /dev/shm), within two minutes; `None` (the test skipped)
/// where mount namespaces cannot be made (root is needed).
fn in_mount_namespace(job: &str) -> Option<Output> {
    let can = Command::new("unshare")
        .args(["-m", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !can {
        skip_or_fail("cannot make a mount namespace (unshare -m; root is needed)");
        return None;
    }
    let out = Command::new("timeout")
        .args(["120", "unshare", "-m", "sh", "-c", job])
        .env_remove("RAYON_NUM_THREADS")
        .output()
        .unwrap();
    Some(out)
}

/// Runs the shell script `job` (which starts `collective_sums`) with a /dev/shm of 40 MB of
/// its own, and checks that the sums were exact and went through the shared window.
fn sums_through_shared_memory_on_a_small_dev_shm(job: &str) {
    let job = format!("mount -t tmpfs -o size=40m tmpfs /dev/shm || exit 1\n{job}");
    if let Some(out) = in_mount_namespace(&job) {
        ok(&out);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "ok mpi, shared memory"
        );
    }
}

/// The collectives' test program (`tests/src/bin/collective_sums.rs`).
fn collective_sums() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_collective_sums"))
}

#[test]
fn sums_over_the_ranks_are_exact_through_shared_memory_and_through_mpi() {
    let s = Sandbox::new();
    // Three ranks: slices of unequal length; lengths around the threshold of the shared
    // memory and past one segment (2^22 values).
    for (shm, backend) in [("on", "mpi, shared memory"), ("off", "mpi")] {
        let Some(mut job) = mpiexec_of(&s, 3, &collective_sums()) else {
            return;
        };
        let out = job.env("FLAMMABLE_COLLECTIVE_SHM", shm).output().unwrap();
        ok(&out);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("ok {backend}")
        );
    }
    // A small /dev/shm (its own tmpfs, in a mount namespace of the job): the segments shrink
    // to fit in half its free space, and a buffer past one segment goes through in parts.
    sums_through_shared_memory_on_a_small_dev_shm(&format!(
        "exec mpiexec -n 2 {}",
        collective_sums().display()
    ));
}

#[test]
fn a_shared_window_keeps_its_memory_when_dev_shm_fills_later() {
    // The segments' memory is theirs from the start: /dev/shm filled by another process
    // after the ranks joined does not make a write to a segment fail (it was SIGBUS).
    let s = Sandbox::new();
    if mpiexec_of(&s, 2, &collective_sums()).is_none() {
        return;
    }
    let go = s.path().join("go");
    sums_through_shared_memory_on_a_small_dev_shm(&format!(
        "mpiexec -n 2 {bin} --wait-for {go} & job=$!
         while [ ! -e {go}.joined ]; do sleep 0.05; done
         cat /dev/zero > /dev/shm/fill 2> /dev/null
         touch {go}
         wait $job",
        bin = collective_sums().display(),
        go = go.display()
    ));
}

#[test]
fn bad_transport_settings_and_uneven_lengths_are_errors_on_every_rank() {
    let s = Sandbox::new();
    // Settings the transport cannot take are one line each, before any training.
    for (name, value, says) in [
        (
            "FLAMMABLE_COLLECTIVE_SHM",
            "no",
            "FLAMMABLE_COLLECTIVE_SHM=no: `on` or `off`",
        ),
        (
            "FLAMMABLE_COLLECTIVE_TIMEOUT",
            "1e20",
            "FLAMMABLE_COLLECTIVE_TIMEOUT=1e20: not a number of seconds above 0 and at most 1e9",
        ),
    ] {
        let Some(mut job) = mpiexec_of(&s, 2, &collective_sums()) else {
            return;
        };
        let out = job.env(name, value).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains(&format!("error: {says}")), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // A setting one process alone cannot take ends every process at once, each saying why
    // (the others waited in MPI's first collective for it, forever).
    for (name, value) in [
        ("FLAMMABLE_COLLECTIVE_SHM", "xx"),
        ("FLAMMABLE_COLLECTIVE_TIMEOUT", "abc"),
    ] {
        let Some(mut job) = mpiexec_of(&s, 1, &collective_sums()) else {
            return;
        };
        let started = Instant::now();
        let out = job
            .args([":", "-n", "1", "-env", name, value])
            .arg(collective_sums())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                exits_within(&mut child, 60);
                child.wait_with_output()
            })
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(30));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains(&format!("error: {name}={value}: ")), "{err}");
        assert!(
            err.contains("rank 0: another process of this training refused its environment"),
            "{err}"
        );
    }
    // Ranks that bring different lengths get an error each, at once, instead of reading
    // past what the others wrote.
    let Some(mut job) = mpiexec_of(&s, 2, &collective_sums()) else {
        return;
    };
    let started = Instant::now();
    let out = job.arg("--uneven").output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    for rank in 0..2 {
        for (short, long) in [(4095, 4096), (5000, 5001), (1 << 22, (1 << 22) + 1)] {
            assert!(
                err.contains(&format!(
                    "rank {rank}: error: the gradients' all-reduce: the ranks brought different numbers of values ({short} to {long})"
                )),
                "{err}"
            );
        }
    }
}
