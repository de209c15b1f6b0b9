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
use std::collections::{BTreeMap, HashMap};

/// The tag that names the Flammable run an MLflow run is.
pub const RUN_TAG: &str = "flammable.run";
/// The tag that counts the run's metric points written, in the order of its metrics file.
pub const POINTS_TAG: &str = "flammable.points";
/// The tag that holds a digest of the ended run's record once it is all written.
pub const RECORD_TAG: &str = "flammable.record";
/// The tag that holds the metric names changed into MLflow keys (JSON: key → name).
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
    /// Of those, runs the server had whole already.
    pub unchanged: usize,
    /// Metric points written.
    pub points: usize,
    /// Requests sent.
    pub requests: usize,
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
        let (mut exported, created) = match found.get(&r.id) {
            Some(f) => (resume(r, f), false),
            None => (create(client, experiment, r)?, true),
        };
        if exported.artifact_root.is_none() && !warned {
            warned = true;
            crate::util::stderr::errln!(
                "warning: the MLflow server does not serve artifacts (start it with \
                 --serve-artifacts): records and code diffs left out"
            );
        }
        let unchanged = !created && is_whole(store, r, found.get(&r.id))?;
        if !unchanged {
            let parent = r
                .parent
                .as_ref()
                .and_then(|p| found.get(p))
                .map(|f| f.run_id.clone());
            exported.parent_run = parent;
            report.points += write_run(store, client, r, &mut exported)?;
        } else {
            exported.ended = true;
        }
        report.runs += 1;
        report.created += usize::from(created);
        report.unchanged += usize::from(unchanged);
        found.insert(
            r.id.clone(),
            Found {
                run_id: exported.run_id.clone(),
                artifact_uri: String::new(),
                tags: HashMap::new(),
            },
        );
        done.push(exported);
    }
    report.requests = client.requests();
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
            return Err(Error::msg(format!(
                "the MLflow experiment {name:?} is deleted: restore it (`mlflow experiments \
                 restore`), or remove it for good (`mlflow gc`) to export into a new one"
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
            "max_results": 1000,
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
        page_token = answer["next_page_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(String::from);
        if page_token.is_none() {
            return Ok(out);
        }
    }
}

/// Where an earlier export of `r` stopped, from its MLflow run's tags.
fn resume(r: &Record, f: &Found) -> Exported {
    let renamed: BTreeMap<String, String> = f
        .tags
        .get(RENAMED_METRICS_TAG)
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    Exported {
        id: r.id.clone(),
        run_id: f.run_id.clone(),
        artifact_root: artifact_root(&f.artifact_uri),
        points: f
            .tags
            .get(POINTS_TAG)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0),
        ended: false,
        record: f.tags.get(RECORD_TAG).cloned(),
        metric_keys: Keys::from_renamed(renamed.iter().map(|(k, n)| (k.as_str(), n.as_str()))),
        parent_run: None,
    }
}

/// Whether the server holds ended run `r` whole: its record as now, and all its points.
fn is_whole(store: &Store, r: &Record, f: Option<&Found>) -> Result<bool> {
    let Some(f) = f else { return Ok(false) };
    if r.status == RunStatus::Running || f.tags.get(RECORD_TAG) != Some(&record_digest(r)) {
        return Ok(false);
    }
    let written = f.tags.get(POINTS_TAG).map_or(Some(0), |p| p.parse().ok());
    Ok(written == Some(points_of(store, r)?.len()))
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
fn write_run(store: &Store, client: &Client, r: &Record, done: &mut Exported) -> Result<usize> {
    let hyper = crate::hyper::read_flat(&store.run_dir(&r.id).join(HYPERPARAMETERS_FILE));
    let param_keys = Keys::of(hyper.keys().map(String::as_str));
    let mut params = Vec::new();
    for (name, value) in &hyper {
        if value.chars().count() > MAX_PARAM_VALUE {
            crate::util::stderr::errln!(
                "warning: run {}: the value of {name} is over MLflow's {MAX_PARAM_VALUE} \
                 characters: cut (the whole is in the artifact flammable/hyperparameters.ron)",
                r.id
            );
        }
        params.push(pair(
            &param_keys.key(name),
            cut_chars(value, MAX_PARAM_VALUE),
        ));
    }
    let mut tags = source_tags(r, done.parent_run.as_deref());
    let renamed = param_keys.renamed();
    if !renamed.is_empty() {
        tags.push(pair(RENAMED_PARAMS_TAG, &json!(renamed).to_string()));
    }
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
    let points = points_of(store, r)?;
    let written = write_points(client, &points, done)?;
    if r.status == RunStatus::Running {
        put_artifacts(client, r, store, done)?;
    } else {
        write_end(store, client, r, &points, done)?;
    }
    Ok(written)
}

/// The tags MLflow's own clients set, and the run's place in Flammable.
fn source_tags(r: &Record, parent: Option<&str>) -> Vec<Value> {
    let mut tags = vec![
        pair("mlflow.source.type", "LOCAL"),
        pair(
            "mlflow.source.name",
            r.argv.first().map_or(r.experiment.as_str(), String::as_str),
        ),
        pair("flammable.kind", &r.kind.to_string()),
        pair("flammable.seed", &r.seed.to_string()),
        pair("flammable.host", &r.environment.host),
        pair("flammable.device", &r.environment.device),
        pair(
            "flammable.command",
            cut_chars(
                &r.argv
                    .iter()
                    .map(|a| crate::util::shell::word(a))
                    .collect::<Vec<_>>()
                    .join(" "),
                MAX_TAG_VALUE,
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
    if let Some(message) = &r.message {
        tags.push(pair(
            "mlflow.note.content",
            cut_chars(message, MAX_TAG_VALUE),
        ));
    }
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
            tags.push(pair(name, cut_chars(v, MAX_TAG_VALUE)));
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
    let renamed = done.metric_keys.renamed();
    let renamed_tag = (renamed.len() != before).then(|| json!(renamed).to_string());
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
    // One tag (the count) rides with each request; the names' changes with the first.
    let per_request = batch::MAX_METRICS - 2;
    let mut count = done.points;
    for (i, chunk) in chunks(&metrics, per_request, batch::MAX_BYTES - 16_384, json_len)
        .into_iter()
        .enumerate()
    {
        count += chunk.len();
        let mut tags = vec![pair(POINTS_TAG, &count.to_string())];
        if let (0, Some(t)) = (i, &renamed_tag) {
            if t.len() <= MAX_TAG_VALUE {
                tags.push(pair(RENAMED_METRICS_TAG, t));
            }
        }
        client.post(
            "runs/log-batch",
            &json!({"run_id": done.run_id, "metrics": chunk, "tags": tags}),
        )?;
        done.points = count;
    }
    Ok(new.len())
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
    let now = millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64(),
    );
    let metrics: Vec<Value> = finals
        .iter()
        .map(|(name, value)| {
            metric(
                &done.metric_keys.key(name),
                *value,
                now,
                i64::try_from(step).unwrap_or(i64::MAX),
            )
        })
        .collect();
    let mut tags = source_tags(r, done.parent_run.as_deref());
    tags.push(pair(RECORD_TAG, &digest));
    let renamed = json!(done.metric_keys.renamed()).to_string();
    if renamed.len() <= MAX_TAG_VALUE && renamed != "{}" {
        tags.push(pair(RENAMED_METRICS_TAG, &renamed));
    }
    put_artifacts(client, r, store, done)?;
    client.post(
        "runs/update",
        &json!({
            "run_id": done.run_id,
            "status": status(r.status),
            "end_time": millis(ended(r, points)),
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

/// When the run ended: its record's end, else (a process that died without saying) its
/// last point's time, else its start.
fn ended(r: &Record, points: &[Point]) -> f64 {
    r.ended
        .as_deref()
        .and_then(crate::store::progress::parse_time)
        .or_else(|| points.iter().map(|p| p.time).reduce(f64::max))
        .unwrap_or_else(|| started(r))
}

/// Seconds since the epoch as MLflow's milliseconds.
fn millis(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
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
    fn statuses_and_times_as_mlflow_takes_them() {
        assert_eq!(status(RunStatus::Crashed), "FAILED");
        assert_eq!(status(RunStatus::Interrupted), "KILLED");
        assert_eq!(millis(1_700_000_000.123_4), 1_700_000_000_123);
        assert_eq!(cut_chars("héllo", 2), "hé");
        assert_eq!(cut_chars("hi", 5), "hi");
    }
}
