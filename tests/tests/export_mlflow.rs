//! `export mlflow`: real runs exported to a real MLflow tracking server (`mlflow server` from
//! PyPI, on SQLite, on a loopback port) and read back through MLflow's own Python client.

use crate::common::{assert_one_line_error, python_json, skip_or_fail, wait_for, Sandbox};
use crate::export::{flammable, ok, points, train_one_epoch};
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `mlflow server` on a loopback port, its processes (uvicorn, its job runner) killed as a
/// group when dropped.
struct MlflowServer {
    child: Child,
    uri: String,
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) with a negative pid signals the process group the server was
            // started as the leader of (process_group(0) below): its own processes only.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

impl MlflowServer {
    /// A server keeping its runs and artifacts in `dir`; `None` (after [`skip_or_fail`])
    /// where MLflow is not installed for the tests' Python.
    fn start(dir: &Path) -> Option<MlflowServer> {
        let python = std::env::var("FLAMMABLE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let has = Command::new(&python)
            .args(["-c", "import mlflow.server"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has {
            skip_or_fail("mlflow (pip install mlflow) is not installed for python3");
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = Command::new(&python)
            .args([
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--workers",
                "1",
            ])
            .args(["--port", &port.to_string()])
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
            .arg("--artifacts-destination")
            .arg(dir.join("artifacts"))
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        let server = MlflowServer {
            child,
            uri: format!("http://127.0.0.1:{port}"),
        };
        wait_for(180, "mlflow server to answer", || {
            http_get(port, "/health").is_some_and(|a| a.starts_with("HTTP/1.1 200"))
        });
        Some(server)
    }

    /// Every run of every experiment, as MLflow's client reads them: `[{"experiment",
    /// "info", "params", "tags", "history": {key: [[step, timestamp, value]…]},
    /// "artifacts": [path…], "code_diff"}]`.
    fn read(&self) -> Option<Value> {
        let script = r#"
import json, math, sys
from mlflow.tracking import MlflowClient
client = MlflowClient(sys.argv[1])
out = []
for e in client.search_experiments():
    for r in client.search_runs([e.experiment_id], max_results=1000):
        i = r.info
        got = {"experiment": e.name, "run_id": i.run_id, "run_name": i.run_name,
               "status": i.status, "start_time": i.start_time, "end_time": i.end_time,
               "params": r.data.params, "tags": r.data.tags, "history": {}}
        for key in r.data.metrics:
            got["history"][key] = [[m.step, m.timestamp, m.value]
                                   for m in client.get_metric_history(i.run_id, key)]
        got["artifacts"] = [a.path for a in client.list_artifacts(i.run_id, "flammable")]
        if "flammable/code.diff" in got["artifacts"]:
            with open(client.download_artifacts(i.run_id, "flammable/code.diff")) as f:
                got["code_diff"] = f.read()
        out.append(got)
print(json.dumps(out))
"#;
        python_json(
            "import mlflow",
            "mlflow (pip install mlflow)",
            script,
            &[&self.uri],
        )
    }
}

/// The answer to `GET path` on a loopback port, if any.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// The read-back run of Flammable run `id`.
fn run_of<'a>(read: &'a Value, id: &str) -> &'a Value {
    read.as_array()
        .unwrap()
        .iter()
        .find(|r| r["tags"]["flammable.run"] == id)
        .unwrap_or_else(|| panic!("no MLflow run of {id} in {read}"))
}

/// Asserts that MLflow holds every point of run `id` once, at its step and time (in
/// milliseconds), with its value bit for bit.
fn assert_history(dir: &Path, id: &str, run: &Value) {
    let points = points(dir, id);
    assert!(!points.is_empty());
    for (name, step, value, time) in &points {
        let history = run["history"][name.as_str()]
            .as_array()
            .unwrap_or_else(|| panic!("no metric {name} in {run}"));
        let at = history
            .iter()
            .filter(|p| {
                p[0].as_u64() == Some(*step)
                    && p[1].as_i64() == Some((time * 1000.0).round() as i64)
            })
            .count();
        assert_eq!(at, 1, "{name} at step {step}: {history:?}");
        assert!(
            history
                .iter()
                .any(|p| p[0].as_u64() == Some(*step) && p[2].as_f64() == Some(*value)),
            "{name} at step {step} = {value}"
        );
    }
    let series: usize = points
        .iter()
        .map(|p| p.0.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .iter()
        .map(|name| run["history"][name.as_str()].as_array().unwrap().len())
        .sum();
    assert_eq!(series, points.len(), "no point twice, none invented");
}

#[test]
fn runs_exported_to_a_real_mlflow_server_read_back_with_its_client() {
    let s = Sandbox::repo();
    // Outside the code folder, which every run snapshots.
    let server_dir = tempfile::tempdir().unwrap();
    let Some(server) = MlflowServer::start(server_dir.path()) else {
        return;
    };
    let train = |args: &[&str]| train_one_epoch(&s, args);
    let a = train(&["--seed", "1", "--lr", "0.05", "-m", "baseline"]);
    std::fs::write(s.path().join("model.rs"), "// version 1\n// wider layer\n").unwrap();
    let b = train(&["--seed", "2", "--lr", "0.2", "-m", "wider"]);
    s.ok("digits", &["test", "-q", &b]);
    let t = s.store().ids().unwrap().last().unwrap().clone();
    let edited = flammable(
        s.path(),
        &["edit", &b, "--tag", "best", "--note", "lr too high"],
    );
    assert!(edited.status.success());

    // The test first, then every run: the test is nested under its run once that is there.
    let out = flammable(s.path(), &["export", "mlflow", &server.uri, &t]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("exported 1 run (1 new;"), "{said}");
    let out = flammable(s.path(), &["export", "mlflow", &server.uri]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("exported 3 runs (2 new, 1 updated;"),
        "{said}"
    );
    // Again: every run is there whole, nothing is written twice.
    let out = flammable(s.path(), &["export", "mlflow", &server.uri]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("exported 3 runs (0 new, 3 there already; 0 points)"),
        "{said}"
    );

    // A run trained while exported with --follow: its points as they come, then its end.
    let mut child = s
        .command("digits")
        .args(["train", "-q", "--epochs", "6", "--seed", "5"])
        .spawn()
        .unwrap();
    wait_for(120, "the run to start", || {
        s.store().ids().is_ok_and(|ids| ids.len() == 4)
    });
    let live = s.store().ids().unwrap()[3].clone();
    let out = flammable(
        s.path(),
        &["export", "mlflow", &server.uri, &live, "--follow"],
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("following 1 running run"), "{said}");
    assert!(child.wait().unwrap().success());

    let Some(read) = server.read() else {
        return;
    };
    assert_eq!(
        read.as_array().unwrap().len(),
        4,
        "one MLflow run per run: {read}"
    );
    for id in [&a, &b, &t, &live] {
        let run = run_of(&read, id);
        let record = s.store().read(id).unwrap();
        assert_eq!(run["experiment"], "digits");
        assert_eq!(run["run_name"], id.as_str());
        assert_eq!(run["status"], "FINISHED", "{run}");
        let ms = |t: &str| {
            (flammable_core::store::progress::parse_time(t).unwrap() * 1000.0).round() as i64
        };
        assert_eq!(run["start_time"], ms(&record.started));
        // The record's end is in whole seconds: the last point's time where that is later.
        let last_point = flammable_core::store::metrics::read_metrics(&s.store().metrics_path(id))
            .unwrap_or_default()
            .iter()
            .map(|p| (p.time * 1000.0).round() as i64)
            .max()
            .unwrap_or(i64::MIN);
        // And no earlier than its tests' results, stamped with the test's end.
        let tested = record.tests.last().map_or(i64::MIN, |t| {
            ms(s.store().read(&t.run).unwrap().ended.as_deref().unwrap())
        });
        assert_eq!(
            run["end_time"],
            ms(record.ended.as_deref().unwrap())
                .max(last_point)
                .max(tested)
        );
        assert_eq!(
            run["tags"]["mlflow.source.git.commit"],
            record.snapshot.as_ref().unwrap().parent.as_deref().unwrap(),
            "{run}"
        );
        assert_eq!(run["tags"]["flammable.seed"], record.seed.to_string());
        assert!(run["artifacts"]
            .as_array()
            .unwrap()
            .contains(&Value::from("flammable/record.json")));
        if record.kind.to_string() == "train" {
            assert_history(s.path(), id, run);
        }
    }
    assert_eq!(run_of(&read, &a)["params"]["lr"], "0.05");
    assert_eq!(run_of(&read, &b)["params"]["lr"], "0.2");
    assert_eq!(run_of(&read, &a)["tags"]["mlflow.note.content"], "baseline");
    assert_eq!(run_of(&read, &a)["tags"]["flammable.tags"], "");
    let b_tags = &run_of(&read, &b)["tags"];
    assert_eq!(b_tags["mlflow.note.content"], "wider\n\nlr too high");
    assert_eq!(b_tags["flammable.tags"], "best");
    // The test nested under the run it tested; its results on that run too.
    let b_run = run_of(&read, &b);
    assert_eq!(
        run_of(&read, &t)["tags"]["mlflow.parentRunId"],
        b_run["run_id"]
    );
    let accuracy = s.store().read(&t).unwrap().metrics["accuracy"];
    assert_eq!(run_of(&read, &t)["history"]["accuracy"][0][2], accuracy);
    assert_eq!(b_run["history"]["test/accuracy"][0][2], accuracy);
    // The code as it ran, against its commit.
    let diff = b_run["code_diff"].as_str().unwrap();
    assert!(
        diff.contains("+// wider layer") && diff.contains("model.rs"),
        "{diff}"
    );
    assert!(run_of(&read, &a).get("code_diff").is_none());

    // Mistakes get one line: an address that is not a server's, a server that is not there.
    let out = flammable(s.path(), &["export", "mlflow", "ftp://127.0.0.1/x"]);
    assert_one_line_error(&out, 2, &["http://"]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = flammable(
        s.path(),
        &["export", "mlflow", &format!("http://127.0.0.1:{closed}")],
    );
    assert_one_line_error(&out, 1, &["cannot reach the MLflow server"]);
    ok(s.path(), &["runs"]);
}

/// A server that answers every request 401 and keeps what it was sent.
fn refusing_server() -> (u16, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
            let body = r#"{"error_code": "UNAUTHENTICATED", "message": "no"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, rx)
}

#[test]
fn mlflows_credentials_are_sent_and_a_refusal_says_which_to_set() {
    let s = Sandbox::repo();
    s.ok("digits", &["train", "-q", "--epochs", "1"]);
    let (port, sent) = refusing_server();
    let uri = format!("http://127.0.0.1:{port}");
    let export = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(crate::common::flammable_bin());
        cmd.args(["export", "mlflow", &uri])
            .current_dir(s.path())
            .env("FLAMMABLE_STORE", s.path().join("store"))
            .env_remove("MLFLOW_TRACKING_TOKEN")
            .env_remove("MLFLOW_TRACKING_USERNAME")
            .env_remove("MLFLOW_TRACKING_PASSWORD");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = export(&[("MLFLOW_TRACKING_TOKEN", "s3cret")]);
    assert_one_line_error(
        &out,
        1,
        &["refused the credentials", "MLFLOW_TRACKING_TOKEN"],
    );
    let head = sent.recv().unwrap().to_ascii_lowercase();
    assert!(head.contains("authorization: bearer s3cret"), "{head}");
    let out = export(&[
        ("MLFLOW_TRACKING_USERNAME", "ann"),
        ("MLFLOW_TRACKING_PASSWORD", "pw"),
    ]);
    assert_one_line_error(&out, 1, &["refused the credentials"]);
    // base64("ann:pw")
    let head = sent.recv().unwrap().to_ascii_lowercase();
    assert!(head.contains("authorization: basic yw5uonb3"), "{head}");
    // Without any: asked for, with the server's own words.
    let out = export(&[]);
    assert_one_line_error(&out, 1, &["asks for credentials (HTTP 401: no)"]);
    // A token no header can carry is the user's to mend, not the network's.
    let out = export(&[("MLFLOW_TRACKING_TOKEN", "a\nb")]);
    assert_one_line_error(&out, 2, &["MLFLOW_TRACKING_TOKEN", "line break"]);
}
