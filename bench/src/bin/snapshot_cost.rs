//! What a run's snapshot costs: Flammable's (gix, in-process) against git CLI plumbing doing
//! the same (a copy of the index, `add -A`, `write-tree`, `commit-tree`, `update-ref`) and
//! `git stash create` (tracked files only), on repositories of 1k, 10k and 50k tracked files
//! with 1% modified, 200 untracked files and a 1 GB ignored data folder (sparse files).
//!
//! `cargo run --release -p flammable-bench --bin snapshot_cost [-- --smoke]`

use flammable::snapshot::{take, SnapshotRequest, DEFAULT_SIZE_LIMIT};
use flammable_bench::{interleave, table};
use std::path::Path;
use std::process::Command;

fn git(dir: &Path, index: Option<&Path>, args: &[&str]) -> String {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .args(args);
    if let Some(i) = index {
        c.env("GIT_INDEX_FILE", i);
    }
    let out = c.output().expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn repo(dir: &Path, files: usize, smoke: bool) {
    git(dir, None, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join(".gitignore"), "data/\n").expect("write");
    for i in 0..files {
        let sub = dir.join(format!("src/m{:03}", i % 100));
        std::fs::create_dir_all(&sub).expect("mkdir");
        std::fs::write(
            sub.join(format!("f{i}.rs")),
            format!("// file {i}\nfn f{i}() {{}}\n"),
        )
        .expect("write");
    }
    git(dir, None, &["add", "-A"]);
    git(dir, None, &["commit", "-qm", "base"]);
    for i in (0..files).step_by(100) {
        let p = dir.join(format!("src/m{:03}/f{i}.rs", i % 100));
        std::fs::write(p, format!("// changed {i}\n")).expect("write");
    }
    std::fs::create_dir_all(dir.join("new")).expect("mkdir");
    for i in 0..200 {
        std::fs::write(dir.join(format!("new/u{i}.rs")), "// untracked\n").expect("write");
    }
    std::fs::create_dir_all(dir.join("data")).expect("mkdir");
    let (n, size) = if smoke { (2, 1 << 20) } else { (100, 10 << 20) };
    for i in 0..n {
        let f = std::fs::File::create(dir.join(format!("data/shard{i}.bin"))).expect("create");
        f.set_len(size).expect("sparse file");
    }
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let (sizes, reps): (&[usize], usize) = if smoke {
        (&[100], 1)
    } else {
        (&[1_000, 10_000, 50_000], 5)
    };
    let mut out = String::new();
    for &files in sizes {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        repo(d, files, smoke);
        let (mut n_git, mut n_gix) = (0, 0);
        let mut gix_tree = String::new();
        let mut git_tree = String::new();
        let tmp = tempfile::tempdir().expect("temp dir");
        let index = tmp.path().join("index");
        let results = interleave(
            reps,
            &mut [
                (
                    "git plumbing (index copy, add -A, write-tree, commit-tree, update-ref)",
                    &mut || {
                        n_git += 1;
                        std::fs::copy(d.join(".git/index"), &index).expect("copy index");
                        git(d, Some(&index), &["add", "-A"]);
                        git_tree = git(d, Some(&index), &["write-tree"]);
                        let commit = git(
                            d,
                            None,
                            &["commit-tree", &git_tree, "-p", "HEAD", "-m", "bench"],
                        );
                        git(
                            d,
                            None,
                            &["update-ref", &format!("refs/bench/git/{n_git}"), &commit],
                        );
                    },
                ),
                ("Flammable snapshot (gix)", &mut || {
                    n_gix += 1;
                    let s = take(&SnapshotRequest {
                        dir: d.to_path_buf(),
                        run_id: format!("bench-{n_gix}"),
                        message: "bench".into(),
                        size_limit: DEFAULT_SIZE_LIMIT,
                        exclude: Vec::new(),
                        reference: None,
                    })
                    .expect("snapshot");
                    gix_tree = s.tree;
                }),
                ("git stash create (tracked files only)", &mut || {
                    git(d, None, &["stash", "create"]);
                }),
            ],
        );
        assert_eq!(gix_tree, git_tree, "the same tree as git add -A");
        out.push_str(&table(
            &format!(
                "Snapshot of {files} tracked files (1% modified, 200 untracked, ignored data)"
            ),
            &results,
        ));
        out.push('\n');
    }
    flammable_bench::report("snapshot_cost", &out, smoke);
}
