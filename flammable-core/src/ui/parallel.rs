//! Parallel coordinates of runs, drawn on the server as SVG: one vertical axis per
//! hyperparameter whose values differ among the runs, and one for a metric (last); each run a
//! line across them, coloured by the metric. An axis of numbers is linear, or logarithmic when
//! its values are positive and span two decades or more; an axis of anything else lists its
//! values evenly. A run without a value on an axis crosses it at a mark below the axis.
//!
//! Each axis carries its name and range, each line its run's id, so the page's script can
//! brush an axis (keep the lines that cross it within a range) and filter the table with it.

use super::chart::{escape, labels, short, ticks};
use super::index::Summary;
use super::legend;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

/// How an axis places its values.
#[derive(Clone, Debug, PartialEq)]
pub enum Scale {
    /// Numbers from `lo` to `hi`.
    Linear(f64, f64),
    /// Positive numbers from `lo` to `hi`, by their logarithms.
    Log(f64, f64),
    /// These values, evenly spaced, in this order (bottom first).
    Values(Vec<String>),
}

/// One axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// The hyperparameter or metric.
    pub name: String,
    /// Whether it is the metric.
    pub metric: bool,
    /// How it places values.
    pub scale: Scale,
}

/// A run's value on an axis: a hyperparameter's text, or the metric.
fn value_of<'a>(run: &'a Summary, axis: &str, metric: bool) -> Option<std::borrow::Cow<'a, str>> {
    if metric {
        run.metrics
            .get(axis)
            .filter(|v| v.is_finite())
            .map(|v| std::borrow::Cow::Owned(v.to_string()))
    } else {
        // An optional setting left unset (`None`) has no value on the axis.
        run.setting(axis)
            .map(|v| std::borrow::Cow::Borrowed(v.as_str()))
    }
}

/// The scale of the present `values` of an axis.
fn scale_of(values: &[&str]) -> Scale {
    let numbers: Option<Vec<f64>> = values
        .iter()
        .map(|v| v.parse::<f64>().ok().filter(|n| n.is_finite()))
        .collect();
    match numbers {
        Some(n) if !n.is_empty() => {
            let lo = n.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = n.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if lo > 0.0 && hi / lo >= 100.0 {
                Scale::Log(lo, hi)
            } else {
                Scale::Linear(lo, hi)
            }
        }
        _ => {
            let distinct: BTreeSet<&str> = values.iter().copied().collect();
            Scale::Values(distinct.into_iter().map(str::to_string).collect())
        }
    }
}

/// The axes for `runs`: each hyperparameter whose values differ among them, by name, then
/// `metric`.
pub fn axes(runs: &[Arc<Summary>], metric: &str) -> Vec<Axis> {
    let mut names: Vec<(String, bool)> = legend::differing(runs)
        .into_iter()
        .map(|(k, _)| (k, false))
        .collect();
    names.push((metric.to_string(), true));
    names
        .into_iter()
        .map(|(name, metric)| {
            let present: Vec<std::borrow::Cow<str>> = runs
                .iter()
                .filter_map(|r| value_of(r, &name, metric))
                .collect();
            let texts: Vec<&str> = present.iter().map(|c| c.as_ref()).collect();
            let scale = scale_of(&texts);
            Axis {
                name,
                metric,
                scale,
            }
        })
        .collect()
}

impl Axis {
    /// Where `value` lies on this axis, from 0 (bottom) to 1 (top); `None` when it cannot be
    /// placed.
    fn place(&self, value: &str) -> Option<f64> {
        // Halves: a range from near -f64::MAX to near f64::MAX would overflow.
        let fraction = |x: f64, lo: f64, hi: f64| {
            if hi > lo {
                (x / 2.0 - lo / 2.0) / (hi / 2.0 - lo / 2.0)
            } else {
                0.5
            }
        };
        match &self.scale {
            Scale::Linear(lo, hi) => value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .map(|v| fraction(v, *lo, *hi)),
            Scale::Log(lo, hi) => value
                .parse::<f64>()
                .ok()
                .filter(|v| *v > 0.0 && v.is_finite())
                .map(|v| fraction(v.log10(), lo.log10(), hi.log10())),
            Scale::Values(all) => {
                let i = all.iter().position(|v| v == value)?;
                Some(if all.len() > 1 {
                    i as f64 / (all.len() - 1) as f64
                } else {
                    0.5
                })
            }
        }
    }

    /// Tick marks: (fraction up the axis, text).
    fn ticks(&self) -> Vec<(f64, String)> {
        match &self.scale {
            Scale::Linear(lo, hi) if hi > lo => {
                let t = ticks(*lo, *hi, 4);
                let l = labels(&t);
                t.iter()
                    .zip(l)
                    .filter_map(|(t, l)| Some((self.place(&t.to_string())?, l)))
                    .collect()
            }
            Scale::Linear(lo, _) => vec![(0.5, short(*lo))],
            Scale::Log(lo, hi) => {
                let (a, b) = (lo.log10(), hi.log10());
                // About six ticks, whatever the decades spanned.
                let every = ((b - a) / 6.0).ceil().max(1.0);
                let mut out = Vec::new();
                let mut e = (a / every).ceil() * every;
                while e <= b && out.len() < 20 {
                    out.push(((e - a) / (b - a), short(10f64.powf(e))));
                    e += every;
                }
                out
            }
            Scale::Values(all) => {
                // At most 12 labelled: every k-th.
                let every = all.len().div_ceil(12).max(1);
                all.iter()
                    .enumerate()
                    .filter(|(i, _)| i % every == 0)
                    .map(|(i, v)| {
                        let f = if all.len() > 1 {
                            i as f64 / (all.len() - 1) as f64
                        } else {
                            0.5
                        };
                        (f, v.chars().take(14).collect())
                    })
                    .collect()
            }
        }
    }

    fn kind(&self) -> &'static str {
        match self.scale {
            Scale::Linear(..) => "linear",
            Scale::Log(..) => "log",
            Scale::Values(_) => "values",
        }
    }
}

const TOP: f64 = 36.0;
const BOTTOM: f64 = 40.0;
const SIDE: f64 = 70.0;

/// A colour from blue (0) through to red (1).
fn colour(f: f64) -> String {
    if !f.is_finite() {
        return "#9aa4ae".to_string();
    }
    let f = f.clamp(0.0, 1.0);
    let (r, g, b) = (
        (31.0 + f * (214.0 - 31.0)) as u8,
        (119.0 - f * (119.0 - 39.0)) as u8,
        (180.0 - f * (180.0 - 40.0)) as u8,
    );
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// The SVG of `runs` on `axes` (the metric's last), `width` × `height` pixels.
pub fn render(runs: &[Arc<Summary>], axes: &[Axis], width: u32, height: u32) -> String {
    let (w, h) = (f64::from(width.max(300)), f64::from(height.max(200)));
    let n = axes.len().max(1);
    let step = if n > 1 {
        (w - 2.0 * SIDE) / (n - 1) as f64
    } else {
        0.0
    };
    let x_of = |i: usize| {
        if n > 1 {
            SIDE + i as f64 * step
        } else {
            w / 2.0
        }
    };
    let plot = h - TOP - BOTTOM;
    let y_of = |f: f64| TOP + (1.0 - f) * plot;
    let missing_y = h - BOTTOM + 14.0;
    let mut svg = String::with_capacity(512 + runs.len() * n * 14);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="parallel-svg chart-svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="parallel coordinates of {} runs" data-top="{TOP}" data-plot="{plot}"><title>parallel coordinates of {} runs</title>"#,
        runs.len(),
        runs.len()
    );
    let metric_axis = axes.iter().find(|a| a.metric);
    // Lines first, under the axes.
    svg.push_str(r#"<g class="runs">"#);
    for r in runs {
        let c = metric_axis
            .and_then(|a| value_of(r, &a.name, true).and_then(|v| a.place(&v)))
            .map_or_else(|| "#9aa4ae".to_string(), colour);
        let _ = write!(
            svg,
            r#"<polyline class="run" data-id="{}" stroke="{c}" points=""#,
            escape(&r.id)
        );
        for (i, a) in axes.iter().enumerate() {
            let y = value_of(r, &a.name, a.metric)
                .and_then(|v| a.place(&v))
                .filter(|f| f.is_finite())
                .map_or(missing_y, y_of);
            if i > 0 {
                svg.push(' ');
            }
            let _ = write!(svg, "{:.1},{:.1}", x_of(i), y);
        }
        svg.push_str(r#""/>"#);
    }
    svg.push_str("</g>");
    for (i, a) in axes.iter().enumerate() {
        let x = x_of(i);
        let _ = write!(
            svg,
            r#"<g class="axis{}" data-axis="{}" data-kind="{}" data-x="{x:.1}"><line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}"/>"#,
            if a.metric { " metric" } else { "" },
            escape(&a.name),
            a.kind(),
            TOP + plot
        );
        for (f, text) in a.ticks() {
            let y = y_of(f);
            let _ = write!(
                svg,
                r#"<line class="tick-mark" x1="{:.1}" x2="{x:.1}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                x - 4.0,
                x - 6.0,
                y + 4.0,
                escape(&text)
            );
        }
        let name: String = a.name.chars().take(24).collect();
        let _ = write!(
            svg,
            r#"<text class="axis-title" x="{x:.1}" y="{:.1}" text-anchor="middle">{}{}</text><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">–</text><rect class="brush-area" x="{:.1}" y="{TOP}" width="24" height="{plot:.1}"/></g>"#,
            TOP - 14.0,
            escape(&name),
            if matches!(a.scale, Scale::Log(..)) {
                " (log)"
            } else {
                ""
            },
            missing_y + 4.0,
            x - 12.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::{Record, RunKind};

    fn run(id: &str, lr: &str, opt: Option<&str>, loss: f64) -> Arc<Summary> {
        let mut r = Record::new("x", RunKind::Train, 0);
        r.id = id.into();
        let mut s = crate::ui::index::tests::summary(r);
        s.hyper.insert("lr".into(), lr.into());
        if let Some(o) = opt {
            s.hyper.insert("optimizer".into(), o.into());
        }
        s.hyper.insert("epochs".into(), "3".into());
        s.metrics.insert("loss".into(), loss);
        Arc::new(s)
    }

    #[test]
    fn axes_are_the_differing_hyperparameters_and_the_metric() {
        let runs = vec![
            run("a", "0.0001", Some("sgd"), 1.0),
            run("b", "0.01", Some("adamw"), 0.5),
            run("c", "0.001", None, 0.25),
        ];
        let a = axes(&runs, "loss");
        let names: Vec<&str> = a.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            ["lr", "optimizer", "loss"],
            "epochs is the same everywhere"
        );
        assert_eq!(a[0].scale, Scale::Log(0.0001, 0.01), "two decades: log");
        assert_eq!(
            a[1].scale,
            Scale::Values(vec!["adamw".into(), "sgd".into()])
        );
        assert_eq!(a[2].scale, Scale::Linear(0.25, 1.0));
        assert_eq!(a[0].place("0.001"), Some(0.5));
        assert_eq!(a[1].place("sgd"), Some(1.0));
        let svg = render(&runs, &a, 800, 400);
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains(r#"data-axis="lr" data-kind="log""#), "{svg}");
        assert!(svg.contains(">lr (log)</text>"));
        // c has no optimizer: it crosses that axis at the mark below it.
        let c = svg.split(r#"data-id="c""#).nth(1).unwrap();
        assert!(c.contains(&format!(",{:.1}", 400.0 - BOTTOM + 14.0)), "{c}");
    }
}
