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
    let program = match &e.program {
        Some(p) => p.clone(),
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
    let mut args: Vec<String> = without_flags(&e.argv, &EMIT_VALUED, &[])
        .iter()
        .skip(1)
        .map(|a| text(a))
        .collect::<Result<_>>()?;
    args.extend(["--store".to_string(), text(root.as_os_str())?]);
    // Kubernetes names no job id that all pods see: the manifest names the sweep.
    if e.kind == EmitKind::K8s && !e.id_given {
        args.extend(["--sweep-id".to_string(), plan.id.clone()]);
    }
    let tasks = plan.settings.len();
    let job = ClusterJob {
        experiment: spec.experiment.to_string(),
        program,
        args,
        store: root,
        code_dir,
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
        EmitKind::Slurm => slurm_script(&job, e.id_given),
        EmitKind::K8s => {
            if e.image.is_none() {
                return Err(Error::usage(
                    "--emit k8s needs --image IMAGE: the container image that holds this program",
                ));
            }
            k8s_manifest(&job)
        }
    };
    let mut stdout = std::io::stdout().lock();
    std::io::Write::write_all(&mut stdout, out.as_bytes())
        .and_then(|()| std::io::Write::flush(&mut stdout))
        .map_err(stdout::from_io)?;
    Ok(ExitCode::SUCCESS)
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

/// `s` quoted for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The sbatch script of `job`: a job array of one task per combination, `parallel` at a
/// time. The sweep's id is Slurm's array job id unless `id_given`.
pub(super) fn slurm_script(job: &ClusterJob, id_given: bool) -> String {
    let name = format!("{}-sweep", job.experiment);
    let id = if id_given {
        job.sweep_id.clone()
    } else {
        "slurm-<the job id sbatch prints>".to_string()
    };
    let mut s = String::new();
    s.push_str("#!/bin/sh\n");
    s.push_str(&format!(
        "# A sweep of {}: {} combination(s), one per task of this job array, {} at a time.\n",
        job.experiment, job.tasks, job.parallel
    ));
    s.push_str("# Each task reads its shard from SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT");
    s.push_str(if id_given {
        ".\n"
    } else {
        ",\n# and the sweep's id from SLURM_ARRAY_JOB_ID.\n"
    });
    s.push_str(&format!(
        "# Submit it with `sbatch FILE`; then `flammable runs --sweep {id} --store {}` ranks the runs.\n",
        job.store.display()
    ));
    s.push_str(&format!("#SBATCH --job-name={name}\n"));
    s.push_str(&format!(
        "#SBATCH --array=0-{}%{}\n",
        job.tasks.saturating_sub(1),
        job.parallel
    ));
    s.push_str("#SBATCH --ntasks=1\n");
    match job.threads {
        Some(n) if n > 0 => s.push_str(&format!("#SBATCH --cpus-per-task={n}\n")),
        Some(_) => s.push_str("#SBATCH --exclusive\n"),
        None => {}
    }
    s.push_str(&format!("#SBATCH --output={name}-%A_%a.out\n"));
    s.push_str("set -eu\n");
    if let Some(code) = &job.code_dir {
        s.push_str(&format!(
            "export {}={}\n",
            crate::run::code_dir::CODE_DIR_ENV,
            shell_quote(&code.display().to_string())
        ));
    }
    s.push_str("exec ");
    s.push_str(&shell_quote(&job.program));
    for a in &job.args {
        s.push(' ');
        s.push_str(&shell_quote(a));
    }
    s.push('\n');
    s
}

/// A DNS-1123 label of at most 52 characters (a Job's pods add their index to it) made of
/// `s`: lower case, runs of other characters as `-`.
fn k8s_name(s: &str) -> String {
    let mut name = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.ends_with('-') && !name.is_empty() {
            name.push('-');
        }
    }
    name.truncate(52);
    let name = name.trim_end_matches('-').to_string();
    if name.is_empty() {
        "flammable-sweep".to_string()
    } else {
        name
    }
}

/// `s` as a YAML scalar: a JSON string, which YAML reads as the same string.
fn yaml(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
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
        "# Apply it with `kubectl apply -f FILE`; then `flammable runs --sweep {} --store {store}` ranks the runs.\n",
        job.sweep_id
    ));
    s.push_str("apiVersion: batch/v1\nkind: Job\nmetadata:\n");
    s.push_str(&format!("  name: {}\n", yaml(&name)));
    s.push_str("  labels:\n");
    s.push_str(&format!(
        "    flammable.sweep: {}\n",
        yaml(&k8s_name(&job.sweep_id))
    ));
    s.push_str("spec:\n  completionMode: Indexed\n");
    s.push_str(&format!("  completions: {}\n", job.tasks));
    s.push_str(&format!("  parallelism: {}\n", job.parallel));
    s.push_str("  template:\n    spec:\n      restartPolicy: Never\n      containers:\n");
    s.push_str("        - name: train\n");
    s.push_str(&format!("          image: {}\n", yaml(&job.image)));
    s.push_str(&format!("          command: [{}]\n", yaml(&job.program)));
    s.push_str("          args:\n");
    for a in &job.args {
        s.push_str(&format!("            - {}\n", yaml(a)));
    }
    s.push_str("          env:\n");
    s.push_str(&format!("            - name: {SHARD_COUNT_ENV}\n"));
    s.push_str(&format!(
        "              value: {}\n",
        yaml(&job.tasks.to_string())
    ));
    if let Some(code) = &job.code_dir {
        s.push_str(&format!(
            "            - name: {}\n",
            crate::run::code_dir::CODE_DIR_ENV
        ));
        s.push_str(&format!(
            "              value: {}\n",
            yaml(&code.display().to_string())
        ));
    }
    if let Some(n) = job.threads.filter(|&n| n > 0) {
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
        let s = slurm_script(&job(), false);
        assert!(s.starts_with("#!/bin/sh\n"));
        for line in [
            "#SBATCH --array=0-1%1",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --output=digits_v2-sweep-%A_%a.out",
            "exec '/opt/it'\\''s/digits' 'train' '--sweep' 'lr=1e-3,3e-3' '--store' '/shared/store'",
        ] {
            assert!(s.lines().any(|l| l == line), "{line} in:\n{s}");
        }
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
    fn kubernetes_names_are_dns_labels() {
        assert_eq!(
            k8s_name("digits_v2-sweep-20261205-140543-k3vd"),
            "digits-v2-sweep-20261205-140543-k3vd"
        );
        assert_eq!(k8s_name("__"), "flammable-sweep");
        let long = k8s_name(&"a-".repeat(60));
        assert!(long.len() <= 52 && !long.ends_with('-'), "{long}");
    }
}
