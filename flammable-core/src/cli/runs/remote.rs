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

// Only a binary with the `remote` feature reads the selection.
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
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
    apart(store, &location)?;
    if let Some(git_remote) = &a.git {
        check_git_remote(store, git_remote)?;
    }
    // The runs named are found before the remote's folder is made.
    if let Selection::Runs(specs) = &which {
        for spec in specs {
            store.resolve(spec, |_| true)?;
        }
    }
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

/// Refuses a folder remote inside the store (it would be pushed into itself) or holding it
/// (the remote's `runs/` and the store's would be one folder).
#[cfg(feature = "remote")]
fn apart(store: &Store, location: &crate::remote::location::Location) -> Result<()> {
    let crate::remote::location::Location::Folder(dir) = location else {
        return Ok(());
    };
    let real = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (root, dir) = (real(store.root()), real(dir));
    let said = if dir.starts_with(&root) {
        format!("it is inside the store {}", root.display())
    } else if root.starts_with(&dir) {
        format!("the store {} is inside it", root.display())
    } else {
        return Ok(());
    };
    Err(Error::usage(format!(
        "remote {}: {said}: name a folder apart from the store",
        dir.display()
    )))
}

/// Refuses, before anything is pushed, a `--git` remote that is neither a remote of the
/// store's repository nor a URL or path.
#[cfg(feature = "remote")]
fn check_git_remote(store: &Store, git_remote: &str) -> Result<()> {
    if git_remote.is_empty() || git_remote.starts_with('-') {
        return Err(Error::usage(format!(
            "--git `{git_remote}`: name a Git remote or give its URL"
        )));
    }
    let looks_like_url = git_remote.contains(['/', ':']) || git_remote.starts_with('.');
    let known = snapshot::enclosing_git_dir(store.root())
        .is_some_and(|g| snapshot::has_remote(&g, git_remote));
    if looks_like_url || known {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "--git {git_remote}: no such Git remote in this repository (name one of `git remote`, or give a URL)"
        )))
    }
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
            crate::util::stderr::errln!(
                "pushed {} code ref{} to {git_remote}",
                refs.len(),
                if refs.len() == 1 { "" } else { "s" }
            );
        }
    }
    Ok(())
}

#[cfg(feature = "remote")]
pub(super) fn pull(store: &Store, a: PullArgs, quiet: bool) -> Result<ExitCode> {
    use crate::remote::{block_on, location::Location, objects::Remote};
    let which = a.which.selection("pull")?;
    let location = Location::parse(&a.remote)?;
    apart(store, &location)?;
    let remote = Remote::open(&location, false)?;
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
        match &filter {
            Some(f) => crate::util::stderr::errln!("no runs on {} pass `{f}`", remote.name),
            None => crate::util::stderr::errln!("no runs on {}", remote.name),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 9]> = manifests
        .iter()
        .map(|m| {
            let r = &m.record;
            let bytes = m.files.iter().fold(0u64, |a, f| a.saturating_add(f.size));
            [
                r.id.clone(),
                r.experiment.clone(),
                r.kind.to_string(),
                r.status.to_string(),
                age(&r.started),
                truncate(&m.pushed.by, 24),
                crate::remote::size_text(bytes),
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
        "started",
        "pushed by",
        "size",
        "message",
        "metrics",
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
