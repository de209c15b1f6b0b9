//! The run commands, in every task binary and in the `flammable` binary: `runs`, `show`,
//! `diff`, `checkout`, `rerun`, `rm`, `gc`.

use super::provenance::{RERUN_OF_ENV, REUSE_SNAPSHOT_ENV};
use crate::error::{Error, IoContext, Result};
use crate::hyper::parse_config;
use crate::metrics::read_metrics;
use crate::record::{Record, RunKind, RunStatus};
use crate::snapshot::{self, ChangeKind};
use crate::store::Store;
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
                    &s.commit[..12],
                    dir.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        RunCommand::Rerun { run } => rerun(store, &run),
        RunCommand::Metrics { run, name } => {
            let r = store.resolve(&run, |_| true)?;
            let path = store.metrics_path(&r.id);
            let mut points = read_metrics(&path).at("cannot read metrics", &path)?;
            if let Some(n) = name {
                points.retain(|p| *p.name == *n);
            }
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            crate::metrics::write_csv(&points, &mut out).at("cannot write", "stdout")?;
            Ok(ExitCode::SUCCESS)
        }
        RunCommand::Rm { runs } => {
            for spec in runs {
                let r = store.resolve(&spec, |_| true)?;
                let trash = store.root().join("trash");
                std::fs::create_dir_all(&trash).at("cannot create", &trash)?;
                let from = store.run_dir(&r.id);
                std::fs::rename(&from, trash.join(&r.id)).at("cannot move to the trash", &from)?;
                if !quiet {
                    eprintln!("removed run {} (its folder and code go with `gc`)", r.id);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RunCommand::Gc { dry_run } => gc(store, dry_run),
    }
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
        println!("{}", to_json(&records)?);
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
    print_table(&header, &rows);
    Ok(ExitCode::SUCCESS)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::msg(format!("cannot write JSON: {e}")))
}

fn print_table(header: &[String], rows: &[[String; 8]]) {
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
    println!("{}", line(header));
    for row in rows {
        println!("{}", line(row));
    }
}

fn truncate(s: &str, n: usize) -> String {
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
        println!("{}", to_json(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    let dir = store.run_dir(&r.id);
    println!("run         {}", r.id);
    println!("experiment  {}", r.experiment);
    println!("kind        {}", r.kind);
    println!("status      {}", r.status);
    if let Some(p) = &r.parent {
        println!("parent      {p}");
    }
    if let Some(p) = &r.rerun_of {
        println!("rerun of    {p}");
    }
    if let Some(m) = &r.message {
        println!("message     {m}");
    }
    println!("command     {}", r.argv.join(" "));
    println!("started     {} ({} ago)", r.started, age(&r.started));
    if let Some(e) = &r.ended {
        println!("ended       {e} (took {})", duration(&r));
    }
    println!("seed        {}", r.seed);
    println!(
        "device      {} ({} threads) on {}",
        r.environment.device, r.environment.threads, r.environment.host
    );
    println!(
        "build       {} {} `{}` of {}, profile {}, {}",
        r.build.kind,
        r.build.name,
        r.build.package,
        r.build.manifest_dir.display(),
        r.build.profile,
        r.build.rustc
    );
    if let Some(e) = &r.error {
        println!("error       {e}");
    }
    println!("folder      {}", dir.display());
    if let Ok(text) = std::fs::read_to_string(dir.join("hyperparameters.ron")) {
        println!("\nhyperparameters");
        if let Ok(values) = parse_config(text, &dir.join("hyperparameters.ron")) {
            for (k, v) in values {
                println!("  {k:<16} {}", v.as_deref().unwrap_or("None"));
            }
        }
    }
    if !r.metrics.is_empty() {
        println!("\nfinal metrics");
        for (k, v) in &r.metrics {
            println!("  {k:<16} {v:.4}");
        }
    }
    for t in &r.tests {
        println!("\ntested by {}", t.run);
        for (k, v) in &t.metrics {
            println!("  {k:<16} {v:.4}");
        }
    }
    if let Ok(points) = read_metrics(&store.metrics_path(&r.id)) {
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
            println!("\nmetric series  (points, min, max, last)");
            for (k, (n, lo, hi, last)) in series {
                println!("  {k:<16} {n:>7}  {lo:.4}  {hi:.4}  {last:.4}");
            }
        }
    }
    println!("\nfiles");
    for f in walk(&dir) {
        println!("  {f}");
    }
    match &r.snapshot {
        Some(s) => {
            println!(
                "\ncode        snapshot {} (refs/flammable/runs/{})",
                s.commit, r.id
            );
            if let Some(p) = &s.parent {
                println!("            on {p}");
            }
            if let Ok(changes) = snapshot::changed_paths(&s.git_dir, &s.commit) {
                if s.parent.is_some() && !changes.is_empty() {
                    println!("uncommitted files it ran with:");
                    for c in changes {
                        println!("  {} {}", mark(c.kind), c.path);
                    }
                }
            }
            for (p, n) in &s.skipped {
                println!("  left out (size): {p} ({n} bytes)");
            }
        }
        None => println!("\ncode        no snapshot"),
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
    let path = store.run_dir(id).join("hyperparameters.ron");
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
    println!("run {} → run {}", ra.id, rb.id);
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
        println!(
            "\nhyperparameters{}",
            if changed.is_empty() { ": same" } else { "" }
        );
        for c in changed {
            println!("{c}");
        }
        let (ma, mb) = (all_metrics(&ra), all_metrics(&rb));
        let keys: std::collections::BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
        println!("\nmetrics");
        for k in keys {
            let v = |m: &BTreeMap<String, f64>| {
                m.get(k).map_or_else(|| "-".into(), |v| format!("{v:.4}"))
            };
            let delta = match (ma.get(k), mb.get(k)) {
                (Some(x), Some(y)) => format!("  ({:+.4})", y - x),
                _ => String::new(),
            };
            println!("  {k}: {} → {}{delta}", v(&ma), v(&mb));
        }
    }
    let (sa, sb) = (snapshot_of(&ra)?, snapshot_of(&rb)?);
    let changes =
        snapshot::diff(&sb.git_dir, Some(&sa.commit), &sb.commit, !stat).map_err(Error::usage)?;
    println!(
        "\ncode: {} → {}, {} file(s) changed",
        &sa.commit[..12],
        &sb.commit[..12],
        changes.len()
    );
    for c in changes {
        if stat {
            println!("  {} {}", mark(c.kind), c.path);
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
    let hyper = store.run_dir(&r.id).join("hyperparameters.ron");
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
        &s.commit[..12],
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
    let trash = store.root().join("trash");
    let entries = match std::fs::read_dir(&trash) {
        Ok(e) => e,
        Err(_) => {
            println!("nothing to remove");
            return Ok(ExitCode::SUCCESS);
        }
    };
    for e in entries.flatten() {
        let dir = e.path();
        let id = e.file_name().to_string_lossy().into_owned();
        let record: Option<Record> = std::fs::read_to_string(dir.join("record.ron"))
            .ok()
            .and_then(|t| ron::from_str(&t).ok());
        let git_dir = record
            .as_ref()
            .and_then(|r| r.snapshot.as_ref())
            .map(|s| s.git_dir.clone());
        if dry_run {
            println!("would remove run {id} and its ref");
            continue;
        }
        if let Some(g) = git_dir {
            if let Err(err) = snapshot::delete_ref(&g, &id) {
                eprintln!("warning: run {id}: {err}");
            }
        }
        std::fs::remove_dir_all(&dir).at("cannot remove", &dir)?;
        println!("removed run {id}");
    }
    Ok(ExitCode::SUCCESS)
}
