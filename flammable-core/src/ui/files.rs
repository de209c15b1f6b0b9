//! A run's files: listed, and downloaded — only from inside the run's folder. A path that
//! could leave it (`..`, an absolute path, a link pointing out) is answered 404, like a path
//! that does not exist.

use super::state::AppState;
use crate::store::{LOCK_FILE, RECORD_FILE};
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// At most this many files are listed for a run.
const MAX_LISTED: usize = 10_000;

/// One file of a run's folder.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RunFile {
    /// Its path in the folder, `/`-separated.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The files of the folder `dir`, sorted by path (lock files, which hold nothing, are left
/// out; links are not followed).
pub fn list(dir: &Path) -> Vec<RunFile> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(dir.join(&rel)) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(kind) = e.file_type() else { continue };
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let path = rel.join(&name);
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() && name != LOCK_FILE && !name.ends_with(".lock") {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                out.push(RunFile {
                    path: path
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy())
                        .collect::<Vec<_>>()
                        .join("/"),
                    size,
                });
            }
            if out.len() >= MAX_LISTED {
                break;
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The file `rel` of the folder `dir`, when `rel` stays inside it: plain names only (no
/// `..`, `.`, root or prefix), and after following links the file must still be inside.
pub fn confined(dir: &Path, rel: &str) -> Option<PathBuf> {
    let rel_path = Path::new(rel);
    if rel.is_empty()
        || rel.contains('\0')
        || rel.contains('\\')
        || !rel_path
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let root = dir.canonicalize().ok()?;
    let file = dir.join(rel_path).canonicalize().ok()?;
    (file.starts_with(&root) && file.is_file()).then_some(file)
}

/// `GET /files/{id}/{*path}`: the file as a download, streamed.
pub async fn download(
    State(state): State<Arc<AppState>>,
    UrlPath((id, path)): UrlPath<(String, String)>,
) -> Response {
    let state2 = state.clone();
    let found = tokio::task::spawn_blocking(move || {
        let snapshot = state2.index.snapshot();
        let run = snapshot.find(&id)?;
        confined(&state2.store().run_dir(&run.id), &path)
    })
    .await
    .ok()
    .flatten();
    let Some(file) = found else {
        return (StatusCode::NOT_FOUND, "no such file in this run\n").into_response();
    };
    let opened = match tokio::fs::File::open(&file).await {
        Ok(f) => f,
        Err(_) => return (StatusCode::NOT_FOUND, "no such file in this run\n").into_response(),
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().replace(['"', '\r', '\n'], "_"))
        .unwrap_or_else(|| "file".into());
    // The record is text worth reading in the browser; everything else is a download, never
    // rendered.
    let kind = if name == RECORD_FILE || name.ends_with(".txt") || name.ends_with(".ron") {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    let disposition = if kind.starts_with("text/") {
        format!("inline; filename=\"{name}\"")
    } else {
        format!("attachment; filename=\"{name}\"")
    };
    let mut response = Body::from_stream(tokio_util::io::ReaderStream::new(opened)).into_response();
    let h = response.headers_mut();
    if let Ok(v) = header::HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
    if let Ok(meta) = std::fs::metadata(&file) {
        h.insert(
            header::CONTENT_LENGTH,
            header::HeaderValue::from(meta.len()),
        );
    }
    response
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
        assert!(confined(&run, "files/out.txt").is_some());
        for bad in [
            "../secret",
            "files/../../secret",
            "/etc/passwd",
            "",
            "files",
            "files\\..\\..\\secret",
            "nope",
        ] {
            assert!(confined(&run, bad).is_none(), "{bad}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(tmp.path().join("secret"), run.join("files/link")).unwrap();
            assert!(confined(&run, "files/link").is_none());
        }
        let listed = list(&run);
        assert!(listed
            .iter()
            .any(|f| f.path == "files/out.txt" && f.size == 1));
    }
}
