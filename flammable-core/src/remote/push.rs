//! `push REMOTE [RUN… | --sweep ID | --all]`: runs' files as blobs, their code as a Git
//! bundle, then one manifest per run, last.

use super::manifest::{
    comparable, hash_file, pusher, record_hash, Code, FileEntry, LeftOut, Manifest, Pushed,
    MANIFEST_FORMAT,
};
use super::objects::{FileStamp, Remote, MANIFESTS_IN_FLIGHT};
use super::progress::{bytes_bar, size_text};
use super::{Checkpoints, Selection};
use crate::error::{Error, Result};
use crate::store::hashes::KnownHashes;
use crate::store::record::{Record, RunStatus};
use crate::store::{Store, HYPERPARAMETERS_FILE};
use crate::util::printable::printable;
use futures::StreamExt as _;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Blobs sent at once.
const UPLOADS_IN_FLIGHT: usize = 8;

/// What a push did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Runs whose manifest was written.
    pub runs: usize,
    /// Runs the remote already had as they are.
    pub up_to_date: usize,
    /// Blobs sent, and their bytes.
    pub sent: (usize, u64),
    /// Blobs the remote already had.
    pub already: usize,
}

/// A local file to send, and what it was when it was hashed.
type Source = (PathBuf, FileStamp);

/// Pushes the runs `which` names from `store` to `remote`.
pub async fn push(
    store: &Store,
    remote: &Remote,
    which: &Selection,
    checkpoints: Checkpoints,
    quiet: bool,
) -> Result<PushReport> {
    let records = local_runs(store, which, quiet)?;
    // What the remote has of these runs: a manifest's blobs are all there (it is written
    // last), so they need no upload and no question.
    let remote_has: Vec<Option<Manifest>> = futures::stream::iter(records.iter())
        .map(|r| remote.manifest(&r.id))
        .buffered(MANIFESTS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let (by, host) = pusher();
    let pushed = Pushed {
        by,
        host,
        store: store.root().display().to_string(),
        at: crate::store::now_rfc3339(),
        flammable: env!("CARGO_PKG_VERSION").to_string(),
    };
    let prepared: Vec<Result<(Manifest, BTreeMap<String, Source>)>> = crate::util::parallel::map(
        &records.iter().zip(&remote_has).collect::<Vec<_>>(),
        2,
        |(r, old)| prepare(store, r, old.as_ref(), checkpoints, &pushed),
    );
    let mut manifests = Vec::new();
    let mut sources: BTreeMap<String, Source> = BTreeMap::new();
    for p in prepared {
        let (m, paths) = p?;
        for f in &m.files {
            if let Some(source) = paths.get(&f.path) {
                sources
                    .entry(f.sha256.clone())
                    .or_insert_with(|| source.clone());
            }
        }
        manifests.push(m);
    }
    let mut report = PushReport::default();
    // Code: the runs whose refs the remote does not hold as they are get one bundle per
    // repository.
    let bundles = code(store, &mut manifests, &remote_has)?;
    for (sha, source) in &bundles.files {
        sources.entry(sha.clone()).or_insert_with(|| source.clone());
    }
    let mut changed = Vec::new();
    let mut known: BTreeSet<String> = BTreeSet::new();
    let mut refused: Vec<String> = Vec::new();
    for (m, old) in manifests.into_iter().zip(&remote_has) {
        if let Some(old) = old {
            known.extend(old.files.iter().map(|f| f.sha256.clone()));
            known.extend(old.code.iter().map(|c| c.bundle.clone()));
            if same_run(old, &m) {
                report.up_to_date += 1;
                continue;
            }
            // A pulled copy never replaces a remote copy that changed since it was pulled.
            let pulled = m.record.origin.as_ref().map(|o| o.record_sha256.as_str());
            let there = record_hash(&old.record);
            if pulled.is_some() && pulled != Some(there.as_str()) {
                if pulled == Some(record_hash(&m.record).as_str()) {
                    report.up_to_date += 1;
                    continue;
                }
                refused.push(format!(
                    "run {} changed here and on the remote since it was pulled: pull it first (tests made on both sides join), then push",
                    m.id
                ));
                continue;
            }
        }
        for l in m
            .left_out
            .iter()
            .filter(|l| !l.why.starts_with("checkpoint"))
        {
            crate::util::stderr::errln!(
                "run {}: left out {} ({})",
                m.id,
                printable(&l.path),
                l.why
            );
        }
        changed.push(m);
    }
    let mut needed: Vec<(String, Source)> = Vec::new();
    let mut wanted: BTreeSet<&str> = BTreeSet::new();
    for m in &changed {
        wanted.extend(m.files.iter().map(|f| f.sha256.as_str()));
        wanted.extend(m.code.iter().map(|c| c.bundle.as_str()));
    }
    for sha in wanted {
        if known.contains(sha) {
            report.already += 1;
            continue;
        }
        let Some(source) = sources.get(sha) else {
            return Err(Error::msg(format!("blob {sha} has no local file")));
        };
        needed.push((sha.to_string(), source.clone()));
    }
    let total: u64 = needed.iter().map(|n| n.1 .1.size).sum();
    let bar = bytes_bar(total, "pushing", quiet);
    let sent: Vec<Result<(bool, u64)>> = futures::stream::iter(needed.iter())
        .map(|(sha, (path, stamp))| {
            let bar = &bar;
            async move { Ok((remote.upload(path, sha, stamp, bar).await?, stamp.size)) }
        })
        .buffer_unordered(UPLOADS_IN_FLIGHT)
        .collect()
        .await;
    bar.finish_and_clear();
    drop(bundles);
    for s in sent {
        match s? {
            (true, size) => {
                report.sent.0 += 1;
                report.sent.1 += size;
            }
            (false, _) => report.already += 1,
        }
    }
    remote.put_manifests(&changed).await?;
    report.runs += changed.len();
    let counts = format!(
        "{} run{} sent, {} up to date; {} file{} ({}) uploaded, {} already there",
        report.runs,
        plural(report.runs),
        report.up_to_date,
        report.sent.0,
        plural(report.sent.0),
        size_text(report.sent.1),
        report.already
    );
    match refused.split_first() {
        None => {
            if !quiet {
                crate::util::stderr::errln!("pushed to {}: {counts}", remote.name);
            }
            Ok(report)
        }
        Some((first, more)) => {
            let more = if more.is_empty() {
                String::new()
            } else {
                format!("; {} more refused", more.len())
            };
            Err(Error::msg(format!(
                "{first}{more}; pushed the others: {counts}"
            )))
        }
    }
}

/// `s` after a count that is not one.
pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The runs to push: those named (with their test and eval runs), a sweep's or all. A run still running is refused when
/// named, skipped (and said) otherwise: its files are still being written.
fn local_runs(store: &Store, which: &Selection, quiet: bool) -> Result<Vec<Record>> {
    let live = |r: &Record| r.status == RunStatus::Running && store.is_alive(&r.id);
    let mut out: Vec<Record> = Vec::new();
    match which {
        Selection::Runs(specs) => {
            for spec in specs {
                let r = store.resolve(spec, |_| true)?;
                if live(&r) {
                    return Err(Error::usage(format!(
                        "run {} is still running: push it once it ends",
                        r.id
                    )));
                }
                if !out.iter().any(|o| o.id == r.id) {
                    out.push(r);
                }
            }
            // A run's tests and evaluations go with it.
            let named: BTreeSet<String> = out.iter().map(|r| r.id.clone()).collect();
            for r in store.records()? {
                if r.parent.as_ref().is_some_and(|p| named.contains(p)) && !named.contains(&r.id) {
                    out.push(r);
                }
            }
        }
        Selection::Sweep(id) => out = crate::run::select::runs_of_sweep(store, id)?,
        Selection::All => {
            let (records, unreadable) = store.records_and_errors()?;
            // Said, not skipped in silence: `push --all` would seem to have sent everything.
            for (id, e) in &unreadable {
                crate::util::stderr::errln!("warning: left out run {id}: {e}");
            }
            out = records;
        }
    }
    let (running, rest): (Vec<Record>, Vec<Record>) = out.into_iter().partition(live);
    if !running.is_empty() && !quiet {
        crate::util::stderr::errln!(
            "left out {} running run{} ({}): push {} once {} ended",
            running.len(),
            if running.len() == 1 { "" } else { "s" },
            running
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if running.len() == 1 { "it" } else { "them" },
            if running.len() == 1 {
                "it has"
            } else {
                "they have"
            },
        );
    }
    if rest.is_empty() && running.is_empty() {
        return Err(Error::usage(format!(
            "no runs to push in {}",
            store.root().display()
        )));
    }
    Ok(rest)
}

/// The manifest of run `r` (its code filled in later) and the local file of each path. The
/// files' hashes are those remembered since they were written, else read (and remembered:
/// [`KnownHashes`]). A push never takes from the remote what an earlier one gave it: files the remote's manifest
/// lists that this copy still has unchanged, or does not have, stay listed whatever
/// `checkpoints` says.
fn prepare(
    store: &Store,
    r: &Record,
    old: Option<&Manifest>,
    checkpoints: Checkpoints,
    pushed: &Pushed,
) -> Result<(Manifest, BTreeMap<String, Source>)> {
    let dir = store.run_dir(&r.id);
    let mut known = KnownHashes::load(&dir);
    let (files, skipped) = super::manifest::run_files(store, &r.id)?;
    let all: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    let old_files: BTreeMap<&str, &FileEntry> = old
        .map(|m| m.files.iter().map(|f| (f.path.as_str(), f)).collect())
        .unwrap_or_default();
    let mut entries = Vec::new();
    let mut left_out = skipped;
    let mut paths = BTreeMap::new();
    for (rel, size) in &files {
        let chosen = checkpoints.takes(rel, &all);
        let local = dir.join(rel);
        if chosen || old_files.contains_key(rel.as_str()) {
            let (sha, meta) = known
                .hash(rel)
                .map_err(|e| Error::io("cannot read", &local, e))?;
            let kept = old_files.get(rel.as_str()).is_some_and(|f| f.sha256 == sha);
            if chosen || kept {
                entries.push(FileEntry {
                    path: rel.clone(),
                    sha256: sha,
                    size: meta.len(),
                });
                let stamp = FileStamp {
                    run_dir: Some(dir.clone()),
                    ..FileStamp::of(&meta)
                };
                paths.insert(rel.clone(), (local, stamp));
                continue;
            }
        }
        left_out.push(LeftOut {
            path: rel.clone(),
            size: *size,
            why: format!(
                "checkpoint not chosen (--checkpoints {})",
                checkpoints.flag()
            ),
        });
    }
    // What the remote holds of the run and this copy lacks (a pulled copy, without every
    // checkpoint set) stays: a push adds and updates, never removes.
    for (path, f) in &old_files {
        if !files.iter().any(|(p, _)| p == path) {
            entries.push((*f).clone());
        }
    }
    known.save();
    entries.sort();
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        id: r.id.clone(),
        record: r.clone(),
        hyper: crate::hyper::read_flat(&dir.join(HYPERPARAMETERS_FILE)),
        files: entries,
        left_out,
        code: None,
        pushed: pushed.clone(),
    };
    Ok((manifest, paths))
}

/// True when the remote's manifest `old` holds run `new` as it is (who pushed it and what
/// was left out aside).
fn same_run(old: &Manifest, new: &Manifest) -> bool {
    comparable(&old.record) == comparable(&new.record)
        && old.files == new.files
        && old.code.as_ref().map(|c| &c.refs) == new.code.as_ref().map(|c| &c.refs)
}

/// Bundles written for a push: their hashes and files; the folder is removed when dropped.
struct Bundles {
    files: Vec<(String, Source)>,
    _dir: Option<tempfile::TempDir>,
}

/// Fills in the code of each manifest: the remote's entry when it holds the run's refs as
/// they are, else a new bundle of the repository's runs that need one.
fn code(
    store: &Store,
    manifests: &mut [Manifest],
    remote_has: &[Option<Manifest>],
) -> Result<Bundles> {
    let mut by_repo: BTreeMap<PathBuf, Vec<usize>> = BTreeMap::new();
    let mut refs_of: Vec<Vec<(String, String)>> = vec![Vec::new(); manifests.len()];
    for (i, m) in manifests.iter_mut().enumerate() {
        let Some(s) = m.record.snapshot.as_ref() else {
            continue;
        };
        let refs = crate::snapshot::refs_of_run(&s.git_dir, &m.id).map_err(|e| {
            Error::msg(format!(
                "run {}: cannot read its code in {}: {e}",
                m.id,
                s.git_dir.display()
            ))
        })?;
        if refs.is_empty() {
            crate::util::stderr::errln!(
                "run {}: its code's ref is gone from {} (`gc`?): pushed without its code",
                m.id,
                s.git_dir.display()
            );
            continue;
        }
        match remote_has[i].as_ref().and_then(|o| o.code.as_ref()) {
            Some(c) if c.refs == refs => m.code = Some(c.clone()),
            _ => {
                by_repo.entry(s.git_dir.clone()).or_default().push(i);
            }
        }
        refs_of[i] = refs;
    }
    if by_repo.is_empty() {
        return Ok(Bundles {
            files: Vec::new(),
            _dir: None,
        });
    }
    // Beside the store (its disk holds the runs, so it has room for their code); in the
    // system's temporary folder where the store cannot be written (a read-only mount), since
    // a push only reads the runs.
    let builder = || {
        let mut b = tempfile::Builder::new();
        b.prefix(".bundles-");
        b
    };
    let dir = builder()
        .tempdir_in(store.root())
        .or_else(|in_store| builder().tempdir().map_err(|_| in_store))
        .map_err(|e| {
            Error::io(
                "cannot make a temporary folder for the code's bundles in",
                store.root(),
                e,
            )
        })?;
    let mut files = Vec::new();
    for (n, (git_dir, runs)) in by_repo.iter().enumerate() {
        let names: Vec<String> = runs
            .iter()
            .flat_map(|&i| refs_of[i].iter().map(|(name, _)| name.clone()))
            .collect();
        let path = dir.path().join(format!("{n}.bundle"));
        crate::snapshot::create_bundle(git_dir, &names, &path)?;
        let sha = hash_file(&path)?;
        let stamp = FileStamp::now(&path)?;
        let size = stamp.size;
        for &i in runs {
            manifests[i].code = Some(Code {
                bundle: sha.clone(),
                size,
                refs: refs_of[i].clone(),
            });
        }
        files.push((sha, (path, stamp)));
    }
    Ok(Bundles {
        files,
        _dir: Some(dir),
    })
}
