//! `rerun`: a train run's snapshot built again with the same package, binary, profile and
//! features, and trained with the same hyperparameters and seed.

use super::*;

pub(super) fn rerun(store: &Store, spec: &str) -> Result<ExitCode> {
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
    snapshot::checkout(&s.git_dir, &s.commit, &src)?;
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
    // A folder named for the rerun must not be the one this binary was built in either.
    let holds_this_binary = match (
        std::env::current_exe().and_then(std::fs::canonicalize),
        std::fs::canonicalize(&target_dir),
    ) {
        (Ok(exe), Ok(target)) => exe.starts_with(&target),
        _ => false,
    };
    if holds_this_binary {
        return Err(Error::usage(format!(
            "{RERUN_TARGET_ENV}={}: this binary was built there, and the rerun's build would replace it; name another folder",
            target_dir.display()
        )));
    }
    let hyper = store.run_dir(&r.id).join(HYPERPARAMETERS_FILE);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let profile = if b.profile.is_empty() {
        "dev"
    } else {
        &b.profile
    };
    // A run of several processes (mpiexec) is rerun on as many: its binary is built, then
    // started by the launcher (`cargo run` would start cargo once per process).
    let processes = r.distributed.as_ref().map(|d| d.world_size);
    let mut cmd = std::process::Command::new(&cargo);
    cmd.arg(if processes.is_some() { "build" } else { "run" })
        .arg("--profile")
        .arg(profile);
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
    let train_args = [
        "train".into(),
        "--config".into(),
        hyper.into_os_string(),
        "--seed".into(),
        r.seed.to_string().into(),
        "--message".into(),
        format!("rerun of {}", r.id).into(),
    ];
    if processes.is_none() {
        cmd.arg("--").args(&train_args);
    }
    cmd.current_dir(&package_dir)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env(crate::store::STORE_ENV, &root)
        .env(RERUN_OF_ENV, &r.id)
        .env(
            REUSE_SNAPSHOT_ENV,
            format!("{}@{}", s.commit, s.git_dir.display()),
        );
    crate::util::stderr::errln!(
        "rerun of {}: building {} `{}` from snapshot {} in {}",
        r.id,
        b.kind,
        b.name,
        short_commit(&s.commit),
        src.display()
    );
    let mut status = cmd.status().at("cannot start cargo in", &package_dir)?;
    if let (Some(n), true) = (processes, status.success()) {
        let dir = match profile {
            "dev" | "test" => "debug",
            "bench" => "release",
            other => other,
        };
        let folder = if b.kind == "example" { "examples" } else { "" };
        let exe = target_dir.join(dir).join(folder).join(&b.name);
        crate::util::stderr::errln!("rerun of {}: on {n} processes (mpiexec -n {n})", r.id);
        let mut launch = std::process::Command::new("mpiexec");
        launch
            .arg("-n")
            .arg(n.to_string())
            .arg(&exe)
            .args(&train_args)
            .current_dir(&package_dir)
            .env(crate::store::STORE_ENV, &root)
            .env(RERUN_OF_ENV, &r.id)
            .env(
                REUSE_SNAPSHOT_ENV,
                format!("{}@{}", s.commit, s.git_dir.display()),
            );
        status = launch.status().map_err(|e| {
            Error::msg(format!(
                "run {} trained on {n} processes, and its rerun needs MPI's launcher: cannot start mpiexec: {e}",
                r.id
            ))
        })?;
    }
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

pub(super) fn snapshot_of(r: &Record) -> Result<&crate::store::record::SnapshotRecord> {
    r.snapshot
        .as_ref()
        .ok_or_else(|| Error::usage(format!("run {} has no snapshot of its code", r.id)))
}
