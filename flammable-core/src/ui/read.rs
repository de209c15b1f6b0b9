//! What the browser reads, for the pages and the API alike: runs found in the index, their
//! records, series, logs and code diffs, each failure as the [`AppError`] a request answers.
//! Blocks on files: call it off the async executor (`api::blocking`). Caches of what is read
//! belong here; the run index ([`super::index`]) is the one there is.

use super::chart::{self, Axes, Line, Size};
use super::group::{self, Group};
use super::index::{Snapshot, Summary};
use super::legend;
use super::state::AppState;
use super::view::{self, ChartView, Frame, Placement};
use crate::snapshot::{self, FileChange, SnapshotError};
use crate::store::metrics::Series;
use crate::store::progress::parse_time;
use crate::store::record::{Record, SnapshotRecord};
use crate::store::LOG_FILE;
use crate::web::AppError;
use std::sync::Arc;

/// At most this many runs share one chart.
pub const MAX_CHARTED: usize = 200;

impl From<SnapshotError> for AppError {
    fn from(e: SnapshotError) -> Self {
        match e {
            SnapshotError::Missing(_) => AppError::not_found(e.to_string()),
            _ => AppError::internal(e.to_string(), None),
        }
    }
}

/// The run with id `spec` (or the one whose id starts with it); 404 otherwise.
pub fn find_run(snapshot: &Snapshot, spec: &str) -> Result<Arc<Summary>, AppError> {
    if let Some(run) = snapshot.find(spec) {
        return Ok(run.clone());
    }
    let fits: Vec<String> = snapshot.starting_with(spec).map(|r| r.id.clone()).collect();
    if fits.len() > 1 {
        return Err(AppError::bad(crate::store::ambiguous_prefix(
            spec, &fits, "runs",
        )));
    }
    Err(AppError::not_found(format!(
        "no run `{spec}` in this store"
    )))
}

/// The runs named by `specs` (ids or unique prefixes), each once, in that order: at least
/// one, at most [`MAX_CHARTED`].
pub fn find_runs(snapshot: &Snapshot, specs: &[String]) -> Result<Vec<Arc<Summary>>, AppError> {
    let mut out: Vec<Arc<Summary>> = Vec::new();
    for spec in specs {
        let r = find_run(snapshot, spec)?;
        if !out.iter().any(|o| o.id == r.id) {
            out.push(r);
        }
    }
    if out.is_empty() {
        return Err(AppError::bad(
            "runs: name one or more runs, e.g. ?runs=ID1,ID2",
        ));
    }
    if out.len() > MAX_CHARTED {
        return Err(AppError::bad(format!(
            "runs: at most {MAX_CHARTED} runs in one chart"
        )));
    }
    Ok(out)
}

/// The summary and whole record of the run `spec` names.
pub fn record(s: &AppState, spec: &str) -> Result<(Arc<Summary>, Record), AppError> {
    record_in(s, &s.index.snapshot(), spec)
}

/// [`record`] in an index snapshot the caller reads more of (one snapshot a request).
pub fn record_in(
    s: &AppState,
    snapshot: &Snapshot,
    spec: &str,
) -> Result<(Arc<Summary>, Record), AppError> {
    let summary = find_run(snapshot, spec).map_err(|e| {
        let trashed = crate::store::is_valid_id(spec) && s.store().is_trashed(spec);
        if trashed {
            AppError::not_found(format!(
                "run {spec} is in the trash: restore it from /trash"
            ))
        } else {
            e
        }
    })?;
    let record = read_record(s, &summary.id)?;
    Ok((summary, record))
}

/// The record of run `id` (404 when it cannot be read: removed since the index saw it).
pub fn read_record(s: &AppState, id: &str) -> Result<Record, AppError> {
    s.store()
        .read(id)
        .map_err(|e| AppError::not_found(e.to_string()))
}

/// The snapshot a run ran, or why it has none (404).
pub fn snapshot_of(record: &Record) -> Result<&SnapshotRecord, AppError> {
    record.snapshot.as_ref().ok_or_else(|| {
        AppError::not_found(format!(
            "run {} has no snapshot of its code (it ran outside a Git repository or with --allow-no-snapshot)",
            record.id
        ))
    })
}

/// The uncommitted changes a run ran with: its snapshot against the commit it was made on.
pub fn uncommitted(record: &Record) -> Result<Vec<FileChange>, AppError> {
    let snap = snapshot_of(record)?;
    Ok(snapshot::diff(
        &snap.git_dir,
        snap.parent.as_deref(),
        &snap.commit,
        true,
    )?)
}

/// The code diff from run `a`'s snapshot to run `b`'s (they must share a repository).
pub fn code_diff(a: &Record, b: &Record) -> Result<Vec<FileChange>, AppError> {
    let (sa, sb) = (snapshot_of(a)?, snapshot_of(b)?);
    if sa.git_dir != sb.git_dir {
        return Err(AppError::bad(format!(
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

/// The bytes of `path` in the snapshot of `record` (404 when it has no such file).
pub fn code_file(record: &Record, path: &str) -> Result<Vec<u8>, AppError> {
    let snap = snapshot_of(record)?;
    snapshot::file_bytes(&snap.git_dir, &snap.commit, path)?.ok_or_else(|| {
        AppError::not_found(format!(
            "no file `{path}` in the snapshot of run {}",
            record.id
        ))
    })
}

/// Every series of run `id`, in the order first logged (none when it has no metrics).
pub fn all_series(s: &AppState, id: &str) -> Vec<(String, Arc<Series>)> {
    s.series.run(&s.store().run_dir(id)).unwrap_or_default()
}

/// Series `name` of run `id`; 404 when the run has no such series.
pub fn one_series(s: &AppState, id: &str, name: &str) -> Result<Arc<Series>, AppError> {
    let series = s
        .series
        .one(&s.store().run_dir(id), name)
        .map_err(|e| AppError::not_found(format!("run {id} has no metrics: {e}")))?;
    if series.steps.is_empty() {
        return Err(AppError::not_found(format!(
            "run {id} has no metric `{name}`"
        )));
    }
    Ok(series)
}

/// The 404 of a chart or download of metric `name` that none of `runs` has.
fn no_metric(runs: &[Arc<Summary>], name: &str) -> AppError {
    AppError::not_found(if runs.len() == 1 {
        format!("run {} has no metric `{name}`", runs[0].id)
    } else {
        format!("none of these runs has a metric `{name}`")
    })
}

/// Series `name` of each of `runs` that has it, by run id, in order; a 404 when none has.
pub fn named_series(
    s: &AppState,
    runs: &[Arc<Summary>],
    name: &str,
) -> Result<Vec<(String, Arc<Series>)>, AppError> {
    let found: Vec<(String, Arc<Series>)> = runs
        .iter()
        .filter_map(|r| {
            let all = all_series(s, &r.id);
            let (_, one) = all.into_iter().find(|(n, _)| n == name)?;
            Some((r.id.clone(), one))
        })
        .collect();
    if found.is_empty() {
        return Err(no_metric(runs, name));
    }
    Ok(found)
}

/// `bytes` as text when they are UTF-8 without a NUL (shown), `None` for a binary file
/// (downloaded).
pub fn as_text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes)
        .ok()
        .filter(|t| !t.contains('\0'))
}

/// The last `lines` lines of a run's log (empty when it has none).
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

/// Buckets per line of a chart of `runs` lines: about one per pixel, half that when many
/// runs share the chart.
fn buckets(runs: usize, size: Size) -> usize {
    if runs > 4 {
        size.width as usize / 2
    } else {
        size.width as usize
    }
}

/// The groups `view` charts `runs` as (`None`: one line a run); a hyperparameter to group
/// by that no run has is a 400.
pub fn groups(
    snapshot: &Snapshot,
    runs: &[Arc<Summary>],
    view: &ChartView,
) -> Result<Option<Vec<Group>>, AppError> {
    view.group
        .check_names(&snapshot.hyper_names)
        .map_err(|e| AppError::bad(format!("group: {e}")))?;
    Ok(view.group.resolve("").map(|by| group::group(runs, &by)))
}

/// A chart's lines' view and frame.
struct Drawing<'a> {
    view: &'a ChartView,
    frame: Frame,
}

/// What each line of a chart stands for: a run, or a group of runs (its mean and band).
pub enum Lines<'a> {
    /// One line a run.
    Runs(&'a [Arc<Summary>]),
    /// One line a group.
    Groups(&'a [Group]),
}

impl Lines<'_> {
    /// The runs charted, group by group.
    pub fn runs(&self) -> Vec<Arc<Summary>> {
        match self {
            Lines::Runs(r) => r.to_vec(),
            Lines::Groups(g) => g.iter().flat_map(|g| g.runs.iter().cloned()).collect(),
        }
    }

    /// How many lines.
    fn len(&self) -> usize {
        match self {
            Lines::Runs(r) => r.len(),
            Lines::Groups(g) => g.len(),
        }
    }

    /// Each line's label.
    pub fn labels(&self) -> Vec<String> {
        match self {
            Lines::Runs(r) => legend::labels(r),
            Lines::Groups(g) => group::labels(g),
        }
    }
}

/// The lines of metric `name` drawn for each owner of `lines`, from `series`: every series of
/// every run [`Lines::runs`] gives, in that order.
fn chart_lines(
    lines: &Lines,
    series: &[Vec<(String, Arc<Series>)>],
    name: &str,
    drawing: &Drawing,
) -> Vec<Line> {
    let labels = lines.labels();
    let find =
        |all: &[(String, Arc<Series>)]| all.iter().find(|(n, _)| n == name).map(|(_, s)| s.clone());
    let placement =
        |run: &Summary, all| Placement::of(drawing.view.x, all, parse_time(&run.started));
    // Each line (a run's, a group's) is drawn on its own, spread over the cores: a group's
    // smoothing and alignment read every point of its runs.
    let parallel = |n: usize, draw: &(dyn Fn(usize) -> Vec<Line> + Sync)| -> Vec<Line> {
        let indices: Vec<usize> = (0..n).collect();
        crate::util::parallel::map(&indices, 2, |&i| draw(i))
            .into_iter()
            .flatten()
            .collect()
    };
    match lines {
        Lines::Runs(runs) => parallel(runs.len(), &|i| {
            let (run, all) = (&runs[i], &series[i]);
            let Some(one) = find(all) else {
                return Vec::new();
            };
            view::lines(
                &labels[i],
                i,
                &one,
                &placement(run, all),
                drawing.view,
                drawing.frame,
            )
        }),
        Lines::Groups(groups) => {
            let names = group::names(groups);
            let starts: Vec<usize> = groups
                .iter()
                .scan(0, |at, g| {
                    let start = *at;
                    *at += g.runs.len();
                    Some(start)
                })
                .collect();
            parallel(groups.len(), &|i| {
                let g = &groups[i];
                let of_group = &series[starts[i]..starts[i] + g.runs.len()];
                let members: Vec<Arc<Series>> = of_group.iter().filter_map(|a| find(a)).collect();
                // Placed as the first run that has the metric is.
                let Some(first) = of_group.iter().position(|a| find(a).is_some()) else {
                    return Vec::new();
                };
                // Named by the runs that have this metric.
                view::group_lines(
                    &format!("{} (n={})", names[i], members.len()),
                    i,
                    &members,
                    &placement(&g.runs[first], &of_group[first]),
                    drawing.view,
                    drawing.frame,
                )
            })
        }
    }
}

/// A chart's axes as `view` sets them.
fn axes(view: &ChartView) -> Axes {
    Axes {
        x: view.x,
        log_y: view.y.0,
    }
}

/// Every series of each run of `lines`, read in parallel.
fn series_of(s: &AppState, lines: &Lines) -> Vec<Vec<(String, Arc<Series>)>> {
    crate::util::parallel::map(&lines.runs(), 4, |r| all_series(s, &r.id))
}

/// A chart of every series of `lines`' runs (names in first-seen order), as [`chart_svg`]
/// draws each, from the series read once per run (in parallel): a page of many charts reads
/// each metrics file once, not once per chart.
pub fn all_charts(
    s: &AppState,
    lines: &Lines,
    size: Size,
    view: &ChartView,
) -> Vec<(String, String)> {
    let series = series_of(s, lines);
    let mut names: Vec<&String> = Vec::new();
    for (n, _) in series.iter().flatten() {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let drawing = Drawing {
        view,
        frame: Frame {
            range: None,
            buckets: buckets(lines.len(), size),
        },
    };
    names
        .into_iter()
        .map(|name| {
            let drawn = chart_lines(lines, &series, name, &drawing);
            (
                name.clone(),
                chart::render(name, &drawn, size, None, axes(view)),
            )
        })
        .collect()
}

/// The chart of metric `name` of `lines` (colours in their order, called by
/// [`Lines::labels`]) as `view` shows it, each line downsampled to about one bucket per pixel
/// (half that when many share the chart); the series are read in parallel. A 404 when none
/// of the runs has the metric.
pub fn chart_svg(
    s: &AppState,
    lines: &Lines,
    name: &str,
    size: Size,
    range: Option<(f64, f64)>,
    view: &ChartView,
) -> Result<String, AppError> {
    let series = series_of(s, lines);
    if !series.iter().flatten().any(|(n, _)| n == name) {
        return Err(no_metric(&lines.runs(), name));
    }
    let drawing = Drawing {
        view,
        frame: Frame {
            range,
            buckets: buckets(lines.len(), size),
        },
    };
    let drawn = chart_lines(lines, &series, name, &drawing);
    Ok(chart::render(name, &drawn, size, range, axes(view)))
}
