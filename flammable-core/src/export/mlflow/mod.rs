//! `export mlflow URI`: runs written to an MLflow tracking server over its REST API — one
//! MLflow experiment per Flammable experiment, one MLflow run per run (tests nested under the
//! run they tested), its hyperparameters as parameters, every metric point, its status and
//! times, the source tags (`mlflow.source.git.commit`, `mlflow.note.content`, …), and its
//! record, hyperparameters and code diff as artifacts.
//!
//! Exporting again updates rather than duplicates: each MLflow run carries the Flammable
//! run's id (tag `flammable.run`) and how far its export got (`flammable.points`, written in
//! the same request as the points, so an interrupted export resumes where it stopped), and a
//! run whose record and points are all there already costs no request.

pub mod batch;
pub mod client;
pub mod keys;

use super::{final_metrics, points_of, CodeDiff};
use crate::error::{Error, Result};
use crate::store::metrics::Point;
use crate::store::record::{Record, RunStatus};
use crate::store::{Store, HYPERPARAMETERS_FILE};
use batch::{chunks, json_len, metric, pair};
use client::{CallError, Client};
use keys::Keys;
use serde_json::{json, Value};
use sha2::Digest as _;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The tag that names the Flammable run an MLflow run is.
pub const RUN_TAG: &str = "flammable.run";
/// The tag that counts the run's metric points written, in the order of its metrics file.
pub const POINTS_TAG: &str = "flammable.points";
/// The tag that names the last point written (`step:time:name`): a metrics file rewritten
/// since (`train --resume` cuts it back to its checkpoint) no longer has it there.
pub const LAST_POINT_TAG: &str = "flammable.points.last";
/// The tag that holds a digest of the ended run's record once it is all written.
pub const RECORD_TAG: &str = "flammable.record";
/// The tag that holds the metric names changed into MLflow keys (JSON: key → name; past
/// MLflow's 8000 characters a tag, continued in `….1`, `….2`, …).
pub const RENAMED_METRICS_TAG: &str = "flammable.renamed.metrics";
/// The tag that holds the hyperparameter names changed into MLflow keys (JSON: key → name).
pub const RENAMED_PARAMS_TAG: &str = "flammable.renamed.params";

/// The longest parameter value MLflow takes.
const MAX_PARAM_VALUE: usize = 6000;
/// The longest tag value MLflow takes.
const MAX_TAG_VALUE: usize = 8000;

/// Where the runs go.
pub struct Target {
    /// The server.
    pub client: Client,
    /// Put before each experiment's name (`/Users/me@example.com/` on Databricks).
    pub prefix: String,
}

/// What an export wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MlflowReport {
    /// Runs exported.
    pub runs: usize,
    /// Of those, runs new to the server.
    pub created: usize,
    /// Of those, runs the server had part of (or an older record of), brought up to date.
    pub updated: usize,
    /// Of those, runs the server had whole already.
    pub unchanged: usize,
    /// Metric points written.
    pub points: usize,
}

/// How far a run's export has got, for `--follow`.
#[derive(Debug)]
pub struct Exported {
    /// The Flammable run.
    pub id: String,
    /// The MLflow run.
    pub run_id: String,
    /// Its artifact location on the server's proxy (`None`: the server does not serve
    /// artifacts).
    artifact_root: Option<String>,
    /// Metric points written.
    pub points: usize,
    /// Whether its end was written.
    pub ended: bool,
    /// The digest of the record as last written whole.
    record: Option<String>,
    metric_keys: Keys,
    /// The MLflow run of the run this one tested, if exported.
    parent_run: Option<String>,
}

/// An MLflow run of a Flammable run, found on the server.
struct Found {
    run_id: String,
    artifact_uri: String,
    tags: HashMap<String, String>,
}

/// Exports `records` (oldest first: a tested run before its tests) to `target`.
pub fn export(
    store: &Store,
    records: &[Record],
    target: &Target,
) -> Result<(MlflowReport, Vec<Exported>)> {
    let client = &target.client;
    let mut experiments: BTreeMap<&str, String> = BTreeMap::new();
    for r in records {
        if !experiments.contains_key(r.experiment.as_str()) {
            let id = experiment_id(client, &format!("{}{}", target.prefix, r.experiment))?;
            experiments.insert(&r.experiment, id);
        }
    }
    let mut found = find_runs(client, experiments.values())?;
    let mut report = MlflowReport::default();
    let mut done = Vec::new();
    let mut warned = false;
    for r in records {
        let experiment = experiments
            .get(r.experiment.as_str())
            .ok_or_else(|| Error::msg("an experiment was not looked up"))?;
        if !still_in_store(store, r) {
            continue;
        }
        let points = points_of(store, r)?;
        if let Some(f) = found.get(&r.id) {
            if rewritten(f, &points) {
                // Points the server holds are gone from the run (a resume cut its metrics
                // back): MLflow cannot delete points, so the run is written anew.
                client.post("runs/delete", &json!({ "run_id": f.run_id }))?;
                found.remove(&r.id);
            }
        }
        let (mut exported, created) = match found.get(&r.id) {
            Some(f) => (resume(r, f, &points), false),
            None => (create(client, experiment, r)?, true),
        };
        if exported.artifact_root.is_none() && !warned {
            warned = true;
            crate::util::stderr::errln!(
                "warning: the MLflow server does not serve artifacts (start it with \
                 --serve-artifacts): records and code diffs left out"
            );
        }
        let parent = r
            .parent
            .as_ref()
            .and_then(|p| found.get(p))
            .map(|f| f.run_id.clone());
        // A test exported before the run it tested: nested now.
        let mut nested = false;
        if let (Some(f), Some(p)) = (found.get(&r.id), &parent) {
            if f.tags.get("mlflow.parentRunId") != Some(p) {
                client.post(
                    "runs/set-tag",
                    &json!({"run_id": f.run_id, "key": "mlflow.parentRunId", "value": p}),
                )?;
                nested = true;
            }
        }
        let unchanged = !created && !nested && is_whole(r, found.get(&r.id), &points);
        if !unchanged {
            exported.parent_run = parent;
            report.points += write_run(store, client, r, &points, &mut exported)?;
        } else {
            exported.ended = true;
        }
        report.runs += 1;
        report.created += usize::from(created);
        report.updated += usize::from(!created && !unchanged);
        report.unchanged += usize::from(unchanged);
        let mut tags = HashMap::new();
        if let Some(p) = &exported.parent_run {
            tags.insert("mlflow.parentRunId".to_string(), p.clone());
        }
        found.insert(
            r.id.clone(),
            Found {
                run_id: exported.run_id.clone(),
                artifact_uri: String::new(),
                tags,
            },
        );
        done.push(exported);
    }
    Ok((report, done))
}

/// Writes what run `r` wrote since `done` says (`--follow`): its new points, and its end
/// once it ended. The number of points written.
pub fn append_run(
    store: &Store,
    client: &Client,
    r: &Record,
    done: &mut Exported,
) -> Result<usize> {
    if done.ended {
        return Ok(0);
    }
    let points = points_of(store, r)?;
    let written = write_points(client, &points, done)?;
    if r.status != RunStatus::Running {
        write_end(store, client, r, &points, done)?;
    }
    Ok(written)
}

/// The id of the MLflow experiment called `name`, made if there is none.
fn experiment_id(client: &Client, name: &str) -> Result<String> {
    let id_of = |answer: &Value| -> Result<String> {
        let e = &answer["experiment"];
        if e["lifecycle_stage"] == "deleted" {
            let id = e["experiment_id"].as_str().unwrap_or("?");
            return Err(Error::msg(format!(
                "the MLflow experiment {name:?} is deleted: restore it (`mlflow experiments \
                 restore --experiment-id {id}`), or remove it for good (`mlflow gc`) to export \
                 into a new one"
            )));
        }
        text(&e["experiment_id"], "experiment_id")
    };
    match client.get("experiments/get-by-name", &[("experiment_name", name)]) {
        Ok(answer) => id_of(&answer),
        Err(CallError::Refused(r)) if r.code == "RESOURCE_DOES_NOT_EXIST" => {
            match client.post("experiments/create", &json!({ "name": name })) {
                Ok(answer) => text(&answer["experiment_id"], "experiment_id"),
                // Made by someone else since.
                Err(CallError::Refused(r)) if r.code == "RESOURCE_ALREADY_EXISTS" => {
                    id_of(&client.get("experiments/get-by-name", &[("experiment_name", name)])?)
                }
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The MLflow runs of Flammable runs in `experiments`, by Flammable id.
fn find_runs<'a>(
    client: &Client,
    experiments: impl Iterator<Item = &'a String>,
) -> Result<HashMap<String, Found>> {
    let ids: Vec<&String> = experiments.collect();
    let mut out = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let mut page_token: Option<String> = None;
    loop {
        let mut body = json!({
            "experiment_ids": ids,
            "filter": format!("tags.`{RUN_TAG}` LIKE '%'"),
            "max_results": 200,
        });
        if let Some(token) = &page_token {
            body["page_token"] = json!(token);
        }
        let answer = client.post("runs/search", &body)?;
        for run in answer["runs"].as_array().into_iter().flatten() {
            let tags: HashMap<String, String> = run["data"]["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| Some((t["key"].as_str()?.into(), t["value"].as_str()?.into())))
                .collect();
            let Some(id) = tags.get(RUN_TAG).cloned() else {
                continue;
            };
            let info = &run["info"];
            let found = Found {
                run_id: text(&info["run_id"], "run_id")?,
                artifact_uri: info["artifact_uri"].as_str().unwrap_or_default().into(),
                tags,
            };
            // Two MLflow runs of one run (two exports at once): the one with most points.
            let points = |f: &Found| f.tags.get(POINTS_TAG).and_then(|p| p.parse::<usize>().ok());
            if out.get(&id).is_none_or(|old| points(old) < points(&found)) {
                out.insert(id, found);
            }
        }
        let next = answer["next_page_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(String::from);
        if next.is_none() || next == page_token {
            return Ok(out);
        }
        page_token = next;
    }
}

/// Where an earlier export of `r` stopped, from its MLflow run's tags: the points written
/// (the first of `points`) and the keys their names were given.
fn resume(r: &Record, f: &Found, points: &[Point]) -> Exported {
    let written: usize = f
        .tags
        .get(POINTS_TAG)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let mut renamed: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in &f.tags {
        if key == RENAMED_METRICS_TAG || key.starts_with(&format!("{RENAMED_METRICS_TAG}.")) {
            if let Ok(part) = serde_json::from_str::<BTreeMap<String, String>>(value) {
                renamed.extend(part);
            }
        }
    }
    let mut metric_keys = Keys::from_renamed(renamed.iter().map(|(k, n)| (k.as_str(), n.as_str())));
    // The names written that were not renamed kept their own keys.
    metric_keys.keep_own(points.iter().take(written).map(|p| &*p.name));
    if f.tags.contains_key(RECORD_TAG) {
        metric_keys.keep_own(final_metrics(r, points).keys().map(String::as_str));
    }
    Exported {
        id: r.id.clone(),
        run_id: f.run_id.clone(),
        artifact_root: artifact_root(&f.artifact_uri),
        points: written,
        ended: false,
        record: f.tags.get(RECORD_TAG).cloned(),
        metric_keys,
        parent_run: None,
    }
}

/// Whether the server holds ended run `r` whole: its record as now, and all its `points`.
fn is_whole(r: &Record, f: Option<&Found>, points: &[Point]) -> bool {
    let Some(f) = f else { return false };
    if r.status == RunStatus::Running || f.tags.get(RECORD_TAG) != Some(&record_digest(r)) {
        return false;
    }
    let written = f.tags.get(POINTS_TAG).map_or(Some(0), |p| p.parse().ok());
    written == Some(points.len())
}

/// Whether the points the server holds of a run are no longer the first of `points`: its
/// metrics file was rewritten since.
fn rewritten(f: &Found, points: &[Point]) -> bool {
    let written: usize = f
        .tags
        .get(POINTS_TAG)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    if written == 0 {
        return false;
    }
    match (points.get(written - 1), f.tags.get(LAST_POINT_TAG)) {
        (Some(p), Some(last)) => *last != point_mark(p),
        (None, _) => true,
        // Written before the mark existed: no proof either way.
        (Some(_), None) => false,
    }
}

/// What [`LAST_POINT_TAG`] holds of point `p`.
fn point_mark(p: &Point) -> String {
    format!("{}:{}:{}", p.step, millis(p.time), p.name)
}

/// A new MLflow run of `r` in `experiment`.
fn create(client: &Client, experiment: &str, r: &Record) -> Result<Exported> {
    let answer = client.post(
        "runs/create",
        &json!({
            "experiment_id": experiment,
            "run_name": r.id,
            "start_time": millis(started(r)),
            "tags": [pair(RUN_TAG, &r.id)],
        }),
    )?;
    let info = &answer["run"]["info"];
    Ok(Exported {
        id: r.id.clone(),
        run_id: text(&info["run_id"], "run_id")?,
        artifact_root: artifact_root(info["artifact_uri"].as_str().unwrap_or_default()),
        points: 0,
        ended: false,
        record: None,
        metric_keys: Keys::default(),
        parent_run: None,
    })
}

/// Everything of `r` the MLflow run lacks: parameters, tags, points, its end, artifacts.
/// The number of points written.
fn write_run(
    store: &Store,
    client: &Client,
    r: &Record,
    points: &[Point],
    done: &mut Exported,
) -> Result<usize> {
    let hyper = super::hyperparameters_of(store, &r.id);
    let param_keys = Keys::of(hyper.keys().map(String::as_str));
    let mut params = Vec::new();
    for (name, value) in &hyper {
        if value.chars().count() > MAX_PARAM_VALUE {
            crate::util::stderr::errln!(
                "warning: run {}: the value of {name} is over MLflow's {MAX_PARAM_VALUE} \
                 characters: cut (the whole is in the run's hyperparameters.ron)",
                r.id
            );
        }
        params.push(pair(
            &param_keys.key(name),
            cut_chars(value, MAX_PARAM_VALUE),
        ));
    }
    let mut tags = source_tags(r, done.parent_run.as_deref());
    tags.extend(renamed_tags(RENAMED_PARAMS_TAG, &param_keys));
    let mut requests: Vec<Value> = Vec::new();
    for chunk in chunks(&params, batch::MAX_PARAMS, batch::MAX_BYTES / 2, json_len) {
        requests.push(json!({"run_id": done.run_id, "params": chunk}));
    }
    for chunk in chunks(&tags, batch::MAX_TAGS, batch::MAX_BYTES / 2, json_len) {
        requests.push(json!({"run_id": done.run_id, "tags": chunk}));
    }
    for body in &requests {
        client.post("runs/log-batch", body)?;
    }
    let written = write_points(client, points, done)?;
    if r.status == RunStatus::Running {
        // Running (again, after a resume): not the end an earlier export wrote.
        client.post(
            "runs/update",
            &json!({"run_id": done.run_id, "status": status(r.status)}),
        )?;
        put_artifacts(client, r, store, done)?;
    } else {
        write_end(store, client, r, points, done)?;
    }
    Ok(written)
}

/// The tags MLflow's own clients set, and the run's place in Flammable.
fn source_tags(r: &Record, parent: Option<&str>) -> Vec<Value> {
    let mut tags = vec![
        pair("mlflow.source.type", "LOCAL"),
        // The program, as MLflow names a script: its file name.
        pair(
            "mlflow.source.name",
            r.argv
                .first()
                .and_then(|a| std::path::Path::new(a).file_name()?.to_str())
                .unwrap_or(r.experiment.as_str()),
        ),
        pair("flammable.kind", &r.kind.to_string()),
        pair("flammable.seed", &r.seed.to_string()),
        pair("flammable.host", &r.environment.host),
        pair("flammable.device", &r.environment.device),
        pair(
            "flammable.command",
            tag_value(
                r,
                "flammable.command",
                &r.argv
                    .iter()
                    .map(|a| crate::util::shell::word(a))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        ),
    ];
    if let Some(s) = &r.snapshot {
        // MLflow's commit is the one a checkout of the repository has: the run's base. The
        // snapshot (the code as it ran, uncommitted changes included) is Flammable's.
        if let Some(base) = &s.parent {
            tags.push(pair("mlflow.source.git.commit", base));
        }
        tags.push(pair("flammable.commit", &s.commit));
    }
    // MLflow's description of a run: the message, then the note written since.
    let note: Vec<&str> = [r.message.as_deref(), r.note.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if !note.is_empty() {
        tags.push(pair(
            "mlflow.note.content",
            tag_value(r, "mlflow.note.content", &note.join("\n\n")),
        ));
    }
    // Always sent, so that an export after the last tag went clears it.
    tags.push(pair(
        "flammable.tags",
        tag_value(r, "flammable.tags", &r.tags.join(" ")),
    ));
    if let Some(p) = parent {
        tags.push(pair("mlflow.parentRunId", p));
    }
    for (name, value) in [
        ("flammable.parent", &r.parent),
        ("flammable.sweep", &r.sweep),
        ("flammable.rerun_of", &r.rerun_of),
        ("flammable.checkpoint", &r.checkpoint),
        ("flammable.error", &r.error),
    ] {
        if let Some(v) = value {
            tags.push(pair(name, tag_value(r, name, v)));
        }
    }
    tags
}

/// Writes `points` past those `done` counts, each request with the count it brings the run
/// to (so a request lost half way is sent again, never twice). The number written.
fn write_points(client: &Client, points: &[Point], done: &mut Exported) -> Result<usize> {
    let new = points.get(done.points..).unwrap_or_default();
    if new.is_empty() {
        return Ok(0);
    }
    let before = done.metric_keys.renamed().len();
    done.metric_keys.extend(new.iter().map(|p| &*p.name));
    let renamed_tags = if done.metric_keys.renamed().len() != before {
        renamed_tags(RENAMED_METRICS_TAG, &done.metric_keys)
    } else {
        Vec::new()
    };
    let metrics: Vec<Value> = new
        .iter()
        .map(|p| {
            metric(
                &done.metric_keys.key(&p.name),
                p.value,
                millis(p.time),
                i64::try_from(p.step).unwrap_or(i64::MAX),
            )
        })
        .collect();
    // The count and the last point ride with each request; the names' changes with the
    // first (the keys of its points among them).
    let per_request = batch::MAX_METRICS - 2 - renamed_tags.len();
    let mut count = done.points;
    for (i, chunk) in chunks(&metrics, per_request, batch::MAX_BYTES - 90_000, json_len)
        .into_iter()
        .enumerate()
    {
        count += chunk.len();
        let mut tags = vec![pair(POINTS_TAG, &count.to_string())];
        if let Some(last) = points.get(count - 1) {
            tags.push(pair(LAST_POINT_TAG, &point_mark(last)));
        }
        if i == 0 {
            tags.extend(renamed_tags.iter().cloned());
        }
        client.post(
            "runs/log-batch",
            &json!({"run_id": done.run_id, "metrics": chunk, "tags": tags}),
        )?;
        done.points = count;
    }
    Ok(new.len())
}

/// `keys`' renamed names as tags `name`, `name.1`, … of at most MLflow's 8000 characters.
fn renamed_tags(name: &str, keys: &Keys) -> Vec<Value> {
    let mut parts: Vec<BTreeMap<&str, &str>> = vec![BTreeMap::new()];
    for (key, original) in keys.renamed() {
        let last = parts.len() - 1;
        parts[last].insert(key, original);
        if json!(parts[last]).to_string().len() > MAX_TAG_VALUE {
            parts[last].remove(key);
            parts.push(BTreeMap::from([(key, original)]));
        }
    }
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .enumerate()
        .map(|(i, p)| {
            let tag = if i == 0 {
                name.to_string()
            } else {
                format!("{name}.{i}")
            };
            pair(&tag, &json!(p).to_string())
        })
        .collect()
}

/// Ended run `r`'s end: its final metrics that no series holds (at its last step, stamped
/// now, so that a later test's results are the latest), its status and end time, its tags
/// and artifacts as its record now says (a run followed from its start had no snapshot yet).
fn write_end(
    store: &Store,
    client: &Client,
    r: &Record,
    points: &[Point],
    done: &mut Exported,
) -> Result<()> {
    let digest = record_digest(r);
    if done.record.as_deref() == Some(digest.as_str()) {
        done.ended = true;
        return Ok(());
    }
    let finals = final_metrics(r, points);
    done.metric_keys.extend(finals.keys().map(String::as_str));
    let step = points.iter().map(|p| p.step).max().unwrap_or(0);
    // A test's results are stamped with the end of the test run that measured them (so the
    // latest test's are the latest), the run's own final metrics with its end.
    let end = millis(ended(r, points));
    let tested = r
        .tests
        .last()
        .and_then(|t| store.read(&t.run).ok())
        .and_then(|t| {
            t.ended
                .as_deref()
                .and_then(crate::store::progress::parse_time)
        })
        .map_or(end, millis);
    let metrics: Vec<Value> = finals
        .iter()
        .map(|(name, value)| {
            let stamp = if name.starts_with("test/") {
                tested
            } else {
                end
            };
            metric(
                &done.metric_keys.key(name),
                *value,
                stamp,
                i64::try_from(step).unwrap_or(i64::MAX),
            )
        })
        .collect();
    if !still_in_store(store, r) {
        // Removed while it was written: what was read of it may be short. Without the
        // digest, an export after `flammable restore` writes it again.
        done.ended = true;
        return Ok(());
    }
    let mut tags = source_tags(r, done.parent_run.as_deref());
    tags.push(pair(RECORD_TAG, &digest));
    tags.push(pair(POINTS_TAG, &done.points.to_string()));
    tags.extend(renamed_tags(RENAMED_METRICS_TAG, &done.metric_keys));
    put_artifacts(client, r, store, done)?;
    client.post(
        "runs/update",
        &json!({
            "run_id": done.run_id,
            "status": status(r.status),
            // Never before its last point: a later test's results included.
            "end_time": end.max(tested),
        }),
    )?;
    // The digest last: a run whose end was cut short is written again.
    client.post(
        "runs/log-batch",
        &json!({"run_id": done.run_id, "metrics": metrics, "tags": tags}),
    )?;
    done.record = Some(digest);
    done.ended = true;
    Ok(())
}

/// Whether run `r`'s folder is still in the store; when it is not (`flammable rm` while the
/// export ran), says so on stderr: its MLflow run, if made, is left as far as it was written,
/// and is completed by an export after `flammable restore`.
fn still_in_store(store: &Store, r: &Record) -> bool {
    let there = store.run_dir(&r.id).is_dir();
    if !there {
        crate::util::stderr::errln!(
            "warning: run {} was removed from the store during the export: not exported in \
             full (`flammable restore {}`, then export again)",
            r.id,
            r.id
        );
    }
    there
}

/// The run's record (JSON), hyperparameters and code diff, under `flammable/`.
fn put_artifacts(client: &Client, r: &Record, store: &Store, done: &Exported) -> Result<()> {
    let Some(root) = &done.artifact_root else {
        return Ok(());
    };
    let record = serde_json::to_vec_pretty(r).map_err(Error::msg)?;
    client.put_artifact(root, "flammable/record.json", &record)?;
    let hyper = store.run_dir(&r.id).join(HYPERPARAMETERS_FILE);
    if let Ok(bytes) = std::fs::read(&hyper) {
        client.put_artifact(root, "flammable/hyperparameters.ron", &bytes)?;
    }
    if let CodeDiff::Changes { changes, .. } = CodeDiff::of(r) {
        let patch: String = changes.iter().map(|c| c.patch.as_str()).collect();
        if !patch.is_empty() {
            client.put_artifact(root, "flammable/code.diff", patch.as_bytes())?;
        }
    }
    Ok(())
}

/// MLflow's status of a run's.
fn status(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Running => "RUNNING",
        RunStatus::Finished => "FINISHED",
        RunStatus::Failed | RunStatus::Crashed => "FAILED",
        // Stopped by the user.
        RunStatus::Interrupted => "KILLED",
    }
}

/// The part of an artifact URI the server's proxy serves (`mlflow-artifacts:/1/<run>/artifacts`
/// or `mlflow-artifacts://host/1/<run>/artifacts` → `1/<run>/artifacts`).
fn artifact_root(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("mlflow-artifacts:")?;
    let path = match rest.strip_prefix("//") {
        Some(authority_and_path) => authority_and_path.split_once('/')?.1,
        None => rest.trim_start_matches('/'),
    };
    Some(path.trim_end_matches('/').to_string()).filter(|p| !p.is_empty())
}

/// A digest of the record as exported: an ended run whose record and points are on the
/// server is not written again.
fn record_digest(r: &Record) -> String {
    let json = serde_json::to_vec(r).unwrap_or_default();
    crate::store::hashes::hex(&sha2::Sha256::digest(json))[..32].to_string()
}

fn started(r: &Record) -> f64 {
    crate::store::progress::parse_time(&r.started).unwrap_or(0.0)
}

/// When the run ended: its record's end (whole seconds) or its last point, whichever is
/// later; a run whose process died without saying ends at its last point, else its start.
fn ended(r: &Record, points: &[Point]) -> f64 {
    let last = points.iter().map(|p| p.time).reduce(f64::max);
    let recorded = r
        .ended
        .as_deref()
        .and_then(crate::store::progress::parse_time);
    match (recorded, last) {
        (Some(e), Some(l)) => e.max(l),
        (e, l) => e.or(l).unwrap_or_else(|| started(r)),
    }
}

/// Seconds since the epoch as MLflow's milliseconds.
fn millis(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

/// `value` as the value of run `r`'s tag `name`: its first [`MAX_TAG_VALUE`] characters, with
/// a warning when that cuts it.
fn tag_value<'a>(r: &Record, name: &str, value: &'a str) -> &'a str {
    // Said once a run and tag: an export sends a run's tags when it starts it and again when
    // it ends it.
    static WARNED: std::sync::Mutex<BTreeSet<(String, String)>> =
        std::sync::Mutex::new(BTreeSet::new());
    let cut = cut_chars(value, MAX_TAG_VALUE);
    let first = || {
        WARNED
            .lock()
            .map(|mut w| w.insert((r.id.clone(), name.to_string())))
            .unwrap_or(true)
    };
    if cut.len() < value.len() && first() {
        crate::util::stderr::errln!(
            "warning: run {}: its tag {name} is over MLflow's {MAX_TAG_VALUE} characters: cut \
             (the whole is in the run's record)",
            r.id
        );
    }
    cut
}

/// The first `n` characters of `s`.
fn cut_chars(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

/// A text field of an answer, or an error naming it.
fn text(value: &Value, name: &str) -> Result<String> {
    value.as_str().map(String::from).ok_or_else(|| {
        Error::msg(format!(
            "the MLflow server's answer has no {name}: is it an MLflow tracking server?"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_uris_of_the_servers_proxy_give_their_path() {
        assert_eq!(
            artifact_root("mlflow-artifacts:/1/abc/artifacts").as_deref(),
            Some("1/abc/artifacts")
        );
        assert_eq!(
            artifact_root("mlflow-artifacts://srv:5000/7/abc/artifacts/").as_deref(),
            Some("7/abc/artifacts")
        );
        assert_eq!(artifact_root("s3://bucket/1/abc/artifacts"), None);
        assert_eq!(artifact_root("/srv/mlruns/1/abc/artifacts"), None);
    }

    #[test]
    fn a_metrics_file_cut_back_since_the_last_export_is_seen() {
        let p = |step: u64, time: f64| Point {
            name: "loss".into(),
            step,
            epoch: 0,
            value: 1.0,
            time,
        };
        let points = vec![p(0, 10.0), p(1, 11.0), p(2, 12.0)];
        let found = |written: usize, last: &Point| Found {
            run_id: "r".into(),
            artifact_uri: String::new(),
            tags: HashMap::from([
                (POINTS_TAG.to_string(), written.to_string()),
                (LAST_POINT_TAG.to_string(), point_mark(last)),
            ]),
        };
        assert!(!rewritten(&found(2, &points[1]), &points));
        // A resume rewrote step 1 at another time, or cut the file shorter.
        assert!(rewritten(&found(2, &p(1, 99.0)), &points));
        assert!(rewritten(&found(4, &p(3, 13.0)), &points));
        // Nothing written yet: nothing to contradict.
        assert!(!rewritten(&found(0, &points[0]), &points));
    }

    #[test]
    fn statuses_and_times_as_mlflow_takes_them() {
        assert_eq!(status(RunStatus::Crashed), "FAILED");
        assert_eq!(status(RunStatus::Interrupted), "KILLED");
        assert_eq!(millis(1_700_000_000.123_4), 1_700_000_000_123);
        assert_eq!(cut_chars("héllo", 2), "hé");
        assert_eq!(cut_chars("hi", 5), "hi");
    }
}
