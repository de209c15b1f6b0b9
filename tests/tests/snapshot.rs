//! Snapshots of real repositories in every state a user's checkout can be in. After each:
//! HEAD, every ref, the index file's bytes, every working-tree file, the stash, HEAD's
//! reflog and the config are unchanged, and the tree equals what `git add -A && git
//! write-tree` gives with a copy of the index (the git CLI is only the oracle here).

use flammable::snapshot::{self, SnapshotRequest, DEFAULT_SIZE_LIMIT};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(crate) use crate::common::{git, git_any, git_cmd};

pub(crate) fn write(dir: &Path, path: &str, text: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

pub(crate) fn new_repo() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    git(d.path(), &["init", "-q", "-b", "main"]);
    d
}

/// Everything of the user's that a snapshot must leave alone.
#[derive(Debug, PartialEq)]
struct UserState {
    head: String,
    refs: String,
    index: Option<Vec<u8>>,
    files: BTreeMap<PathBuf, (Vec<u8>, u32)>,
    stash: String,
    head_log: Option<Vec<u8>>,
    config: Vec<u8>,
    status: String,
}

fn git_path(dir: &Path, what: &str) -> PathBuf {
    let p = PathBuf::from(git(dir, &["rev-parse", "--git-path", what]));
    if p.is_absolute() {
        p
    } else {
        dir.join(p)
    }
}

fn capture(dir: &Path) -> UserState {
    use std::os::unix::fs::PermissionsExt;
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_name() == ".git" {
                continue;
            }
            let md = std::fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                stack.push(p);
            } else {
                let bytes = if md.is_symlink() {
                    std::fs::read_link(&p)
                        .unwrap()
                        .to_string_lossy()
                        .as_bytes()
                        .to_vec()
                } else {
                    std::fs::read(&p).unwrap()
                };
                files.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    (bytes, md.permissions().mode()),
                );
            }
        }
    }
    let refs = git(dir, &["for-each-ref", "--format=%(refname) %(objectname)"])
        .lines()
        .filter(|l| !l.starts_with("refs/flammable/"))
        .collect::<Vec<_>>()
        .join("\n");
    UserState {
        head: std::fs::read_to_string(git_path(dir, "HEAD")).unwrap(),
        refs,
        index: std::fs::read(git_path(dir, "index")).ok(),
        files,
        stash: git_any(dir, &["stash", "list"], false),
        head_log: std::fs::read(git_path(dir, "logs/HEAD")).ok(),
        config: std::fs::read(git_path(dir, "config")).unwrap_or_default(),
        status: git(
            dir,
            &[
                "--no-optional-locks",
                "status",
                "--porcelain=v1",
                "--untracked-files=all",
                "--ignored",
            ],
        ),
    }
}

/// `git add -A && git write-tree` on a copy of the index.
fn oracle(dir: &Path) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("index");
    let real = git_path(dir, "index");
    if real.exists() {
        std::fs::copy(&real, &index).unwrap();
    }
    let with_index = |args: &[&str]| {
        let out = git_cmd(dir)
            .env("GIT_INDEX_FILE", &index)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    with_index(&["add", "-A"]);
    with_index(&["write-tree"])
}

fn take(dir: &Path, limit: u64) -> snapshot::Snapshot {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    snapshot::take(&SnapshotRequest {
        dir: dir.to_path_buf(),
        create_repository: true,
        run_id: format!("test-{}-{n}", std::process::id()),
        message: "test snapshot".into(),
        size_limit: limit,
        exclude: Vec::new(),
        reference: None,
    })
    .unwrap()
}

/// Snapshots `dir` (the repository is found from it) and checks every promise.
pub(crate) fn check(repo: &Path, dir: &Path) -> snapshot::Snapshot {
    let before = capture(repo);
    let snap = take(dir, DEFAULT_SIZE_LIMIT);
    assert_eq!(
        capture(repo),
        before,
        "the snapshot changed the user's repository"
    );
    assert_eq!(snap.tree, oracle(repo), "tree differs from git add -A");
    let on_ref = git(
        repo,
        &[
            "rev-parse",
            &format!("refs/flammable/runs/{}", snap_id(repo, &snap.commit)),
        ],
    );
    assert_eq!(on_ref, snap.commit);
    let parent = git_any(repo, &["rev-parse", "--verify", "-q", "HEAD"], false);
    assert_eq!(snap.parent.clone().unwrap_or_default(), parent);
    git(repo, &["fsck", "--no-progress"]);
    snap
}

/// The run id whose ref points at `commit`.
fn snap_id(repo: &Path, commit: &str) -> String {
    git(
        repo,
        &[
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            "refs/flammable/",
        ],
    )
    .lines()
    .find(|l| l.ends_with(commit))
    .and_then(|l| l.split(' ').next())
    .map(|r| r.trim_start_matches("refs/flammable/runs/").to_string())
    .expect("a ref points at the snapshot")
}

/// A repository with one commit and every kind of working-tree change.
fn busy_repo() -> tempfile::TempDir {
    let r = new_repo();
    let d = r.path();
    write(d, "src/main.rs", "fn main() {}\n");
    write(d, "README.md", "hello\n");
    write(d, "gone.txt", "bye\n");
    write(d, "dir with space/ünïcödé name.txt", "unicode\n");
    write(d, "run.sh", "#!/bin/sh\necho hi\n");
    write(d, ".gitignore", "target/\n*.log\n");
    write(d, "nested/.gitignore", "secret.txt\n");
    std::os::unix::fs::symlink("README.md", d.join("link")).unwrap();
    git(d, &["add", "-A"]);
    git(d, &["commit", "-qm", "init"]);
    write(d, "src/main.rs", "fn main() { println!(\"changed\"); }\n");
    std::fs::remove_file(d.join("gone.txt")).unwrap();
    write(d, "staged.txt", "staged\n");
    git(d, &["add", "staged.txt"]);
    write(d, "untracked/deep/file.rs", "// new\n");
    write(d, "target/debug/big.bin", "ignored\n");
    write(d, "debug.log", "ignored\n");
    write(d, "nested/secret.txt", "ignored\n");
    write(d, "nested/visible.txt", "shown\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    r
}

#[test]
fn a_busy_working_tree() {
    let r = busy_repo();
    let snap = check(r.path(), r.path());
    assert!(snap.dirty);
    let changed: Vec<String> = snapshot::changed_paths(&snap.git_dir, &snap.commit)
        .unwrap()
        .into_iter()
        .map(|c| c.path)
        .collect();
    for p in [
        "src/main.rs",
        "gone.txt",
        "staged.txt",
        "untracked/deep/file.rs",
        "nested/visible.txt",
        "run.sh",
    ] {
        assert!(
            changed.contains(&p.to_string()),
            "{p} missing from {changed:?}"
        );
    }
    assert!(!changed
        .iter()
        .any(|p| p.contains("target") || p.ends_with(".log") || p.contains("secret")));
}

#[test]
fn a_repository_without_commits() {
    let r = new_repo();
    write(r.path(), "a.txt", "a\n");
    write(r.path(), "b/c.txt", "c\n");
    let snap = check(r.path(), r.path());
    assert_eq!(snap.parent, None);
    assert!(snap.dirty);
}

#[test]
fn a_clean_checkout_is_not_dirty() {
    let r = new_repo();
    write(r.path(), "a.txt", "a\n");
    git(r.path(), &["add", "-A"]);
    git(r.path(), &["commit", "-qm", "one"]);
    let snap = check(r.path(), r.path());
    assert!(!snap.dirty);
}

#[test]
fn a_detached_head_and_a_stash() {
    let r = busy_repo();
    let d = r.path();
    git(d, &["stash", "-u", "-q"]);
    write(d, "after-stash.txt", "x\n");
    let head = git(d, &["rev-parse", "HEAD"]);
    git(d, &["checkout", "-q", "--detach", &head]);
    check(d, d);
}

#[test]
fn a_merge_with_conflicts() {
    let r = new_repo();
    let d = r.path();
    write(d, "f.txt", "base\n");
    git(d, &["add", "-A"]);
    git(d, &["commit", "-qm", "base"]);
    git(d, &["checkout", "-q", "-b", "other"]);
    write(d, "f.txt", "other\n");
    git(d, &["commit", "-qam", "other"]);
    git(d, &["checkout", "-q", "main"]);
    write(d, "f.txt", "main\n");
    git(d, &["commit", "-qam", "main"]);
    git_any(d, &["merge", "-q", "other"], false);
    assert!(d.join(".git/MERGE_HEAD").exists());
    check(d, d);
}

#[test]
fn a_rebase_stopped_on_a_conflict() {
    let r = new_repo();
    let d = r.path();
    write(d, "f.txt", "base\n");
    git(d, &["add", "-A"]);
    git(d, &["commit", "-qm", "base"]);
    git(d, &["checkout", "-q", "-b", "topic"]);
    write(d, "f.txt", "topic\n");
    git(d, &["commit", "-qam", "topic"]);
    git(d, &["checkout", "-q", "main"]);
    write(d, "f.txt", "main\n");
    git(d, &["commit", "-qam", "main"]);
    git(d, &["checkout", "-q", "topic"]);
    git_any(d, &["rebase", "main"], false);
    assert!(d.join(".git/rebase-merge").exists() || d.join(".git/rebase-apply").exists());
    check(d, d);
}

#[test]
fn a_sub_crate_and_a_linked_worktree() {
    let r = busy_repo();
    let d = r.path();
    // From a subfolder, the whole repository is snapshotted.
    check(d, &d.join("untracked/deep"));
    // A linked worktree has its own index and HEAD.
    git(d, &["commit", "-qam", "more"]);
    let wt = tempfile::tempdir().unwrap();
    let wt_dir = wt.path().join("linked");
    git(
        d,
        &[
            "worktree",
            "add",
            "-q",
            wt_dir.to_str().unwrap(),
            "-b",
            "side",
        ],
    );
    write(&wt_dir, "only-here.txt", "linked\n");
    write(&wt_dir, "README.md", "changed in the linked worktree\n");
    let snap = check(&wt_dir, &wt_dir);
    assert!(snap.dirty);
    // The main worktree's view is untouched by it.
    check(d, d);
}

#[test]
fn large_files_are_left_out_and_listed() {
    let r = new_repo();
    let d = r.path();
    write(d, "small.txt", "small\n");
    write(d, "big.bin", &"x".repeat(5000));
    let before = capture(d);
    let snap = take(d, 1000);
    assert_eq!(capture(d), before);
    assert_eq!(snap.skipped, vec![("big.bin".to_string(), 5000)]);
    let files = git(d, &["ls-tree", "-r", "--name-only", &snap.commit]);
    assert_eq!(files, "small.txt");
}

#[test]
fn the_store_folder_is_never_snapshotted() {
    let r = new_repo();
    let d = r.path();
    write(d, "code.rs", "// code\n");
    write(d, "runs-here/runs/x/record.ron", "()");
    let snap = snapshot::take(&SnapshotRequest {
        dir: d.to_path_buf(),
        create_repository: true,
        run_id: "store-test".into(),
        message: "m".into(),
        size_limit: DEFAULT_SIZE_LIMIT,
        exclude: vec![d.join("runs-here")],
        reference: None,
    })
    .unwrap();
    assert_eq!(
        git(d, &["ls-tree", "-r", "--name-only", &snap.commit]),
        "code.rs"
    );
}

#[test]
fn outside_a_repository_one_is_created() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "x.txt", "x\n");
    // Cargo's build folder, which the `.gitignore` of `cargo new` would have hidden.
    write(d.path(), "target/debug/app", "binary\n");
    write(
        d.path(),
        "src/target/kept.rs",
        "// only the top folder is Cargo's\n",
    );
    let snap = take(d.path(), DEFAULT_SIZE_LIMIT);
    assert!(snap.created_repository);
    assert!(d.path().join(".git").is_dir());
    assert_eq!(
        git(d.path(), &["ls-tree", "-r", "--name-only", &snap.commit]),
        "src/target/kept.rs\nx.txt"
    );
    // Git itself agrees, and the user's folder got no file.
    assert_eq!(
        git(
            d.path(),
            &["status", "--porcelain", "--untracked-files=all"]
        ),
        "?? src/target/kept.rs\n?? x.txt"
    );
    assert!(!d.path().join(".gitignore").exists());
}

#[test]
fn checkout_and_diff_read_the_snapshot_back() {
    let r = busy_repo();
    let d = r.path();
    let first = take(d, DEFAULT_SIZE_LIMIT);
    write(d, "src/main.rs", "fn main() { println!(\"second\"); }\n");
    let second = take(d, DEFAULT_SIZE_LIMIT);
    let changes =
        snapshot::diff(&second.git_dir, Some(&first.commit), &second.commit, true).unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].path, "src/main.rs");
    assert!(
        changes[0]
            .patch
            .contains("+fn main() { println!(\"second\"); }"),
        "{}",
        changes[0].patch
    );
    // An empty file made and a mode changed have no lines to show: their patch says what
    // changed, as git's does.
    write(d, "empty.txt", "");
    let script = d.join("src/main.rs");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let third = take(d, DEFAULT_SIZE_LIMIT);
    let changes =
        snapshot::diff(&third.git_dir, Some(&second.commit), &third.commit, true).unwrap();
    let patch = |path: &str| {
        changes
            .iter()
            .find(|c| c.path == path)
            .map(|c| c.patch.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        patch("empty.txt"),
        "diff --git a/empty.txt b/empty.txt\nnew file mode 100644\n"
    );
    assert_eq!(
        patch("src/main.rs"),
        "diff --git a/src/main.rs b/src/main.rs\nold mode 100644\nnew mode 100755\n"
    );
    // A name holding a terminal's escape sequence is shown escaped in its patch's headers.
    let hostile = "red\u{1b}[31m.txt";
    write(d, hostile, "x\n");
    let fourth = take(d, DEFAULT_SIZE_LIMIT);
    let changes =
        snapshot::diff(&fourth.git_dir, Some(&third.commit), &fourth.commit, true).unwrap();
    let made = changes.iter().find(|c| c.path == hostile).unwrap();
    assert!(!made.patch.contains('\u{1b}'), "{:?}", made.patch);
    assert!(
        made.patch.contains("+++ b/red\\u{1b}[31m.txt"),
        "{:?}",
        made.patch
    );

    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("code");
    let before = capture(d);
    snapshot::checkout(&first.git_dir, &first.commit, &target).unwrap();
    assert_eq!(capture(d), before);
    assert_eq!(
        std::fs::read_to_string(target.join("src/main.rs")).unwrap(),
        "fn main() { println!(\"changed\"); }\n"
    );
    assert_eq!(
        std::fs::read_link(target.join("link")).unwrap(),
        PathBuf::from("README.md")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(target.join("run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert!(mode & 0o111 != 0, "the executable bit survives");
    assert!(target.join("dir with space/ünïcödé name.txt").exists());
    assert!(!target.join("debug.log").exists());
    assert!(
        snapshot::checkout(&first.git_dir, &first.commit, &target).is_err(),
        "refuses a non-empty folder"
    );
}

#[test]
fn a_checkout_that_fails_half_way_leaves_nothing() {
    let r = busy_repo();
    let d = r.path();
    write(d, "zz-last.txt", "the last file written\n");
    let snap = take(d, DEFAULT_SIZE_LIMIT);
    // An object of the snapshot goes missing: the checkout fails after writing other files.
    let blob = git(d, &["rev-parse", &format!("{}:zz-last.txt", snap.commit)]);
    let object = snap
        .git_dir
        .join("objects")
        .join(&blob[..2])
        .join(&blob[2..]);
    std::fs::remove_file(&object).unwrap();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("code");
    assert!(snapshot::checkout(&snap.git_dir, &snap.commit, &target).is_err());
    assert!(!target.exists(), "a half-written checkout was left");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[test]
fn dangling_and_looping_symlinks() {
    let r = new_repo();
    let d = r.path();
    write(d, "a", "");
    std::fs::create_dir_all(d.join("with space")).unwrap();
    std::os::unix::fs::symlink("missing/target", d.join("with space/dangling")).unwrap();
    std::os::unix::fs::symlink("ß-日本", d.join("ß-日本")).unwrap();
    check(d, d);
}
