//! Snapshots as Git bundles: the code of runs in one file that travels with them (`push`),
//! and back into a repository (`pull`).
//!
//! gix writes no bundles, so these two go through the `git` command (as the team's notes say
//! to where gix falls short): `git bundle create` and `git fetch` from the bundle file. A
//! bundle holds the named refs' commits and every commit they need, so that the other side
//! needs nothing else.

use super::{Result, SnapshotError, REF_PREFIX, RESUME_PREFIX};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The refs of run `run_id` in the repository at `git_dir`: `refs/flammable/runs/<id>` and
/// its resumes' `refs/flammable/resumes/<id>-…`, each with its commit (sorted by name).
pub fn refs_of_run(git_dir: &Path, run_id: &str) -> Result<Vec<(String, String)>> {
    let repo = gix::open(git_dir).map_err(super::git("open the repository"))?;
    let refs = repo.references().map_err(super::git("list refs"))?;
    let own = format!("{REF_PREFIX}{run_id}");
    let resumes = format!("{RESUME_PREFIX}{run_id}-");
    let mut out = Vec::new();
    for prefix in [REF_PREFIX, RESUME_PREFIX] {
        for r in refs.prefixed(prefix).map_err(super::git("list refs"))? {
            let r = r.map_err(super::git("list refs"))?;
            let name = r.name().as_bstr().to_string();
            if name != own && !name.starts_with(&resumes) {
                continue;
            }
            if let Some(id) = r.target().try_id() {
                out.push((name, id.to_string()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Writes a bundle of `refs` of the repository at `git_dir` (with every commit they need)
/// to `out`.
pub fn create_bundle(git_dir: &Path, refs: &[String], out: &Path) -> Result<()> {
    let mut cmd = git(git_dir);
    cmd.args(["bundle", "create", "--quiet"])
        .arg(out)
        .args(refs);
    run(cmd, "write a bundle of the runs' code")
}

/// Fetches `refs` from the bundle file `bundle` into the repository at `git_dir`, each to
/// the same name. A ref that exists with another commit is refused (no forced update).
pub fn fetch_bundle(git_dir: &Path, bundle: &Path, refs: &[String]) -> Result<()> {
    let mut cmd = git(git_dir);
    cmd.args(["fetch", "--quiet", "--no-write-fetch-head"])
        .arg(bundle)
        .args(refs.iter().map(|r| format!("{r}:{r}")));
    run(cmd, "fetch the runs' code from their bundle")
}

/// The repository that holds pulled code when no repository encloses the store: a bare one
/// in the store, made on first use.
pub fn open_or_init_bare(dir: &Path) -> Result<PathBuf> {
    if dir.join("HEAD").is_file() {
        return Ok(dir.to_path_buf());
    }
    gix::init_bare(dir).map_err(super::git("create a repository for pulled code"))?;
    Ok(dir.to_path_buf())
}

/// `git --git-dir <git_dir>` with no user configuration that could prompt or page.
fn git(git_dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("--git-dir")
        .arg(git_dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
    cmd
}

fn run(mut cmd: Command, action: &'static str) -> Result<()> {
    let out = cmd.output().map_err(|e| SnapshotError::Git {
        action,
        message: if e.kind() == std::io::ErrorKind::NotFound {
            "the `git` command is not installed (bundles need it)".into()
        } else {
            format!("cannot start git: {e}")
        },
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let message = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    Err(SnapshotError::Git {
        action,
        message: if message.is_empty() {
            format!("git ended with {}", out.status)
        } else {
            message
        },
    })
}

/// The commit ref `name` of the repository at `git_dir` points at, if it exists.
pub fn ref_target(git_dir: &Path, name: &str) -> Option<String> {
    let repo = gix::open(git_dir).ok()?;
    let r = repo.try_find_reference(name).ok()??;
    r.target().try_id().map(|id| id.to_string())
}

/// Pushes `refs` of the repository at `git_dir` to the Git remote `remote` (a name or URL),
/// each to the same name (`push --git`).
pub fn push_refs(git_dir: &Path, remote: &str, refs: &[String]) -> Result<()> {
    let mut cmd = git(git_dir);
    cmd.args(["push", "--quiet", remote])
        .args(refs.iter().map(|r| format!("{r}:{r}")));
    run(cmd, "push the runs' code refs")
}

/// True when the repository at `git_dir` has a remote named `name`.
pub fn has_remote(git_dir: &Path, name: &str) -> bool {
    gix::open(git_dir).ok().is_some_and(|repo| {
        repo.remote_names()
            .iter()
            .any(|n| AsRef::<[u8]>::as_ref(n) == name.as_bytes())
    })
}
