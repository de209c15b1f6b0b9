//! Two hosts on one machine, for the tests of work spread over several machines: two network
//! namespaces joined by a veth pair, each with its own address and (through a UTS namespace)
//! its own host name, and MPICH's `mpiexec` run in the first one, starting its remote proxy
//! in the second through a launcher script that stands in for ssh. Needs root (namespaces),
//! `ip` (iproute2), `unshare` (util-linux) and `mpiexec` (MPICH); everything it makes is
//! removed on drop, also when the test fails.

use crate::common::skip_or_fail;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The two hosts' addresses. Each pair of namespaces is a network of its own, so every
/// fixture can use the same ones.
pub const ADDRESSES: [&str; 2] = ["10.77.0.1", "10.77.0.2"];

/// What every namespace and link of this fixture is named after: `<PREFIX><pid>x<n><a|b>`.
const PREFIX: &str = "flm";

/// Bytes a link moved, as its own counters say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes received.
    pub rx: u64,
    /// Bytes sent.
    pub tx: u64,
}

impl std::ops::Sub for Traffic {
    type Output = Traffic;

    fn sub(self, before: Traffic) -> Traffic {
        Traffic {
            rx: self.rx.saturating_sub(before.rx),
            tx: self.tx.saturating_sub(before.tx),
        }
    }
}

/// Two hosts joined by a veth pair: host `names[i]` is network namespace `names[i]`, whose
/// end of the pair is link `names[i]` with address `ADDRESSES[i]`.
pub struct TwoHosts {
    names: [String; 2],
    /// Holds the launcher script.
    dir: tempfile::TempDir,
}

impl TwoHosts {
    /// Two new hosts; `None` (after [`skip_or_fail`]) where this machine cannot make them.
    pub fn new() -> Option<TwoHosts> {
        if let Some(why) = missing_tools() {
            skip_or_fail(&why);
            return None;
        }
        remove_leftovers();
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        // Links' names have at most 15 characters: flm, up to 7 digits of pid, x, n, a.
        let base = format!("{PREFIX}{}x{n}", std::process::id());
        let names = [format!("{base}a"), format!("{base}b")];
        let dir = tempfile::tempdir().expect("temp dir");
        // From here on, drop removes whatever was made, also when a step below fails.
        let hosts = TwoHosts { names, dir };
        let [a, b] = &hosts.names;
        let made = ip(&["netns", "add", a]).and_then(|()| ip(&["netns", "add", b]));
        if let Err(why) = made {
            skip_or_fail(&format!("cannot create network namespaces: {why}"));
            return None;
        }
        let steps: [&[&str]; 9] = [
            &["link", "add", a, "type", "veth", "peer", "name", b],
            &["link", "set", a, "netns", a],
            &["link", "set", b, "netns", b],
            &[
                "-n",
                a,
                "addr",
                "add",
                &format!("{}/24", ADDRESSES[0]),
                "dev",
                a,
            ],
            &[
                "-n",
                b,
                "addr",
                "add",
                &format!("{}/24", ADDRESSES[1]),
                "dev",
                b,
            ],
            &["-n", a, "link", "set", a, "up"],
            &["-n", b, "link", "set", b, "up"],
            &["-n", a, "link", "set", "lo", "up"],
            &["-n", b, "link", "set", "lo", "up"],
        ];
        for step in steps {
            if let Err(why) = ip(step) {
                // The namespaces exist, so the machine can make them: a failure here is one.
                panic!("cannot set up the two hosts: {why}");
            }
        }
        std::fs::write(hosts.launcher(), hosts.launcher_script()).expect("write the launcher");
        chmod_x(&hosts.launcher());
        Some(hosts)
    }

    /// The hosts' names (also their namespaces' and links' names).
    pub fn names(&self) -> &[String; 2] {
        &self.names
    }

    /// `mpiexec` run as host 0, its ranks spread one per host (rank 0 on host 0), its remote
    /// proxy started through the launcher. UCX is held to TCP (`UCX_TLS=tcp`): it would
    /// otherwise pass the ranks' data through shared memory, which namespaces do not
    /// separate, and nothing would cross the link. Add `-n`, options and the program.
    pub fn mpiexec(&self) -> Command {
        let mut c = self.on_host(0);
        c.arg("mpiexec")
            .args(["-launcher", "ssh", "-launcher-exec"])
            .arg(self.launcher())
            .args(["-hosts", &format!("{}:1,{}:1", ADDRESSES[0], ADDRESSES[1])])
            .args(["-genv", "UCX_TLS", "tcp"]);
        c
    }

    /// A command run on host `i` (in its namespaces, under its host name): add the program
    /// and its arguments.
    pub fn on_host(&self, i: usize) -> Command {
        let name = &self.names[i];
        let mut c = Command::new("ip");
        c.args(["netns", "exec", name, "unshare", "--uts", "sh", "-c"])
            .arg(format!("hostname {name} && exec \"$@\""))
            .arg("sh");
        c
    }

    /// What host 0's end of the link has received and sent so far.
    pub fn traffic(&self) -> Traffic {
        let name = &self.names[0];
        let out = Command::new("ip")
            .args(["-j", "-s", "-n", name, "link", "show", "dev", name])
            .output()
            .expect("ip runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let links: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip's JSON");
        let stats = &links[0]["stats64"];
        let bytes = |way: &str| {
            stats[way]["bytes"]
                .as_u64()
                .unwrap_or_else(|| panic!("no {way} bytes in {links}"))
        };
        Traffic {
            rx: bytes("rx"),
            tx: bytes("tx"),
        }
    }

    /// The script hydra calls instead of ssh: `LAUNCHER [-x …] HOST COMMAND`, which runs
    /// COMMAND (one string, as ssh hands it to a shell) on the host of that address.
    fn launcher(&self) -> PathBuf {
        self.dir.path().join("launch-on-host")
    }

    fn launcher_script(&self) -> String {
        let [a, b] = &self.names;
        let [x, y] = ADDRESSES;
        format!(
            r#"#!/bin/sh
# Stands in for ssh: skips its options, maps the host's address to its namespace.
while [ $# -gt 0 ]; do
  case "$1" in
    -*) shift ;;
    *) break ;;
  esac
done
case "$1" in
  {x}|{a}) host={a} ;;
  {y}|{b}) host={b} ;;
  *) echo "launch-on-host: unknown host $1" >&2; exit 255 ;;
esac
shift
exec ip netns exec "$host" unshare --uts sh -c 'hostname "$1" && eval "$2"' sh "$host" "$*"
"#
        )
    }
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the pair, and with it the other end.
        for name in &self.names {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Runs `command` (from [`TwoHosts::mpiexec`] or [`TwoHosts::on_host`]) to its end, at most
/// `secs`: past that, it is killed with everything it started (its process group: the remote
/// proxy and the ranks too) and the test fails with what it printed so far.
pub fn run_bounded(command: &mut Command, secs: u64) -> Output {
    use std::os::unix::process::CommandExt;
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("the command starts");
    let mut group = Group(child);
    let stdout = reader(group.0.stdout.take());
    let stderr = reader(group.0.stderr.take());
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(status) = group.0.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The group is killed before the output is read: a rank left behind would hold the pipes.
    drop(group);
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let Some(status) = status else {
        panic!(
            "{command:?} did not end within {secs} s:\n{}\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    };
    Output {
        status,
        stdout,
        stderr,
    }
}

/// A process group killed when dropped.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.wait();
    }
}

fn reader(from: Option<impl std::io::Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut from) = from {
            let _ = from.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// Runs `ip args`; its error output when it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Why the hosts cannot be made here, if a tool is missing.
fn missing_tools() -> Option<String> {
    let runs = |program: &str, arg: &str| {
        Command::new(program)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !runs("ip", "-V") {
        return Some("no `ip` (iproute2) to make network namespaces".into());
    }
    if !runs("unshare", "--version") {
        return Some("no `unshare` (util-linux) to give each host its name".into());
    }
    if !runs("mpiexec", "--version") {
        return Some("no `mpiexec` (MPICH: apt-get install mpich libmpich-dev)".into());
    }
    None
}

/// Removes the namespaces of test processes that ended without dropping their hosts (killed):
/// their names carry the pid, and a pid that is no longer running made no namespace now
/// in use.
fn remove_leftovers() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let pid = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('x').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
}

fn chmod_x(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}
