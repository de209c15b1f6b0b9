//! `pull REMOTE [RUN… | --sweep ID | --all]`: runs from a remote into the local store, with
//! their code into the local repository.

use super::manifest::{checked_path, is_sha256, record_hash, FileEntry, Manifest};
use super::objects::{Remote, MANIFESTS_IN_FLIGHT};
use super::progress::{bytes_bar, size_text};
use super::{Checkpoints, Selection};
use crate::error::{Error, Result};
use crate::store::hashes::KnownHashes;
use crate::store::record::Origin;
use crate::store::Store;
use futures::StreamExt as _;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Blobs fetched at once.
const DOWNLOADS_IN_FLIGHT: usize = 8;

/// What a pull did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PullReport {
    /// Runs new here.
    pub runs: usize,
    /// Runs here already, given files they lacked or a newer record and files from the
    /// remote.
    pub updated: usize,
    /// Runs here already, as the remote has them.
    pub up_to_date: usize,
    /// Files fetched, and their bytes.
    pub fetched: (usize, u64),
}

/// The manifests of the runs `which` names on `remote`.
pub async fn chosen_manifests(remote: &Remote, which: &Selection) -> Result<Vec<Manifest>> {
    let ids = remote.run_ids().await?;
    let wanted: Vec<String> = match which {
        Selection::Runs(specs) => {
            let mut out = Vec::new();
            for spec in specs {
                let id = resolve(&ids, spec, &remote.name)?;
                if !out.contains(&id) {
                    out.push(id);
                }
            }
            out
        }
        Selection::Sweep(_) | Selection::All => ids.clone(),
    };
    let manifests: Vec<Result<Option<Manifest>>> = futures::stream::iter(wanted.iter())
        .map(|id| remote.manifest(id))
        .buffered(MANIFESTS_IN_FLIGHT)
        .collect()
        .await;
    let mut out = Vec::new();
    let named = matches!(which, Selection::Runs(_));
    for m in manifests {
        match m {
            // A run removed from the remote between the listing and its reading is not there.
            Ok(None) => {}
            Ok(Some(m)) => out.push(m),
            Err(e) if named => return Err(e),
            // One unreadable manifest (damaged, or of a newer Flammable) hides no other run.
            Err(e) => crate::util::stderr::errln!("warning: {e}; left out"),
        }
    }
    if let Selection::Runs(_) = which {
        // A run's tests (its record names them) come with it.
        let tests: Vec<String> = out
            .iter()
            .flat_map(|m| m.record.tests.iter().map(|t| t.run.clone()))
            .filter(|id| ids.contains(id) && !out.iter().any(|m| &m.id == id))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let more: Vec<Result<Option<Manifest>>> = futures::stream::iter(tests.iter())
            .map(|id| remote.manifest(id))
            .buffered(MANIFESTS_IN_FLIGHT)
            .collect()
            .await;
        for m in more {
            if let Some(m) = m? {
                out.push(m);
            }
        }
    }
    if let Selection::Sweep(prefix) = which {
        let sweeps: BTreeSet<String> = out
            .iter()
            .filter_map(|m| m.record.sweep.clone())
            .filter(|s| s.starts_with(prefix.as_str()))
            .collect();
        if sweeps.len() != 1 {
            return Err(Error::usage(if sweeps.is_empty() {
                format!("no sweep `{prefix}` on {}", remote.name)
            } else {
                format!(
                    "sweep prefix `{prefix}` fits {} sweeps on {}; type more of it",
                    sweeps.len(),
                    remote.name
                )
            }));
        }
        out.retain(|m| m.record.sweep.as_ref().is_some_and(|s| sweeps.contains(s)));
    }
    Ok(out)
}

/// The remote run `spec` names: an id, or a prefix of exactly one.
fn resolve(ids: &[String], spec: &str, remote: &str) -> Result<String> {
    if spec.trim().is_empty() {
        return Err(Error::usage(
            "an empty run name: give a run's id or a prefix of it",
        ));
    }
    if ids.iter().any(|i| i == spec) {
        return Ok(spec.to_string());
    }
    let fits: Vec<&String> = ids.iter().filter(|i| i.starts_with(spec)).collect();
    match fits.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(Error::usage(format!("no run `{spec}` on {remote}"))),
        many => Err(Error::usage(format!(
            "run prefix `{spec}` fits {} runs on {remote} ({}{}); type more of it",
            many.len(),
            many.iter()
                .take(5)
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if many.len() > 5 { ", …" } else { "" }
        ))),
    }
}

/// Pulls the runs `which` names from `remote` into `store`, their code into the repository
/// enclosing the store (else a bare one in the store, `code.git`).
pub async fn pull(
    store: &Store,
    remote: &Remote,
    which: &Selection,
    checkpoints: Checkpoints,
    quiet: bool,
) -> Result<PullReport> {
    let manifests = chosen_manifests(remote, which).await?;
    if manifests.is_empty() {
        return Err(Error::usage(format!("no runs to pull on {}", remote.name)));
    }
    for m in &manifests {
        check(m)?;
    }
    // One pull at a time assembles runs in this store; what an interrupted one left goes.
    let _lock = store.lock_incoming()?;
    let git_dir = local_repository(store)?;
    // What each run lacks here. A run whose files or record differ from the remote's in a way
    // that cannot be reconciled is refused, and the others pulled.
    let mut plans = Vec::new();
    let mut refused = Vec::new();
    let mut report = PullReport::default();
    for m in &manifests {
        match plan(store, m, checkpoints, &git_dir) {
            Ok(Plan::UpToDate) => report.up_to_date += 1,
            Ok(p) => plans.push((m, p)),
            Err(e) => refused.push((m.id.clone(), e)),
        }
    }
    if !plans.is_empty() {
        let applied = apply(
            store,
            remote,
            &git_dir,
            plans,
            checkpoints,
            quiet,
            &mut report,
        )
        .await;
        store.clear_incoming();
        applied?;
    }
    let counts = format!(
        "{} new run{}, {} updated, {} up to date; {} file{} ({})",
        report.runs,
        super::push::plural(report.runs),
        report.updated,
        report.up_to_date,
        report.fetched.0,
        super::push::plural(report.fetched.0),
        size_text(report.fetched.1)
    );
    let mut refused = refused.into_iter();
    let Some((_, first)) = refused.next() else {
        if !quiet {
            crate::util::stderr::errln!("pulled from {}: {counts}", remote.name);
        }
        return Ok(report);
    };
    // One line: the first refusal, how many more, and what was pulled all the same.
    let others: Vec<String> = refused.map(|(id, _)| id).collect();
    let more = if others.is_empty() {
        String::new()
    } else {
        format!("; {} more refused ({})", others.len(), others.join(", "))
    };
    Err(Error::msg(format!(
        "{first}{more}; pulled the others: {counts}"
    )))
}

/// Carries out `plans`: the runs' code, their files, then their records.
async fn apply(
    store: &Store,
    remote: &Remote,
    git_dir: &Path,
    plans: Vec<(&Manifest, Plan<'_>)>,
    checkpoints: Checkpoints,
    quiet: bool,
    report: &mut PullReport,
) -> Result<()> {
    // Every file to fetch, into the folder it goes to.
    let mut jobs: Vec<(String, u64, PathBuf)> = Vec::new();
    let mut total: u64 = 0;
    let mut places = Vec::new();
    for (m, p) in &plans {
        let (root, files) = match p {
            Plan::New { files } => (store.incoming_dir(&m.id)?, files),
            Plan::Update { files, .. } => (store.run_dir(&m.id), files),
            Plan::UpToDate => continue,
        };
        if let Plan::Update { .. } = p {
            // What a pull interrupted while adding files to this run left in it.
            crate::util::atomic::remove_temporary_files_under(&root);
        }
        for f in files {
            jobs.push((f.sha256.clone(), f.size, root.join(f.path.as_str())));
            total = total.saturating_add(f.size);
        }
        places.push((*m, p, root));
    }
    let bar = bytes_bar(total, "pulling", quiet);
    let fetched: Vec<Result<()>> = futures::stream::iter(jobs.iter())
        .map(|(sha, size, dest)| remote.download(sha, *size, dest, &bar))
        .buffer_unordered(DOWNLOADS_IN_FLIGHT)
        .collect()
        .await;
    bar.finish_and_clear();
    // The code last: a pull that fails before leaves no refs behind.
    let mut failed = fetched.into_iter().find_map(|r| r.err());
    if failed.is_none() {
        failed = restore_code(store, remote, git_dir, plans.iter().map(|(m, _)| *m))
            .await
            .err();
    }
    if let Some(e) = failed {
        return Err(e);
    }
    report.fetched = (jobs.len(), total);
    let now = crate::store::now_rfc3339();
    for (m, p, root) in places {
        if let Plan::New { files } | Plan::Update { files, .. } = p {
            // Their hashes were checked as they came: a push of them to another remote
            // need not read them again.
            let mut known = KnownHashes::load(&root);
            for f in files.iter() {
                if let Ok(meta) = std::fs::metadata(root.join(f.path.as_str())) {
                    known.insert(&f.path, &meta, &f.sha256);
                }
            }
            known.save();
        }
        let all: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
        let origin = Origin {
            remote: remote.name.clone(),
            pushed_by: m.pushed.by.clone(),
            host: m.pushed.host.clone(),
            store: m.pushed.store.clone(),
            pushed_at: m.pushed.at.clone(),
            pulled_at: now.clone(),
            not_pulled: m
                .files
                .iter()
                .filter(|f| {
                    !checkpoints.takes(&f.path, &all) && !root.join(f.path.as_str()).exists()
                })
                .map(|f| f.path.clone())
                .collect(),
            not_pushed: m.left_out.iter().map(|l| l.path.clone()).collect(),
            record_sha256: record_hash(&m.record),
        };
        let mut theirs = m.record.clone();
        for s in theirs
            .snapshot
            .iter_mut()
            .chain(theirs.resumed_with.iter_mut())
        {
            s.git_dir = git_dir.to_path_buf();
        }
        theirs.origin = Some(origin.clone());
        match p {
            Plan::New { .. } => {
                store.place(&root, &theirs)?;
                report.runs += 1;
            }
            Plan::Update { record, .. } => {
                store.update(&m.id, |r| match record {
                    RecordChange::Take => *r = theirs,
                    RecordChange::Keep => r.origin = Some(origin),
                    RecordChange::MergeTests => {
                        for t in &m.record.tests {
                            if !r.tests.iter().any(|own| own.run == t.run) {
                                r.tests.push(t.clone());
                            }
                        }
                        r.origin = Some(origin);
                    }
                })?;
                report.updated += 1;
            }
            Plan::UpToDate => {}
        }
    }
    Ok(())
}

/// Refuses a manifest that could write outside its run or name blobs that are no hashes.
/// (One holding another run's record never gets here: `Remote::manifest` refuses it.)
fn check(m: &Manifest) -> Result<()> {
    if !crate::store::is_valid_id(&m.id) {
        return Err(Error::msg(format!(
            "the remote's run `{}` is named as no run is: refusing it",
            m.id.escape_debug()
        )));
    }
    let paths: std::collections::BTreeSet<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    for f in &m.files {
        checked_path(&f.path)?;
        // One file per path, and no path inside another's file: either would make what is
        // written depend on which download ends last.
        let inside_another = f
            .path
            .match_indices('/')
            .any(|(i, _)| paths.contains(&f.path[..i]));
        if paths.len() != m.files.len() || inside_another {
            return Err(Error::msg(format!(
                "run {}: its manifest names file {} twice, or as a folder and a file: refusing it",
                m.id,
                f.path.escape_debug()
            )));
        }
        if !is_sha256(&f.sha256) {
            return Err(Error::msg(format!(
                "run {}: file {} names blob `{}`, which is no SHA-256: refusing it",
                m.id,
                f.path.escape_debug(),
                f.sha256.escape_debug()
            )));
        }
    }
    if let Some(c) = &m.code {
        let prefixes = [crate::snapshot::REF_PREFIX, crate::snapshot::RESUME_PREFIX];
        let own = |name: &str| {
            name == format!("{}{}", prefixes[0], m.id)
                || name.starts_with(&format!("{}{}-", prefixes[1], m.id))
        };
        if !is_sha256(&c.bundle) || c.refs.iter().any(|(name, _)| !own(name)) {
            return Err(Error::msg(format!(
                "run {}: its code names refs that are not its own: refusing it",
                m.id
            )));
        }
    }
    Ok(())
}

/// What to fetch of one run.
enum Plan<'a> {
    /// Not here: these files, then the record.
    New { files: Vec<&'a FileEntry> },
    /// Here: these files (checkpoints a first pull left out, or the newer files of a run
    /// pushed again since it was pulled), and what becomes of the record.
    Update {
        files: Vec<&'a FileEntry>,
        record: RecordChange,
    },
    /// Here as it is there.
    UpToDate,
}

/// What a pull does to the record of a run that is here already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RecordChange {
    /// Kept: it is the remote's, or only this copy changed since the pull (tested here).
    Keep,
    /// The remote's taken: only the remote's copy changed since the pull.
    Take,
    /// Both copies were tested since the pull, and differ in nothing else: the remote's tests
    /// join this copy's.
    MergeTests,
}

/// What run `m` needs here. A run whose record or files differ from the remote's in a way
/// that cannot be reconciled (made here, or trained further on both sides) is refused:
/// nothing of it is replaced.
fn plan<'a>(
    store: &Store,
    m: &'a Manifest,
    checkpoints: Checkpoints,
    git_dir: &Path,
) -> Result<Plan<'a>> {
    let all: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    let chosen = |f: &FileEntry| checkpoints.takes(&f.path, &all);
    let dir = store.run_dir(&m.id);
    if store.is_trashed(&m.id) {
        return Err(Error::msg(format!(
            "run {} is in this store's trash: `flammable gc` first (which removes it and its code), then pull it",
            m.id
        )));
    }
    if !dir.join(crate::store::RECORD_FILE).exists() {
        return Ok(Plan::New {
            files: m.files.iter().filter(|f| chosen(f)).collect(),
        });
    }
    let local = store.read(&m.id)?;
    let refuse = |why: String| {
        Error::msg(format!(
            "run {} is here already with {why}: not pulled (`flammable rm {}` and `gc` first to take the remote's)",
            m.id, m.id
        ))
    };
    let (here, there) = (record_hash(&local), record_hash(&m.record));
    let pulled = local.origin.as_ref().map(|o| o.record_sha256.as_str());
    let record = if here == there || pulled == Some(there.as_str()) {
        RecordChange::Keep
    } else if pulled == Some(here.as_str()) {
        RecordChange::Take
    } else if untested_hash(&local) == untested_hash(&m.record) {
        RecordChange::MergeTests
    } else {
        return Err(refuse(match pulled {
            Some(_) => "changes here and on the remote since it was pulled".to_string(),
            None => format!(
                "another record (here: {}, there: {})",
                local.status, m.record.status
            ),
        }));
    };
    let mut files = Vec::new();
    let mut known = KnownHashes::load(&dir);
    for f in &m.files {
        let path = dir.join(f.path.as_str());
        match std::fs::metadata(&path) {
            Ok(meta) => {
                let same = meta.len() == f.size
                    && known
                        .hash(&f.path)
                        .map_err(|e| Error::io("cannot read", &path, e))?
                        .0
                        == f.sha256;
                if !same {
                    if record != RecordChange::Take {
                        return Err(refuse(format!("another `{}`", f.path)));
                    }
                    files.push(f);
                }
            }
            Err(_) if chosen(f) => files.push(f),
            Err(_) => {}
        }
    }
    known.save();
    // A run whose code refs went missing here (a `gc` after it was removed and pulled again)
    // gets them back.
    let code_missing = m.code.as_ref().is_some_and(|c| {
        c.refs.iter().any(|(name, commit)| {
            crate::snapshot::ref_target(git_dir, name).as_deref() != Some(commit.as_str())
        })
    });
    Ok(
        if files.is_empty() && record == RecordChange::Keep && !code_missing {
            Plan::UpToDate
        } else {
            Plan::Update { files, record }
        },
    )
}

/// [`record_hash`] of `record` without its tests.
fn untested_hash(record: &crate::store::record::Record) -> String {
    let mut r = record.clone();
    r.tests.clear();
    record_hash(&r)
}

/// The repository pulled code goes into: the one enclosing the store, else `code.git` in it.
fn local_repository(store: &Store) -> Result<PathBuf> {
    match crate::snapshot::enclosing_git_dir(store.root()) {
        Some(dir) => Ok(dir),
        None => Ok(crate::snapshot::open_or_init_bare(
            &store.root().join("code.git"),
        )?),
    }
}

/// Fetches the bundles of `manifests` once each and their runs' refs from them into the
/// repository at `git_dir`.
async fn restore_code<'a>(
    store: &Store,
    remote: &Remote,
    git_dir: &Path,
    manifests: impl Iterator<Item = &'a Manifest>,
) -> Result<()> {
    let mut by_bundle: BTreeMap<(&str, u64), Vec<String>> = BTreeMap::new();
    for m in manifests {
        if let Some(c) = &m.code {
            let refs = by_bundle.entry((c.bundle.as_str(), c.size)).or_default();
            for (name, commit) in &c.refs {
                // A ref that is here already at this commit needs nothing.
                if crate::snapshot::ref_target(git_dir, name).as_deref() != Some(commit.as_str()) {
                    refs.push(name.clone());
                }
            }
        }
    }
    by_bundle.retain(|_, refs| !refs.is_empty());
    if by_bundle.is_empty() {
        return Ok(());
    }
    let dir = tempfile::Builder::new()
        .prefix(".bundles-")
        .tempdir_in(store.root())
        .map_err(|e| Error::io("cannot create a folder in", store.root(), e))?;
    let bar = indicatif::ProgressBar::hidden();
    for ((sha, size), refs) in by_bundle {
        let path = dir.path().join(format!("{sha}.bundle"));
        remote.download(sha, size, &path, &bar).await?;
        crate::snapshot::fetch_bundle(git_dir, &path, &refs)?;
    }
    Ok(())
}
