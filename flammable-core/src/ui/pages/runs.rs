//! The runs page (`/`): the filter, the table of runs (one page of it, sorted), and the
//! table alone for the page's live refresh (`/rows`).

use super::super::api::blocking;
use super::super::index::Summary;
use super::super::legend;
use super::super::listing::{select, ListQuery, ListRequest};
use super::super::params::Params;
use super::super::query::SortKey;
use super::super::state::AppState;
use super::layout::{
    duration, layout, number, progress_text, run_href, status_badge, store_text, when,
};
use crate::store::record::RunStatus;
use crate::web::AppError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use maud::{html, Markup};
use std::collections::BTreeMap;
use std::sync::Arc;

/// At most this many metric and hyperparameter columns in the runs table.
const EXTRA_COLUMNS: usize = 6;

/// The metric and hyperparameter columns worth showing for `rows`: the most common metrics,
/// and the hyperparameters whose values differ among the rows.
fn columns(rows: &[Arc<Summary>]) -> (Vec<String>, Vec<String>) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows {
        for m in r.metrics.keys() {
            *counts.entry(m).or_default() += 1;
        }
    }
    let mut metrics: Vec<(&str, usize)> = counts.into_iter().collect();
    metrics.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let metrics = metrics
        .into_iter()
        .take(EXTRA_COLUMNS)
        .map(|(m, _)| m.to_string())
        .collect();
    let hyper = legend::differing(rows)
        .into_iter()
        .map(|(k, _)| k)
        .take(EXTRA_COLUMNS)
        .collect();
    (metrics, hyper)
}

fn sort_link(request: &ListRequest, key: SortKey, label: &str) -> Markup {
    let active = request.sort == key;
    // A second click on the sorted column turns the order round.
    let desc = if active {
        !request.descending
    } else {
        matches!(key, SortKey::Started)
    };
    let href = format!("/{}", request.link(1, Some((&key, desc))));
    let arrow = match (active, request.descending) {
        (false, _) => "",
        (true, true) => " ▾",
        (true, false) => " ▴",
    };
    html! { a href=(href) { (label) (arrow) } }
}

fn runs_table(request: &ListRequest, rows: &[Arc<Summary>]) -> Markup {
    let (metric_cols, hyper_cols) = columns(rows);
    let live = rows.iter().any(|r| r.status == RunStatus::Running);
    html! {
        table #runs-table .runs data-live=(if live { "1" } else { "0" }) {
            thead {
                tr {
                    th { span.sr { "select" } }
                    th { (sort_link(request, SortKey::Started, "run")) }
                    th { (sort_link(request, SortKey::Experiment, "experiment")) }
                    th { (sort_link(request, SortKey::Kind, "kind")) }
                    th { (sort_link(request, SortKey::Status, "status")) }
                    th { "started" }
                    th { (sort_link(request, SortKey::Duration, "duration")) }
                    th { "progress" }
                    th { (sort_link(request, SortKey::Message, "message")) }
                    @for m in &metric_cols {
                        th.num { (sort_link(request, SortKey::Metric(m.clone()), m)) }
                    }
                    @for h in &hyper_cols {
                        th.param { (sort_link(request, SortKey::Hyper(h.clone()), h)) }
                    }
                }
            }
            tbody {
                @for r in rows {
                    tr data-id=(r.id) class=(r.status) {
                        td { input type="checkbox" name="runs" value=(r.id) form="compare-form" aria-label={ "select " (r.id) }; }
                        td { a href=(run_href(&r.id)) { code { (r.id) } } }
                        td { (r.experiment) }
                        td { (r.kind) }
                        td { (status_badge(r.status)) }
                        td.when { (when(&r.started)) }
                        td.num { (r.duration.map(duration).unwrap_or_default()) }
                        td.progress { (progress_text(r)) }
                        td.message title=(r.error.clone().unwrap_or_default()) { (r.message) }
                        @for m in &metric_cols {
                            td.num { (r.metrics.get(m).map(|v| number(*v)).unwrap_or_default()) }
                        }
                        @for h in &hyper_cols {
                            td.param { (r.hyper.get(h).cloned().unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

/// The runs page of `request`; a filter that cannot be applied is said on the page, with
/// status 400.
fn runs_page(s: &AppState, request: &ListRequest) -> (StatusCode, Markup) {
    let snapshot = s.index.snapshot();
    let (selection, problem) = match select(&snapshot, request) {
        Ok(sel) => (Some(sel), None),
        Err(e) => (None, Some(e.message)),
    };
    let total = snapshot.runs.len();
    let body = html! {
        form.filter action="/" method="get" {
            input type="search" name="q" value=(request.filter) placeholder="filter: exp:digits status:running lr=0.01 loss<0.5 \"some words\"" aria-label="filter";
            input type="hidden" name="sort" value=(request.sort.text());
            input type="hidden" name="order" value=(if request.descending { "desc" } else { "asc" });
            button type="submit" { "Filter" }
            details.help {
                summary { "syntax" }
                ul {
                    li { code { "experiment:NAME" } ", " code { "status:running" } ", " code { "kind:test" } ", " code { "parent:ID" } }
                    li { code { "lr=0.01" } ", " code { "loss<0.5" } ", " code { "test/accuracy>=0.9" } " — a metric or a hyperparameter; " code { "=" } " " code { "!=" } " " code { "<" } " " code { "<=" } " " code { ">" } " " code { ">=" } }
                    li { "other words match the message, id or experiment; " code { "\"two words\"" } " as one" }
                }
            }
        }
        @if let Some(problem) = &problem {
            p.error #filter-error { (problem) }
        }
        @if !snapshot.unreadable.is_empty() {
            details.notice {
                summary { (snapshot.unreadable.len()) " run(s) whose record cannot be read" }
                ul { @for (id, why) in &snapshot.unreadable { li { code { (id) } ": " (why) } } }
            }
        }
        @if let Some(sel) = &selection {
            form #compare-form action="/compare" method="get" {
                p.summary {
                    span #count { (sel.matched) " of " (total) " runs" }
                    " · "
                    button type="submit" #compare-button { "Compare selected" }
                    " · "
                    a #runs-csv href={ "/runs.csv" (request.link(1, None)) } download { "Download as CSV" }
                }
            }
            @if total == 0 {
                p.empty { "No runs in this store yet: train a task (" code { "cargo run --example digits -- train" } ") and they appear here." }
            }
            div #table-box data-query=(request.link(request.page, None)) {
                (runs_table(request, &sel.rows))
            }
            nav.pages {
                @if request.page > 1 {
                    a href={ "/" (request.link(request.page - 1, None)) } rel="prev" { "← newer" }
                }
                span { "page " (request.page) " of " (sel.pages) }
                @if request.page < sel.pages {
                    a href={ "/" (request.link(request.page + 1, None)) } rel="next" { "older →" }
                }
            }
        }
    };
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (status, layout("Runs", &store_text(s), body))
}

/// `GET /?q=&sort=&order=&page=`: the runs table.
pub async fn runs(
    State(state): State<Arc<AppState>>,
    Params(query): Params<ListQuery>,
) -> Result<impl IntoResponse, AppError> {
    let request = ListRequest::from(query);
    blocking(&state, move |s| Ok(runs_page(s, &request))).await
}

/// `GET /rows?…`: the table alone, for the runs page's live refresh.
pub async fn rows(
    State(state): State<Arc<AppState>>,
    Params(query): Params<ListQuery>,
) -> Result<impl IntoResponse, AppError> {
    let request = ListRequest::from(query);
    blocking(&state, move |s| {
        let sel = select(&s.index.snapshot(), &request)?;
        Ok(runs_table(&request, &sel.rows))
    })
    .await
}
