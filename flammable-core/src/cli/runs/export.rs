//! `export tensorboard DIR` and `export parquet DIR`: runs written in the formats other tools
//! read (see [`crate::export`]).

use super::*;

/// What a binary built without the `export` feature says.
#[cfg_attr(feature = "export", allow(dead_code))]
const EXPORT_UNAVAILABLE: &str = "this binary was built without exports: use the `flammable` \
     binary (`cargo install --path flammable-cli`) or build with flammable-core's `export` feature";

/// `export`'s formats.
#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// Runs as TensorBoard event files, one folder per run (`tensorboard --logdir DIR`):
    /// every metric series as scalars, the message, command line and code diff as text, the
    /// hyperparameters and status in the HParams tab (runs that differ only by seed grouped).
    Tensorboard(TensorboardArgs),
    /// Runs as two tables for dataframes: runs.parquet (a row per run: its record,
    /// `params.<name>`, `metrics.<name>`) and metrics.parquet (every point: run, name, step,
    /// epoch, value, time).
    Parquet(ParquetArgs),
    /// Runs to an MLflow tracking server over its REST API: one MLflow experiment per
    /// experiment, one MLflow run per run (tests nested under their run), hyperparameters as
    /// parameters, every metric point, status and times, source tags, and the record and code
    /// diff as artifacts. Exporting again updates the MLflow runs, never duplicates them.
    /// Credentials from MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and
    /// MLFLOW_TRACKING_PASSWORD.
    Mlflow(MlflowArgs),
}

/// The runs an export takes, as typed.
#[derive(Args, Debug)]
pub struct Chosen {
    /// The runs: ids, unique prefixes, latest, latest~N (default: every run).
    runs: Vec<String>,
    /// The runs of a sweep (its id or a unique prefix).
    #[arg(long, value_name = "ID", conflicts_with = "runs")]
    sweep: Option<String>,
    /// Only runs that pass this filter, written as in the browser: `experiment:digits
    /// status:finished lr<0.01 "wider conv"`.
    #[arg(long)]
    filter: Option<String>,
}

/// `export tensorboard`'s arguments.
#[derive(Args, Debug)]
pub struct TensorboardArgs {
    /// The folder to write into (created if needed); a run exported again replaces its files.
    dir: PathBuf,
    #[command(flatten)]
    chosen: Chosen,
    /// Then keep writing the running runs' new points, every second, until they end.
    #[arg(long)]
    follow: bool,
}

/// `export parquet`'s arguments.
#[derive(Args, Debug)]
pub struct ParquetArgs {
    /// The folder to write the two tables into (created if needed; they are replaced).
    dir: PathBuf,
    #[command(flatten)]
    chosen: Chosen,
    /// Write runs.csv and metrics.csv instead.
    #[arg(long)]
    csv: bool,
}

/// The lock one `export mlflow` to a server holds: in the store's folder, named by a digest
/// of the server (`server`: its [identity](crate::export::mlflow::client::Client::server_identity),
/// the same for `localhost` and `127.0.0.1`) and the experiments' prefix, so that exports to
/// other servers go on; in the system's temporary folder where the store is read-only.
#[cfg(feature = "export")]
fn mlflow_export_lock(store: &Store, server: &str, prefix: &str) -> Result<std::fs::File> {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("{server}\n{prefix}").as_bytes());
    let name = format!(
        "mlflow-export-{}.lock",
        &crate::store::hashes::hex(&digest)[..16]
    );
    let in_store = crate::store::open_lock_file(&store.root().join(&name));
    Ok(in_store.or_else(|e| {
        crate::store::open_lock_file(&std::env::temp_dir().join(format!("flammable-{name}")))
            .map_err(|_| e)
    })?)
}

/// `export mlflow`'s arguments.
#[derive(Args, Debug)]
pub struct MlflowArgs {
    /// The tracking server's URL: `http://127.0.0.1:5000` (`mlflow server`'s default), or an
    /// `https://` one.
    uri: String,
    #[command(flatten)]
    chosen: Chosen,
    /// Put before each experiment's name in MLflow (Databricks wants
    /// `/Users/you@example.com/`).
    #[arg(long, value_name = "PREFIX", default_value = "")]
    experiment_prefix: String,
    /// Then keep writing the running runs' new points, every two seconds, until they end.
    #[arg(long)]
    follow: bool,
}

#[cfg(feature = "export")]
pub(super) fn export(store: &Store, command: ExportCommand, quiet: bool) -> Result<ExitCode> {
    match command {
        ExportCommand::Tensorboard(a) => tensorboard(store, a, quiet),
        ExportCommand::Parquet(a) => tables(store, a, quiet),
        ExportCommand::Mlflow(a) => mlflow(store, a, quiet),
    }
}

#[cfg(feature = "export")]
fn mlflow(store: &Store, a: MlflowArgs, quiet: bool) -> Result<ExitCode> {
    use crate::export::mlflow::{self, client::Client, Target};
    let target = Target {
        client: Client::new(&a.uri)?,
        prefix: a.experiment_prefix,
    };
    let mut records = a.chosen.records(store)?;
    // One export from this store to a server at a time: two would each make the MLflow run of
    // a new run.
    let lock = mlflow_export_lock(store, &target.client.server_identity(), &target.prefix)?;
    if lock.try_lock().is_err() {
        if !quiet {
            crate::util::stderr::errln!(
                "waiting for another export from this store to {} (one with --follow holds it until its runs end)",
                target.client.base()
            );
        }
        lock.lock()
            .map_err(|e| Error::msg(format!("cannot lock the MLflow export: {e}")))?;
        // The runs went on while this export waited (one that was running may have ended):
        // the records read before would write a status that is no longer true.
        records = a.chosen.records(store)?;
    }
    let (report, mut done) = mlflow::export(store, &records, &target)?;
    if !quiet {
        let mut parts = vec![format!("{} new", report.created)];
        if report.updated > 0 {
            parts.push(format!("{} updated", report.updated));
        }
        if report.unchanged > 0 {
            parts.push(format!("{} there already", report.unchanged));
        }
        crate::util::stderr::errln!(
            "exported {} run{} ({}; {} points) to {}",
            report.runs,
            if report.runs == 1 { "" } else { "s" },
            parts.join(", "),
            report.points,
            target.client.base()
        );
    }
    follow(
        store,
        a.follow && !done.is_empty(),
        quiet,
        Duration::from_secs(2),
        &mut done,
        |d| (d.id.clone(), d.ended),
        |r, d| mlflow::append_run(store, &target.client, r, d).map(drop),
    )
}

#[cfg(feature = "export")]
fn tables(store: &Store, a: ParquetArgs, quiet: bool) -> Result<ExitCode> {
    use crate::export::parquet::{export, Format};
    outside_store(store, &a.dir)?;
    let records = a.chosen.records(store)?;
    let format = if a.csv { Format::Csv } else { Format::Parquet };
    let report = export(store, &records, &a.dir, format)?;
    if !quiet {
        let ext = if a.csv { "csv" } else { "parquet" };
        crate::util::stderr::errln!(
            "exported {} run{} ({} points) to {}: runs.{ext}, metrics.{ext}",
            report.runs,
            if report.runs == 1 { "" } else { "s" },
            report.points,
            a.dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "export")]
fn tensorboard(store: &Store, a: TensorboardArgs, quiet: bool) -> Result<ExitCode> {
    use crate::export::tensorboard;
    outside_store(store, &a.dir)?;
    let records = a.chosen.records(store)?;
    let (report, mut done) = tensorboard::export(store, &records, &a.dir)?;
    if !quiet {
        crate::util::stderr::errln!(
            "exported {} run{} ({} points) to {}: `tensorboard --logdir {}`",
            report.runs,
            if report.runs == 1 { "" } else { "s" },
            report.points,
            a.dir.display(),
            a.dir.display()
        );
    }
    follow(
        store,
        a.follow,
        quiet,
        Duration::from_secs(1),
        &mut done,
        |d| (d.id.clone(), d.ended),
        |r, d| tensorboard::append_run(store, r, d).map(drop),
    )
}

/// `--follow`: while some of the runs exported (`done`) run, every `every`, `append`s what
/// each wrote since, until all have ended. `state` gives an export's run and whether its end
/// was written.
#[cfg(feature = "export")]
fn follow<D>(
    store: &Store,
    on: bool,
    quiet: bool,
    every: Duration,
    done: &mut [D],
    state: impl Fn(&D) -> (String, bool),
    mut append: impl FnMut(&Record, &mut D) -> Result<()>,
) -> Result<ExitCode> {
    if !on {
        return Ok(ExitCode::SUCCESS);
    }
    let live = done.iter().filter(|d| !state(d).1).count();
    if !quiet {
        if live == 0 {
            crate::util::stderr::errln!("no run is running: nothing to follow");
        } else {
            crate::util::stderr::errln!(
                "following {live} running run{} until {} (Ctrl-C stops)",
                if live == 1 { "" } else { "s" },
                if live == 1 { "it ends" } else { "they end" }
            );
        }
    }
    // Runs removed while followed (`rm`) are followed no longer.
    let mut gone = std::collections::BTreeSet::new();
    while done
        .iter()
        .any(|d| !state(d).1 && !gone.contains(&state(d).0))
    {
        std::thread::sleep(every);
        for d in done.iter_mut() {
            let (id, ended) = state(d);
            if ended || gone.contains(&id) {
                continue;
            }
            // A running run whose process is gone reads as crashed (Store::read).
            let r = match store.read(&id) {
                Ok(r) => r,
                Err(e) => {
                    crate::util::stderr::errln!("warning: run {id} is no longer followed: {e}");
                    gone.insert(id);
                    continue;
                }
            };
            append(&r, d)?;
            if state(d).1 && !quiet {
                crate::util::stderr::errln!("run {} ended ({}): exported", r.id, r.status);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses an export folder inside the store: it would write into runs' folders.
#[cfg(feature = "export")]
fn outside_store(store: &Store, dir: &Path) -> Result<()> {
    let absolute = std::env::current_dir()
        .map(|cwd| cwd.join(dir))
        .unwrap_or_else(|_| dir.to_path_buf());
    // The deepest part that exists, resolved (links, `..`), and the rest as typed.
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => break,
        }
    }
    let mut resolved = std::fs::canonicalize(existing).unwrap_or_else(|_| existing.to_path_buf());
    resolved.extend(rest.iter().rev());
    let root = std::fs::canonicalize(store.root()).unwrap_or_else(|_| store.root().to_path_buf());
    if resolved.starts_with(&root) {
        return Err(Error::usage(format!(
            "{} is inside the store {}: export to a folder outside it",
            dir.display(),
            root.display()
        )));
    }
    Ok(())
}

#[cfg(not(feature = "export"))]
pub(super) fn export(_: &Store, _: ExportCommand, _: bool) -> Result<ExitCode> {
    Err(Error::usage(EXPORT_UNAVAILABLE))
}

#[cfg(feature = "export")]
impl Chosen {
    /// The runs named (with their tests and evaluations), or a sweep's, or every run; then
    /// those the filter keeps. Oldest first; a usage error when none is left.
    fn records(&self, store: &Store) -> Result<Vec<Record>> {
        let out = chosen(
            store,
            &self.runs,
            self.sweep.as_deref(),
            self.filter.as_deref(),
        )?;
        if out.is_empty() {
            return Err(Error::usage(format!(
                "no runs to export in {}",
                store.root().display()
            )));
        }
        Ok(out)
    }
}

#[cfg(feature = "export")]
fn chosen(
    store: &Store,
    runs: &[String],
    sweep: Option<&str>,
    filter: Option<&str>,
) -> Result<Vec<Record>> {
    let mut out: Vec<Record> = match sweep {
        Some(id) if id.trim().is_empty() => {
            return Err(Error::usage(
                "--sweep is empty: give a sweep's id or a prefix of it",
            ))
        }
        Some(id) => crate::run::select::runs_of_sweep(store, id)?,
        None if runs.is_empty() => {
            // As `runs` says them: a run left out of a whole store's export is not silent.
            let (records, unreadable) = store.records_and_errors()?;
            for (id, e) in unreadable {
                crate::util::stderr::errln!(
                    "warning: run {id} cannot be read, and is not exported: {e}"
                );
            }
            records
        }
        None => {
            let mut out: Vec<Record> = Vec::new();
            for spec in runs {
                let r = store.resolve(spec, |_| true)?;
                if !out.iter().any(|o| o.id == r.id) {
                    out.push(r);
                }
            }
            let named: std::collections::BTreeSet<String> =
                out.iter().map(|r| r.id.clone()).collect();
            out.extend(store.records()?.into_iter().filter(|r| {
                r.parent.as_ref().is_some_and(|p| named.contains(p)) && !named.contains(&r.id)
            }));
            out
        }
    };
    if let Some(text) = filter {
        let filter =
            crate::ui::Filter::parse(text).map_err(|e| Error::usage(format!("--filter: {e}")))?;
        let summaries: Vec<crate::ui::Summary> = out
            .iter()
            .filter_map(|r| crate::ui::summarize(store, &r.id).ok())
            .collect();
        let metrics = summaries
            .iter()
            .flat_map(|s| s.metrics.keys().cloned())
            .collect();
        let hyper = summaries
            .iter()
            .flat_map(|s| s.hyper.keys().cloned())
            .collect();
        if !summaries.is_empty() {
            filter
                .check_names(&metrics, &hyper)
                .map_err(|e| Error::usage(format!("--filter: {e}")))?;
        }
        let kept: std::collections::BTreeSet<&str> = summaries
            .iter()
            .filter(|s| filter.matches(s))
            .map(|s| s.id.as_str())
            .collect();
        let before = out.len();
        out.retain(|r| kept.contains(r.id.as_str()));
        if out.is_empty() && before > 0 {
            let hint = filter
                .hint_for_none_kept()
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            return Err(Error::usage(format!(
                "--filter {text:?} keeps none of the {before} run{} chosen{hint}",
                if before == 1 { "" } else { "s" }
            )));
        }
    }
    out.sort_by(|a, b| a.started.cmp(&b.started).then(a.id.cmp(&b.id)));
    Ok(out)
}

#[cfg(all(test, feature = "export"))]
mod tests {
    use super::*;

    #[test]
    fn an_mlflow_export_holds_only_its_servers_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("store"));
        std::fs::create_dir_all(store.root()).unwrap();
        let held = mlflow_export_lock(&store, "http://127.0.0.1:5000", "").unwrap();
        held.try_lock().unwrap();
        // The same server and prefix wait; another server or another prefix go on.
        let same = mlflow_export_lock(&store, "http://127.0.0.1:5000", "").unwrap();
        assert!(same.try_lock().is_err());
        for (base, prefix) in [
            ("http://127.0.0.1:5001", ""),
            ("http://127.0.0.1:5000", "/Users/me/"),
        ] {
            let other = mlflow_export_lock(&store, base, prefix).unwrap();
            other.try_lock().unwrap();
        }
    }
}
