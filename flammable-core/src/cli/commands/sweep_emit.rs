//! `train --sweep … --emit slurm|k8s`: the sweep as a Slurm job array or a Kubernetes
//! Indexed Job, one combination per task, printed and not run. Each task runs this program
//! (by absolute path) with the same flags, into the same store (by absolute path, which the
//! cluster's hosts must share), and learns its shard from the environment the cluster sets
//! (see `sweep_shard`).

use super::*;

/// What `--emit` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EmitKind {
    /// An sbatch script: a job array, one task per combination.
    Slurm,
    /// A Kubernetes manifest: a batch/v1 Job with indexed completions.
    K8s,
}

/// `--emit` and the flags it reads.
#[derive(Clone, Debug)]
pub(super) struct Emit {
    pub(super) kind: EmitKind,
    /// The command line as typed.
    pub(super) argv: Vec<OsString>,
    /// `--parallel`: tasks at a time.
    pub(super) parallel: Option<usize>,
    /// `--image` (k8s).
    pub(super) image: Option<String>,
    /// `--claim` (k8s).
    pub(super) claim: Option<String>,
    /// `--program`.
    pub(super) program: Option<String>,
    /// Whether `--sweep-id` was given (it is then kept in the command).
    pub(super) id_given: bool,
}

/// The flags that shape the script, not the runs: left out of the command it runs.
const EMIT_VALUED: [&str; 6] = [
    "--emit",
    "--parallel",
    "--image",
    "--claim",
    "--program",
    "--store",
];

/// What a script or manifest is made of, everything resolved.
#[derive(Clone, Debug)]
pub(super) struct ClusterJob {
    pub(super) experiment: String,
    /// The program each task runs.
    pub(super) program: String,
    /// Its arguments.
    pub(super) args: Vec<String>,
    /// The store, absolute.
    pub(super) store: PathBuf,
    /// `$FLAMMABLE_CODE_DIR`, when it names the code.
    pub(super) code_dir: Option<PathBuf>,
    /// Where the runs' code is, as this host sees it (the folder whose Git repository
    /// they snapshot).
    pub(super) code: PathBuf,
    /// `--allow-no-snapshot`: the runs go on without a snapshot of their code.
    pub(super) allow_no_snapshot: bool,
    /// Combinations: tasks.
    pub(super) tasks: usize,
    /// Tasks at a time.
    pub(super) parallel: usize,
    /// `--threads` (0: one per core).
    pub(super) threads: Option<usize>,
    /// The sweep's id.
    pub(super) sweep_id: String,
    pub(super) image: String,
    pub(super) claim: String,
}

/// Prints the script or manifest of `plan` (its `emit` set).
pub(super) fn emit(spec: &TaskSpec, g: &Global, plan: &SweepPlan, e: &Emit) -> Result<ExitCode> {
    match e.kind {
        EmitKind::K8s => {
            if e.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
                return Err(Error::usage(
                    "--emit k8s needs --image IMAGE: the container image that holds this program",
                ));
            }
            let reference = |c: char| c.is_ascii_alphanumeric() || "._-/:@".contains(c);
            if let Some(image) = e
                .image
                .as_deref()
                .filter(|i| !i.trim().chars().all(reference))
            {
                return Err(Error::usage(format!(
                    "--image {image:?} is not an image reference: letters, digits and . _ - / : @ (registry/name:tag)"
                )));
            }
            if let Some(claim) = e.claim.as_deref().filter(|c| !is_k8s_object_name(c)) {
                return Err(Error::usage(format!(
                    "--claim {claim:?} is not a Kubernetes name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
                )));
            }
            if let Some(p) = e.program.as_deref().filter(|p| !p.starts_with('/')) {
                return Err(Error::usage(format!(
                    "--program {p:?}: give the program's absolute path inside the image"
                )));
            }
        }
        EmitKind::Slurm => {
            if let Some(p) = e.program.as_deref().filter(|p| p.trim().is_empty()) {
                return Err(Error::usage(format!(
                    "--program {p:?}: give the program's path on the cluster's nodes"
                )));
            }
            for (flag, given) in [
                ("--image", e.image.is_some()),
                ("--claim", e.claim.is_some()),
            ] {
                if given {
                    return Err(Error::usage(format!(
                        "{flag} is for --emit k8s; a Slurm script runs this machine's program on shared storage"
                    )));
                }
            }
        }
    }
    let program = match &e.program {
        Some(p) => p.clone(),
        // This host's build path is seldom the program's path in an image.
        None if e.kind == EmitKind::K8s => {
            return Err(Error::usage(
                "--emit k8s needs --program PATH: the program's path inside the image (e.g. --program /usr/local/bin/digits)",
            ))
        }
        None => {
            let exe = std::env::current_exe()
                .map_err(|e| Error::msg(format!("cannot find this program's path: {e}")))?;
            text(exe.as_os_str())?
        }
    };
    let store = g.store()?;
    let root = std::path::absolute(store.root())
        .map_err(|err| Error::io("cannot resolve", store.root(), err))?;
    let code = g.code();
    let code_dir = (code.source == crate::run::code_dir::CodeSource::Named)
        .then(|| std::path::absolute(&code.path).unwrap_or(code.path.clone()));
    // A Slurm task is given its shard and the sweep's id by the script (see `slurm_script`).
    let shaping: &[&str] = match e.kind {
        EmitKind::Slurm => &["--sweep-id"],
        EmitKind::K8s => &[],
    };
    let valued: Vec<&str> = EMIT_VALUED.iter().chain(shaping).copied().collect();
    let mut args: Vec<String> = without_flags(&e.argv, &valued, &[])
        .iter()
        .skip(1)
        .map(|a| text(a))
        .collect::<Result<_>>()?;
    absolute_configs(&mut args)?;
    args.extend(["--store".to_string(), text(root.as_os_str())?]);
    // Kubernetes names no job id that all pods see: the manifest names the sweep.
    if e.kind == EmitKind::K8s && !e.id_given {
        args.extend(["--sweep-id".to_string(), plan.id.clone()]);
    }
    let code_path = std::path::absolute(&code.path).unwrap_or(code.path.clone());
    // The paths are also written into the script's comments, where a line break would start
    // a command (or a YAML key) of its own.
    for path in [
        program.as_str(),
        &text(root.as_os_str())?,
        &text(code_path.as_os_str())?,
    ]
    .into_iter()
    .chain(code_dir.as_deref().and_then(std::path::Path::to_str))
    {
        if path.chars().any(char::is_control) {
            return Err(Error::usage(format!(
                "--emit: the path {path:?} holds a control character (a line break?), which a script cannot carry"
            )));
        }
    }
    let tasks = plan.settings.len();
    let job = ClusterJob {
        experiment: spec.experiment.to_string(),
        program,
        args,
        store: root,
        code_dir,
        code: code_path,
        allow_no_snapshot: g.allow_no_snapshot,
        tasks,
        parallel: e.parallel.unwrap_or(tasks).min(tasks).max(1),
        threads: g.threads,
        sweep_id: plan.id.clone(),
        image: e.image.clone().unwrap_or_default(),
        claim: e
            .claim
            .clone()
            .unwrap_or_else(|| "flammable-store".to_string()),
    };
    let out = match e.kind {
        EmitKind::Slurm => slurm_script(&job, e.id_given.then_some(plan.id.as_str())),
        EmitKind::K8s => k8s_manifest(&job),
    };
    let mut stdout = std::io::stdout().lock();
    std::io::Write::write_all(&mut stdout, out.as_bytes())
        .and_then(|()| std::io::Write::flush(&mut stdout))
        .map_err(stdout::from_io)?;
    Ok(ExitCode::SUCCESS)
}

/// Each `--config FILE` (or `--config=FILE`) of `args` with FILE as an absolute path: the
/// tasks start in another folder than this command (sbatch's, a pod's), as `--store` is.
fn absolute_configs(args: &mut [String]) -> Result<()> {
    for at in flag_values(args, "--config") {
        let word = &args[at.word];
        let path = std::path::Path::new(&word[at.from..]);
        let whole = std::path::absolute(path).map_err(|e| Error::io("cannot resolve", path, e))?;
        args[at.word] = format!("{}{}", &word[..at.from], text(whole.as_os_str())?);
    }
    Ok(())
}

/// `s` as UTF-8, or an error naming it: a script cannot carry other bytes faithfully.
fn text(s: &std::ffi::OsStr) -> Result<String> {
    s.to_str().map(str::to_string).ok_or_else(|| {
        Error::usage(format!(
            "--emit: `{}` is not UTF-8, which a script cannot carry",
            s.to_string_lossy()
        ))
    })
}

/// The environment variable that an sbatch script of ours reads for the id of an earlier
/// sweep to continue (`SWEEP_ID=slurm-5 sbatch --array=1,3 FILE`).
pub(super) const SCRIPT_SWEEP_ID_ENV: &str = "SWEEP_ID";

/// The sbatch script of `job`: a job array of one task per combination, `parallel` at a
/// time. Each task is shard `$SLURM_ARRAY_TASK_ID` of the count fixed here (so a subset of
/// the array, `sbatch --array=2 FILE`, runs those combinations of the same plan), of the
/// sweep `$SWEEP_ID`, else `given_id`, else `slurm-<the array's job id>`.
pub(super) fn slurm_script(job: &ClusterJob, given_id: Option<&str>) -> String {
    let name = format!("{}-sweep", job.experiment);
    let id = given_id.unwrap_or("slurm-<the job id sbatch prints>");
    let default_id = given_id.unwrap_or("slurm-$SLURM_ARRAY_JOB_ID");
    let last = job.tasks.saturating_sub(1);
    let mut s = String::new();
    s.push_str("#!/bin/sh\n");
    s.push_str(&format!(
        "# A sweep of {}: {} combination(s), one per task of this job array, {} at a time.\n",
        job.experiment, job.tasks, job.parallel
    ));
    s.push_str(&format!(
        "# Task I runs combination I (shard I/{}) of the sweep ${SCRIPT_SWEEP_ID_ENV}, else {default_id}.\n",
        job.tasks
    ));
    s.push_str(&format!(
        "# Submit it with `sbatch FILE`; then `flammable runs --sweep {id} --store {}` ranks the runs.\n",
        crate::util::shell::word(&job.store.display().to_string())
    ));
    // Tasks of this array, for the example.
    let some = match last {
        0 => "0".to_string(),
        1 => "1".to_string(),
        _ => format!("1,{last}"),
    };
    s.push_str(&format!(
        "# Run some tasks again (a stopped sweep, a failed node) into that sweep: `{SCRIPT_SWEEP_ID_ENV}={} sbatch --array={some} FILE`;\n",
        given_id.unwrap_or("slurm-<its job id>")
    ));
    s.push_str(
        "# a task skips a combination done already and resumes one stopped from its checkpoint.\n",
    );
    if job.allow_no_snapshot {
        s.push_str(
            "# Every node must reach this program and the store at these paths (shared storage).\n",
        );
    } else {
        s.push_str(&format!(
            "# Every node must reach this program, the store and the code's Git repository ({}) at these paths\n# (shared storage), or emit with --allow-no-snapshot.\n",
            job.code.display()
        ));
    }
    s.push_str(&format!("#SBATCH --job-name={name}\n"));
    s.push_str(&format!("#SBATCH --array=0-{last}%{}\n", job.parallel));
    s.push_str("#SBATCH --ntasks=1\n");
    match job.threads.unwrap_or(1) {
        0 => s.push_str("#SBATCH --exclusive\n"),
        n => s.push_str(&format!("#SBATCH --cpus-per-task={n}\n")),
    }
    s.push_str(&format!("#SBATCH --output={name}-%A_%a.out\n"));
    s.push_str("set -eu\n");
    if let Some(code) = &job.code_dir {
        s.push_str(&format!(
            "export {}={}\n",
            crate::run::code_dir::CODE_DIR_ENV,
            crate::util::shell::quote(&code.display().to_string())
        ));
    }
    s.push_str("exec ");
    s.push_str(&crate::util::shell::quote(&job.program));
    for a in &job.args {
        s.push(' ');
        s.push_str(&crate::util::shell::quote(a));
    }
    // The shell expands these two: the task's index, and the sweep's id.
    s.push_str(&format!(
        " --shard \"$SLURM_ARRAY_TASK_ID/{}\" --sweep-id \"${{{SCRIPT_SWEEP_ID_ENV}:-{}}}\"",
        job.tasks,
        given_id.map_or("slurm-$SLURM_ARRAY_JOB_ID".to_string(), shell_inner)
    ));
    s.push('\n');
    s
}

/// `s` safe inside a double-quoted shell word (a sweep id is letters, digits, `-` and `_`,
/// so nothing is changed; this only guards the contract).
fn shell_inner(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// A DNS-1123 label of at most 52 characters (a Job's pods add their index to it) made of
/// `s`: lower case, runs of other characters as `-`. When that changed `s` (`Grid_1`, a long
/// id), a digest of `s` ends it, so that two ids never give one name (`grid-1` and `Grid_1`).
fn k8s_name(s: &str) -> String {
    use sha2::Digest as _;
    let mut name = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.ends_with('-') && !name.is_empty() {
            name.push('-');
        }
    }
    if name.len() <= 52 && name == s && !name.ends_with('-') {
        return name;
    }
    let digest = crate::store::hashes::hex(&sha2::Sha256::digest(s.as_bytes()));
    name.truncate(52 - 7);
    let name = name.trim_end_matches('-');
    if name.is_empty() {
        format!("flammable-sweep-{}", &digest[..6])
    } else {
        format!("{name}-{}", &digest[..6])
    }
}

/// Whether `s` is a Kubernetes object name (a DNS-1123 subdomain, as a PersistentVolumeClaim's
/// must be): at most 253 lower-case letters, digits, `-` and `.`, starting and ending with a
/// letter or digit.
fn is_k8s_object_name(s: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    s.len() <= 253
        && edge(s.chars().next())
        && edge(s.chars().last())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

/// `s` as a YAML scalar: a JSON string, which YAML reads as the same string.
fn yaml(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// `s` as a YAML scalar of a container's `command`, `args` or `env` value, where Kubernetes
/// replaces `$(NAME)` with a variable and `$$` with `$`: each `$` doubled, so that the pod
/// gets `s` as it is.
fn k8s_literal(s: &str) -> String {
    yaml(&s.replace('$', "$$"))
}

/// The manifest of `job`: a batch/v1 Job with indexed completions, one per combination,
/// `parallel` pods at a time, the store's claim mounted at the store's path.
pub(super) fn k8s_manifest(job: &ClusterJob) -> String {
    let name = k8s_name(&format!("{}-sweep-{}", job.experiment, job.sweep_id));
    let store = job.store.display().to_string();
    let mut s = String::new();
    s.push_str(&format!(
        "# A sweep of {}: {} combination(s), one per completion index, {} pod(s) at a time.\n",
        job.experiment, job.tasks, job.parallel
    ));
    s.push_str(&format!(
        "# Each pod reads its shard from JOB_COMPLETION_INDEX and {SHARD_COUNT_ENV}; the sweep is {}.\n",
        job.sweep_id
    ));
    s.push_str(&format!(
        "# Apply it with `kubectl apply -f FILE`; then `flammable runs --sweep {} --store {}` ranks the runs.\n",
        job.sweep_id,
        crate::util::shell::word(&store)
    ));
    s.push_str("# A pod retried (backoffLimitPerIndex, Kubernetes 1.29+; else use backoffLimit) skips its combination when\n# it is done (exit 0 if its run finished, 1 if it failed) and resumes it from its checkpoint when it stopped.\n");
    if job.parallel > 1 {
        s.push_str(&format!(
            "# {} pods at a time share the store: the claim must be ReadWriteMany (NFS, CephFS, a cloud file share).\n",
            job.parallel
        ));
    }
    if job.code_dir.is_none() && !job.allow_no_snapshot {
        s.push_str(&format!(
            "# Each run snapshots its code: the image must hold the code's Git repository, with {} naming it\n# (add it to env below), or emit with --allow-no-snapshot for an image of the program alone.\n",
            crate::run::code_dir::CODE_DIR_ENV
        ));
    }
    s.push_str("apiVersion: batch/v1\nkind: Job\nmetadata:\n");
    s.push_str(&format!("  name: {}\n", yaml(&name)));
    s.push_str("  labels:\n");
    s.push_str(&format!(
        "    flammable.sweep: {}\n",
        yaml(&k8s_name(&job.sweep_id))
    ));
    s.push_str("spec:\n  completionMode: Indexed\n");
    s.push_str(&format!("  completions: {}\n", job.tasks));
    s.push_str("  backoffLimitPerIndex: 2\n");
    s.push_str(&format!("  parallelism: {}\n", job.parallel));
    s.push_str("  template:\n    spec:\n      restartPolicy: Never\n      containers:\n");
    s.push_str("        - name: train\n");
    s.push_str(&format!("          image: {}\n", yaml(&job.image)));
    s.push_str(&format!(
        "          command: [{}]\n",
        k8s_literal(&job.program)
    ));
    s.push_str("          args:\n");
    for a in &job.args {
        s.push_str(&format!("            - {}\n", k8s_literal(a)));
    }
    s.push_str("          env:\n");
    s.push_str(&format!("            - name: {SHARD_COUNT_ENV}\n"));
    s.push_str(&format!(
        "              value: {}\n",
        yaml(&job.tasks.to_string())
    ));
    // An image of the program alone (--allow-no-snapshot) has no code folder to name.
    if let Some(code) = job.code_dir.as_ref().filter(|_| !job.allow_no_snapshot) {
        s.push_str(&format!(
            "            - name: {}\n",
            crate::run::code_dir::CODE_DIR_ENV
        ));
        s.push_str(&format!(
            "              value: {}\n",
            k8s_literal(&code.display().to_string())
        ));
    }
    // The runs' threads: 1 unless --threads says otherwise (0, a core each, requests none).
    if let Some(n) = Some(job.threads.unwrap_or(1)).filter(|&n| n > 0) {
        s.push_str("          resources:\n            requests:\n");
        s.push_str(&format!("              cpu: {}\n", yaml(&n.to_string())));
    }
    s.push_str("          volumeMounts:\n            - name: store\n");
    s.push_str(&format!("              mountPath: {}\n", yaml(&store)));
    s.push_str("      volumes:\n        - name: store\n          persistentVolumeClaim:\n");
    s.push_str(&format!("            claimName: {}\n", yaml(&job.claim)));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> ClusterJob {
        ClusterJob {
            experiment: "digits_v2".into(),
            program: "/opt/it's/digits".into(),
            args: vec![
                "train".into(),
                "--sweep".into(),
                "lr=1e-3,3e-3".into(),
                "--store".into(),
                "/shared/store".into(),
            ],
            store: "/shared/store".into(),
            code_dir: None,
            code: "/home/me/digits".into(),
            allow_no_snapshot: false,
            tasks: 2,
            parallel: 1,
            threads: Some(4),
            sweep_id: "20261205-140543-k3vd".into(),
            image: "registry.example/digits:1".into(),
            claim: "runs".into(),
        }
    }

    #[test]
    fn the_slurm_script_is_an_array_of_one_task_per_combination() {
        let s = slurm_script(&job(), None);
        assert!(s.starts_with("#!/bin/sh\n"));
        // The shard count is fixed here, not read from the array (a subset of it, `sbatch
        // --array=2`, has SLURM_ARRAY_TASK_COUNT 1); the sweep's id may name an earlier one.
        for line in [
            "#SBATCH --array=0-1%1",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --output=digits_v2-sweep-%A_%a.out",
            "exec '/opt/it'\\''s/digits' 'train' '--sweep' 'lr=1e-3,3e-3' '--store' '/shared/store' --shard \"$SLURM_ARRAY_TASK_ID/2\" --sweep-id \"${SWEEP_ID:-slurm-$SLURM_ARRAY_JOB_ID}\"",
        ] {
            assert!(s.lines().any(|l| l == line), "{line} in:\n{s}");
        }
        assert!(
            s.contains("(/home/me/digits)"),
            "the code must be reached: {s}"
        );
        // The example of tasks run again names tasks of this array.
        for (tasks, some) in [
            (1, "--array=0 FILE"),
            (2, "--array=1 FILE"),
            (5, "--array=1,4 FILE"),
        ] {
            let s = slurm_script(&ClusterJob { tasks, ..job() }, None);
            assert!(s.contains(some), "{some} in:\n{s}");
        }
        let named = slurm_script(&job(), Some("grid1"));
        assert!(
            named.contains(" --sweep-id \"${SWEEP_ID:-grid1}\"\n"),
            "{named}"
        );
        // Without --threads, each task asks for the one core its run uses.
        let one = slurm_script(
            &ClusterJob {
                threads: None,
                ..job()
            },
            None,
        );
        assert!(
            one.lines().any(|l| l == "#SBATCH --cpus-per-task=1"),
            "{one}"
        );
        // sbatch reads #SBATCH lines only before the first command.
        let first_command = s
            .lines()
            .position(|l| !l.starts_with('#') && !l.is_empty())
            .unwrap();
        let lines: Vec<&str> = s.lines().collect();
        let last_directive = lines
            .iter()
            .rposition(|l| l.starts_with("#SBATCH"))
            .unwrap();
        assert!(last_directive < first_command, "{s}");
    }

    #[test]
    fn the_manifest_says_what_a_cluster_needs() {
        let m = k8s_manifest(&ClusterJob {
            parallel: 2,
            threads: None,
            ..job()
        });
        for needed in [
            "  backoffLimitPerIndex: 2\n",
            "              cpu: \"1\"\n",
            "ReadWriteMany",
            "FLAMMABLE_CODE_DIR",
            "--allow-no-snapshot",
        ] {
            assert!(m.contains(needed), "{needed} in:\n{m}");
        }
        let alone = k8s_manifest(&ClusterJob {
            allow_no_snapshot: true,
            ..job()
        });
        assert!(!alone.contains("FLAMMABLE_CODE_DIR") && !alone.contains("ReadWriteMany"));
        // This host's code folder means nothing in an image of the program alone.
        let named = k8s_manifest(&ClusterJob {
            code_dir: Some("/work/code".into()),
            ..job()
        });
        assert!(named.contains("value: \"/work/code\""), "{named}");
        let alone = k8s_manifest(&ClusterJob {
            code_dir: Some("/work/code".into()),
            allow_no_snapshot: true,
            ..job()
        });
        assert!(!alone.contains("FLAMMABLE_CODE_DIR"), "{alone}");
    }

    #[test]
    fn configs_are_named_by_their_absolute_paths() {
        let cwd = std::env::current_dir().unwrap();
        let mut args: Vec<String> = [
            "train",
            "--config",
            "a.ron",
            "--config=b/c.ron",
            "-m",
            "--config",
        ]
        .map(String::from)
        .to_vec();
        absolute_configs(&mut args).unwrap();
        assert_eq!(args[2], cwd.join("a.ron").display().to_string());
        assert_eq!(
            args[3],
            format!("--config={}", cwd.join("b/c.ron").display())
        );
        assert_eq!(args[4..], ["-m", "--config"]);
        let mut already = vec!["--config".to_string(), "/etc/x.ron".to_string()];
        absolute_configs(&mut already).unwrap();
        assert_eq!(already[1], "/etc/x.ron");
    }

    #[test]
    fn kubernetes_passes_dollars_in_the_command_as_they_are() {
        let m = k8s_manifest(&ClusterJob {
            program: "/opt/$HOME/digits".into(),
            args: vec!["-m".into(), "cost $(FLAMMABLE_SHARD_COUNT) and $$5".into()],
            code_dir: Some("/code/$(X)".into()),
            ..job()
        });
        // Kubernetes reads `$$` as `$`, and leaves `$$(NAME)` unexpanded.
        assert!(m.contains("command: [\"/opt/$$HOME/digits\"]"), "{m}");
        assert!(
            m.contains("- \"cost $$(FLAMMABLE_SHARD_COUNT) and $$$$5\""),
            "{m}"
        );
        assert!(m.contains("value: \"/code/$$(X)\""), "{m}");
    }

    #[test]
    fn kubernetes_names_are_dns_labels() {
        assert_eq!(
            k8s_name("digits-sweep-20261205-140543-k3vd"),
            "digits-sweep-20261205-140543-k3vd"
        );
        // Changed to be a label: a digest of the id keeps ids apart.
        let changed = k8s_name("digits_v2-sweep-Grid_1");
        assert!(changed.starts_with("digits-v2-sweep-grid-1-"), "{changed}");
        assert_ne!(changed, k8s_name("digits_v2-sweep-grid-1"));
        assert!(k8s_name("__").starts_with("flammable-sweep-"));
        // A name ends with a letter or digit.
        let dash = k8s_name("digits-sweep-x-");
        assert!(
            dash.starts_with("digits-sweep-x-") && !dash.ends_with('-'),
            "{dash}"
        );
        assert_ne!(dash, k8s_name("digits-sweep-x"));
        let (a, b) = (
            k8s_name(&format!("{}x", "a".repeat(60))),
            k8s_name(&format!("{}y", "a".repeat(60))),
        );
        assert!(a.len() <= 52 && !a.ends_with('-') && a != b, "{a} {b}");
    }
}
