//! The runs page (`/`): the filter, the table of runs (one page of it, sorted), and the
//! table alone for the page's live refresh (`/rows`).

use super::super::api::blocking;
use super::super::columns::{cell, choose, differing_metrics, Agg, Cell, Columns};
use super::super::group::{self, Group, Stats};
use super::super::index::Snapshot;
use super::super::index::Summary;
use super::super::listing::{select, ListQuery, ListRequest};
use super::super::manage::{csrf_input, removed_ids};
use super::super::params::Params;
use super::super::query::SortKey;
use super::super::read;
use super::super::state::AppState;
use super::layout::{
    duration, layout, number, progress_text, run_href, status_badge, store_text, when,
};
use super::run::tag_link;
use crate::store::metrics::Series;
use crate::store::record::RunStatus;
use crate::web::AppError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use maud::{html, Markup};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// What the metric cells of a table hold: by run id and metric.
type Cells = HashMap<(String, String), Cell>;

/// The metric cells of `rows` for `metrics` as `agg` says (series read, in parallel, only
/// when a cell is a point of one).
fn cells(s: &AppState, rows: &[Arc<Summary>], metrics: &[String], agg: Agg) -> Cells {
    let series: Vec<Vec<(String, Arc<Series>)>> = if agg == Agg::Final {
        vec![Vec::new(); rows.len()]
    } else {
        crate::util::parallel::map(rows, 4, |r| read::all_series(s, &r.id))
    };
    let mut out = HashMap::new();
    for (r, all) in rows.iter().zip(&series) {
        for m in metrics {
            let one = all.iter().find(|(n, _)| n == m).map(|(_, s)| s.as_ref());
            if let Some(c) = cell(r, m, agg, one) {
                out.insert((r.id.clone(), m.clone()), c);
            }
        }
    }
    out
}

fn metric_cell(cells: &Cells, id: &str, m: &str) -> Markup {
    match cells.get(&(id.to_string(), m.to_string())) {
        Some(c) => html! {
            td.num {
                (number(c.value))
                @if let Some(step) = c.step { span.step title="the step of this point" { " @" (step) } }
            }
        },
        None => html! { td.num {} },
    }
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

fn header(
    request: &ListRequest,
    metric_cols: &[String],
    hyper_cols: &[String],
    grouped: bool,
) -> Markup {
    html! {
        thead {
            tr {
                th { span.sr { "select" } }
                th { (sort_link(request, SortKey::Started, if grouped { "group" } else { "run" })) }
                th { (sort_link(request, SortKey::Experiment, "experiment")) }
                th { (sort_link(request, SortKey::Kind, "kind")) }
                th { (sort_link(request, SortKey::Status, "status")) }
                th { "started" }
                th { (sort_link(request, SortKey::Duration, "duration")) }
                th { "progress" }
                th { (sort_link(request, SortKey::Message, "message")) }
                @for m in metric_cols {
                    th.num { (sort_link(request, SortKey::Metric(m.clone()), m)) }
                }
                @for h in hyper_cols {
                    th.param { (sort_link(request, SortKey::Hyper(h.clone()), h)) }
                }
            }
        }
    }
}

/// One run's row; `group`: the number of the group it is hidden under.
fn run_row(r: &Summary, cols: &Columns, cells: &Cells, group: Option<usize>) -> Markup {
    let (metric_cols, hyper_cols) = (&cols.metrics, &cols.hyper);
    html! {
        tr data-id=(r.id) class={ (r.status) @if group.is_some() { " member" } } data-group=[group] hidden[group.is_some()] {
            td { input type="checkbox" name="runs" value=(r.id) form="compare-form" aria-label={ "select " (r.id) }; }
            td { a href=(run_href(&r.id)) { code { (r.id) } } }
            td { (r.experiment) }
            td { (r.kind) }
            td { (status_badge(r.status)) }
            td.when { (when(&r.started)) }
            td.num { (r.duration.map(duration).unwrap_or_default()) }
            td.progress { (progress_text(r)) }
            td.message title=(r.error.clone().unwrap_or_default()) {
                (r.message)
                @for t in &r.tags { " " (tag_link(t)) }
            }
            @for m in metric_cols {
                (metric_cell(cells, &r.id, m))
            }
            @for h in hyper_cols {
                td.param { (r.hyper.get(h).cloned().unwrap_or_default()) }
            }
        }
    }
}

/// How many of a group's runs are in each status: `3 finished`, `2 finished, 1 running`.
fn statuses(g: &Group) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &g.runs {
        *counts.entry(r.status.to_string()).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A group's row, then its runs' (hidden until the row is opened).
fn group_rows(
    i: usize,
    (g, label): (&Group, &str),
    cols: &Columns,
    cells: &Cells,
    agg: Agg,
) -> Markup {
    let (metric_cols, hyper_cols) = (&cols.metrics, &cols.hyper);
    // Each metric over the group's runs: their final values, or the cells shown.
    let stats = |m: &String| -> Option<Stats> {
        if agg == Agg::Final {
            return g.metrics.get(m).copied();
        }
        Stats::of(
            g.runs
                .iter()
                .filter_map(|r| cells.get(&(r.id.clone(), m.clone())).map(|c| c.value)),
        )
    };
    let ids: Vec<&str> = g.runs.iter().map(|r| r.id.as_str()).collect();
    let messages: BTreeSet<&str> = g.runs.iter().map(|r| r.message.as_str()).collect();
    let live = g.runs.iter().any(|r| r.status == RunStatus::Running);
    html! {
        tr.group data-group-row=(i) class=[live.then_some("running")] {
            td { input type="checkbox" name="runs" value=(ids.join(",")) form="compare-form" aria-label={ "select the group " (label) }; }
            td {
                button.toggle type="button" aria-expanded="false" data-group=(i) title="show its runs" { "▸" }
                " " (label)
            }
            td { (g.experiment) }
            td { (g.runs.first().map(|r| r.kind.to_string()).unwrap_or_default()) }
            td { (statuses(g)) }
            td.when { (g.runs.iter().map(|r| r.started.as_str()).max().map(when).unwrap_or_default()) }
            td.num {}
            td.progress {}
            td.message { @if messages.len() == 1 { (messages.first().copied().unwrap_or_default()) } }
            @for m in metric_cols {
                @match stats(m) {
                    Some(st) if st.n == 0 => {
                        td.num.error title="every run's value is NaN or infinite" { "not finite" }
                    }
                    Some(st) => {
                        td.num title={ "n=" (st.n) " of " (g.runs.len()) ", min " (number(st.min)) ", max " (number(st.max)) } {
                            (number(st.mean))
                            @if st.n > 1 { span.spread { " ± " (number(st.std)) } }
                            @if st.n < g.runs.len() { span.spread { " (n=" (st.n) ")" } }
                            @if st.not_finite > 0 { span.error title="runs whose value is NaN or infinite, left out of the mean" { " " (st.not_finite) " not finite" } }
                        }
                    }
                    None => { td.num {} }
                }
            }
            @for h in hyper_cols {
                td.param {
                    @let values: BTreeSet<Option<&String>> = g.runs.iter().map(|r| r.hyper.get(h)).collect();
                    @if values.len() == 1 {
                        (values.first().copied().flatten().cloned().unwrap_or_default())
                    } @else {
                        span.mixed title="its runs differ" { (values.len()) " values" }
                    }
                }
            }
        }
        @for r in &g.runs {
            (run_row(r, cols, cells, Some(i)))
        }
    }
}

fn runs_table(
    s: &AppState,
    snapshot: &Snapshot,
    request: &ListRequest,
    rows: &[Arc<Summary>],
    groups: Option<&[Group]>,
) -> Markup {
    let cols = choose(
        rows,
        &request.cols,
        request.differ,
        &snapshot.metric_names,
        &snapshot.hyper_names,
    );
    let mut cols = cols;
    let cells = cells(s, rows, &cols.metrics, request.agg);
    if request.differ {
        cols.metrics = differing_metrics(rows, &cols.metrics, &cells);
    }
    let live = rows.iter().any(|r| r.status == RunStatus::Running);
    html! {
        table #runs-table .runs.grouped[groups.is_some()] data-live=(if live { "1" } else { "0" }) {
            (header(request, &cols.metrics, &cols.hyper, groups.is_some()))
            tbody {
                @match groups {
                    Some(groups) => {
                        @let labels = group::labels(groups);
                        @for (i, (g, label)) in groups.iter().zip(&labels).enumerate() {
                            (group_rows(i, (g, label), &cols, &cells, request.agg))
                        }
                    }
                    None => {
                        @for r in rows {
                            (run_row(r, &cols, &cells, None))
                        }
                    }
                }
            }
        }
    }
}

/// What the runs page says after runs were moved to the trash from a page (`?removed=A,B`),
/// with the form that brings them back.
fn removed_notice(s: &AppState, removed: &[String]) -> Markup {
    // Only those still in the trash (not restored or collected since).
    let trashed = s.store().trashed().unwrap_or_default();
    let removed: Vec<&String> = removed.iter().filter(|id| trashed.contains(id)).collect();
    html! {
        @if !removed.is_empty() {
            form.notice #removed method="post" action="/runs/restore" {
                @if let [one] = removed.as_slice() { "Moved run " code { (one) } " to the trash. " }
                @else { "Moved " (removed.len()) " runs to the trash. " }
                (csrf_input(s))
                input type="hidden" name="runs" value=(removed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","));
                button type="submit" #undo { "Undo" }
                " · " a href="/trash" { "the trash" }
            }
        }
    }
}

/// What the page's script offers for the ticked runs (hidden without it): tag, untag, trash.
fn bulk_bar(s: &AppState) -> Markup {
    html! {
        span #bulk hidden data-csrf=(s.csrf) {
            " · "
            input #bulk-tags type="text" size="14" placeholder="tags" aria-label="tags for the selected runs";
            " " button #bulk-tag type="button" { "Tag selected" }
            " " button #bulk-untag type="button" { "Untag" }
            " · " button #bulk-delete .danger type="button" { "Move selected to trash" }
            " " span #bulk-error .error {}
        }
    }
}

/// The runs page of `request`; a filter that cannot be applied is said on the page, with
/// status 400.
fn runs_page(s: &AppState, request: &ListRequest, removed: &[String]) -> (StatusCode, Markup) {
    let snapshot = s.index.snapshot();
    let (selection, problem) = match select(&snapshot, request) {
        Ok(sel) => (Some(sel), None),
        Err(e) => (None, Some(e.message)),
    };
    let total = snapshot.runs.len();
    let trashed = s.store().trashed().map(|t| t.len()).unwrap_or(0);
    let body = html! {
        (removed_notice(s, removed))
        form.filter action="/" method="get" {
            input type="search" name="q" value=(request.filter) placeholder="filter: exp:digits status:running lr=0.01 loss<0.5 \"some words\"" aria-label="filter";
            input type="text" name="group" value=(request.group.text()) size="12" placeholder=(if request.grouping().is_some() { "* (a sweep)" } else { "group by" }) aria-label="group by" title="group runs: * for every hyperparameter but the seed, lr,hidden for those, none for no groups (a sweep's runs are grouped by * unless none)";
            input type="hidden" name="sort" value=(request.sort.text());
            details.columns {
                summary { "columns" }
                label {
                    "metric cells "
                    select name="agg" {
                        @for (agg, text) in [(Agg::Final, "final value"), (Agg::Last, "last point"), (Agg::Min, "lowest point"), (Agg::Max, "highest point"), (Agg::Best, "best point")] {
                            option value=(agg.text()) selected[agg == request.agg] { (text) }
                        }
                    }
                }
                label { input type="checkbox" name="differ" value="1" checked[request.differ]; " only columns that differ" }
                p.lead { "Show these (none ticked: the most common metrics and the hyperparameters that differ):" }
                fieldset {
                    legend { "metrics" }
                    @for m in &snapshot.metric_names {
                        label.col { input type="checkbox" name="cols" value=(m) checked[request.cols.contains(m)]; " " (m) }
                    }
                }
                fieldset {
                    legend { "hyperparameters" }
                    @for h in &snapshot.hyper_names {
                        label.col { input type="checkbox" name="cols" value=(h) checked[request.cols.contains(h)]; " " (h) }
                    }
                }
            }
            input type="hidden" name="order" value=(if request.descending { "desc" } else { "asc" });
            button type="submit" { "Filter" }
            details.help {
                summary { "syntax" }
                ul {
                    li { code { "experiment:NAME" } ", " code { "status:running" } ", " code { "kind:test" } ", " code { "parent:ID" } }
                    li { code { "lr=0.01" } ", " code { "loss<0.5" } ", " code { "test/accuracy>=0.9" } " — a metric or a hyperparameter; " code { "=" } " " code { "!=" } " " code { "<" } " " code { "<=" } " " code { ">" } " " code { ">=" } }
                    li { code { "tag:TAG" } " — the runs with this tag" }
                    li { "other words match the message, note, tags, id or experiment; " code { "\"two words\"" } " as one" }
                    li { "columns: the metric cells' value (final, or the series' last, lowest, highest or best point, with its step), only those that differ, or the ones you tick" }
                    li { "group by " code { "*" } " (every hyperparameter but the seed), " code { "lr,hidden" } " or " code { "none" } "; a sweep's runs are grouped by " code { "*" } }
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
                    @if let Some(by) = request.grouping() {
                        input type="hidden" name="group" value=(by.text());
                    }
                    button type="submit" #compare-button { "Compare selected" }
                    " · "
                    a #runs-csv href={ "/runs.csv" (request.link(1, None)) } download { "Download as CSV" }
                    " · "
                    a #runs-parallel href={ "/parallel?q=" (form_urlencoded::byte_serialize(request.filter.as_bytes()).collect::<String>()) } { "Parallel coordinates" }
                    @if trashed > 0 { " · " a #trash-link href="/trash" { "Trash (" (trashed) ")" } }
                    (bulk_bar(s))
                }
            }
            @if total == 0 {
                p.empty { "No runs in this store yet: train a task (" code { "cargo run --example digits -- train" } ") and they appear here." }
            }
            div #table-box data-query=(request.link(request.page, None)) {
                (runs_table(s, &snapshot, request, &sel.rows, sel.groups.as_deref()))
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

/// What the runs page says besides its table: the runs just moved to the trash.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Notice {
    /// Runs just moved to the trash, separated by commas.
    removed: String,
}

/// `GET /?q=&sort=&order=&page=`: the runs table (`removed=`: with the undo of a removal).
pub async fn runs(
    State(state): State<Arc<AppState>>,
    Params(query): Params<ListQuery>,
    Params(notice): Params<Notice>,
) -> Result<impl IntoResponse, AppError> {
    let request = ListRequest::from(query);
    let removed = removed_ids(&notice.removed);
    blocking(&state, move |s| Ok(runs_page(s, &request, &removed))).await
}

/// `GET /rows?…`: the table alone, for the runs page's live refresh.
pub async fn rows(
    State(state): State<Arc<AppState>>,
    Params(query): Params<ListQuery>,
) -> Result<impl IntoResponse, AppError> {
    let request = ListRequest::from(query);
    blocking(&state, move |s| {
        let snapshot = s.index.snapshot();
        let sel = select(&snapshot, &request)?;
        Ok(runs_table(
            s,
            &snapshot,
            &request,
            &sel.rows,
            sel.groups.as_deref(),
        ))
    })
    .await
}
