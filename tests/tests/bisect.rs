//! `bisect` and `bisect-check` on a real repository: a copy of the workspace with a regression
//! planted among fifteen commits, one of which does not build.

use crate::common::{git, Sandbox};
use crate::runs::{copy_workspace, seed_target_dir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FORWARD: &str = "let h = self.hidden.forward(x)?.relu()?;";
/// The planted regression: the network no longer sees its input.
const BLIND: &str = "let h = self.hidden.forward(&(x * 0.0)?)?.relu()?;";

fn flammable(dir: &Path, target: &Path, args: &[&str]) -> Output {
    Command::new(crate::common::flammable_bin())
        .args(args)
        .current_dir(dir)
        .env("FLAMMABLE_STORE", dir.join("store"))
        .env("FLAMMABLE_RERUN_TARGET_DIR", target)
        // One compiler at a time: the bisect builds the workspace while the other tests,
        // some of them timing processes, share the machine.
        .env("CARGO_BUILD_JOBS", "1")
        .output()
        .unwrap()
}

/// The target folder the bisect builds in, seeded with this build's dependencies so that only
/// the workspace's crates compile. Not the rerun test's: the two build copies of the workspace
/// from different folders at once, and cargo once gave the bisect a binary built from the
/// rerun test's copy, which read its data from that test's deleted folder.
fn target(features: &[String]) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().join("bisect-test");
    seed_target_dir(
        exe.ancestors().nth(2).unwrap(),
        &target.join("debug"),
        features,
    );
    target
}

#[test]
fn bisect_finds_the_commit_that_broke_training_past_one_that_does_not_build() {
    let s = Sandbox::new();
    copy_workspace(s.path());
    git(s.path(), &["add", "-A"]);
    git(s.path(), &["commit", "-qm", "the workspace"]);
    let train = ["train", "-q", "--epochs", "2", "--seed", "4"];
    s.ok("digits", &train);
    let first = s.store().records().unwrap().remove(0);
    let good = first.id.clone();
    // Fifteen commits: the eighth does not build, the ninth mends it, the tenth blinds the
    // network (its loss stays near ln 10 = 2.30, where the good code's ends near 1).
    let digits = s.path().join("examples/digits.rs");
    let source = std::fs::read_to_string(&digits).unwrap();
    assert!(source.contains(FORWARD));
    let mut commits = Vec::new();
    for i in 1..=15 {
        match i {
            8 => std::fs::write(&digits, format!("{source}\nfn broken( {{\n")).unwrap(),
            9 => std::fs::write(&digits, &source).unwrap(),
            10 => std::fs::write(&digits, source.replace(FORWARD, BLIND)).unwrap(),
            _ => std::fs::write(s.path().join("notes.txt"), format!("note {i}\n")).unwrap(),
        }
        git(s.path(), &["add", "-A"]);
        git(s.path(), &["commit", "-qm", &format!("change {i}")]);
        commits.push(git(s.path(), &["rev-parse", "HEAD"]));
    }
    // A run of the seventh commit's code exists already: the bisect takes it instead of
    // training that commit.
    git(s.path(), &["checkout", "-q", &commits[6]]);
    s.ok("digits", &train);
    git(s.path(), &["checkout", "-q", "main"]);
    let target = target(&first.build.features);
    let out = flammable(
        s.path(),
        &target,
        &[
            "bisect", "--good", &good, "--bad", "HEAD", "--metric", "loss", "--max", "2.0",
            "--seeds", "2",
        ],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!("first bad commit: {} change 10", commits[9])),
        "{stdout}\n{stderr}"
    );
    assert!(stderr.contains("does not build"), "{stderr}");
    assert!(stdout.contains("/compare?runs="), "{stdout}");
    // Every run it trained is an ordinary run, named for the bisect: one of the seventh
    // commit (whose run existed: it counts as one of the two), none of the eighth (which does
    // not build), two of the first bad one.
    let trained: Vec<_> = s
        .store()
        .records()
        .unwrap()
        .into_iter()
        .filter(|r| {
            r.message
                .as_deref()
                .is_some_and(|m| m.starts_with("bisect "))
        })
        .collect();
    let of = |i: usize| {
        trained
            .iter()
            .filter(|r| r.snapshot.as_ref().unwrap().commit == commits[i])
            .count()
    };
    assert_eq!((of(6), of(7), of(9)), (1, 0, 2));

    // `git bisect run`'s judge: the eighth commit cannot be judged (125), the tenth is bad
    // (from the runs the bisect made: nothing is trained), the seventh good.
    for (commit, code) in [(&commits[7], 125), (&commits[9], 1), (&commits[6], 0)] {
        let out = flammable(
            s.path(),
            &target,
            &[
                "bisect-check",
                "--like",
                &good,
                "--metric",
                "loss",
                "--max",
                "2.0",
                "--commit",
                commit,
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A mistyped judge stops `git bisect run` (128) rather than calling every commit bad.
    let out = flammable(
        s.path(),
        &target,
        &["bisect-check", "--like", &good, "--metrik", "loss"],
    );
    assert_eq!(out.status.code(), Some(128));
    let out = flammable(
        s.path(),
        &target,
        &[
            "bisect", "--good", &good, "--bad", "HEAD", "--metric", "nosuch", "--max", "1",
        ],
    );
    crate::common::assert_one_line_error(&out, 2, &["no metric `nosuch`"]);
    // A good run that is not good by the threshold is refused before anything is built.
    let out = flammable(
        s.path(),
        &target,
        &[
            "bisect", "--good", &good, "--bad", "HEAD", "--metric", "loss", "--max", "0.01",
        ],
    );
    crate::common::assert_one_line_error(&out, 2, &["--good run", "loss"]);
}

#[test]
fn bisect_without_a_threshold_names_both_flags() {
    let s = Sandbox::new();
    let out = flammable(
        s.path(),
        &s.path().join("target"),
        &["bisect", "--good", "a", "--bad", "b", "--metric", "loss"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--min <MIN>|--max <MAX>"), "{err}");
}
