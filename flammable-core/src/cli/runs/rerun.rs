//! `rerun`: a train run's snapshot built again with the same package, binary, profile and
//! features, and trained with the same hyperparameters and seed.

use super::*;

pub(super) fn rerun(store: &Store, spec: &str) -> Result<ExitCode> {
    let r = store.resolve(spec, |r| r.kind == RunKind::Train)?;
    let s = snapshot_of(&r)?;
    let build = TaskBuild::of(store, &r)?;
    let work = build
        .root
        .join("reruns")
        .join(format!("{}-{}", r.id, std::process::id()));
    let src = work.join("src");
    snapshot::checkout(&s.git_dir, &s.commit, &src)?;
    crate::util::stderr::errln!(
        "rerun of {}: building {} `{}` from snapshot {} in {}",
        r.id,
        build.kind(),
        r.build.name,
        short_commit(&s.commit),
        src.display()
    );
    let built = build.build(&src)?;
    let status = match built {
        Ok(exe) => {
            let message = format!("rerun of {}", r.id);
            let mut cmd = build.train(&exe, &src, r.seed, &message, &s.commit, &s.git_dir);
            cmd.env(RERUN_OF_ENV, &r.id);
            build.start(cmd)?
        }
        Err(status) => status,
    };
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

/// How a train run's binary is built again (the same package, binary, profile and features,
/// into the store's own target folder) and trained (with the run's hyperparameters, on as
/// many processes): what `rerun` and `bisect` share.
pub(super) struct TaskBuild<'a> {
    record: &'a Record,
    /// The store's folder, absolute.
    pub(super) root: PathBuf,
    target_dir: PathBuf,
}

impl<'a> TaskBuild<'a> {
    /// The build of train run `r`; refused when the run does not say which binary ran it, or
    /// when the target folder is the one this binary runs from.
    pub(super) fn of(store: &Store, r: &'a Record) -> Result<TaskBuild<'a>> {
        if r.build.package.is_empty() || r.build.name.is_empty() {
            return Err(Error::usage(format!(
                "run {} does not record which binary ran it",
                r.id
            )));
        }
        let root =
            std::fs::canonicalize(store.root()).unwrap_or_else(|_| store.root().to_path_buf());
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
        Ok(TaskBuild {
            record: r,
            root,
            target_dir,
        })
    }

    /// `example` or `bin`.
    pub(super) fn kind(&self) -> &str {
        if self.record.build.kind == "example" {
            "example"
        } else {
            "bin"
        }
    }

    fn profile(&self) -> &str {
        if self.record.build.profile.is_empty() {
            "dev"
        } else {
            &self.record.build.profile
        }
    }

    /// Where the package sat in the code checked out at `src`, so that cargo builds the
    /// same one.
    fn package_dir(&self, src: &Path) -> PathBuf {
        let workdir = self
            .record
            .snapshot
            .as_ref()
            .map(|s| s.workdir.clone())
            .unwrap_or_default();
        if workdir.as_os_str().is_empty() {
            return src.to_path_buf();
        }
        self.record
            .build
            .manifest_dir
            .strip_prefix(&workdir)
            .map(|rel| src.join(rel))
            .unwrap_or_else(|_| src.to_path_buf())
    }

    /// Builds the binary from the code at `src` (cargo's progress shows): its path, or
    /// cargo's failing status.
    pub(super) fn build(
        &self,
        src: &Path,
    ) -> Result<std::result::Result<PathBuf, std::process::ExitStatus>> {
        let b = &self.record.build;
        // A path dependency beside the repository (a clone of flammable, say) names nothing
        // from the checkout in the store: it is pointed where it pointed from the code — the
        // working tree the run was made in, or, on a machine without it (a pulled run), the
        // one that holds this store.
        let recorded = self
            .record
            .snapshot
            .as_ref()
            .map(|s| s.workdir.clone())
            .filter(|w| w.is_dir());
        if let Some(workdir) = recorded.or_else(|| snapshot::enclosing_workdir(&self.root)) {
            super::outside_paths::pin_outside_paths(src, &workdir)?;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(&cargo);
        cmd.arg("build").arg("--profile").arg(self.profile());
        cmd.arg("-p").arg(&b.package);
        cmd.arg(format!("--{}", self.kind())).arg(&b.name);
        if !b.features.is_empty() {
            cmd.arg("--features").arg(
                b.features
                    .iter()
                    .map(|f| format!("flammable/{f}"))
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        let package_dir = self.package_dir(src);
        cmd.current_dir(&package_dir)
            .env("CARGO_TARGET_DIR", &self.target_dir);
        let status = cmd.status().at("cannot start cargo in", &package_dir)?;
        if !status.success() {
            return Ok(Err(status));
        }
        let dir = match self.profile() {
            "dev" | "test" => "debug",
            "bench" => "release",
            other => other,
        };
        let folder = if self.kind() == "example" {
            "examples"
        } else {
            ""
        };
        Ok(Ok(self.target_dir.join(dir).join(folder).join(&b.name)))
    }

    /// The command that trains with the run's hyperparameters and `seed`, its code the
    /// commit `commit` of the repository at `git_dir` (its run's ref points there), on as
    /// many processes as the run (mpiexec).
    pub(super) fn train(
        &self,
        exe: &Path,
        src: &Path,
        seed: u64,
        message: &str,
        commit: &str,
        git_dir: &Path,
    ) -> std::process::Command {
        let hyper = self
            .root
            .join("runs")
            .join(&self.record.id)
            .join(HYPERPARAMETERS_FILE);
        let mut args: Vec<std::ffi::OsString> = vec![
            "train".into(),
            "--config".into(),
            hyper.into_os_string(),
            "--seed".into(),
            seed.to_string().into(),
            "--message".into(),
            message.into(),
        ];
        // A run trained further from another (`train --from`) starts from that run's
        // checkpoint again, as it did: from scratch, it would be another training.
        if let (RunKind::Train, Some(parent)) = (self.record.kind, &self.record.parent) {
            args.extend(["--from".into(), parent.into()]);
        }
        // A run of several processes (mpiexec) is trained on as many.
        let mut cmd = match self.record.distributed.as_ref().map(|d| d.world_size) {
            Some(n) => {
                let mut launch = std::process::Command::new("mpiexec");
                launch.arg("-n").arg(n.to_string()).arg(exe);
                launch
            }
            None => std::process::Command::new(exe),
        };
        cmd.args(args)
            .current_dir(self.package_dir(src))
            .env(crate::store::STORE_ENV, &self.root)
            .env(
                REUSE_SNAPSHOT_ENV,
                format!("{commit}@{}", git_dir.display()),
            );
        cmd
    }

    /// Runs `cmd` (from [`TaskBuild::train`]) to its end.
    pub(super) fn start(&self, mut cmd: std::process::Command) -> Result<std::process::ExitStatus> {
        if let Some(d) = &self.record.distributed {
            crate::util::stderr::errln!(
                "{}: on {} processes (mpiexec -n {})",
                self.record.id,
                d.world_size,
                d.world_size
            );
        }
        cmd.status().map_err(|e| match &self.record.distributed {
            Some(d) => Error::msg(format!(
                "run {} trained on {} processes, and training it again needs MPI's launcher: cannot start mpiexec: {e}",
                self.record.id, d.world_size
            )),
            None => Error::msg(format!("cannot start the task's binary: {e}")),
        })
    }
}

pub(super) fn snapshot_of(r: &Record) -> Result<&crate::store::record::SnapshotRecord> {
    r.snapshot
        .as_ref()
        .ok_or_else(|| Error::usage(format!("run {} has no snapshot of its code", r.id)))
}
