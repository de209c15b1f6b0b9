//! The JSON API under `/api/` (and the chart SVGs): everything the pages show, for scripts and
//! the pages' own live updates. Errors are JSON `{"error": "…"}` with a 4xx/5xx status.

use super::chart::{self, Line, Size};
use super::files;
use super::index::{Snapshot, Summary};
use super::query::{sort, Filter, SortKey};
use super::series::downsample;
use super::state::AppState;
use crate::snapshot::{self, ChangeKind, SnapshotError};
use crate::store::followers::{read_run_all_series, read_run_series};
use crate::store::metrics::Series;
use crate::store::record::Record;
use crate::store::LOG_FILE;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// An answer that is not a success: its status and why.
#[derive(Debug)]
pub struct Fail {
    /// The HTTP status.
    pub status: StatusCode,
    /// One line saying why.
    pub message: String,
}

impl Fail {
    /// 404 with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Fail {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// 400 with `message`.
    pub fn bad(message: impl Into<String>) -> Self {
        Fail {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn no_run(id: &str) -> Self {
        Fail::not_found(format!("no run `{id}` in this store"))
    }
}

impl From<SnapshotError> for Fail {
    fn from(e: SnapshotError) -> Self {
        Fail {
            status: match e {
                SnapshotError::Missing(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            message: e.to_string(),
        }
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: String,
        }
        (
            self.status,
            Json(Body {
                error: self.message,
            }),
        )
            .into_response()
    }
}

/// Runs `work` on the blocking pool (everything here reads files).
pub async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    work: impl FnOnce(&AppState) -> Result<T, Fail> + Send + 'static,
) -> Result<T, Fail> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || work(&state))
        .await
        .unwrap_or_else(|e| {
            Err(Fail {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("the request failed: {e}"),
            })
        })
}

/// The query string as name → value (the last value of a repeated name wins, except for
/// `runs`, whose values are joined with commas).
pub fn params(raw: Option<&str>) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if k == "runs" {
            let all = out.entry(k.into_owned()).or_default();
            if !all.is_empty() && !v.is_empty() {
                all.push(',');
            }
            all.push_str(&v);
        } else {
            out.insert(k.into_owned(), v.into_owned());
        }
    }
    out
}

/// Percent-decoding of a query component (`+` is a space).
#[cfg(test)]
fn decode(text: &str) -> String {
    form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Percent-encoding of a query component.
pub fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The runs table's request: filter, sort, page.
#[derive(Clone, Debug, PartialEq)]
pub struct ListRequest {
    /// The filter's text.
    pub filter: String,
    /// The sort key.
    pub sort: SortKey,
    /// Largest first.
    pub descending: bool,
    /// The page, from 1.
    pub page: usize,
    /// Rows a page.
    pub per_page: usize,
}

impl ListRequest {
    /// Reads `q`, `sort`, `order` (`asc`/`desc`), `page` and `per_page`.
    pub fn from_params(p: &HashMap<String, String>) -> Result<Self, Fail> {
        let sort =
            SortKey::parse(p.get("sort").map(String::as_str).unwrap_or("")).map_err(Fail::bad)?;
        let descending = match p.get("order").map(String::as_str) {
            None | Some("") => sort == SortKey::Started,
            Some("desc") => true,
            Some("asc") => false,
            Some(o) => return Err(Fail::bad(format!("order `{o}`: use asc or desc"))),
        };
        let number = |name: &str, default: usize, max: usize| -> Result<usize, Fail> {
            match p.get(name).map(String::as_str) {
                None | Some("") => Ok(default),
                Some(t) => t
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| {
                        Fail::bad(format!("{name} `{t}`: use a number from 1 to {max}"))
                    }),
            }
        };
        Ok(ListRequest {
            filter: p.get("q").cloned().unwrap_or_default(),
            sort,
            descending,
            page: number("page", 1, usize::MAX)?,
            per_page: number("per_page", 100, 1000)?,
        })
    }

    /// The query string of this request with `page` (and, when given, sort) replaced.
    pub fn link(&self, page: usize, sort: Option<(&SortKey, bool)>) -> String {
        let (key, desc) = sort.unwrap_or((&self.sort, self.descending));
        let mut q = format!(
            "?q={}&sort={}&order={}",
            encode(&self.filter),
            encode(&key.text()),
            if desc { "desc" } else { "asc" }
        );
        if page > 1 {
            q.push_str(&format!("&page={page}"));
        }
        if self.per_page != 100 {
            q.push_str(&format!("&per_page={}", self.per_page));
        }
        q
    }
}

/// One page of the runs that match a request.
pub struct Selection {
    /// The page's rows.
    pub rows: Vec<Arc<Summary>>,
    /// How many runs matched.
    pub matched: usize,
    /// The page count.
    pub pages: usize,
}

/// Filters, sorts and pages `snapshot` by `request`.
pub fn select(snapshot: &Snapshot, request: &ListRequest) -> Result<Selection, Fail> {
    let filter = Filter::parse(&request.filter).map_err(Fail::bad)?;
    filter
        .check_names(&snapshot.metric_names, &snapshot.hyper_names)
        .map_err(Fail::bad)?;
    let mut rows: Vec<&Summary> = snapshot
        .runs
        .iter()
        .map(Arc::as_ref)
        .filter(|r| filter.matches(r))
        .collect();
    let matched = rows.len();
    sort(&mut rows, &request.sort, request.descending);
    let pages = matched.div_ceil(request.per_page).max(1);
    let start = (request.page - 1).saturating_mul(request.per_page);
    let ids: Vec<&str> = rows
        .iter()
        .skip(start)
        .take(request.per_page)
        .map(|r| r.id.as_str())
        .collect();
    let rows = ids
        .into_iter()
        .filter_map(|id| snapshot.find(id).cloned())
        .collect();
    Ok(Selection {
        rows,
        matched,
        pages,
    })
}

/// `GET /api/runs?q=&sort=&order=&page=&per_page=`.
pub async fn runs(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Response {
    #[derive(Serialize)]
    struct Page {
        total: usize,
        matched: usize,
        page: usize,
        pages: usize,
        per_page: usize,
        runs: Vec<Arc<Summary>>,
        unreadable: Vec<(String, String)>,
    }
    let request = match ListRequest::from_params(&params(raw.as_deref())) {
        Ok(r) => r,
        Err(f) => return f.into_response(),
    };
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
            unreadable: snapshot.unreadable.clone(),
        }))
    })
    .await
    .into_response()
}

/// The full record of a run the index knows.
pub fn record(s: &AppState, id: &str) -> Result<(Arc<Summary>, Record), Fail> {
    let snapshot = s.index.snapshot();
    let summary = snapshot.find(id).cloned().ok_or_else(|| Fail::no_run(id))?;
    let record = s
        .store()
        .read(&summary.id)
        .map_err(|e| Fail::not_found(e.to_string()))?;
    Ok((summary, record))
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
pub async fn run(State(state): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Response {
    #[derive(Serialize)]
    struct Detail {
        summary: Arc<Summary>,
        record: Record,
        children: Vec<String>,
        series: Vec<SeriesInfo>,
        files: Vec<files::RunFile>,
    }
    blocking(&state, move |s| {
        let (summary, record) = record(s, &id)?;
        let children = s.index.snapshot().children(&summary.id).to_vec();
        let series = read_run_all_series(&s.store().run_dir(&summary.id))
            .unwrap_or_default()
            .into_iter()
            .map(|(name, series)| SeriesInfo {
                name,
                points: series.values.len(),
                last: series.values.last().copied(),
            })
            .collect();
        let files = files::list(&s.store().run_dir(&summary.id));
        Ok(Json(Detail {
            summary,
            record,
            children,
            series,
            files,
        }))
    })
    .await
    .into_response()
}

/// `GET /api/runs/{id}/live`: what a running run's page refreshes.
pub async fn live(State(state): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Response {
    blocking(&state, move |s| {
        let snapshot = s.index.snapshot();
        let summary = snapshot
            .find(&id)
            .cloned()
            .ok_or_else(|| Fail::no_run(&id))?;
        Ok(Json(summary))
    })
    .await
    .into_response()
}

/// Reads an optional step bound.
fn step_param(p: &HashMap<String, String>, name: &str) -> Result<Option<u64>, Fail> {
    match p.get(name).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(t) => t
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(|v| Some(v.max(0.0).round() as u64))
            .ok_or_else(|| Fail::bad(format!("{name} `{t}` is not a step"))),
    }
}

fn range(p: &HashMap<String, String>) -> Result<Option<(u64, u64)>, Fail> {
    Ok(match (step_param(p, "from")?, step_param(p, "to")?) {
        (None, None) => None,
        (a, b) => Some((a.unwrap_or(0), b.unwrap_or(u64::MAX))),
    })
}

fn bounded(
    p: &HashMap<String, String>,
    name: &str,
    default: u32,
    lo: u32,
    hi: u32,
) -> Result<u32, Fail> {
    match p.get(name).map(String::as_str) {
        None | Some("") => Ok(default),
        Some(t) => t
            .parse::<u32>()
            .ok()
            .filter(|n| (lo..=hi).contains(n))
            .ok_or_else(|| Fail::bad(format!("{name} `{t}`: use a number from {lo} to {hi}"))),
    }
}

/// `GET /api/runs/{id}/series?name=&buckets=&from=&to=`: one metric, downsampled (first,
/// min, max and last point per bucket) over the step range.
pub async fn series(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    #[derive(Serialize)]
    struct Points {
        run: String,
        name: String,
        points_in_range: usize,
        steps: Vec<u64>,
        values: Vec<f64>,
    }
    let p = params(raw.as_deref());
    blocking(&state, move |s| {
        let name = p
            .get("name")
            .filter(|n| !n.is_empty())
            .cloned()
            .ok_or_else(|| Fail::bad("name: which metric? e.g. ?name=loss"))?;
        let buckets = bounded(&p, "buckets", 1000, 1, 100_000)?;
        let range = range(&p)?;
        let snapshot = s.index.snapshot();
        let run = snapshot.find(&id).ok_or_else(|| Fail::no_run(&id))?;
        let series = read_run_series(&s.store().run_dir(&run.id), &name)
            .map_err(|e| Fail::not_found(format!("run {} has no metrics: {e}", run.id)))?;
        if series.steps.is_empty() {
            return Err(Fail::not_found(format!(
                "run {} has no metric `{name}`",
                run.id
            )));
        }
        let d = downsample(&series.steps, &series.values, range, buckets as usize);
        Ok(Json(Points {
            run: run.id.clone(),
            name,
            points_in_range: d.points_in_range,
            steps: d.steps,
            values: d.values,
        }))
    })
    .await
    .into_response()
}

/// The label of a run in a legend.
pub fn run_label(r: &Summary) -> String {
    if r.message.is_empty() {
        r.id.clone()
    } else {
        format!("{} · {}", r.id, r.message)
    }
}

/// Run `r`'s `series` as a chart line of colour `colour`, downsampled into `buckets` over
/// `range`.
pub fn line(
    r: &Summary,
    colour: usize,
    series: &Series,
    range: Option<(u64, u64)>,
    buckets: usize,
) -> Line {
    let d = downsample(&series.steps, &series.values, range, buckets);
    Line {
        label: run_label(r),
        colour,
        steps: d.steps,
        values: d.values,
    }
}

/// The chart of metric `name` of `runs`, each line downsampled to about one bucket per pixel
/// (half that when many runs share the chart); runs are read in parallel.
pub fn chart_svg(
    s: &AppState,
    runs: &[Arc<Summary>],
    name: &str,
    size: Size,
    range: Option<(u64, u64)>,
) -> String {
    let buckets = if runs.len() > 4 {
        size.width as usize / 2
    } else {
        size.width as usize
    };
    let read = |i: usize, r: &Arc<Summary>| -> Option<Line> {
        let series = read_run_series(&s.store().run_dir(&r.id), name).ok()?;
        (!series.steps.is_empty()).then(|| line(r, i, &series, range, buckets))
    };
    let indexed: Vec<(usize, &Arc<Summary>)> = runs.iter().enumerate().collect();
    let lines: Vec<Line> = crate::util::parallel::map(&indexed, 4, |(i, r)| read(*i, r))
        .into_iter()
        .flatten()
        .collect();
    chart::render(name, &lines, size, range)
}

/// The runs named by `runs=a,b,c` (ids or unique prefixes), in that order.
pub fn named_runs(
    snapshot: &Snapshot,
    p: &HashMap<String, String>,
) -> Result<Vec<Arc<Summary>>, Fail> {
    let list = p.get("runs").map(String::as_str).unwrap_or("");
    let mut out: Vec<Arc<Summary>> = Vec::new();
    for spec in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let r = snapshot.find(spec).ok_or_else(|| Fail::no_run(spec))?;
        if !out.iter().any(|o| o.id == r.id) {
            out.push(r.clone());
        }
    }
    if out.is_empty() {
        return Err(Fail::bad("runs: name one or more runs, e.g. ?runs=ID1,ID2"));
    }
    if out.len() > 200 {
        return Err(Fail::bad("runs: at most 200 runs in one chart"));
    }
    Ok(out)
}

/// `GET /chart?runs=a,b&name=&from=&to=&width=&height=`: an SVG chart.
pub async fn chart(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Response {
    let p = params(raw.as_deref());
    let svg = blocking(&state, move |s| {
        let name = p
            .get("name")
            .filter(|n| !n.is_empty())
            .cloned()
            .ok_or_else(|| Fail::bad("name: which metric? e.g. ?name=loss"))?;
        let size = Size {
            width: bounded(&p, "width", 640, 120, 4000)?,
            height: bounded(&p, "height", 240, 80, 2000)?,
        };
        let range = range(&p)?;
        let snapshot = s.index.snapshot();
        let runs = named_runs(&snapshot, &p)?;
        Ok(chart_svg(s, &runs, &name, size, range))
    })
    .await;
    match svg {
        Ok(svg) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
        Err(f) => f.into_response(),
    }
}

/// The last `lines` lines of a run's log.
pub fn log_tail(s: &AppState, id: &str, lines: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let path = s.store().run_dir(id).join(LOG_FILE);
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    // Enough bytes for the lines asked for, whatever the file's size.
    let want = (lines as u64).saturating_mul(400).max(4096);
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(want);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let text = if start > 0 {
        text.split_once('\n').map_or("", |(_, rest)| rest)
    } else {
        &text
    };
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `GET /api/runs/{id}/log?lines=N`: the log's tail as text.
pub async fn log(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let p = params(raw.as_deref());
    let text = blocking(&state, move |s| {
        let lines = bounded(&p, "lines", 200, 1, 100_000)? as usize;
        let snapshot = s.index.snapshot();
        let run = snapshot.find(&id).ok_or_else(|| Fail::no_run(&id))?;
        Ok(log_tail(s, &run.id, lines))
    })
    .await;
    match text {
        Ok(t) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], t).into_response(),
        Err(f) => f.into_response(),
    }
}

/// `GET /api/runs/{id}/files`: the run folder's files.
pub async fn files(State(state): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Response {
    blocking(&state, move |s| {
        let snapshot = s.index.snapshot();
        let run = snapshot.find(&id).ok_or_else(|| Fail::no_run(&id))?;
        Ok(Json(files::list(&s.store().run_dir(&run.id))))
    })
    .await
    .into_response()
}

/// The snapshot a run ran, or why it has none.
pub fn snapshot_of(record: &Record) -> Result<&crate::store::record::SnapshotRecord, Fail> {
    record.snapshot.as_ref().ok_or_else(|| {
        Fail::not_found(format!(
            "run {} has no snapshot of its code (it ran outside a Git repository or with --allow-no-snapshot)",
            record.id
        ))
    })
}

/// `GET /api/runs/{id}/tree`: the files of the run's snapshot.
pub async fn tree(State(state): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Response {
    #[derive(Serialize)]
    struct File {
        path: String,
        kind: &'static str,
        size: u64,
    }
    blocking(&state, move |s| {
        let (_, record) = record(s, &id)?;
        let snap = snapshot_of(&record)?;
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
    .into_response()
}

/// `GET /api/runs/{id}/code/{*path}`: one file of the snapshot, as plain text (or bytes to
/// download), never as a page the browser would render or run.
pub async fn code(
    State(state): State<Arc<AppState>>,
    UrlPath((id, path)): UrlPath<(String, String)>,
) -> Response {
    let bytes = blocking(&state, move |s| {
        let (_, record) = record(s, &id)?;
        let snap = snapshot_of(&record)?;
        snapshot::file_bytes(&snap.git_dir, &snap.commit, &path)?.ok_or_else(|| {
            Fail::not_found(format!(
                "no file `{path}` in the snapshot of run {}",
                record.id
            ))
        })
    })
    .await;
    match bytes {
        Ok(b) => {
            let text = std::str::from_utf8(&b).is_ok() && !b.contains(&0);
            let kind = if text {
                "text/plain; charset=utf-8"
            } else {
                "application/octet-stream"
            };
            (
                [
                    (header::CONTENT_TYPE, kind),
                    (
                        header::CONTENT_SECURITY_POLICY,
                        "sandbox; default-src 'none'",
                    ),
                ],
                b,
            )
                .into_response()
        }
        Err(f) => f.into_response(),
    }
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

/// The word for a change.
pub fn change_word(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Added => "added",
        ChangeKind::Deleted => "deleted",
        ChangeKind::Modified => "modified",
    }
}

/// The uncommitted changes a run ran with: its snapshot against the commit it was made on.
pub fn uncommitted(record: &Record) -> Result<Vec<snapshot::FileChange>, Fail> {
    let snap = snapshot_of(record)?;
    Ok(snapshot::diff(
        &snap.git_dir,
        snap.parent.as_deref(),
        &snap.commit,
        true,
    )?)
}

/// The code diff of two runs' snapshots (they must share a repository).
pub fn code_diff(a: &Record, b: &Record) -> Result<Vec<snapshot::FileChange>, Fail> {
    let (sa, sb) = (snapshot_of(a)?, snapshot_of(b)?);
    if sa.git_dir != sb.git_dir {
        return Err(Fail::bad(format!(
            "runs {} and {} snapshot different repositories",
            a.id, b.id
        )));
    }
    Ok(snapshot::diff(
        &sb.git_dir,
        Some(&sa.commit),
        &sb.commit,
        true,
    )?)
}

fn changes_json(changes: Vec<snapshot::FileChange>) -> Json<Vec<Change>> {
    Json(
        changes
            .into_iter()
            .map(|c| Change {
                path: c.path,
                kind: change_word(c.kind),
                patch: c.patch,
            })
            .collect(),
    )
}

/// `GET /api/runs/{id}/changes`: the uncommitted changes the run ran with.
pub async fn changes(State(state): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Response {
    blocking(&state, move |s| {
        let (_, record) = record(s, &id)?;
        Ok(changes_json(uncommitted(&record)?))
    })
    .await
    .into_response()
}

/// `GET /api/diff?a=ID&b=ID`: the code diff between two runs' snapshots.
pub async fn diff(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Response {
    let p = params(raw.as_deref());
    blocking(&state, move |s| {
        let get = |k: &str| {
            p.get(k)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| Fail::bad(format!("{k}: name a run, e.g. ?a=ID1&b=ID2")))
        };
        let (a, b) = (get("a")?, get("b")?);
        let (_, ra) = record(s, &a)?;
        let (_, rb) = record(s, &b)?;
        Ok(changes_json(code_diff(&ra, &rb)?))
    })
    .await
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_and_encode() {
        let p = params(Some("q=lr%3D0.01+loss%3C1&runs=a,b&runs=c&bad=%zz&end=%4"));
        assert_eq!(p["q"], "lr=0.01 loss<1");
        assert_eq!(p["runs"], "a,b,c");
        assert_eq!(p["bad"], "%zz");
        assert_eq!(p["end"], "%4");
        assert_eq!(decode(&encode("a b&c=d/é")), "a b&c=d/é");
        let r = ListRequest::from_params(&params(Some("sort=metric:loss&page=2"))).unwrap();
        assert_eq!(r.sort, SortKey::Metric("loss".into()));
        assert!(!r.descending);
        assert_eq!(r.page, 2);
        assert!(ListRequest::from_params(&params(Some("per_page=0"))).is_err());
        assert!(ListRequest::from_params(&params(Some("order=up"))).is_err());
    }
}
