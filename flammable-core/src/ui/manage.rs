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
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The most runs one write may name.
const MAX_RUNS: usize = 1000;

/// The name of the form field (or the `X-CSRF-Token` header) that carries the page's token.
pub const CSRF_FIELD: &str = "csrf";

/// A write's form fields, as sent (`application/x-www-form-urlencoded`, UTF-8).
struct Form(Vec<(String, String)>);

impl Form {
    /// The fields of `body`; the error says why it is not a form of the pages.
    fn parse(body: &[u8]) -> Result<Form, AppError> {
        let decode = |text: &[u8]| -> Result<String, AppError> {
            let plus: Vec<u8> = text
                .iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect();
            let bytes: Vec<u8> = percent_encoding::percent_decode(&plus).collect();
            String::from_utf8(bytes)
                .map_err(|_| AppError::bad("the form holds text that is not UTF-8"))
        };
        let mut fields = Vec::new();
        for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            fields.push((decode(k)?, decode(v)?));
        }
        Ok(Form(fields))
    }

    /// The value of field `name`, which may be given once.
    fn get(&self, name: &str) -> Result<Option<&str>, AppError> {
        let mut values = self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
        match (values.next(), values.next()) {
            (Some(_), Some(_)) => Err(AppError::bad(format!("field `{name}` is given twice"))),
            (one, _) => Ok(one.map(String::as_str)),
        }
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

/// Refuses a write that lacks the page's token.
fn check_token(state: &AppState, headers: &HeaderMap, form: &Form) -> Result<(), AppError> {
    let given = match form.get(CSRF_FIELD)? {
        Some(t) => Some(t),
        None => headers.get("x-csrf-token").and_then(|v| v.to_str().ok()),
    };
    match given {
        Some(t) if security::same(t, &state.csrf) => Ok(()),
        Some(_) => Err(AppError::new(
            StatusCode::FORBIDDEN,
            "the page's CSRF token is not this server's: reload the page and try again (a page loaded before the server last started carries an old one)",
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
        let here = crate::store::is_valid_id(id)
            && store.run_dir(id).join(crate::store::RECORD_FILE).is_file();
        if !here {
            let shown = crate::util::printable::printable(id);
            return Err(AppError::not_found(
                if crate::store::is_valid_id(id) && store.is_trashed(id) {
                    format!("run {shown} is in the trash: restore it first (/trash)")
                } else {
                    format!("no run `{shown}` in this store (name a run by its full id)")
                },
            ));
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
        e @ StoreError::InTrash { .. } => AppError::not_found(e.to_string()),
        StoreError::Trash(why) => AppError::new(StatusCode::CONFLICT, why),
        other => AppError::internal(other.to_string(), None),
    }
}

/// 303 to `to`: the page a form's browser shows next.
fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

/// The largest form a write takes (a note is up to 20,000 characters).
pub const MAX_FORM_BYTES: usize = 256 * 1024;

/// Runs `work` off the async executor, after the checks every write shares: from this
/// server's page, a form, within [`MAX_FORM_BYTES`], with the page's token.
async fn write(
    state: Arc<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    work: impl FnOnce(&AppState, Form) -> Result<Response, AppError> + Send + 'static,
) -> Result<Response, AppError> {
    security::same_origin(&headers).map_err(|why| AppError::new(StatusCode::FORBIDDEN, why))?;
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the page's form (Content-Type: application/x-www-form-urlencoded)",
        ));
    }
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a form of more than {} KiB", MAX_FORM_BYTES / 1024),
        ),
        status => AppError::new(status, e.body_text()),
    })?;
    let form = Form::parse(&body)?;
    check_token(&state, &headers, &form)?;
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
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    write(state, headers, body, |s, form| {
        let runs = named_runs(&form)?;
        let change = NotesChange {
            message: form.get("message")?.map(str::to_string),
            note: form.get("note")?.map(str::to_string),
            add_tags: form.get("add")?.map(split_tags).unwrap_or_default(),
            remove_tags: form.get("remove")?.map(split_tags).unwrap_or_default(),
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
    body: Result<Bytes, BytesRejection>,
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
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    write(state, headers, body, |s, form| {
        let runs = named_runs(&form)?;
        let trashed = s.store().trashed().map_err(store_error)?;
        if let Some(missing) = runs.iter().find(|id| !trashed.contains(id)) {
            return Err(AppError::not_found(format!(
                "no run `{}` in the trash (restored already, or `gc` emptied it for good)",
                crate::util::printable::printable(missing)
            )));
        }
        for id in &runs {
            s.store().check_restorable(id).map_err(store_error)?;
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
        let f = Form::parse(b"runs=a%2Cb&runs=c&runs=a&csrf=t&add=x+y&note=caf%C3%A9&m&m").unwrap();
        assert_eq!(f.list("runs"), ["a", "b", "c"]);
        assert_eq!(f.get("csrf").unwrap(), Some("t"));
        assert_eq!(f.get("note").unwrap(), Some("café"));
        assert_eq!(
            f.get("add").unwrap().map(split_tags),
            Some(vec!["x".into(), "y".into()])
        );
        assert!(f.get("m").unwrap_err().message.contains("given twice"));
        assert!(named_runs(&Form::parse(b"csrf=t").unwrap()).is_err());
        let bad = Form::parse(b"note=%ff%fe").err().unwrap();
        assert!(bad.message.contains("not UTF-8"), "{bad}");
    }
}
