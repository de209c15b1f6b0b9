//! What a request's query string may hold, read by serde into a typed struct: [`Params`]
//! wraps axum's `Query`, so that a value that does not fit is a 400 whose JSON names the
//! parameter and says what it takes (`per_page: \`0\`: use a number from 1 to 1000`).
//!
//! Each value type reads its text with `FromStr` (through [`from_text`]), where its message
//! is written; an empty value is the same as an absent one.

use crate::web::AppError;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::Uri;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use std::fmt::Display;
use std::str::FromStr;

/// The query string as a `T` (absent fields take their defaults).
///
/// `runs` and `cols` may be repeated — the runs page's checkboxes send one `runs=ID` or
/// `cols=NAME` each — and their values are then read as one comma-separated list.
#[derive(Debug, Clone, Default)]
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        let joined = join_runs(parts.uri.query().unwrap_or(""));
        let uri: Uri = match joined {
            Some(query) => format!("/?{query}")
                .parse()
                .map_err(|e| AppError::bad(format!("cannot read the query string: {e}")))?,
            None => parts.uri.clone(),
        };
        let Query(value) = Query::<T>::try_from_uri(&uri).map_err(|rejection| {
            let text = rejection.body_text();
            // "Failed to deserialize query string: per_page: …": the part after the colon
            // names the parameter.
            let why = text
                .split_once(": ")
                .map_or(text.as_str(), |(_, why)| why)
                .to_string();
            AppError::bad(why)
        })?;
        Ok(Params(value))
    }
}

/// The parameters a form may repeat (the runs page's checkboxes send one `runs=ID` or
/// `cols=NAME` each), read as one comma-separated list.
const LISTS: [&str; 2] = ["runs", "cols"];

/// The query string with the values of each parameter of [`LISTS`] joined by commas, when one
/// is repeated.
fn join_runs(query: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let repeated = |key: &str| pairs.iter().filter(|(k, _)| k == key).count() >= 2;
    if !LISTS.iter().any(|k| repeated(k)) {
        return None;
    }
    let mut out = form_urlencoded::Serializer::new(String::new());
    for key in LISTS {
        let values: Vec<&str> = pairs
            .iter()
            .filter(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect();
        if !values.is_empty() {
            out.append_pair(key, &values.join(","));
        }
    }
    for (k, v) in pairs.iter().filter(|(k, _)| !LISTS.contains(&k.as_str())) {
        out.append_pair(k, v);
    }
    Some(out.finish())
}

/// Reads a query value through its type's `FromStr`, whose error becomes the 400's reason:
/// `#[serde(default, deserialize_with = "from_text")]`.
pub fn from_text<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// A whole number from `LO` to `HI`; `None` when absent or empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count<const LO: u64, const HI: u64>(pub Option<u64>);

impl<const LO: u64, const HI: u64> Count<LO, HI> {
    /// The number, or `default`.
    pub fn or(self, default: u64) -> u64 {
        self.0.unwrap_or(default)
    }
}

impl<const LO: u64, const HI: u64> FromStr for Count<LO, HI> {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Ok(Count(None));
        }
        text.parse::<u64>()
            .ok()
            .filter(|n| (LO..=HI).contains(n))
            .map(|n| Count(Some(n)))
            .ok_or_else(|| format!("`{text}`: use a number from {LO} to {HI}"))
    }
}

/// A training step, as a chart's zoom sends it (a number, rounded; below 0 is 0); `None`
/// when absent or empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Step(pub Option<u64>);

impl FromStr for Step {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Ok(Step(None));
        }
        text.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(|v| Step(Some(v.max(0.0).round() as u64)))
            .ok_or_else(|| format!("`{text}` is not a step"))
    }
}

/// The step range `from`..=`to` of two optional bounds (`None`: every step).
pub fn step_range(from: Step, to: Step) -> Option<(u64, u64)> {
    match (from.0, to.0) {
        (None, None) => None,
        (a, b) => Some((a.unwrap_or(0), b.unwrap_or(u64::MAX))),
    }
}

/// A bound of a chart's x range in its axis's unit (a step, an epoch, seconds), as a chart's
/// zoom sends it: a finite number; `None` when absent or empty.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct XBound(pub Option<f64>);

impl FromStr for XBound {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Ok(XBound(None));
        }
        text.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(|v| XBound(Some(v)))
            .ok_or_else(|| format!("`{text}` is not a finite number"))
    }
}

/// The x range `from`..=`to` of two optional bounds (`None`: all of it; an open side reaches
/// as far as the points do).
pub fn x_range(from: XBound, to: XBound) -> Option<(f64, f64)> {
    match (from.0, to.0) {
        (None, None) => None,
        (a, b) => Some((a.unwrap_or(f64::NEG_INFINITY), b.unwrap_or(f64::INFINITY))),
    }
}

/// A yes-or-no switch: `1`/`true`/`yes` or `0`/`false`/`no` (absent or empty: no).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flag(pub bool);

impl FromStr for Flag {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "" | "0" | "false" | "no" => Ok(Flag(false)),
            "1" | "true" | "yes" => Ok(Flag(true)),
            _ => Err(format!("`{text}`: use 1 or 0")),
        }
    }
}

/// Runs named by id or unique prefix, comma-separated, each once, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunList(pub Vec<String>);

impl FromStr for RunList {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut out: Vec<String> = Vec::new();
        for spec in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !out.iter().any(|o| o == spec) {
                out.push(spec.to_string());
            }
        }
        Ok(RunList(out))
    }
}

/// A text that must not be empty (a metric's name, a run): `None` when absent or empty, for
/// the handler to say what it wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Given(pub Option<String>);

impl FromStr for Given {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Given((!text.is_empty()).then(|| text.to_string())))
    }
}

impl Given {
    /// The text, or a 400 saying `why`.
    pub fn or_bad(self, why: &str) -> Result<String, AppError> {
        self.0.ok_or_else(|| AppError::bad(why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug, Default)]
    #[serde(default)]
    struct Q {
        #[serde(deserialize_with = "from_text")]
        per_page: Count<1, 1000>,
        #[serde(deserialize_with = "from_text")]
        from: Step,
        #[serde(deserialize_with = "from_text")]
        runs: RunList,
        q: String,
    }

    fn read(query: &str) -> Result<Q, AppError> {
        let mut parts = axum::http::Request::builder()
            .uri(format!("/x?{query}"))
            .body(())
            .map(|r| r.into_parts().0)
            .map_err(|e| AppError::bad(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| AppError::bad(e.to_string()))?;
        runtime
            .block_on(Params::<Q>::from_request_parts(&mut parts, &()))
            .map(|p| p.0)
    }

    #[test]
    fn values_are_typed_and_refusals_name_the_parameter() {
        let q = read("per_page=20&from=12.6&runs=a,b&runs=c&runs=a&q=lr%3D0.01+loss%3C1").unwrap();
        assert_eq!(q.per_page, Count(Some(20)));
        assert_eq!(q.from, Step(Some(13)));
        assert_eq!(q.runs, RunList(vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(q.q, "lr=0.01 loss<1");
        let empty = read("per_page=&from=").unwrap();
        assert_eq!((empty.per_page, empty.from), (Count(None), Step(None)));
        for (query, says) in [
            ("per_page=0", "per_page: `0`: use a number from 1 to 1000"),
            ("per_page=many", "per_page: `many`"),
            ("from=NaN", "from: `NaN` is not a step"),
        ] {
            let e = read(query).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(e.message.starts_with(says), "{query}: {}", e.message);
        }
        assert_eq!(
            step_range(Step(None), Step(Some(5))),
            Some((0, 5)),
            "an open start"
        );
    }
}
