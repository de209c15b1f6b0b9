//! `push`, `pull` and `remote ls`: runs shared through a folder or S3-compatible object
//! storage (see [`crate::remote`]).

use super::*;
use crate::remote::{Checkpoints, Selection};

/// The runs a push or a pull takes, as typed.
#[derive(Args, Debug)]
pub struct Which {
    /// The runs: ids or unique prefixes (locally also latest, latest~N).
    runs: Vec<String>,
    /// The runs of a sweep (its id or a unique prefix).
    #[arg(long, value_name = "ID", conflicts_with_all = ["runs", "all"])]
    sweep: Option<String>,
    /// Every run.
    #[arg(long, conflicts_with = "runs")]
    all: bool,
    /// The checkpoints to take: none, best (else latest, for runs with no best), latest or
    /// all.
    #[arg(long, value_enum, default_value = "best")]
    checkpoints: Checkpoints,
}

impl Which {
    fn selection(&self, verb: &str) -> Result<Selection> {
        match (&self.sweep, self.all, self.runs.is_empty()) {
            (Some(id), _, _) if id.trim().is_empty() => Err(Error::usage(
                "--sweep is empty: give a sweep's id or a prefix of it",
            )),
            (Some(id), _, _) => Ok(Selection::Sweep(id.clone())),
            (None, true, _) => Ok(Selection::All),
            (None, false, false) => Ok(Selection::Runs(self.runs.clone())),
            (None, false, true) => Err(Error::usage(format!(
                "name the runs to {verb}: RUN…, --sweep ID or --all"
            ))),
        }
    }
}

/// `push`'s arguments.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// Where: s3://BUCKET/PREFIX, file:///PATH or a folder (created if needed).
    remote: String,
    #[command(flatten)]
    which: Which,
    /// Also push the runs' code refs (refs/flammable/…) to this Git remote (a name or URL).
    #[arg(long, value_name = "GIT_REMOTE")]
    git: Option<String>,
}

/// `pull`'s arguments.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// Where from: s3://BUCKET/PREFIX, file:///PATH or a folder.
    remote: String,
    #[command(flatten)]
    which: Which,
}

/// `remote`'s subcommands.
#[derive(Subcommand, Debug)]
pub enum RemoteCommand {
    /// List the runs a remote holds, newest first, without pulling them.
    Ls {
        /// s3://BUCKET/PREFIX, file:///PATH or a folder.
        remote: String,
        /// Only runs that pass this filter, written as in the browser: `experiment:digits
        /// status:finished lr<0.01 "wider conv"`.
        #[arg(long)]
        filter: Option<String>,
        /// Print the manifests as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[cfg(feature = "remote")]
pub(super) fn push(store: &Store, a: PushArgs, quiet: bool) -> Result<ExitCode> {
    use crate::remote::{block_on, location::Location, objects::Remote};
    let which = a.which.selection("push")?;
    let location = Location::parse(&a.remote)?;
    let remote = Remote::open(&location, true)?;
    block_on(crate::remote::push::push(
        store,
        &remote,
        &which,
        a.which.checkpoints,
        quiet,
    ))??;
    if let Some(git_remote) = a.git {
        push_refs(store, &which, &git_remote, quiet)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `push --git`: the runs' refs to a Git remote, one `git push` per repository.
#[cfg(feature = "remote")]
fn push_refs(store: &Store, which: &Selection, git_remote: &str, quiet: bool) -> Result<()> {
    let records = match which {
        Selection::Runs(specs) => specs
            .iter()
            .map(|s| store.resolve(s, |_| true).map_err(Error::from))
            .collect::<Result<Vec<_>>>()?,
        Selection::Sweep(id) => store
            .records()?
            .into_iter()
            .filter(|r| {
                r.sweep
                    .as_deref()
                    .is_some_and(|s| s.starts_with(id.as_str()))
            })
            .collect(),
        Selection::All => store.records()?,
    };
    let mut by_repo: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for r in &records {
        if let Some(s) = &r.snapshot {
            let refs = snapshot::refs_of_run(&s.git_dir, &r.id)?;
            by_repo
                .entry(s.git_dir.clone())
                .or_default()
                .extend(refs.into_iter().map(|(name, _)| name));
        }
    }
    for (git_dir, refs) in by_repo {
        snapshot::push_refs(&git_dir, git_remote, &refs)?;
        if !quiet {
            crate::util::stderr::errln!("pushed {} code refs to {git_remote}", refs.len());
        }
    }
    Ok(())
}

#[cfg(feature = "remote")]
pub(super) fn pull(store: &Store, a: PullArgs, quiet: bool) -> Result<ExitCode> {
    use crate::remote::{block_on, location::Location, objects::Remote};
    let which = a.which.selection("pull")?;
    let remote = Remote::open(&Location::parse(&a.remote)?, false)?;
    block_on(crate::remote::pull::pull(
        store,
        &remote,
        &which,
        a.which.checkpoints,
        quiet,
    ))??;
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "remote")]
pub(super) fn remote(cmd: RemoteCommand) -> Result<ExitCode> {
    use crate::remote::{block_on, location::Location, objects::Remote};
    let RemoteCommand::Ls {
        remote,
        filter,
        json,
    } = cmd;
    let remote = Remote::open(&Location::parse(&remote)?, false)?;
    let mut manifests = block_on(crate::remote::list(&remote, filter.as_deref()))??;
    manifests.reverse();
    if json {
        outln!("{}", to_json(&manifests)?);
        return Ok(ExitCode::SUCCESS);
    }
    if manifests.is_empty() {
        crate::util::stderr::errln!("no runs on {}", remote.name);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 8]> = manifests
        .iter()
        .map(|m| {
            let r = &m.record;
            let bytes: u64 = m.files.iter().map(|f| f.size).sum();
            [
                r.id.clone(),
                r.experiment.clone(),
                r.kind.to_string(),
                r.status.to_string(),
                age(&r.started),
                truncate(&m.pushed.by, 24),
                truncate(r.message.as_deref().unwrap_or(""), 30),
                format!("{} {}", crate::remote::size_text(bytes), key_metrics(r))
                    .trim_end()
                    .to_string(),
            ]
        })
        .collect();
    let header = [
        "id",
        "experiment",
        "kind",
        "status",
        "age",
        "pushed by",
        "message",
        "size, metrics",
    ]
    .map(String::from);
    print_table(&header, &rows)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "remote"))]
pub(super) fn push(_: &Store, _: PushArgs, _: bool) -> Result<ExitCode> {
    Err(Error::usage(crate::remote::UNAVAILABLE))
}

#[cfg(not(feature = "remote"))]
pub(super) fn pull(_: &Store, _: PullArgs, _: bool) -> Result<ExitCode> {
    Err(Error::usage(crate::remote::UNAVAILABLE))
}

#[cfg(not(feature = "remote"))]
pub(super) fn remote(_: RemoteCommand) -> Result<ExitCode> {
    Err(Error::usage(crate::remote::UNAVAILABLE))
}
