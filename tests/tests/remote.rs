//! `push`, `pull` and `remote ls`: real runs through a folder remote and a real S3 server
//! (moto), into fresh stores and repositories.

use crate::common::{assert_one_line_error, flammable_bin, git, S3Server, Sandbox};
use std::path::Path;
use std::process::{Command, Output};

/// `flammable ARGS` in `dir`, its store `dir/store`, with `s3`'s settings when given.
fn flammable(dir: &Path, s3: Option<&S3Server>, args: &[&str]) -> Output {
    let mut cmd = Command::new(flammable_bin());
    cmd.args(args)
        .current_dir(dir)
        .env("FLAMMABLE_STORE", dir.join("store"));
    if let Some(s3) = s3 {
        s3.env(&mut cmd);
    }
    cmd.output().unwrap()
}

fn ok(dir: &Path, s3: Option<&S3Server>, args: &[&str]) -> (String, String) {
    let out = flammable(dir, s3, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// Asserts that every file of run `id` pulled into `to` is the one of `from`, and that what
/// was not pulled is only numbered checkpoint sets (the pull took `best`, else `latest`).
fn assert_pulled(from: &Path, to: &Path, id: &str) {
    let source = run_files(from, id);
    let pulled = run_files(to, id);
    for (path, bytes) in &pulled {
        let original = source.iter().find(|(p, _)| p == path).map(|(_, b)| b);
        assert!(
            original == Some(bytes),
            "{path} differs or was not in the source"
        );
    }
    for (path, _) in &source {
        if !pulled.iter().any(|(p, _)| p == path) {
            assert!(
                path.starts_with("checkpoints/step-"),
                "{path} was not pulled"
            );
        }
    }
    assert!(pulled
        .iter()
        .any(|(p, _)| p == "checkpoints/latest.safetensors"));
}

/// Every file of run `id` in the store of `dir` but its record, locks and cache of hashes
/// (each machine's own), with its bytes.
fn run_files(dir: &Path, id: &str) -> Vec<(String, Vec<u8>)> {
    let root = dir.join("store").join("runs").join(id);
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel == "record.ron" || rel == ".hashes.json" || rel.ends_with("lock") {
                continue;
            }
            out.push((rel, std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn runs_pushed_to_a_folder_pull_into_another_repository_with_their_code() {
    let s = Sandbox::repo();
    s.ok(
        "digits",
        &[
            "train", "-q", "--epochs", "1", "--seed", "3", "-m", "shared",
        ],
    );
    let id = s.store().ids().unwrap()[0].clone();
    let remote = s.path().join("team-remote");
    let remote_s = remote.to_str().unwrap();
    let (_, said) = ok(s.path(), None, &["push", remote_s, "--all"]);
    assert!(said.contains("1 run sent"), "{said}");
    assert!(remote.join("runs").join(format!("{id}.json")).is_file());
    // Again: nothing is sent.
    let (_, said) = ok(s.path(), None, &["push", remote_s, &id]);
    assert!(
        said.contains("0 runs sent, 1 up to date; 0 files"),
        "{said}"
    );
    let (listed, _) = ok(
        s.path(),
        None,
        &[
            "remote",
            "ls",
            remote_s,
            "--filter",
            "status:finished shared",
        ],
    );
    assert!(
        listed.contains(&id) && listed.contains("digits"),
        "{listed}"
    );
    let (listed, _) = ok(
        s.path(),
        None,
        &["remote", "ls", remote_s, "--filter", "status:failed"],
    );
    assert!(!listed.contains(&id), "{listed}");
    let out = flammable(
        s.path(),
        None,
        &["remote", "ls", remote_s, "--filter", "nosuch<1"],
    );
    assert_one_line_error(&out, 2, &["nosuch"]);

    // Elsewhere: another repository, no access to the first.
    let c = Sandbox::new();
    let (_, said) = ok(
        c.path(),
        None,
        &["pull", &format!("file://{remote_s}"), &id[..10]],
    );
    assert!(said.contains("1 new run,"), "{said}");
    assert_pulled(s.path(), c.path(), &id);
    let (pulled, original) = (c.store().read(&id).unwrap(), s.store().read(&id).unwrap());
    assert_eq!(
        pulled.metrics, original.metrics,
        "the record's numbers, bit for bit"
    );
    let (shown, _) = ok(c.path(), None, &["show", &id]);
    assert!(
        shown.contains("pulled from") && shown.contains(remote_s),
        "{shown}"
    );
    assert_eq!(
        ok(c.path(), None, &["metrics", &id]).0,
        ok(s.path(), None, &["metrics", &id]).0
    );
    // The code came along: the run's ref, a checkout and a diff of its code.
    git(
        c.path(),
        &[
            "rev-parse",
            "--verify",
            &format!("refs/flammable/runs/{id}"),
        ],
    );
    let out_dir = c.path().join("code-of-run");
    ok(
        c.path(),
        None,
        &["checkout", &id, out_dir.to_str().unwrap()],
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("model.rs")).unwrap(),
        "// version 1\n"
    );
    // The task tests the pulled run as its own.
    let tested = c.ok("digits", &["test", &id]);
    assert!(tested.contains("accuracy"), "{tested}");
    // Pulling again fetches nothing; a run that differs here is refused, not overwritten.
    let (_, said) = ok(c.path(), None, &["pull", remote_s, "--all"]);
    assert!(
        said.contains("0 new runs, 0 updated, 1 up to date"),
        "{said}"
    );
    // Another run, made and pushed meanwhile, still arrives when one run is refused.
    s.ok("digits", &["train", "-q", "--epochs", "1", "--seed", "9"]);
    // A run whose record is damaged is left out, and said to be.
    let damaged = s.path().join("store/runs/20200101-000000-dmgd");
    std::fs::create_dir_all(&damaged).unwrap();
    std::fs::write(damaged.join("record.ron"), "(id: ").unwrap();
    let (_, said) = ok(s.path(), None, &["push", remote_s, "--all"]);
    assert!(
        said.contains("warning: left out run 20200101-000000-dmgd"),
        "{said}"
    );
    std::fs::remove_dir_all(&damaged).unwrap();
    let log = c.path().join("store/runs").join(&id).join("metrics.bin");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.push(0);
    std::fs::write(&log, &bytes).unwrap();
    let out = flammable(c.path(), None, &["pull", remote_s, "--all"]);
    assert_one_line_error(&out, 1, &[&id, "metrics.bin", "here already", "1 new"]);
    assert_eq!(
        c.store().ids().unwrap().len(),
        3,
        "the run, its test, the new run"
    );
    assert_eq!(
        std::fs::read(&log).unwrap(),
        bytes,
        "the local file is kept"
    );

    // Hashes are remembered where files are written (training's checkpoints, a pull's files)
    // and never travel; a file rewritten in place, same size, is hashed again.
    let run_dir = s.path().join("store/runs").join(&id);
    let known = std::fs::read_to_string(run_dir.join(".hashes.json")).unwrap();
    assert!(known.contains("checkpoints/latest.safetensors"), "{known}");
    assert!(c
        .path()
        .join("store/runs")
        .join(&id)
        .join(".hashes.json")
        .is_file());
    let manifest =
        || std::fs::read_to_string(remote.join("runs").join(format!("{id}.json"))).unwrap();
    assert!(!manifest().contains(".hashes.json"));
    let json: serde_json::Value = serde_json::from_str(&manifest()).unwrap();
    let weights = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with(".safetensors"))
        .unwrap()["path"]
        .as_str()
        .unwrap()
        .to_string();
    let path = run_dir.join(&weights);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let (_, said) = ok(s.path(), None, &["push", remote_s, &id]);
    assert!(said.contains("1 run sent"), "{said}");
    let out = Command::new("sha256sum").arg(&path).output().unwrap();
    let sha = String::from_utf8_lossy(&out.stdout)[..64].to_string();
    let json: serde_json::Value = serde_json::from_str(&manifest()).unwrap();
    let entry = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == weights.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["sha256"], sha.as_str(), "{entry}");
    assert_eq!(
        std::fs::read(remote.join("blobs").join(&sha[..2]).join(&sha[2..])).unwrap(),
        bytes
    );
}

/// Trains one run of `task` in a new repository, pushes it with every checkpoint to a folder
/// remote there, and pulls it with `checkpoints` into a new sandbox: the two sandboxes, the
/// run's id and the remote.
fn trained_pushed_and_pulled(
    task: &str,
    train: &[&str],
    checkpoints: &str,
) -> (Sandbox, Sandbox, String, std::path::PathBuf) {
    let s = Sandbox::repo();
    s.ok(task, &[&["train", "-q"], train].concat());
    let id = s.store().ids().unwrap()[0].clone();
    let remote = s.path().join("remote");
    let remote_s = remote.to_str().unwrap();
    ok(
        s.path(),
        None,
        &["push", remote_s, &id, "--checkpoints", "all"],
    );
    let c = Sandbox::new();
    ok(
        c.path(),
        None,
        &["pull", remote_s, &id, "--checkpoints", checkpoints],
    );
    (s, c, id, remote)
}

#[test]
fn a_run_pulled_without_checkpoints_says_how_to_get_them() {
    let (s, c, id, remote) = trained_pushed_and_pulled("digits", &["--epochs", "1"], "none");
    let remote_s = remote.to_str().unwrap();
    let out = c.run("digits", &["test", &id]);
    assert_one_line_error(
        &out,
        2,
        &["flammable pull", remote_s, "--checkpoints latest"],
    );
    let (shown, _) = ok(c.path(), None, &["show", &id]);
    assert!(shown.contains("checkpoints/latest.safetensors"), "{shown}");
    // Pushed back from this copy, which lacks the checkpoints: the remote keeps them.
    let (_, said) = ok(c.path(), None, &["push", remote_s, &id]);
    assert!(said.contains("0 runs sent, 1 up to date"), "{said}");
    let manifest = std::fs::read_to_string(remote.join("runs").join(format!("{id}.json"))).unwrap();
    assert!(manifest.contains("checkpoints/step-"), "{manifest}");
    // Meanwhile the run is tested where it was made, and pushed again: the pull takes the
    // newer record (this copy had not changed since it was pulled) and the checkpoint.
    s.ok("digits", &["test", &id]);
    ok(s.path(), None, &["push", remote_s, &id]);
    let (_, said) = ok(
        c.path(),
        None,
        &["pull", remote_s, &id, "--checkpoints", "latest"],
    );
    assert!(said.contains("1 updated"), "{said}");
    assert_eq!(
        c.store().read(&id).unwrap().tests.len(),
        1,
        "the remote's test result"
    );
    // The run kept no best (no --best-metric): a pull would not bring one, and the error
    // says so instead of advising that pull again.
    let out = c.run("digits", &["test", &id, "--checkpoint", "best"]);
    assert_one_line_error(&out, 2, &["held no such checkpoint", "--checkpoint latest"]);
    c.ok("digits", &["test", &id]);
    // Now both copies were tested since the pull: the remote's tests join this copy's.
    s.ok("digits", &["test", &id]);
    ok(s.path(), None, &["push", remote_s, &id]);
    let (_, said) = ok(c.path(), None, &["pull", remote_s, &id]);
    assert!(said.contains("1 updated"), "{said}");
    assert_eq!(
        c.store().read(&id).unwrap().tests.len(),
        3,
        "two from there, one from here"
    );
}

#[test]
fn a_pulled_run_whose_best_stayed_on_the_remote_is_told_to_pull_it() {
    // The wine task keeps a best by its validation accuracy.
    let (_s, c, id, _) = trained_pushed_and_pulled("wine", &["--epochs", "2"], "latest");
    // The run kept a best: the error says which pull brings it, not to train with
    // --best-metric.
    let out = c.run("wine", &["test", &id, "--checkpoint", "best"]);
    assert_one_line_error(&out, 2, &["flammable pull", "--checkpoints best"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("--best-metric"), "{err}");
}

#[test]
fn a_remote_that_names_files_outside_a_run_is_refused() {
    let s = Sandbox::repo();
    s.ok("digits", &["train", "-q", "--epochs", "1"]);
    let id = s.store().ids().unwrap()[0].clone();
    let remote = s.path().join("remote");
    let remote_s = remote.to_str().unwrap();
    ok(s.path(), None, &["push", remote_s, &id]);
    let manifest = remote.join("runs").join(format!("{id}.json"));
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("\"metrics.bin\"", "\"../../escaped\""),
    )
    .unwrap();
    let c = Sandbox::new();
    let out = flammable(c.path(), None, &["pull", remote_s, &id]);
    assert_one_line_error(&out, 1, &["../../escaped", "refusing"]);
    assert!(!c.path().join("escaped").exists());
    assert!(!c.path().join("store/runs").join(&id).exists());
    // One path twice (the last download would win), or a path inside another's file.
    for twice in ["\"metrics.bin\"", "\"metrics.bin/inner\""] {
        std::fs::write(&manifest, text.replace("\"log.txt\"", twice)).unwrap();
        let out = flammable(c.path(), None, &["pull", remote_s, &id]);
        assert_one_line_error(&out, 1, &["twice, or as a folder and a file", "refusing"]);
        assert!(!c.path().join("store/runs").join(&id).exists());
    }
    // A manifest holding another run's record: pull refuses it, and `remote ls` leaves it
    // out with a warning rather than list a run under a name pull refuses.
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["record"]["id"] = "20200101-000000-other".into();
    std::fs::write(&manifest, json.to_string()).unwrap();
    let out = flammable(c.path(), None, &["pull", remote_s, &id]);
    assert_one_line_error(&out, 1, &["holds the record of run 20200101-000000-other"]);
    assert!(!c.path().join("store/runs").join(&id).exists());
    let (listed, said) = ok(c.path(), None, &["remote", "ls", remote_s]);
    assert!(!listed.contains(&id), "{listed}");
    assert!(
        said.contains("warning:") && said.contains("left out"),
        "{said}"
    );
    std::fs::write(&manifest, &text).unwrap();

    // A remembered hash that is wrong (a damaged cache, a file replaced unseen) fails the
    // push of that file, stores nothing under the wrong name, and is forgotten: the next
    // push reads the file and sends it.
    let remote2 = s.path().join("remote2");
    let run_dir = s.path().join("store/runs").join(&id);
    let cache = run_dir.join(".hashes.json");
    let known = std::fs::read_to_string(&cache).unwrap();
    let json: serde_json::Value = serde_json::from_str(&known).unwrap();
    let right = json["checkpoints/latest.safetensors"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let wrong = "0".repeat(64);
    std::fs::write(&cache, known.replace(&right, &wrong)).unwrap();
    let out = flammable(s.path(), None, &["push", remote2.to_str().unwrap(), &id]);
    assert_one_line_error(&out, 1, &["changed since it was hashed"]);
    assert!(!remote2.join("blobs/00").join(&wrong[2..]).exists());
    assert!(!remote2.join("runs").join(format!("{id}.json")).exists());
    ok(s.path(), None, &["push", remote2.to_str().unwrap(), &id]);
    assert!(remote2
        .join("blobs")
        .join(&right[..2])
        .join(&right[2..])
        .is_file());
    // Bad remotes and selections: one line, exit 2.
    for (args, says) in [
        (vec!["push", "gs://bucket/x", "--all"], "gs://"),
        (vec!["push", remote_s], "--all"),
        (
            vec!["pull", "/nonexistent/remote", "--all"],
            "no such folder",
        ),
        (vec!["pull", remote_s, "nosuchrun"], "no run `nosuchrun`"),
    ] {
        let out = flammable(s.path(), None, &args);
        assert_one_line_error(&out, 2, &[says]);
    }
}

#[test]
fn runs_go_through_s3_and_two_pushers_at_once_leave_one_whole_copy() {
    let Some(s3) = S3Server::start() else { return };
    let s = Sandbox::repo();
    s.ok("digits", &["train", "-q", "--epochs", "1", "--seed", "1"]);
    s.ok("digits", &["train", "-q", "--epochs", "1", "--seed", "2"]);
    let remote = "s3://runs/team/digits";
    // Two people push the same runs at once: blobs are written only if absent, the
    // manifests after their blobs; both succeed.
    let push = || {
        let mut cmd = Command::new(flammable_bin());
        cmd.args(["push", remote, "--all"])
            .current_dir(s.path())
            .env("FLAMMABLE_STORE", s.path().join("store"));
        s3.env(&mut cmd);
        cmd.spawn().unwrap()
    };
    let (a, b) = (push(), push());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (listed, _) = ok(s.path(), Some(&s3), &["remote", "ls", remote]);
    let ids = s.store().ids().unwrap();
    for id in &ids {
        assert!(listed.contains(id.as_str()), "{listed}");
    }
    let (_, said) = ok(s.path(), Some(&s3), &["push", remote, "--all"]);
    assert!(
        said.contains("0 runs sent, 2 up to date; 0 files"),
        "{said}"
    );
    let c = Sandbox::new();
    ok(c.path(), Some(&s3), &["pull", remote, "--all"]);
    for id in &ids {
        assert_pulled(s.path(), c.path(), id);
    }
    // Without credentials for the bucket: one line, no backtrace.
    let mut cmd = Command::new(flammable_bin());
    s3.env(&mut cmd)
        .args(["remote", "ls", "s3://no-such-bucket"])
        .current_dir(s.path());
    let out = cmd.output().unwrap();
    assert_one_line_error(&out, 1, &["s3://no-such-bucket"]);
}

#[test]
fn an_interrupted_push_of_a_large_file_resumes_and_never_shows_half_a_run() {
    let Some(s3) = S3Server::start() else { return };
    let s = Sandbox::repo();
    s.ok("digits", &["train", "-q", "--epochs", "1"]);
    let id = s.store().ids().unwrap()[0].clone();
    // A file of 96 MiB (twelve parts of a multipart upload), of bytes that do not compress.
    let big = s.store().run_dir(&id).join("files").join("big.bin");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    let mut state = 0x9e3779b97f4a7c15u64;
    let bytes: Vec<u8> = (0..96 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    std::fs::write(&big, &bytes).unwrap();
    let remote = "s3://runs/interrupted";
    let mut cmd = Command::new(flammable_bin());
    cmd.args(["push", remote, &id])
        .current_dir(s.path())
        .env("FLAMMABLE_STORE", s.path().join("store"))
        .stderr(std::process::Stdio::null());
    s3.env(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let finished_first = child.try_wait().unwrap().is_some();
    child.kill().unwrap();
    child.wait().unwrap();
    // Killed midway: the remote has no manifest of the run, so no reader sees it.
    let (listed, _) = ok(s.path(), Some(&s3), &["remote", "ls", remote]);
    if finished_first {
        eprintln!("the push ended before it could be interrupted: only its result is checked");
    } else {
        assert!(!listed.contains(&id), "{listed}");
    }
    let (_, said) = ok(s.path(), Some(&s3), &["push", remote, &id]);
    assert!(said.contains("1 run sent"), "{said}");
    // The parts went up with SHA-256 checksums for S3 to check their bytes against, so S3
    // holds one for the large file (moto keeps none for the small files it took whole).
    let checksums = s3.checksums("interrupted/blobs/");
    assert!(
        checksums.lines().filter(|l| !l.ends_with(" None")).count() == 1,
        "{checksums}"
    );
    let c = Sandbox::new();
    ok(c.path(), Some(&s3), &["pull", remote, &id]);
    let pulled =
        std::fs::read(c.path().join("store/runs").join(&id).join("files/big.bin")).unwrap();
    assert!(pulled == bytes, "the large file arrives whole");
}

#[test]
fn careless_and_hostile_uses_of_a_remote_get_one_line_and_lose_nothing() {
    let s = Sandbox::repo();
    s.ok("digits", &["train", "-q", "--epochs", "1"]);
    let id = s.store().ids().unwrap()[0].clone();
    let run_dir = s.store().run_dir(&id);
    // Files that cannot travel are named, not dropped without a word.
    std::fs::create_dir_all(run_dir.join("files")).unwrap();
    std::fs::write(run_dir.join("files/model.lock"), "kept").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", run_dir.join("files/passwd")).unwrap();
    let remote = s.path().join("remote");
    let remote_s = remote.to_str().unwrap();
    let (_, said) = ok(s.path(), None, &["push", remote_s, &id]);
    assert!(said.contains("files/passwd (a symbolic link)"), "{said}");
    let manifest_path = remote.join("runs").join(format!("{id}.json"));
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    assert!(
        manifest.contains("files/model.lock"),
        "a user's file named .lock travels"
    );
    // A remote inside the store would push into itself.
    let inside = s.path().join("store/runs").join(&id).join("files/remote");
    let out = flammable(s.path(), None, &["push", inside.to_str().unwrap(), &id]);
    assert_one_line_error(&out, 2, &["inside the store"]);
    // Nor a store inside the remote, either way; nor a remote made for a run that is not.
    let store_root = s.path().join("store");
    for command in ["push", "pull"] {
        let out = flammable(s.path(), None, &[command, s.path().to_str().unwrap(), &id]);
        assert_one_line_error(&out, 2, &["the store", "is inside it"]);
        let out = flammable(
            s.path(),
            None,
            &[command, store_root.to_str().unwrap(), &id],
        );
        assert_one_line_error(&out, 2, &["inside the store"]);
    }
    let fresh = s.path().join("no/such/remote");
    let out = flammable(
        s.path(),
        None,
        &["push", fresh.to_str().unwrap(), "nosuchrun"],
    );
    assert_one_line_error(&out, 2, &["nosuchrun"]);
    assert!(!fresh.exists(), "the remote's folder was made for nothing");

    // A pulled copy tested here, while the run was tested and pushed there: pushing the copy
    // must not replace the remote's.
    let c = Sandbox::new();
    ok(c.path(), None, &["pull", remote_s, &id]);
    c.ok("digits", &["test", &id]);
    s.ok("digits", &["test", &id]);
    ok(s.path(), None, &["push", remote_s, &id]);
    let out = flammable(c.path(), None, &["push", remote_s, &id]);
    assert_one_line_error(&out, 1, &[&id, "changed here and on the remote"]);

    // A run removed here (in the trash) is not pulled back over its code's removal.
    ok(c.path(), None, &["rm", &id]);
    let out = flammable(c.path(), None, &["pull", remote_s, &id]);
    assert_one_line_error(&out, 1, &[&id, "trash"]);

    // What an interrupted pull left where runs are assembled goes with the next pull.
    let d = Sandbox::new();
    let leftover = d.path().join("store/incoming/.x.1.0.tmp");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("big.bin"), vec![0u8; 1000]).unwrap();
    ok(d.path(), None, &["pull", remote_s, &id]);
    assert!(!d.path().join("store/incoming").exists());

    // A manifest with impossible sizes, and one that is not JSON: one line each, no panic;
    // the listing leaves the unreadable one out and shows the others.
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    let huge = text.replacen("\"size\": ", "\"size\": 18446744073709551615, \"x\": ", 2);
    std::fs::write(&manifest_path, &huge).unwrap();
    let e = Sandbox::new();
    let out = flammable(e.path(), None, &["pull", remote_s, &id]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    ok(e.path(), None, &["remote", "ls", remote_s]);
    std::fs::write(remote.join("runs/20990101-000000-zzzz.json"), "garbage{").unwrap();
    let (listed, said) = ok(e.path(), None, &["remote", "ls", remote_s]);
    assert!(
        listed.contains(&id) && said.contains("left out"),
        "{listed}{said}"
    );
}

#[test]
fn a_store_that_cannot_be_written_pushes() {
    let s = Sandbox::new();
    s.ok("digits", &["train", "-q", "--epochs", "1"]);
    let id = s.store().ids().unwrap()[0].clone();
    let remote = tempfile::tempdir().unwrap();
    let store = s.path().join("store");
    // The store mounted read-only (root does not heed a folder's permissions), in a mount
    // namespace of the push's own.
    let mount = format!(
        "mount --bind -o ro '{0}' '{0}' && exec \"$@\"",
        store.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "sh", "-c", &mount, "sh"])
        .arg(flammable_bin())
        .args(["push", remote.path().to_str().unwrap(), &id])
        .current_dir(s.path())
        .env("FLAMMABLE_STORE", &store)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("unshare failed") || err.contains("mount:") {
        crate::common::skip_or_fail(&format!("no mount namespace here (root is needed): {err}"));
        return;
    }
    assert!(out.status.success(), "{err}");
    assert!(remote
        .path()
        .join("runs")
        .join(format!("{id}.json"))
        .exists());
}
