//! The runs table's filter and sort, applied on the server (with the page, in
//! [`super::listing`]), so that a page over 10,000 runs sends 100 rows.
//!
//! A filter is words separated by spaces, all of which must hold:
//! - `experiment:NAME`, `status:running`, `kind:train`, `parent:ID`, `sweep:ID` (`exp:` for short),
//!   `tag:TAG`;
//! - `NAME=VALUE`, `NAME!=VALUE`, `NAME<VALUE`, `NAME<=VALUE`, `NAME>VALUE`, `NAME>=VALUE`:
//!   a final metric (`loss`, `val/accuracy`, `test/accuracy`) or else a hyperparameter
//!   (`lr`, `epochs`), compared as numbers when both sides are numbers;
//! - any other word: found in the message, note, id, experiment or a tag (case-insensitive);
//!   `"two words"` as one.

use super::index::Summary;
use crate::store::record::{RunKind, RunStatus};
use std::cmp::Ordering;
use std::collections::BTreeSet;

/// One condition of a filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Term {
    /// `experiment:NAME`.
    Experiment(String),
    /// `status:NAME`.
    Status(RunStatus),
    /// `kind:NAME`.
    Kind(RunKind),
    /// `parent:ID` (a prefix).
    Parent(String),
    /// `sweep:ID` (a prefix): the runs of a sweep.
    Sweep(String),
    /// `tag:TAG`: the runs with this tag.
    Tag(String),
    /// `NAME op VALUE` on a metric or a hyperparameter.
    Compare(String, Op, String),
    /// Text in the message, id or experiment (lowercase).
    Text(String),
}

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A parsed filter: every term must hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    /// The terms.
    pub terms: Vec<Term>,
}

impl Filter {
    /// Parses `text`; the error says which word is wrong and why.
    pub fn parse(text: &str) -> Result<Filter, String> {
        let mut terms = Vec::new();
        for word in words(text)? {
            terms.push(term(&word)?);
        }
        Ok(Filter { terms })
    }

    /// Refuses a comparison whose name no run has (a typo would silently match nothing).
    pub fn check_names(
        &self,
        metrics: &BTreeSet<String>,
        hyper: &BTreeSet<String>,
    ) -> Result<(), String> {
        for t in &self.terms {
            if let Term::Compare(name, _, _) = t {
                if !metrics.contains(name) && !hyper.contains(name) {
                    return Err(format!("no run has a metric or hyperparameter `{name}`"));
                }
            }
        }
        Ok(())
    }

    /// Refuses a `tag:` term whose tag no run has (a typo would silently match nothing).
    pub fn check_tags(&self, tags: &BTreeSet<String>) -> Result<(), String> {
        for t in &self.terms {
            if let Term::Tag(tag) = t {
                if !tags.contains(tag) {
                    return Err(format!("no run has the tag `{tag}`"));
                }
            }
        }
        Ok(())
    }

    /// A hint for a filter that kept no run, when one of its words looks like a field
    /// (`foo:bar`) that is not one and so was searched for as text (said by `export`).
    #[cfg_attr(not(feature = "export"), allow(dead_code))]
    pub fn hint_for_none_kept(&self) -> Option<String> {
        let looks_like_field = |text: &&String| {
            text.split_once(':').is_some_and(|(field, value)| {
                !field.is_empty()
                    && !value.is_empty()
                    && field.chars().all(|c| c.is_ascii_alphabetic() || c == '_')
            })
        };
        let words: Vec<String> = self
            .terms
            .iter()
            .filter_map(|t| match t {
                Term::Text(text) => Some(text),
                _ => None,
            })
            .filter(looks_like_field)
            .map(|w| format!("`{w}`"))
            .collect();
        (!words.is_empty()).then(|| {
            let fields: Vec<String> = KNOWN_FIELDS.iter().map(|f| format!("{f}:")).collect();
            format!(
                "{} was searched for as text: the fields are {}, and NAME=VALUE (or !=, <, <=, >, >=) compares a metric or hyperparameter",
                words.join(", "),
                fields.join(", ")
            )
        })
    }

    /// True when `run` meets every term.
    pub fn matches(&self, run: &Summary) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Experiment(e) => run.experiment == *e,
            Term::Status(s) => run.status == *s,
            Term::Kind(k) => run.kind == *k,
            Term::Parent(p) => run.parent.as_deref().is_some_and(|id| id.starts_with(p)),
            Term::Sweep(p) => run.sweep.as_deref().is_some_and(|id| id.starts_with(p)),
            Term::Tag(tag) => run.tags.contains(tag),
            Term::Text(text) => {
                contains_lower(&run.message, text)
                    || run.id.contains(text.as_str())
                    || contains_lower(&run.experiment, text)
                    || contains_lower(&run.note, text)
                    || run.tags.iter().any(|t| contains_lower(t, text))
            }
            Term::Compare(name, op, value) => compare(run, name, *op, value),
        })
    }
}

fn contains_lower(hay: &str, lower_needle: &str) -> bool {
    hay.to_lowercase().contains(lower_needle)
}

fn compare(run: &Summary, name: &str, op: Op, value: &str) -> bool {
    let ord = if let Some(m) = run.metrics.get(name) {
        match value.parse::<f64>() {
            Ok(v) => m.partial_cmp(&v),
            Err(_) => None,
        }
    } else if let Some(h) = run.hyper.get(name) {
        match (h.parse::<f64>(), value.parse::<f64>()) {
            (Ok(a), Ok(b)) => a.partial_cmp(&b),
            _ => Some(h.as_str().cmp(value)),
        }
    } else {
        None
    };
    let Some(ord) = ord else {
        return false;
    };
    match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        Op::Gt => ord == Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
    }
}

/// Splits on spaces, keeping `"quoted words"` (and `name="quoted value"`) together.
fn words(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if quoted {
        return Err("a quote is not closed".into());
    }
    if !word.is_empty() {
        out.push(word);
    }
    Ok(out)
}

/// The fields a `FIELD:VALUE` word may name.
const KNOWN_FIELDS: [&str; 7] = [
    "experiment",
    "exp",
    "status",
    "kind",
    "parent",
    "sweep",
    "tag",
];

fn term(word: &str) -> Result<Term, String> {
    // A tag first: it is one word, which an operator in it must not turn into a comparison.
    if let Some(tag) = word
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("tag:"))
        .and_then(|_| word.get(4..))
        .filter(|t| !t.is_empty())
    {
        crate::store::notes::check_tag(tag).map_err(|e| format!("`{word}`: {e}"))?;
        return Ok(Term::Tag(tag.to_string()));
    }
    // Comparisons first: a metric name may hold a `:`, never an operator.
    for (token, op) in [
        ("!=", Op::Ne),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("=", Op::Eq),
        ("<", Op::Lt),
        (">", Op::Gt),
    ] {
        if let Some((name, value)) = word.split_once(token) {
            if name.is_empty() || value.is_empty() {
                return Err(format!(
                    "`{word}`: write NAME{token}VALUE, e.g. lr{token}0.01"
                ));
            }
            if op != Op::Eq && op != Op::Ne && value.parse::<f64>().is_err() {
                return Err(format!("`{word}`: `{value}` is not a number"));
            }
            return Ok(Term::Compare(name.to_string(), op, value.to_string()));
        }
    }
    if let Some((field, value)) = word.split_once(':') {
        let field = field.to_lowercase();
        if value.is_empty() && KNOWN_FIELDS.contains(&field.as_str()) {
            return Err(format!("`{word}`: write {field}:VALUE"));
        }
        match field.as_str() {
            "experiment" | "exp" => return Ok(Term::Experiment(value.to_string())),
            "status" => return value.parse().map(Term::Status),
            "kind" => return value.parse().map(Term::Kind),
            "parent" => return Ok(Term::Parent(value.to_string())),
            "sweep" => return Ok(Term::Sweep(value.to_string())),
            "tag" => return Ok(Term::Tag(value.to_string())),
            _ => {}
        }
    }
    Ok(Term::Text(word.to_lowercase()))
}

/// What the table is sorted by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SortKey {
    /// The id: start time.
    #[default]
    Started,
    /// The experiment.
    Experiment,
    /// The kind.
    Kind,
    /// The status.
    Status,
    /// How long it ran.
    Duration,
    /// The message.
    Message,
    /// A final metric.
    Metric(String),
    /// A hyperparameter.
    Hyper(String),
}

impl SortKey {
    /// Parses `started`, `experiment`, `kind`, `status`, `duration`, `message`,
    /// `metric:NAME` or `param:NAME`.
    pub fn parse(text: &str) -> Result<SortKey, String> {
        Ok(match text {
            "" | "started" | "id" => SortKey::Started,
            "experiment" => SortKey::Experiment,
            "kind" => SortKey::Kind,
            "status" => SortKey::Status,
            "duration" => SortKey::Duration,
            "message" => SortKey::Message,
            _ => match text.split_once(':') {
                Some(("metric", name)) if !name.is_empty() => SortKey::Metric(name.into()),
                Some(("param", name)) if !name.is_empty() => SortKey::Hyper(name.into()),
                _ => {
                    return Err(format!(
                        "cannot sort by `{text}`: use started, experiment, kind, status, duration, message, metric:NAME or param:NAME"
                    ))
                }
            },
        })
    }

    /// The text [`SortKey::parse`] reads back.
    pub fn text(&self) -> String {
        match self {
            SortKey::Started => "started".into(),
            SortKey::Experiment => "experiment".into(),
            SortKey::Kind => "kind".into(),
            SortKey::Status => "status".into(),
            SortKey::Duration => "duration".into(),
            SortKey::Message => "message".into(),
            SortKey::Metric(m) => format!("metric:{m}"),
            SortKey::Hyper(h) => format!("param:{h}"),
        }
    }
}

impl std::str::FromStr for SortKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        SortKey::parse(text)
    }
}

/// Sorts `runs` by `key`; runs that lack the value come last in either direction.
pub fn sort(runs: &mut [&Summary], key: &SortKey, descending: bool) {
    let dir = |o: Ordering| if descending { o.reverse() } else { o };
    match key {
        SortKey::Started => runs.sort_by(|a, b| dir(a.id.cmp(&b.id))),
        SortKey::Experiment => {
            runs.sort_by(|a, b| dir(a.experiment.cmp(&b.experiment)).then(b.id.cmp(&a.id)))
        }
        SortKey::Kind => runs
            .sort_by(|a, b| dir(a.kind.to_string().cmp(&b.kind.to_string())).then(b.id.cmp(&a.id))),
        SortKey::Status => runs.sort_by(|a, b| {
            dir(a.status.to_string().cmp(&b.status.to_string())).then(b.id.cmp(&a.id))
        }),
        SortKey::Message => {
            runs.sort_by(|a, b| dir(a.message.cmp(&b.message)).then(b.id.cmp(&a.id)))
        }
        SortKey::Duration => runs.sort_by(|a, b| last_if_none(a.duration, b.duration, dir)),
        SortKey::Metric(m) => runs.sort_by(|a, b| {
            last_if_none(a.metrics.get(m).copied(), b.metrics.get(m).copied(), dir)
        }),
        SortKey::Hyper(h) => runs.sort_by(|a, b| {
            match (a.setting(h), b.setting(h)) {
                (Some(x), Some(y)) => dir(hyper_order(x, y)),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            }
            .then(b.id.cmp(&a.id))
        }),
    }
}

/// The order of two hyperparameter values: numbers by value, before any text; texts by
/// their characters. A total order, as sorting needs: comparing numbers as numbers and
/// everything else as text is not one (`9` < `10` as numbers, `10` < `1e` and `1e` < `9` as
/// text), and a sort given such a comparison may panic.
fn hyper_order(x: &str, y: &str) -> Ordering {
    match (x.parse::<f64>(), y.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => x.cmp(y),
    }
}

fn last_if_none(a: Option<f64>, b: Option<f64>, dir: impl Fn(Ordering) -> Ordering) -> Ordering {
    match (a.filter(|v| !v.is_nan()), b.filter(|v| !v.is_nan())) {
        (Some(x), Some(y)) => dir(x.total_cmp(&y)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn run(id: &str, message: &str, loss: Option<f64>, lr: &str) -> Summary {
        Summary {
            id: id.into(),
            experiment: "digits".into(),
            kind: RunKind::Train,
            status: RunStatus::Finished,
            parent: None,
            sweep: Some("20261130-080131-egs1".into()),
            seed: 0,
            message: message.into(),
            started: String::new(),
            duration: None,
            metrics: loss.map(|l| ("loss".to_string(), l)).into_iter().collect(),
            hyper: BTreeMap::from([("lr".to_string(), lr.to_string())]),
            progress: None,
            error: None,
            tags: Vec::new(),
            note: String::new(),
        }
    }

    #[test]
    fn parses_every_kind_of_term() {
        let f = Filter::parse(r#"exp:digits status:running lr=0.01 loss<0.5 "wider conv" Foo"#)
            .unwrap();
        assert_eq!(
            f.terms,
            vec![
                Term::Experiment("digits".into()),
                Term::Status(RunStatus::Running),
                Term::Compare("lr".into(), Op::Eq, "0.01".into()),
                Term::Compare("loss".into(), Op::Lt, "0.5".into()),
                Term::Text("wider conv".into()),
                Term::Text("foo".into()),
            ]
        );
        assert!(Filter::parse("status:sleeping")
            .unwrap_err()
            .contains("running"));
        assert!(Filter::parse("loss<abc")
            .unwrap_err()
            .contains("not a number"));
        assert!(Filter::parse("=3").is_err());
        assert!(Filter::parse("parent:")
            .unwrap_err()
            .contains("parent:VALUE"));
        assert!(Filter::parse("\"open").is_err());
    }

    #[test]
    fn compares_numbers_as_numbers_and_misses_absent_values() {
        let a = run("a", "Wider conv", Some(0.3), "0.01");
        let b = run("b", "baseline", None, "1e-2");
        let c = run("c", "", Some(0.7), "0.1");
        let keep = |f: &str| {
            let f = Filter::parse(f).unwrap();
            [&a, &b, &c]
                .iter()
                .filter(|r| f.matches(r))
                .map(|r| r.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(keep("lr=0.01"), ["a", "b"]);
        assert_eq!(keep("lr>0.05"), ["c"]);
        assert_eq!(keep("loss<0.5"), ["a"]);
        assert_eq!(keep("loss>=0.3"), ["a", "c"]);
        assert_eq!(keep("wider"), ["a"]);
        assert_eq!(keep("lr!=0.1 loss<1"), ["a"]);
        assert_eq!(keep("sweep:20261130-080131"), ["a", "b", "c"]);
        assert!(keep("tag:best").is_empty());
        assert!(keep("sweep:other").is_empty());
        let names = BTreeSet::from(["loss".to_string()]);
        let hyper = BTreeSet::from(["lr".to_string()]);
        assert!(Filter::parse("acc>1")
            .unwrap()
            .check_names(&names, &hyper)
            .unwrap_err()
            .contains("`acc`"));
    }

    #[test]
    fn tags_and_notes_are_found() {
        let mut a = run("a", "", None, "0.1");
        a.tags = vec!["baseline".into(), "best".into()];
        let mut b = run("b", "", None, "0.1");
        b.tags = vec!["best-ish".into()];
        b.note = "Diverged after the LR warm-up".into();
        let keep = |f: &str| {
            let f = Filter::parse(f).unwrap();
            [&a, &b]
                .iter()
                .filter(|r| f.matches(r))
                .map(|r| r.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(keep("tag:best"), ["a"]);
        assert_eq!(keep("tag:best tag:baseline"), ["a"]);
        assert_eq!(keep("best"), ["a", "b"]);
        assert_eq!(keep("warm-up"), ["b"]);
        assert!(keep("tag:Best").is_empty(), "a tag is named exactly");
        assert!(Filter::parse("tag:").unwrap_err().contains("tag:VALUE"));
        let hint = Filter::parse("Foo:bar exp:digits 12:30 wide")
            .unwrap()
            .hint_for_none_kept()
            .unwrap();
        assert!(
            hint.starts_with("`foo:bar` was searched for as text"),
            "{hint}"
        );
        assert!(hint.contains("sweep:"), "{hint}");
        assert_eq!(
            Filter::parse("exp:x wide 12:30")
                .unwrap()
                .hint_for_none_kept(),
            None
        );
        assert!(Filter::parse("tag:a=b")
            .unwrap_err()
            .contains("not allowed"));
        let f = Filter::parse("tag:best").unwrap();
        assert!(f.check_tags(&BTreeSet::from(["best".to_string()])).is_ok());
        assert!(f
            .check_tags(&BTreeSet::new())
            .unwrap_err()
            .contains("no run has the tag `best`"));
    }

    #[test]
    fn sorts_missing_values_last_both_ways() {
        let a = run("a", "", Some(0.3), "0.01");
        let b = run("b", "", None, "1e-2");
        let c = run("c", "", Some(0.7), "0.1");
        for desc in [false, true] {
            let mut v = vec![&a, &b, &c];
            sort(&mut v, &SortKey::Metric("loss".into()), desc);
            let ids: Vec<&str> = v.iter().map(|r| r.id.as_str()).collect();
            assert_eq!(
                ids,
                if desc {
                    ["c", "a", "b"]
                } else {
                    ["a", "c", "b"]
                }
            );
        }
        let mut v = vec![&a, &b, &c];
        sort(&mut v, &SortKey::Hyper("lr".into()), true);
        assert_eq!(v[0].id, "c");
        assert_eq!(
            SortKey::parse("metric:val/acc").unwrap().text(),
            "metric:val/acc"
        );
        assert!(SortKey::parse("colour").is_err());
    }

    #[test]
    fn mixed_numbers_and_text_sort_in_a_total_order() {
        // Numbers by value, then text: `9` < `10` < `1e` < `abc`. The former comparison
        // (numbers as numbers, any other pair as text) made `9` < `10` < `1e` < `9`.
        let values = [
            "10", "9", "1e", "abc", "0.5", "-3", "NaN", "inf", "x", "", "1e-3",
        ];
        for a in values {
            for b in values {
                assert_eq!(hyper_order(a, b), hyper_order(b, a).reverse(), "{a} {b}");
                for c in values {
                    if hyper_order(a, b).is_le() && hyper_order(b, c).is_le() {
                        assert!(hyper_order(a, c).is_le(), "{a} <= {b} <= {c}");
                    }
                }
            }
        }
        let runs: Vec<Summary> = (0..2000)
            .map(|i| run(&format!("{i:05}"), "", None, values[(i * 7) % values.len()]))
            .collect();
        for desc in [false, true] {
            let mut v: Vec<&Summary> = runs.iter().collect();
            sort(&mut v, &SortKey::Hyper("lr".into()), desc);
            let lrs: Vec<&str> = v.iter().map(|r| r.hyper["lr"].as_str()).collect();
            let pos = |x: &str| lrs.iter().position(|l| *l == x).unwrap();
            assert_eq!(pos("9") < pos("10"), !desc, "{lrs:?}");
            assert_eq!(pos("10") < pos("1e"), !desc, "{lrs:?}");
        }
    }
}
