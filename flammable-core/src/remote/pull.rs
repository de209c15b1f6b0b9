//! `pull REMOTE [RUN… | --sweep ID | --all]`: runs from a remote into the local store, with
//! their code into the local repository.

use super::manifest::{checked_path, hash_file, is_sha256, record_hash, FileEntry, Manifest};
use super::objects::Remote;
use super::progress::{bytes_bar, size_text};
use super::{Checkpoints, Selection};
use crate::error::{Error, Result};
use crate::store::record::Origin;
use crate::store::Store;
use futures::StreamExt as _;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Blobs fetched at once.
const DOWNLOADS_IN_FLIGHT: usize = 8;
/// Manifests read at once.
const MANIFESTS_IN_FLIGHT: usize = 16;

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
        Selection::Sweep(_) | Selection::All => ids,
    };
    let manifests: Vec<Result<Option<Manifest>>> = futures::stream::iter(wanted.iter())
        .map(|id| remote.manifest(id))
        .buffered(MANIFESTS_IN_FLIGHT)
        .collect()
        .await;
    let mut out = Vec::new();
    for m in manifests {
        // A run removed from the remote between the listing and its reading is not there.
        if let Some(m) = m? {
            out.push(m);
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
            "run prefix `{spec}` fits {} runs on {remote}; type more of it",
            many.len()
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
    std::fs::create_dir_all(store.root())
        .map_err(|e| Error::io("cannot create the run store", store.root(), e))?;
    // What each run lacks here; a run whose files or record differ from the remote's is
    // refused before anything is written.
    let mut plans = Vec::new();
    let mut report = PullReport::default();
    for m in &manifests {
        match plan(store, m, checkpoints)? {
            Plan::UpToDate => report.up_to_date += 1,
            p => plans.push((m, p)),
        }
    }
    if plans.is_empty() {
        if !quiet {
            crate::util::stderr::errln!(
                "pulled nothing from {}: {} run{} up to date",
                remote.name,
                report.up_to_date,
                if report.up_to_date == 1 { "" } else { "s" }
            );
        }
        return Ok(report);
    }
    let git_dir = local_repository(store)?;
    restore_code(store, remote, &git_dir, plans.iter().map(|(m, _)| *m)).await?;
    // Every file to fetch, into the folder it goes to.
    let mut jobs: Vec<(String, PathBuf)> = Vec::new();
    let mut total = 0;
    let mut places = Vec::new();
    for (m, p) in &plans {
        let (root, files) = match p {
            Plan::New { files } => (store.incoming_dir(&m.id)?, files),
            Plan::Update { files, .. } => (store.run_dir(&m.id), files),
            Plan::UpToDate => continue,
        };
        for f in files {
            jobs.push((f.sha256.clone(), root.join(f.path.as_str())));
            total += f.size;
        }
        places.push((m, p, root));
    }
    let bar = bytes_bar(total, "pulling", quiet);
    let fetched: Vec<Result<()>> = futures::stream::iter(jobs.iter())
        .map(|(sha, dest)| remote.download(sha, dest, &bar))
        .buffer_unordered(DOWNLOADS_IN_FLIGHT)
        .collect()
        .await;
    bar.finish_and_clear();
    let failed = fetched.into_iter().find_map(|r| r.err());
    if let Some(e) = failed {
        for (_, p, root) in &places {
            if matches!(p, Plan::New { .. }) {
                let _ = std::fs::remove_dir_all(root);
            }
        }
        return Err(e);
    }
    report.fetched = (jobs.len(), total);
    let now = crate::store::now_rfc3339();
    for (m, p, root) in places {
        let origin = Origin {
            remote: remote.name.clone(),
            pushed_by: m.pushed.by.clone(),
            host: m.pushed.host.clone(),
            store: m.pushed.store.clone(),
            pushed_at: m.pushed.at.clone(),
            pulled_at: now.clone(),
            left_out: left_out(m, checkpoints)
                .into_iter()
                .filter(|p| !root.join(p).exists())
                .collect(),
            record_sha256: record_hash(&m.record),
        };
        let mut record = m.record.clone();
        for s in record
            .snapshot
            .iter_mut()
            .chain(record.resumed_with.iter_mut())
        {
            s.git_dir = git_dir.clone();
        }
        record.origin = Some(origin.clone());
        match p {
            Plan::New { .. } => {
                if let Err(e) = store.place(&root, &record) {
                    let _ = std::fs::remove_dir_all(&root);
                    return Err(e.into());
                }
                report.runs += 1;
            }
            Plan::Update { record: newer, .. } => {
                store.update(&m.id, |r| {
                    if *newer {
                        *r = record;
                    } else if let Some(o) = r.origin.as_mut() {
                        o.left_out = origin.left_out;
                    }
                })?;
                report.updated += 1;
            }
            Plan::UpToDate => {}
        }
    }
    if !quiet {
        crate::util::stderr::errln!(
            "pulled {} run{} from {} ({} updated, {} up to date): {} file{}, {}",
            report.runs,
            if report.runs == 1 { "" } else { "s" },
            remote.name,
            report.updated,
            report.up_to_date,
            report.fetched.0,
            if report.fetched.0 == 1 { "" } else { "s" },
            size_text(report.fetched.1)
        );
    }
    Ok(report)
}

/// Refuses a manifest that could write outside its run or name blobs that are no hashes.
fn check(m: &Manifest) -> Result<()> {
    if !crate::store::is_valid_id(&m.id) || m.record.id != m.id {
        return Err(Error::msg(format!(
            "the remote's run `{}` has a manifest for run `{}`: refusing it",
            m.id, m.record.id
        )));
    }
    for f in &m.files {
        checked_path(&f.path)?;
        if !is_sha256(&f.sha256) {
            return Err(Error::msg(format!(
                "run {}: file {} names blob `{}`, which is no SHA-256: refusing it",
                m.id, f.path, f.sha256
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
    /// pushed again since it was pulled), and the remote's record when `record`.
    Update {
        files: Vec<&'a FileEntry>,
        record: bool,
    },
    /// Here as it is there.
    UpToDate,
}

/// What run `m` needs here. A run made here, or changed both here and on the remote since it
/// was pulled, whose record or files differ from the remote's is refused: nothing of it is
/// replaced. A pulled run that changed only here (tested) keeps its record; one that changed
/// only there (tested, resumed and pushed again) takes the remote's.
fn plan<'a>(store: &Store, m: &'a Manifest, checkpoints: Checkpoints) -> Result<Plan<'a>> {
    let all: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    let chosen = |f: &FileEntry| checkpoints.takes(&f.path, &all);
    let dir = store.run_dir(&m.id);
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
    // Only a pulled run whose record is as it was pulled may take the remote's changes.
    let newer = here != there && pulled == Some(here.as_str()) && pulled != Some(there.as_str());
    if here != there && !newer && pulled != Some(there.as_str()) {
        return Err(refuse(match pulled {
            Some(_) => "changes here and on the remote since it was pulled".to_string(),
            None => format!(
                "another record (here: {}, there: {})",
                local.status, m.record.status
            ),
        }));
    }
    let mut files = Vec::new();
    for f in &m.files {
        let path = dir.join(f.path.as_str());
        match std::fs::metadata(&path) {
            Ok(meta) => {
                if meta.len() != f.size || hash_file(&path)? != f.sha256 {
                    if !newer {
                        return Err(refuse(format!("another `{}`", f.path)));
                    }
                    files.push(f);
                }
            }
            Err(_) if chosen(f) => files.push(f),
            Err(_) => {}
        }
    }
    Ok(if files.is_empty() && !newer {
        Plan::UpToDate
    } else {
        Plan::Update {
            files,
            record: newer,
        }
    })
}

/// The checkpoint files a run lacks after a pull: those its push left out, and those this
/// pull did not take.
fn left_out(m: &Manifest, checkpoints: Checkpoints) -> Vec<String> {
    let all: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    let mut out: Vec<String> = m.left_out.iter().map(|l| l.path.clone()).collect();
    out.extend(
        m.files
            .iter()
            .filter(|f| !checkpoints.takes(&f.path, &all))
            .map(|f| f.path.clone()),
    );
    out.sort();
    out
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
    let mut by_bundle: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for m in manifests {
        if let Some(c) = &m.code {
            let refs = by_bundle.entry(c.bundle.as_str()).or_default();
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
    for (sha, refs) in by_bundle {
        let path = dir.path().join(format!("{sha}.bundle"));
        remote.download(sha, &path, &bar).await?;
        crate::snapshot::fetch_bundle(git_dir, &path, &refs)?;
    }
    Ok(())
}
