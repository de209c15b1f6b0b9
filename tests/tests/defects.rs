//! Regressions of the defects found by trying to break Flammable (issue 10): each test failed
//! before its fix. Real processes, real repositories, real signals.

use crate::common::{assert_one_line_error, example, flammable_bin, git, KillOnDrop, Sandbox};
use crate::faults::weights;
use flammable::store::{RunKind, RunStatus};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> Sandbox {
    Sandbox::repo()
}

fn flammable(s: &Sandbox, args: &[&str]) -> std::process::Output {
    Command::new(flammable_bin())
        .args(args)
        .current_dir(s.path())
        .env("FLAMMABLE_STORE", s.path().join("store"))
        .env("FLAMMABLE_CODE_DIR", s.path())
        .output()
        .unwrap()
}

fn newest(s: &Sandbox) -> String {
    s.store().ids().unwrap().pop().unwrap()
}

/// A training of many epochs started in the background; returns it once its run is recorded.
// The child is returned: the caller waits for it.
#[allow(clippy::zombie_processes)]
fn long_training(s: &Sandbox) -> (KillOnDrop, String) {
    let mut child = s
        .command("digits")
        .args(["train", "-q", "--epochs", "100000", "--seed", "3"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the training never started");
        }
        if let Some(id) = s.store().ids().unwrap().pop() {
            if s.store().is_alive(&id) {
                return (KillOnDrop(child), id);
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn rm_refuses_a_live_run_and_force_stops_it_first() {
    let s = Sandbox::new();
    let (mut child, id) = long_training(&s);
    let out = flammable(&s, &["rm", &id]);
    assert_one_line_error(&out, 2, &["still running", "--force"]);
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the training goes on"
    );
    assert!(s.store().run_dir(&id).exists());
    let gc = flammable(&s, &["gc"]);
    assert!(gc.status.success());
    assert!(s.store().run_dir(&id).exists(), "gc leaves live runs alone");

    let out = flammable(&s, &["rm", "--force", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Stopped by SIGTERM: it wrote its checkpoint and exited 143, before being moved.
    assert_eq!(child.0.wait().unwrap().code(), Some(143));
    let trashed = s.store().root().join("trash").join(&id);
    assert!(trashed.join("checkpoints/latest.ron").exists());
    assert!(!s.store().run_dir(&id).exists());
}

#[test]
fn eight_concurrent_tests_all_land_in_the_parents_record() {
    let s = Sandbox::new();
    s.ok("digits", &["train", "-q", "--epochs", "1"]);
    let parent = newest(&s);
    let children: Vec<_> = (0..8)
        .map(|_| {
            s.command("digits")
                .args(["test", "-q", &parent])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let record = s.store().read(&parent).unwrap();
    assert_eq!(record.tests.len(), 8, "{:?}", record.tests);
}

#[test]
fn a_modified_tracked_file_over_the_limit_is_left_out_for_real() {
    let s = repo();
    std::fs::write(s.path().join("weights.bin"), b"small at first").unwrap();
    git(s.path(), &["add", "-A"]);
    git(s.path(), &["commit", "-qm", "weights"]);
    std::fs::write(s.path().join("weights.bin"), vec![7u8; 2 * 1024 * 1024]).unwrap();
    let out = s
        .command("digits")
        .args(["train", "--epochs", "1"])
        .env("FLAMMABLE_SNAPSHOT_MAX_MB", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("left out") && stderr.contains("weights.bin"),
        "{stderr}"
    );
    let record = s.store().read(&newest(&s)).unwrap();
    let snapshot = record.snapshot.unwrap();
    assert_eq!(snapshot.skipped[0].0, "weights.bin");
    let files = git(
        s.path(),
        &["ls-tree", "-r", "--name-only", &snapshot.commit],
    );
    assert!(!files.lines().any(|f| f == "weights.bin"), "{files}");
    assert!(files.lines().any(|f| f == "model.rs"), "{files}");
}

/// A commit whose tree is `entries` (mode, name bytes, object id), written with git's
/// plumbing without its checks, as a crafted or corrupt repository would hold it.
fn crafted_commit(dir: &Path, entries: &[(&str, &[u8], String)]) -> String {
    let mut tree = Vec::new();
    for (mode, name, id) in entries {
        tree.extend_from_slice(mode.as_bytes());
        tree.push(b' ');
        tree.extend_from_slice(name);
        tree.push(0);
        let hex: Vec<u8> = (0..id.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&id[i..i + 2], 16).unwrap())
            .collect();
        tree.extend_from_slice(&hex);
    }
    let tree_id = hash_object(dir, "tree", &tree);
    git(dir, &["commit-tree", &tree_id, "-m", "crafted"])
}

fn hash_object(dir: &Path, kind: &str, bytes: &[u8]) -> String {
    use std::io::Write;
    let mut c = crate::common::git_cmd(dir)
        .args(["hash-object", "-w", "--literally", "-t", kind, "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Records a train run in the sandbox's store whose snapshot is `commit`.
fn run_with_snapshot(s: &Sandbox, commit: &str) -> String {
    let record = flammable::store::Record {
        snapshot: Some(flammable::store::SnapshotRecord {
            commit: commit.to_string(),
            parent: None,
            dirty: true,
            git_dir: s.path().join(".git"),
            workdir: s.path().to_path_buf(),
            skipped: Vec::new(),
        }),
        status: RunStatus::Finished,
        ..flammable::store::Record::new("digits", RunKind::Train, 1)
    };
    s.store().create(record).unwrap().id
}

#[test]
fn checkout_refuses_trees_that_would_write_outside_its_folder() {
    let s = repo();
    let file = hash_object(s.path(), "blob", b"escaped\n");
    let inner = crafted_commit(s.path(), &[("100644", b"escaped.txt", file.clone())]);
    let inner_tree = git(s.path(), &["rev-parse", &format!("{inner}^{{tree}}")]);
    let outside = s.path().join("outside");
    let link = hash_object(s.path(), "blob", outside.to_string_lossy().as_bytes());
    let cases = [
        crafted_commit(s.path(), &[("40000", b"..", inner_tree.clone())]),
        crafted_commit(s.path(), &[("40000", b".git", inner_tree.clone())]),
        // A link and a folder of the same name: the folder's files would go through the link.
        crafted_commit(
            s.path(),
            &[("120000", b"a", link), ("40000", b"a", inner_tree.clone())],
        ),
    ];
    std::fs::create_dir(&outside).unwrap();
    for (n, commit) in cases.iter().enumerate() {
        let id = run_with_snapshot(&s, commit);
        let dir = s.path().join(format!("checkout-{n}"));
        let out = flammable(&s, &["checkout", &id, &dir.to_string_lossy()]);
        // A broken snapshot is the repository's fault, not the command line's: exit code 1.
        assert_eq!(out.status.code(), Some(1), "case {n} was checked out");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(!s.path().join("escaped.txt").exists(), "case {n} escaped");
        assert!(
            !outside.join("escaped.txt").exists(),
            "case {n} wrote through a link"
        );
    }
}

#[cfg(unix)]
#[test]
fn checkout_keeps_non_utf8_names_byte_exact() {
    use std::os::unix::ffi::OsStrExt;
    let s = repo();
    let a = hash_object(s.path(), "blob", b"latin-1 e acute\n");
    let b = hash_object(s.path(), "blob", b"a lone continuation byte\n");
    // Both names would become the same U+FFFD name if decoded lossily.
    let commit = crafted_commit(
        s.path(),
        &[("100644", b"caf\xe9", a), ("100644", b"caf\xff", b)],
    );
    let id = run_with_snapshot(&s, &commit);
    let dir = s.path().join("checkout");
    let out = flammable(&s, &["checkout", &id, &dir.to_string_lossy()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |name: &[u8]| std::fs::read_to_string(dir.join(std::ffi::OsStr::from_bytes(name)));
    assert_eq!(read(b"caf\xe9").unwrap(), "latin-1 e acute\n");
    assert_eq!(read(b"caf\xff").unwrap(), "a lone continuation byte\n");
}

#[test]
fn stray_temporary_checkpoint_files_are_removed_at_resume() {
    let s = Sandbox::new();
    let (child, id) = long_training(&s);
    let latest = s.store().run_dir(&id).join("checkpoints/latest.ron");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !latest.exists() {
        assert!(Instant::now() < deadline, "no checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(child);
    // What a kill in the middle of a write leaves.
    let stray = s
        .store()
        .run_dir(&id)
        .join("checkpoints/.step-0000000099.safetensors.4242.0.tmp");
    std::fs::write(&stray, b"half a checkpoint").unwrap();
    let mut resumed = KillOnDrop(
        s.command("digits")
            .args(["train", "-q", "--resume", &id])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while stray.exists() {
        assert!(Instant::now() < deadline, "the stray file stayed");
        std::thread::sleep(Duration::from_millis(5));
    }
    let removed = flammable(&s, &["rm", "--force", &id]);
    assert!(removed.status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut resumed.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("half-written"), "{stderr}");
}

#[test]
fn a_repository_that_cannot_be_opened_gets_no_nested_repository() {
    let s = Sandbox::empty();
    let init = crate::common::git_cmd(s.path())
        .args(["init", "-q", "--object-format=sha256"])
        .output()
        .unwrap();
    assert!(init.status.success());
    let sub = s.path().join("crate");
    std::fs::create_dir(&sub).unwrap();
    let train = |extra: &[&str]| {
        Command::new(example("digits"))
            .args(["train", "-q", "--epochs", "1"])
            .args(extra)
            .current_dir(&sub)
            .env("FLAMMABLE_STORE", s.path().join("store"))
            .env("FLAMMABLE_CODE_DIR", &sub)
            .output()
            .unwrap()
    };
    let out = train(&[]);
    // Named for what it is, not as a configuration that "could not be loaded".
    assert_one_line_error(
        &out,
        1,
        &["no snapshot", "SHA-256 repositories", "--allow-no-snapshot"],
    );
    assert!(
        !sub.join(".git").exists(),
        "a repository was created inside the user's"
    );
    assert_eq!(
        s.store().read(&newest(&s)).unwrap().status,
        RunStatus::Failed
    );

    let out = train(&["--allow-no-snapshot"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("warning: no snapshot"), "{stderr}");
    assert!(!sub.join(".git").exists());
    assert!(s.store().read(&newest(&s)).unwrap().snapshot.is_none());
}

#[test]
fn a_sparse_checkout_is_refused_with_the_reason() {
    let s = repo();
    git(
        s.path(),
        &["sparse-checkout", "set", "--sparse-index", "src"],
    );
    let out = s.run("digits", &["train", "-q", "--epochs", "1"]);
    assert_one_line_error(&out, 1, &["sparse", "--allow-no-snapshot"]);
    // Reftable ref storage, which gix cannot write refs to.
    let r = Sandbox::empty();
    git(r.path(), &["init", "-q", "--ref-format=reftable"]);
    git(r.path(), &["commit", "-q", "--allow-empty", "-m", "init"]);
    let out = r.run("digits", &["train", "-q", "--epochs", "1"]);
    assert_one_line_error(&out, 1, &["reftable", "--allow-no-snapshot"]);
}

#[test]
fn the_store_is_hidden_from_git_in_a_linked_worktree() {
    let s = repo();
    let wt = s.path().join("wt");
    git(s.path(), &["worktree", "add", "-q", &wt.to_string_lossy()]);
    let out = crate::common::example_in("digits", &wt, &wt)
        .args(["train", "-q", "--epochs", "1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(wt.join(".flammable").exists());
    assert_eq!(git(&wt, &["status", "--porcelain"]), "");
}

#[test]
fn bad_values_get_one_line_and_exit_code_2() {
    let s = Sandbox::new();
    let train = |args: &[&str]| {
        let mut all = vec!["train", "-q", "--epochs", "1"];
        all.extend_from_slice(args);
        s.run("digits", &all)
    };
    for (args, says) in [
        (vec!["--hidden", "0"], "at least 1"),
        (vec!["--batch-size", "0"], "at least 1"),
        (vec!["--dropout", "1.5"], "below 1"),
        (vec!["--lr", "nan"], "finite"),
        (vec!["--lr", "inf"], "finite"),
        (vec!["--lr", "-1"], "above 0"),
        (vec!["--device", "cpu:3"], "no index"),
        (vec!["--keep-checkpoints", "0"], "at least 1"),
    ] {
        let out = train(&args);
        assert_one_line_error(&out, 2, &[says]);
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("18446744073709551615"),
            "{args:?}"
        );
    }
    assert!(s.store().ids().unwrap().is_empty(), "no run for bad input");

    let with_env = |k: &str, v: &str| {
        s.command("digits")
            .args(["train", "-q", "--epochs", "1"])
            .env(k, v)
            .output()
            .unwrap()
    };
    assert_one_line_error(
        &with_env("FLAMMABLE_SNAPSHOT_MAX_MB", "abc"),
        1,
        &["FLAMMABLE_SNAPSHOT_MAX_MB"],
    );
    assert_one_line_error(
        &with_env("FLAMMABLE_STORE", ""),
        2,
        &["FLAMMABLE_STORE", "empty"],
    );
}

#[test]
fn a_closed_or_full_stdout_is_no_panic() {
    let s = Sandbox::new();
    s.ok("digits", &["train", "-q", "--epochs", "1", "-m", "first"]);
    let id = newest(&s);
    for args in [
        vec!["runs"],
        vec!["show", "latest"],
        vec!["diff", id.as_str(), id.as_str()],
        vec!["metrics", id.as_str()],
    ] {
        // A reader that is gone before the first line is written.
        let mut child = s
            .command("digits")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");

        let full = std::fs::File::create("/dev/full").unwrap();
        let out = s
            .command("digits")
            .args(&args)
            .stdout(full)
            .output()
            .unwrap();
        assert_one_line_error(&out, 1, &["stdout"]);
    }
    let full = std::fs::File::create("/dev/full").unwrap();
    let out = s
        .command("digits")
        .args(["train", "-q", "--epochs", "1"])
        .stdout(full)
        .output()
        .unwrap();
    assert_one_line_error(&out, 1, &["stdout"]);
    assert_eq!(
        s.store().read(&newest(&s)).unwrap().status,
        RunStatus::Finished
    );
}

#[test]
fn a_closed_stderr_does_not_crash_a_training() {
    // `train 2>&1 | head -1`: the reader of stderr is gone after its first line.
    let s = Sandbox::new();
    let mut child = s
        .command("digits")
        .args(["train", "--epochs", "3", "-m", "piped"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
    assert!(first.starts_with("run "), "{first}");
    drop(stderr);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let record = s.store().read(&newest(&s)).unwrap();
    assert_eq!(record.status, RunStatus::Finished, "{:?}", record.error);
    assert!(record.snapshot.is_some());
}

#[test]
fn a_run_without_a_checkpoint_says_why_and_resumes_from_the_start() {
    let s = Sandbox::new();
    let out = s.run("digits", &["train", "--epochs", "0"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--epochs 0 trains nothing"));
    let out = s.run("digits", &["test", "-q"]);
    assert_one_line_error(&out, 2, &["no checkpoint", "trained 0 epochs"]);

    // Killed before its first checkpoint: resumed, it trains from the start as the same run,
    // and ends as a run that was never interrupted.
    let mut child = s
        .command("digits")
        .args(["train", "-q", "--epochs", "2", "--seed", "9"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let before: Vec<String> = s.store().ids().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Killed once its hyperparameters are written, long before its first checkpoint.
    let id = loop {
        assert!(Instant::now() < deadline);
        let new = s
            .store()
            .ids()
            .unwrap()
            .into_iter()
            .find(|i| !before.contains(i));
        if let Some(id) = new.filter(|i| s.store().run_dir(i).join("hyperparameters.ron").exists())
        {
            break id;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let checkpoints = s.store().run_dir(&id).join("checkpoints/latest.ron");
    assert!(!checkpoints.exists(), "killed too late for this test");
    let out = s.run("digits", &["test", &id]);
    assert_one_line_error(&out, 2, &["no checkpoint"]);
    let out = s.run("digits", &["train", "--resume", &id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("from the start"), "{stderr}");
    s.ok("digits", &["train", "-q", "--epochs", "2", "--seed", "9"]);
    let reference = newest(&s);
    assert_eq!(weights(&s, &id), weights(&s, &reference));
}

#[test]
fn resume_refuses_flags_it_would_ignore() {
    let s = Sandbox::new();
    let (child, id) = long_training(&s);
    drop(child);
    let out = s.run(
        "digits",
        &["train", "--resume", &id, "--epochs", "2", "--lr", "5"],
    );
    assert_one_line_error(&out, 2, &["--epochs, --lr cannot change"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("TrainConfig"));
}

/// The regression task of `tests/src/bin/regression_task.rs` with `args` in the sandbox.
fn regression(s: &Sandbox, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_regression_task"))
        .args(args)
        .current_dir(s.path())
        .env("FLAMMABLE_STORE", s.path().join("store"))
        .env("FLAMMABLE_CODE_DIR", s.path())
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap()
}

#[test]
fn eval_names_the_input_and_its_shape_and_never_overwrites_it() {
    let s = Sandbox::new();
    let out = regression(&s, &["train", "-q"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(s.path().join("in.csv"), "1, 2, 3").unwrap();
    let out = regression(&s, &["eval", "-q", "in.csv", "out.ron"]);
    assert_one_line_error(&out, 1, &["in.csv", "[3]", "shape", "in step `forward`"]);
    let error = s.store().read(&newest(&s)).unwrap().error.unwrap();
    assert!(!error.contains('\n'), "{error}");
    assert!(!s.path().join("out.ron").exists());

    std::fs::write(s.path().join("in.csv"), "1, 2").unwrap();
    let out = regression(&s, &["eval", "-q", "in.csv", "./in.csv"]);
    assert_one_line_error(&out, 2, &["overwrite"]);
    assert_eq!(
        std::fs::read_to_string(s.path().join("in.csv")).unwrap(),
        "1, 2"
    );
    let out = regression(&s, &["eval", "in.csv", "out.ron"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn best_metric_knows_error_metrics_and_refuses_what_validation_lacks() {
    let s = Sandbox::new();
    let out = regression(&s, &["train", "-q", "--best-metric", "rmes"]);
    assert_one_line_error(&out, 2, &["rmes", "rmse"]);
    let out = s.run(
        "digits",
        &["train", "-q", "--epochs", "1", "--best-metric", "accuracy"],
    );
    assert_one_line_error(&out, 2, &["no validation data"]);
    let out = regression(&s, &["train", "-q", "--early-stop", "3"]);
    assert_one_line_error(&out, 2, &["--early-stop", "--best-metric"]);
    // Refused before a run starts: no failed run is left behind.
    assert!(s.store().ids().unwrap().is_empty());

    let out = regression(
        &s,
        &[
            "train",
            "--epochs",
            "6",
            "--best-metric",
            "rmse",
            "--keep-checkpoints",
            "6",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("smallest val/rmse"), "{stderr}");
    let id = newest(&s);
    let record = s.store().read(&id).unwrap();
    let best = record.metrics["best/val/rmse"];
    let series = flammable::store::read_metrics(&s.store().metrics_path(&id)).unwrap();
    let smallest = series
        .iter()
        .filter(|p| &*p.name == "val/rmse")
        .map(|p| p.value)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(best, smallest, "best is the smallest rmse");
    let tested = regression(&s, &["test", "--checkpoint", "best"]);
    let stdout = String::from_utf8_lossy(&tested.stdout);
    assert!(
        tested.status.success(),
        "{}",
        String::from_utf8_lossy(&tested.stderr)
    );
    let rmse = crate::common::table_value(&stdout, "rmse").unwrap();
    assert!(
        (rmse - best).abs() < 1e-4,
        "{rmse} vs {best} (printed to 4 places)"
    );
    // Without --checkpoint, test takes the best one the run kept (and says so), and every
    // test run records which checkpoint it tested.
    let tested = regression(&s, &["test"]);
    let stderr = String::from_utf8_lossy(&tested.stderr);
    assert!(tested.status.success(), "{stderr}");
    assert!(
        stderr.contains("checkpoint: best, by val/rmse (--checkpoint latest"),
        "{stderr}"
    );
    let rmse = crate::common::table_value(&String::from_utf8_lossy(&tested.stdout), "rmse");
    assert!((rmse.unwrap() - best).abs() < 1e-4);
    let test_run = s.store().read(&newest(&s)).unwrap();
    assert_eq!(test_run.checkpoint.as_deref(), Some("best"));
    let trained = s.store().read(&id).unwrap();
    assert!(trained
        .tests
        .iter()
        .all(|t| t.checkpoint.as_deref() == Some("best")));
    let out = regression(&s, &["test", "--checkpoint", "step-8"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = regression(&s, &["test", "-q", "--checkpoint", "step-7"]);
    assert_one_line_error(&out, 2, &["step-0000000007", "it has"]);
    let out = s.run("digits", &["train", "-q", "--epochs", "1"]);
    assert!(out.status.success());
    let out = s.run("digits", &["test", "-q", "--checkpoint", "best"]);
    assert_one_line_error(&out, 2, &["no checkpoint `best`", "--best-metric"]);
}

#[test]
fn a_panic_in_the_data_set_fails_the_run() {
    let s = Sandbox::new();
    let out = regression(&s, &["train", "-q", "--panic-at", "17"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("example 17 is broken"), "{stderr}");
    let record = s.store().read(&newest(&s)).unwrap();
    assert_eq!(record.status, RunStatus::Failed);
    assert!(record.error.unwrap().contains("example 17 is broken"));
}

#[test]
fn a_hyperparameter_named_like_a_shared_flag_is_refused() {
    let s = Sandbox::new();
    let out = Command::new(env!("CARGO_BIN_EXE_shadowing_task"))
        .args(["train", "--lr", "0.1"])
        .current_dir(s.path())
        .env("FLAMMABLE_STORE", s.path().join("store"))
        .env("FLAMMABLE_CODE_DIR", s.path())
        .output()
        .unwrap();
    assert_one_line_error(&out, 1, &["`lr`", "rename"]);
}

#[test]
fn damaged_runs_are_named_and_can_still_be_removed() {
    let s = repo();
    s.ok(
        "digits",
        &["train", "-q", "--epochs", "1", "-m", "two\nlines"],
    );
    s.ok("digits", &["train", "-q", "--epochs", "1"]);
    let ids = s.store().ids().unwrap();
    // A message with a newline stays on its row.
    let runs = s.ok("digits", &["runs"]);
    assert_eq!(runs.lines().count(), 3, "{runs}");
    // An unknown metric name lists the ones there are.
    let out = s.run("digits", &["metrics", &ids[0], "--name", "nope"]);
    assert_one_line_error(&out, 2, &["nope", "loss"]);
    // Garbage metric files are named.
    std::fs::write(s.store().run_dir(&ids[0]).join("metrics.names"), "").unwrap();
    let out = s.run("digits", &["metrics", &ids[0]]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("damaged"));
    // A hand-edited record with a short commit id: each reader says what is wrong, none panics.
    let record_path = s.store().run_dir(&ids[1]).join("record.ron");
    let record = std::fs::read_to_string(&record_path).unwrap();
    let commit = s.store().read(&ids[1]).unwrap().snapshot.unwrap().commit;
    std::fs::write(&record_path, record.replace(&commit, "abc")).unwrap();
    let elsewhere = s.path().join("elsewhere").to_string_lossy().into_owned();
    for args in [
        vec!["show", ids[1].as_str()],
        vec!["diff", ids[1].as_str(), ids[1].as_str()],
        vec!["checkout", ids[1].as_str(), elsewhere.as_str()],
    ] {
        let out = s.run("digits", &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    std::fs::write(&record_path, record).unwrap();
    // A corrupt record still goes to the trash.
    std::fs::write(s.store().run_dir(&ids[0]).join("record.ron"), "(garbage").unwrap();
    let out = flammable(&s, &["rm", &ids[0]]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A run folder deleted by hand leaves a ref that gc collects.
    std::fs::remove_dir_all(s.store().run_dir(&ids[1])).unwrap();
    let out = flammable(&s, &["gc"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains(&ids[1]), "{stdout}");
    assert_eq!(git(s.path(), &["for-each-ref", "refs/flammable/"]), "");
}

#[test]
fn metrics_of_a_test_run_name_its_final_values() {
    let s = repo();
    s.ok("digits", &["train", "-q", "--epochs", "1"]);
    let trained = s.store().ids().unwrap().remove(0);
    // A test run has no series, only final values: the error names them and `show`.
    s.ok("digits", &["test", &trained]);
    let test_run = s
        .store()
        .records()
        .unwrap()
        .into_iter()
        .find(|r| r.id != trained)
        .unwrap();
    let out = s.run("digits", &["metrics", &test_run.id, "--name", "accuracy"]);
    assert_one_line_error(
        &out,
        2,
        &["`accuracy` as a final value only", "flammable show"],
    );
    let out = s.run("digits", &["metrics", &test_run.id, "--name", "nope"]);
    assert_one_line_error(
        &out,
        2,
        &[
            "no metric `nope`",
            "none over steps",
            "final values",
            "prints: accuracy",
        ],
    );
}

#[test]
fn latest_counts_train_runs_so_diff_works_after_a_test() {
    let s = Sandbox::new();
    s.ok(
        "digits",
        &["train", "-q", "--epochs", "1", "--hidden", "32"],
    );
    s.ok(
        "digits",
        &["train", "-q", "--epochs", "1", "--hidden", "64"],
    );
    s.ok("digits", &["test", "-q"]);
    let diff = s.ok("digits", &["diff", "latest~1", "latest"]);
    assert!(
        diff.contains("hidden") && diff.contains("32") && diff.contains("64"),
        "{diff}"
    );
}

#[test]
fn a_copied_binary_records_its_real_profile() {
    let s = Sandbox::new();
    let copy = s.path().join("digits-copy");
    std::fs::copy(example("digits"), &copy).unwrap();
    // A process forked by another test meanwhile may still hold the copy open for writing
    // (ETXTBSY) for a moment.
    let mut tries = 0;
    let out = loop {
        let run = Command::new(&copy)
            .args(["train", "-q", "--epochs", "1"])
            .current_dir(s.path())
            .env("FLAMMABLE_STORE", s.path().join("store"))
            .env("FLAMMABLE_CODE_DIR", s.path())
            .output();
        match run {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.unwrap(),
        }
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record = s.store().read(&newest(&s)).unwrap();
    assert_eq!(record.build.profile, "dev");
}

#[test]
fn a_layer_too_large_for_the_machine_is_one_line_not_an_abort() {
    let s = Sandbox::new();
    let out = s.run(
        "digits",
        &["train", "-q", "--epochs", "1", "--hidden", "100000000"],
    );
    assert_one_line_error(
        &out,
        1,
        &["hidden.weight", "more than this machine has free"],
    );
}

#[test]
fn latest_names_the_tasks_own_newest_run_in_its_binary() {
    let s = Sandbox::new();
    s.ok(
        "digits",
        &["train", "-q", "--epochs", "1", "-m", "digits run"],
    );
    s.ok("wine", &["train", "-q", "--epochs", "1", "-m", "wine run"]);
    // The newest train run of the store is wine's; digits' latest is its own.
    let out = s.run("digits", &["test", "-q", "latest"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = s.ok("digits", &["show", "latest"]);
    assert!(shown.contains("digits run"), "{shown}");
    // The flammable binary, which is no task's, counts every experiment's.
    let shown = flammable(&s, &["show", "latest"]);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("wine run"),
        "{shown:?}"
    );
}

#[test]
fn a_command_line_turns_off_the_best_metric_and_early_stopping_a_task_defaults_to() {
    // The wine example's defaults: --best-metric f1 --early-stop 20.
    let s = Sandbox::new();
    let out = s.run(
        "wine",
        &["train", "-q", "--epochs", "1", "--best-metric", "none"],
    );
    assert_one_line_error(&out, 2, &["--early-stop off"]);
    s.ok(
        "wine",
        &[
            "train",
            "-q",
            "--epochs",
            "1",
            "--best-metric",
            "none",
            "--early-stop",
            "off",
        ],
    );
    let run = s.store().records().unwrap()[0].id.clone();
    let hyper =
        std::fs::read_to_string(s.store().run_dir(&run).join("hyperparameters.ron")).unwrap();
    assert!(hyper.contains("best_metric: None"), "{hyper}");
    assert!(hyper.contains("early_stop: None"), "{hyper}");
    let out = s.run("wine", &["train", "-q", "--early-stop", "0"]);
    assert_one_line_error(&out, 2, &["--early-stop", "nor `off`"]);
    // A sweep checks each combination with the task's defaults, as its run will read it.
    let before = s.store().ids().unwrap().len();
    let out = s.run(
        "wine",
        &[
            "train",
            "-q",
            "--epochs",
            "1",
            "--sweep",
            "best_metric=none,accuracy",
        ],
    );
    assert_one_line_error(&out, 2, &["--sweep", "--early-stop off"]);
    assert_eq!(s.store().ids().unwrap().len(), before, "no run started");
    s.ok(
        "wine",
        &["train", "-q", "--epochs", "1", "--sweep", "early_stop=5,10"],
    );
    assert_eq!(s.store().ids().unwrap().len(), before + 2);
}

/// A train run whose process is gone before it finished (its record says running, no lock is
/// held: it reads crashed), made from a finished one.
fn crashed_copy_of_a_finished_run(s: &Sandbox, id: &str) {
    let record = s.store().run_dir(id).join("record.ron");
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(text.contains("status: finished"), "{text}");
    std::fs::write(&record, text.replace("status: finished", "status: running")).unwrap();
    assert_eq!(s.store().read(id).unwrap().status, RunStatus::Crashed);
}

#[test]
fn a_resume_refuses_hyperparameters_a_flag_refuses_or_none_at_all() {
    let s = Sandbox::new();
    s.ok("digits", &["train", "-q", "--epochs", "1"]);
    let id = newest(&s);
    crashed_copy_of_a_finished_run(&s, &id);
    // Edited by hand: a batch of 0 trained forever without moving on.
    let hyper = s.store().run_dir(&id).join("hyperparameters.ron");
    let text = std::fs::read_to_string(&hyper).unwrap();
    assert!(text.contains("batch_size: 64"), "{text}");
    std::fs::write(&hyper, text.replace("batch_size: 64", "batch_size: 0")).unwrap();
    let out = s.run("digits", &["train", "--resume", &id]);
    assert_one_line_error(
        &out,
        2,
        &["hyperparameters.ron", "--batch-size", "at least 1"],
    );
    // A run of an older Flammable killed between its record and its hyperparameters.
    std::fs::remove_file(&hyper).unwrap();
    let out = s.run("digits", &["train", "--resume", &id]);
    assert_one_line_error(&out, 2, &["before it recorded its hyperparameters"]);
}

#[test]
fn a_run_trained_further_keeps_a_best_of_its_own() {
    let s = Sandbox::new();
    s.ok("wine", &["train", "-q", "--epochs", "4", "--seed", "3"]);
    let parent = newest(&s);
    assert!(s
        .store()
        .run_dir(&parent)
        .join("checkpoints/best.ron")
        .exists());
    // A rate too small to move the weights: the new run never beats its parent's best, and
    // still keeps the best of its own validations.
    s.ok(
        "wine",
        &[
            "train", "-q", "--from", &parent, "--epochs", "6", "--lr", "1e-12",
        ],
    );
    let child = newest(&s);
    assert!(
        s.store()
            .run_dir(&child)
            .join("checkpoints/best.ron")
            .exists(),
        "the new run kept no best"
    );
    s.ok("wine", &["test", "-q", &child, "--checkpoint", "best"]);
}

#[test]
fn a_test_records_the_step_of_the_set_it_tested() {
    let s = Sandbox::new();
    s.ok(
        "digits",
        &["train", "-q", "--epochs", "2", "--keep-checkpoints", "5"],
    );
    let id = newest(&s);
    s.ok("digits", &["test", "-q", &id, "--checkpoint", "latest"]);
    let test = newest(&s);
    // 23 steps an epoch: `latest` is the set of step 46, and the test says so.
    assert_eq!(s.store().read(&test).unwrap().checkpoint_step, Some(46));
    let parent = s.store().read(&id).unwrap();
    assert_eq!(parent.tests[0].step, Some(46));
    let show = s.ok("digits", &["show", &id]);
    assert!(
        show.contains(&format!("tested by {test} (checkpoint latest, step 46)")),
        "{show}"
    );
    // A numbered set is its own step.
    s.ok("digits", &["test", "-q", &id, "--checkpoint", "step-23"]);
    assert_eq!(
        s.store().read(&newest(&s)).unwrap().checkpoint_step,
        Some(23)
    );
}
