//! The run commands, in every task binary and in the `flammable` binary: `runs`, `show`,
//! `diff`, `checkout`, `rerun`, `rm`, `gc`.

use super::provenance::{RERUN_OF_ENV, REUSE_SNAPSHOT_ENV};
use super::stdout::outln;
use crate::error::{Error, IoContext, Result};
use crate::hyper::parse_config;
use crate::record::{Record, RunKind, RunStatus};
use crate::snapshot::{self, ChangeKind};
use crate::store::{Store, HYPERPARAMETERS_FILE};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

/// Where `rerun` builds (default: `target/` in the store).
pub const RERUN_TARGET_ENV: &str = "FLAMMABLE_RERUN_TARGET_DIR";

/// The commands that read and manage the run record.
#[derive(Subcommand, Debug)]
pub enum RunCommand {
    /// List runs, newest first.
    Runs(ListArgs),
    /// Show one run: its record, hyperparameters, metrics, files and code.
    Show {
        /// An id, a unique prefix, latest or latest~N.
        run: String,
        /// Print the record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compare two runs: hyperparameters, metrics and code.
    Diff {
        /// The first run.
        a: String,
        /// The second run.
        b: String,
        /// Only the names of the changed files.
        #[arg(long)]
        stat: bool,
        /// Only the code.
        #[arg(long)]
        code_only: bool,
    },
    /// Print a run's metric points as CSV (name,step,epoch,value,time).
    Metrics {
        /// The run.
        run: String,
        /// Only the metric with this name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Write the code a run ran into a folder (your checkout is untouched).
    Checkout {
        /// The run.
        run: String,
        /// An empty or new folder.
        dir: PathBuf,
    },
    /// Build and run a train run's code again, with its hyperparameters and seed, as a new run.
    Rerun {
        /// The train run.
        run: String,
    },
    /// Move runs to the store's trash (`gc` removes them for good).
    Rm {
        /// The runs.
        #[arg(required = true)]
        runs: Vec<String>,
        /// Stop a run that is still running (SIGTERM: a training saves its checkpoint),
        /// then remove it.
        #[arg(long)]
        force: bool,
    },
    /// Remove the trashed runs' folders and their Git refs.
    Gc {
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Filters of `runs`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only runs of this experiment.
    #[arg(long)]
    experiment: Option<String>,
    /// Only runs with this status.
    #[arg(long, value_enum)]
    status: Option<RunStatus>,
    /// Only runs of this kind.
    #[arg(long, value_enum)]
    kind: Option<RunKind>,
    /// At most this many runs.
    #[arg(long)]
    limit: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a run command against `store`.
pub fn execute(cmd: RunCommand, store: &Store, quiet: bool) -> Result<ExitCode> {
    match cmd {
        RunCommand::Runs(a) => list(store, a),
        RunCommand::Show { run, json } => show(store, &run, json),
        RunCommand::Diff {
            a,
            b,
            stat,
            code_only,
        } => diff(store, &a, &b, stat, code_only),
        RunCommand::Checkout { run, dir } => {
            let r = store.resolve(&run, |_| true)?;
            let s = snapshot_of(&r)?;
            let n = snapshot::checkout(&s.git_dir, &s.commit, &dir).map_err(Error::usage)?;
            if !quiet {
                eprintln!(
                    "wrote {n} files of run {} ({}) into {}",
                    r.id,
                    short_commit(&s.commit),
                    dir.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        RunCommand::Rerun { run } => rerun(store, &run),
        RunCommand::Metrics { run, name } => {
            let r = store.resolve(&run, |_| true)?;
            let mut points = run_metrics(store, &r.id)?;
            if let Some(n) = name {
                let names: std::collections::BTreeSet<&str> =
                    points.iter().map(|p| &*p.name).collect();
                if !names.contains(n.as_str()) {
                    return Err(Error::usage(format!(
                        "run {} has no metric `{n}`; it has: {}",
                        r.id,
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.into_iter().collect::<Vec<_>>().join(", ")
                        }
                    )));
                }
                points.retain(|p| *p.name == *n);
            }
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            crate::metrics::write_csv(&points, &mut out)
                .and_then(|()| std::io::Write::flush(&mut out))
                .map_err(super::stdout::from_io)?;
            Ok(ExitCode::SUCCESS)
        }
        RunCommand::Rm { runs, force } => {
            for spec in runs {
                let removal = store.remove(&spec, force)?;
                if !quiet {
                    let stopped = if removal.stopped { "stopped and " } else { "" };
                    eprintln!(
                        "{stopped}removed run {} (its folder and code go with `gc`)",
                        removal.id
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RunCommand::Gc { dry_run } => gc(store, dry_run),
    }
}

/// The metric points of run `id` (none when it has no metrics file); a damaged file is
/// named in a warning, with the points that could be read.
fn run_metrics(store: &Store, id: &str) -> Result<Vec<crate::metrics::Point>> {
    let path = store.metrics_path(id);
    let (points, unnamed) = match crate::metrics::read_metrics_checked(&path) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("cannot read metrics", path, e)),
    };
    if unnamed > 0 {
        eprintln!(
            "warning: {unnamed} metric record(s) of run {id} name no metric of {}: the files are damaged",
            path.with_extension("names").display()
        );
    }
    Ok(points)
}

fn snapshot_of(r: &Record) -> Result<&crate::record::SnapshotRecord> {
    r.snapshot
        .as_ref()
        .ok_or_else(|| Error::usage(format!("run {} has no snapshot of its code", r.id)))
}

fn list(store: &Store, a: ListArgs) -> Result<ExitCode> {
    let (records, unreadable) = store.records_and_errors()?;
    for (id, e) in unreadable {
        eprintln!("warning: run {id} cannot be read: {e}");
    }
    let mut records: Vec<Record> = records
        .into_iter()
        .rev()
        .filter(|r| a.experiment.as_ref().is_none_or(|e| &r.experiment == e))
        .filter(|r| a.status.is_none_or(|s| r.status == s))
        .filter(|r| a.kind.is_none_or(|k| r.kind == k))
        .collect();
    if let Some(n) = a.limit {
        records.truncate(n);
    }
    if a.json {
        outln!("{}", to_json(&records)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 8]> = records
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.experiment.clone(),
                r.kind.to_string(),
                r.status.to_string(),
                age(&r.started),
                duration(r),
                truncate(r.message.as_deref().unwrap_or(""), 30),
                key_metrics(r),
            ]
        })
        .collect();
    let header = [
        "id",
        "experiment",
        "kind",
        "status",
        "age",
        "time",
        "message",
        "metrics",
    ]
    .map(String::from);
    print_table(&header, &rows)?;
    Ok(ExitCode::SUCCESS)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::msg(format!("cannot write JSON: {e}")))
}

fn print_table(header: &[String], rows: &[[String; 8]]) -> Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    outln!("{}", line(header));
    for row in rows {
        outln!("{}", line(row));
    }
    Ok(())
}

/// The first 12 characters of a commit id (all of a shorter, hand-edited one).
fn short_commit(commit: &str) -> &str {
    commit
        .char_indices()
        .nth(12)
        .map_or(commit, |(at, _)| &commit[..at])
}

/// `s` on one line (control characters, newlines among them, become spaces), at most `n`
/// characters.
fn truncate(s: &str, n: usize) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let s = s.as_str();
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

fn key_metrics(r: &Record) -> String {
    let mut m: BTreeMap<String, f64> = r.metrics.clone();
    if let Some(t) = r.tests.last() {
        m.extend(t.metrics.iter().map(|(k, v)| (format!("test/{k}"), *v)));
    }
    m.iter()
        .take(3)
        .map(|(k, v)| format!("{k}={v:.4}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(s).ok()
}

fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn age(started: &str) -> String {
    parse_time(started)
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map_or_else(|| "?".into(), short)
}

fn duration(r: &Record) -> String {
    let (Some(s), Some(e)) = (
        parse_time(&r.started),
        r.ended.as_deref().and_then(parse_time),
    ) else {
        return "-".into();
    };
    e.duration_since(s).map_or_else(|_| "-".into(), short)
}

fn show(store: &Store, spec: &str, json: bool) -> Result<ExitCode> {
    let r = store.resolve(spec, |_| true)?;
    if json {
        outln!("{}", to_json(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    let dir = store.run_dir(&r.id);
    outln!("run         {}", r.id);
    outln!("experiment  {}", r.experiment);
    outln!("kind        {}", r.kind);
    outln!("status      {}", r.status);
    if let Some(p) = &r.parent {
        outln!("parent      {p}");
    }
    if let Some(p) = &r.rerun_of {
        outln!("rerun of    {p}");
    }
    if let Some(m) = &r.message {
        outln!("message     {m}");
    }
    outln!("command     {}", r.argv.join(" "));
    outln!("started     {} ({} ago)", r.started, age(&r.started));
    if let Some(e) = &r.ended {
        outln!("ended       {e} (took {})", duration(&r));
    }
    outln!("seed        {}", r.seed);
    outln!(
        "device      {} ({} threads) on {}",
        r.environment.device,
        r.environment.threads,
        r.environment.host
    );
    outln!(
        "build       {} {} `{}` of {}, profile {}, {}",
        r.build.kind,
        r.build.name,
        r.build.package,
        r.build.manifest_dir.display(),
        r.build.profile,
        r.build.rustc
    );
    if let Some(e) = &r.error {
        outln!("error       {e}");
    }
    outln!("folder      {}", dir.display());
    if let Ok(text) = std::fs::read_to_string(dir.join(HYPERPARAMETERS_FILE)) {
        outln!("\nhyperparameters");
        if let Ok(values) = parse_config(text, &dir.join(HYPERPARAMETERS_FILE)) {
            for (k, v) in values {
                outln!("  {k:<16} {}", v.as_deref().unwrap_or("None"));
            }
        }
    }
    if !r.metrics.is_empty() {
        outln!("\nfinal metrics");
        for (k, v) in &r.metrics {
            outln!("  {k:<16} {v:.4}");
        }
    }
    for t in &r.tests {
        outln!("\ntested by {}", t.run);
        for (k, v) in &t.metrics {
            outln!("  {k:<16} {v:.4}");
        }
    }
    if let Ok(points) = run_metrics(store, &r.id) {
        let mut series: BTreeMap<&str, (usize, f64, f64, f64)> = BTreeMap::new();
        for p in &points {
            let e = series
                .entry(&p.name)
                .or_insert((0, f64::INFINITY, f64::NEG_INFINITY, 0.0));
            e.0 += 1;
            e.1 = e.1.min(p.value);
            e.2 = e.2.max(p.value);
            e.3 = p.value;
        }
        if !series.is_empty() {
            outln!("\nmetric series  (points, min, max, last)");
            for (k, (n, lo, hi, last)) in series {
                outln!("  {k:<16} {n:>7}  {lo:.4}  {hi:.4}  {last:.4}");
            }
        }
    }
    outln!("\nfiles");
    for f in walk(&dir) {
        outln!("  {f}");
    }
    match &r.snapshot {
        Some(s) => {
            let name = format!("{}{}", snapshot::REF_PREFIX, r.id);
            let kept_by = if snapshot::has_ref(&s.git_dir, &name) {
                name
            } else {
                "no ref of its own: a rerun's, or removed; `git gc` may delete it".to_string()
            };
            outln!("\ncode        snapshot {} ({kept_by})", s.commit);
            if let Some(p) = &s.parent {
                outln!("            on {p}");
            }
            if let Ok(changes) = snapshot::changed_paths(&s.git_dir, &s.commit) {
                if s.parent.is_some() && !changes.is_empty() {
                    outln!("uncommitted files it ran with:");
                    for c in changes {
                        outln!("  {} {}", mark(c.kind), c.path);
                    }
                }
            }
            for (p, n) in &s.skipped {
                outln!("  left out (size): {p} ({n} bytes)");
            }
        }
        None => outln!("\ncode        no snapshot"),
    }
    Ok(ExitCode::SUCCESS)
}

fn mark(kind: ChangeKind) -> char {
    match kind {
        ChangeKind::Added => 'A',
        ChangeKind::Deleted => 'D',
        ChangeKind::Modified => 'M',
    }
}

/// Files under `dir`, relative, sorted.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                out.push(format!("{} ({size} bytes)", rel.display()));
            }
        }
    }
    out.sort();
    out
}

/// Flattened hyperparameters of a run.
fn hyperparameters(store: &Store, id: &str) -> BTreeMap<String, String> {
    let path = store.run_dir(id).join(HYPERPARAMETERS_FILE);
    std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| parse_config(t, &path).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_else(|| "None".into())))
        .collect()
}

fn all_metrics(r: &Record) -> BTreeMap<String, f64> {
    let mut m = r.metrics.clone();
    if let Some(t) = r.tests.last() {
        m.extend(t.metrics.iter().map(|(k, v)| (format!("test/{k}"), *v)));
    }
    m
}

fn diff(store: &Store, a: &str, b: &str, stat: bool, code_only: bool) -> Result<ExitCode> {
    let (ra, rb) = (store.resolve(a, |_| true)?, store.resolve(b, |_| true)?);
    outln!("run {} → run {}", ra.id, rb.id);
    if !code_only {
        let (ha, hb) = (
            hyperparameters(store, &ra.id),
            hyperparameters(store, &rb.id),
        );
        let keys: std::collections::BTreeSet<&String> = ha.keys().chain(hb.keys()).collect();
        let changed: Vec<String> = keys
            .into_iter()
            .filter(|k| ha.get(*k) != hb.get(*k))
            .map(|k| {
                let v =
                    |m: &BTreeMap<String, String>| m.get(k).cloned().unwrap_or_else(|| "-".into());
                format!("  {k}: {} → {}", v(&ha), v(&hb))
            })
            .collect();
        outln!(
            "\nhyperparameters{}",
            if changed.is_empty() { ": same" } else { "" }
        );
        for c in changed {
            outln!("{c}");
        }
        let (ma, mb) = (all_metrics(&ra), all_metrics(&rb));
        let keys: std::collections::BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
        outln!("\nmetrics");
        for k in keys {
            let v = |m: &BTreeMap<String, f64>| {
                m.get(k).map_or_else(|| "-".into(), |v| format!("{v:.4}"))
            };
            let delta = match (ma.get(k), mb.get(k)) {
                (Some(x), Some(y)) => format!("  ({:+.4})", y - x),
                _ => String::new(),
            };
            outln!("  {k}: {} → {}{delta}", v(&ma), v(&mb));
        }
    }
    let (sa, sb) = (snapshot_of(&ra)?, snapshot_of(&rb)?);
    let changes =
        snapshot::diff(&sb.git_dir, Some(&sa.commit), &sb.commit, !stat).map_err(Error::usage)?;
    outln!(
        "\ncode: {} → {}, {} file(s) changed",
        short_commit(&sa.commit),
        short_commit(&sb.commit),
        changes.len()
    );
    for c in changes {
        if stat {
            outln!("  {} {}", mark(c.kind), c.path);
        } else {
            print!("{}", c.patch);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn rerun(store: &Store, spec: &str) -> Result<ExitCode> {
    let r = store.resolve(spec, |r| r.kind == RunKind::Train)?;
    let s = snapshot_of(&r)?;
    let b = &r.build;
    if b.package.is_empty() || b.name.is_empty() {
        return Err(Error::usage(format!(
            "run {} does not record which binary ran it",
            r.id
        )));
    }
    let root = std::fs::canonicalize(store.root()).unwrap_or_else(|_| store.root().to_path_buf());
    let work = root
        .join("reruns")
        .join(format!("{}-{}", r.id, std::process::id()));
    let src = work.join("src");
    snapshot::checkout(&s.git_dir, &s.commit, &src).map_err(Error::usage)?;
    // Where the package sat in the working tree, so that cargo builds the same one.
    let package_dir = if s.workdir.as_os_str().is_empty() {
        src.clone()
    } else {
        b.manifest_dir
            .strip_prefix(&s.workdir)
            .map(|rel| src.join(rel))
            .unwrap_or_else(|_| src.clone())
    };
    // A target folder of the store's own, kept across reruns so that only the first one
    // builds the dependencies; never the user's, whose binaries a rerun must not replace.
    let target_dir = std::env::var_os(RERUN_TARGET_ENV)
        .filter(|t| !t.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let hyper = store.run_dir(&r.id).join(HYPERPARAMETERS_FILE);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.arg("run")
        .arg("--profile")
        .arg(if b.profile.is_empty() {
            "dev"
        } else {
            &b.profile
        });
    cmd.arg("-p").arg(&b.package);
    cmd.arg(if b.kind == "example" {
        "--example"
    } else {
        "--bin"
    })
    .arg(&b.name);
    if !b.features.is_empty() {
        cmd.arg("--features").arg(
            b.features
                .iter()
                .map(|f| format!("flammable/{f}"))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    cmd.arg("--")
        .arg("train")
        .arg("--config")
        .arg(&hyper)
        .arg("--seed")
        .arg(r.seed.to_string());
    cmd.arg("--message").arg(format!("rerun of {}", r.id));
    cmd.current_dir(&package_dir)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env(crate::store::STORE_ENV, &root)
        .env(RERUN_OF_ENV, &r.id)
        .env(
            REUSE_SNAPSHOT_ENV,
            format!("{}@{}", s.commit, s.git_dir.display()),
        );
    eprintln!(
        "rerun of {}: building {} `{}` from snapshot {} in {}",
        r.id,
        b.kind,
        b.name,
        short_commit(&s.commit),
        src.display()
    );
    let status = cmd.status().at("cannot start cargo in", &package_dir)?;
    let _ = std::fs::remove_dir_all(&work);
    if status.success() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Error::msg(format!(
            "the rerun of {} failed ({status})",
            r.id
        )))
    }
}

fn gc(store: &Store, dry_run: bool) -> Result<ExitCode> {
    let report = store.gc(dry_run)?;
    let (verb, refs) = if dry_run {
        ("would remove", "would remove the ref")
    } else {
        ("removed", "removed the ref")
    };
    for id in &report.runs {
        outln!("{verb} run {id} and its refs");
    }
    for name in &report.orphan_refs {
        outln!("{refs} {name} (its run folder is gone)");
    }
    if report.runs.is_empty() && report.orphan_refs.is_empty() {
        outln!("nothing to remove");
    }
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(ExitCode::SUCCESS)
}
