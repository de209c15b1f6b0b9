//! The charts of a page: the form that sets how they are shown (smoothing, x axis, y scale;
//! a plain GET form, so links keep the view and the page works without its script), and
//! each chart's box with its legend and downloads.

use super::super::chart::{Size, XAxis};
use super::super::index::Summary;
use super::super::read::Lines;
use super::super::view::{BandKind, ChartView};
use super::layout::run_href;
use maud::{html, Markup, PreEscaped};
use std::sync::Arc;

/// The smoothings offered in the form (any other `smooth=` of the query is offered too).
const SMOOTHINGS: [(&str, &str); 9] = [
    ("", "none"),
    ("ema:0.6", "moving average 0.6"),
    ("ema:0.9", "moving average 0.9"),
    ("ema:0.99", "moving average 0.99"),
    ("ema:0.999", "moving average 0.999"),
    ("mean:10", "mean of 10 points"),
    ("mean:100", "mean of 100 points"),
    ("mean:1000", "mean of 1000 points"),
    ("mean:10000", "mean of 10000 points"),
];

/// The view form of a page at `action`, keeping the page's other parameters `keep`; with
/// `grouping`, also what runs are grouped by and what a group's band spans.
pub fn view_form(action: &str, keep: &[(&str, &str)], view: &ChartView, grouping: bool) -> Markup {
    let current = view.smooth.text();
    let offered = SMOOTHINGS.iter().any(|(v, _)| *v == current);
    let x_options = [
        (XAxis::Step, "step"),
        (XAxis::Epoch, "epoch"),
        (XAxis::Time, "time since start"),
        (XAxis::Wall, "wall-clock time"),
    ];
    html! {
        form.chart-view #chart-view action=(action) method="get" {
            @for (k, v) in keep { input type="hidden" name=(k) value=(v); }
            label {
                "smoothing "
                select name="smooth" {
                    @if !offered { option value=(current) selected { (current) } }
                    @for (value, text) in SMOOTHINGS {
                        option value=(value) selected[value == current] { (text) }
                    }
                }
            }
            label {
                " x "
                select name="x" {
                    @for (axis, text) in x_options {
                        option value=(axis.text()) selected[axis == view.x] { (text) }
                    }
                }
            }
            label {
                " y "
                select name="y" {
                    option value="linear" selected[!view.y.0] { "linear" }
                    option value="log" selected[view.y.0] { "log" }
                }
            }
            @if grouping {
                label {
                    " group by "
                    input type="text" name="group" value=(view.group.text()) size="14" placeholder="* or lr,hidden" title="runs that share these hyperparameters are one line, their mean with a band: * is every hyperparameter but the seed";
                }
                label {
                    " band "
                    select name="band" {
                        option value="minmax" selected[view.band == BandKind::MinMax] { "min–max" }
                        option value="std" selected[view.band == BandKind::Std] { "± std" }
                    }
                }
            }
            " "
            button type="submit" { "Apply" }
        }
    }
}

/// The query of `/chart` for metric `name` of `runs` at `size`, as `view` shows it.
fn chart_query(runs: &[Arc<Summary>], name: &str, size: Size, view: &ChartView) -> String {
    let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("runs", &ids.join(","))
        .append_pair("name", name)
        .append_pair("width", &size.width.to_string())
        .append_pair("height", &size.height.to_string());
    for (k, v) in view.pairs() {
        q.append_pair(k, &v);
    }
    q.finish()
}

/// Chart number `n` of a page: metric `name` of the runs or groups of `lines` (its SVG,
/// drawn at `size` as `view` shows it), which the page's script reloads from `/chart` to zoom
/// or follow a live run; with a legend when there are several lines, and its downloads: the
/// raw series as CSV, the chart as SVG and (by the script) PNG.
pub fn chart_box(
    n: usize,
    lines: &Lines,
    name: &str,
    svg: String,
    size: Size,
    view: &ChartView,
) -> Markup {
    let runs = lines.runs();
    let query = chart_query(&runs, name, size, view);
    let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    let csv = form_urlencoded::Serializer::new(String::new())
        .append_pair("runs", &ids.join(","))
        .append_pair("name", name)
        .finish();
    let labels = lines.labels();
    html! {
        figure.chart-box {
            figcaption {
                (name)
                span.downloads {
                    a href={ "/series.csv?" (csv) } download { "CSV" }
                    a href={ "/chart?" (query) "&download=1" } download { "SVG" }
                    button.png type="button" data-src={ "/chart?" (query) "&download=1" } data-name=(name) title="save as PNG (needs the page's script)" { "PNG" }
                }
            }
            div.chart id={ "chart-" (n) } data-src={ "/chart?" (query) } { (PreEscaped(svg)) }
            @match lines {
                Lines::Runs(runs) if runs.len() > 1 => {
                    ul.legend {
                        @for (i, (r, label)) in runs.iter().zip(&labels).enumerate() {
                            li {
                                span class={ "swatch c" (i % 10) } {}
                                a href=(run_href(&r.id)) { code { (r.id) } }
                                (label.strip_prefix(r.id.as_str()).unwrap_or(label))
                            }
                        }
                    }
                }
                Lines::Groups(groups) => {
                    ul.legend {
                        @for (i, (g, label)) in groups.iter().zip(&labels).enumerate() {
                            li title=(g.runs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join(" ")) {
                                span class={ "swatch c" (i % 10) } {}
                                (label)
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
}
