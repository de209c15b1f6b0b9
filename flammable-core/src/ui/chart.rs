//! Line charts drawn on the server as SVG: axes with round ticks, one polyline per series
//! (broken where a value is not finite). Each line carries its points' steps and values as
//! data attributes and the plot its scales, for the page's hover and zoom script.

use std::fmt::Write as _;

/// One line of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// What the legend and the hover call it.
    pub label: String,
    /// Its colour: class `c{n % 10}` of the style sheet.
    pub colour: usize,
    /// The x values (training steps), increasing.
    pub steps: Vec<u64>,
    /// The y values.
    pub values: Vec<f64>,
}

/// Size of a chart in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

const LEFT: f64 = 64.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 26.0;

/// Escapes text for XML content and attribute values (maud's escaper, as the pages use).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let _ = maud::Escaper::new(&mut out).write_str(text);
    out
}

/// The SVG of `lines` (named `title` for screen readers) over the step range `x_range` (all
/// points when `None`).
pub fn render(title: &str, lines: &[Line], size: Size, x_range: Option<(u64, u64)>) -> String {
    let (w, h) = (
        f64::from(size.width.max(120)),
        f64::from(size.height.max(80)),
    );
    let (pw, ph) = (w - LEFT - RIGHT, h - TOP - BOTTOM);
    let finite = |l: &Line| -> Vec<(u64, f64)> {
        l.steps
            .iter()
            .zip(&l.values)
            .filter(|(_, v)| v.is_finite())
            .map(|(s, v)| (*s, *v))
            .collect::<Vec<_>>()
    };
    let all: Vec<(u64, f64)> = lines.iter().flat_map(finite).collect();
    let mut svg = String::with_capacity(256 + all.len() * 28);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{}""#,
        escape(title)
    );
    if all.is_empty() {
        let _ = write!(
            svg,
            r#"><text class="empty" x="{}" y="{}" text-anchor="middle">no points</text></svg>"#,
            w / 2.0,
            h / 2.0
        );
        return svg;
    }
    let (x0, x1) = match x_range {
        Some((a, b)) if b > a => (a as f64, b as f64),
        _ => {
            let lo = all.iter().map(|p| p.0).min().unwrap_or(0) as f64;
            let hi = all.iter().map(|p| p.0).max().unwrap_or(0) as f64;
            if hi > lo {
                (lo, hi)
            } else {
                (lo - 1.0, hi + 1.0)
            }
        }
    };
    let in_x = |s: u64| (s as f64) >= x0 && (s as f64) <= x1;
    let shown: Vec<f64> = all.iter().filter(|p| in_x(p.0)).map(|p| p.1).collect();
    let (mut y0, mut y1) = shown
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if !y0.is_finite() {
        (y0, y1) = (0.0, 1.0);
    }
    if y1 - y0 < f64::EPSILON * y0.abs().max(1.0) {
        let pad = if y0 == 0.0 { 1.0 } else { y0.abs() * 0.1 };
        (y0, y1) = (y0 - pad, y1 + pad);
    } else {
        let pad = (y1 - y0) * 0.05;
        (y0, y1) = (y0 - pad, y1 + pad);
    }
    let px = |s: f64| LEFT + (s - x0) / (x1 - x0) * pw;
    let py = |v: f64| TOP + (y1 - v) / (y1 - y0) * ph;
    let _ = write!(
        svg,
        r#" data-x0="{x0}" data-x1="{x1}" data-y0="{y0}" data-y1="{y1}" data-left="{LEFT}" data-top="{TOP}" data-w="{pw}" data-h="{ph}"><title>{}</title>"#,
        escape(title)
    );
    // Axes and grid.
    let _ = write!(
        svg,
        r#"<rect class="plot" x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}"/>"#
    );
    for t in ticks(y0, y1, 5) {
        let y = py(t);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0,
            label(t)
        );
    }
    for t in ticks(x0, x1, 6) {
        let x = px(t);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}"/><text class="tick" x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
            TOP + ph,
            TOP + ph + 16.0,
            label(t)
        );
    }
    // Ids are unique across the page's charts.
    static CLIPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let clip = CLIPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _ = write!(
        svg,
        r#"<clipPath id="clip{clip}"><rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}"/></clipPath><g clip-path="url(#clip{clip})">"#
    );
    for line in lines {
        let _ = write!(
            svg,
            r#"<g class="line c{}" data-label="{}" data-steps=""#,
            line.colour % 10,
            escape(&line.label)
        );
        let points: Vec<(u64, f64)> = line
            .steps
            .iter()
            .zip(&line.values)
            .map(|(s, v)| (*s, *v))
            .collect();
        join(&mut svg, points.iter().map(|p| p.0.to_string()));
        svg.push_str(r#"" data-values=""#);
        join(&mut svg, points.iter().map(|p| short(p.1)));
        svg.push_str(r#"">"#);
        // One polyline per run of finite values.
        for segment in points.split(|p| !p.1.is_finite()) {
            if segment.is_empty() {
                continue;
            }
            svg.push_str(r#"<polyline points=""#);
            for (i, (s, v)) in segment.iter().enumerate() {
                if i > 0 {
                    svg.push(' ');
                }
                let _ = write!(svg, "{:.1},{:.1}", px(*s as f64), py(*v));
            }
            svg.push_str(r#""/>"#);
            if segment.len() == 1 {
                let (s, v) = segment[0];
                let _ = write!(
                    svg,
                    r#"<circle r="2.5" cx="{:.1}" cy="{:.1}"/>"#,
                    px(s as f64),
                    py(v)
                );
            }
        }
        svg.push_str("</g>");
    }
    svg.push_str("</g></svg>");
    svg
}

fn join(out: &mut String, items: impl Iterator<Item = String>) {
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&s);
    }
}

/// A value with 7 significant digits, as short as that allows.
fn short(v: f64) -> String {
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

/// About `n` round tick values between `lo` and `hi` (steps of 1, 2 or 5 × 10^k).
pub fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater)
        || !lo.is_finite()
        || !hi.is_finite()
    {
        return Vec::new();
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 && out.len() < 50 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

/// A tick's text: `12k`, `1.5M`, `0.001`, `2e-5`.
pub fn label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else if a >= 1e-3 {
        trim(v)
    } else {
        format!("{v:.0e}")
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
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
        assert_eq!(label(20_000.0), "20k");
        assert_eq!(label(0.25), "0.25");
        assert_eq!(label(2e-5), "2e-5");
        assert_eq!(label(3_500_000.0), "3.5M");
    }

    #[test]
    fn draws_every_point_and_escapes_labels() {
        let line = Line {
            label: "<run> & \"co\"".into(),
            colour: 13,
            steps: vec![1, 2, 3, 4],
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
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains(r#"data-label="&lt;run&gt; &amp; &quot;co&quot;""#));
        assert!(svg.contains(r#"class="line c3""#));
        assert!(svg.contains(r#"data-steps="1,2,3,4""#));
        assert!(svg.contains(r#"data-values="1,0.5,NaN,0.25""#));
        // The NaN breaks the line: two segments, the second a single point.
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 1);
        let empty = render(
            "x",
            &[],
            Size {
                width: 400,
                height: 200,
            },
            None,
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
