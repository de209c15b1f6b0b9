//! The parallel coordinates of the runs a filter matches (`/parallel?q=&metric=`): every
//! differing hyperparameter and a metric as axes, the runs as lines, and the runs in a table
//! that brushing an axis filters (the page's script).

use super::super::api::blocking;
use super::super::listing::{matching, ListRequest};
use super::super::parallel::{axes, render};
use super::super::params::{from_text, Given, Params};
use super::super::state::AppState;
use super::layout::{layout, number, run_href, store_text};
use crate::web::AppError;
use axum::extract::State;
use axum::response::IntoResponse;
use maud::{html, PreEscaped};
use std::collections::BTreeMap;

/// At most this many runs are drawn.
const MAX_DRAWN: usize = 5_000;

/// The query of `/parallel`.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct ParallelQuery {
    q: String,
    #[serde(deserialize_with = "from_text")]
    metric: Given,
}

/// `GET /parallel?q=&metric=`.
pub async fn parallel(
    State(state): State<std::sync::Arc<AppState>>,
    Params(query): Params<ParallelQuery>,
) -> Result<impl IntoResponse, AppError> {
    blocking(&state, move |s| {
        let snapshot = s.index.snapshot();
        let request = ListRequest {
            filter: query.q.clone(),
            ..ListRequest::from(super::super::listing::ListQuery::default())
        };
        let mut runs = matching(&snapshot, &request)?;
        let matched = runs.len();
        runs.truncate(MAX_DRAWN);
        // The metrics the runs have, the most common first.
        let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
        for r in &runs {
            for m in r.metrics.keys() {
                *counts.entry(m).or_default() += 1;
            }
        }
        let mut metrics: Vec<(&String, usize)> = counts.into_iter().collect();
        metrics.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let metric = match &query.metric.0 {
            Some(m) if metrics.iter().any(|(n, _)| *n == m) => m.clone(),
            Some(m) if !runs.is_empty() => {
                return Err(AppError::bad(format!(
                    "metric: none of these runs has a final metric `{m}`"
                )))
            }
            _ => metrics.first().map(|(m, _)| (*m).clone()).unwrap_or_default(),
        };
        let axes = axes(&runs, &metric);
        let svg = render(&runs, &axes, 1100, 420);
        let hyper_axes: Vec<&str> = axes
            .iter()
            .filter(|a| !a.metric)
            .map(|a| a.name.as_str())
            .collect();
        let body = html! {
            h1 { "Parallel coordinates" }
            form.filter action="/parallel" method="get" {
                input type="search" name="q" value=(query.q) placeholder="filter, as on the runs page" aria-label="filter";
                label {
                    " metric "
                    select name="metric" {
                        @for (m, _) in &metrics {
                            option value=(m) selected[**m == metric] { (m) }
                        }
                    }
                }
                " "
                button type="submit" { "Show" }
            }
            p.summary {
                @if matched > runs.len() {
                    "The first " (runs.len()) " of " (matched) " runs (narrow the filter to see the rest)"
                } @else {
                    (matched) " runs"
                }
                " · "
                a href={ "/?q=" (form_urlencoded::byte_serialize(query.q.as_bytes()).collect::<String>()) } { "their table" }
            }
            @if runs.is_empty() {
                p.empty { "No runs match." }
            } @else if hyper_axes.is_empty() {
                p.empty { "These runs share every hyperparameter: there is nothing to set side by side but " (metric) "." }
            }
            p.lead {
                "Drag along an axis to keep the runs that cross it there (on several axes: all of them); click an axis to let it go. Lines are coloured by " b { (metric) } ", blue lowest. A run without a value crosses an axis at the mark under it."
            }
            div.parallel #parallel { (PreEscaped(svg)) }
            p #parallel-shown {
                span #shown-count { (runs.len()) } " shown · "
                a #compare-shown href="/compare" { "compare the runs shown" } " (up to 200)"
            }
            table.runs #parallel-table {
                thead { tr { th { "run" } th.num { (metric) } @for h in &hyper_axes { th.param { (h) } } } }
                tbody {
                    @for r in &runs {
                        tr data-id=(r.id) {
                            td { a href=(run_href(&r.id)) { code { (r.id) } } }
                            td.num { (r.metrics.get(&metric).map(|v| number(*v)).unwrap_or_default()) }
                            @for h in &hyper_axes { td.param { (r.hyper.get(*h).cloned().unwrap_or_default()) } }
                        }
                    }
                }
            }
        };
        Ok(layout("Parallel coordinates", &store_text(s), body))
    })
    .await
}
