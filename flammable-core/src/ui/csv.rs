//! The browser's CSV downloads: the runs table and raw series, for spreadsheets and
//! dataframes. Fields are quoted where CSV needs it, and a text field that a spreadsheet
//! would run as a formula (`=`, `+`, `-`, `@` first, and not a number) is written with a `'`
//! first, so a run's message cannot become a formula in whoever opens the file.

use super::index::Summary;
use crate::store::metrics::Series;
use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;

/// `text` as one CSV field.
pub fn field(text: &str) -> String {
    let formula =
        text.starts_with(['=', '+', '-', '@', '\t', '\r']) && text.parse::<f64>().is_err();
    let text = if formula {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// A number as CSV reads it back exactly (empty for none).
fn number(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn row(out: &mut impl Write, fields: impl IntoIterator<Item = String>) -> std::io::Result<()> {
    let line: Vec<String> = fields.into_iter().collect();
    writeln!(out, "{}", line.join(","))
}

/// Writes `runs` as CSV, one row each, in their order.
pub fn runs(out: &mut impl Write, runs: &[Arc<Summary>]) -> std::io::Result<()> {
    let metrics: BTreeSet<&String> = runs.iter().flat_map(|r| r.metrics.keys()).collect();
    let params: BTreeSet<&String> = runs.iter().flat_map(|r| r.hyper.keys()).collect();
    let fixed = [
        "id",
        "experiment",
        "kind",
        "status",
        "parent",
        "sweep",
        "started",
        "duration_s",
        "message",
        "tags",
        "note",
        "error",
    ];
    row(
        out,
        fixed
            .iter()
            .map(|h| h.to_string())
            .chain(metrics.iter().map(|m| field(&format!("metrics.{m}"))))
            .chain(params.iter().map(|p| field(&format!("params.{p}")))),
    )?;
    for r in runs {
        let fixed = [
            field(&r.id),
            field(&r.experiment),
            r.kind.to_string(),
            r.status.to_string(),
            field(r.parent.as_deref().unwrap_or_default()),
            field(r.sweep.as_deref().unwrap_or_default()),
            field(&r.started),
            number(r.duration),
            field(&r.message),
            field(&r.tags.join(" ")),
            field(&r.note),
            field(r.error.as_deref().unwrap_or_default()),
        ];
        row(
            out,
            fixed
                .into_iter()
                .chain(metrics.iter().map(|m| number(r.metrics.get(*m).copied())))
                .chain(
                    params
                        .iter()
                        .map(|p| field(r.hyper.get(*p).map(String::as_str).unwrap_or_default())),
                ),
        )?;
    }
    Ok(())
}

/// Writes every point of metric `name` of the runs in `found` (run id and its series) as
/// CSV: `run,name,step,epoch,value,time` (time in seconds since the Unix epoch), run by run,
/// each in step order.
pub fn series(
    out: &mut impl Write,
    name: &str,
    found: &[(String, Arc<Series>)],
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(out);
    writeln!(out, "run,name,step,epoch,value,time")?;
    let name_field = field(name);
    for (id, series) in found {
        let id = field(id);
        for i in 0..series.steps.len() {
            writeln!(
                out,
                "{id},{name_field},{},{},{},{:.3}",
                series.steps[i], series.epochs[i], series.values[i], series.times[i]
            )?;
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(field("-0.5"), "-0.5", "a negative number stays a number");
        assert_eq!(field("+1e-3"), "+1e-3");
    }
}
