//! Runs as a user makes them: the digits example in a real Git repository, then the run
//! commands of the task binary and of the `flammable` binary.

use crate::common::{example, Sandbox};
use flammable::store::RunStatus;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::git;

fn repo() -> Sandbox {
    Sandbox::repo()
}

/// The `flammable` binary, beside the test binary.
fn flammable(s: &Sandbox, args: &[&str]) -> std::process::Output {
    example("digits"); // builds the workspace's binaries too
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("flammable");
    Command::new(bin)
        .args(args)
        .current_dir(s.path())
        .env("FLAMMABLE_STORE", s.path().join("store"))
        .output()
        .unwrap()
}

fn stdout(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn two_versions_of_the_code_listed_diffed_and_checked_out() {
    let s = repo();
    s.ok(
        "digits",
        &["train", "-q", "--epochs", "1", "--seed", "1", "-m", "v1"],
    );
    std::fs::write(s.path().join("model.rs"), "// version 2\n").unwrap();
    s.ok(
        "digits",
        &["train", "-q", "--epochs", "2", "--seed", "1", "-m", "v2"],
    );
    assert_eq!(
        git(s.path(), &["status", "--porcelain"]),
        "M model.rs",
        "the checkout is untouched"
    );

    let listed = s.ok("digits", &["runs"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "{listed}");
    assert!(
        lines[1].contains("v2") && lines[2].contains("v1"),
        "newest first:\n{listed}"
    );

    let diff = s.ok("digits", &["diff", "latest~1", "latest"]);
    assert!(diff.contains("epochs: 1 → 2"), "{diff}");
    assert!(
        diff.contains("-// version 1") && diff.contains("+// version 2"),
        "{diff}"
    );
    let stat = stdout(&flammable(&s, &["diff", "latest~1", "latest", "--stat"]));
    assert!(stat.contains("M model.rs"), "{stat}");

    for (run, version) in [("latest~1", "1"), ("latest", "2")] {
        let dir = s.path().join(format!("code-{version}"));
        stdout(&flammable(&s, &["checkout", run, dir.to_str().unwrap()]));
        let text = std::fs::read_to_string(dir.join("model.rs")).unwrap();
        assert_eq!(text, format!("// version {version}\n"));
    }

    let show = s.ok("digits", &["show", "latest"]);
    assert!(
        show.contains("uncommitted files it ran with") && show.contains("M model.rs"),
        "{show}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&flammable(&s, &["runs", "--json"]))).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    let refs = git(
        s.path(),
        &["for-each-ref", "--format=%(refname)", "refs/flammable/"],
    );
    assert_eq!(refs.lines().count(), 2);
}

#[test]
fn a_test_after_an_edit_says_which_files_changed() {
    let s = repo();
    s.ok("digits", &["train", "-q", "--epochs", "1"]);
    std::fs::write(s.path().join("model.rs"), "// edited\n").unwrap();
    let out = s.run("digits", &["test"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("code changed since run") && stderr.contains("model.rs"),
        "{stderr}"
    );
}

#[test]
fn runs_started_together_get_their_own_ids_refs_folders_and_metrics() {
    let s = repo();
    let start = |seed: &str| {
        s.command("digits")
            .args(["train", "-q", "--epochs", "3", "--seed", seed])
            .spawn()
            .unwrap()
    };
    let children: Vec<_> = (0..8).map(|i| start(&i.to_string())).collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let records = s.store().records().unwrap();
    assert_eq!(records.len(), 8);
    let ids: std::collections::BTreeSet<_> = records.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 8);
    for r in &records {
        assert_eq!(r.status, RunStatus::Finished);
        let points = flammable::store::read_metrics(&s.store().metrics_path(&r.id)).unwrap();
        assert_eq!(
            points.iter().filter(|p| &*p.name == "loss").count(),
            3 * 23,
            "run {}",
            r.id
        );
    }
    let refs = git(
        s.path(),
        &["for-each-ref", "--format=%(refname)", "refs/flammable/"],
    );
    assert_eq!(refs.lines().count(), 8);
}

#[test]
fn bad_run_names_get_one_line_and_the_others_still_list() {
    let s = repo();
    s.ok("digits", &["train", "-q", "--epochs", "1"]);
    for args in [
        &["show", "nosuch"][..],
        &["diff", "latest", "latest~5"],
        &["checkout", "latest", "model.rs"],
    ] {
        let out = s.run("digits", args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
    assert_eq!(s.ok("digits", &["runs"]).lines().count(), 2);
}

#[test]
fn rm_and_gc_remove_a_run_and_its_ref() {
    let s = repo();
    s.ok("digits", &["train", "-q", "--epochs", "1"]);
    s.ok("digits", &["train", "-q", "--epochs", "1"]);
    let id = s.store().ids().unwrap()[0].clone();
    stdout(&flammable(&s, &["rm", &id]));
    assert_eq!(s.store().ids().unwrap().len(), 1);
    let dry = stdout(&flammable(&s, &["gc", "--dry-run"]));
    assert!(dry.contains(&id), "{dry}");
    assert_eq!(
        git(s.path(), &["for-each-ref", "refs/flammable/"])
            .lines()
            .count(),
        2
    );
    // What a process killed before it wrote its run's record leaves: a folder no command
    // names. gc removes it once it is a minute old (a younger one may be a run being made).
    let unrecorded = |id: &str, age: u64| {
        let dir = s.store().run_dir(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("lock"), "").unwrap();
        std::fs::write(dir.join(".record.ron.1234.0.tmp"), "(id: ").unwrap();
        let then = std::time::SystemTime::now() - std::time::Duration::from_secs(age);
        std::fs::File::open(&dir)
            .unwrap()
            .set_modified(then)
            .unwrap();
    };
    unrecorded("20200101-000000-kill", 120);
    unrecorded("20200101-000000-born", 0);
    let dry = stdout(&flammable(&s, &["gc", "--dry-run"]));
    assert!(
        dry.contains(
            "would remove the folder 20200101-000000-kill of a run that never got its record"
        ),
        "{dry}"
    );
    assert!(!dry.contains("born"), "{dry}");
    stdout(&flammable(&s, &["gc"]));
    assert_eq!(
        git(s.path(), &["for-each-ref", "refs/flammable/"])
            .lines()
            .count(),
        1
    );
    assert!(!s.store().root().join("trash").join(&id).exists());
    assert!(!s.store().run_dir("20200101-000000-kill").exists());
    assert!(s.store().run_dir("20200101-000000-born").exists());
    std::fs::remove_dir_all(s.store().run_dir("20200101-000000-born")).unwrap();

    // A copy of the store in the same repository: removing a run from the copy, for good,
    // leaves the code the original store's run needs.
    let kept = s.store().ids().unwrap()[0].clone();
    let copy = s.path().join("store-copy");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(s.store().root())
        .arg(&copy)
        .status()
        .unwrap();
    assert!(copied.success());
    let in_copy = |args: &[&str]| {
        let mut all = vec!["--store", copy.to_str().unwrap()];
        all.extend_from_slice(args);
        stdout(&flammable(&s, &all))
    };
    in_copy(&["rm", &kept]);
    let said = in_copy(&["gc"]);
    assert!(said.contains("its refs stay: the store"), "{said}");
    let refs = git(s.path(), &["for-each-ref", "refs/flammable/"]);
    assert!(refs.contains(&kept), "{refs}");
    assert!(!copy.join("trash").join(&kept).exists());
}

/// Copies the workspace's sources into `dir`: the files git tracks and the untracked ones it
/// does not ignore, as a clone with the uncommitted changes would have them. Not a walk of the
/// folder, which would copy a developer's ignored virtualenvs (gigabytes, with links to
/// folders) and build outputs.
pub(crate) fn copy_workspace(dir: &Path) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let listed = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(listed.status.success(), "git ls-files failed");
    for rel in listed.stdout.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let rel = Path::new(std::str::from_utf8(rel).unwrap());
        let from = root.join(rel);
        if !from.is_file() {
            continue; // deleted from the work tree, not yet from the index
        }
        let to = dir.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
    }
}

/// Seeds `into` with the third-party crates built in `profile_dir`, unless it exists already:
/// their libraries (`deps/*.rlib|rmeta|so`) and build-script folders (`build/`) as hard links,
/// their fingerprints (`.fingerprint/`) and dep-info files as copies with their times. Cargo
/// then finds them fresh and compiles only the workspace's crates. The workspace's own
/// artifacts (named `flammable…`) and every executable are left out: a copy of all of `deps`
/// doubled the target folder, which filled CI's disk. Nothing is linked that a build in `into`
/// writes to, since cargo rewrites only what it compiles.
///
/// `features` are the features of `flammable` the rerun will build the examples with (its run's
/// record has them): the third-party crates are first built here with those, as the rerun's
/// cargo resolves them for `flammable-examples` alone. The tests' own builds select several
/// packages at once (the examples with the CLI and its S3 client, or the whole workspace), whose
/// unified features gave a hundred and twenty crates other builds than a rerun's, and each
/// test compiled them again in its copy.
pub(crate) fn seed_target_dir(profile_dir: &Path, into: &Path, features: &[String]) {
    if into.exists() {
        return;
    }
    build_rerun_dependencies(features);
    // Seeded beside `into` and renamed at the end, so that an interrupted seeding is redone.
    let partial = into.with_extension("seeding");
    let _ = std::fs::remove_dir_all(&partial);
    for folder in ["deps", "build", ".fingerprint"] {
        seed_folder(
            &profile_dir.join(folder),
            &partial.join(folder),
            folder,
            true,
        );
    }
    std::fs::rename(&partial, into).unwrap();
}

/// Builds `flammable-examples`' library in the tests' own target folder with `flammable`'s
/// `features`, once per test process: what a rerun's cargo builds of the dependencies. Only the
/// library, so that the examples the other tests run are not relinked under them.
fn build_rerun_dependencies(features: &[String]) {
    static BUILT: std::sync::Mutex<Vec<Vec<String>>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if built.iter().any(|f| f == features) {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "flammable-examples", "--lib"]);
    if !features.is_empty() {
        let list: Vec<String> = features.iter().map(|f| format!("flammable/{f}")).collect();
        cmd.arg("--features").arg(list.join(","));
    }
    let status = cmd
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
        .status()
        .unwrap();
    assert!(status.success(), "cannot build the rerun's dependencies");
    built.push(features.to_vec());
}

/// One folder of [`seed_target_dir`] (`deps`, `build` or `.fingerprint`), walked
/// recursively; `top` is true for the folder itself, whose entries are named after crates.
fn seed_folder(from: &Path, to: &Path, folder: &str, top: bool) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if top && (name.starts_with("flammable") || name.starts_with("libflammable")) {
            continue; // the workspace's own crates: the rerun compiles them
        }
        let (source, target) = (entry.path(), to.join(&name));
        if entry.file_type().unwrap().is_dir() {
            seed_folder(&source, &target, folder, false);
            continue;
        }
        let extension = source.extension().and_then(|e| e.to_str()).unwrap_or("");
        match folder {
            "deps" if matches!(extension, "rlib" | "rmeta" | "so") => {
                std::fs::hard_link(&source, &target).unwrap()
            }
            "build" => std::fs::hard_link(&source, &target).unwrap(),
            "deps" if extension != "d" => {} // an executable: tests, examples, benches
            _ => copy_with_time(&source, &target),
        }
    }
}

/// Copies a file and its modification time, which cargo's freshness check compares.
fn copy_with_time(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    let modified = std::fs::metadata(from).unwrap().modified().unwrap();
    std::fs::File::options()
        .write(true)
        .open(to)
        .unwrap()
        .set_modified(modified)
        .unwrap();
}

#[test]
fn rerun_builds_the_snapshot_and_reproduces_the_metrics_in_a_clone_it_was_pulled_into() {
    let s = Sandbox::new();
    copy_workspace(s.path());
    git(s.path(), &["add", "-A"]);
    git(s.path(), &["commit", "-qm", "the workspace"]);
    let original = s.ok("digits", &["train", "-q", "--epochs", "2", "--seed", "5"]);
    let first = s.store().records().unwrap().remove(0);
    // The run travels: pushed to S3 (a real server, moto) and pulled into a fresh clone, whose
    // repository has never seen its snapshot; the rerun happens there.
    let s3 = crate::common::S3Server::start();
    let folder = s.path().join("remote");
    let remote = match &s3 {
        Some(_) => "s3://runs/rerun".to_string(),
        None => folder.display().to_string(),
    };
    let elsewhere = Sandbox::empty();
    let clone = elsewhere.path().join("clone");
    git(s.path(), &["clone", "-q", ".", clone.to_str().unwrap()]);
    let bin = exe_dir().join("flammable");
    for (dir, args) in [
        (s.path(), vec!["push", remote.as_str(), first.id.as_str()]),
        (
            clone.as_path(),
            vec!["pull", remote.as_str(), first.id.as_str()],
        ),
    ] {
        let mut cmd = Command::new(&bin);
        cmd.args(&args)
            .current_dir(dir)
            .env("FLAMMABLE_STORE", dir.join("store"));
        if let Some(s3) = &s3 {
            s3.env(&mut cmd);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Reruns build in a target folder of their own (never the one whose binaries the tests
    // run); this one is kept across test runs, and seeded with a copy of this build's
    // dependencies, which cargo finds fresh, so that only the workspace's crates compile.
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().join("rerun-test");
    seed_target_dir(
        exe.ancestors().nth(2).unwrap(),
        &target.join("debug"),
        &first.build.features,
    );
    let rerun = |id: &str| {
        let out = Command::new(&bin)
            .args(["rerun", id])
            .current_dir(&clone)
            .env("FLAMMABLE_STORE", clone.join("store"))
            .env("FLAMMABLE_RERUN_TARGET_DIR", &target)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    rerun(&first.id);
    let store = flammable::store::Store::at(clone.join("store"));
    let records = store.records().unwrap();
    assert_eq!(records.len(), 2);
    let (pulled, again) = (&records[0], &records[1]);
    assert_eq!(pulled.id, first.id);
    assert_eq!(again.rerun_of.as_deref(), Some(first.id.as_str()));
    assert_eq!(
        again.metrics, first.metrics,
        "same seed, same code: same metrics"
    );
    assert_eq!(
        again.snapshot.as_ref().unwrap().commit,
        first.snapshot.as_ref().unwrap().commit
    );
    let values = |store: &flammable::store::Store, id: &str| {
        flammable::store::read_metrics(&store.metrics_path(id))
            .unwrap()
            .into_iter()
            .map(|p| (p.name.to_string(), p.step, p.value))
            .collect::<Vec<_>>()
    };
    assert_eq!(values(&s.store(), &first.id), values(&store, &again.id));
    assert!(original.contains("loss"));

    // A run trained further (`train --from`) is rerun from its parent's checkpoint, as it was
    // trained: from scratch it would be another training.
    let further = Command::new(example("digits"))
        .args(["train", "-q", "--from", &first.id, "--epochs", "3"])
        .current_dir(&clone)
        .env("FLAMMABLE_STORE", clone.join("store"))
        .env("FLAMMABLE_CODE_DIR", &clone)
        .output()
        .unwrap();
    assert!(
        further.status.success(),
        "{}",
        String::from_utf8_lossy(&further.stderr)
    );
    let child = store.records().unwrap().remove(2);
    assert_eq!(child.parent.as_deref(), Some(first.id.as_str()));
    rerun(&child.id);
    let again = store.records().unwrap().remove(3);
    assert_eq!(again.rerun_of.as_deref(), Some(child.id.as_str()));
    assert_eq!(again.parent.as_deref(), Some(first.id.as_str()));
    assert_eq!(values(&store, &child.id), values(&store, &again.id));
}

/// The folder of the workspace's binaries (target/<profile>), the examples and `flammable`
/// built there.
fn exe_dir() -> PathBuf {
    example("digits");
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

#[test]
fn a_killed_run_reads_as_crashed_with_its_flushed_metrics() {
    let s = repo();
    let mut child = s
        .command("digits")
        .args(["train", "-q", "--epochs", "100000", "--log-every", "5"])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let id = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never wrote metrics"
        );
        let ids = s.store().ids().unwrap();
        if let Some(id) = ids.first() {
            let metrics = s.store().metrics_path(id);
            if std::fs::metadata(&metrics).is_ok_and(|m| m.len() >= 5 * 32) {
                break id.clone();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(s.store().read(&id).unwrap().status, RunStatus::Running);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(s.store().read(&id).unwrap().status, RunStatus::Crashed);
    let points = flammable::store::read_metrics(&s.store().metrics_path(&id)).unwrap();
    assert!(
        points.len() >= 5,
        "the metrics flushed before the kill are kept"
    );
    let listed = s.ok("digits", &["runs"]);
    assert!(listed.contains("crashed"), "{listed}");
}

#[test]
fn rerun_refuses_to_build_over_the_binary_that_runs_it() {
    let s = Sandbox::repo();
    s.ok("digits", &["train", "-q", "--epochs", "1"]);
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/tests-… : the target folder the workspace's binaries are in.
    let target = exe.ancestors().nth(3).unwrap();
    let out = Command::new(crate::common::flammable_bin())
        .args(["rerun", "latest"])
        .current_dir(s.path())
        .env("FLAMMABLE_STORE", s.path().join("store"))
        .env("FLAMMABLE_RERUN_TARGET_DIR", target)
        .output()
        .unwrap();
    crate::common::assert_one_line_error(
        &out,
        2,
        &["FLAMMABLE_RERUN_TARGET_DIR", "would replace it"],
    );
}
