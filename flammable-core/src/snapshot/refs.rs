//! The refs that keep snapshots alive: pointing a run's ref at an existing commit (a
//! rerun), and deleting a run's refs (`gc`).

use super::{git, Result, REF_PREFIX, RESUME_PREFIX};
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use std::path::Path;

/// Points `refs/flammable/runs/<run_id>` of the repository at `git_dir` at an existing
/// commit (a rerun runs exactly the code of an earlier snapshot).
pub fn reuse(git_dir: &Path, commit: &str, run_id: &str) -> Result<()> {
    let repo = gix::open(git_dir).map_err(git("open the repository"))?;
    let id = gix::ObjectId::from_hex(commit.as_bytes()).map_err(git("read a commit id"))?;
    let name = format!("{REF_PREFIX}{run_id}");
    repo.edit_reference(RefEdit {
        change: Change::Update {
            log: LogChange::default(),
            expected: PreviousValue::MustNotExist,
            new: gix::refs::Target::Object(id),
        },
        name: name.as_str().try_into().map_err(git("name the ref"))?,
        deref: false,
    })
    .map_err(git("write the ref"))?;
    Ok(())
}

/// Deletes `refs/flammable/runs/<run_id>` and the refs of its resumes
/// (`refs/flammable/resumes/<run_id>-…`); the commits go with the next `git gc`.
pub fn delete_ref(git_dir: &Path, run_id: &str) -> Result<bool> {
    let repo = gix::open(git_dir).map_err(git("open the repository"))?;
    let mut names = vec![format!("{REF_PREFIX}{run_id}")];
    let prefix = format!("{RESUME_PREFIX}{run_id}-");
    let refs = repo.references().map_err(git("list refs"))?;
    for r in refs
        .prefixed(RESUME_PREFIX)
        .map_err(git("list refs"))?
        .flatten()
    {
        let name = r.name().as_bstr().to_string();
        if name.starts_with(&prefix) {
            names.push(name);
        }
    }
    let mut deleted = false;
    for name in names {
        deleted |= delete_reference(&repo, &name)?;
    }
    Ok(deleted)
}

/// Deletes ref `name` of the repository at `git_dir` if it exists; true when it did.
pub fn delete_named_ref(git_dir: &Path, name: &str) -> Result<bool> {
    let repo = gix::open(git_dir).map_err(git("open the repository"))?;
    delete_reference(&repo, name)
}

/// Deletes ref `name` if it exists; true when it did.
fn delete_reference(repo: &gix::Repository, name: &str) -> Result<bool> {
    let found = repo.try_find_reference(name).map_err(git("read a ref"))?;
    if found.is_none() {
        return Ok(false);
    }
    repo.edit_reference(RefEdit {
        change: Change::Delete {
            expected: PreviousValue::Any,
            log: RefLog::AndReference,
        },
        name: name.try_into().map_err(git("name the ref"))?,
        deref: false,
    })
    .map_err(git("delete the ref"))?;
    Ok(true)
}
