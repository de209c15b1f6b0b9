//! `runs`: the table of runs, newest first (or JSON), and the small formatters other
//! commands share (ages, durations, short commit ids).

use super::*;
use crate::util::number::metric_text;

pub(super) fn list(store: &Store, a: ListArgs) -> Result<ExitCode> {
    if let Some(id) = &a.sweep {
        return list_sweep(store, id);
    }
    let tags: Vec<String> = a
        .tag
        .iter()
        .flat_map(|t| crate::store::notes::split_tags(t))
        .collect();
    if !a.tag.is_empty() && tags.is_empty() {
        return Err(Error::usage("--tag: name a tag (e.g. --tag best)"));
    }
    for t in &tags {
        crate::store::notes::check_tag(t).map_err(Error::usage)?;
    }
    let (records, unreadable) = store.records_and_errors()?;
    let any = !records.is_empty();
    for (id, e) in unreadable {
        crate::util::stderr::errln!("warning: run {id} cannot be read: {e}");
    }
    let mut records: Vec<Record> = records
        .into_iter()
        .rev()
        .filter(|r| a.experiment.as_ref().is_none_or(|e| &r.experiment == e))
        .filter(|r| a.status.is_none_or(|s| r.status == s))
        .filter(|r| a.kind.is_none_or(|k| r.kind == k))
        .filter(|r| tags.iter().all(|t| r.tags.contains(t)))
        .collect();
    if let Some(n) = a.limit {
        records.truncate(n);
    }
    if a.json {
        outln!("{}", to_json(&records)?);
        return Ok(ExitCode::SUCCESS);
    }
    if records.is_empty() {
        // Say where: an empty table does not tell which store was read.
        if any {
            crate::util::stderr::errln!("no runs of {} match", store.root().display());
        } else {
            crate::util::stderr::errln!("no runs in {}", store.root().display());
        }
    }
    let rows: Vec<[String; 8]> = records
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.experiment.clone(),
                r.kind.to_string(),
                r.status.to_string(),
                age(&r.started),
                duration(r),
                message_cell(r),
                key_metrics(r),
            ]
        })
        .collect();
    let header = [
        "id",
        "experiment",
        "kind",
        "status",
        "age",
        "time",
        "message",
        "metrics",
    ]
    .map(String::from);
    print_table(&header, &rows)?;
    if let Some(note) = split_note(&records) {
        crate::util::stderr::errln!("{note}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The message, then the tags in brackets (`wider [best baseline]`), on one line.
fn message_cell(r: &Record) -> String {
    let message = truncate(r.message.as_deref().unwrap_or(""), 30);
    if r.tags.is_empty() {
        return message;
    }
    let tags = format!("[{}]", truncate(&r.tags.join(" "), 30));
    if message.is_empty() {
        tags
    } else {
        format!("{message} {tags}")
    }
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::msg(format!("cannot write JSON: {e}")))
}

/// `rows` under `header`, in columns as wide as their widest cell.
pub(super) fn print_table<R: AsRef<[String]>>(header: &[String], rows: &[R]) -> Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row.as_ref()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    outln!("{}", line(header));
    for row in rows {
        outln!("{}", line(row.as_ref()));
    }
    Ok(())
}

/// The first 12 characters of a commit id (all of a shorter, hand-edited one).
pub(super) fn short_commit(commit: &str) -> &str {
    commit
        .char_indices()
        .nth(12)
        .map_or(commit, |(at, _)| &commit[..at])
}

/// `s` on one line (control characters, newlines among them, and bidirectional overrides
/// become spaces), at most `n`
/// characters.
pub(super) fn truncate(s: &str, n: usize) -> String {
    let s: String = s
        .chars()
        .map(|c| if show::is_hidden_control(c) { ' ' } else { c })
        .collect();
    let s = s.as_str();
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

pub(super) fn key_metrics(r: &Record) -> String {
    let mut m: BTreeMap<String, f64> = r.metrics.clone();
    if let Some(t) = r.tests.last() {
        m.extend(t.metrics.iter().map(|(k, v)| (format!("test/{k}"), *v)));
    }
    m.iter()
        .take(3)
        .map(|(k, v)| format!("{k}={}", metric_text(*v)))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(s).ok()
}

pub(super) fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

pub(super) fn age(started: &str) -> String {
    parse_time(started)
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map_or_else(|| "?".into(), short)
}

pub(super) fn duration(r: &Record) -> String {
    let (Some(s), Some(e)) = (
        parse_time(&r.started),
        r.ended.as_deref().and_then(parse_time),
    ) else {
        return "-".into();
    };
    e.duration_since(s).map_or_else(|_| "-".into(), short)
}
