//! The browser's style sheets and script, compiled into the binary and served under URLs
//! that carry their version (`/assets/app.js?v=…`): a page links the version it was made
//! with, which browsers may keep for a year, and a new build links a new one, so an upgrade
//! is never shown with the old script. A URL without the current version is answered
//! uncached.

use super::api::blocking;
use super::params::Params;
use super::state::AppState;
use crate::web::AppError;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use std::hash::{Hash as _, Hasher as _};
use std::sync::{Arc, OnceLock};

const APP_CSS: &str = include_str!("assets/app.css");
const APP_JS: &str = include_str!("assets/app.js");
/// The charts' rules, also embedded in a chart downloaded as SVG.
pub const CHART_CSS: &str = include_str!("assets/chart.css");

/// The version of the assets: a hash of the files and of the crate's version (which stands
/// for the highlighting's sheet, made at run time by the syntect this build has).
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        // FNV-1a: the same bytes give the same version in every build and process.
        let mut hash = Fnv(0xcbf2_9ce4_8422_2325);
        (APP_CSS, APP_JS, CHART_CSS, env!("CARGO_PKG_VERSION")).hash(&mut hash);
        format!("{:012x}", hash.finish() & 0xffff_ffff_ffff)
    })
}

struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

/// The URL of asset `name` at this version.
pub fn url(name: &str) -> String {
    format!("/assets/{name}?v={}", version())
}

/// `?v=`: the version a page asked for.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct AssetQuery {
    v: String,
}

/// `GET /assets/{name}?v=VERSION`: the style sheets and the script.
pub async fn serve(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Params(query): Params<AssetQuery>,
) -> Result<impl IntoResponse, AppError> {
    let (kind, body) = match name.as_str() {
        "app.css" => ("text/css; charset=utf-8", APP_CSS.to_string()),
        "app.js" => ("text/javascript; charset=utf-8", APP_JS.to_string()),
        "chart.css" => ("text/css; charset=utf-8", CHART_CSS.to_string()),
        "highlight.css" => (
            "text/css; charset=utf-8",
            blocking(&state, |s| Ok(s.highlighter().css().to_string())).await?,
        ),
        _ => return Err(AppError::not_found(format!("no asset `{name}`"))),
    };
    let cache = if query.v == version() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Ok((
        [(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, cache)],
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_names_these_files() {
        assert_eq!(version().len(), 12);
        assert_eq!(version(), version());
        assert_eq!(url("app.js"), format!("/assets/app.js?v={}", version()));
    }
}
