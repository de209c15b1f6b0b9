//! Helpers: the example binaries, temporary stores, a tiny in-process task.

use flammable::store::Store;
use flammable::store::{Record, RunKind};
use flammable::{Env, Run};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Set (to anything) by a caller that has just built the examples and the `flammable` binary
/// as [`example`] would (CI does): the tests then do not ask cargo again, whose lock another
/// build beside the tests (CI's docs) would make every test wait for.
pub const BUILT_ENV: &str = "FLAMMABLE_TEST_BINARIES_BUILT";

/// The path of example `name`, beside this test binary. The examples and the `flammable`
/// binary are brought up to date once per test process (`cargo test` builds neither), unless
/// [`BUILT_ENV`] says they are.
pub fn example(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        if std::env::var_os(BUILT_ENV).is_some_and(|v| !v.is_empty()) {
            return;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "flammable-examples",
                "--features",
                "flammable-examples/mpi",
                "--examples",
                "-p",
                "flammable-cli",
                "--features",
                "flammable-cli/s3",
                "--bins",
            ])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cannot build the examples");
    });
    let exe = std::env::current_exe().expect("the test binary has a path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    profile_dir.join("examples").join(name)
}

/// A temporary folder holding a Git-less project folder and its store.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    /// A folder holding an empty Git repository: the code folder (`FLAMMABLE_CODE_DIR`) of
    /// the task binaries it runs, which snapshot it.
    pub fn new() -> Self {
        let s = Sandbox::empty();
        git(s.path(), &["init", "-q", "-b", "main"]);
        s
    }

    /// A folder in no Git repository.
    pub fn empty() -> Self {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn store(&self) -> Store {
        Store::at(self.path().join("store"))
    }

    /// A command running example `name` in the sandbox, its store in the sandbox, its code
    /// the sandbox's (not the examples' crate folder, which the binary knows).
    pub fn command(&self, name: &str) -> Command {
        let mut c = Command::new(example(name));
        c.current_dir(self.path())
            .env("FLAMMABLE_STORE", self.path().join("store"))
            .env("FLAMMABLE_CODE_DIR", self.path())
            .env_remove("RAYON_NUM_THREADS");
        c
    }

    /// Runs example `name` with `args` in the sandbox, its store in the sandbox.
    pub fn run(&self, name: &str, args: &[&str]) -> Output {
        self.command(name)
            .args(args)
            .output()
            .expect("the example starts")
    }

    /// A sandbox that is a Git repository with one commit (of `model.rs`).
    pub fn repo() -> Self {
        let s = Sandbox::new();
        std::fs::write(s.path().join("model.rs"), "// version 1\n").unwrap();
        git(s.path(), &["add", "-A"]);
        git(s.path(), &["commit", "-qm", "init"]);
        s
    }

    /// Like `run`, asserting success; returns stdout.
    pub fn ok(&self, name: &str, args: &[&str]) -> String {
        let out = self.run(name, args);
        assert!(
            out.status.success(),
            "{name} {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// An environment recording into a new run of the sandbox's store: a train run, or with
    /// a `parent`, a test run of it (which loads the parent's checkpoints).
    pub fn env(&self, seed: u64, parent: Option<&str>) -> Env {
        let kind = if parent.is_some() {
            RunKind::Test
        } else {
            RunKind::Train
        };
        let record = Record {
            parent: parent.map(str::to_string),
            ..Record::new("in-process", kind, seed)
        };
        let run = Run::start(&self.store(), record).expect("run starts");
        Env::new(flammable::candle_core::Device::Cpu, seed).with_run(run)
    }
}

/// The value of `metric` in a results table printed by the CLI.
pub fn table_value(stdout: &str, metric: &str) -> Option<f64> {
    stdout.lines().find_map(|l| {
        let mut parts = l.split_whitespace();
        (parts.next() == Some(metric)).then(|| parts.next()?.parse().ok())?
    })
}

/// A `git` command in `dir`, isolated from the user's and the system's configuration, with
/// a fixed identity: the one way the tests run git.
pub fn git_cmd(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_EDITOR", "true");
    c
}

/// Runs git in `dir` and returns its stdout, trimmed; `ok = false` tolerates failure
/// (conflicting merges).
pub fn git_any(dir: &Path, args: &[&str], ok: bool) -> String {
    let out = git_cmd(dir).args(args).output().expect("git runs");
    if ok {
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs git in `dir`, asserting success; returns its stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    git_any(dir, args, true)
}

/// The `flammable` binary, beside the examples.
pub fn flammable_bin() -> PathBuf {
    let examples = example("digits");
    examples
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/examples")
        .join("flammable")
}

/// Asserts that `out` failed with exit code `code` and one line on stderr containing each
/// of `says`, and no backtrace.
pub fn assert_one_line_error(out: &Output, code: i32, says: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    // clap adds a hint line to its errors.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("For more information"))
        .collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    for s in says {
        assert!(stderr.contains(s), "`{s}` not in: {stderr}");
    }
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

/// Example `name` started in `dir`, its code `code`, its store the one it finds from its code
/// (`FLAMMABLE_STORE` unset), as a user's binary finds it.
pub fn example_in(name: &str, dir: &Path, code: &Path) -> Command {
    let mut c = Command::new(example(name));
    c.current_dir(dir)
        .env("FLAMMABLE_CODE_DIR", code)
        .env_remove("FLAMMABLE_STORE");
    c
}

/// A test that cannot run here says why and passes, unless `FLAMMABLE_REQUIRE_ALL_TESTS` is
/// set (CI sets it): then it fails, so that CI never passes a test it did not run.
pub fn skip_or_fail(why: &str) {
    assert!(
        std::env::var_os("FLAMMABLE_REQUIRE_ALL_TESTS").is_none(),
        "cannot run: {why} (FLAMMABLE_REQUIRE_ALL_TESTS is set)"
    );
    eprintln!("skipped: {why}");
}

/// What `script` prints as JSON, run by the tests' Python with `args`; `None` (after
/// [`skip_or_fail`]) where `import` fails there, `what` naming the package to install.
pub fn python_json(
    import: &str,
    what: &str,
    script: &str,
    args: &[&str],
) -> Option<serde_json::Value> {
    let python = std::env::var("FLAMMABLE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let has = Command::new(&python)
        .args(["-c", import])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        skip_or_fail(&format!("{what} is not installed for python3"));
        return None;
    }
    let out = Command::new(&python)
        .args(["-c", script])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// A child process killed when dropped: a test that fails midway leaves no long training
/// running behind it.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to `secs` for `check` to hold, looking every 50 ms; panics naming `what`.
pub fn wait_for(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The lines a child process wrote so far (see [`lines_of`]).
pub type Lines = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// The lines `from` writes, gathered by a thread as they come.
pub fn lines_of(from: impl std::io::Read + Send + 'static) -> Lines {
    let lines = Lines::default();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(from)) {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// Waits up to `secs` for a line containing `text` among `lines`.
pub fn wait_for_line(lines: &Lines, secs: u64, text: &str) {
    wait_for(secs, text, || {
        lines.lock().unwrap().iter().any(|l| l.contains(text))
    });
}

/// A real S3 server on a loopback port: moto's (PyPI `moto[server]`), started with one bucket,
/// `runs`, and stopped when dropped. `None` (after [`skip_or_fail`]) where moto is not
/// installed for `python3` (CI installs it in the virtualenv it puts first on PATH).
pub struct S3Server {
    /// Killed (the server stops) when the test is done with it.
    _child: KillOnDrop,
    pub endpoint: String,
}

impl S3Server {
    pub fn start() -> Option<S3Server> {
        let python = std::env::var("FLAMMABLE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let has_moto = Command::new(&python)
            .args(["-c", "import moto.server, boto3"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has_moto {
            skip_or_fail("moto (pip install 'moto[server]') is not installed for python3");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        // The server runs until the test closes its stdin (or kills it).
        let script = r#"
import sys, boto3
from moto.server import ThreadedMotoServer
port = int(sys.argv[1])
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="test",
             aws_secret_access_key="test", region_name="us-east-1").create_bucket(Bucket="runs")
print("ready", flush=True)
sys.stdin.read()
server.stop()
"#;
        let mut child = Command::new(&python)
            .args(["-c", script, &port.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python starts");
        let lines = lines_of(child.stdout.take().expect("stdout"));
        let server = S3Server {
            _child: KillOnDrop(child),
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        wait_for_line(&lines, 60, "ready");
        Some(server)
    }

    /// Each object under `prefix` with the SHA-256 checksum S3 holds for it, one
    /// `key checksum` line each, sorted; `None` for an object stored without one.
    pub fn checksums(&self, prefix: &str) -> String {
        let script = r#"
import sys, json, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="test",
                  aws_secret_access_key="test", region_name="us-east-1")
pages = s3.get_paginator("list_objects_v2").paginate(Bucket="runs", Prefix=sys.argv[2])
keys = sorted(o["Key"] for page in pages for o in page.get("Contents", []))
print(json.dumps([[k, s3.head_object(Bucket="runs", Key=k, ChecksumMode="ENABLED").get("ChecksumSHA256")] for k in keys]))
"#;
        let objects = python_json("import boto3", "boto3", script, &[&self.endpoint, prefix])
            .expect("boto3 comes with moto");
        let objects = objects.as_array().cloned().unwrap_or_default();
        objects
            .iter()
            .map(|o| {
                format!(
                    "{} {}\n",
                    o[0].as_str().unwrap_or(""),
                    o[1].as_str().unwrap_or("None")
                )
            })
            .collect()
    }

    /// `cmd` pointed at this server with test credentials, and no AWS settings of the user's.
    pub fn env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_REQUEST_CHECKSUM_CALCULATION")
            .env_remove("AWS_CHECKSUM_ALGORITHM")
    }
}
