//! A run's page (`/run/{id}`): its status and progress, record, metrics, hyperparameters,
//! curves, code, files and log; and the parts of it that move while it runs
//! (`/run/{id}/live`).

use super::super::api::blocking;
use super::super::files::{self, MAX_LISTED};
use super::super::index::{Snapshot, Summary};
use super::super::manage::csrf_input;
use super::super::params::Params;
use super::super::read::{self, find_run};
use super::super::state::AppState;
use super::super::view::ChartView;
use super::charts::{chart_box, view_form};
use super::code::changes_list;
use super::layout::{
    bytes, duration, layout, number, progress_text, run_href, short, status_badge, store_text,
};
use super::CHART;
use crate::store::notes::MAX_TEXT_CHARS;
use crate::store::record::{Record, RunStatus};
use crate::web::AppError;
use axum::extract::{Path as UrlPath, State};
use axum::response::IntoResponse;
use maud::{html, Markup, PreEscaped};
use std::sync::Arc;

fn run_link(snapshot: &Snapshot, id: &str) -> Markup {
    let label = snapshot
        .find(id)
        .map(|r| format!("{} ({} {})", r.id, r.kind, r.status))
        .unwrap_or_else(|| format!("{id} (removed)"));
    html! { a href=(run_href(id)) { (label) } }
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

fn live_status(r: &Summary) -> Markup {
    html! { span #live-status data-status=(r.status) { (status_badge(r.status)) } }
}

fn live_progress(r: &Summary) -> Markup {
    html! {
        p #live-progress { (progress_text(r)) }
        p #live-duration {
            @if let Some(d) = r.duration {
                @if r.status == RunStatus::Running { "running for " } @else { "ran for " }
                (duration(d))
            }
        }
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

/// A link to the runs with tag `tag`.
pub fn tag_link(tag: &str) -> Markup {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("q", &format!("tag:{tag}"))
        .finish();
    html! { a.tag href=(format!("/?{query}")) title={ "the runs tagged " (tag) } { (tag) } }
}

/// The run's tags, note and message, with the forms that change them and the history of
/// their edits; a live run's are shown, not offered for change.
fn notes_section(s: &AppState, record: &Record, live: bool) -> Markup {
    let id = &record.id;
    let run_field = html! { (csrf_input(s)) input type="hidden" name="runs" value=(id); };
    html! {
        section #notes {
            h2 { "Tags and notes" }
            div.tags #tags {
                @for t in &record.tags {
                    span.chip {
                        (tag_link(t))
                        @if !live {
                            form.inline method="post" action="/runs/edit" {
                                (run_field)
                                input type="hidden" name="remove" value=(t);
                                button.untag type="submit" title={ "remove the tag " (t) } aria-label={ "remove the tag " (t) } { "×" }
                            }
                        }
                    }
                }
                @if record.tags.is_empty() && live { span.empty { "No tags." } }
                @if !live {
                    form.inline #add-tags method="post" action="/runs/edit" {
                        (run_field)
                        input type="text" name="add" size="18" placeholder="add tags" aria-label="tags to add (separated by spaces or commas)" required;
                        button type="submit" { "Add" }
                    }
                }
            }
            @if live {
                @if let Some(n) = &record.note { div.note { (n) } }
                p.empty { "A running run's tags, note and message can change once it ends (its process writes its record as it goes)." }
            } @else {
                form #edit-message method="post" action="/runs/edit" {
                    (run_field)
                    // (A text area drops one line break right after its start tag: one is
                    // written there, so that text starting with a line break keeps it.)
                    @let message = record.message.clone().unwrap_or_default();
                    @if message.contains('\n') {
                        label.block { "Message" textarea name="message" rows="3" cols="80" maxlength=(MAX_TEXT_CHARS) { "\n" (message) } }
                    } @else {
                        label { "Message " input type="text" name="message" value=(message) size="60" maxlength=(MAX_TEXT_CHARS); }
                    }
                    " " button type="submit" { "Save message" }
                }
                form #edit-note method="post" action="/runs/edit" {
                    (run_field)
                    label.block { "Note" textarea name="note" rows="4" cols="80" maxlength=(MAX_TEXT_CHARS) placeholder="what you learned from this run" { "\n" (record.note.clone().unwrap_or_default()) } }
                    button type="submit" { "Save note" }
                }
            }
            @if !record.edits.is_empty() {
                details.history #edits {
                    summary { "History of edits (" (record.edits.len()) ")" }
                    table.edits {
                        thead { tr { th { "when" } th { "who" } th { "what" } th { "before" } th { "after" } } }
                        tbody {
                            @for e in record.edits.iter().rev() {
                                tr {
                                    td.when { (e.at) }
                                    td { (e.by) }
                                    td { (e.field.to_string()) }
                                    td.was { (e.from.clone().unwrap_or_default()) }
                                    td { (e.to.clone().unwrap_or_default()) }
                                }
                            }
                        }
                    }
                }
            }
            @if !live {
                form #delete-run method="post" action="/runs/delete" {
                    (run_field)
                    button.danger type="submit" title="move this run to the store's trash (it can be restored until gc)" { "Move to trash" }
                }
            }
        }
    }
}

fn run_page(s: &AppState, spec: &str, view: &ChartView) -> Result<Markup, AppError> {
    let snapshot = s.index.snapshot();
    let (summary, record) = read::record_in(s, &snapshot, spec)?;
    let id = summary.id.clone();
    let charts = read::all_charts(
        s,
        &read::Lines::Runs(std::slice::from_ref(&summary)),
        CHART,
        view,
    );
    let one = [summary.clone()];
    let listing = files::list(&s.store().run_dir(&id));
    let changes = record.snapshot.as_ref().map(|_| read::uncommitted(&record));
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
            (notes_section(s, &record, live))
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
                @else { (view_form(&run_href(&id), &[], view, false)) }
                div.charts {
                    @for (n, (name, svg)) in charts.into_iter().enumerate() {
                        (chart_box(n, &read::Lines::Runs(&one), &name, svg, CHART, view))
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
                            " · " a href={ (run_href(&id)) "/code" } { "browse the files" }
                        }
                        @if !snap.skipped.is_empty() {
                            p.notice { "Left out for their size: " @for (path, size) in &snap.skipped { code { (path) } " (" (size) " bytes) " } }
                        }
                        h3 { "Uncommitted changes it ran with" }
                        @match &changes {
                            Some(Ok(c)) => { (changes_list(c, false)) }
                            Some(Err(e)) => { p.error { (e.message) } }
                            None => {}
                        }
                    }
                }
            }
            section {
                h2 { "Files" }
                @if listing.files.is_empty() { p.empty { "No files." } }
                table.files {
                    @for f in &listing.files {
                        tr {
                            td { a href={ "/files/" (files::url_path(id.as_bytes())) "/" (f.url_path) } download { (f.path) } }
                            td.num { (bytes(f.size)) }
                        }
                    }
                }
                @if !listing.complete {
                    p.notice { "The first " (MAX_LISTED) " files are listed; the folder holds more." }
                }
            }
            section {
                h2 { "Log" }
                pre #log { (read::log_tail(s, &id, 200)) }
            }
        }
    };
    Ok(layout(&format!("Run {id}"), &store_text(s), body))
}

/// `GET /run/{id}?smooth=&x=&y=`: one run, its charts as the view says.
pub async fn run(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    Params(view): Params<ChartView>,
) -> Result<impl IntoResponse, AppError> {
    blocking(&state, move |s| run_page(s, &id, &view)).await
}

/// `GET /run/{id}/live?smooth=&x=&y=`: the parts of a run's page that move while it runs —
/// status, progress, every chart (`chart-N`, in the page's order) and the log's tail — in
/// one answer, so a page refreshes with one request.
pub async fn live(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    Params(view): Params<ChartView>,
) -> Result<impl IntoResponse, AppError> {
    blocking(&state, move |s| {
        let r = find_run(&s.index.snapshot(), &id)?;
        let charts = read::all_charts(
            s,
            &read::Lines::Runs(std::slice::from_ref(&r)),
            CHART,
            &view,
        );
        Ok(html! {
            div {
                (live_status(&r)) (live_progress(&r))
                @for (n, (_, svg)) in charts.into_iter().enumerate() {
                    div.chart id={ "chart-" (n) } { (PreEscaped(svg)) }
                }
                pre #log { (read::log_tail(s, &r.id, 200)) }
            }
        })
    })
    .await
}
