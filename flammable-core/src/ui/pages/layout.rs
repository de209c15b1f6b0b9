//! What every page shares: the frame (head, assets, header), the error page, links, and how
//! numbers, times, sizes, statuses and charts are shown.

use super::super::asset;
use super::super::files::url_path;
use super::super::index::Summary;
use super::super::state::AppState;
use crate::store::record::RunStatus;
use crate::web::AppError;
use maud::{html, Markup, DOCTYPE};

/// A page: `body` in the frame, titled `title`, for the store at `store`.
pub fn layout(title: &str, store: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Flammable" }
                link rel="stylesheet" href=(asset::url("app.css"));
                link rel="stylesheet" href=(asset::url("chart.css"));
                link rel="stylesheet" href=(asset::url("highlight.css"));
                script src=(asset::url("app.js")) defer {}
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

/// The store's folder, as the header shows it.
pub fn store_text(s: &AppState) -> String {
    s.store().root().display().to_string()
}

/// A failure as a page.
pub fn error_page(store: &str, error: &AppError) -> Markup {
    let status = error.status;
    layout(
        "Error",
        store,
        html! {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
            p.error { (error.message) }
            p { a href="/" { "All runs" } }
        },
    )
}

/// The page of run `id`.
pub fn run_href(id: &str) -> String {
    format!("/run/{}", url_path(id.as_bytes()))
}

/// The page of file `path` of run `id`'s snapshot (`raw`: the file itself, as text).
pub fn code_href(id: &str, path: &str, raw: bool) -> String {
    let (id, path) = (url_path(id.as_bytes()), url_path(path.as_bytes()));
    if raw {
        format!("/api/runs/{id}/code/{path}")
    } else {
        format!("/run/{id}/code/{path}")
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
pub fn when(rfc3339: &str) -> String {
    rfc3339
        .get(..16)
        .map(|s| s.replace('T', " "))
        .unwrap_or_else(|| rfc3339.to_string())
}

/// A size in bytes, as `12 B`, `3.4 KiB`, `5.6 MiB` or `7.8 GiB`.
pub fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// A commit's first ten digits.
pub fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

/// A run's status, coloured.
pub fn status_badge(status: RunStatus) -> Markup {
    html! { span class={ "status " (status) } { (status) } }
}

/// Where a running run is: `step 120 · epoch 3/10 · ETA 1m 05s`.
pub fn progress_text(r: &Summary) -> String {
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
        assert_eq!(bytes(3 << 20), "3.0 MiB");
    }

    #[test]
    fn links_encode_what_a_url_would_misread() {
        assert_eq!(
            code_href("r1", "src/a#b?c%d e.rs", false),
            "/run/r1/code/src/a%23b%3Fc%25d%20e.rs"
        );
        assert_eq!(code_href("r1", "x.rs", true), "/api/runs/r1/code/x.rs");
    }
}
