//! Where a task's code is: the folder whose Git repository a run snapshots, and around which
//! the default store lives. A task binary knows its crate's folder from when it was built, so
//! it records the right code wherever it is started from.

use std::path::{Path, PathBuf};

/// Names the folder whose repository runs snapshot, instead of the task's crate folder.
pub const CODE_DIR_ENV: &str = "FLAMMABLE_CODE_DIR";

/// The folder whose repository a run snapshots, and why that one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeDir {
    /// The folder (inside a working tree, or where a repository may be created).
    pub path: PathBuf,
    /// Where it comes from.
    pub source: CodeSource,
    /// The task's crate folder as it was built (empty when unknown), for messages.
    pub crate_dir: PathBuf,
}

/// Why a folder is the code's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeSource {
    /// `$FLAMMABLE_CODE_DIR`.
    Named,
    /// The task's crate folder, as it was built (`CARGO_MANIFEST_DIR`).
    Crate,
    /// The current folder: the binary was built elsewhere (its crate folder is not on this
    /// machine), or it is no task's (the `flammable` binary).
    CurrentFolder,
}

impl CodeDir {
    /// The code folder of a task built in `manifest_dir` (empty when unknown):
    /// `$FLAMMABLE_CODE_DIR` (relative to `cwd`), else the crate folder when it exists here,
    /// else `cwd`.
    pub fn choose(named: Option<&Path>, manifest_dir: &Path, cwd: &Path) -> Result<Self, String> {
        if let Some(named) = named {
            if !named.is_dir() {
                return Err(format!(
                    "{CODE_DIR_ENV}={}: not a folder (it names the folder whose repository runs snapshot)",
                    named.display()
                ));
            }
            // Whole, so that the record names it from anywhere (`show`, `checkout`, the
            // browser run elsewhere).
            return Ok(CodeDir {
                path: cwd.join(named),
                source: CodeSource::Named,
                crate_dir: manifest_dir.to_path_buf(),
            });
        }
        if !manifest_dir.as_os_str().is_empty() && manifest_dir.is_dir() {
            return Ok(CodeDir {
                path: manifest_dir.to_path_buf(),
                source: CodeSource::Crate,
                crate_dir: manifest_dir.to_path_buf(),
            });
        }
        Ok(CodeDir {
            path: cwd.to_path_buf(),
            source: CodeSource::CurrentFolder,
            crate_dir: manifest_dir.to_path_buf(),
        })
    }

    /// [`CodeDir::choose`] with `$FLAMMABLE_CODE_DIR` and the current folder of this process.
    pub fn of_task(manifest_dir: &str) -> Result<Self, String> {
        let named = std::env::var_os(CODE_DIR_ENV).map(PathBuf::from);
        if named.as_ref().is_some_and(|n| n.as_os_str().is_empty()) {
            return Err(format!(
                "{CODE_DIR_ENV} is set but empty: unset it, or name the folder whose repository runs snapshot"
            ));
        }
        let cwd =
            std::env::current_dir().map_err(|e| format!("cannot read the current folder: {e}"))?;
        Self::choose(named.as_deref(), Path::new(manifest_dir), &cwd)
    }

    /// The current folder, for binaries that are no task's.
    pub fn current() -> Result<Self, String> {
        Self::of_task("")
    }

    /// True when a repository may be created in the folder if none encloses it: only the
    /// task's own crate folder. Never a folder named by `$FLAMMABLE_CODE_DIR` (a typo there
    /// could name a home folder or `/tmp`), nor whatever folder the binary happens to be
    /// started from.
    pub fn may_create_repository(&self) -> bool {
        self.source == CodeSource::Crate
    }

    /// Why no snapshot can be taken when no repository encloses the folder and none may be
    /// created, with what to do about it (besides `--allow-no-snapshot`, which the caller
    /// names).
    pub fn no_repository_hint(&self) -> String {
        if self.source == CodeSource::Named {
            return format!(
                "{CODE_DIR_ENV}={}: no Git repository at or above that folder (none is created there): name a folder of the code's repository, or run `git init` in it",
                self.path.display()
            );
        }
        let built = if self.crate_dir.as_os_str().is_empty() {
            String::new()
        } else {
            format!(
                "; the task was built in {}, which is not on this machine",
                self.crate_dir.display()
            )
        };
        format!(
            "no Git repository at or above {}{built}: start the task inside its repository, or name the code's folder with {CODE_DIR_ENV}",
            self.path.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_then_crate_then_current_folder() {
        let crate_dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let cwd = elsewhere.path();
        let named = CodeDir::choose(Some(cwd), crate_dir.path(), cwd).unwrap();
        assert_eq!(named.source, CodeSource::Named);
        assert!(!named.may_create_repository());
        assert!(named.no_repository_hint().contains("git init"));
        let built = CodeDir::choose(None, crate_dir.path(), cwd).unwrap();
        assert_eq!(
            (built.path.as_path(), built.source),
            (crate_dir.path(), CodeSource::Crate)
        );
        assert!(built.may_create_repository());
        let gone = crate_dir.path().join("moved");
        let here = CodeDir::choose(None, &gone, cwd).unwrap();
        assert_eq!(
            (here.path.as_path(), here.source),
            (cwd, CodeSource::CurrentFolder)
        );
        assert!(!here.may_create_repository());
        assert!(CodeDir::choose(Some(&gone), crate_dir.path(), cwd)
            .unwrap_err()
            .contains("not a folder"));
        assert!(here.no_repository_hint().contains("not on this machine"));
    }
}
