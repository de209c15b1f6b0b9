//! `export tensorboard DIR`: each run as a folder of TensorBoard event files — its metric
//! series as scalars at their steps and times, its message, command line and code diff as
//! text, and its hyperparameters and end for the HParams tab (runs that differ only by seed
//! in one group). Written from the store after the fact, never inside a training loop.

mod proto;
mod record;

use super::{ParamType, ParamTypes};
use crate::error::{Error, Result};
use crate::store::metrics::{read_metrics, Point};
use crate::store::record::{Record, RunStatus};
use crate::store::{Store, HYPERPARAMETERS_FILE};
use prost::Message as _;
use proto::{
    Event, HParamsData, HParamsPluginData, Kind, PluginData, ProtoValue, SessionEndInfo,
    SessionStartInfo, Summary, SummaryMetadata, SummaryValue, TensorProto, TensorShapeProto,
    ValueKind, What,
};
use sha2::Digest as _;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;

/// The event file of each run, in `DIR/<run id>/`: one name, so that exporting again
/// replaces it rather than adding a second file whose points TensorBoard would show twice.
pub const EVENT_FILE: &str = "events.out.tfevents.flammable";

/// What an export wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Runs written.
    pub runs: usize,
    /// Scalar points written.
    pub points: usize,
}

/// How far a run's export has got, for `--follow`.
#[derive(Debug)]
pub struct Exported {
    /// The run.
    pub id: String,
    /// Metric points written so far.
    pub points: usize,
    /// Whether its end was written.
    pub ended: bool,
}

/// The hyperparameter's value as the HParams tab takes it: of its column's type.
fn hparam_value(types: &ParamTypes, key: &str, text: &str) -> ProtoValue {
    let kind = match types.get(key) {
        ParamType::Number => text
            .parse::<f64>()
            .map(Kind::Number)
            .unwrap_or_else(|_| Kind::Text(text.to_string())),
        ParamType::Bool => Kind::Bool(text == "true"),
        ParamType::Text => Kind::Text(text.to_string()),
    };
    ProtoValue { kind: Some(kind) }
}

/// The flattened hyperparameters of run `id` shown as HParams columns: all but the seed,
/// which tells runs of one group apart.
pub fn hparams_of(store: &Store, id: &str) -> BTreeMap<String, String> {
    let mut hyper = crate::hyper::read_flat(&store.run_dir(id).join(HYPERPARAMETERS_FILE));
    hyper.retain(|k, _| k != "seed" && !k.ends_with(".seed"));
    hyper
}

/// Writes run `r`'s event file into `dir/<id>/` whole (through a temporary file, renamed),
/// replacing an earlier export of it.
pub fn export_run(
    store: &Store,
    r: &Record,
    hyper: &BTreeMap<String, String>,
    types: &ParamTypes,
    dir: &Path,
) -> Result<Exported> {
    let run_dir = dir.join(&r.id);
    std::fs::create_dir_all(&run_dir).map_err(|e| Error::io("cannot create", &run_dir, e))?;
    let started = crate::store::progress::parse_time(&r.started).unwrap_or(0.0);
    let points = read_metrics(&store.metrics_path(&r.id)).unwrap_or_default();
    let mut out = Vec::new();
    let mut push = |event: Event| record::frame(&event.encode_to_vec(), &mut out);
    push(Event {
        wall_time: started,
        step: 0,
        what: Some(What::FileVersion("brain.Event:2".into())),
    });
    push(summary_event(
        started,
        0,
        hparams_start(r, hyper, types, started),
    ));
    push(summary_event(started, 0, text_values(r)));
    for p in &points {
        push(scalar_event(p));
    }
    let ended = r.status != RunStatus::Running;
    if ended {
        let (step, time) = last_step(&points, r, started);
        for v in final_values(r, &points) {
            push(summary_event(time, step, vec![v]));
        }
        push(summary_event(time, step, vec![hparams_end(r, time)]));
    }
    let path = run_dir.join(EVENT_FILE);
    crate::util::atomic::write_atomic(&path, &out).map_err(Error::from)?;
    Ok(Exported {
        id: r.id.clone(),
        points: points.len(),
        ended,
    })
}

/// Appends to run `r`'s event file what it wrote since `done` says (`--follow`): its new
/// metric points, and its end once it ended.
pub fn append_run(store: &Store, r: &Record, done: &mut Exported, dir: &Path) -> Result<usize> {
    if done.ended {
        return Ok(0);
    }
    let points = read_metrics(&store.metrics_path(&r.id)).unwrap_or_default();
    let new = points.get(done.points..).unwrap_or_default();
    let mut out = Vec::new();
    for p in new {
        record::frame(&scalar_event(p).encode_to_vec(), &mut out);
    }
    let ended = r.status != RunStatus::Running;
    if ended {
        let started = crate::store::progress::parse_time(&r.started).unwrap_or(0.0);
        let (step, time) = last_step(&points, r, started);
        for v in final_values(r, &points) {
            record::frame(
                &summary_event(time, step, vec![v]).encode_to_vec(),
                &mut out,
            );
        }
        let end = summary_event(time, step, vec![hparams_end(r, time)]);
        record::frame(&end.encode_to_vec(), &mut out);
    }
    if !out.is_empty() {
        let path = dir.join(&r.id).join(EVENT_FILE);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| Error::io("cannot write", &path, e))?;
        file.write_all(&out)
            .map_err(|e| Error::io("cannot write", &path, e))?;
    }
    done.points = points.len().max(done.points);
    done.ended = ended;
    Ok(new.len())
}

/// The step and time of a run's last point (its start when it has none).
fn last_step(points: &[Point], r: &Record, started: f64) -> (i64, f64) {
    let end = r
        .ended
        .as_deref()
        .and_then(crate::store::progress::parse_time)
        .unwrap_or(started);
    let step = points.iter().map(|p| p.step).max().unwrap_or(0);
    (i64::try_from(step).unwrap_or(i64::MAX), end)
}

/// The record's final metrics that no series holds (a test's results): one point each, at
/// the last step.
fn final_values(r: &Record, points: &[Point]) -> Vec<SummaryValue> {
    let series: BTreeSet<&str> = points.iter().map(|p| &*p.name).collect();
    r.all_metrics()
        .into_iter()
        .filter(|(name, _)| !series.contains(name.as_str()))
        .map(|(name, value)| SummaryValue {
            tag: name,
            metadata: None,
            value: Some(ValueKind::SimpleValue(value as f32)),
        })
        .collect()
}

fn scalar_event(p: &Point) -> Event {
    summary_event(
        p.time,
        i64::try_from(p.step).unwrap_or(i64::MAX),
        vec![SummaryValue {
            tag: p.name.to_string(),
            metadata: None,
            // TensorBoard's scalars are 32-bit.
            value: Some(ValueKind::SimpleValue(p.value as f32)),
        }],
    )
}

fn summary_event(wall_time: f64, step: i64, value: Vec<SummaryValue>) -> Event {
    Event {
        wall_time,
        step,
        what: Some(What::Summary(Summary { value })),
    }
}

fn scalar_tensor(dtype: i32) -> TensorProto {
    TensorProto {
        dtype,
        tensor_shape: Some(TensorShapeProto { dim: Vec::new() }),
        float_val: Vec::new(),
        string_val: Vec::new(),
    }
}

fn hparams_value(tag: &str, data: HParamsData) -> SummaryValue {
    let content = HParamsPluginData {
        version: 0,
        data: Some(data),
    }
    .encode_to_vec();
    SummaryValue {
        tag: tag.to_string(),
        metadata: Some(SummaryMetadata {
            plugin_data: Some(PluginData {
                plugin_name: "hparams".into(),
                content,
            }),
            data_class: 0,
        }),
        value: Some(ValueKind::Tensor(TensorProto {
            float_val: vec![0.0],
            ..scalar_tensor(proto::DT_FLOAT)
        })),
    }
}

fn hparams_start(
    r: &Record,
    hyper: &BTreeMap<String, String>,
    types: &ParamTypes,
    started: f64,
) -> Vec<SummaryValue> {
    let hparams = hyper
        .iter()
        .map(|(k, v)| (k.clone(), hparam_value(types, k, v)))
        .collect();
    // Runs of one experiment with the same hyperparameters, the seed aside.
    let digest = sha2::Sha256::digest(serde_json::to_vec(hyper).unwrap_or_default());
    let group = format!(
        "{}:{}",
        r.experiment,
        &crate::store::hashes::hex(&digest)[..16]
    );
    vec![hparams_value(
        "_hparams_/session_start_info",
        HParamsData::SessionStartInfo(SessionStartInfo {
            hparams,
            group_name: group,
            start_time_secs: started,
        }),
    )]
}

fn hparams_end(r: &Record, ended: f64) -> SummaryValue {
    let status = match r.status {
        RunStatus::Finished => 1,
        RunStatus::Failed | RunStatus::Crashed => 2,
        RunStatus::Running => 3,
        // Stopped by the user: neither a success nor a failure of the model.
        RunStatus::Interrupted => 0,
    };
    hparams_value(
        "_hparams_/session_end_info",
        HParamsData::SessionEndInfo(SessionEndInfo {
            status,
            end_time_secs: ended,
        }),
    )
}

/// The run's text: its message, command line (with seed and status) and code diff, as
/// Markdown for TensorBoard's Text tab.
fn text_values(r: &Record) -> Vec<SummaryValue> {
    let command = format!(
        "    {}\n\nseed {}, {} run, {}",
        r.argv.join(" "),
        r.seed,
        r.kind,
        r.status
    );
    let diff = match &r.snapshot {
        Some(s) => match crate::snapshot::diff(&s.git_dir, s.parent.as_deref(), &s.commit, true) {
            Ok(changes) if changes.is_empty() => {
                format!("No uncommitted changes: the code is commit {}.", s.commit)
            }
            Ok(changes) => {
                let mut text = format!(
                    "Uncommitted changes against {}:\n\n",
                    s.parent.as_deref().unwrap_or("the empty tree")
                );
                for c in changes {
                    text.push_str(&format!("    {}\n", c.path));
                    for line in c.patch.lines() {
                        text.push_str(&format!("    {line}\n"));
                    }
                }
                text
            }
            Err(e) => format!("The code cannot be read: {e}"),
        },
        None => "The run has no snapshot of its code.".to_string(),
    };
    [
        ("run/message", r.message.clone().unwrap_or_default()),
        ("run/command", command),
        ("run/code_diff", diff),
    ]
    .into_iter()
    .map(|(tag, text)| SummaryValue {
        tag: tag.to_string(),
        metadata: Some(SummaryMetadata {
            plugin_data: Some(PluginData {
                plugin_name: "text".into(),
                content: Vec::new(),
            }),
            data_class: proto::DATA_CLASS_TENSOR,
        }),
        value: Some(ValueKind::Tensor(TensorProto {
            string_val: vec![text.into_bytes()],
            ..scalar_tensor(proto::DT_STRING)
        })),
    })
    .collect()
}

/// Exports `records` into `dir` (created if needed).
pub fn export(
    store: &Store,
    records: &[Record],
    dir: &Path,
) -> Result<(ExportReport, Vec<Exported>)> {
    let hypers: Vec<BTreeMap<String, String>> =
        records.iter().map(|r| hparams_of(store, &r.id)).collect();
    let types = ParamTypes::of(&hypers);
    let mut report = ExportReport::default();
    let mut done = Vec::new();
    for (r, hyper) in records.iter().zip(&hypers) {
        let e = export_run(store, r, hyper, &types, dir)?;
        report.runs += 1;
        report.points += e.points;
        done.push(e);
    }
    Ok((report, done))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_column_has_one_type_across_the_runs() {
        let a = flat(&[
            ("lr", "0.1"),
            ("amp", "true"),
            ("opt", "adamw"),
            ("mixed", "3"),
        ]);
        let b = flat(&[
            ("lr", "1e-3"),
            ("amp", "false"),
            ("opt", "sgd"),
            ("mixed", "None"),
        ]);
        let types = ParamTypes::of([&a, &b]);
        let value = |k: &str, v: &str| hparam_value(&types, k, v).kind;
        assert_eq!(value("lr", "1e-3"), Some(Kind::Number(1e-3)));
        assert_eq!(value("amp", "true"), Some(Kind::Bool(true)));
        assert_eq!(value("opt", "sgd"), Some(Kind::Text("sgd".into())));
        // A number in one run and text in another: text in both.
        assert_eq!(value("mixed", "3"), Some(Kind::Text("3".into())));
    }

    #[test]
    fn an_event_round_trips_through_its_protobuf() {
        let p = Point {
            name: "val/loss".into(),
            step: 7,
            epoch: 1,
            value: 0.25,
            time: 1_700_000_000.5,
        };
        let bytes = scalar_event(&p).encode_to_vec();
        let back = Event::decode(bytes.as_slice()).unwrap();
        assert_eq!(back.step, 7);
        assert_eq!(back.wall_time, 1_700_000_000.5);
        let Some(What::Summary(s)) = back.what else {
            panic!("not a summary");
        };
        assert_eq!(s.value[0].tag, "val/loss");
        assert_eq!(s.value[0].value, Some(ValueKind::SimpleValue(0.25)));
    }
}
