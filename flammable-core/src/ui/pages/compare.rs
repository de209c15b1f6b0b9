//! The comparison of runs (`/compare?runs=A,B,C`): their curves overlaid, hyperparameters
//! and final metrics side by side with the differing ones marked, and the code of each run
//! against a base run — by default the oldest, so that a later run's changes read as what it
//! added.

use super::super::api::blocking;
use super::super::index::Summary;
use super::super::legend;
use super::super::params::{from_text, Given, Params, RunList};
use super::super::read::{self, find_run, find_runs};
use super::super::state::AppState;
use super::super::view::ChartView;
use super::charts::{chart_box, view_form};
use super::code::changes_list;
use super::layout::{layout, number, run_href, status_badge, store_text};
use super::CHART;
use crate::store::record::Record;
use crate::web::AppError;
use axum::extract::State;
use axum::response::IntoResponse;
use maud::html;
use std::collections::BTreeSet;
use std::sync::Arc;

/// How the code diffs are laid out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum View {
    /// Old and new side by side.
    #[default]
    Split,
    /// One column, `-` and `+` lines.
    Unified,
}

impl std::str::FromStr for View {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "" | "split" => Ok(View::Split),
            "unified" => Ok(View::Unified),
            _ => Err(format!("`{text}`: use split or unified")),
        }
    }
}

/// The query of `/compare`.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct CompareQuery {
    #[serde(deserialize_with = "from_text")]
    runs: RunList,
    #[serde(deserialize_with = "from_text")]
    base: Given,
    #[serde(deserialize_with = "from_text")]
    view: View,
}

/// The link to this comparison with base `base` and layout `view`.
fn link(runs: &[Arc<Summary>], base: &str, view: View) -> String {
    let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("runs", &ids.join(","))
        .append_pair("base", base)
        .append_pair(
            "view",
            match view {
                View::Split => "split",
                View::Unified => "unified",
            },
        )
        .finish();
    format!("/compare?{query}")
}

/// `GET /compare?runs=a,b,c&base=a&view=split|unified`.
pub async fn compare(
    State(state): State<Arc<AppState>>,
    Params(query): Params<CompareQuery>,
    Params(chart_view): Params<ChartView>,
) -> Result<impl IntoResponse, AppError> {
    blocking(&state, move |s| {
        let snapshot = s.index.snapshot();
        let runs = find_runs(&snapshot, &query.runs.0)?;
        let base = match &query.base.0 {
            Some(b) => find_run(&snapshot, b)?,
            // Ids sort by start time: the smallest is the oldest.
            None => runs
                .iter()
                .min_by(|a, b| a.id.cmp(&b.id))
                .cloned()
                .ok_or_else(|| AppError::bad("runs: name one or more runs"))?,
        };
        let side = query.view == View::Split;
        let view = query.view;
        let groups = read::groups(&snapshot, &runs, &chart_view)?;
        let lines = match &groups {
            Some(g) => read::Lines::Groups(g),
            None => read::Lines::Runs(&runs),
        };
        let charts = read::all_charts(s, &lines, CHART, &chart_view);
        // Grouped, a run takes its group's colour, as on the charts.
        let colour_of = |i: usize, id: &str| match &groups {
            Some(g) => g
                .iter()
                .position(|g| g.runs.iter().any(|r| r.id == id))
                .unwrap_or(i),
            None => i,
        };
        let ids = runs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join(",");
        let view_text = if side { "split" } else { "unified" };
        let hyper_keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.hyper.keys()).collect();
        let differ: BTreeSet<String> = legend::differing(&runs)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let metric_keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.metrics.keys()).collect();
        let records: Vec<Result<Record, AppError>> =
            runs.iter().map(|r| read::read_record(s, &r.id)).collect();
        // The base is one of the runs unless named apart: read once.
        let base_record = match runs.iter().position(|r| r.id == base.id) {
            Some(i) => records[i].clone()?,
            None => read::read_record(s, &base.id)?,
        };
        let body = html! {
            h1 { "Compare " (runs.len()) " runs" }
            table.compared {
                @for (i, r) in runs.iter().enumerate() {
                    tr {
                        td { span class={ "swatch c" (colour_of(i, &r.id) % 10) } {} }
                        td { a href=(run_href(&r.id)) { code { (r.id) } } }
                        td { (r.experiment) " · " (r.kind) " · " (status_badge(r.status)) }
                        td.message { (r.message) }
                        td {
                            @if r.id == base.id { b { "base" } }
                            @else { a href=(link(&runs, &r.id, view)) { "make base" } }
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
                            tr class=(if differ.contains(*k) { "differs" } else { "same" }) {
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
                (view_form("/compare", &[("runs", &ids), ("base", &base.id), ("view", view_text)], &chart_view, true))
                div.charts {
                    @for (n, (name, svg)) in charts.into_iter().enumerate() {
                        (chart_box(n, &lines, &name, svg, CHART, &chart_view))
                    }
                }
            }
            section #code-diff {
                h2 { "Code against the base " code { (base.id) } }
                p.lead {
                    @if side { "side by side · " a href=(link(&runs, &base.id, View::Unified)) { "unified" } }
                    @else { a href=(link(&runs, &base.id, View::Split)) { "side by side" } " · unified" }
                }
                @for (r, rec) in runs.iter().zip(&records) {
                    @if r.id != base.id {
                        h3 { code { (base.id) } " → " code { (r.id) } }
                        @match rec.as_ref().map_err(|e| e.message.clone()).and_then(|rec| read::code_diff(&base_record, rec).map_err(|e| e.message)) {
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
