//! Sweeps on a cluster: a real single-node Slurm (munged, slurmctld and slurmd, configured in
//! a temporary folder, on free ports, with a MUNGE key and socket of their own) runs the job
//! array that `train --sweep … --emit slurm` prints, and `runs --sweep` ranks what its tasks
//! made; the Kubernetes manifest that `--emit k8s` prints is read as Kubernetes' own Job type.

use crate::common::{assert_one_line_error, skip_or_fail, wait_for, Sandbox};
use flammable::store::{Record, RunStatus};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A free TCP port of the loopback interface (free when asked: the daemons bind it soon
/// after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The path of program `name`, where root finds it (`/usr/sbin` holds the daemons).
fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file());
    found
}

/// A single-node Slurm cluster. Dropped (the test passed or failed), it cancels its jobs and
/// stops its daemons, each by its own process id, and waits for them.
struct Slurm {
    dir: tempfile::TempDir,
    daemons: Vec<(&'static str, Child)>,
}

impl Slurm {
    /// Starts the cluster; `None` (said, or a failure in CI) where Slurm or MUNGE is not
    /// installed, or this user is not root (slurmd runs jobs as their users).
    fn start() -> Option<Slurm> {
        let missing: Vec<&str> = [
            "munged",
            "slurmctld",
            "slurmd",
            "sbatch",
            "sinfo",
            "scancel",
        ]
        .into_iter()
        .filter(|p| program(p).is_none())
        .collect();
        if !missing.is_empty() {
            skip_or_fail(&format!(
                "Slurm and MUNGE are not installed (no {}): apt-get install slurm-wlm munge",
                missing.join(", ")
            ));
            return None;
        }
        // SAFETY: geteuid(2) reads a number and cannot fail.
        #[allow(unsafe_code)]
        if unsafe { libc::geteuid() } != 0 {
            skip_or_fail("a Slurm node's daemon (slurmd) must run as root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let d = d.as_path();
        for sub in ["state", "spool", "log", "munge"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        // A key of this cluster's, readable by its owner alone, as munged requires.
        let key = d.join("munge/munge.key");
        let bytes: Vec<u8> = (0..1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(&key, bytes).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
        let socket = d.join("munge/munge.socket");
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let conf = d.join("slurm.conf");
        let text = format!(
            "ClusterName=fl\n\
             SlurmctldHost=localhost\n\
             SlurmctldPort={ctld}\n\
             SlurmdPort={slurmd}\n\
             SlurmUser=root\n\
             SlurmdUser=root\n\
             AuthType=auth/munge\n\
             CredType=cred/munge\n\
             AuthInfo=socket={socket}\n\
             StateSaveLocation={d}/state\n\
             SlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={d}/slurmctld.pid\n\
             SlurmdPidFile={d}/slurmd.pid\n\
             SlurmctldLogFile={d}/log/slurmctld.log\n\
             SlurmdLogFile={d}/log/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             SchedulerType=sched/backfill\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core\n\
             ReturnToService=2\n\
             MpiDefault=none\n\
             JobCompType=jobcomp/none\n\
             AccountingStorageType=accounting_storage/none\n\
             NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN\n\
             PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n",
            ctld = free_port(),
            slurmd = free_port(),
            socket = socket.display(),
            d = d.display(),
        );
        std::fs::write(&conf, text).unwrap();
        let mut slurm = Slurm {
            dir,
            daemons: Vec::new(),
        };
        let munge =
            |arg: &str, name: &str| format!("--{arg}={}", d.join("munge").join(name).display());
        slurm.spawn(
            "munged",
            Command::new(program("munged").unwrap()).args([
                "--foreground".to_string(),
                "--force".to_string(),
                format!("--socket={}", socket.display()),
                format!("--key-file={}", key.display()),
                munge("log-file", "munged.log"),
                munge("pid-file", "munged.pid"),
                munge("seed-file", "munged.seed"),
            ]),
        );
        wait_for(10, "munged's socket", || socket.exists());
        slurm.spawn(
            "slurmctld",
            Command::new(program("slurmctld").unwrap())
                .args(["-D", "-f"])
                .arg(&conf),
        );
        slurm.spawn(
            "slurmd",
            Command::new(program("slurmd").unwrap())
                .args(["-D", "-N", "localhost", "-f"])
                .arg(&conf),
        );
        let mut state = String::new();
        let ready = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < ready {
            let out = slurm
                .client("sinfo")
                .args(["-h", "-o", "%t"])
                .output()
                .unwrap();
            state = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if state == "idle" {
                return Some(slurm);
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!(
            "the Slurm node is `{state}`, not idle, after 30 s:\n{}",
            slurm.logs()
        );
    }

    fn spawn(&mut self, name: &'static str, command: &mut Command) {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.daemons.push((name, child));
    }

    /// A Slurm client command of this cluster.
    fn client(&self, name: &str) -> Command {
        let mut c = Command::new(program(name).unwrap());
        c.env("SLURM_CONF", self.dir.path().join("slurm.conf"));
        c
    }

    /// The daemons' logs, for a failure's message.
    fn logs(&self) -> String {
        ["slurmctld.log", "slurmd.log"]
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(self.dir.path().join("log").join(f))
                    .unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                format!(
                    "== {f}\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        // Jobs first (a failed test may leave one running), then the node, the controller
        // and MUNGE, newest first.
        let _ = self
            .client("scancel")
            .args(["--full", "--user", "root"])
            .status();
        for (_, daemon) in self.daemons.iter_mut().rev() {
            stop(daemon);
        }
    }
}

/// Stops `daemon`: SIGTERM to its pid, then SIGKILL if it is still there after 10 s; waits
/// for it either way.
fn stop(daemon: &mut Child) {
    let pid = libc::pid_t::try_from(daemon.id()).unwrap();
    // SAFETY: kill(2) with a pid above 0 signals that one process, our child.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if !matches!(daemon.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
}

/// The sweep's runs in the sandbox's store.
fn runs_of(s: &Sandbox, sweep: &str) -> Vec<Record> {
    s.store()
        .records()
        .unwrap()
        .into_iter()
        .filter(|r| r.sweep.as_deref() == Some(sweep))
        .collect()
}

#[test]
fn a_slurm_job_array_fills_one_sweep_and_runs_ranks_it() {
    let Some(slurm) = Slurm::start() else {
        return;
    };
    let s = Sandbox::new();
    let script = s.ok(
        "digits",
        &[
            "train",
            "--epochs",
            "1",
            "--hidden",
            "8",
            "--sweep",
            "lr=1e-3,3e-3",
            "--sweep",
            "batch-size=32,64",
            "--parallel",
            "2",
            "--threads",
            "1",
            "--emit",
            "slurm",
        ],
    );
    assert!(script.contains("#SBATCH --array=0-3%2\n"), "{script}");
    assert!(s.store().ids().unwrap().is_empty(), "emitting runs nothing");
    let file = s.path().join("sweep.sbatch");
    std::fs::write(&file, &script).unwrap();
    let started = std::time::Instant::now();
    let out = slurm
        .client("sbatch")
        .arg("--wait")
        .arg(&file)
        .current_dir(s.path())
        .env_remove("FLAMMABLE_STORE")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    let job = said
        .split_whitespace()
        .last()
        .filter(|j| j.chars().all(|c| c.is_ascii_digit()))
        .unwrap_or_else(|| panic!("sbatch: {said}{}", String::from_utf8_lossy(&out.stderr)));
    let outputs: Vec<String> = (0..4)
        .map(|t| {
            std::fs::read_to_string(s.path().join(format!("digits-sweep-{job}_{t}.out")))
                .unwrap_or_default()
        })
        .collect();
    assert!(
        out.status.success(),
        "the array failed: {}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        outputs.join("\n--\n"),
        slurm.logs()
    );
    eprintln!(
        "the 4-task array ran in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Each task ran its own combination of the one sweep, named by the array's job id.
    let sweep = format!("slurm-{job}");
    for (t, output) in outputs.iter().enumerate() {
        assert!(
            output.contains(&format!("sweep {sweep} of digits, shard {t}/4 (from --shard): 1 of the sweep's 4 combination(s), one at a time")),
            "task {t}: {output}"
        );
    }
    let runs = runs_of(&s, &sweep);
    assert_eq!(runs.len(), 4, "{outputs:?}");
    assert!(runs.iter().all(|r| r.status == RunStatus::Finished));
    let mut trials: Vec<usize> = runs.iter().filter_map(|r| r.sweep_trial).collect();
    trials.sort();
    assert_eq!(trials, [0, 1, 2, 3]);
    let plan = flammable_core::store::sweeps::read(&s.store(), &sweep)
        .unwrap()
        .expect("the first task recorded the plan");
    assert!(plan.shared && plan.argv.len() == 4 && plan.shards == Some(4));
    // One task submitted again into the same sweep (an array of one task, whose
    // SLURM_ARRAY_TASK_COUNT is 1): its combination is done, so it runs nothing and succeeds.
    let again = slurm
        .client("sbatch")
        .args(["--wait", "--array=2"])
        .arg(&file)
        .current_dir(s.path())
        .env_remove("FLAMMABLE_STORE")
        .env("SWEEP_ID", &sweep)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&again.stdout);
    let second = said
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_string();
    let task = std::fs::read_to_string(s.path().join(format!("digits-sweep-{second}_2.out")))
        .unwrap_or_default();
    assert!(again.status.success(), "{said} {task}\n{}", slurm.logs());
    assert!(
        task.contains(&format!(
            "shard 2/4 of sweep {sweep} (from --shard): its 1 combination(s) are done already"
        )),
        "{task}"
    );
    assert_eq!(runs_of(&s, &sweep).len(), 4, "no combination runs twice");
    // `runs --sweep` ranks the four, best first, from any binary.
    let listed = Command::new(crate::common::flammable_bin())
        .args(["runs", "--sweep", &sweep, "--store"])
        .arg(s.path().join("store"))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{table}");
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 4, "{table}");
    assert!(rows.iter().all(|r| r.contains("finished")), "{table}");
    let losses: Vec<f64> = rows
        .iter()
        .map(|l| l.split_whitespace().last().unwrap().parse().unwrap())
        .collect();
    assert!(losses.windows(2).all(|w| w[0] <= w[1]), "{table}");
    for (rank, row) in rows.iter().enumerate() {
        assert!(row.starts_with(&(rank + 1).to_string()), "{table}");
    }
}

#[test]
fn shards_of_one_sweep_must_plan_the_same_runs() {
    let s = Sandbox::new();
    let shard = |i: &str, values: &str| {
        s.run(
            "digits",
            &[
                "train",
                "--epochs",
                "1",
                "--hidden",
                "8",
                "--sweep",
                values,
                "--shard",
                i,
                "--sweep-id",
                "grid",
            ],
        )
    };
    // Three combinations over four shards: shard 3 has none, says so and succeeds.
    let empty = shard("3/4", "lr=1e-3,3e-3,1e-2");
    assert!(empty.status.success());
    let said = String::from_utf8_lossy(&empty.stderr);
    assert!(said.contains("shard 3/4 of sweep grid") && said.contains("nothing to run"));
    // Its plan is the sweep's now; a shard of other values is refused before any run.
    let other = shard("0/4", "lr=1e-3,3e-3,3e-2");
    assert_one_line_error(
        &other,
        2,
        &["sweep grid", "plans other runs", "combination 3"],
    );
    assert!(s.store().ids().unwrap().is_empty());
    let first = shard("1/4", "lr=1e-3,3e-3,1e-2");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let runs = runs_of(&s, "grid");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].sweep_trial, Some(1));

    // The same flags with a --config file that holds other values on this host: refused,
    // as other flags are (each host reads its own copy of the file).
    let config = s.path().join("grid.ron");
    let with_config = |i: &str| {
        s.run(
            "digits",
            &[
                "train",
                "--epochs",
                "1",
                "--config",
                config.to_str().unwrap(),
                "--sweep",
                "lr=1e-3,3e-3",
                "--shard",
                i,
                "--sweep-id",
                "configured",
            ],
        )
    };
    std::fs::write(&config, "(hidden: 8)").unwrap();
    let planned = with_config("0/2");
    assert!(
        planned.status.success(),
        "{}",
        String::from_utf8_lossy(&planned.stderr)
    );
    std::fs::write(&config, "(hidden: 16)").unwrap();
    assert_one_line_error(
        &with_config("1/2"),
        2,
        &["sweep configured", "plans other runs", "--config"],
    );
    assert_eq!(runs_of(&s, "configured").len(), 1);
}

#[test]
fn bad_shards_are_one_line_and_exit_2() {
    let s = Sandbox::new();
    let sweep = ["train", "--epochs", "1", "--sweep", "lr=1e-3,3e-3"];
    for (extra, env, says) in [
        (
            vec!["--shard", "3/2"],
            vec![],
            vec!["--shard", "numbered 0 to 1"],
        ),
        (vec!["--shard", "x"], vec![], vec!["--shard", "write I/N"]),
        (vec!["--shard", "0/2"], vec![], vec!["needs --sweep-id"]),
        (
            vec![],
            vec![
                ("SLURM_ARRAY_TASK_ID", "x"),
                ("SLURM_ARRAY_TASK_COUNT", "2"),
            ],
            vec!["SLURM_ARRAY_TASK_ID is `x`"],
        ),
        (
            vec![],
            vec![
                ("SLURM_ARRAY_TASK_ID", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "2"),
                ("SLURM_ARRAY_JOB_ID", "x1"),
            ],
            vec!["SLURM_ARRAY_JOB_ID is `x1`"],
        ),
        (vec!["--emit", "k8s"], vec![], vec!["--image"]),
        (
            vec!["--emit", "k8s", "--image", "r/d:1"],
            vec![],
            vec!["--program PATH", "inside the image"],
        ),
        (
            vec!["--emit", "k8s", "--image", " ", "--program", "/d"],
            vec![],
            vec!["--image"],
        ),
        (
            vec!["--emit", "k8s", "--image", "r/d:1", "--program", "bin/d"],
            vec![],
            vec!["absolute path inside the image"],
        ),
        (
            vec![
                "--emit",
                "k8s",
                "--image",
                "r/d:1",
                "--program",
                "/d",
                "--claim",
                "Bad Claim!",
            ],
            vec![],
            vec!["not a Kubernetes name"],
        ),
        (
            vec!["--emit", "slurm", "--image", "r/d:1"],
            vec![],
            vec!["--image is for --emit k8s"],
        ),
        (
            vec!["--emit", "k8s", "--image", "r/d:1\nx", "--program", "/d"],
            vec![],
            vec!["not an image reference"],
        ),
        (
            vec!["--emit", "slurm", "--program", ""],
            vec![],
            vec!["--program \"\""],
        ),
        // Half an array: every task would run every combination.
        (
            vec![],
            vec![
                ("SLURM_ARRAY_TASK_COUNT", "2"),
                ("SLURM_ARRAY_JOB_ID", "91"),
            ],
            vec!["SLURM_ARRAY_TASK_ID is not"],
        ),
        // A path written into the script's comments must not start a command of its own.
        (
            vec!["--emit", "slurm", "--store", "/tmp/ev\ntouch /tmp/pwned\n#"],
            vec![],
            vec!["control character"],
        ),
    ] {
        let mut command = s.command("digits");
        command.args(sweep).args(&extra);
        for (k, v) in &env {
            command.env(k, v);
        }
        let out = command.output().unwrap();
        assert_one_line_error(&out, 2, &says);
    }
    assert!(s.store().ids().unwrap().is_empty());
}

#[test]
fn the_kubernetes_manifest_is_an_indexed_job_by_kubernetes_own_schema() {
    use k8s_openapi::api::batch::v1::Job;
    let s = Sandbox::new();
    let manifest = s.ok(
        "digits",
        &[
            "train",
            "--epochs",
            "1",
            "--hidden",
            "8",
            "--sweep",
            "lr=1e-3,3e-3,1e-2",
            "--parallel",
            "2",
            "--threads",
            "2",
            "--emit",
            "k8s",
            "--image",
            "registry.example/digits:1",
            "--claim",
            "shared-runs",
            "--program",
            crate::common::example("digits").to_str().unwrap(),
        ],
    );
    let as_written: serde_json::Value = serde_yaml_ng::from_str(&manifest).unwrap();
    let job: Job =
        serde_yaml_ng::from_str(&manifest).unwrap_or_else(|e| panic!("{e}:\n{manifest}"));
    // Read as Kubernetes' Job and written back, nothing is lost: every field written is one
    // of the schema's, with its type.
    assert_eq!(
        serde_json::to_value(&job).unwrap(),
        as_written,
        "{manifest}"
    );
    assert_eq!(as_written["apiVersion"], "batch/v1");
    assert_eq!(as_written["kind"], "Job");
    let name = job.metadata.name.clone().unwrap();
    assert!(
        name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "{name}"
    );
    let spec = job.spec.unwrap();
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!((spec.completions, spec.parallelism), (Some(3), Some(2)));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let container = &pod.containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("registry.example/digits:1")
    );
    let requests = container
        .resources
        .as_ref()
        .unwrap()
        .requests
        .as_ref()
        .unwrap();
    assert_eq!(requests["cpu"].0, "2");
    let store = std::path::absolute(s.path().join("store")).unwrap();
    let mount = &container.volume_mounts.as_ref().unwrap()[0];
    assert_eq!(Path::new(&mount.mount_path), store);
    let volume = &pod.volumes.unwrap()[0];
    assert_eq!(volume.name, mount.name);
    let claim = volume.persistent_volume_claim.as_ref().unwrap();
    assert_eq!(claim.claim_name, "shared-runs");
    // What pod 1 runs, run here as the pod would (its index, the manifest's variables): the
    // sweep's combination 1, in the sweep the manifest names.
    let command = container.command.as_ref().unwrap();
    let args = container.args.as_ref().unwrap();
    let mut pod_1 = Command::new(&command[0]);
    pod_1
        .args(args)
        .current_dir(s.path())
        .env_remove("FLAMMABLE_STORE");
    pod_1.env("JOB_COMPLETION_INDEX", "1");
    for var in container.env.as_ref().unwrap() {
        pod_1.env(&var.name, var.value.as_deref().unwrap());
    }
    let out = pod_1.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let at = args.iter().position(|a| a == "--sweep-id").unwrap();
    let runs = runs_of(&s, &args[at + 1]);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].sweep_trial, Some(1));
    assert_eq!(runs[0].status, RunStatus::Finished);
}

#[test]
fn shards_agree_whatever_each_hosts_own_flags_and_run_each_combination_once() {
    let s = Sandbox::new();
    let store = std::path::absolute(s.path().join("store")).unwrap();
    let link = s.path().join("mounted-elsewhere");
    std::fs::create_dir_all(&store).unwrap();
    std::os::unix::fs::symlink(&store, &link).unwrap();
    let shard = |shard: &str, host: &[&str]| {
        let mut args = vec![
            "train",
            "--epochs",
            "1",
            "--hidden",
            "8",
            "--sweep",
            "lr=1e-3,3e-3",
            "--shard",
            shard,
            "--sweep-id",
            "grid1",
        ];
        args.extend(host);
        s.run("digits", &args)
    };
    let store_flag = store.to_str().unwrap().to_string();
    let first = shard("0/2", &["--store", &store_flag]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // Another host: the store by another path, its own threads and message.
    let slashed = format!("{store_flag}/");
    let second = shard(
        "1/2",
        &["--store", &slashed, "--threads", "2", "-m", "host-b"],
    );
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{said}");
    assert_eq!(runs_of(&s, "grid1").len(), 2);
    // Shard 0 again, each time as another host would give it: the plan agrees, and its
    // combination, done, is not trained again.
    for host in [
        vec!["--store", "store"],
        vec!["--store", link.to_str().unwrap()],
        vec![],
        vec!["--device", "cpu", "-q"],
    ] {
        let again = shard("0/2", &host);
        let said = String::from_utf8_lossy(&again.stderr);
        assert!(again.status.success(), "{host:?}: {said}");
        if !host.contains(&"-q") {
            assert!(
                said.contains("shard 0/2 of sweep grid1 (from --shard): its 1 combination(s) are done already (1 finished); nothing to run"),
                "{host:?}: {said}"
            );
        }
    }
    let runs = runs_of(&s, "grid1");
    assert_eq!(runs.len(), 2, "each combination once");
    assert!(runs.iter().all(|r| r.status == RunStatus::Finished));
    // The sweep was planned in 2 shards: a shard of 3 would run combinations twice or never.
    let three = shard("0/3", &[]);
    assert_one_line_error(
        &three,
        2,
        &["sweep grid1 runs in 2 shards, not 3", "--shard I/2"],
    );
    // And leaves no lock file of a shard count the sweep never has.
    let sweeps = s.store().root().join("sweeps");
    let left: Vec<String> = std::fs::read_dir(&sweeps)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("-of-3"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_requeued_shard_resumes_its_interrupted_run() {
    use std::os::unix::process::CommandExt;
    let s = Sandbox::new();
    // Single examples for a few epochs: long enough to be caught running, short to resume.
    let args = [
        "train",
        "--epochs",
        "2",
        "--batch-size",
        "1",
        "--hidden",
        "8",
        "--sweep",
        "lr=1e-3,3e-3",
        "--shard",
        "1/2",
        "--sweep-id",
        "requeued",
    ];
    let mut task = s.command("digits");
    task.args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let mut task = crate::common::KillOnDrop(task.spawn().unwrap());
    let mut run = None;
    wait_for(60, "the shard's run to train", || {
        run = runs_of(&s, "requeued")
            .into_iter()
            .find(|r| r.status == RunStatus::Running);
        run.is_some()
    });
    // Slurm's requeue (or a preemption) stops the task with SIGTERM.
    let pid = libc::pid_t::try_from(task.0.id()).unwrap();
    // SAFETY: kill(2) with a pid above 0 signals that one process, our child.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let status = task.0.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    let run = run.unwrap();
    wait_for(30, "the run to stop", || {
        s.store().read(&run.id).unwrap().status == RunStatus::Interrupted
    });
    // The same shard again, with the same variables: it resumes that run, as the same run.
    let again = s.run("digits", &args);
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{said}");
    assert!(
        said.contains("1 of the sweep's 2 combination(s) (1 to resume)")
            && said.contains("resumed"),
        "{said}"
    );
    let runs = runs_of(&s, "requeued");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        (runs[0].id.as_str(), runs[0].status),
        (run.id.as_str(), RunStatus::Finished)
    );
}
