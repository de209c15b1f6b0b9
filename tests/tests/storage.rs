//! A store on a read-only file system and a disk that fills up during a checkpoint: real
//! small file systems (tmpfs) mounted in a private user and mount namespace, so the tests
//! need no privileges and leave the host's mounts alone.

use crate::common::{example, Sandbox};
use flammable::store::RunStatus;
use flammable::store::Store;
use std::process::Command;

/// Runs the shell `script` in a new user and mount namespace (where it may mount a tmpfs),
/// with `$1` an empty mount point, `$2` the digits example and `$3` a folder on the real
/// disk for what must outlive the namespace. Returns false when namespaces are unavailable.
fn in_namespace(s: &Sandbox, script: &str) -> bool {
    let probe = Command::new("unshare")
        .args(["-Urm", "true"])
        .status()
        .is_ok_and(|st| st.success());
    if !probe {
        let why = "this machine cannot create user namespaces (`unshare -Urm`)";
        crate::common::skip_or_fail(why);
        return false;
    }
    let mount_point = s.path().join("mnt");
    let out = s.path().join("out");
    std::fs::create_dir_all(&mount_point).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let status = Command::new("unshare")
        .args(["-Urm", "sh", "-euc", script, "sh"])
        .arg(&mount_point)
        .arg(example("digits"))
        .arg(&out)
        .current_dir(s.path())
        .env("FLAMMABLE_CODE_DIR", s.path())
        .env_remove("FLAMMABLE_STORE")
        .status()
        .unwrap();
    assert!(status.success(), "the namespace script failed: {status}");
    true
}

fn read(s: &Sandbox, name: &str) -> String {
    std::fs::read_to_string(s.path().join("out").join(name)).unwrap_or_default()
}

fn code(s: &Sandbox, name: &str) -> i32 {
    read(s, name).trim().parse().unwrap()
}

/// One line on stderr, an `error: ` line.
fn assert_one_error_line(stderr: &str, says: &str) {
    let errors: Vec<_> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains(says), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_read_only_store_gets_one_line_and_still_lists() {
    let s = Sandbox::new();
    let script = r#"
        mount -t tmpfs -o size=16m tmpfs "$1"
        "$2" train -q --epochs 1 --store "$1/store" > /dev/null
        mount -o remount,ro "$1"
        set +e
        "$2" train -q --epochs 1 --store "$1/store" > /dev/null 2> "$3/train.err"
        echo $? > "$3/train.code"
        "$2" test -q --store "$1/store" > /dev/null 2> "$3/test.err"
        echo $? > "$3/test.code"
        set -e
        "$2" runs --store "$1/store" > "$3/runs.out"
    "#;
    if !in_namespace(&s, script) {
        return;
    }
    for cmd in ["train", "test"] {
        assert_ne!(code(&s, &format!("{cmd}.code")), 0, "{cmd}");
        assert_one_error_line(&read(&s, &format!("{cmd}.err")), "Read-only file system");
    }
    let listed = read(&s, "runs.out");
    assert_eq!(listed.matches("finished").count(), 1, "{listed}");
}

#[test]
fn a_full_disk_during_a_checkpoint_keeps_the_previous_one() {
    let s = Sandbox::new();
    // Train until the first checkpoint exists, pause the process, fill the file system to
    // within 64 KiB (room for metrics, not for a checkpoint of this 512-wide model), resume it.
    let script = r#"
        mount -t tmpfs -o size=8m tmpfs "$1"
        "$2" train -q --epochs 30 --hidden 512 --seed 5 --store "$1/store" \
            > /dev/null 2> "$3/train.err" &
        pid=$!
        tries=0
        until ls "$1"/store/runs/*/checkpoints/latest.ron > /dev/null 2>&1; do
            tries=$((tries + 1)); [ $tries -lt 3000 ] || exit 93
            sleep 0.01
        done
        kill -STOP $pid
        dd if=/dev/zero of="$1/fill" bs=64k 2> /dev/null || true
        truncate -s -64K "$1/fill"
        kill -CONT $pid
        set +e
        wait $pid
        echo $? > "$3/train.code"
        set -e
        ls "$1"/store/runs/*/checkpoints > "$3/checkpoints.txt"
        cp -a "$1/store" "$3/store"
    "#;
    if !in_namespace(&s, script) {
        return;
    }
    assert_eq!(code(&s, "train.code"), 1);
    let stderr = read(&s, "train.err");
    assert_one_error_line(&stderr, "No space left on device");
    // No half-written set is left behind: every file belongs to a complete set.
    let files = read(&s, "checkpoints.txt");
    assert!(!files.contains(".tmp"), "{files}");
    let store = Store::at(s.path().join("out/store"));
    let id = store.ids().unwrap().pop().unwrap();
    let record = store.read(&id).unwrap();
    assert_eq!(record.status, RunStatus::Failed);
    assert!(record
        .error
        .as_deref()
        .unwrap_or("")
        .contains("No space left on device"));
    // The previous checkpoint survived: the run resumes from it (on a disk with room).
    let out = Command::new(example("digits"))
        .args(["train", "--resume", &id])
        .arg("--store")
        .arg(s.path().join("out/store"))
        .current_dir(s.path())
        .env("FLAMMABLE_CODE_DIR", s.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("resumed at epoch"), "{stderr}");
    assert_eq!(store.read(&id).unwrap().status, RunStatus::Finished);
}
