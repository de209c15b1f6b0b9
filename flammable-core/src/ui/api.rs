//! The JSON API under `/api/` (and the chart SVGs): everything the pages show, for scripts and
//! the pages' own live updates. How it is sent — typed query strings, JSON, errors as
//! `{"error": "…"}` with a 4xx/5xx status, the work on the blocking pool; what is read comes
//! from [`super::read`].

use super::asset::CHART_CSS;
use super::chart::{self, Size};
use super::csv;
use super::files::{self, RunFile};
use super::group::Group;
use super::index::Summary;
use super::listing::{matching, select, ListQuery, ListRequest};
use super::params::{
    from_text, step_range, x_range, Count, Flag, Given, Params, RunList, Step, XBound,
};
use super::read::{self, find_run, find_runs, record};
use super::series::downsample;
use super::state::AppState;
use super::view::ChartView;
use crate::snapshot::{self, FileChange};
use crate::store::record::Record;
use crate::web::AppError;
use axum::extract::{Path as UrlPath, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Runs `work` on the blocking pool (everything here reads files).
pub async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    work: impl FnOnce(&AppState) -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || work(&state))
        .await
        .unwrap_or_else(|e| Err(AppError::internal(format!("the request failed: {e}"), None)))
}

/// `GET /api/runs?q=&sort=&order=&page=&per_page=&group=`: one page of runs; when grouped,
/// one page of groups (`groups`, with each metric's statistics) and their runs.
pub async fn runs(
    State(state): State<Arc<AppState>>,
    Params(query): Params<ListQuery>,
) -> Result<impl IntoResponse, AppError> {
    #[derive(Serialize)]
    struct Page {
        total: usize,
        matched: usize,
        page: usize,
        pages: usize,
        per_page: usize,
        runs: Vec<Arc<Summary>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        groups: Option<Vec<Group>>,
        unreadable: Vec<(String, String)>,
    }
    let request = ListRequest::from(query);
    blocking(&state, move |s| {
        let snapshot = s.index.snapshot();
        let sel = select(&snapshot, &request)?;
        Ok(Json(Page {
            total: snapshot.runs.len(),
            matched: sel.matched,
            page: request.page,
            pages: sel.pages,
            per_page: request.per_page,
            runs: sel.rows,
            groups: sel.groups,
            unreadable: snapshot.unreadable.clone(),
        }))
    })
    .await
}

/// A series' name and size.
#[derive(Serialize)]
pub struct SeriesInfo {
    /// The metric's name.
    pub name: String,
    /// Its points.
    pub points: usize,
    /// Its last value.
    pub last: Option<f64>,
}

/// `GET /api/runs/{id}`: the summary, the whole record, children, series and files.
pub async fn run(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Result<impl IntoResponse, AppError> {
    #[derive(Serialize)]
    struct Detail {
        summary: Arc<Summary>,
        record: Record,
        children: Vec<String>,
        series: Vec<SeriesInfo>,
        files: Vec<RunFile>,
    }
    blocking(&state, move |s| {
        let snapshot = s.index.snapshot();
        let (summary, record) = read::record_in(s, &snapshot, &id)?;
        let children = snapshot.children(&summary.id).to_vec();
        let series = read::all_series(s, &summary.id)
            .into_iter()
            .map(|(name, series)| SeriesInfo {
                name,
                points: series.values.len(),
                last: series.values.last().copied(),
            })
            .collect();
        let files = files::list(&s.store().run_dir(&summary.id)).files;
        Ok(Json(Detail {
            summary,
            record,
            children,
            series,
            files,
        }))
    })
    .await
}

/// `GET /api/runs/{id}/live`: what a running run's page refreshes.
pub async fn live(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Result<impl IntoResponse, AppError> {
    blocking(&state, move |s| {
        Ok(Json(find_run(&s.index.snapshot(), &id)?))
    })
    .await
}

/// The query of `/api/runs/{id}/series`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SeriesQuery {
    #[serde(deserialize_with = "from_text")]
    name: Given,
    #[serde(deserialize_with = "from_text")]
    buckets: Count<1, 100_000>,
    #[serde(deserialize_with = "from_text")]
    from: Step,
    #[serde(deserialize_with = "from_text")]
    to: Step,
}

/// `GET /api/runs/{id}/series?name=&buckets=&from=&to=`: one metric, downsampled (first,
/// min, max and last point per bucket) over the step range.
pub async fn series(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    Params(query): Params<SeriesQuery>,
) -> Result<impl IntoResponse, AppError> {
    #[derive(Serialize)]
    struct Points {
        run: String,
        name: String,
        points_in_range: usize,
        steps: Vec<u64>,
        values: Vec<f64>,
    }
    let name = query.name.or_bad("name: which metric? e.g. ?name=loss")?;
    blocking(&state, move |s| {
        let run = find_run(&s.index.snapshot(), &id)?;
        let series = read::one_series(s, &run.id, &name)?;
        let d = downsample(
            &series.steps,
            &series.values,
            step_range(query.from, query.to),
            query.buckets.or(1000) as usize,
        );
        Ok(Json(Points {
            run: run.id.clone(),
            name,
            points_in_range: d.points_in_range,
            steps: d.steps,
            values: d.values,
        }))
    })
    .await
}

/// The query of `/chart`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ChartQuery {
    #[serde(deserialize_with = "from_text")]
    runs: RunList,
    #[serde(deserialize_with = "from_text")]
    name: Given,
    #[serde(deserialize_with = "from_text")]
    width: Count<120, 4000>,
    #[serde(deserialize_with = "from_text")]
    height: Count<80, 2000>,
    #[serde(deserialize_with = "from_text")]
    from: XBound,
    #[serde(deserialize_with = "from_text")]
    to: XBound,
    #[serde(deserialize_with = "from_text")]
    download: Flag,
}

/// `GET /chart?runs=a,b&name=&from=&to=&width=&height=&smooth=&x=&y=&download=`: an SVG
/// chart; with `download=1`, a file of its own (its style embedded) to save.
pub async fn chart(
    State(state): State<Arc<AppState>>,
    Params(query): Params<ChartQuery>,
    Params(view): Params<ChartView>,
) -> Result<impl IntoResponse, AppError> {
    let name = query.name.or_bad("name: which metric? e.g. ?name=loss")?;
    let file = download_name(&name, "svg");
    let size = Size {
        width: query.width.or(640) as u32,
        height: query.height.or(240) as u32,
    };
    let range = x_range(query.from, query.to);
    let download = query.download.0;
    let svg = blocking(&state, move |s| {
        let snapshot = s.index.snapshot();
        let runs = find_runs(&snapshot, &query.runs.0)?;
        let groups = read::groups(&snapshot, &runs, &view)?;
        let lines = match &groups {
            Some(g) => read::Lines::Groups(g),
            None => read::Lines::Runs(&runs),
        };
        let svg = read::chart_svg(s, &lines, &name, size, range, &view)?;
        Ok(if download {
            let legend: Vec<(usize, String)> = lines.labels().into_iter().enumerate().collect();
            chart::standalone(&svg, CHART_CSS, &legend)
        } else {
            svg
        })
    })
    .await?;
    let mut response = ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response();
    if download {
        attach(&mut response, &file);
        // Its own style sheet is inside it; nothing else runs or loads.
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            header::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
        );
    }
    Ok(response)
}

/// A file name for `name` (a metric, which may hold `/` and anything else) with `extension`.
pub fn download_name(name: &str, extension: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}.{extension}", stem.trim_matches('.'))
}

/// Makes `response` a download saved as `file` (a name [`download_name`] made).
pub fn attach(response: &mut axum::response::Response, file: &str) {
    if let Ok(value) = header::HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
}

/// The query of `/series.csv`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SeriesCsvQuery {
    #[serde(deserialize_with = "from_text")]
    runs: RunList,
    #[serde(deserialize_with = "from_text")]
    name: Given,
}

/// `GET /runs.csv?q=&sort=&order=`: every run the filter matches (not one page), sorted, as
/// CSV: the table's columns, then `metrics.NAME` and `params.NAME` for every metric and
/// hyperparameter any of them has.
pub async fn runs_csv(
    State(state): State<Arc<AppState>>,
    Params(query): Params<ListQuery>,
) -> Result<impl IntoResponse, AppError> {
    let request = ListRequest::from(query);
    let csv = blocking(&state, move |s| {
        let rows = matching(&s.index.snapshot(), &request)?;
        let mut out = Vec::new();
        csv::runs(&mut out, &rows)
            .map_err(|e| AppError::internal(format!("cannot write the CSV: {e}"), None))?;
        Ok(out)
    })
    .await?;
    let mut response = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response();
    attach(&mut response, "runs.csv");
    Ok(response)
}

/// `GET /series.csv?runs=a,b&name=loss`: every point of a metric of one or more runs, raw
/// (not downsampled), as CSV: `run,name,step,epoch,value,time`.
pub async fn series_csv(
    State(state): State<Arc<AppState>>,
    Params(query): Params<SeriesCsvQuery>,
) -> Result<impl IntoResponse, AppError> {
    let name = query.name.or_bad("name: which metric? e.g. ?name=loss")?;
    let file = download_name(&name, "csv");
    let csv = blocking(&state, move |s| {
        let runs = find_runs(&s.index.snapshot(), &query.runs.0)?;
        let found = read::named_series(s, &runs, &name)?;
        let mut out = Vec::new();
        csv::series(&mut out, &name, &found)
            .map_err(|e| AppError::internal(format!("cannot write the CSV: {e}"), None))?;
        Ok(out)
    })
    .await?;
    let mut response = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response();
    attach(&mut response, &file);
    Ok(response)
}

/// The query of `/api/runs/{id}/log`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct LogQuery {
    #[serde(deserialize_with = "from_text")]
    lines: Count<1, 100_000>,
}

/// `GET /api/runs/{id}/log?lines=N`: the log's tail as text.
pub async fn log(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    Params(query): Params<LogQuery>,
) -> Result<impl IntoResponse, AppError> {
    let text = blocking(&state, move |s| {
        let run = find_run(&s.index.snapshot(), &id)?;
        Ok(read::log_tail(s, &run.id, query.lines.or(200) as usize))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text))
}

/// `GET /api/runs/{id}/files`: the run folder's files (at most `files::MAX_LISTED`).
pub async fn files(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Result<impl IntoResponse, AppError> {
    blocking(&state, move |s| {
        let run = find_run(&s.index.snapshot(), &id)?;
        Ok(Json(files::list(&s.store().run_dir(&run.id)).files))
    })
    .await
}

/// `GET /api/runs/{id}/tree`: the files of the run's snapshot.
pub async fn tree(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Result<impl IntoResponse, AppError> {
    #[derive(Serialize)]
    struct File {
        path: String,
        kind: &'static str,
        size: u64,
    }
    blocking(&state, move |s| {
        let (_, record) = record(s, &id)?;
        let snap = read::snapshot_of(&record)?;
        let files = snapshot::tree_files(&snap.git_dir, &snap.commit)?;
        Ok(Json(
            files
                .into_iter()
                .map(|f| File {
                    path: f.path,
                    kind: match f.kind {
                        snapshot::EntryType::File => "file",
                        snapshot::EntryType::Executable => "executable",
                        snapshot::EntryType::Link => "link",
                        snapshot::EntryType::Submodule => "submodule",
                    },
                    size: f.size,
                })
                .collect::<Vec<_>>(),
        ))
    })
    .await
}

/// `GET /api/runs/{id}/code/{*path}`: one file of the snapshot, as plain text (or bytes to
/// download), never as a page the browser would render or run.
pub async fn code(
    State(state): State<Arc<AppState>>,
    UrlPath((id, path)): UrlPath<(String, String)>,
) -> Result<impl IntoResponse, AppError> {
    let bytes = blocking(&state, move |s| {
        let (_, record) = record(s, &id)?;
        read::code_file(&record, &path)
    })
    .await?;
    let kind = if read::as_text(&bytes).is_some() {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'",
            ),
        ],
        bytes,
    ))
}

/// One changed file, for JSON.
#[derive(Serialize)]
pub struct Change {
    /// Its path.
    pub path: String,
    /// added, deleted or modified.
    pub kind: &'static str,
    /// The unified diff.
    pub patch: String,
}

fn changes_json(changes: Vec<FileChange>) -> Json<Vec<Change>> {
    Json(
        changes
            .into_iter()
            .map(|c| Change {
                path: c.path,
                kind: c.kind.word(),
                patch: c.patch,
            })
            .collect(),
    )
}

/// `GET /api/runs/{id}/changes`: the uncommitted changes the run ran with.
pub async fn changes(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Result<impl IntoResponse, AppError> {
    blocking(&state, move |s| {
        let (_, record) = record(s, &id)?;
        Ok(changes_json(read::uncommitted(&record)?))
    })
    .await
}

/// The query of `/api/diff`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DiffQuery {
    #[serde(deserialize_with = "from_text")]
    a: Given,
    #[serde(deserialize_with = "from_text")]
    b: Given,
}

/// `GET /api/diff?a=ID&b=ID`: the code diff between two runs' snapshots.
pub async fn diff(
    State(state): State<Arc<AppState>>,
    Params(query): Params<DiffQuery>,
) -> Result<impl IntoResponse, AppError> {
    let a = query.a.or_bad("a: name a run, e.g. ?a=ID1&b=ID2")?;
    let b = query.b.or_bad("b: name a run, e.g. ?a=ID1&b=ID2")?;
    blocking(&state, move |s| {
        let (_, ra) = record(s, &a)?;
        let (_, rb) = record(s, &b)?;
        Ok(changes_json(read::code_diff(&ra, &rb)?))
    })
    .await
}
