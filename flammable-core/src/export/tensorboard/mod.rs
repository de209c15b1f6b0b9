//! `export tensorboard DIR`: each run as a folder of TensorBoard event files — its metric
//! series as scalars at their steps and times, its message, command line and code diff as
//! text, and its hyperparameters and end for the HParams tab (runs that differ only by seed
//! in one group). Written from the store after the fact, never inside a training loop.

mod proto;
mod record;

use super::{final_metrics, is_unset, points_of, CodeDiff, ParamType, ParamTypes};
use crate::error::{Error, Result};
use crate::store::metrics::Point;
use crate::store::record::{Record, RunStatus};
use crate::store::Store;
use prost::Message as _;
use proto::{
    Event, HParamsData, HParamsPluginData, Kind, PluginData, ProtoValue, SessionEndInfo,
    SessionStartInfo, Summary, SummaryMetadata, SummaryValue, TensorProto, TensorShapeProto,
    ValueKind, What,
};
use sha2::Digest as _;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

/// How the event files of ours end. Each export of a run writes a new one, named after the
/// time (`events.out.tfevents.<secs>.<nanos>.flammable`, so names sort by age, as TensorBoard
/// reads them), and removes the older ones: a TensorBoard left open reads the new file, and
/// never shows a point twice.
pub const EVENT_FILE_SUFFIX: &str = ".flammable";

/// Whether `name` is the name of an event file an export wrote
/// (`events.out.tfevents.<10 digits>.<9 digits>.flammable`): not a TensorFlow writer's
/// (`events.out.tfevents.<secs>.<host>…`), even on a host named `flammable`.
fn is_our_event_file(name: &str) -> bool {
    let Some(rest) = name
        .strip_prefix("events.out.tfevents.")
        .and_then(|r| r.strip_suffix(EVENT_FILE_SUFFIX))
    else {
        return false;
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    matches!(rest.split_once('.'), Some((secs, nanos)) if digits(secs, 10) && digits(nanos, 9))
}

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
    /// Its event file.
    pub file: std::path::PathBuf,
    /// Metric points written so far.
    pub points: usize,
    /// Whether its end was written.
    pub ended: bool,
}

/// The hyperparameter's value as the HParams tab takes it: of its column's type.
fn hparam_value(types: &ParamTypes, key: &str, text: &str) -> ProtoValue {
    let kind = match types.get(key) {
        // HParams' numbers are doubles: a whole number beyond 2^53 would not come back as
        // it was, and its column is text.
        ParamType::Integer { large: true, .. } | ParamType::Unsigned => {
            Kind::Text(text.to_string())
        }
        ParamType::Integer { .. } | ParamType::Number => text
            .parse::<f64>()
            .map(Kind::Number)
            .unwrap_or_else(|_| Kind::Text(text.to_string())),
        ParamType::Bool => Kind::Bool(text == "true"),
        ParamType::Text | ParamType::Unset => Kind::Text(text.to_string()),
    };
    ProtoValue { kind: Some(kind) }
}

/// The flattened hyperparameters of run `id` shown as HParams columns: all but the seed,
/// which tells runs of one group apart.
pub fn hparams_of(store: &Store, id: &str) -> BTreeMap<String, String> {
    let mut hyper = super::hyperparameters_of(store, id);
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
    let points = points_of(store, r)?;
    let mut out = Vec::new();
    let mut push = |event: Event| record::frame(&event.encode_to_vec(), &mut out);
    push(Event {
        wall_time: started,
        step: 0,
        what: Some(What::FileVersion("brain.Event:2".into())),
    });
    // A restart, as TensorBoard knows it: what it holds of an earlier export of the run is
    // dropped, not shown beside this one.
    push(Event {
        wall_time: started,
        step: 0,
        what: Some(What::SessionLog(proto::SessionLog {
            status: proto::SESSION_START,
        })),
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
        end_events(r, &points).into_iter().for_each(&mut push);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let file = run_dir.join(format!(
        "events.out.tfevents.{:010}.{:09}{EVENT_FILE_SUFFIX}",
        now.as_secs(),
        now.subsec_nanos()
    ));
    crate::util::atomic::write_atomic(&file, &out).map_err(Error::from)?;
    // The earlier exports' files, now that this one is whole: only older ones (names sort by
    // time), so that two exports into one folder at once leave the newer file, not neither.
    let ours = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for e in std::fs::read_dir(&run_dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name < ours && is_our_event_file(&name) {
            let path = e.path();
            let _ = std::fs::remove_file(path);
        }
    }
    Ok(Exported {
        id: r.id.clone(),
        file,
        points: points.len(),
        ended,
    })
}

/// Appends to run `r`'s event file what it wrote since `done` says (`--follow`): its new
/// metric points, and its end once it ended.
pub fn append_run(store: &Store, r: &Record, done: &mut Exported) -> Result<usize> {
    if done.ended {
        return Ok(0);
    }
    let points = points_of(store, r)?;
    let new = points.get(done.points..).unwrap_or_default();
    let mut out = Vec::new();
    for p in new {
        record::frame(&scalar_event(p).encode_to_vec(), &mut out);
    }
    let ended = r.status != RunStatus::Running;
    if ended {
        for event in end_events(r, &points) {
            record::frame(&event.encode_to_vec(), &mut out);
        }
    }
    if !out.is_empty() && !append_to(&done.file, &out)? {
        // Another export of the run into this folder replaced the file (and removed this
        // one): the run is written whole again, then followed on.
        let dir = done
            .file
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| Error::msg("an event file outside its run's folder"))?
            .to_path_buf();
        let hyper = hparams_of(store, &r.id);
        let types = ParamTypes::of([&hyper]);
        *done = export_run(store, r, &hyper, &types, &dir)?;
        return Ok(new.len());
    }
    done.points = points.len().max(done.points);
    done.ended = ended;
    Ok(new.len())
}

/// Appends `bytes` to the event file at `path`: true once they are in the file that `path`
/// names, false when that file is gone or was replaced meanwhile (by another export).
fn append_to(path: &Path, bytes: &[u8]) -> Result<bool> {
    use std::os::unix::fs::MetadataExt as _;
    let mut file = match std::fs::OpenOptions::new().append(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("cannot write", path, e)),
    };
    file.write_all(bytes)
        .map_err(|e| Error::io("cannot write", path, e))?;
    let written = file
        .metadata()
        .map_err(|e| Error::io("cannot read", path, e))?;
    Ok(std::fs::metadata(path)
        .is_ok_and(|now| now.ino() == written.ino() && now.dev() == written.dev()))
}

/// What an ended run's file closes with, at its last step and end time: its final metrics
/// that no series holds, and its end for the HParams tab.
fn end_events(r: &Record, points: &[Point]) -> Vec<Event> {
    let started = crate::store::progress::parse_time(&r.started).unwrap_or(0.0);
    let (step, time) = last_step(points, r, started);
    let mut values = final_values(r, points);
    values.push(hparams_end(r, time));
    values
        .into_iter()
        .map(|v| summary_event(time, step, vec![v]))
        .collect()
}

/// The step of a run's last point, and when the run ended (else its last point's time, for
/// a run whose process died without saying; else its start).
fn last_step(points: &[Point], r: &Record, started: f64) -> (i64, f64) {
    let last_time = points
        .iter()
        .map(|p| p.time)
        .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))));
    let end = r
        .ended
        .as_deref()
        .and_then(crate::store::progress::parse_time)
        .or(last_time)
        .unwrap_or(started);
    let step = points.iter().map(|p| p.step).max().unwrap_or(0);
    (i64::try_from(step).unwrap_or(i64::MAX), end)
}

/// The record's final metrics that no series holds (a test's results): one point each, at
/// the last step.
fn final_values(r: &Record, points: &[Point]) -> Vec<SummaryValue> {
    final_metrics(r, points)
        .into_iter()
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
    // An unset option has no value: the HParams table shows a blank.
    let hparams = hyper
        .iter()
        .filter(|(_, v)| !is_unset(v))
        .map(|(k, v)| (k.clone(), hparam_value(types, k, v)))
        .collect();
    // Runs of one experiment with the same hyperparameters, the seed aside.
    let digest = sha2::Sha256::digest(serde_json::to_vec(hyper).unwrap_or_default());
    let group = format!(
        "{}:{}:{}",
        r.experiment,
        r.kind,
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
    // A code block: every line indented, the words quoted as a shell reads them.
    let line = r
        .argv
        .iter()
        .map(|a| crate::util::shell::word(a))
        .collect::<Vec<_>>()
        .join(" ");
    let command = format!(
        "    {}\n\nseed {}, {} run, {}",
        line.replace('\n', "\n    "),
        r.seed,
        r.kind,
        r.status
    );
    let diff = match CodeDiff::of(r) {
        CodeDiff::Changes {
            commit, changes, ..
        } if changes.is_empty() => {
            format!("No uncommitted changes: the code is commit {commit}.")
        }
        CodeDiff::Changes { base, changes, .. } => {
            let mut text = format!(
                "Uncommitted changes against {}:\n\n",
                base.as_deref().unwrap_or("the empty tree")
            );
            for c in changes {
                text.push_str(&format!("    {}\n", c.path));
                for line in c.patch.lines() {
                    text.push_str(&format!("    {line}\n"));
                }
            }
            text
        }
        CodeDiff::Unreadable(e) => format!("The code cannot be read: {e}"),
        CodeDiff::NoSnapshot => "The run has no snapshot of its code.".to_string(),
    };
    [
        ("run/message", r.message.clone().unwrap_or_default()),
        ("run/tags", r.tags.join(" ")),
        ("run/note", r.note.clone().unwrap_or_default()),
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
    fn only_the_exports_own_event_files_are_taken_for_old_ones() {
        assert!(is_our_event_file(
            "events.out.tfevents.1796667855.123456789.flammable"
        ));
        for theirs in [
            // TensorFlow 1's writer on a host named `flammable`, and TensorFlow 2's.
            "events.out.tfevents.1796667855.flammable",
            "events.out.tfevents.1796667855.flammable.4242.0.v2",
            "events.out.tfevents.1796667855.12345678.flammable",
            "events.out.tfevents.x796667855.123456789.flammable",
            "events.out.tfevents.1796667855.123456789.flammable.tmp",
        ] {
            assert!(!is_our_event_file(theirs), "{theirs}");
        }
    }

    #[test]
    fn a_column_has_one_type_across_the_runs() {
        let a = flat(&[
            ("lr", "0.1"),
            ("amp", "true"),
            ("opt", "adamw"),
            ("mixed", "3"),
            ("clip", "None"),
            ("hidden", "64"),
            ("split_seed", "9007199254740993"),
        ]);
        let b = flat(&[
            ("lr", "1e-3"),
            ("amp", "false"),
            ("opt", "sgd"),
            ("mixed", "three"),
            ("clip", "0.5"),
        ]);
        let types = ParamTypes::of([&a, &b]);
        let value = |k: &str, v: &str| hparam_value(&types, k, v).kind;
        assert_eq!(value("lr", "1e-3"), Some(Kind::Number(1e-3)));
        assert_eq!(value("amp", "true"), Some(Kind::Bool(true)));
        assert_eq!(value("opt", "sgd"), Some(Kind::Text("sgd".into())));
        // A number in one run and text in another: text in both.
        assert_eq!(value("mixed", "3"), Some(Kind::Text("3".into())));
        // An option unset in one run leaves the other's number a number.
        assert_eq!(value("clip", "0.5"), Some(Kind::Number(0.5)));
        // A whole number a double holds exactly is a number; one beyond 2^53 is text.
        assert_eq!(value("hidden", "64"), Some(Kind::Number(64.0)));
        assert_eq!(
            value("split_seed", "9007199254740993"),
            Some(Kind::Text("9007199254740993".into()))
        );
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
