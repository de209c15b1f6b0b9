//! `GET /openapi.json`: the browser's JSON API (and the chart and file downloads) as an
//! OpenAPI 3.1 document. The pages themselves are HTML for people, not described. Its
//! examples name what the store holds (the newest train run, one of its metrics, a file of its
//! code), so that a client generated from it, or a fuzzer, starts from requests that work.

use super::api::blocking;
use super::read;
use super::state::AppState;
use crate::snapshot;
use crate::store::record::RunKind;
use crate::web::openapi::{
    add, add_document_itself, document, example, integer, json_response, operation, path_parameter,
    query_parameter, required, responses, schema, text_response,
};
use crate::web::AppError;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// `GET /openapi.json`.
pub async fn ui_document(State(state): State<Arc<AppState>>) -> Result<Json<Value>, AppError> {
    blocking(&state, |s| Ok(Json(describe(&Examples::of(s))))).await
}

/// What the document's examples name: the newest train run with a code snapshot, its first
/// metric and the first file of its code (each `None` where the store has none).
#[derive(Default)]
pub struct Examples {
    run: Option<String>,
    /// The train run before it, to diff with (else the same run).
    earlier: Option<String>,
    metric: Option<String>,
    code_file: Option<String>,
    /// Whether the server needs a token.
    token: bool,
}

impl Examples {
    fn of(s: &AppState) -> Examples {
        let snapshot = s.index.snapshot();
        let token = s.access.token.is_some();
        let mut trains = snapshot
            .runs
            .iter()
            .rev()
            .filter(|r| r.kind == RunKind::Train);
        let Some(run) = trains.next() else {
            return Examples {
                token,
                ..Examples::default()
            };
        };
        let earlier = trains.next().unwrap_or(run).id.clone();
        let metric = read::all_series(s, &run.id)
            .into_iter()
            .next()
            .map(|(name, _)| name);
        let code_file = read::record(s, &run.id).ok().and_then(|(_, record)| {
            let snap = read::snapshot_of(&record).ok()?;
            let files = snapshot::tree_files(&snap.git_dir, &snap.commit).ok()?;
            files.into_iter().next().map(|f| f.path)
        });
        Examples {
            run: Some(run.id.clone()),
            earlier: Some(earlier),
            metric,
            code_file,
            token,
        }
    }
}

/// `parameter` with `value` as its example, where there is one.
fn maybe(parameter: Value, value: &Option<String>) -> Value {
    match value {
        Some(v) => example(parameter, v),
        None => parameter,
    }
}

/// A run named in a path: its id or an unambiguous prefix.
fn run_parameter(examples: &Examples) -> Value {
    maybe(
        path_parameter("id", "a run: its id, or an unambiguous prefix of it"),
        &examples.run,
    )
}

/// The refusals of an operation on one run.
const ONE_RUN: &[(&str, &str)] = &[
    (
        "400",
        "a parameter out of its range, or a prefix several runs share",
    ),
    ("404", "no such run"),
];

/// The runs table's filter and sort (`q`, `sort`, `order`).
fn list_parameters() -> Vec<Value> {
    vec![
                query_parameter(
                    "q",
                    "the filter, as typed in the browser (`status:finished tag:best lr>0.01 test/accuracy>=0.9`, free words match the message, note, tags, id or experiment)",
                    json!({ "type": "string" }),
                ),
                query_parameter(
                    "sort",
                    "started (or id), experiment, kind, status, duration, message, metric:NAME or param:NAME",
                    json!({
                        "type": "string",
                        "pattern": "^(|started|id|experiment|kind|status|duration|message|metric:[\\s\\S]+|param:[\\s\\S]+)$",
                    }),
                ),
                query_parameter(
                    "order",
                    "asc or desc",
                    json!({ "enum": ["", "asc", "desc"] }),
                ),
    ]
}

/// `group`: what runs are grouped by. Names must be hyperparameters some run has (`*` and
/// `none` stand alone).
fn group_parameter(what: &str) -> Value {
    query_parameter(
        "group",
        what,
        json!({ "anyOf": [
            { "enum": ["", "*", "none"] },
            { "type": "string", "pattern": "^[^*]*$" }
        ] }),
    )
}

/// The runs a chart or download is of.
fn runs_parameter(examples: &Examples) -> Value {
    required(maybe(
        query_parameter(
            "runs",
            "the runs, comma-separated (ids or prefixes; `runs` may also repeat)",
            json!({ "type": "string", "pattern": "[^,\\s]" }),
        ),
        &examples.run,
    ))
}

/// The metric a series, chart or download is of.
fn metric_parameter(examples: &Examples) -> Value {
    required(maybe(
        query_parameter(
            "name",
            "the metric",
            json!({ "type": "string", "minLength": 1 }),
        ),
        &examples.metric,
    ))
}

/// A step bound: a number, rounded, at least 0; empty, none.
fn step(name: &str, what: &str) -> Value {
    query_parameter(
        name,
        what,
        json!({ "anyOf": [{ "type": "number" }, { "const": "" }] }),
    )
}

/// A JSON answer that lists values of schema `name`.
fn list_of(description: &str, name: &str) -> Value {
    json_response(
        description,
        json!({ "type": "array", "items": schema(name) }),
    )
}

/// The document.
pub fn describe(examples: &Examples) -> Value {
    let mut paths = Map::new();
    add_document_itself(&mut paths);
    add(
        &mut paths,
        "/api/runs",
        "get",
        operation(
            "The runs table: filtered, sorted, one page of it",
            [
                list_parameters(),
                vec![
                    query_parameter("page", "the page, from 1", integer(1, u64::MAX)),
                    query_parameter("per_page", "rows a page (default 100; groups, when grouped)", integer(1, 1000)),
                    group_parameter("group the runs: `*` for every hyperparameter but the seed, hyperparameter names separated by commas, or `none`; absent, a `sweep:` filter groups by `*`. Grouped, a page is of groups (`groups`), and `runs` holds their runs"),
                ],
            ]
            .concat(),
            responses(
                json_response("one page of runs", schema("RunPage")),
                &[(
                    "400",
                    "a filter or sort key that cannot be read, or a parameter out of its range",
                )],
            ),
        ),
    );
    add(
        &mut paths,
        "/api/runs/{id}",
        "get",
        operation(
            "One run: its summary, its whole record, its tests and evals, its series, its files",
            vec![run_parameter(examples)],
            responses(json_response("the run", schema("RunDetail")), ONE_RUN),
        ),
    );
    add(
        &mut paths,
        "/api/runs/{id}/live",
        "get",
        operation(
            "What a running run's page refreshes: its summary and progress",
            vec![run_parameter(examples)],
            responses(
                json_response("the run's summary", schema("Summary")),
                ONE_RUN,
            ),
        ),
    );
    add(
        &mut paths,
        "/api/runs/{id}/series",
        "get",
        operation(
            "One metric, downsampled to first, min, max and last point per bucket over the step range",
            vec![
                run_parameter(examples),
                metric_parameter(examples),
                query_parameter("buckets", "buckets (default 1000)", integer(1, 100_000)),
                step("from", "the first step"),
                step("to", "the last step"),
            ],
            responses(
                json_response("the points", schema("Series")),
                &[
                    ("400", "no metric named, or a parameter out of its range"),
                    ("404", "no such run, or no such metric in it"),
                ],
            ),
        ),
    );
    add(
        &mut paths,
        "/api/runs/{id}/log",
        "get",
        operation(
            "The end of the run's log",
            vec![
                run_parameter(examples),
                query_parameter("lines", "lines (default 200)", integer(1, 100_000)),
            ],
            responses(
                text_response("the log's last lines", "text/plain; charset=utf-8"),
                ONE_RUN,
            ),
        ),
    );
    add(
        &mut paths,
        "/api/runs/{id}/files",
        "get",
        operation(
            "The files of the run's folder",
            vec![run_parameter(examples)],
            responses(list_of("the files, by path", "RunFile"), ONE_RUN),
        ),
    );
    let code_refusals = [
        ("400", "a prefix several runs share"),
        ("404", "no such run, file, or snapshot"),
    ];
    add(
        &mut paths,
        "/api/runs/{id}/tree",
        "get",
        operation(
            "The files of the run's code snapshot",
            vec![run_parameter(examples)],
            responses(list_of("the snapshot's files", "TreeFile"), &code_refusals),
        ),
    );
    add(
        &mut paths,
        "/api/runs/{id}/code/{path}",
        "get",
        operation(
            "One file of the run's code snapshot, as text (or bytes), never as a page",
            vec![
                run_parameter(examples),
                maybe(
                    path_parameter("path", "the file's path in the snapshot"),
                    &examples.code_file,
                ),
            ],
            responses(
                json!({
                    "description": "the file",
                    "content": {
                        "text/plain; charset=utf-8": { "schema": { "type": "string" } },
                        "application/octet-stream": { "schema": { "type": "string", "format": "binary" } },
                    },
                }),
                &code_refusals,
            ),
        ),
    );
    add(
        &mut paths,
        "/api/runs/{id}/changes",
        "get",
        operation(
            "The uncommitted changes the run ran with, against its base commit",
            vec![run_parameter(examples)],
            responses(list_of("the changed files", "Change"), &code_refusals),
        ),
    );
    add(
        &mut paths,
        "/api/diff",
        "get",
        operation(
            "The code diff between two runs' snapshots",
            vec![
                required(maybe(
                    query_parameter(
                        "a",
                        "the first run",
                        json!({ "type": "string", "minLength": 1 }),
                    ),
                    &examples.earlier,
                )),
                required(maybe(
                    query_parameter(
                        "b",
                        "the second run",
                        json!({ "type": "string", "minLength": 1 }),
                    ),
                    &examples.run,
                )),
            ],
            responses(
                list_of("the changed files", "Change"),
                &[
                    ("400", "a run not named, or a prefix several runs share"),
                    ("404", "no such run, or no snapshot"),
                ],
            ),
        ),
    );
    add(
        &mut paths,
        "/chart",
        "get",
        operation(
            "One metric of one or more runs as an SVG chart",
            vec![
                runs_parameter(examples),
                metric_parameter(examples),
                query_parameter("width", "pixels (default 640)", integer(120, 4000)),
                query_parameter("height", "pixels (default 240)", integer(80, 2000)),
                step("from", "the first x shown, in the x axis's unit"),
                step("to", "the last x shown, in the x axis's unit"),
                query_parameter(
                    "smooth",
                    "smoothing on every point before downsampling, the raw line kept faint: `ema:W` (debiased exponential moving average, W from 0 to below 1) or `mean:N` (trailing mean of N points, 1 to 100000)",
                    json!({ "anyOf": [
                        { "type": "string", "pattern": "^(ema|mean):" },
                        { "enum": ["", "none"] }
                    ] }),
                ),
                query_parameter(
                    "x",
                    "the x axis: step, epoch (with how far into it), time (since the run started) or wall (UTC clock time)",
                    json!({ "enum": ["", "step", "epoch", "time", "wall"] }),
                ),
                query_parameter(
                    "y",
                    "the y scale (log leaves out values that are not positive)",
                    json!({ "enum": ["", "linear", "log"] }),
                ),
                group_parameter("one line a group of runs, their mean with a band: `*` for every hyperparameter but the seed, hyperparameter names separated by commas, or `none` (absent: none)"),
                query_parameter(
                    "band",
                    "what a group's band spans: minmax (default) or std (the mean ± one standard deviation)",
                    json!({ "enum": ["", "minmax", "std"] }),
                ),
                query_parameter(
                    "download",
                    "1: a file to save, its style inside it",
                    json!({ "enum": ["", "0", "1", "true", "false", "yes", "no"] }),
                ),
            ],
            responses(
                text_response("the chart", "image/svg+xml"),
                &[
                    (
                        "400",
                        "no run or metric named, too many runs, or a parameter out of its range",
                    ),
                    ("404", "no such run"),
                ],
            ),
        ),
    );
    add(
        &mut paths,
        "/series.csv",
        "get",
        operation(
            "Every point of one metric of one or more runs, raw (not downsampled), as CSV: run,name,step,epoch,value,time",
            vec![
                runs_parameter(examples),
                metric_parameter(examples),
            ],
            responses(
                text_response("the points", "text/csv"),
                &[
                    ("400", "no run or metric named, or too many runs"),
                    ("404", "no such run"),
                ],
            ),
        ),
    );
    add(
        &mut paths,
        "/runs.csv",
        "get",
        operation(
            "Every run the filter matches (not one page), sorted, as CSV: the table's columns, then metrics.NAME and params.NAME",
            list_parameters(),
            responses(
                text_response("the runs", "text/csv"),
                &[("400", "a filter or sort key that cannot be read")],
            ),
        ),
    );
    add(
        &mut paths,
        "/files/{id}/{path}",
        "get",
        operation(
            "One file of the run's folder, to download",
            vec![
                run_parameter(examples),
                example(
                    path_parameter(
                        "path",
                        "its path in the folder (`url_path` of `/api/runs/{id}/files`)",
                    ),
                    crate::store::RECORD_FILE,
                ),
            ],
            responses(
                json!({
                    "description": "the file's bytes",
                    "content": { "*/*": { "schema": { "type": "string", "format": "binary" } } },
                }),
                &[
                    ("400", "a prefix several runs share"),
                    ("404", "no such run, or no such file in it"),
                ],
            ),
        ),
    );
    document(
        "flammable ui",
        "The experiment browser's JSON API: the runs table, one run's record, series, log, files and code, and the code diff between runs. Runs are named by id or an unambiguous prefix.",
        paths,
        schemas(),
        examples.token,
    )
}

/// The named schemas.
fn schemas() -> Value {
    let maybe_string = json!({ "type": ["string", "null"] });
    let maybe_number = json!({ "type": ["number", "null"] });
    let maybe_count = json!({ "type": ["integer", "null"], "minimum": 0 });
    json!({
        "Summary": {
            "type": "object",
            "required": ["id", "experiment", "kind", "status", "message", "started", "metrics", "hyper", "tags", "note"],
            "properties": {
                "id": { "type": "string" },
                "experiment": { "type": "string" },
                "kind": { "enum": ["train", "test", "eval", "serve"] },
                "status": { "enum": ["running", "finished", "failed", "interrupted", "crashed"] },
                "parent": maybe_string,
                "sweep": maybe_string,
                "seed": { "type": "integer", "minimum": 0, "description": "the seed (also among hyper, as `seed`, unless the task has a hyperparameter of that name)" },
                "message": { "type": "string" },
                "started": { "type": "string", "description": "RFC 3339" },
                "duration": maybe_number,
                "metrics": {
                    "type": "object",
                    "description": "final metrics, and the last test's as test/NAME (null: not a finite number)",
                    "additionalProperties": maybe_number,
                },
                "hyper": { "type": "object", "additionalProperties": { "type": "string" } },
                "tags": { "type": "array", "items": { "type": "string" }, "description": "its tags, sorted" },
                "note": { "type": "string", "description": "its note, or empty" },
                "progress": {
                    "oneOf": [
                        { "type": "null" },
                        {
                            "type": "object",
                            "required": ["step", "epoch"],
                            "properties": {
                                "step": { "type": "integer", "minimum": 0 },
                                "epoch": { "type": "integer", "minimum": 0 },
                                "epochs": maybe_count,
                                "steps_per_s": maybe_number,
                                "eta": maybe_number,
                            },
                        },
                    ],
                },
                "error": maybe_string,
            },
        },
        "RunPage": {
            "type": "object",
            "required": ["total", "matched", "page", "pages", "per_page", "runs", "unreadable"],
            "properties": {
                "total": { "type": "integer", "minimum": 0 },
                "matched": { "type": "integer", "minimum": 0 },
                "page": { "type": "integer", "minimum": 1 },
                "pages": { "type": "integer", "minimum": 0 },
                "per_page": { "type": "integer", "minimum": 1 },
                "runs": { "type": "array", "items": schema("Summary") },
                "groups": {
                    "type": "array",
                    "description": "when grouped: the page's groups",
                    "items": schema("Group"),
                },
                "unreadable": {
                    "type": "array",
                    "description": "run folders whose record cannot be read: [folder, why]",
                    "items": {
                        "type": "array",
                        "prefixItems": [{ "type": "string" }, { "type": "string" }],
                        "minItems": 2,
                        "maxItems": 2,
                    },
                },
            },
        },
        "Group": {
            "type": "object",
            "required": ["experiment", "kind", "key", "runs", "metrics"],
            "properties": {
                "experiment": { "type": "string" },
                "kind": { "enum": ["train", "test", "eval", "serve"] },
                "key": {
                    "type": "object",
                    "description": "the grouped hyperparameters' values",
                    "additionalProperties": { "type": "string" },
                },
                "runs": { "type": "array", "items": { "type": "string" }, "minItems": 1 },
                "metrics": {
                    "type": "object",
                    "description": "each final metric over the group's runs that have a finite value",
                    "additionalProperties": {
                        "type": "object",
                        "description": "n runs with a finite value (null statistics when none), not_finite runs whose value is NaN or infinite",
                        "required": ["n", "not_finite", "mean", "std", "min", "max"],
                        "properties": {
                            "n": { "type": "integer", "minimum": 0 },
                            "not_finite": { "type": "integer", "minimum": 0 },
                            "mean": { "type": ["number", "null"] },
                            "std": { "type": ["number", "null"] },
                            "min": { "type": ["number", "null"] },
                            "max": { "type": ["number", "null"] },
                        },
                    },
                },
            },
        },
        "RunDetail": {
            "type": "object",
            "required": ["summary", "record", "children", "series", "files"],
            "properties": {
                "summary": schema("Summary"),
                "record": { "type": "object", "description": "the run's record (record.ron), whole, as JSON" },
                "children": { "type": "array", "items": { "type": "string" } },
                "series": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "points"],
                        "properties": {
                            "name": { "type": "string" },
                            "points": { "type": "integer", "minimum": 0 },
                            "last": maybe_number,
                        },
                    },
                },
                "files": { "type": "array", "items": schema("RunFile") },
            },
        },
        "Series": {
            "type": "object",
            "required": ["run", "name", "points_in_range", "steps", "values"],
            "properties": {
                "run": { "type": "string" },
                "name": { "type": "string" },
                "points_in_range": { "type": "integer", "minimum": 0 },
                "steps": { "type": "array", "items": { "type": "integer", "minimum": 0 } },
                "values": { "type": "array", "items": maybe_number },
            },
        },
        "RunFile": {
            "type": "object",
            "required": ["path", "size", "url_path"],
            "properties": {
                "path": { "type": "string" },
                "size": { "type": "integer", "minimum": 0 },
                "url_path": { "type": "string" },
            },
        },
        "TreeFile": {
            "type": "object",
            "required": ["path", "kind", "size"],
            "properties": {
                "path": { "type": "string" },
                "kind": { "enum": ["file", "executable", "link", "submodule"] },
                "size": { "type": "integer", "minimum": 0 },
            },
        },
        "Change": {
            "type": "object",
            "required": ["path", "kind", "patch"],
            "properties": {
                "path": { "type": "string" },
                "kind": { "type": "string", "description": "added, deleted or modified" },
                "patch": { "type": "string", "description": "the unified diff" },
            },
        },
    })
}
