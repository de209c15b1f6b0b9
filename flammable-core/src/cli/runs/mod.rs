//! The run commands, in every task binary and in the `flammable` binary: `runs`, `show`,
//! `diff`, `checkout`, `rerun`, `rm`, `restore`, `edit`, `gc`, `ui`, `watch`.

mod bisect;
mod diff;
mod export;
mod gc;
mod list;
mod outside_paths;
mod remote;
mod rerun;
mod show;
mod sweep;
#[cfg(feature = "watch")]
mod watch;

pub use bisect::{BisectArgs, BisectCheckArgs, Judge};
use diff::*;
pub use export::{Chosen, ExportCommand, MlflowArgs, ParquetArgs, TensorboardArgs};
use gc::*;
use list::*;
pub use remote::{PullArgs, PushArgs, RemoteCommand, Which};
use rerun::*;
use show::*;
pub use sweep::{list_sweep, print_sweep};

use super::stdout::outln;
use crate::error::{Error, IoContext, Result};
use crate::hyper::parse_config;
use crate::run::provenance::{RERUN_OF_ENV, REUSE_SNAPSHOT_ENV};
use crate::snapshot::{self, ChangeKind};
use crate::store::record::{Record, RunKind, RunStatus};
use crate::store::{Store, CHECKPOINTS_DIR, HYPERPARAMETERS_FILE};
use clap::builder::TypedValueParser as _;
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

/// What a binary built without the `watch` feature says when asked for the dashboard.
pub const WATCH_UNAVAILABLE: &str =
    "this binary was built without the terminal dashboard: run `flammable watch` \
     (`cargo install flammable-cli`), or build with flammable's `watch` feature (on by default)";

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
    /// Change what is written about runs after the fact: tags, a note, the message (the
    /// record keeps the history of edits).
    Edit(EditArgs),
    /// Bring runs that `rm` moved to the trash back (before `gc` removes them for good).
    Restore {
        /// Trashed runs: ids, or prefixes that fit one trashed run each.
        #[arg(required = true)]
        runs: Vec<String>,
    },
    /// Find the first commit whose metric crosses a threshold, between a good and a bad
    /// state (runs or revisions): from the runs that exist, else by training the commits
    /// like the good run.
    Bisect(BisectArgs),
    /// Judge one commit for `git bisect run`: exit code 0 good, 1 bad, 125 when it does not
    /// build or train.
    BisectCheck(BisectCheckArgs),
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
    /// Browse the runs in a web browser: a local web app over the store (runs, curves,
    /// hyperparameters, code, comparisons; tags, notes and the trash).
    Ui(crate::ui::UiArgs),
    /// A live terminal dashboard of running runs (default: every running run): progress,
    /// speed, ETA, losses and metrics with sparklines, test results; q quits.
    Watch {
        /// The runs (default: every running run, else the newest run).
        runs: Vec<String>,
    },
    /// Send runs (record, metrics, chosen checkpoints, code) to a folder or S3-compatible
    /// storage; pushing again sends only what changed.
    Push(PushArgs),
    /// Bring runs from a folder or S3-compatible storage into this store, their code into
    /// this repository.
    Pull(PullArgs),
    /// What a remote holds: `remote ls REMOTE`.
    Remote {
        /// `ls`.
        #[command(subcommand)]
        command: RemoteCommand,
    },
    /// Write runs where other tools read them: `export tensorboard DIR`, `export parquet
    /// DIR`, `export mlflow URI`.
    Export {
        /// The format.
        #[command(subcommand)]
        command: ExportCommand,
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
    /// Only runs with this status: running, finished, failed, interrupted or crashed.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(RunStatus::ALL.map(|s| s.to_string()))
        .try_map(|s| s.parse::<RunStatus>()))]
    status: Option<RunStatus>,
    /// Only runs of this kind: train, test, eval or serve.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(RunKind::ALL.map(|k| k.to_string()))
        .try_map(|s| s.parse::<RunKind>()))]
    kind: Option<RunKind>,
    /// Only runs with these tags (`best,baseline`, or repeated: runs with every one of them).
    #[arg(long, value_name = "TAGS")]
    tag: Vec<String>,
    /// At most this many runs.
    #[arg(long)]
    limit: Option<usize>,
    /// The runs of one sweep (`train --sweep`), ranked by their metric, with the
    /// hyperparameters that differ as columns.
    #[arg(long, value_name = "ID", conflicts_with_all = ["experiment", "status", "kind", "json"])]
    sweep: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `edit`: what to change about runs.
#[derive(Args, Debug)]
pub struct EditArgs {
    /// The runs (ids, unique prefixes, latest, latest~N).
    #[arg(required = true)]
    runs: Vec<String>,
    /// Add tags (several at once separated by commas or spaces; repeatable).
    #[arg(long, value_name = "TAGS")]
    tag: Vec<String>,
    /// Remove tags (as `--tag`).
    #[arg(long, value_name = "TAGS")]
    untag: Vec<String>,
    /// The note (`''` removes it; `-` reads it from standard input).
    #[arg(long)]
    note: Option<String>,
    /// A new message (`''` removes it).
    #[arg(long, short)]
    message: Option<String>,
}

/// A line saying that `records` of one experiment split their data with different seeds
/// (`env.split_seed()`), so that their validation and test metrics come from different rows;
/// `None` when they did not (or did not say).
pub(crate) fn split_note<'a>(records: impl IntoIterator<Item = &'a Record>) -> Option<String> {
    let mut by_experiment: BTreeMap<&str, std::collections::BTreeSet<u64>> = BTreeMap::new();
    for r in records {
        if let Some(seed) = r.split_seed {
            by_experiment.entry(&r.experiment).or_default().insert(seed);
        }
    }
    let mixed: Vec<String> = by_experiment
        .iter()
        .filter(|(_, seeds)| seeds.len() > 1)
        .map(|(e, seeds)| {
            let seeds: Vec<String> = seeds.iter().map(u64::to_string).collect();
            format!("{e} (--split-seed {})", seeds.join(", "))
        })
        .collect();
    (!mixed.is_empty()).then(|| {
        format!(
            "note: these runs split their data with different seeds: {}; their validation and test metrics come from different rows",
            mixed.join("; ")
        )
    })
}

/// `edit`: changes every run named, or none (a bad name or a live run is found before any
/// change).
fn edit(store: &Store, a: EditArgs, quiet: bool) -> Result<ExitCode> {
    use crate::store::notes::{split_tags, NotesChange};
    let note = match a.note.as_deref() {
        Some("-") => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|e| {
                let why = format!("cannot read the note from standard input: {e}");
                if e.kind() == std::io::ErrorKind::InvalidData {
                    Error::usage(why)
                } else {
                    Error::msg(why)
                }
            })?;
            Some(text)
        }
        other => other.map(str::to_string),
    };
    let change = NotesChange {
        message: a.message,
        note,
        add_tags: a.tag.iter().flat_map(|t| split_tags(t)).collect(),
        remove_tags: a.untag.iter().flat_map(|t| split_tags(t)).collect(),
    };
    if change.is_empty() {
        // `--tag ''` and `--tag ,,` name no tag: said so, not "give --tag".
        let empty_tags = !a.tag.is_empty() || !a.untag.is_empty();
        return Err(Error::usage(if empty_tags {
            "--tag and --untag name no tag here: give tags such as --tag best,baseline"
        } else {
            "nothing to change: give --tag, --untag, --note or --message"
        }));
    }
    change.check().map_err(Error::usage)?;
    let mut ids = Vec::new();
    for spec in &a.runs {
        let r = store.resolve(spec, |_| true)?;
        if store.is_alive(&r.id) {
            return Err(crate::store::StoreError::LiveEdit { id: r.id }.into());
        }
        ids.push(r.id);
    }
    let by = format!("{} (edit)", crate::util::host::user_at_host());
    for id in ids {
        let (_, added) = store.edit_notes(&id, &change, &by)?;
        if !quiet {
            let changed: Vec<String> = added
                .iter()
                .map(|e| match e.field {
                    crate::store::record::EditedField::Tags => {
                        format!("tags now {}", e.to.as_deref().unwrap_or("none"))
                    }
                    field if e.to.is_none() => format!("{field} removed"),
                    field => format!("{field} set"),
                })
                .collect();
            if changed.is_empty() {
                crate::util::stderr::errln!("run {id}: nothing changed");
            } else {
                crate::util::stderr::errln!("edited run {id}: {}", changed.join("; "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a run command against `store`, which must exist when it was named (`--store`).
pub fn execute(cmd: RunCommand, store: &Store, quiet: bool) -> Result<ExitCode> {
    // A pull may make the store; listing a remote needs none.
    match cmd {
        RunCommand::Pull(a) => remote::pull(store, a, quiet),
        RunCommand::Remote { command } => remote::remote(command),
        // Every failure of the judge, a missing store included, must stop `git bisect run`.
        RunCommand::BisectCheck(a) => Ok(bisect::bisect_check(store, a)),
        other => {
            store.require_existing()?;
            execute_in_store(other, store, quiet)
        }
    }
}

/// The commands that read or change an existing store.
fn execute_in_store(cmd: RunCommand, store: &Store, quiet: bool) -> Result<ExitCode> {
    match cmd {
        RunCommand::Push(a) => remote::push(store, a, quiet),
        RunCommand::Export { command } => export::export(store, command, quiet),
        RunCommand::Bisect(a) => bisect::bisect(store, a),
        RunCommand::BisectCheck(a) => Ok(bisect::bisect_check(store, a)),
        RunCommand::Pull(a) => remote::pull(store, a, quiet),
        RunCommand::Remote { command } => remote::remote(command),
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
            let n = snapshot::checkout(&s.git_dir, &s.commit, &dir)?;
            if !quiet {
                crate::util::stderr::errln!(
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
                if names.is_empty() && r.metrics.contains_key(&n) {
                    return Err(Error::usage(format!(
                        "run {} has `{n}` as a final value only, not over steps: `flammable show {}` prints it",
                        r.id, r.id
                    )));
                }
                if !names.contains(n.as_str()) {
                    // A run without series (a test run) may still have final values, which
                    // `show` prints: say so rather than that it has nothing.
                    let finals = || {
                        let names: Vec<&str> = r.metrics.keys().map(String::as_str).collect();
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            format!(
                                "none over steps; its final values, which `flammable show {}` prints: {}",
                                r.id,
                                names.join(", ")
                            )
                        }
                    };
                    return Err(Error::usage(format!(
                        "run {} has no metric `{n}`; it has: {}",
                        r.id,
                        if names.is_empty() {
                            finals()
                        } else {
                            names.into_iter().collect::<Vec<_>>().join(", ")
                        }
                    )));
                }
                points.retain(|p| *p.name == *n);
            }
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            crate::store::metrics::write_csv(&points, &mut out)
                .and_then(|()| std::io::Write::flush(&mut out))
                .map_err(super::stdout::from_io)?;
            Ok(ExitCode::SUCCESS)
        }
        RunCommand::Rm { runs, force } => {
            // Every run named is found (and, without --force, not running) before any goes.
            let mut ids = Vec::new();
            for spec in &runs {
                let id = match store.resolve(spec, |_| true) {
                    Ok(r) => r.id,
                    // A corrupt record must not make its run impossible to remove.
                    Err(_)
                        if store
                            .run_dir(spec)
                            .join(crate::store::RECORD_FILE)
                            .is_file() =>
                    {
                        spec.clone()
                    }
                    Err(e) => return Err(e.into()),
                };
                if !force && store.is_alive(&id) {
                    return Err(crate::store::StoreError::Live { id }.into());
                }
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            for id in ids {
                let removal = store.remove(&id, force)?;
                if !quiet {
                    let stopped = if removal.stopped { "stopped and " } else { "" };
                    crate::util::stderr::errln!(
                        "{stopped}removed run {} (its folder and code go with `gc`)",
                        removal.id
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RunCommand::Gc { dry_run } => gc(store, dry_run),
        RunCommand::Edit(a) => edit(store, a, quiet),
        RunCommand::Restore { runs } => {
            // Every run named is found in the trash, and not in the store, before any comes back.
            let mut ids = Vec::new();
            for spec in &runs {
                let id = store.resolve_trashed(spec)?;
                if ids.contains(&id) {
                    continue;
                }
                store.check_restorable(&id)?;
                ids.push(id);
            }
            for id in ids {
                store.restore(&id)?;
                if !quiet {
                    crate::util::stderr::errln!("restored run {id} from the trash");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RunCommand::Ui(args) => crate::ui::run(store, args, quiet),
        #[cfg(feature = "watch")]
        RunCommand::Watch { runs } => watch::watch(store, &runs),
        #[cfg(not(feature = "watch"))]
        RunCommand::Watch { .. } => Err(Error::usage(WATCH_UNAVAILABLE)),
    }
}
