//! The trash page (`/trash`): the runs `rm` or the browser moved to the store's trash, newest
//! first, each with a button that brings it back (until `gc` removes them for good).

use super::super::api::blocking;
use super::super::manage::csrf_input;
use super::super::state::AppState;
use super::layout::{layout, store_text, when};
use crate::web::AppError;
use axum::extract::State;
use axum::response::IntoResponse;
use maud::{html, Markup};
use std::sync::Arc;

fn trash_page(s: &AppState) -> Result<Markup, AppError> {
    let store = s.store();
    let ids = store
        .trashed()
        .map_err(|e| AppError::internal(e.to_string(), None))?;
    let body = html! {
        h1 { "Trash" }
        p.lead {
            "Runs removed from the store (from a page, or with " code { "rm" } "). "
            "They come back as they were until " code { "gc" } " removes them and their code for good."
        }
        @if ids.is_empty() {
            p.empty { "The trash is empty." }
        } @else {
            table.runs #trash-table {
                thead { tr { th { "run" } th { "experiment" } th { "kind" } th { "started" } th { "message" } th {} } }
                tbody {
                    @for id in ids.iter().rev() {
                        @let record = store.read_trashed(id).ok();
                        tr data-id=(id) {
                            td { code { (id) } }
                            td { (record.as_ref().map(|r| r.experiment.clone()).unwrap_or_default()) }
                            td { (record.as_ref().map(|r| r.kind.to_string()).unwrap_or_default()) }
                            td.when { (record.as_ref().map(|r| when(&r.started)).unwrap_or_default()) }
                            td.message { (record.as_ref().and_then(|r| r.message.clone()).unwrap_or_default()) }
                            td {
                                form.inline method="post" action="/runs/restore" {
                                    (csrf_input(s))
                                    input type="hidden" name="runs" value=(id);
                                    button type="submit" { "Restore" }
                                }
                            }
                        }
                    }
                }
            }
        }
        p { a href="/" { "All runs" } }
    };
    Ok(layout("Trash", &store_text(s), body))
}

/// `GET /trash`: the trashed runs, each with a button that restores it.
pub async fn trash(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, AppError> {
    blocking(&state, trash_page).await
}
