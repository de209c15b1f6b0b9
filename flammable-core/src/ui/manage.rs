//! The browser's writes: tags, a note and a new message for runs (`POST /runs/edit`), runs to
//! the store's trash (`POST /runs/delete`) and back (`POST /runs/restore`).
//!
//! Each is a form of the pages (so they work without the script) and each must carry the
//! page's CSRF token — a random value of this server process, written into its pages, which
//! no page of another origin can read — and come from a page of this server
//! ([`security::same_origin`]); off loopback, the server's token is demanded of every request
//! before this ([`security::admit`]). A run that is live is refused (409): its process writes
//! its record as it goes. Every change is atomic (a record renamed into place, a folder
//! renamed into or out of the trash); several runs are checked before any of them changes.

use super::pages::run_href;
use super::state::AppState;
use crate::store::notes::{split_tags, NotesChange};
use crate::store::StoreError;
use crate::web::security;
use crate::web::AppError;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The most runs one write may name.
const MAX_RUNS: usize = 1000;

/// The name of the form field (or the `X-CSRF-Token` header) that carries the page's token.
pub const CSRF_FIELD: &str = "csrf";

/// A write's form fields, as sent (`application/x-www-form-urlencoded`).
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of field `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, each split at commas (a group's checkbox holds its runs' ids),
    /// each once, in order.
    fn list(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, v) in self.0.iter().filter(|(k, _)| k == name) {
            for id in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if !out.iter().any(|o| o == id) {
                    out.push(id.to_string());
                }
            }
        }
        out
    }
}

/// Refuses a write that is not from this server's page, or lacks the page's token.
fn check_origin_and_token(
    state: &AppState,
    headers: &HeaderMap,
    form: &Form,
) -> Result<(), AppError> {
    security::same_origin(headers).map_err(|why| AppError::new(StatusCode::FORBIDDEN, why))?;
    let given = form
        .get(CSRF_FIELD)
        .or_else(|| headers.get("x-csrf-token").and_then(|v| v.to_str().ok()));
    match given {
        Some(t) if security::same(t, &state.csrf) => Ok(()),
        Some(_) => Err(AppError::new(
            StatusCode::FORBIDDEN,
            "the page's CSRF token is not this server's (the server was restarted since the page was loaded): reload the page and try again",
        )),
        None => Err(AppError::new(
            StatusCode::FORBIDDEN,
            "a change needs the page's CSRF token (field `csrf`): make it from the browser's page",
        )),
    }
}

/// The runs a write names (full ids; 1 to [`MAX_RUNS`]).
fn named_runs(form: &Form) -> Result<Vec<String>, AppError> {
    let runs = form.list("runs");
    if runs.is_empty() {
        return Err(AppError::bad("name the runs to change (field `runs`)"));
    }
    if runs.len() > MAX_RUNS {
        return Err(AppError::bad(format!("at most {MAX_RUNS} runs at once")));
    }
    Ok(runs)
}

/// Checks that every run of `ids` is in the store (by its full id) and not live: nothing
/// changes unless all of them can.
fn check_runs(s: &AppState, ids: &[String]) -> Result<(), AppError> {
    let store = s.store();
    for id in ids {
        if !crate::store::is_valid_id(id)
            || !store.run_dir(id).join(crate::store::RECORD_FILE).is_file()
        {
            return Err(AppError::not_found(format!(
                "no run `{id}` in this store (name a run by its full id)"
            )));
        }
        if store.is_alive(id) {
            return Err(live(id));
        }
    }
    Ok(())
}

fn live(id: &str) -> AppError {
    AppError::new(
        StatusCode::CONFLICT,
        format!("run {id} is still running: it can be changed or removed once it ends (its process writes its record as it goes)"),
    )
}

/// A store error as the answer to a write.
fn store_error(e: StoreError) -> AppError {
    match e {
        StoreError::Live { id } | StoreError::LiveEdit { id } => live(&id),
        StoreError::BadEdit(why) => AppError::bad(why),
        StoreError::NotFound { spec, .. } => {
            AppError::not_found(format!("no run `{spec}` in this store"))
        }
        StoreError::Restore(why) => AppError::new(StatusCode::CONFLICT, why),
        other => AppError::internal(other.to_string(), None),
    }
}

/// 303 to `to`: the page a form's browser shows next.
fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

/// Runs `work` off the async executor, after the checks every write shares.
async fn write(
    state: Arc<AppState>,
    headers: HeaderMap,
    body: Bytes,
    work: impl FnOnce(&AppState, Form) -> Result<Response, AppError> + Send + 'static,
) -> Result<Response, AppError> {
    let form = Form::parse(&body);
    check_origin_and_token(&state, &headers, &form)?;
    super::api::blocking(&state, move |s| {
        let answer = work(s, form);
        // The next page shows what changed, even what changed before a failure.
        s.index.invalidate();
        answer
    })
    .await
}

/// `POST /runs/edit` (`runs`, and any of `message`, `note`, `add`, `remove`; tags separated
/// by spaces or commas): changes the runs' notes, recording the edit in each record; answers
/// 303 to the run's page (to the runs page for several).
pub async fn edit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    write(state, headers, body, |s, form| {
        let runs = named_runs(&form)?;
        let change = NotesChange {
            message: form.get("message").map(str::to_string),
            note: form.get("note").map(str::to_string),
            add_tags: form.get("add").map(split_tags).unwrap_or_default(),
            remove_tags: form.get("remove").map(split_tags).unwrap_or_default(),
        };
        if change.is_empty() {
            return Err(AppError::bad(
                "nothing to change: give tags to add or remove, a note or a message",
            ));
        }
        change.check().map_err(AppError::bad)?;
        check_runs(s, &runs)?;
        let by = format!("{} (browser)", crate::util::host::user_at_host());
        for id in &runs {
            s.store()
                .edit_notes(id, &change, &by)
                .map_err(store_error)?;
        }
        Ok(match runs.as_slice() {
            [one] => see_other(&format!("{}#notes", run_href(one))),
            _ => see_other("/"),
        })
    })
    .await
}

/// `POST /runs/delete` (`runs`): moves the runs to the store's trash; answers 303 to the runs
/// page, which offers to undo it.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    write(state, headers, body, |s, form| {
        let runs = named_runs(&form)?;
        check_runs(s, &runs)?;
        for id in &runs {
            s.store().remove(id, false).map_err(store_error)?;
        }
        let removed: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("removed", &runs.join(","))
            .finish();
        Ok(see_other(&format!("/?{removed}")))
    })
    .await
}

/// `POST /runs/restore` (`runs`): brings trashed runs back; answers 303 to the run's page (to
/// the runs page for several).
pub async fn restore(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    write(state, headers, body, |s, form| {
        let runs = named_runs(&form)?;
        let trashed = s.store().trashed().map_err(store_error)?;
        if let Some(missing) = runs.iter().find(|id| !trashed.contains(id)) {
            return Err(AppError::not_found(format!(
                "no run `{missing}` in the trash (`gc` empties it for good)"
            )));
        }
        for id in &runs {
            s.store().restore(id).map_err(store_error)?;
        }
        Ok(match runs.as_slice() {
            [one] => see_other(&run_href(one)),
            _ => see_other("/"),
        })
    })
    .await
}

/// The hidden field every form that writes carries.
pub fn csrf_input(s: &AppState) -> maud::Markup {
    maud::html! { input type="hidden" name=(CSRF_FIELD) value=(s.csrf); }
}

/// The run ids of `/?removed=A,B` (what the runs page offers to undo).
pub fn removed_ids(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|id| crate::store::is_valid_id(id))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_lists_runs_each_once_and_splits_groups() {
        let f = Form::parse(b"runs=a%2Cb&runs=c&runs=a&csrf=t&add=x+y");
        assert_eq!(f.list("runs"), ["a", "b", "c"]);
        assert_eq!(f.get("csrf"), Some("t"));
        assert_eq!(
            f.get("add").map(split_tags),
            Some(vec!["x".into(), "y".into()])
        );
        assert!(named_runs(&Form::parse(b"csrf=t")).is_err());
    }
}
