//! The inference server as a user runs it — `digits serve` as a subprocess on a free loopback
//! port, serving real train runs of the digits example — driven by real HTTP clients on
//! threads: predictions on the real test set, batching, bad input, overload, hot swaps, the
//! token, and the serve run it records.

use crate::common::{assert_one_line_error, table_value, wait_for, KillOnDrop, Sandbox};
use crate::http::{request, Answer};
use flammable::store::{Record, RunKind, RunStatus};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

/// Two train runs of digits (different widths) and the accuracy `digits test` measures for
/// the first: made once, served by every test.
pub(crate) struct Fixture {
    sandbox: Sandbox,
    /// 3 epochs, hidden 128.
    pub(crate) a: String,
    /// 2 epochs, hidden 32.
    b: String,
    /// `digits test A`'s accuracy.
    accuracy: f64,
}

pub(crate) fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let s = Sandbox::repo();
        s.ok(
            "digits",
            &["train", "-q", "--epochs", "3", "--seed", "1", "-m", "A"],
        );
        s.ok(
            "digits",
            &[
                "train", "-q", "--epochs", "2", "--seed", "2", "--hidden", "32", "-m", "B",
            ],
        );
        let find = |m: &str| {
            s.store()
                .records()
                .unwrap()
                .into_iter()
                .find(|r| r.message.as_deref() == Some(m))
                .unwrap()
                .id
        };
        let (a, b) = (find("A"), find("B"));
        s.ok("digits", &["test", "-q", &a]);
        let accuracy = s
            .store()
            .records()
            .unwrap()
            .into_iter()
            .find(|r| r.kind == RunKind::Test && r.parent.as_deref() == Some(a.as_str()))
            .unwrap()
            .metrics["accuracy"];
        Fixture {
            sandbox: s,
            a,
            b,
            accuracy,
        }
    })
}

/// A running `digits serve`.
pub(crate) struct Server {
    /// `127.0.0.1:PORT`.
    pub(crate) addr: String,
    /// The address it printed.
    url: String,
    stdout: BufReader<ChildStdout>,
    stderr: std::path::PathBuf,
    child: KillOnDrop,
}

impl Server {
    /// Starts `digits serve --port 0 ARGS` and reads the address it prints.
    fn start(args: &[&str]) -> Server {
        Server::launch(
            fixture().sandbox.command("digits"),
            &fixture().sandbox,
            args,
        )
    }

    /// Starts `COMMAND serve --port 0 ARGS` in `sandbox` and reads the address it prints.
    fn launch(mut command: Command, sandbox: &Sandbox, args: &[&str]) -> Server {
        let stderr = sandbox.path().join(format!(
            "serve-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut child = command
            .args(["serve", "--port", "0"])
            .args(args)
            .env_remove("FLAMMABLE_SERVE_TOKEN")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let url = line.trim().to_string();
        let port = url
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .and_then(|host| host.rsplit_once(':'))
            .map(|(_, port)| port.to_string())
            .unwrap_or_else(|| {
                panic!(
                    "no address printed: {line:?}; stderr: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                )
            });
        Server {
            addr: format!("127.0.0.1:{port}"),
            url,
            stdout,
            stderr,
            child: KillOnDrop(child),
        }
    }

    /// Started, and ready (its warm-up batch done).
    pub(crate) fn ready(args: &[&str]) -> Server {
        let server = Server::start(args);
        wait_for(60, "the server to be ready", || {
            server.get("/ready").status == 200
        });
        server
    }

    pub(crate) fn get(&self, path: &str) -> Answer {
        request("GET", &self.addr, path, &[], b"").unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub(crate) fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        request("POST", &self.addr, path, headers, body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// A JSON sample of 64 pixel values 0..16.
    pub(crate) fn predict(&self, pixels: &[f32]) -> Answer {
        let body = serde_json::to_vec(pixels).unwrap();
        self.post("/predict", &[("Content-Type", "application/json")], &body)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Ctrl-C; waits for the exit, returns it and the rest of stdout.
    fn stop(self) -> (ExitStatus, String) {
        self.stop_within(30)
    }

    /// Sends `signal` (`INT`, `TERM`, `HUP`) to the server.
    fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits up to `secs` for the server to exit.
    fn wait_exit(&mut self, secs: u64) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop within {secs} s; its log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ctrl-C, and up to `secs` for the exit; returns it and the rest of stdout.
    fn stop_within(mut self, secs: u64) -> (ExitStatus, String) {
        self.signal("INT");
        let status = self.wait_exit(secs);
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        (status, rest)
    }
}

/// A connection that sends what a test says, byte by byte if need be, and may stall.
fn raw(addr: &str, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(bytes).unwrap();
    stream
}

/// A request head that never ends.
fn stalled_head(addr: &str) -> TcpStream {
    raw(addr, b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")
}

/// A request whose body stops 97 bytes short of its Content-Length.
fn stalled_body(addr: &str) -> TcpStream {
    let head = format!("POST /predict HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100\r\n\r\n[1,");
    raw(addr, head.as_bytes())
}

/// What the server sent on `stream` before closing it or within `secs`: the status line's
/// code (0 when it closed without answering).
fn status_of(stream: &mut TcpStream, secs: u64) -> u16 {
    stream
        .set_read_timeout(Some(Duration::from_secs(secs)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("no answer within {secs} s: {e}"),
        }
    }
    String::from_utf8_lossy(&answer)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A train run of the slow task (`tests/src/bin/slow_task.rs`): its forward passes outside
/// training sleep 1 s, its reader as long as the body says.
struct SlowFixture {
    sandbox: Sandbox,
    run: String,
}

fn slow_fixture() -> &'static SlowFixture {
    static FIXTURE: OnceLock<SlowFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let sandbox = Sandbox::repo();
        let out = slow_command(&sandbox)
            .args(["train", "-q", "--forward-ms", "1000"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = sandbox.store().records().unwrap()[0].id.clone();
        SlowFixture { sandbox, run }
    })
}

fn slow_command(sandbox: &Sandbox) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_slow_task"));
    c.current_dir(sandbox.path())
        .env("FLAMMABLE_STORE", sandbox.path().join("store"))
        .env("FLAMMABLE_CODE_DIR", sandbox.path());
    c
}

/// `slow_task serve RUN ARGS`.
fn slow_server(args: &[&str]) -> Server {
    let f = slow_fixture();
    let mut all = vec![f.run.as_str()];
    all.extend_from_slice(args);
    Server::launch(slow_command(&f.sandbox), &f.sandbox, &all)
}

/// The digits test set: each sample as 64 pixel values 0..16, and its label.
pub(crate) fn test_set() -> Vec<(Vec<f32>, u32)> {
    let (_, test) = flammable_examples::load_split().unwrap();
    let x = test.inputs().to_vec2::<f32>().unwrap();
    let y = test.targets().to_vec1::<u32>().unwrap();
    x.into_iter()
        .map(|row| row.iter().map(|v| v * 16.0).collect())
        .zip(y)
        .collect()
}

/// Batches counted in `/metrics` for `run`: (all, those of one request).
fn batch_counts(metrics: &str, run: &str) -> (u64, u64) {
    let value = |prefix: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (
        value(&format!("flammable_batch_size_count{{run=\"{run}\"}}")),
        value(&format!(
            "flammable_batch_size_bucket{{le=\"1.0\",run=\"{run}\"}}"
        )),
    )
}

#[test]
fn serves_the_test_set_as_test_measures_it_and_batches_concurrent_requests() {
    let f = fixture();
    let server = Server::ready(&[&f.a, "--max-batch-size", "16"]);
    assert_eq!(server.url, format!("http://{}/", server.addr));
    let samples = Arc::new(test_set());
    // 32 clients at once, each its share of the 360 test images.
    let clients: Vec<_> = (0..32)
        .map(|c| {
            let samples = samples.clone();
            let addr = server.addr.clone();
            std::thread::spawn(move || {
                let mut hits = 0;
                for (pixels, label) in samples.iter().skip(c).step_by(32) {
                    let body = serde_json::to_vec(pixels).unwrap();
                    let a = request("POST", &addr, "/predict", &[], &body).unwrap();
                    assert_eq!(a.status, 200, "{}", a.text());
                    let class = a.json()["class"].as_u64().unwrap();
                    hits += usize::from(class == u64::from(*label));
                }
                hits
            })
        })
        .collect();
    let hits: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    let accuracy = hits as f64 / samples.len() as f64;
    // The same model on the same images: the server agrees with `test` to the image (one
    // image of 360 moves the accuracy by 0.003; `test` keeps it as an f32).
    assert!(
        (accuracy - f.accuracy).abs() < 1e-6,
        "served {accuracy}, test measured {}",
        f.accuracy
    );
    assert!(accuracy > 0.8, "{accuracy}");
    // A PNG image and a CSV row, the task's own request formats.
    let seven = std::fs::read(flammable_examples::data_path().with_file_name("seven.png")).unwrap();
    let a = server.post("/predict", &[("Content-Type", "image/png")], &seven);
    assert_eq!(a.json()["class"], 7, "{}", a.text());
    let csv = std::fs::read(flammable_examples::data_path().with_file_name("seven.csv")).unwrap();
    let a = server.post("/predict", &[("Content-Type", "text/csv")], &csv);
    assert_eq!(a.json()["class"], 7, "{}", a.text());
    let metrics = server.get("/metrics").text();
    let (batches, _) = batch_counts(&metrics, &f.a);
    assert!(batches > 0, "{metrics}");
    // Each request computed once: on the thread that read it (the digits task is Send and Sync,
    // and other clients were connected — how many depends on how quickly this build computes,
    // see `serve::inline`) or through the queue.
    let computed_here = inline(&metrics, &f.a);
    assert!(computed_here <= 362, "{metrics}");
    assert!(
        metrics.contains(&format!(
            "flammable_batch_size_sum{{run=\"{}\"}} 362.0",
            f.a
        )),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "flammable_requests_total{{run=\"{}\",status=\"200\"}} 362",
        f.a
    )));
    let info = server.get("/info").json();
    assert_eq!(info["model"]["run"], f.a.as_str());
    assert_eq!(info["model"]["sample_shape"], serde_json::json!([64]));
    assert_eq!(info["model"]["hyperparameters"]["hidden"], "128");
    assert_eq!(info["batching"]["max_batch_size"], 16);
    assert_eq!(info["batching"]["inline"], "auto");
    assert_eq!(info["batching"]["inline_possible"], true);
    assert!(info["model"]["commit"]
        .as_str()
        .is_some_and(|c| c.len() == 40));
}

#[test]
fn requests_that_arrive_together_are_computed_together() {
    let f = fixture();
    // A batch waits up to 2 s for company from its first request's arrival: 16 clients let
    // go at once all arrive within it.
    let server = Server::ready(&[&f.a, "--max-batch-size", "16", "--max-wait-ms", "2000"]);
    let body = serde_json::to_vec(&test_set().swap_remove(0).0).unwrap();
    let start = Arc::new(Barrier::new(16));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let (addr, body, start) = (server.addr.clone(), body.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                request("POST", &addr, "/predict", &[], &body)
                    .unwrap()
                    .status
            })
        })
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), 200);
    }
    let metrics = server.get("/metrics").text();
    let (batches, singles) = batch_counts(&metrics, &f.a);
    assert_eq!(singles, 0, "a request was computed alone: {metrics}");
    assert!(
        (1..=2).contains(&batches),
        "16 requests at once in {batches} batches: {metrics}"
    );
}

#[test]
fn ready_only_after_the_warm_up_batch() {
    // The slow task's warm-up batch takes 1 s: the server listens, and is not ready, until
    // it is done.
    let server = slow_server(&[]);
    assert_eq!(server.get("/health").status, 200);
    let first = server.get("/ready");
    assert_eq!(first.status, 503, "{}", first.text());
    assert_eq!(first.json()["ready"], false);
    assert!(!server.log().contains("warm-up:"), "{}", server.log());
    wait_for(60, "ready", || server.get("/ready").status == 200);
    assert!(server
        .log()
        .contains("warm-up: a batch of 32 sample(s) of shape [2]"));
    assert!(server.get("/metrics").text().contains("flammable_ready 1"));
}

#[test]
fn health_answers_while_every_reader_is_slow() {
    let server = slow_server(&[]);
    wait_for(60, "ready", || server.get("/ready").status == 200);
    // As many readers that take 2 s each as this machine has cores, twice: before, they ran
    // on the HTTP threads (one per core), and nothing else was answered meanwhile.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let slow: Vec<_> = (0..2 * cores)
        .map(|_| {
            let addr = server.addr.clone();
            std::thread::spawn(move || request("POST", &addr, "/predict", &[], b"2000").unwrap())
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for path in ["/health", "/ready", "/metrics"] {
        let started = Instant::now();
        assert_eq!(server.get(path).status, 200);
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "{path} took {:?} while readers were busy",
            started.elapsed()
        );
    }
    for c in slow {
        let a = c.join().unwrap();
        assert_eq!(a.status, 200, "{}", a.text());
    }
}

#[test]
fn every_bad_input_is_answered_and_serving_goes_on() {
    let f = fixture();
    let server = Server::ready(&[&f.a, "--max-body-bytes", "4096"]);
    let good = test_set().swap_remove(0).0;
    // (headers, body, status, what the error says)
    type Case<'a> = (&'a [(&'a str, &'a str)], Vec<u8>, u16, &'a str);
    let zeros = vec!["0"; 64].join(",");
    let cases: [Case; 7] = [
        (&[], b"[1, 2,".to_vec(), 400, "not JSON"),
        (&[], b"[1, 2, 3]".to_vec(), 422, "shape [64]"),
        (
            &[],
            format!("[[{zeros}], [{zeros}]]").into_bytes(),
            422,
            "shape [2, 64]: send one sample per request",
        ),
        (&[], b"[[1, 2], [3]]".to_vec(), 400, "rectangular"),
        (
            &[("Content-Type", "text/csv")],
            b"1,2,x".to_vec(),
            400,
            "not a number",
        ),
        (
            &[("Content-Type", "image/png")],
            b"\x89PNG broken".to_vec(),
            400,
            "PNG",
        ),
        (&[], vec![b' '; 5000], 413, "larger than 4096 bytes"),
    ];
    for (headers, body, status, says) in cases {
        let a = server.post("/predict", headers, &body);
        assert_eq!(a.status, status, "{}", a.text());
        let error = a.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains(says), "`{says}` not in {error}");
        // Served as before.
        assert_eq!(server.predict(&good).status, 200);
    }
    // A route asked with another method names the one it takes, in the body and in `Allow`.
    for (path, method) in [
        ("/predict", "POST"),
        ("/reload", "POST"),
        ("/v2/models/digits/infer", "POST"),
        ("/v2/models/digits/versions/1/infer", "POST"),
    ] {
        let a = server.get(path);
        assert_eq!(a.status, 405, "{path}");
        assert_eq!(a.header("allow"), method, "{path}");
        let error = a.json()["error"].as_str().unwrap().to_string();
        assert_eq!(
            error,
            format!("GET {path} is not allowed: use {method} {path}")
        );
    }
    for path in ["/info", "/metrics", "/v2/models/digits", "/v2/health/ready"] {
        let a = server.post(path, &[], b"");
        assert_eq!(a.status, 405, "{path}");
        assert_eq!(a.header("allow"), "GET,HEAD", "{path}");
        assert!(
            a.text().contains(&format!("use GET {path}")),
            "{}",
            a.text()
        );
    }
    let a = server.get("/nowhere");
    assert_eq!(a.status, 404);
    assert!(a.json()["error"]
        .as_str()
        .unwrap()
        .contains("POST /predict"));
    // Reloads name runs and checkpoints of the store, never files.
    for (query, status, says) in [
        (
            "checkpoint=../../../etc/passwd",
            400,
            "expected latest, best or step-N",
        ),
        ("run=/etc", 404, "no run"),
        ("checkpoint=best", 404, "no checkpoint `best`"),
    ] {
        let a = server.post(&format!("/reload?{query}"), &[], b"");
        assert_eq!(a.status, status, "{}", a.text());
        assert!(a.text().contains(says), "{}", a.text());
    }
    // A page of another site cannot make a browser call it; another Host name is refused.
    let good_body = serde_json::to_vec(&good).unwrap();
    let a = server.post(
        "/predict",
        &[("Origin", "https://evil.example")],
        &good_body,
    );
    assert_eq!(a.status, 403, "{}", a.text());
    let a = server.post("/reload", &[("Origin", "https://evil.example")], b"");
    assert_eq!(a.status, 403, "{}", a.text());
    let a = server.post("/predict", &[("Host", "evil.example")], &good_body);
    assert_eq!(a.status, 403, "{}", a.text());
    assert_eq!(server.get("/info").json()["model"]["run"], f.a.as_str());
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[test]
fn an_error_in_task_code_is_a_500_with_the_id_of_its_log_line() {
    let f = fixture();
    // Samples of any shape reach the model: one of 3 values fails in `forward`.
    let server = Server::ready(&[&f.a, "--any-shape", "--max-wait-ms", "20"]);
    let good = test_set().swap_remove(0).0;
    let addr = server.addr.clone();
    // Good requests in the same batches as the bad one still get their answers.
    let neighbours: Vec<_> = (0..4)
        .map(|_| {
            let addr = addr.clone();
            let body = serde_json::to_vec(&good).unwrap();
            std::thread::spawn(move || request("POST", &addr, "/predict", &[], &body).unwrap())
        })
        .collect();
    let a = server.post("/predict", &[], b"[1, 2, 3]");
    assert_eq!(a.status, 500, "{}", a.text());
    let id = a.json()["id"].as_str().unwrap().to_string();
    assert!(
        a.json()["error"].as_str().unwrap().contains("forward"),
        "{}",
        a.text()
    );
    for n in neighbours {
        assert_eq!(n.join().unwrap().status, 200);
    }
    wait_for(10, "the error's log line", || {
        server
            .log()
            .contains(&format!("error {id}: in step `forward`"))
    });
    assert_eq!(server.predict(&good).status, 200);
}

#[test]
fn an_overload_is_refused_at_once_and_every_request_is_answered() {
    let f = fixture();
    // Through the queue only: computed where they are read, the requests would not queue.
    let server = Server::ready(&[
        &f.a,
        "--max-queue",
        "2",
        "--max-batch-size",
        "1",
        "--inline",
        "off",
    ]);
    let good = serde_json::to_vec(&test_set().swap_remove(0).0).unwrap();
    // 48 clients without pause against a queue of 2 and one request per forward pass: many
    // times what the server holds.
    let clients: Vec<_> = (0..48)
        .map(|_| {
            let addr = server.addr.clone();
            let body = good.clone();
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                for _ in 0..25 {
                    let a = request("POST", &addr, "/predict", &[], &body).unwrap();
                    if a.status == 503 {
                        assert_eq!(a.header("retry-after"), "1");
                        assert!(a.text().contains("at capacity"), "{}", a.text());
                    }
                    statuses.push(a.status);
                }
                statuses
            })
        })
        .collect();
    let statuses: Vec<u16> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert_eq!(statuses.len(), 48 * 25);
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    let refused = statuses.iter().filter(|s| **s == 503).count();
    assert!(refused > 0, "no request was refused");
    assert!(refused < statuses.len(), "every request was refused");
    assert_eq!(inline(&server.get("/metrics").text(), &f.a), 0);
    assert_eq!(
        server.get("/info").json()["batching"]["inline_possible"],
        false
    );
    assert_eq!(server.get("/health").status, 200);
    assert_eq!(server.predict(&test_set().swap_remove(0).0).status, 200);
    let (status, _) = server.stop();
    assert!(status.success());
}

/// `flammable_inline_total` of `run`: samples computed on the thread that read them.
fn inline(metrics: &str, run: &str) -> u64 {
    let prefix = format!("flammable_inline_total{{run=\"{run}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `flammable_dropped_total` of `run`.
fn dropped(metrics: &str, run: &str) -> u64 {
    let prefix = format!("flammable_dropped_total{{run=\"{run}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn requests_whose_client_has_gone_or_timed_out_are_not_computed() {
    // The slow task computes for 1 s, one request at a time: of three requests sent at
    // once, one is computed and the others wait past their --timeout-ms (two clients get
    // 504 and wait no more) or their client hangs up.
    let server = slow_server(&["--max-batch-size", "1", "--timeout-ms", "300"]);
    wait_for(60, "ready", || server.get("/ready").status == 200);
    let f = slow_fixture();
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let addr = server.addr.clone();
            std::thread::spawn(move || request("POST", &addr, "/predict", &[], b"0").unwrap())
        })
        .collect();
    {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
        write!(
            stream,
            "POST /predict HTTP/1.1\r\nHost: {}\r\nContent-Length: 1\r\n\r\n0",
            server.addr
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    for w in waiting {
        let a = w.join().unwrap();
        assert_eq!(a.status, 504, "{}", a.text());
        assert!(a.text().contains("--timeout-ms"), "{}", a.text());
    }
    wait_for(10, "the requests nobody waits for to be dropped", || {
        dropped(&server.get("/metrics").text(), &f.run) == 2
    });
    let metrics = server.get("/metrics").text();
    let (batches, _) = batch_counts(&metrics, &f.run);
    assert_eq!(
        batches, 1,
        "a request nobody waits for was computed: {metrics}"
    );
}

#[test]
fn a_hot_swap_under_load_fails_no_request_and_each_answer_names_its_model() {
    let f = fixture();
    let server = Server::ready(&[&f.a]);
    let stop = Arc::new(AtomicBool::new(false));
    // Answers labelled with each run, as the clients saw them.
    let by_run = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<
        String,
        u64,
    >::new()));
    let good = serde_json::to_vec(&test_set().swap_remove(0).0).unwrap();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let addr = server.addr.clone();
            let body = good.clone();
            let (stop, by_run) = (stop.clone(), by_run.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let a = request("POST", &addr, "/predict", &[], &body).unwrap();
                    assert_eq!(a.status, 200, "{}", a.text());
                    let run = a.header("x-flammable-run").to_string();
                    *by_run.lock().unwrap().entry(run).or_default() += 1;
                }
            })
        })
        .collect();
    let answered_by = |run: &str| by_run.lock().unwrap().get(run).copied().unwrap_or(0);
    wait_for(10, "answers from A", || answered_by(&f.a) > 0);
    let a = server.post(&format!("/reload?run={}", f.b), &[], b"");
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["model"]["hyperparameters"]["hidden"], "32");
    // B computes: its answers say so.
    wait_for(10, "answers from B", || answered_by(&f.b) >= 20);
    let a = server.post(&format!("/reload?run={}&checkpoint=latest", f.a), &[], b"");
    assert_eq!(a.status, 200, "{}", a.text());
    server.signal("HUP");
    wait_for(10, "the reload on SIGHUP", || {
        server.log().matches("now serving run").count() == 3
    });
    let a_before = answered_by(&f.a);
    wait_for(10, "answers from A again", || {
        answered_by(&f.a) > a_before + 20
    });
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let info = server.get("/info").json();
    assert_eq!(info["model"]["run"], f.a.as_str());
    let metrics = server.get("/metrics").text();
    // `/metrics` counts each model's answers under its run, exactly as the clients saw them.
    for run in [&f.a, &f.b] {
        let line = format!(
            "flammable_requests_total{{run=\"{run}\",status=\"200\"}} {}\n",
            answered_by(run)
        );
        assert!(metrics.contains(&line), "no `{line}` in {metrics}");
    }
    assert!(!metrics.contains("status=\"5"), "{metrics}");
}

#[test]
fn a_reload_names_its_run_and_checkpoint_or_takes_the_defaults() {
    let f = fixture();
    let server = Server::ready(&[&f.a]);
    let dir = f.sandbox.store().run_dir(&f.a).join("checkpoints");
    let step = flammable::checkpoint::numbered_checkpoints(&dir)
        .into_iter()
        .next()
        .unwrap();
    let a = server.post(&format!("/reload?checkpoint={step}"), &[], b"");
    assert_eq!(
        a.json()["model"]["checkpoint"],
        step.as_str(),
        "{}",
        a.text()
    );
    // Naming a run without a checkpoint loads its --checkpoint (latest), not the one served.
    let a = server.post(&format!("/reload?run={}", f.a), &[], b"");
    assert_eq!(a.json()["model"]["checkpoint"], "latest", "{}", a.text());
    server.post(&format!("/reload?checkpoint={step}"), &[], b"");
    // So does SIGHUP.
    server.signal("HUP");
    wait_for(10, "the reload on SIGHUP", || {
        server.log().matches("now serving run").count() == 4
    });
    assert_eq!(server.get("/info").json()["model"]["checkpoint"], "latest");
    // A typo in the query is a 400 that names it.
    let a = server.post("/reload?chekpoint=best", &[], b"");
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(
        a.json()["error"].as_str().unwrap().contains("chekpoint"),
        "{}",
        a.text()
    );
    // The run named in a body, which /reload does not read: a 400, not the served run again.
    let a = server.post(
        "/reload",
        &[("Content-Type", "application/json")],
        format!("{{\"run\": \"{}\"}}", f.a).as_bytes(),
    );
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(
        a.json()["error"].as_str().unwrap().contains("?run="),
        "{}",
        a.text()
    );
    // A run whose hyperparameters this binary cannot read any more: 422, and A stays.
    let s = &f.sandbox;
    s.ok(
        "digits",
        &["train", "-q", "--epochs", "1", "--hidden", "8", "-m", "C"],
    );
    let c = s
        .store()
        .records()
        .unwrap()
        .into_iter()
        .find(|r| r.message.as_deref() == Some("C"))
        .unwrap()
        .id;
    let hyper = s.store().run_dir(&c).join("hyperparameters.ron");
    let recorded = std::fs::read_to_string(&hyper).unwrap();
    assert!(recorded.contains("hidden: 8"), "{recorded}");
    // A layer of size 0: the model cannot be built. No hyperparameters at all. RON that no
    // longer parses.
    let unloadable = [
        Some(recorded.replace("hidden: 8", "hidden: 0")),
        None,
        Some("(oops".to_string()),
    ];
    for text in unloadable {
        match &text {
            Some(text) => std::fs::write(&hyper, text).unwrap(),
            None => std::fs::remove_file(&hyper).unwrap(),
        }
        let a = server.post(&format!("/reload?run={c}"), &[], b"");
        assert_eq!(a.status, 422, "{:?}: {}", text, a.text());
        let why = a.json()["error"].as_str().unwrap().to_string();
        assert!(why.starts_with(&format!("cannot load run {c}")), "{why}");
        assert!(!why.contains('\n'), "{why}");
        assert_eq!(server.get("/info").json()["model"]["run"], f.a.as_str());
    }
    // Names that cannot name a train run are the client's mistake (400); a run that does not
    // exist is not found (404).
    let common: String =
        f.a.chars()
            .zip(f.b.chars())
            .take_while(|(x, y)| x == y)
            .map(|(x, _)| x)
            .collect();
    let serve_run = server.get("/info").json()["serve_run"]
        .as_str()
        .unwrap()
        .to_string();
    let test_run = s
        .store()
        .records()
        .unwrap()
        .into_iter()
        .find(|r| r.kind == RunKind::Test)
        .unwrap()
        .id;
    for (run, says) in [
        (common.as_str(), "type more of it"),
        ("", "empty"),
        (serve_run.as_str(), "is a serve run"),
        (test_run.as_str(), "is a test run"),
        (&test_run[..test_run.len() - 1], "is a test run"),
    ] {
        let a = server.post(&format!("/reload?run={run}"), &[], b"");
        assert_eq!(a.status, 400, "run={run}: {}", a.text());
        let why = a.json()["error"].as_str().unwrap().to_string();
        assert!(why.contains(says), "run={run}: {why}");
    }
    let a = server.post("/reload?run=nope", &[], b"");
    assert_eq!(a.status, 404, "{}", a.text());
    // A burst of reloads of one target is carried out by fewer loads than orders.
    let burst: Vec<_> = (0..8)
        .map(|_| {
            let addr = server.addr.clone();
            std::thread::spawn(move || request("POST", &addr, "/reload", &[], b"").unwrap().status)
        })
        .collect();
    for b in burst {
        assert_eq!(b.join().unwrap(), 200);
    }
    let loads = server.log().matches("now serving run").count() - 4;
    assert!((1..8).contains(&loads), "8 reloads took {loads} loads");
    // A run recorded before a hyperparameter existed takes its default, and the reload says
    // so, as `serve` does of the run it starts with: in the server's log and the serve run's.
    assert!(recorded.contains("dropout: "), "{recorded}");
    let older: String = recorded
        .lines()
        .filter(|l| !l.trim_start().starts_with("dropout: "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&hyper, older).unwrap();
    let a = server.post(&format!("/reload?run={c}"), &[], b"");
    assert_eq!(a.status, 200, "{}", a.text());
    let said = format!("run {c} was recorded before hyperparameter(s) `dropout` existed");
    wait_for(10, "the server's log", || server.log().contains(&said));
    let serve_log = s.store().run_dir(&serve_run).join("log.txt");
    wait_for(10, "the serve run's log", || {
        std::fs::read_to_string(&serve_log).is_ok_and(|l| l.contains(&said))
    });
}

#[test]
fn beyond_loopback_a_token_is_needed() {
    let f = fixture();
    let token = "s3cret-token-0123456789";
    let server = Server::ready(&[&f.a, "--host", "0.0.0.0", "--token", token]);
    assert!(
        server.url.ends_with(&format!("?token={token}")),
        "{}",
        server.url
    );
    let good = serde_json::to_vec(&test_set().swap_remove(0).0).unwrap();
    let refused = server.post("/predict", &[], &good);
    assert_eq!(refused.status, 401, "{}", refused.text());
    let wrong = server.post("/predict", &[("Authorization", "Bearer nope")], &good);
    assert_eq!(wrong.status, 401);
    assert_eq!(server.post("/reload", &[], b"").status, 401);
    assert_eq!(server.get("/info").status, 401);
    // Refusals are JSON, like every other error.
    for a in [&refused, &wrong] {
        assert!(
            a.json()["error"].as_str().unwrap().contains("token"),
            "{}",
            a.text()
        );
    }
    // The scheme's name is case-insensitive.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let bearer = format!("{scheme} {token}");
        let a = server.post("/predict", &[("Authorization", &bearer)], &good);
        assert_eq!(a.status, 200, "{scheme}: {}", a.text());
    }
    // The printed address opens on what the server serves.
    let after_scheme = server.url.trim_start_matches("http://");
    let path = &after_scheme[after_scheme.find('/').unwrap()..];
    assert_eq!(path, format!("/?token={token}"));
    let a = server.get(path);
    assert_eq!(a.status, 200, "{}", a.text());
    let index = a.json();
    assert_eq!(index["run"], f.a.as_str(), "{index}");
    assert!(index["endpoints"]["POST /predict"].is_string(), "{index}");
    assert!(index["serve_run"].is_string(), "{index}");
    assert_eq!(server.get("/").status, 401);
    // Probes need no token.
    assert_eq!(server.get("/health").status, 200);
    assert_eq!(server.get("/ready").status, 200);
    // The printed address works even where a browser holds a stale cookie from an earlier
    // server; the cookie it gets is this server's own.
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    let stale = format!("flammable_serve_{port}=an-old-token-of-another-server");
    let a = request(
        "GET",
        &server.addr,
        &format!("/info?token={token}"),
        &[("Cookie", &stale)],
        b"",
    )
    .unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(
        a.header("set-cookie")
            .starts_with(&format!("flammable_serve_{port}={token};")),
        "{}",
        a.header("set-cookie")
    );
    // The token is in no record: `show` and the browser read them.
    let serve_run = server.get(&format!("/info?token={token}")).json()["serve_run"]
        .as_str()
        .unwrap()
        .to_string();
    let shown = f.sandbox.ok("digits", &["show", &serve_run]);
    assert!(shown.contains("--token"), "{shown}");
    assert!(!shown.contains(token), "{shown}");
    for record in f.sandbox.store().records().unwrap() {
        assert!(
            !record.argv.iter().any(|a| a.contains(token)),
            "{:?}",
            record.argv
        );
    }
    // Without --token, one is made up and printed.
    let server = Server::start(&[&f.a, "--host", "0.0.0.0"]);
    let printed = server.url.split("?token=").nth(1).unwrap().to_string();
    assert_eq!(printed.len(), 32);
    assert_eq!(server.get("/info").status, 401);
    let a = request(
        "GET",
        &server.addr,
        "/info",
        &[("Authorization", &format!("Bearer {printed}"))],
        b"",
    )
    .unwrap();
    assert_eq!(a.status, 200);
}

#[test]
fn a_serve_run_records_its_parent_settings_and_totals() {
    let f = fixture();
    let server = Server::ready(&[&f.a, "-m", "serving A", "--max-batch-size", "4"]);
    let good = test_set().swap_remove(0).0;
    for _ in 0..5 {
        assert_eq!(server.predict(&good).status, 200);
    }
    assert_eq!(server.post("/predict", &[], b"[1]").status, 422);
    let (status, stdout) = server.stop();
    assert!(status.success(), "{stdout}");
    assert_eq!(table_value(&stdout, "requests"), Some(6.0), "{stdout}");
    assert_eq!(table_value(&stdout, "answered"), Some(5.0), "{stdout}");
    assert_eq!(table_value(&stdout, "refused"), Some(1.0), "{stdout}");
    let record: Record = f
        .sandbox
        .store()
        .records()
        .unwrap()
        .into_iter()
        .find(|r| r.message.as_deref() == Some("serving A"))
        .unwrap();
    assert_eq!(record.kind, RunKind::Serve);
    assert_eq!(record.status, RunStatus::Finished);
    assert_eq!(record.parent.as_deref(), Some(f.a.as_str()));
    assert_eq!(record.metrics["answered"], 5.0);
    let settings =
        std::fs::read_to_string(f.sandbox.store().run_dir(&record.id).join("serving.ron")).unwrap();
    assert!(settings.contains("max_batch_size: 4"), "{settings}");
    assert!(!settings.contains("token"), "{settings}");
    let listed = f.sandbox.ok("digits", &["runs", "--kind", "serve"]);
    assert!(listed.contains(&record.id), "{listed}");
}

#[test]
fn serve_refuses_bad_arguments_in_one_line() {
    let f = fixture();
    let s = &f.sandbox;
    assert_one_line_error(&s.run("digits", &["serve", "nope"]), 2, &["no run `nope`"]);
    assert_one_line_error(
        &s.run("digits", &["serve", "-q", &f.a, "--checkpoint", "best"]),
        2,
        &["no checkpoint `best`"],
    );
    assert_one_line_error(
        &s.run("digits", &["serve", "--max-batch-size", "0"]),
        2,
        &["--max-batch-size"],
    );
    assert_one_line_error(
        &s.run("digits", &["serve", "--token", "short"]),
        2,
        &["--token"],
    );
    // A token from the environment is blamed on the variable, an empty one as empty.
    let from_env = |value: &str| {
        s.command("digits")
            .args(["serve", "-q", &f.a, "--host", "0.0.0.0"])
            .env("FLAMMABLE_SERVE_TOKEN", value)
            .output()
            .unwrap()
    };
    assert_one_line_error(
        &from_env(""),
        2,
        &["FLAMMABLE_SERVE_TOKEN is set but empty"],
    );
    let short = from_env("short");
    assert_one_line_error(&short, 2, &["$FLAMMABLE_SERVE_TOKEN: use at least 16"]);
    assert!(!String::from_utf8_lossy(&short.stderr).contains("--token"));
    assert_one_line_error(
        &s.run("digits", &["serve", "--token", "s3cret-token-with-%41"]),
        2,
        &["--token", "letters, digits"],
    );
    // Settings that used to abort the process at start.
    assert_one_line_error(
        &s.run("digits", &["serve", "--max-queue", "4294967295"]),
        2,
        &["--max-queue"],
    );
    assert_one_line_error(
        &s.run(
            "digits",
            &[
                "serve",
                "-q",
                &f.a,
                "--max-body-bytes",
                "2000",
                "--max-inflight-bytes",
                "1000",
            ],
        ),
        2,
        &["--max-inflight-bytes"],
    );
    // A port in use, an address of another machine: one line, and no run is made (no
    // record, no snapshot).
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let cases = [
        (vec!["--port", port.as_str()], "--port"),
        (vec!["--host", "8.8.8.8", "--port", "8009"], "8.8.8.8:8009"),
    ];
    for (args, says) in cases {
        let mut all = vec!["serve", "-q", f.a.as_str()];
        all.extend_from_slice(&args);
        assert_one_line_error(&s.run("digits", &all), 2, &["cannot listen on", says]);
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let left: Vec<_> = s
            .store()
            .records()
            .unwrap()
            .into_iter()
            .filter(|r| r.argv.ends_with(&args))
            .map(|r| (r.id, r.status))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

/// A PNG whose header declares `width` x `height` grey pixels, then 2 KB of nothing: a small
/// file that asks a careless reader for the whole image.
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut ihdr = Vec::from(*b"IHDR");
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut png = Vec::from(*b"\x89PNG\r\n\x1a\n");
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    png.extend_from_slice(&[0; 2048]);
    png
}

#[test]
fn hostile_bodies_are_refused_and_serving_goes_on() {
    let f = fixture();
    let server = Server::ready(&[
        &f.a,
        "--max-body-bytes",
        "8000",
        "--max-inflight-bytes",
        "10000",
        "--read-timeout-ms",
        "60000",
    ]);
    let good = test_set().swap_remove(0).0;
    let still_serving = || {
        assert_eq!(server.get("/health").status, 200, "{}", server.log());
        assert_eq!(server.predict(&good).status, 200);
    };
    // Nested arrays whose first elements promise 40^10 numbers: the reader used to reserve
    // them (petabytes) and the process aborted.
    let mut nested = "[".repeat(10) + "1";
    for _ in 0..10 {
        nested.push_str(&",1".repeat(39));
        nested.push(']');
    }
    assert!(nested.len() < 1000);
    let a = server.post("/predict", &[], nested.as_bytes());
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(a.text().contains("rectangular"), "{}", a.text());
    still_serving();
    // A 2 KB PNG that declares 1,000,000 x 2,147,483,647 pixels, and one of 30,000 x 30,000:
    // refused at the header, at once.
    for (w, h) in [(1_000_000, 2_147_483_647), (30_000, 30_000)] {
        let started = Instant::now();
        let a = server.post(
            "/predict",
            &[("Content-Type", "image/png")],
            &png_declaring(w, h),
        );
        assert_eq!(a.status, 400, "{}", a.text());
        assert!(a.text().contains(&format!("{w}x{h}")), "{}", a.text());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        still_serving();
    }
    // Numbers that are not finite: a JSON number beyond f32, a CSV `nan`.
    let mut big = vec!["0".to_string(); 64];
    big[5] = "1e39".into();
    let a = server.post("/predict", &[], format!("[{}]", big.join(",")).as_bytes());
    assert_eq!(a.status, 422, "{}", a.text());
    assert!(a.text().contains("not a finite number"), "{}", a.text());
    let mut csv = vec!["0"; 64];
    csv[3] = "nan";
    let a = server.post(
        "/predict",
        &[("Content-Type", "text/csv")],
        csv.join(",").as_bytes(),
    );
    assert_eq!(a.status, 422, "{}", a.text());
    // A chunked body (no declared length) over the limit.
    let mut stream = raw(
        &server.addr,
        format!(
            "POST /predict HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            server.addr
        )
        .as_bytes(),
    );
    for _ in 0..3 {
        let _ = stream.write_all(format!("{:x}\r\n{}\r\n", 3000, " ".repeat(3000)).as_bytes());
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    assert_eq!(status_of(&mut stream, 10), 413);
    still_serving();
    // A client that sends 6,000 of its 7,000 bytes and stalls holds 6,000 of the 10,000 the
    // server may hold: a second body of 6,000 bytes gets 503, and goes through once the
    // first has gone.
    let mut stalled = raw(
        &server.addr,
        format!(
            "POST /predict HTTP/1.1\r\nHost: {}\r\nContent-Length: 7000\r\n\r\n{}",
            server.addr,
            " ".repeat(6000)
        )
        .as_bytes(),
    );
    let mut padded = serde_json::to_string(&good).unwrap();
    padded.push_str(&" ".repeat(6000 - padded.len()));
    wait_for(10, "the stalled body to be held", || {
        server
            .get("/metrics")
            .text()
            .contains("flammable_inflight_bytes 6000\n")
    });
    let a = server.post("/predict", &[], padded.as_bytes());
    assert_eq!(a.status, 503, "{}", a.text());
    assert!(a.text().contains("--max-inflight-bytes"), "{}", a.text());
    drop(stalled.shutdown(std::net::Shutdown::Both));
    wait_for(10, "the stalled body's bytes to be given back", || {
        server.post("/predict", &[], padded.as_bytes()).status == 200
    });
    let _ = stalled.flush();
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[test]
fn slow_clients_are_cut_off_and_an_overload_is_refused_at_once() {
    let f = fixture();
    let server = Server::ready(&[&f.a, "--read-timeout-ms", "500"]);
    // A head that never ends: the connection is closed. A body that stops: 408.
    let mut head = stalled_head(&server.addr);
    let mut body = stalled_body(&server.addr);
    let started = Instant::now();
    assert_eq!(status_of(&mut head, 10), 0);
    assert_eq!(status_of(&mut body, 10), 408);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(server);
    // The slow task computes a batch in 1 s: with one request computing and one queued, a
    // third is refused in much less than that.
    let server = slow_server(&["--max-queue", "1", "--max-batch-size", "1"]);
    wait_for(60, "ready", || server.get("/ready").status == 200);
    let busy: Vec<_> = (0..2)
        .map(|i| {
            let addr = server.addr.clone();
            std::thread::sleep(Duration::from_millis(200 * i));
            std::thread::spawn(move || request("POST", &addr, "/predict", &[], b"0").unwrap())
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let a = server.post("/predict", &[], b"0");
    assert_eq!(a.status, 503, "{}", a.text());
    assert!(a.text().contains("at capacity"), "{}", a.text());
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "the refusal took {:?}",
        started.elapsed()
    );
    for b in busy {
        assert_eq!(b.join().unwrap().status, 200);
    }
}

#[test]
fn a_stalled_client_does_not_keep_the_server_from_stopping() {
    let f = fixture();
    let server = Server::ready(&[
        &f.a,
        "--shutdown-timeout-ms",
        "1000",
        "--read-timeout-ms",
        "60000",
    ]);
    let _head = stalled_head(&server.addr);
    let _body = stalled_body(&server.addr);
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let log = server.stderr.clone();
    let (status, _) = server.stop_within(10);
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains("dropped"), "{log}");
    // With a long deadline, a second Ctrl-C exits at once.
    let mut server = Server::ready(&[&f.a, "--shutdown-timeout-ms", "600000"]);
    let _body = stalled_body(&server.addr);
    std::thread::sleep(Duration::from_millis(200));
    server.signal("INT");
    wait_for(10, "the first Ctrl-C to be taken", || {
        server.log().contains("stopping")
    });
    server.signal("INT");
    let status = server.wait_exit(5);
    assert_eq!(status.code(), Some(130), "{status:?}");
}

#[test]
fn a_stop_sends_the_batch_in_hand_through_at_once() {
    let f = fixture();
    // The batch would wait 20 s for company, twice the shutdown deadline.
    let mut server = Server::ready(&[
        &f.a,
        "--max-wait-ms",
        "20000",
        "--shutdown-timeout-ms",
        "10000",
    ]);
    let body = serde_json::to_vec(&test_set().swap_remove(0).0).unwrap();
    let client = {
        let addr = server.addr.clone();
        std::thread::spawn(move || request("POST", &addr, "/predict", &[], &body))
    };
    wait_for(10, "the request to wait for company", || {
        server
            .get("/metrics")
            .text()
            .lines()
            .any(|l| l == "flammable_queue_depth 1")
    });
    let stopped = Instant::now();
    server.signal("TERM");
    let answer = client.join().unwrap().expect("an answer");
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "answered {:?} after the stop",
        stopped.elapsed()
    );
    assert!(server.wait_exit(10).success());
    // A window that every lone request would sit out until its timeout is refused at start,
    // before a run is made.
    let s = &f.sandbox;
    let args = ["--max-wait-ms", "5000", "--timeout-ms", "4999"];
    let mut all = vec!["serve", "-q", &f.a];
    all.extend_from_slice(&args);
    assert_one_line_error(
        &s.run("digits", &all),
        2,
        &["--max-wait-ms", "--timeout-ms"],
    );
    assert!(!s
        .store()
        .records()
        .unwrap()
        .iter()
        .any(|r| r.argv.ends_with(&args.map(String::from))));
}

#[test]
fn the_browser_stops_on_sigterm_within_its_deadline() {
    let f = fixture();
    let mut ui = Command::new(crate::common::flammable_bin())
        .args(["ui", "--port", "0"])
        .current_dir(f.sandbox.path())
        .env("FLAMMABLE_STORE", f.sandbox.path().join("store"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(ui.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut ui = KillOnDrop(ui);
    let _stalled = raw(&addr, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    std::thread::sleep(Duration::from_millis(200));
    let ok = Command::new("kill")
        .args(["-TERM", &ui.0.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = ui.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "ui did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_closed_stdout_does_not_stop_the_server() {
    let f = fixture();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let mut child = f
        .sandbox
        .command("digits")
        .args(["serve", "-q", &f.a, "--port", &port])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut child = KillOnDrop(child);
    let addr = format!("127.0.0.1:{port}");
    wait_for(60, "the server to answer", || {
        assert!(child.0.try_wait().unwrap().is_none(), "the server exited");
        request("GET", &addr, "/ready", &[], b"").is_ok_and(|a| a.status == 200)
    });
    let ok = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "serve did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn eval_refuses_an_input_that_is_not_finite() {
    let f = fixture();
    let s = &f.sandbox;
    let mut values = vec!["0"; 64];
    values[10] = "nan";
    let input = s.path().join("nan.csv");
    std::fs::write(&input, values.join(",")).unwrap();
    let output = s.path().join("nan.ron");
    let out = s.run(
        "digits",
        &[
            "eval",
            "-q",
            &f.a,
            input.to_str().unwrap(),
            output.to_str().unwrap(),
        ],
    );
    assert_one_line_error(&out, 1, &["nan.csv", "not a finite number"]);
    assert!(!output.exists());
}
