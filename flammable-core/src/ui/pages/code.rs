//! Code: a run's snapshot as a file tree (`/run/{id}/code`), one file highlighted
//! (`/run/{id}/code/{*path}`), and diffs shown unified or side by side (for a run's page and
//! the comparison).

use super::super::api::blocking;
use super::super::patch::{self, side_by_side, Kind, Row};
use super::super::read::{self, record};
use super::super::state::AppState;
use super::layout::{bytes, code_href, layout, run_href, short, store_text};
use crate::snapshot::{self, FileChange};
use crate::web::AppError;
use axum::extract::{Path as UrlPath, State};
use axum::response::IntoResponse;
use maud::{html, Markup, PreEscaped};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

fn unified(patch: &str) -> Markup {
    html! {
        pre.diff {
            @for (kind, line) in patch::lines(patch) {
                @let class = match kind {
                    Kind::Header => "file",
                    Kind::Hunk => "hunk",
                    Kind::Added => "add",
                    Kind::Deleted => "del",
                    Kind::Context | Kind::Note => "ctx",
                };
                span class=(class) { (line) "\n" }
            }
        }
    }
}

fn split(patch: &str) -> Markup {
    html! {
        table.split {
            colgroup { col.no; col; col.no; col; }
            @for row in side_by_side(patch) {
                @match row {
                    Row::Hunk(h) => { tr.hunk { td colspan="4" { (h) } } }
                    Row::Line { left, right, same } => {
                        tr class=(if same { "ctx" } else { "change" }) {
                            @match left {
                                Some((n, t)) => { td.no { (n) } td class=(if same { "l" } else { "l del" }) { (t) } }
                                None => { td.no {} td.l.none {} }
                            }
                            @match right {
                                Some((n, t)) => { td.no { (n) } td class=(if same { "r" } else { "r add" }) { (t) } }
                                None => { td.no {} td.r.none {} }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The files of `changes`, each with its diff, side by side (`side`) or unified.
pub fn changes_list(changes: &[FileChange], side: bool) -> Markup {
    html! {
        @if changes.is_empty() {
            p.empty { "No differences." }
        }
        @for c in changes {
            details.file open {
                summary { span class={ "badge " (c.kind.word()) } { (c.kind.word()) } " " code { (c.path) } }
                @if side { (split(&c.patch)) } @else { (unified(&c.patch)) }
            }
        }
    }
}

#[derive(Default)]
struct Folder {
    folders: BTreeMap<String, Folder>,
    files: Vec<(String, String, u64)>,
}

fn tree_markup(id: &str, folder: &Folder, depth: usize, changed: &BTreeSet<String>) -> Markup {
    html! {
        ul.tree {
            @for (name, sub) in &folder.folders {
                li {
                    details open[depth < 1] {
                        summary { (name) "/" }
                        (tree_markup(id, sub, depth + 1, changed))
                    }
                }
            }
            @for (name, path, size) in &folder.files {
                li {
                    a href=(code_href(id, path, false)) { (name) }
                    @if changed.contains(path) { " " span.changed title="changed from HEAD" { "●" } }
                    " " span.size { (bytes(*size)) }
                }
            }
        }
    }
}

/// `GET /run/{id}/code`: the snapshot's files as a tree.
pub async fn code_tree(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Result<impl IntoResponse, AppError> {
    blocking(&state, move |s| {
        let (summary, record) = record(s, &id)?;
        let snap = read::snapshot_of(&record)?;
        let files = snapshot::tree_files(&snap.git_dir, &snap.commit)?;
        let changed: BTreeSet<String> = snapshot::changed_paths(&snap.git_dir, &snap.commit)
            .map(|c| c.into_iter().map(|c| c.path).collect())
            .unwrap_or_default();
        let mut root = Folder::default();
        for f in &files {
            let mut parts: Vec<&str> = f.path.split('/').collect();
            let name = parts.pop().unwrap_or_default();
            let mut folder = &mut root;
            for p in parts {
                folder = folder.folders.entry(p.to_string()).or_default();
            }
            folder.files.push((name.to_string(), f.path.clone(), f.size));
        }
        let id = summary.id.clone();
        Ok(layout(
            &format!("Code of {id}"),
            &store_text(s),
            html! {
                h1 { "Code of run " a href=(run_href(&id)) { code { (id) } } }
                p.lead { (files.len()) " files in snapshot " code { (short(&snap.commit)) } " · ● changed from HEAD" }
                (tree_markup(&id, &root, 0, &changed))
            },
        ))
    })
    .await
}

/// `GET /run/{id}/code/{*path}`: one file of the snapshot, highlighted.
pub async fn code_file(
    State(state): State<Arc<AppState>>,
    UrlPath((id, path)): UrlPath<(String, String)>,
) -> Result<impl IntoResponse, AppError> {
    blocking(&state, move |s| {
        let (summary, record) = record(s, &id)?;
        let content = read::code_file(&record, &path)?;
        let id = summary.id.clone();
        let text = read::as_text(&content);
        let raw = code_href(&id, &path, true);
        let body = html! {
            h1.path {
                a href=(run_href(&id)) { code { (id) } } " / " a href={ (run_href(&id)) "/code" } { "code" } " / " code { (path) }
            }
            p.lead { (bytes(content.len() as u64)) " · " a href=(raw) { "raw" } }
            @match text {
                Some(t) => {
                    @let lines = t.lines().count().max(1);
                    div.source {
                        pre.nums aria-hidden="true" { @for n in 1..=lines { (n) "\n" } }
                        pre.code { code { (PreEscaped(s.highlighter().html(&path, t))) } }
                    }
                }
                None => { p.empty { "A binary file: " a href=(raw) { "download it" } "." } }
            }
        };
        Ok(layout(&path, &store_text(s), body))
    })
    .await
}
