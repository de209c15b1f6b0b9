//! The HTML pages: runs, one run, its code, and the comparison of runs. Rendered on the server
//! with maud (every value escaped); the script only adds hover, zoom and live updates.

use super::api::{
    self, blocking, change_word, chart_svg, code_diff, encode, log_tail, named_runs, params,
    record, run_label, select, snapshot_of, uncommitted, Fail, ListRequest,
};
use super::chart::Size;
use super::code::{side_by_side, Row};
use super::files;
use super::index::{Snapshot, Summary};
use super::query::SortKey;
use super::state::AppState;
use crate::snapshot::{self, FileChange};
use crate::store::followers::read_run_all_series;
use crate::store::record::{Record, RunStatus};
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The size of a chart on a page.
const CHART: Size = Size {
    width: 600,
    height: 240,
};

/// At most this many metric and hyperparameter columns in the runs table.
const EXTRA_COLUMNS: usize = 6;

fn layout(title: &str, store: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Flammable" }
                link rel="stylesheet" href="/assets/app.css";
                link rel="stylesheet" href="/assets/highlight.css";
                script src="/assets/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "Flammable" }
                    span.store title="the run store" { (store) }
                }
                main { (body) }
            }
        }
    }
}

fn store_text(s: &AppState) -> String {
    s.store().root().display().to_string()
}

/// A failure as a page.
fn error_page(store: &str, fail: Fail) -> Response {
    let status = fail.status;
    let page = layout(
        "Error",
        store,
        html! {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
            p.error { (fail.message) }
            p { a href="/" { "All runs" } }
        },
    );
    (status, page).into_response()
}

async fn page(
    state: &Arc<AppState>,
    work: impl FnOnce(&AppState) -> Result<Markup, Fail> + Send + 'static,
) -> Response {
    let store = store_text(state);
    match blocking(state, work).await {
        Ok(m) => m.into_response(),
        Err(f) => error_page(&store, f),
    }
}

/// A number with four significant digits.
pub fn number(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "∞".into()
        } else {
            "−∞".into()
        };
    }
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e6).contains(&a) {
        return format!("{v:.3e}");
    }
    let digits = if a == 0.0 {
        0
    } else {
        (3 - a.log10().floor() as i32).clamp(0, 8) as usize
    };
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Seconds as `1h 02m`, `3m 05s`, `12s` or `<1s` (records keep whole seconds).
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return String::new();
    }
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else if secs < 1.0 {
        "<1s".into()
    } else {
        format!("{s}s")
    }
}

/// `2026-11-30T04:12:09Z` as `2026-11-30 04:12`.
fn when(rfc3339: &str) -> String {
    rfc3339
        .get(..16)
        .map(|s| s.replace('T', " "))
        .unwrap_or_else(|| rfc3339.to_string())
}

fn status_badge(status: RunStatus) -> Markup {
    html! { span class={ "status " (status) } { (status) } }
}

fn progress_text(r: &Summary) -> String {
    let Some(p) = &r.progress else {
        return String::new();
    };
    let mut parts = vec![format!("step {}", p.step)];
    match p.epochs {
        Some(e) => parts.push(format!("epoch {}/{e}", p.epoch + 1)),
        None => parts.push(format!("epoch {}", p.epoch + 1)),
    }
    if let Some(eta) = p.eta {
        parts.push(format!("ETA {}", duration(eta)));
    }
    parts.join(" · ")
}

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
    let metrics: Vec<String> = metrics
        .into_iter()
        .take(EXTRA_COLUMNS)
        .map(|(m, _)| m.to_string())
        .collect();
    let mut values: BTreeMap<&str, BTreeSet<Option<&str>>> = BTreeMap::new();
    for r in rows {
        for k in r.hyper.keys() {
            values.entry(k).or_default();
        }
    }
    for (k, set) in values.iter_mut() {
        for r in rows {
            set.insert(r.hyper.get(*k).map(String::as_str));
        }
    }
    let hyper = values
        .into_iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| k.to_string())
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
                        td { a href={ "/run/" (r.id) } { code { (r.id) } } }
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

fn runs_page(
    s: &AppState,
    p: &std::collections::HashMap<String, String>,
) -> Result<(StatusCode, Markup), Fail> {
    let request = ListRequest::from_params(p)?;
    let snapshot = s.index.snapshot();
    let (selection, problem) = match select(&snapshot, &request) {
        Ok(sel) => (Some(sel), None),
        Err(f) => (None, Some(f.message)),
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
                }
            }
            @if total == 0 {
                p.empty { "No runs in this store yet: train a task (" code { "cargo run --example digits -- train" } ") and they appear here." }
            }
            div #table-box data-query=(request.link(request.page, None)) {
                (runs_table(&request, &sel.rows))
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
    Ok((status, layout("Runs", &store_text(s), body)))
}

/// `GET /?q=&sort=&order=&page=`: the runs table.
pub async fn runs(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Response {
    let p = params(raw.as_deref());
    let store = store_text(&state);
    match blocking(&state, move |s| runs_page(s, &p)).await {
        Ok((status, m)) => (status, m).into_response(),
        Err(f) => error_page(&store, f),
    }
}

/// `GET /rows?…`: the table alone, for the runs page's live refresh.
pub async fn rows(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Response {
    let p = params(raw.as_deref());
    match blocking(&state, move |s| {
        let request = ListRequest::from_params(&p)?;
        let snapshot = s.index.snapshot();
        let sel = select(&snapshot, &request)?;
        Ok(runs_table(&request, &sel.rows))
    })
    .await
    {
        Ok(m) => m.into_response(),
        Err(f) => f.into_response(),
    }
}

fn run_link(snapshot: &Snapshot, id: &str) -> Markup {
    let label = snapshot
        .find(id)
        .map(|r| format!("{} ({} {})", r.id, r.kind, r.status))
        .unwrap_or_else(|| format!("{id} (removed)"));
    html! { a href={ "/run/" (id) } { (label) } }
}

fn kv_table(rows: &[(&str, Markup)]) -> Markup {
    html! {
        table.kv {
            @for (k, v) in rows {
                tr { th { (k) } td { (v) } }
            }
        }
    }
}

fn unified(patch: &str) -> Markup {
    html! {
        pre.diff {
            @for line in patch.lines() {
                @let class = if line.starts_with("+++") || line.starts_with("---") {
                    "file"
                } else if line.starts_with('+') {
                    "add"
                } else if line.starts_with('-') {
                    "del"
                } else if line.starts_with("@@") {
                    "hunk"
                } else {
                    "ctx"
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

fn changes_list(changes: &[FileChange], side: bool) -> Markup {
    html! {
        @if changes.is_empty() {
            p.empty { "No differences." }
        }
        @for c in changes {
            details.file open {
                summary { span class={ "change " (change_word(c.kind)) } { (change_word(c.kind)) } " " code { (c.path) } }
                @if side { (split(&c.patch)) } @else { (unified(&c.patch)) }
            }
        }
    }
}

fn chart_box(ids: &str, name: &str, svg: String, legend: &[Arc<Summary>]) -> Markup {
    let src = format!("/chart?runs={}&name={}", encode(ids), encode(name));
    html! {
        figure.chart-box {
            figcaption { (name) }
            div.chart data-src=(src) { (PreEscaped(svg)) }
            @if legend.len() > 1 {
                ul.legend {
                    @for (i, r) in legend.iter().enumerate() {
                        li { span class={ "swatch c" (i % 10) } {} a href={ "/run/" (r.id) } { (run_label(r)) } }
                    }
                }
            }
        }
    }
}

fn run_page(s: &AppState, id: &str) -> Result<Markup, Fail> {
    let (summary, record) = record(s, id)?;
    let snapshot = s.index.snapshot();
    let id = summary.id.clone();
    let series = read_run_all_series(&s.store().run_dir(&id)).unwrap_or_default();
    // Charted from the series just read: the files are read once for the page.
    let charts: Vec<(String, String)> = series
        .iter()
        .map(|(name, points)| {
            let one = api::line(&summary, 0, points, None, CHART.width as usize);
            (
                name.clone(),
                super::chart::render(name, &[one], CHART, None),
            )
        })
        .collect();
    let files = files::list(&s.store().run_dir(&id));
    let changes = record.snapshot.as_ref().map(|_| uncommitted(&record));
    let live = summary.status == RunStatus::Running;
    let hyper = &summary.hyper;
    let body = html! {
        div #run data-run=(id) data-live=(if live { "1" } else { "0" }) {
            h1 { "Run " code { (id) } " " (live_status(&summary)) }
            p.lead {
                (record.experiment) " · " (record.kind)
                @if !summary.message.is_empty() { " · " span.message { (summary.message) } }
            }
            @if let Some(e) = &record.error { p.error { (e) } }
            @if live || summary.progress.is_some() {
                section.live {
                    h2 { "Progress" }
                    (live_progress(&summary))
                }
            }
            section {
                h2 { "Record" }
                (record_table(&snapshot, &record, &summary))
            }
            section.metrics {
                h2 { "Metrics" }
                @if record.metrics.is_empty() { p.empty { "No final metrics yet." } }
                @else {
                    table.kv { @for (k, v) in &record.metrics { tr { th { (k) } td.num { (number(*v)) } } } }
                }
                @if !record.tests.is_empty() {
                    h3 { "Tests" }
                    table.tests {
                        @for t in &record.tests {
                            tr {
                                td { (run_link(&snapshot, &t.run)) }
                                td { @for (k, v) in &t.metrics { span.metric { (k) " " b { (number(*v)) } } " " } }
                            }
                        }
                    }
                }
            }
            section {
                h2 { "Hyperparameters" }
                @if hyper.is_empty() { p.empty { "None recorded." } }
                @else { table.kv { @for (k, v) in hyper { tr { th { (k) } td { (v) } } } } }
            }
            section.curves {
                h2 { "Curves" }
                @if charts.is_empty() { p.empty { "No metric points yet." } }
                div.charts {
                    @for (name, svg) in charts {
                        (chart_box(&id, &name, svg, &[]))
                    }
                }
            }
            section {
                h2 { "Code" }
                @match &record.snapshot {
                    None => { p.empty { "This run has no snapshot of its code (it ran outside a Git repository, or with --allow-no-snapshot)." } }
                    Some(snap) => {
                        p {
                            "Snapshot " code { (short(&snap.commit)) }
                            @if let Some(parent) = &snap.parent { " on " code { (short(parent)) } }
                            " · " a href={ "/run/" (id) "/code" } { "browse the files" }
                        }
                        @if !snap.skipped.is_empty() {
                            p.notice { "Left out for their size: " @for (path, size) in &snap.skipped { code { (path) } " (" (size) " bytes) " } }
                        }
                        h3 { "Uncommitted changes it ran with" }
                        @match &changes {
                            Some(Ok(c)) => { (changes_list(c, false)) }
                            Some(Err(f)) => { p.error { (f.message) } }
                            None => {}
                        }
                    }
                }
            }
            section {
                h2 { "Files" }
                @if files.is_empty() { p.empty { "No files." } }
                table.files {
                    @for f in &files {
                        tr {
                            td { a href={ "/files/" (id) "/" (f.path) } download { (f.path) } }
                            td.num { (bytes(f.size)) }
                        }
                    }
                }
            }
            section {
                h2 { "Log" }
                pre #log { (log_tail(s, &id, 200)) }
            }
        }
    };
    Ok(layout(&format!("Run {id}"), &store_text(s), body))
}

fn live_status(r: &Summary) -> Markup {
    html! { span #live-status data-status=(r.status) { (status_badge(r.status)) } }
}

fn live_progress(r: &Summary) -> Markup {
    html! {
        p #live-progress { (progress_text(r)) }
        p #live-duration { "running for " (r.duration.map(duration).unwrap_or_default()) }
    }
}

/// `GET /run/{id}/live`: the parts of a run's page that move while it runs.
pub async fn live(State(state): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Response {
    match blocking(&state, move |s| {
        let snapshot = s.index.snapshot();
        let r = snapshot
            .find(&id)
            .cloned()
            .ok_or_else(|| Fail::not_found(format!("no run `{id}` in this store")))?;
        Ok(html! { div { (live_status(&r)) (live_progress(&r)) } })
    })
    .await
    {
        Ok(m) => m.into_response(),
        Err(f) => f.into_response(),
    }
}

fn record_table(snapshot: &Snapshot, record: &Record, summary: &Summary) -> Markup {
    let env = &record.environment;
    let build = &record.build;
    let mut rows: Vec<(&str, Markup)> = vec![
        ("started", html! { (record.started) }),
        (
            "ended",
            html! { (record.ended.clone().unwrap_or_default()) },
        ),
        (
            "duration",
            html! { (summary.duration.map(duration).unwrap_or_default()) },
        ),
    ];
    if let Some(p) = &record.parent {
        rows.push(("parent", run_link(snapshot, p)));
    }
    let children = snapshot.children(&record.id);
    if !children.is_empty() {
        rows.push((
            "children",
            html! { @for c in children { (run_link(snapshot, c)) br; } },
        ));
    }
    if let Some(r) = &record.rerun_of {
        rows.push(("rerun of", run_link(snapshot, r)));
    }
    if let Some(sweep) = &record.sweep {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("q", &format!("sweep:{sweep}"))
            .finish();
        rows.push((
            "sweep",
            html! { a href=(format!("/?{query}")) { (sweep) } " (its runs)" },
        ));
    }
    if let Some(stopped) = &record.stopped_early {
        rows.push((
            "stopped early",
            html! { "after epoch " (stopped.epochs) " (step " (stopped.step) "): " (stopped.reason) },
        ));
    }
    rows.extend([
        ("command", html! { code { (record.argv.join(" ")) } }),
        ("seed", html! { (record.seed) }),
        (
            "environment",
            html! { (env.device) " · " (env.threads) " threads · " (env.host) " · flammable " (env.flammable) },
        ),
        (
            "build",
            html! {
                (build.package) "/" (build.name) " (" (build.kind) ") · " (build.profile) " · " (build.rustc) " · " (build.target)
                @if !build.features.is_empty() { " · features: " (build.features.join(", ")) }
            },
        ),
    ]);
    if !build.stale_sources.is_empty() {
        rows.push((
            "stale sources",
            html! { span.error { "newer than the binary: " (build.stale_sources.join(", ")) } },
        ));
    }
    if !record.resumed_with.is_empty() {
        rows.push((
            "resumed with",
            html! { @for r in &record.resumed_with { code { (format!("{r:?}")) } br; } },
        ));
    }
    kv_table(&rows)
}

fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// `GET /run/{id}`: one run.
pub async fn run(State(state): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Response {
    page(&state, move |s| run_page(s, &id)).await
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
                    a href={ "/run/" (id) "/code/" (path) } { (name) }
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
) -> Response {
    page(&state, move |s| {
        let (summary, record) = record(s, &id)?;
        let snap = snapshot_of(&record)?;
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
                h1 { "Code of run " a href={ "/run/" (id) } { code { (id) } } }
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
) -> Response {
    page(&state, move |s| {
        let (summary, record) = record(s, &id)?;
        let snap = snapshot_of(&record)?;
        let bytes_ = snapshot::file_bytes(&snap.git_dir, &snap.commit, &path)?.ok_or_else(|| {
            Fail::not_found(format!("no file `{path}` in the snapshot of run {}", summary.id))
        })?;
        let id = summary.id.clone();
        let text = std::str::from_utf8(&bytes_).ok().filter(|t| !t.contains('\0'));
        let raw = format!("/api/runs/{id}/code/{path}");
        let body = html! {
            h1.path {
                a href={ "/run/" (id) } { code { (id) } } " / " a href={ "/run/" (id) "/code" } { "code" } " / " code { (path) }
            }
            p.lead { (bytes(bytes_.len() as u64)) " · " a href=(raw) { "raw" } }
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

/// `GET /compare?runs=a,b,c&base=a&view=split|unified`: curves overlaid, hyperparameters and
/// metrics side by side with the differing ones marked, and the code of each run against the
/// base.
pub async fn compare(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Response {
    let p = params(raw.as_deref());
    page(&state, move |s| {
        let snapshot = s.index.snapshot();
        let runs = named_runs(&snapshot, &p)?;
        let base = match p.get("base").filter(|b| !b.is_empty()) {
            Some(b) => snapshot
                .find(b)
                .cloned()
                .ok_or_else(|| Fail::not_found(format!("no run `{b}` in this store")))?,
            None => runs[0].clone(),
        };
        let side = p.get("view").map(String::as_str) != Some("unified");
        let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
        let ids_text = ids.join(",");
        let link = |base: &str, view: &str| {
            format!("/compare?runs={}&base={}&view={view}", encode(&ids_text), encode(base))
        };
        let view_name = if side { "split" } else { "unified" };
        // Names of every series of any run, in first-seen order.
        let mut names: Vec<String> = Vec::new();
        for r in &runs {
            for (n, _) in read_run_all_series(&s.store().run_dir(&r.id)).unwrap_or_default() {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        let charts: Vec<(String, String)> = names
            .iter()
            .map(|n| (n.clone(), chart_svg(s, &runs, n, CHART, None)))
            .collect();
        let hyper_keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.hyper.keys()).collect();
        let metric_keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.metrics.keys()).collect();
        let records: Vec<Result<Record, Fail>> = runs
            .iter()
            .map(|r| s.store().read(&r.id).map_err(|e| Fail::not_found(e.to_string())))
            .collect();
        let base_record = s.store().read(&base.id).map_err(|e| Fail::not_found(e.to_string()))?;
        let body = html! {
            h1 { "Compare " (runs.len()) " runs" }
            table.compared {
                @for (i, r) in runs.iter().enumerate() {
                    tr {
                        td { span class={ "swatch c" (i % 10) } {} }
                        td { a href={ "/run/" (r.id) } { code { (r.id) } } }
                        td { (r.experiment) " · " (r.kind) " · " (status_badge(r.status)) }
                        td.message { (r.message) }
                        td {
                            @if r.id == base.id { b { "base" } }
                            @else { a href=(link(&r.id, view_name)) { "make base" } }
                        }
                    }
                }
            }
            section {
                h2 { "Hyperparameters" }
                p.lead { "Rows whose values differ are marked." }
                table.grid #hyper-table {
                    thead { tr { th {} @for r in &runs { th { code { (r.id) } } } } }
                    tbody {
                        @for k in &hyper_keys {
                            @let values: BTreeSet<Option<&String>> = runs.iter().map(|r| r.hyper.get(*k)).collect();
                            tr class=(if values.len() > 1 { "differs" } else { "same" }) {
                                th { (k) }
                                @for r in &runs { td { (r.hyper.get(*k).cloned().unwrap_or_default()) } }
                            }
                        }
                    }
                }
            }
            section {
                h2 { "Final metrics" }
                table.grid {
                    thead { tr { th {} @for r in &runs { th { code { (r.id) } } } } }
                    tbody {
                        @for k in &metric_keys {
                            tr {
                                th { (k) }
                                @for r in &runs { td.num { (r.metrics.get(*k).map(|v| number(*v)).unwrap_or_default()) } }
                            }
                        }
                    }
                }
            }
            section.curves {
                h2 { "Curves" }
                div.charts {
                    @for (name, svg) in charts {
                        (chart_box(&ids_text, &name, svg, &runs))
                    }
                }
            }
            section #code-diff {
                h2 { "Code against the base " code { (base.id) } }
                p.lead {
                    @if side { "side by side · " a href=(link(&base.id, "unified")) { "unified" } }
                    @else { a href=(link(&base.id, "split")) { "side by side" } " · unified" }
                }
                @for (r, rec) in runs.iter().zip(&records) {
                    @if r.id != base.id {
                        h3 { code { (base.id) } " → " code { (r.id) } }
                        @match rec.as_ref().map_err(|f| f.message.clone()).and_then(|rec| code_diff(&base_record, rec).map_err(|f| f.message)) {
                            Ok(changes) => { (changes_list(&changes, side)) }
                            Err(message) => { p.error { (message) } }
                        }
                    }
                }
            }
        };
        Ok(layout("Compare", &store_text(s), body))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_durations_read_well() {
        assert_eq!(number(0.123456), "0.1235");
        assert_eq!(number(12.0), "12");
        assert_eq!(number(1234.5678), "1235");
        assert_eq!(number(1e-7), "1.000e-7");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(duration(5.25), "5s");
        assert_eq!(duration(0.0), "<1s");
        assert_eq!(duration(185.0), "3m 05s");
        assert_eq!(duration(3725.0), "1h 02m");
        assert_eq!(when("2026-11-30T04:12:09Z"), "2026-11-30 04:12");
    }
}
