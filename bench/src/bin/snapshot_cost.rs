//! What a run's snapshot costs: Flammable's (gix, in-process) against git CLI plumbing doing
//! the same (a copy of the index, `add -A`, `write-tree`, `commit-tree`, `update-ref`) and
//! `git stash create` (tracked files only), on repositories of 1k, 10k and 50k tracked files
//! with 1% modified, 200 untracked files and a 1 GB ignored data folder; and Flammable's
//! snapshot of the same repository with the data folder moved away, to show that ignored
//! data costs nothing however large it is.
//!
//! `cargo run --release -p flammable-bench --bin snapshot_cost [-- --smoke]`

use flammable::snapshot::{take, SnapshotRequest, DEFAULT_SIZE_LIMIT};
use flammable_bench::{git, interleave_timed, table, timed, TimedVariant};
use std::io::Write;
use std::path::Path;

/// A repository of `files` tracked files, 1% of them modified, 200 untracked and `data_mib`
/// MiB of ignored data.
fn repo(dir: &Path, files: usize, data_mib: usize) {
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
    // Real bytes (not sparse files), in shards of up to 10 MiB.
    let size = (data_mib << 20).min(10 << 20);
    let n = (data_mib << 20) / size;
    let block: Vec<u8> = (0..1 << 16)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    for i in 0..n {
        let mut f = std::fs::File::create(dir.join(format!("data/shard{i}.bin"))).expect("create");
        for _ in 0..size / block.len() {
            f.write_all(&block).expect("write data");
        }
    }
}

/// Flammable's snapshot of `dir` as run `id`; returns its tree.
fn snapshot(dir: &Path, id: String) -> String {
    take(&SnapshotRequest {
        dir: dir.to_path_buf(),
        create_repository: true,
        run_id: id,
        message: "bench".into(),
        size_limit: DEFAULT_SIZE_LIMIT,
        exclude: Vec::new(),
        reference: None,
    })
    .expect("snapshot")
    .tree
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let (sizes, reps, data_mib): (&[usize], usize, usize) = if smoke {
        (&[100], 1, 1)
    } else {
        (&[1_000, 10_000, 50_000], 5, 1024)
    };
    let mut out = String::new();
    for &files in sizes {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        repo(d, files, data_mib);
        let (mut n_git, mut n_gix, mut n_moved) = (0, 0, 0);
        let mut gix_tree = String::new();
        let mut git_tree = String::new();
        let tmp = tempfile::tempdir_in(d.parent().unwrap_or(d)).expect("temp dir");
        let index = tmp.path().join("index");
        let aside = tmp.path().join("data-aside");
        let mut variants: Vec<(&str, TimedVariant<'_>)> = vec![
            (
                "git plumbing (index copy, add -A, write-tree, commit-tree, update-ref)",
                Box::new(|| {
                    n_git += 1;
                    timed(|| {
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
                    })
                }),
            ),
            (
                "Flammable snapshot (gix)",
                Box::new(|| {
                    n_gix += 1;
                    timed(|| gix_tree = snapshot(d, format!("bench-{n_gix}")))
                }),
            ),
            (
                "git stash create (tracked files only)",
                Box::new(|| timed(|| drop(git(d, None, &["stash", "create"])))),
            ),
            (
                "Flammable snapshot, the ignored data folder moved away",
                Box::new(|| {
                    n_moved += 1;
                    std::fs::rename(d.join("data"), &aside).expect("move the data away");
                    let t = timed(|| drop(snapshot(d, format!("bench-moved-{n_moved}"))));
                    std::fs::rename(&aside, d.join("data")).expect("move the data back");
                    t
                }),
            ),
        ];
        let results = interleave_timed(reps, &mut variants);
        drop(variants);
        assert_eq!(gix_tree, git_tree, "the same tree as git add -A");
        out.push_str(&table(
            &format!(
                "Snapshot of {files} tracked files (1% modified, 200 untracked, {data_mib} MiB of ignored data)"
            ),
            &results,
        ));
        out.push('\n');
    }
    flammable_bench::report("snapshot_cost", &out, smoke);
}
