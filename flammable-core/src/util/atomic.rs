//! Atomic file writes: a reader sees the old file or the whole new one, never half of it.
//! Errors name the path in their message.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A temporary path beside `path`, unique to this process and call.
pub fn temp_path_for(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Removes the temporary files ([`temp_path_for`]'s names) in folder `dir` and the folders
/// under it: what a process killed while writing left. Call only while no other process
/// writes there.
pub fn remove_temporary_files_under(dir: &Path) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        match entry.file_type() {
            Ok(t) if t.is_dir() => remove_temporary_files_under(&path),
            Ok(t) if t.is_file() && name.starts_with('.') && name.ends_with(".tmp") => {
                let _ = fs::remove_file(&path);
            }
            _ => {}
        }
    }
}

/// `e` with what was done to `path` in front: `cannot write `a.ron`: No space left…`,
/// keeping its kind.
pub fn at_path(action: &str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{action} `{}`: {e}", path.display()))
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path_for(path);
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(at_path("cannot write", path, e));
    }
    commit_temp(&tmp, path)
}

/// Writes `bytes` to the file a user named as an output (`eval IN OUT`): a regular file, or
/// one that does not exist yet, atomically ([`write_atomic`]) — through a symbolic link to
/// the file it names, never replacing the link; anything else (a FIFO, `/dev/stdout`, a
/// device) is written to as it is, never replaced by a regular file.
pub fn write_output(path: &Path, bytes: &[u8]) -> io::Result<()> {
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            format!("cannot write `{}`: it is a folder", path.display()),
        )),
        Ok(m) if !m.is_file() => {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| at_path("cannot write", path, e))?;
            f.write_all(bytes)
                .and_then(|()| f.flush())
                .map_err(|e| at_path("cannot write", path, e))
        }
        _ => write_atomic(&link_target(path)?, bytes),
    }
}

/// The file a chain of symbolic links at `path` ends at (even one that does not exist yet);
/// `path` itself when it is no link. An error for a loop of links (or a chain over 40).
fn link_target(path: &Path) -> io::Result<PathBuf> {
    let mut at = path.to_path_buf();
    for _ in 0..40 {
        match fs::read_link(&at) {
            Ok(next) => {
                at = match at.parent() {
                    Some(dir) if next.is_relative() => dir.join(next),
                    _ => next,
                }
            }
            Err(_) => return Ok(at),
        }
    }
    Err(io::Error::other(format!(
        "cannot write `{}`: too many levels of symbolic links",
        path.display()
    )))
}

/// Moves a fully written and synced temp file into place, then syncs the folder so the
/// rename itself survives a power loss.
pub fn commit_temp(tmp: &Path, path: &Path) -> io::Result<()> {
    if let Err(e) = fs::rename(tmp, path) {
        let _ = fs::remove_file(tmp);
        return Err(at_path("cannot write", path, e));
    }
    sync_parent(path)
}

/// Syncs the folder holding `path` (a no-op where folders cannot be opened).
pub fn sync_parent(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            d.sync_all().map_err(|e| at_path("cannot sync", dir, e))?;
        }
    }
    Ok(())
}

/// Flushes to disk everything written to the file system that holds folder `dir`: Linux's
/// `syncfs`, one wait for the disk where an fsync per file waits once per file; `sync` (every
/// file system) on other Unix systems; nothing elsewhere.
pub fn sync_file_system(dir: &Path) -> io::Result<()> {
    let folder = File::open(dir).map_err(|e| at_path("cannot open", dir, e))?;
    flush_file_system(&folder).map_err(|e| at_path("cannot sync", dir, e))
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn flush_file_system(folder: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `syncfs` reads no memory of ours; it is given a descriptor that `folder` keeps
    // open for the whole call.
    let done = unsafe { libc::syncfs(folder.as_raw_fd()) };
    if done == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
#[allow(unsafe_code)]
fn flush_file_system(_folder: &File) -> io::Result<()> {
    // SAFETY: `sync` takes no arguments and cannot fail.
    unsafe { libc::sync() };
    Ok(())
}

#[cfg(not(unix))]
fn flush_file_system(_folder: &File) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_system_is_synced_through_a_folder_of_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"a").unwrap();
        sync_file_system(dir.path()).unwrap();
        let missing = dir.path().join("missing");
        let e = sync_file_system(&missing).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }

    #[test]
    fn an_output_is_written_through_links_and_into_special_files() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.ron");
        std::fs::write(&target, "old").unwrap();
        let link = dir.path().join("link.ron");
        std::os::unix::fs::symlink("target.ron", &link).unwrap();
        write_output(&link, b"new").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
        // A dangling link: the file it names is created.
        let dangling = dir.path().join("dangling.ron");
        std::os::unix::fs::symlink("made.ron", &dangling).unwrap();
        write_output(&dangling, b"made").unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("made.ron")).unwrap(),
            "made"
        );
        // A device is written to, not replaced.
        write_output(Path::new("/dev/null"), b"gone").unwrap();
        assert!(!fs::metadata("/dev/null").unwrap().is_file());
        let full = write_output(Path::new("/dev/full"), b"x").unwrap_err();
        assert!(full.to_string().contains("/dev/full"), "{full}");
        assert!(!fs::metadata("/dev/full").unwrap().is_file());
        assert!(write_output(dir.path(), b"x").is_err());
        // A loop of links is refused, and stays as it was.
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::os::unix::fs::symlink("b", &a).unwrap();
        std::os::unix::fs::symlink("a", &b).unwrap();
        let looped = write_output(&a, b"x").unwrap_err();
        assert!(looped.to_string().contains("symbolic links"), "{looped}");
        assert!(fs::symlink_metadata(&a).unwrap().file_type().is_symlink());
    }

    #[test]
    fn replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.ron");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn failure_names_the_path() {
        let p = Path::new("/nonexistent-folder/x.ron");
        let e = write_atomic(p, b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("/nonexistent-folder/x.ron"), "{e}");
    }
}
