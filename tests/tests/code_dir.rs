//! Where a run's code is: a task binary snapshots its own code's repository wherever it is
//! started from, keeps its store there, and never creates a repository in a folder it merely
//! runs in.

use crate::common::{example, example_in, git, Sandbox};
use flammable::store::Store;
use std::process::Command;

#[test]
fn a_task_started_outside_its_repository_records_its_own_code() {
    // The task's code: a repository (standing in for the crate folder the binary knows).
    let code = Sandbox::repo();
    std::fs::write(code.path().join("model.rs"), "// changed, not committed\n").unwrap();
    // Where it is started: a folder with no repository (a home folder, say).
    let home = Sandbox::empty();
    let out = example_in("digits", home.path(), code.path())
        .args(["train", "-q", "--epochs", "1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !home.path().join(".git").exists() && !home.path().join(".flammable").exists(),
        "the folder it was started in got a repository or a store"
    );
    // The store is the code's, at its repository's root, and the snapshot has the change.
    let store = Store::at(code.path().join(".flammable"));
    let record = store
        .records()
        .unwrap()
        .pop()
        .expect("a run in the code's store");
    let snapshot = record.snapshot.expect("a snapshot");
    assert_eq!(
        std::fs::canonicalize(&snapshot.workdir).unwrap(),
        std::fs::canonicalize(code.path()).unwrap()
    );
    let file = git(
        code.path(),
        &["show", &format!("{}:model.rs", snapshot.commit)],
    );
    assert_eq!(file, "// changed, not committed");
    // The task binary finds that store from anywhere, as `runs` shows.
    let listed = example_in("digits", home.path(), code.path())
        .args(["runs"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&record.id));
}

#[test]
fn a_named_code_folder_in_no_repository_gets_none() {
    // FLAMMABLE_CODE_DIR=$HOME by mistake must not put the home folder in a repository.
    let home = Sandbox::empty();
    let out = Command::new(example("digits"))
        .args(["train", "-q", "--epochs", "1"])
        .current_dir(home.path())
        .env("FLAMMABLE_CODE_DIR", home.path())
        .env("FLAMMABLE_STORE", home.path().join("store"))
        .output()
        .unwrap();
    crate::common::assert_one_line_error(&out, 2, &["FLAMMABLE_CODE_DIR", "git init"]);
    assert!(!home.path().join(".git").exists());
    assert!(!home.path().join("store").exists(), "a run was made");
}

#[test]
fn a_relative_code_folder_is_recorded_whole() {
    let s = Sandbox::new();
    let code = s.path().join("code");
    std::fs::create_dir(&code).unwrap();
    git(&code, &["init", "-q", "-b", "main"]);
    let out = s
        .command("digits")
        .args(["train", "-q", "--epochs", "1"])
        .env("FLAMMABLE_CODE_DIR", "code")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snapshot = s.store().records().unwrap()[0].snapshot.clone().unwrap();
    assert!(snapshot.git_dir.is_absolute(), "{snapshot:?}");
    assert!(snapshot.workdir.is_absolute(), "{snapshot:?}");
}

#[test]
fn a_code_folder_that_is_not_a_folder_is_refused() {
    let s = Sandbox::new();
    let out = s
        .command("digits")
        .args(["train", "-q", "--epochs", "1"])
        .env("FLAMMABLE_CODE_DIR", s.path().join("missing"))
        .output()
        .unwrap();
    crate::common::assert_one_line_error(&out, 2, &["FLAMMABLE_CODE_DIR", "not a folder"]);
    let out = s
        .command("digits")
        .args(["train", "-q", "--epochs", "1"])
        .env("FLAMMABLE_CODE_DIR", "")
        .output()
        .unwrap();
    crate::common::assert_one_line_error(&out, 2, &["FLAMMABLE_CODE_DIR", "empty"]);
    // An empty run name names no run (not every run, as a prefix would).
    let out = s.run("digits", &["test", ""]);
    crate::common::assert_one_line_error(&out, 2, &["empty run name"]);
}
