//! A run's files: listed, and downloaded — only from inside the run's folder. A path that
//! could leave it (`..`, an absolute path, a link pointing out) is answered 404, like a path
//! that does not exist.

use super::read::find_run;
use super::state::AppState;
use crate::store::hashes::HASHES_FILE;
use crate::store::{LOCK_FILE, RECORD_FILE};
use crate::web::AppError;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// At most this many files are listed for a run.
pub const MAX_LISTED: usize = 10_000;

/// What a URL path keeps as it is: letters, digits, `-._~` and the separator `/`; every
/// other byte is percent-encoded (`#`, `?`, `%`, spaces, bytes that are not UTF-8).
const IN_PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// `path` (its exact bytes, `/`-separated) as it goes into a URL.
pub fn url_path(path: &[u8]) -> String {
    percent_encode(path, IN_PATH).to_string()
}

/// One file of a run's folder.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RunFile {
    /// Its path in the folder, `/`-separated (bytes that are not UTF-8 shown as `�`).
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its exact path, percent-encoded for a URL: `/files/ID/{url_path}` downloads it.
    pub url_path: String,
}

/// The files of a run's folder, sorted by path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// The files found.
    pub files: Vec<RunFile>,
    /// False when the folder holds more files than were listed.
    pub complete: bool,
}

/// The files of the folder `dir`: at most [`MAX_LISTED`] (the walk stops there), lock
/// files, which hold nothing, left out, links not followed.
pub fn list(dir: &Path) -> Listing {
    list_at_most(dir, MAX_LISTED)
}

fn list_at_most(dir: &Path, most: usize) -> Listing {
    let mut files = Vec::new();
    let mut complete = true;
    let mut stack = vec![PathBuf::new()];
    'walk: while let Some(rel) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(dir.join(&rel)) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(kind) = e.file_type() else { continue };
            let name = e.file_name();
            let path = rel.join(&name);
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file()
                && name != LOCK_FILE
                && !name.as_encoded_bytes().ends_with(b".lock")
                && !(rel.as_os_str().is_empty() && name == HASHES_FILE)
            {
                if files.len() == most {
                    complete = false;
                    break 'walk;
                }
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                let bytes = path_bytes(&path);
                files.push(RunFile {
                    path: String::from_utf8_lossy(&bytes).into_owned(),
                    size,
                    url_path: url_path(&bytes),
                });
            }
        }
    }
    files.sort_by(|a, b| a.url_path.cmp(&b.url_path));
    Listing { files, complete }
}

/// The bytes of a relative path, `/`-separated.
fn path_bytes(path: &Path) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt as _;
        path.as_os_str().as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        path.to_string_lossy().replace('\\', "/").into_bytes()
    }
}

/// A relative path from its bytes (on Unix any bytes; elsewhere UTF-8 only).
fn path_from(bytes: &[u8]) -> Option<PathBuf> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt as _;
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
    }
    #[cfg(not(unix))]
    {
        std::str::from_utf8(bytes).ok().map(PathBuf::from)
    }
}

/// The file `rel` of the folder `dir`, when `rel` stays inside it: plain names only (no
/// `..`, `.`, root or prefix), and after following links the file must still be inside.
pub fn confined(dir: &Path, rel: &[u8]) -> Option<PathBuf> {
    if rel.is_empty() || rel.contains(&0) || rel.contains(&b'\\') {
        return None;
    }
    let rel_path = path_from(rel)?;
    if !rel_path
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let root = dir.canonicalize().ok()?;
    let file = dir.join(rel_path).canonicalize().ok()?;
    (file.starts_with(&root) && file.is_file()).then_some(file)
}

/// The run and the file's exact bytes of a `/files/{id}/{*path}` URL. Read from the raw
/// path, not from axum's decoded captures, which must be UTF-8.
fn run_and_path(uri: &Uri) -> Option<(String, Vec<u8>)> {
    let rest = uri.path().strip_prefix("/files/")?;
    let (id, path) = rest.split_once('/')?;
    let id = percent_decode_str(id).decode_utf8().ok()?.into_owned();
    Some((id, percent_decode_str(path).collect()))
}

/// `GET /files/{id}/{*path}`: the file as a download, streamed.
pub async fn download(State(state): State<Arc<AppState>>, uri: Uri) -> Result<Response, AppError> {
    let missing = || AppError::not_found("no such file in this run");
    let (id, path) = run_and_path(&uri).ok_or_else(missing)?;
    let file = super::api::blocking(&state, move |s| {
        let run = find_run(&s.index.snapshot(), &id)?;
        confined(&s.store().run_dir(&run.id), &path).ok_or_else(missing)
    })
    .await?;
    let opened = tokio::fs::File::open(&file).await.map_err(|_| missing())?;
    let len = opened.metadata().await.map(|m| m.len()).ok();
    let name = file
        .file_name()
        .map(|n| path_bytes(Path::new(n)))
        .unwrap_or_default();
    let shown = String::from_utf8_lossy(&name);
    // The record is text worth reading in the browser; everything else is a download, never
    // rendered.
    let text = shown == RECORD_FILE || shown.ends_with(".txt") || shown.ends_with(".ron");
    let kind = if text {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    // A plain ASCII name for every client, the exact one for those that read RFC 6266.
    let plain: String = shown
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!(
        "{}; filename=\"{plain}\"; filename*=UTF-8''{}",
        if text { "inline" } else { "attachment" },
        percent_encode(&name, NON_ALPHANUMERIC)
    );
    let mut response = Body::from_stream(tokio_util::io::ReaderStream::new(opened)).into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_inside_the_folder_are_served() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        std::fs::create_dir_all(run.join("files")).unwrap();
        std::fs::write(run.join("files/out.txt"), "x").unwrap();
        std::fs::write(tmp.path().join("secret"), "s").unwrap();
        assert!(confined(&run, b"files/out.txt").is_some());
        for bad in [
            "../secret",
            "files/../../secret",
            "/etc/passwd",
            "",
            "files",
            "files\\..\\..\\secret",
            "nope",
        ] {
            assert!(confined(&run, bad.as_bytes()).is_none(), "{bad}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(tmp.path().join("secret"), run.join("files/link")).unwrap();
            assert!(confined(&run, b"files/link").is_none());
        }
        let listed = list(&run);
        assert!(listed.complete);
        assert!(listed
            .files
            .iter()
            .any(|f| f.path == "files/out.txt" && f.size == 1));
    }

    #[test]
    fn names_of_any_bytes_are_listed_with_their_exact_url() {
        let tmp = tempfile::tempdir().unwrap();
        let files = tmp.path().join("files");
        std::fs::create_dir_all(&files).unwrap();
        std::fs::write(files.join("a#b?c%d e+f.txt"), "x").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt as _;
            let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
            std::fs::write(files.join(latin1), "yz").unwrap();
        }
        let listed = list(tmp.path()).files;
        let urls: Vec<&str> = listed.iter().map(|f| f.url_path.as_str()).collect();
        assert!(
            urls.contains(&"files/a%23b%3Fc%25d%20e%2Bf.txt"),
            "{urls:?}"
        );
        #[cfg(unix)]
        {
            let latin1 = listed
                .iter()
                .find(|f| f.url_path == "files/caf%E9.txt")
                .unwrap_or_else(|| panic!("not listed: {listed:?}"));
            assert_eq!(
                (latin1.path.as_str(), latin1.size),
                ("files/caf\u{fffd}.txt", 2)
            );
            assert!(confined(tmp.path(), b"files/caf\xe9.txt").is_some());
        }
    }

    #[test]
    fn the_walk_stops_at_the_cap() {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["a", "b", "c"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
            for i in 0..6 {
                std::fs::write(tmp.path().join(d).join(format!("{i}")), "").unwrap();
            }
        }
        let some = list_at_most(tmp.path(), 10);
        assert_eq!(some.files.len(), 10);
        assert!(!some.complete);
        let all = list_at_most(tmp.path(), 18);
        assert_eq!(all.files.len(), 18);
        assert!(all.complete);
    }
}
