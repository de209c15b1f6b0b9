//! What a run records about its code: the Git snapshot of the working tree and how the
//! binary was built.

use crate::run::code_dir::CodeDir;
use crate::snapshot::{self, SnapshotRequest, DEFAULT_SIZE_LIMIT};
use crate::store::record::{Build, BuildTarget, Record, SnapshotRecord};
use crate::store::Store;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Set by `rerun`: `<commit>@<git dir>` of the snapshot the rerun builds, so that the new run
/// records that snapshot instead of snapshotting its temporary folder.
pub const REUSE_SNAPSHOT_ENV: &str = "FLAMMABLE_REUSE_SNAPSHOT";
/// Set by `rerun`: the id of the run being re-run.
pub const RERUN_OF_ENV: &str = "FLAMMABLE_RERUN_OF";
/// Files above this many megabytes are left out of snapshots (default 10).
pub const SIZE_LIMIT_ENV: &str = "FLAMMABLE_SNAPSHOT_MAX_MB";

/// How this binary was built: compiler, target, profile, flammable's features, and where
/// the task's package is.
pub fn build_info(target: BuildTarget) -> Build {
    let exe = std::env::current_exe().ok();
    let dir_name = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let parent = exe.as_deref().and_then(Path::parent);
    let kind = if dir_name(parent) == "examples" {
        "example"
    } else {
        "bin"
    };
    // Recorded when flammable-core was built, in the same build as the task: a binary that
    // was copied or `cargo install`ed elsewhere still names its real profile.
    let profile = env!("FLAMMABLE_PROFILE").to_string();
    let features = [
        ("cuda", cfg!(feature = "cuda")),
        ("metal", cfg!(feature = "metal")),
        ("mkl", cfg!(feature = "mkl")),
        ("accelerate", cfg!(feature = "accelerate")),
        ("mpi", cfg!(feature = "mpi")),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(f, _)| f.to_string())
    .collect();
    let manifest_dir = PathBuf::from(target.manifest_dir);
    let stale_sources = match exe
        .as_deref()
        .and_then(|e| e.metadata().ok()?.modified().ok())
    {
        Some(built) if !target.manifest_dir.is_empty() => {
            newer_sources(&manifest_dir, target.name, built)
        }
        _ => Vec::new(),
    };
    Build {
        rustc: env!("FLAMMABLE_RUSTC_VERSION").to_string(),
        target: env!("FLAMMABLE_TARGET").to_string(),
        profile,
        features,
        package: target.package.to_string(),
        name: target.name.to_string(),
        kind: kind.to_string(),
        manifest_dir,
        stale_sources,
    }
}

/// Rust sources and manifests of binary `name` under package folder `dir` modified after
/// `built` (the binary may predate them). The package's other targets in cargo's usual places
/// (`src/bin/<other>`, `examples/<other>`) and its `tests/` and `benches/` are not part of
/// this binary and are left out.
fn newer_sources(dir: &Path, name: &str, built: SystemTime) -> Vec<String> {
    let crate_name = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().replace('-', "_"))
            .unwrap_or_default()
    };
    let other_target = |rel: &Path| {
        let parts: Vec<&std::ffi::OsStr> = rel.iter().collect();
        match parts.as_slice() {
            [first, ..] if *first == "tests" || *first == "benches" => true,
            [src, bin, target, ..] if *src == "src" && *bin == "bin" => {
                crate_name(Path::new(target)) != name
            }
            [examples, target, ..] if *examples == "examples" => {
                crate_name(Path::new(target)) != name
            }
            _ => false,
        }
    };
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            seen += 1;
            if seen > 20_000 {
                return out;
            }
            let path = e.path();
            if other_target(path.strip_prefix(dir).unwrap_or(&path)) {
                continue;
            }
            let file = e.file_name().to_string_lossy().into_owned();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if !file.starts_with('.') && file != "target" {
                    stack.push(path);
                }
            } else if file.ends_with(".rs") || file == "Cargo.toml" || file == "Cargo.lock" {
                let newer = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|m| m > built);
                if newer {
                    out.push(
                        path.strip_prefix(dir)
                            .unwrap_or(&path)
                            .display()
                            .to_string(),
                    );
                }
            }
        }
    }
    out.sort();
    out
}

/// Snapshots the code in `code` for `record` (or reuses the snapshot a rerun was asked to
/// build). Returns the snapshot and the lines to print.
pub fn snapshot_code(
    store: &Store,
    record: &Record,
    code: &CodeDir,
) -> Result<(SnapshotRecord, Vec<String>), String> {
    snapshot_with_ref(store, record, code, None)
}

/// The ref of the code run `id` was resumed with, `refs/flammable/resumes/<id>-<suffix>`.
pub fn resume_ref(id: &str, suffix: &str) -> String {
    format!("{}{id}-{suffix}", snapshot::RESUME_PREFIX)
}

/// Snapshots the working tree for a resume of `record`, on
/// `refs/flammable/resumes/<id>-<suffix>`.
pub fn snapshot_code_as(
    store: &Store,
    record: &Record,
    code: &CodeDir,
    suffix: &str,
) -> Result<(SnapshotRecord, Vec<String>), String> {
    let name = resume_ref(&record.id, suffix);
    snapshot_with_ref(store, record, code, Some(name))
}

fn snapshot_with_ref(
    store: &Store,
    record: &Record,
    code: &CodeDir,
    reference: Option<String>,
) -> Result<(SnapshotRecord, Vec<String>), String> {
    let mut say = Vec::new();
    if let Some(spec) = std::env::var(REUSE_SNAPSHOT_ENV)
        .ok()
        .filter(|s| !s.is_empty())
    {
        let (commit, git_dir) = spec
            .split_once('@')
            .ok_or_else(|| format!("{REUSE_SNAPSHOT_ENV} must be <commit>@<git dir>"))?;
        let git_dir = PathBuf::from(git_dir);
        snapshot::reuse(&git_dir, commit, &record.id).map_err(|e| e.to_string())?;
        say.push(format!(
            "code: snapshot {} (reused)",
            &commit[..commit.len().min(12)]
        ));
        return Ok((
            SnapshotRecord {
                commit: commit.to_string(),
                parent: None,
                dirty: false,
                workdir: PathBuf::new(),
                git_dir,
                skipped: Vec::new(),
            },
            say,
        ));
    }
    let size_limit = size_limit()?;
    let message = format!(
        "flammable: {} {} run {}\n\ncommand: {}\nmessage: {}\n{}\n",
        record.experiment,
        record.kind,
        record.id,
        record.argv.join(" "),
        record.message.as_deref().unwrap_or(""),
        crate::store::store_line(store.root())
    );
    let request = SnapshotRequest {
        dir: code.path.clone(),
        create_repository: code.may_create_repository(),
        run_id: record.id.clone(),
        message,
        size_limit,
        exclude: vec![store.root().to_path_buf()],
        reference,
    };
    let snap = snapshot::take(&request).map_err(|e| match e {
        snapshot::SnapshotError::NoRepository(_) => code.no_repository_hint(),
        other => other.to_string(),
    })?;
    if snap.created_repository {
        say.push(format!(
            "no Git repository here: created one in {} to record the code of runs",
            snap.workdir.display()
        ));
    }
    let changes = if snap.dirty {
        snapshot::changed_paths(&snap.git_dir, &snap.commit)
            .map(|c| format!(", {} uncommitted file(s)", c.len()))
            .unwrap_or_default()
    } else {
        String::new()
    };
    say.push(format!(
        "code: snapshot {}{changes}",
        snap.commit.get(..12).unwrap_or(&snap.commit)
    ));
    if !snap.skipped.is_empty() {
        // The largest few; the record keeps them all (`show` lists them).
        const SHOWN: usize = 5;
        let mut largest: Vec<&(String, u64)> = snap.skipped.iter().collect();
        largest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut list: Vec<String> = largest
            .iter()
            .take(SHOWN)
            .map(|(p, n)| format!("{p} ({:.1} MB)", *n as f64 / 1_048_576.0))
            .collect();
        if largest.len() > SHOWN {
            list.push(format!("and {} more", largest.len() - SHOWN));
        }
        say.push(format!(
            "left out of the snapshot (over {} MB): {}",
            size_limit / 1_048_576,
            list.join(", ")
        ));
    }
    Ok((
        SnapshotRecord {
            commit: snap.commit,
            parent: snap.parent,
            dirty: snap.dirty,
            git_dir: snap.git_dir,
            workdir: snap.workdir,
            skipped: snap.skipped,
        },
        say,
    ))
}

/// The snapshot's file size limit in bytes: `FLAMMABLE_SNAPSHOT_MAX_MB` megabytes, else
/// the default; a value that is not a whole number is an error, never silently ignored.
fn size_limit() -> Result<u64, String> {
    match std::env::var(SIZE_LIMIT_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT_SIZE_LIMIT),
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|mb| mb.checked_mul(1024 * 1024))
            .ok_or_else(|| {
                format!(
                    "{SIZE_LIMIT_ENV}={v}: expected a whole number of megabytes, at most {}",
                    u64::MAX / (1024 * 1024)
                )
            }),
        Err(std::env::VarError::NotUnicode(v)) => Err(format!(
            "{SIZE_LIMIT_ENV}={}: expected a whole number of megabytes",
            v.to_string_lossy()
        )),
    }
}

/// One line naming the files that differ between the code of `parent` and `child`, or
/// nothing when they ran the same code.
pub fn code_changes(parent: &Record, child: &SnapshotRecord) -> Option<String> {
    let p = parent.snapshot.as_ref()?;
    let changes = snapshot::diff(&child.git_dir, Some(&p.commit), &child.commit, false).ok()?;
    if changes.is_empty() {
        return None;
    }
    let mut names: Vec<&str> = changes.iter().map(|c| c.path.as_str()).take(8).collect();
    if changes.len() > 8 {
        names.push("…");
    }
    Some(format!(
        "code changed since run {}: {} (this run's snapshot records what ran)",
        parent.id,
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::newer_sources;
    use std::time::{Duration, SystemTime};

    #[test]
    fn no_repository_is_created_where_the_binary_merely_runs() {
        use crate::run::code_dir::{CodeDir, CodeSource};
        use crate::store::record::{Record, RunKind};
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::at(dir.path().join("store"));
        let code = CodeDir {
            path: dir.path().to_path_buf(),
            source: CodeSource::CurrentFolder,
            crate_dir: "/gone/digits".into(),
        };
        let record = Record {
            id: "20261205-000000-test".into(),
            ..Record::new("digits", RunKind::Train, 1)
        };
        let why = super::snapshot_code(&store, &record, &code).unwrap_err();
        assert!(
            why.contains("no Git repository")
                && why.contains("built in /gone/digits, which is not on this machine"),
            "{why}"
        );
        assert!(!dir.path().join(".git").exists());
        // The task's own folder may get one (a project that never had Git).
        let code = CodeDir {
            source: CodeSource::Crate,
            ..code
        };
        let (snapshot, said) = super::snapshot_code(&store, &record, &code).unwrap();
        assert!(dir.path().join(".git").is_dir(), "{said:?}");
        assert!(!snapshot.commit.is_empty());
    }

    #[test]
    fn staleness_counts_this_binarys_sources_only() {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            "Cargo.toml",
            "src/lib.rs",
            "src/model/mod.rs",
            "src/bin/train_mnist.rs",
            "src/bin/other.rs",
            "src/bin/tool/main.rs",
            "examples/train-mnist.rs",
            "examples/demo.rs",
            "tests/it.rs",
            "benches/speed.rs",
            "target/debug/build/x.rs",
        ];
        for f in files {
            let path = dir.path().join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
        let built = SystemTime::now() - Duration::from_secs(60);
        let stale = newer_sources(dir.path(), "train_mnist", built);
        assert_eq!(
            stale,
            [
                "Cargo.toml",
                "examples/train-mnist.rs",
                "src/bin/train_mnist.rs",
                "src/lib.rs",
                "src/model/mod.rs"
            ]
        );
        assert!(newer_sources(dir.path(), "train_mnist", SystemTime::now()).is_empty());
    }
}
