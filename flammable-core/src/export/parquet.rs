//! `export parquet DIR`: the runs as two tables for dataframes — `runs.parquet`, one row per
//! run (its record, every hyperparameter as `params.<name>`, every final metric as
//! `metrics.<name>`, as MLflow's `search_runs` names them), and `metrics.parquet`, every
//! metric point in long form (run, name, step, epoch, value, time). `--csv` writes the same
//! tables as `runs.csv` and `metrics.csv`.

use super::table::{write_csv, write_parquet, Table, Values};
use super::{is_unset, ParamType, ParamTypes};
use crate::error::{Error, Result};
use crate::store::record::Record;
use crate::store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The file format of the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Apache Parquet, snappy-compressed.
    Parquet,
    /// Comma-separated values with a header row.
    Csv,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
        }
    }
}

/// What an export wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TablesReport {
    /// Rows of the runs table.
    pub runs: usize,
    /// Rows of the metrics table.
    pub points: usize,
}

/// Writes `records` as `runs.<ext>` and `metrics.<ext>` into `dir` (created if needed),
/// replacing earlier ones.
pub fn export(
    store: &Store,
    records: &[Record],
    dir: &Path,
    format: Format,
) -> Result<TablesReport> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    let runs = runs_table(store, records);
    let points = std::cell::Cell::new(0usize);
    let metrics = records.iter().map(|r| {
        let t = metrics_table(store, r)?;
        points.set(points.get() + t.rows());
        Ok(t)
    });
    let path = |name: &str| dir.join(format!("{name}.{}", format.extension()));
    // Each file is replaced whole. The metrics first: the large one, the one most likely to
    // fail (a full disk, a damaged metrics file), and then the runs are left as they were.
    match format {
        Format::Parquet => {
            write_parquet(&path("metrics"), metrics)?;
            write_parquet(&path("runs"), [Ok(runs)])?;
        }
        Format::Csv => {
            write_csv(&path("metrics"), metrics)?;
            write_csv(&path("runs"), [Ok(runs)])?;
        }
    }
    Ok(TablesReport {
        runs: records.len(),
        points: points.get(),
    })
}

/// One row per run.
fn runs_table(store: &Store, records: &[Record]) -> Table {
    let hypers: Vec<BTreeMap<String, String>> = records
        .iter()
        .map(|r| super::hyperparameters_of(store, &r.id))
        .collect();
    let metrics: Vec<BTreeMap<String, f64>> = records.iter().map(Record::all_metrics).collect();
    let text =
        |f: &dyn Fn(&Record) -> Option<String>| Values::Text(records.iter().map(f).collect());
    let time = |t: &str| crate::store::progress::parse_time(t);
    let mut columns = vec![
        ("id".to_string(), text(&|r| Some(r.id.clone()))),
        ("experiment".into(), text(&|r| Some(r.experiment.clone()))),
        ("kind".into(), text(&|r| Some(r.kind.to_string()))),
        ("status".into(), text(&|r| Some(r.status.to_string()))),
        ("parent".into(), text(&|r| r.parent.clone())),
        ("sweep".into(), text(&|r| r.sweep.clone())),
        ("message".into(), text(&|r| r.message.clone())),
        (
            "tags".into(),
            text(&|r| (!r.tags.is_empty()).then(|| r.tags.join(" "))),
        ),
        ("note".into(), text(&|r| r.note.clone())),
        ("started".into(), text(&|r| Some(r.started.clone()))),
        ("ended".into(), text(&|r| r.ended.clone())),
        (
            "duration_s".into(),
            Values::Float(
                records
                    .iter()
                    .map(|r| {
                        let (s, e) = (time(&r.started)?, time(r.ended.as_deref()?)?);
                        Some(e - s)
                    })
                    .collect(),
            ),
        ),
        (
            "seed".into(),
            Values::UInt(records.iter().map(|r| Some(r.seed)).collect()),
        ),
        (
            "commit".into(),
            text(&|r| r.snapshot.as_ref().map(|s| s.commit.clone())),
        ),
    ];
    let types = ParamTypes::of(&hypers);
    for name in types.names() {
        // A run without it, or with the option unset, has a null.
        let values = hypers.iter().map(|h| h.get(name).filter(|v| !is_unset(v)));
        let column = match types.get(name) {
            ParamType::Integer { .. } => Values::Int(values.map(|v| v?.parse().ok()).collect()),
            ParamType::Unsigned => Values::UInt(values.map(|v| v?.parse().ok()).collect()),
            ParamType::Number => Values::Float(values.map(|v| v?.parse().ok()).collect()),
            ParamType::Bool => Values::Bool(values.map(|v| Some(v? == "true")).collect()),
            ParamType::Text | ParamType::Unset => {
                Values::Text(values.map(|v| v.cloned()).collect())
            }
        };
        columns.push((format!("params.{name}"), column));
    }
    let names: BTreeSet<&String> = metrics.iter().flat_map(BTreeMap::keys).collect();
    for name in names {
        let column = Values::Float(metrics.iter().map(|m| m.get(name).copied()).collect());
        columns.push((format!("metrics.{name}"), column));
    }
    Table { columns }
}

/// Every metric point of run `r`, in the order written.
fn metrics_table(store: &Store, r: &Record) -> Result<Table> {
    // As the other exports read them: a damaged names file is said, not silent.
    let points = super::points_of(store, r)?;
    Ok(Table {
        columns: vec![
            (
                "run".into(),
                Values::Text(vec![Some(r.id.clone()); points.len()]),
            ),
            (
                "name".into(),
                Values::Text(points.iter().map(|p| Some(p.name.to_string())).collect()),
            ),
            (
                "step".into(),
                Values::Int(points.iter().map(|p| i64::try_from(p.step).ok()).collect()),
            ),
            (
                "epoch".into(),
                Values::Int(points.iter().map(|p| i64::try_from(p.epoch).ok()).collect()),
            ),
            (
                "value".into(),
                Values::Float(points.iter().map(|p| Some(p.value)).collect()),
            ),
            (
                "time".into(),
                Values::Float(points.iter().map(|p| Some(p.time)).collect()),
            ),
        ],
    })
}
