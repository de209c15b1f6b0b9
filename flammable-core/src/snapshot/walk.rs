//! What `bisect` needs of Git: revisions resolved, the commits between two, and a folder
//! that follows one commit after another, rewriting only the files that change (so that cargo
//! rebuilds only what a commit touched). Through the `git` command, with an index of its own:
//! the user's HEAD, index and working tree are never touched.

use super::{Result, SnapshotError};
use std::path::Path;
use std::process::Command;

/// The commit `rev` names in the repository at `git_dir` (a sha, a branch, `HEAD~3`).
pub fn resolve_commit(git_dir: &Path, rev: &str) -> Result<String> {
    let out = git(
        git_dir,
        &[
            "rev-parse",
            "--verify",
            "--end-of-options",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .map_err(|_| SnapshotError::Missing(rev.to_string()))?;
    Ok(out.trim().to_string())
}

/// The commits after `good` up to `bad` (oldest first), along `bad`'s first parents, each
/// with its subject; an error unless `good` is an ancestor of `bad`.
pub fn commits_between(git_dir: &Path, good: &str, bad: &str) -> Result<Vec<(String, String)>> {
    if git(git_dir, &["merge-base", "--is-ancestor", good, bad]).is_err() {
        return Err(SnapshotError::Unsupported(format!(
            "bisecting from {} to {}, which is not one of its descendants",
            short(good),
            short(bad)
        )));
    }
    let out = git(
        git_dir,
        &[
            "log",
            "--first-parent",
            "--ancestry-path",
            "--reverse",
            "--format=%H%x09%s",
            &format!("{good}..{bad}"),
        ],
    )?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(c, s)| (c.to_string(), s.to_string()))
        .collect())
}

/// Makes folder `dir` hold exactly the files of `commit`, tracked by the index file `index`
/// (both private to the caller, who holds them alone): files that differ from the index, or
/// are missing, are written, the others keep their times (so that cargo rebuilds only what
/// changed), and files the commit does not have (a `Cargo.lock` a build wrote) are removed.
pub fn follow_commit(git_dir: &Path, index: &Path, dir: &Path, commit: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| SnapshotError::Io {
        action: "cannot create",
        path: dir.to_path_buf(),
        source,
    })?;
    // A lock a killed git left would stop every later update.
    let _ = std::fs::remove_file(index.with_extension("lock"));
    for args in [
        vec!["read-tree", "-u", "--reset", commit],
        vec!["clean", "-q", "-f", "-d", "-x"],
    ] {
        let mut cmd = Command::new("git");
        cmd.arg("--git-dir")
            .arg(git_dir)
            .arg("--work-tree")
            .arg(dir)
            .current_dir(dir)
            .env("GIT_INDEX_FILE", index)
            .args(args);
        run(cmd, "write a commit's files")?;
    }
    Ok(())
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// `git --git-dir <git_dir> ARGS`; its standard output.
fn git(git_dir: &Path, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new("git");
    cmd.arg("--git-dir").arg(git_dir).args(args);
    run(cmd, "read the history")
}

fn run(mut cmd: Command, action: &'static str) -> Result<String> {
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
    let out = cmd.output().map_err(|e| SnapshotError::Git {
        action,
        message: format!("cannot start git: {e}"),
    })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(SnapshotError::Git {
        action,
        message: stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
    })
}
