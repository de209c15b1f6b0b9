//! Where a snapshot goes: the repository enclosing the code's folder, opened; or, where the
//! caller allows it and none exists, created in that folder.

use super::{git, Result, SnapshotError};
use std::path::{Path, PathBuf};

/// The repository enclosing `dir`, the root of its working tree, and whether it was created
/// just now: in `dir`, only when no repository encloses it and `create` allows it.
pub(super) fn open_or_create(dir: &Path, create: bool) -> Result<(gix::Repository, PathBuf, bool)> {
    let (repo, created) = match gix::discover(dir) {
        Ok(repo) => (repo, false),
        Err(e) if is_no_repository(&e) && !create => {
            return Err(SnapshotError::NoRepository(dir.to_path_buf()))
        }
        // Only "no repository here or above" may create one: a repository that exists but
        // cannot be opened (another object format, a broken config) must never get a second
        // one nested inside it.
        Err(e) if is_no_repository(&e) => match gix::init(dir) {
            Ok(repo) => {
                ignore_cargo_target(repo.git_dir())?;
                (repo, true)
            }
            // Runs started together (a sweep's) race to create it: the loser opens the
            // winner's, once that one is complete.
            Err(init) => (
                created_meanwhile(dir).ok_or_else(|| SnapshotError::Git {
                    action: "create a repository",
                    message: init.to_string(),
                })?,
                false,
            ),
        },
        Err(e) => {
            return Err(unsupported_format(dir).unwrap_or(SnapshotError::Git {
                action: "open the repository",
                message: e.to_string(),
            }))
        }
    };
    refuse_unsupported(&repo)?;
    let workdir = repo
        .workdir()
        .map(Path::to_path_buf)
        .ok_or_else(|| SnapshotError::Bare(repo.git_dir().to_path_buf()))?;
    let workdir = std::fs::canonicalize(&workdir).unwrap_or(workdir);
    Ok((repo, workdir, created))
}

/// The object format of the repository enclosing `dir`, when it is one this build cannot
/// read (SHA-256): gix then fails with a generic "configuration could not be loaded".
fn unsupported_format(dir: &Path) -> Option<SnapshotError> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    for folder in dir.ancestors() {
        let dot_git = folder.join(".git");
        let git_dir = if dot_git.is_dir() {
            dot_git
        } else if let Ok(text) = std::fs::read_to_string(&dot_git) {
            // A worktree or submodule: `gitdir: <path>`.
            let target = text.trim().strip_prefix("gitdir:")?.trim().to_string();
            folder.join(target)
        } else {
            continue;
        };
        let config = std::fs::read_to_string(git_dir.join("config")).ok()?;
        let sha256 = config.lines().any(|line| {
            let line: String = line
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_ascii_lowercase();
            line == "objectformat=sha256"
        });
        return sha256.then(|| {
            SnapshotError::Unsupported(format!(
                "SHA-256 repositories (extensions.objectFormat = sha256 in {})",
                git_dir.join("config").display()
            ))
        });
    }
    None
}

/// The repository another process has just created in `dir`, once it can be opened (for
/// up to a second: `init` writes a few files).
fn created_meanwhile(dir: &Path) -> Option<gix::Repository> {
    for _ in 0..50 {
        if let Ok(repo) = gix::discover(dir) {
            return Some(repo);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    None
}

/// Makes a repository Flammable created ignore Cargo's build folder, `/target/`, as the
/// `.gitignore` of `cargo new` would have (in its `info/exclude`: the user's folder gets no
/// file). Without it, the first snapshot of a project that never had Git would hash every
/// build product.
fn ignore_cargo_target(git_dir: &Path) -> Result<()> {
    let exclude = git_dir.join("info").join("exclude");
    let mut text = std::fs::read_to_string(&exclude).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("# Cargo's build folder (Flammable created this repository)\n/target/\n");
    std::fs::create_dir_all(git_dir.join("info"))
        .and_then(|()| std::fs::write(&exclude, text))
        .map_err(git("write the new repository's info/exclude"))
}

/// True when `error` says that no repository encloses the folder (and nothing else).
fn is_no_repository(error: &gix::Error) -> bool {
    use gix::discover::upwards::Error as Upwards;
    matches!(
        error.downcast_any_ref::<Upwards>(),
        Some(
            Upwards::NoGitRepository { .. }
                | Upwards::NoGitRepositoryWithinCeiling { .. }
                | Upwards::NoGitRepositoryWithinFs { .. }
        )
    )
}

/// Refuses, with the reason, repositories whose snapshot would not be what `git add -A`
/// gives: a sparse checkout or sparse index (gix would add files outside the sparse
/// patterns) and reftable ref storage (gix cannot write its refs).
fn refuse_unsupported(repo: &gix::Repository) -> Result<()> {
    let config = repo.config_snapshot();
    let unsupported = |what: &str| {
        Err(SnapshotError::Unsupported(format!(
            "{what} (in {})",
            repo.git_dir().display()
        )))
    };
    if config.boolean("index.sparse").unwrap_or(false)
        || config.boolean("core.sparseCheckout").unwrap_or(false)
    {
        return unsupported("a sparse checkout or sparse index");
    }
    if config
        .string("extensions.refStorage")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"reftable"))
    {
        return unsupported("reftable ref storage");
    }
    Ok(())
}
