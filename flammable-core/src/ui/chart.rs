//! Line charts drawn on the server as SVG: axes with round ticks labelled alike and titled
//! (the step, epoch or time across, the metric up, linear or log), one polyline per series
//! (broken where a value is not finite, or not positive on a log scale). Each line carries
//! its points' x and values as data attributes and the plot its scales, for the page's hover
//! and zoom script.

use std::fmt::Write as _;

/// One line of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// What the legend and the hover call it.
    pub label: String,
    /// Its colour: class `c{n % 10}` of the style sheet.
    pub colour: usize,
    /// The x values (steps, epochs or seconds, as the chart's [`XAxis`] says), increasing.
    pub xs: Vec<f64>,
    /// The y values.
    pub values: Vec<f64>,
    /// Drawn faint, behind the others, and left out of the hover: the raw line behind a
    /// smoothed one.
    pub faint: bool,
    /// The band around it (a group's spread), drawn underneath.
    pub band: Option<Band>,
}

/// A shaded band between two lines of (x, value) points, each in x order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Band {
    /// Its upper edge.
    pub upper: Vec<(f64, f64)>,
    /// Its lower edge.
    pub lower: Vec<(f64, f64)>,
}

/// What a chart's x axis shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XAxis {
    /// The training step.
    #[default]
    Step,
    /// The epoch, with how far into it.
    Epoch,
    /// Seconds since the run started (labelled in s, min, h or days).
    Time,
    /// Seconds since the Unix epoch (labelled as UTC clock time or date).
    Wall,
}

/// A chart's axes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Axes {
    /// Across.
    pub x: XAxis,
    /// Up on a log scale (values that are not positive are not drawn).
    pub log_y: bool,
}

/// Size of a chart in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

const LEFT: f64 = 70.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 40.0;

/// Escapes text for XML content and attribute values (maud's escaper, as the pages use);
/// control characters, which XML does not allow, become U+FFFD.
pub fn escape(text: &str) -> String {
    let bad = |c: char| c.is_control() && !matches!(c, '\t' | '\n' | '\r');
    let clean: std::borrow::Cow<str> = if text.chars().any(bad) {
        text.chars()
            .map(|c| if bad(c) { '\u{FFFD}' } else { c })
            .collect::<String>()
            .into()
    } else {
        text.into()
    };
    let mut out = String::with_capacity(clean.len());
    let _ = maud::Escaper::new(&mut out).write_str(&clean);
    out
}

/// The SVG of `lines` (named `title`: the y axis's title, and the name screen readers read)
/// over the x range `x_range` (all points when `None`), on `axes`.
pub fn render(
    title: &str,
    lines: &[Line],
    size: Size,
    x_range: Option<(f64, f64)>,
    axes: Axes,
) -> String {
    let (w, h) = (
        f64::from(size.width.max(120)),
        f64::from(size.height.max(80)),
    );
    let (pw, ph) = (w - LEFT - RIGHT, h - TOP - BOTTOM);
    // What is plotted up: the value, or its logarithm (not finite where it cannot be drawn).
    let up = |v: f64| if axes.log_y { v.log10() } else { v };
    // Every point drawn, bands' edges included: the axes hold them all.
    let all: Vec<(f64, f64)> = lines
        .iter()
        .flat_map(|l| {
            let edges = l.band.iter().flat_map(|b| b.upper.iter().chain(&b.lower));
            l.xs.iter()
                .zip(&l.values)
                .map(|(x, v)| (*x, *v))
                .chain(edges.copied())
        })
        .map(|(x, v)| (x, up(v)))
        .filter(|(x, v)| v.is_finite() && x.is_finite())
        .collect();
    let mut svg = String::with_capacity(256 + all.len() * 28);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{}""#,
        escape(title)
    );
    if all.is_empty() {
        let why = if axes.log_y && lines.iter().any(|l| !l.values.is_empty()) {
            "no positive values for a log scale"
        } else {
            "no points"
        };
        let _ = write!(
            svg,
            r#"><text class="empty" x="{}" y="{}" text-anchor="middle">{why}</text></svg>"#,
            w / 2.0,
            h / 2.0
        );
        return svg;
    }
    let lo = all.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let hi = all.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    // A zoom's open side reaches as far as the points do.
    let (x0, x1) = match x_range {
        Some((a, b)) if b > a => (
            if a.is_finite() { a } else { lo },
            if b.is_finite() { b } else { hi },
        ),
        _ => (lo, hi),
    };
    let (x0, x1) = if x1 > x0 {
        (x0, x1)
    } else {
        (x0 - 1.0, x0 + 1.0)
    };
    let shown: Vec<f64> = all
        .iter()
        .filter(|p| p.0 >= x0 && p.0 <= x1)
        .map(|p| p.1)
        .collect();
    let (mut y0, mut y1) = shown
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if !y0.is_finite() {
        (y0, y1) = (0.0, 1.0);
    }
    if y1 / 2.0 - y0 / 2.0 < f64::EPSILON * y0.abs().max(1.0) {
        let pad = if axes.log_y {
            0.5
        } else if y0 == 0.0 {
            1.0
        } else {
            y0.abs() * 0.1
        };
        (y0, y1) = (y0 - pad, y1 + pad);
    } else {
        let pad = (y1 / 2.0 - y0 / 2.0) * 0.1;
        (y0, y1) = ((y0 - pad).max(-f64::MAX), (y1 + pad).min(f64::MAX));
    }
    // Halves: the span of values near ±f64::MAX would overflow.
    let px = |x: f64| LEFT + (x / 2.0 - x0 / 2.0) / (x1 / 2.0 - x0 / 2.0) * pw;
    let py = |v: f64| TOP + (y1 / 2.0 - v / 2.0) / (y1 / 2.0 - y0 / 2.0) * ph;
    let _ = write!(
        svg,
        r#" data-x0="{x0}" data-x1="{x1}" data-y0="{y0}" data-y1="{y1}" data-left="{LEFT}" data-top="{TOP}" data-w="{pw}" data-h="{ph}" data-x="{}"{}><title>{}</title>"#,
        x_kind(axes.x),
        if axes.log_y { r#" data-log="1""# } else { "" },
        escape(title)
    );
    // Axes and grid.
    let _ = write!(
        svg,
        r#"<rect class="plot" x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}"/>"#
    );
    let (y_ticks, y_labels) = if axes.log_y {
        log_ticks(y0, y1)
    } else {
        let t = ticks(y0, y1, 5);
        let l = labels(&t);
        (t, l)
    };
    for (t, text) in y_ticks.iter().zip(y_labels) {
        let y = py(*t);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{}" y="{:.1}" text-anchor="end">{text}</text>"#,
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0,
        );
    }
    let (x_ticks, x_labels, x_title) = x_axis(axes.x, x0, x1);
    for (t, text) in x_ticks.iter().zip(x_labels) {
        let x = px(*t);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}"/><text class="tick" x="{x:.1}" y="{}" text-anchor="middle">{text}</text>"#,
            TOP + ph,
            TOP + ph + 16.0,
        );
    }
    let _ = write!(
        svg,
        r#"<text class="axis-title" x="{:.1}" y="{:.1}" text-anchor="middle">{x_title}</text><text class="axis-title" transform="rotate(-90)" x="{:.1}" y="13" text-anchor="middle">{}</text>"#,
        LEFT + pw / 2.0,
        h - 6.0,
        -(TOP + ph / 2.0),
        escape(title)
    );
    // Ids are unique across the page's charts.
    static CLIPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let clip = CLIPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _ = write!(
        svg,
        r#"<clipPath id="clip{clip}"><rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}"/></clipPath><g clip-path="url(#clip{clip})">"#
    );
    // Bands first, then faint lines: underneath.
    for (line, band) in lines.iter().filter_map(|l| Some((l, l.band.as_ref()?))) {
        // On a log scale a lower edge at or below zero runs along the bottom of the plot.
        let lower = band.lower.iter().rev().map(|(x, v)| {
            let y = up(*v);
            (*x, if y.is_finite() { y } else { y0 })
        });
        let edge: Vec<(f64, f64)> = band
            .upper
            .iter()
            .map(|(x, v)| (*x, up(*v)))
            .chain(lower)
            .filter(|(x, v)| x.is_finite() && v.is_finite())
            .collect();
        if edge.len() < 3 {
            continue;
        }
        let _ = write!(svg, r#"<path class="band c{}" d=""#, line.colour % 10);
        for (i, (x, v)) in edge.iter().enumerate() {
            let _ = write!(
                svg,
                "{}{:.1},{:.1}",
                if i == 0 { 'M' } else { 'L' },
                px(*x),
                py(*v)
            );
        }
        svg.push_str(r#"Z"/>"#);
    }
    let ordered = lines
        .iter()
        .filter(|l| l.faint)
        .chain(lines.iter().filter(|l| !l.faint));
    for line in ordered {
        let class = if line.faint { "raw" } else { "line" };
        let _ = write!(
            svg,
            r#"<g class="{class} c{}" data-label="{}""#,
            line.colour % 10,
            escape(&line.label)
        );
        let points: Vec<(f64, f64)> = line
            .xs
            .iter()
            .zip(&line.values)
            .map(|(x, v)| (*x, *v))
            .collect();
        if !line.faint {
            svg.push_str(r#" data-steps=""#);
            // Every digit of x: steps past ten million and clock times need them all.
            join(&mut svg, points.iter().map(|p| exact(p.0)));
            svg.push_str(r#"" data-values=""#);
            join(&mut svg, points.iter().map(|p| short(p.1)));
            svg.push('"');
        }
        svg.push('>');
        // One polyline per run of drawable values.
        for segment in points.split(|p| !up(p.1).is_finite() || !p.0.is_finite()) {
            if segment.is_empty() {
                continue;
            }
            svg.push_str(r#"<polyline points=""#);
            for (i, (x, v)) in segment.iter().enumerate() {
                if i > 0 {
                    svg.push(' ');
                }
                let _ = write!(svg, "{:.1},{:.1}", px(*x), py(up(*v)));
            }
            svg.push_str(r#""/>"#);
            if segment.len() == 1 {
                let (x, v) = segment[0];
                let _ = write!(
                    svg,
                    r#"<circle r="2.5" cx="{:.1}" cy="{:.1}"/>"#,
                    px(x),
                    py(up(v))
                );
            }
        }
        svg.push_str("</g>");
    }
    svg.push_str("</g></svg>");
    svg
}

/// `svg` (a chart [`render`] drew) as a file of its own: with the style sheet `css` inside
/// it, so that it looks as on the page wherever it is opened, and, when there are several
/// lines, a legend of their colours and names (`legend`) under the plot.
pub fn standalone(svg: &str, css: &str, legend: &[(usize, String)]) -> String {
    let Some(end) = svg.find('>') else {
        return svg.to_string();
    };
    let (head, rest) = (&svg[..end], &svg[end + 1..]);
    // The size, as render wrote it: `viewBox="0 0 W H" width="W" height="H"`.
    let number = |key: &str| -> Option<f64> {
        let at = head.find(key)? + key.len();
        head[at..].split('"').next()?.parse().ok()
    };
    let (Some(w), Some(h)) = (number(r#" width=""#), number(r#" height=""#)) else {
        return format!("{head}><style>{css}</style>{rest}");
    };
    if legend.len() < 2 {
        return format!("{head}><style>{css}</style>{rest}");
    }
    let row = 16.0;
    let extra = row * legend.len() as f64 + 8.0;
    let head = head
        .replace(
            &format!(r#"viewBox="0 0 {w} {h}""#),
            &format!(r#"viewBox="0 0 {w} {}""#, h + extra),
        )
        .replace(
            &format!(r#" height="{h}""#),
            &format!(r#" height="{}""#, h + extra),
        );
    let mut out = format!("{head}><style>{css}</style>");
    out.push_str(rest.strip_suffix("</svg>").unwrap_or(rest));
    for (i, (colour, label)) in legend.iter().enumerate() {
        let y = h + 4.0 + row * i as f64;
        let _ = write!(
            out,
            r#"<g class="line c{}"><polyline points="{LEFT},{:.1} {},{:.1}"/></g><text class="tick" x="{}" y="{:.1}">{}</text>"#,
            colour % 10,
            y + row / 2.0,
            LEFT + 20.0,
            y + row / 2.0,
            LEFT + 26.0,
            y + row / 2.0 + 4.0,
            escape(label)
        );
    }
    out.push_str("</svg>");
    out
}

/// The `data-x` of a chart: what its script shows the x as.
fn x_kind(x: XAxis) -> &'static str {
    match x {
        XAxis::Step => "step",
        XAxis::Epoch => "epoch",
        XAxis::Time => "time",
        XAxis::Wall => "wall",
    }
}

/// A time span's unit: seconds per unit and its name, for ticks a reader counts in.
fn time_unit(span: f64) -> (f64, &'static str) {
    if span < 180.0 {
        (1.0, "s")
    } else if span < 3.0 * 3600.0 {
        (60.0, "min")
    } else if span < 3.0 * 86400.0 {
        (3600.0, "h")
    } else {
        (86400.0, "days")
    }
}

/// The x axis's ticks, their texts and its title.
fn x_axis(kind: XAxis, x0: f64, x1: f64) -> (Vec<f64>, Vec<String>, String) {
    match kind {
        XAxis::Step | XAxis::Epoch => {
            let mut t = ticks(x0, x1, 6);
            // Steps are whole numbers: so are their ticks.
            if kind == XAxis::Step {
                t.retain(|t| t.fract() == 0.0);
            }
            let l = labels(&t);
            (t, l, x_kind(kind).to_string())
        }
        XAxis::Time => {
            let (unit, name) = time_unit(x1 - x0);
            let t = ticks(x0 / unit, x1 / unit, 6);
            let l = labels(&t);
            (
                t.iter().map(|t| t * unit).collect(),
                l,
                format!("time ({name})"),
            )
        }
        XAxis::Wall => {
            let (unit, _) = time_unit(x1 - x0);
            let t: Vec<f64> = ticks(x0 / unit, x1 / unit, 5)
                .iter()
                .map(|t| t * unit)
                .collect();
            // The labels say as much as the ticks' spacing needs.
            let spacing = match t.as_slice() {
                [a, b, ..] => b - a,
                _ => unit,
            };
            let l = t.iter().map(|&t| clock(t, spacing.min(unit))).collect();
            (t, l, "wall-clock time (UTC)".to_string())
        }
    }
}

/// Unix time `t` as UTC clock time: `HH:MM:SS` when ticks are seconds apart, `HH:MM` when
/// minutes or hours, `MM-DD` when days.
fn clock(t: f64, unit: f64) -> String {
    if !t.is_finite() {
        return String::new();
    }
    let Some(when) =
        std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs_f64(t.clamp(0.0, 1e11)))
    else {
        return String::new();
    };
    // 2026-12-06T10:22:19Z
    let text = humantime::format_rfc3339_seconds(when).to_string();
    let (date, time) = (text.get(5..10), text.get(11..19));
    match unit {
        // Ticks less than a second apart: tenths or hundredths.
        u if u < 1.0 => {
            let decimals = (-u.log10()).ceil().max(1.0) as usize;
            let fraction = format!("{:.decimals$}", t.fract());
            format!(
                "{}{}",
                time.unwrap_or_default(),
                fraction.trim_start_matches('0')
            )
        }
        u if u < 60.0 => time.unwrap_or_default().to_string(),
        u if u < 86400.0 => time
            .and_then(|t| t.get(..5))
            .unwrap_or_default()
            .to_string(),
        _ => date.unwrap_or_default().to_string(),
    }
}

/// Ticks of a log axis from `lo` to `hi` (base-10 logarithms) and their texts: powers of ten
/// when the range spans a decade or more, else round values within it.
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<String>) {
    if hi - lo >= 1.0 {
        let every = ((hi - lo) / 6.0).ceil().max(1.0);
        let mut e = (lo / every).ceil() * every;
        let (mut t, mut l) = (Vec::new(), Vec::new());
        while e <= hi && t.len() < 50 {
            t.push(e);
            l.push(if (-4.0..=5.0).contains(&e) {
                short(10f64.powf(e))
            } else {
                format!("1e{e}")
            });
            e += every;
        }
        return (t, l);
    }
    let mut values = ticks(10f64.powf(lo), 10f64.powf(hi), 4);
    values.retain(|v| *v > 0.0);
    let texts = labels(&values);
    (values.iter().map(|v| v.log10()).collect(), texts)
}

fn join(out: &mut String, items: impl Iterator<Item = String>) {
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&s);
    }
}

/// `v` as the shortest text that reads back as `v` (`NaN`, `Infinity` as JavaScript reads
/// them).
fn exact(v: f64) -> String {
    if v.is_finite() {
        v.to_string()
    } else {
        short(v)
    }
}

/// A value with 7 significant digits, as short as that allows.
pub fn short(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "NaN".into()
        } else if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let s = format!("{v:.6e}");
    // `1.500000e-9` as `1.5e-9`.
    let s = match s.split_once('e') {
        Some((m, e)) if m.contains('.') => {
            format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'))
        }
        _ => s,
    };
    match s.parse::<f64>() {
        Ok(r) => {
            let plain = r.to_string();
            if plain.len() <= s.len() {
                plain
            } else {
                s
            }
        }
        Err(_) => s,
    }
}

/// The distance between round ticks that cuts `lo`..`hi` into about `n` (1, 2 or 5 × 10^k).
fn tick_step(lo: f64, hi: f64, n: usize) -> f64 {
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

/// About `n` round tick values between `lo` and `hi` (steps of 1, 2 or 5 × 10^k).
pub fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater)
        || !lo.is_finite()
        || !hi.is_finite()
    {
        return Vec::new();
    }
    let step = tick_step(lo, hi, n);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 && out.len() < 50 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

/// The texts of an axis's `ticks` (evenly spaced, increasing), all in one format and with as
/// many decimals as their spacing needs, so that no two read the same: `0, 20k, 40k`;
/// `0.00095, 0.00100, 0.00105`; `2e-5, 3e-5`; `1.5M, 2.0M`.
pub fn labels(ticks: &[f64]) -> Vec<String> {
    let step = match ticks {
        [a, b, ..] => b - a,
        _ => 0.0,
    };
    let largest = ticks.iter().fold(0f64, |m, t| m.max(t.abs()));
    // The decimal place of the spacing: labels need its digit and none after.
    let place = |step: f64| -> i32 {
        if step > 0.0 {
            (step.log10() + 1e-9).floor() as i32
        } else {
            0
        }
    };
    let fixed = |scale: f64, suffix: &str| -> Vec<String> {
        let decimals = (-place(step / scale)).max(0) as usize;
        ticks
            .iter()
            .map(|t| {
                // Zero (and `-0.0`) reads as zero; with a unit, as a bare `0`.
                if (t / scale).abs() * 10f64.powi(decimals as i32) < 0.5 {
                    if suffix.is_empty() {
                        format!("{:.decimals$}", 0.0)
                    } else {
                        "0".to_string()
                    }
                } else {
                    format!("{:.decimals$}{suffix}", t / scale)
                }
            })
            .collect()
    };
    if largest == 0.0 {
        return fixed(1.0, "");
    }
    if !(1e-3..1e9).contains(&largest) {
        let exponent = (largest.log10() + 1e-9).floor() as i32;
        let decimals = (exponent - place(step)).max(0) as usize;
        let scale = 10f64.powi(exponent);
        return ticks
            .iter()
            .map(|t| {
                if t.abs() < step * 1e-6 {
                    "0".to_string()
                } else {
                    format!("{:.decimals$}e{exponent}", t / scale)
                }
            })
            .collect();
    }
    if largest >= 1e6 {
        fixed(1e6, "M")
    } else if largest >= 1e4 {
        fixed(1e3, "k")
    } else {
        fixed(1.0, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            ticks(0.0, 1.0, 5),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(
            ticks(0.0, 100_000.0, 5),
            vec![0.0, 20_000.0, 40_000.0, 60_000.0, 80_000.0, 100_000.0]
        );
        assert!(ticks(1.0, 1.0, 5).is_empty());
        assert_eq!(
            labels(&ticks(0.0, 100_000.0, 6)),
            ["0", "20k", "40k", "60k", "80k", "100k"]
        );
        assert_eq!(
            labels(&ticks(0.0, 1.0, 5)),
            ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
        );
        assert_eq!(labels(&[2e-5, 3e-5, 4e-5]), ["2e-5", "3e-5", "4e-5"]);
        assert_eq!(
            labels(&ticks(1e6, 3e6, 4)),
            ["1.0M", "1.5M", "2.0M", "2.5M", "3.0M"]
        );
        assert_eq!(labels(&ticks(-1.0, 1.0, 2)), ["-1", "0", "1"]);
    }

    #[test]
    fn a_flat_series_reads_one_way_on_its_axis() {
        // Flat at 0.001 (padded by 10 %), and at other scales: every label differs from the
        // others and all are written alike.
        for flat in [0.001, 1e-7, 0.5, 42.0, 123_456.0, 5e9] {
            let t = ticks(flat * 0.9, flat * 1.1, 5);
            let l = labels(&t);
            let distinct: std::collections::BTreeSet<&String> = l.iter().collect();
            assert_eq!(distinct.len(), l.len(), "{flat}: {l:?}");
            let shape = |s: &str| (s.contains('e'), s.split(['.', 'e']).nth(1).map(str::len));
            assert!(l.iter().all(|s| shape(s) == shape(&l[0])), "{flat}: {l:?}");
        }
        assert_eq!(
            labels(&[0.0009, 0.00095, 0.001, 0.00105, 0.0011]),
            ["0.00090", "0.00095", "0.00100", "0.00105", "0.00110"]
        );
    }

    #[test]
    fn draws_every_point_and_escapes_labels() {
        let line = Line {
            label: "<run> & \"co\"".into(),
            colour: 13,
            xs: vec![1.0, 2.0, 3.0, 4.0],
            faint: false,
            band: None,
            values: vec![1.0, 0.5, f64::NAN, 0.25],
        };
        let svg = render(
            "loss",
            &[line],
            Size {
                width: 400,
                height: 200,
            },
            None,
            Axes::default(),
        );
        assert!(svg.starts_with("<svg"));
        // Axis titles: steps across, the metric up.
        assert!(svg.contains(r#"text-anchor="middle">step</text>"#), "{svg}");
        assert!(
            svg.contains(r#"rotate(-90)"#) && svg.contains(">loss</text>"),
            "{svg}"
        );
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains(r#"data-label="&lt;run&gt; &amp; &quot;co&quot;""#));
        assert!(svg.contains(r#"class="line c3""#));
        assert!(svg.contains(r#"data-steps="1,2,3,4""#));
        assert!(svg.contains(r#"data-values="1,0.5,NaN,0.25""#));
        // The NaN breaks the line: two segments, the second a single point.
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 1);
        let hostile = render(
            "<script>alert(1)</script>",
            &[Line {
                label: "a".into(),
                colour: 0,
                xs: vec![1.0, 2.0],
                faint: false,
                band: None,
                values: vec![1.0, 2.0],
            }],
            Size {
                width: 400,
                height: 200,
            },
            None,
            Axes::default(),
        );
        assert!(!hostile.contains("<script>"), "{hostile}");
        assert_eq!(escape("a\u{1b}[31m<"), "a\u{FFFD}[31m&lt;");
        let empty = render(
            "x",
            &[],
            Size {
                width: 400,
                height: 200,
            },
            None,
            Axes::default(),
        );
        assert!(empty.contains("no points"));
    }

    #[test]
    fn short_values_keep_seven_digits() {
        assert_eq!(short(0.1), "0.1");
        assert_eq!(short(1.0 / 3.0), "0.3333333");
        assert_eq!(short(123456789.0), "123456800");
        assert_eq!(short(1.5e-9), "1.5e-9");
        assert_eq!(short(f64::NEG_INFINITY), "-Infinity");
    }
}
