//! The inference server as a user runs it — `digits serve` as a subprocess on a free loopback
//! port, serving real train runs of the digits example — driven by real HTTP clients on
//! threads: predictions on the real test set, batching, bad input, overload, hot swaps, the
//! token, and the serve run it records.

use crate::common::{assert_one_line_error, table_value, wait_for, KillOnDrop, Sandbox};
use crate::http::{request, Answer};
use flammable::store::{Record, RunKind, RunStatus};
use std::io::{BufRead, BufReader, Read};
use std::process::{ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Two train runs of digits (different widths) and the accuracy `digits test` measures for
/// the first: made once, served by every test.
struct Fixture {
    sandbox: Sandbox,
    /// 3 epochs, hidden 128.
    a: String,
    /// 2 epochs, hidden 32.
    b: String,
    /// `digits test A`'s accuracy.
    accuracy: f64,
}

fn fixture() -> &'static Fixture {
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
struct Server {
    /// `127.0.0.1:PORT`.
    addr: String,
    /// The address it printed.
    url: String,
    stdout: BufReader<ChildStdout>,
    stderr: std::path::PathBuf,
    child: KillOnDrop,
}

impl Server {
    /// Starts `digits serve --port 0 ARGS` and reads the address it prints.
    fn start(args: &[&str]) -> Server {
        let s = &fixture().sandbox;
        let stderr = s.path().join(format!(
            "serve-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut child = s
            .command("digits")
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
    fn ready(args: &[&str]) -> Server {
        let server = Server::start(args);
        wait_for(60, "the server to be ready", || {
            server.get("/ready").status == 200
        });
        server
    }

    fn get(&self, path: &str) -> Answer {
        request("GET", &self.addr, path, &[], b"").unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        request("POST", &self.addr, path, headers, body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// A JSON sample of 64 pixel values 0..16.
    fn predict(&self, pixels: &[f32]) -> Answer {
        let body = serde_json::to_vec(pixels).unwrap();
        self.post("/predict", &[("Content-Type", "application/json")], &body)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Ctrl-C; waits for the exit, returns it and the rest of stdout.
    fn stop(mut self) -> (ExitStatus, String) {
        let ok = Command::new("kill")
            .args(["-INT", &self.child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop on SIGINT"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        (status, rest)
    }
}

/// The digits test set: each sample as 64 pixel values 0..16, and its label.
fn test_set() -> Vec<(Vec<f32>, u32)> {
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
            "flammable_batch_size_bucket{{run=\"{run}\",le=\"1\"}}"
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
    let (batches, singles) = batch_counts(&metrics, &f.a);
    assert!(batches > 0, "{metrics}");
    assert!(
        singles < batches,
        "no batch of more than one request under 32 clients: {metrics}"
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
    assert!(info["model"]["commit"]
        .as_str()
        .is_some_and(|c| c.len() == 40));
}

#[test]
fn ready_only_after_the_warm_up_batch() {
    let f = fixture();
    let server = Server::start(&[&f.a]);
    // Health answers as soon as the server listens; readiness waits for the warm-up batch,
    // whose line is written before the server turns ready.
    assert_eq!(server.get("/health").status, 200);
    wait_for(60, "ready", || {
        let a = server.get("/ready");
        assert!(a.status == 200 || a.status == 503, "{}", a.text());
        if a.status == 503 {
            assert_eq!(a.json()["ready"], false);
        }
        a.status == 200
    });
    assert!(server
        .log()
        .contains("warm-up: a batch of 32 sample(s) of shape [64]"));
    assert!(server.get("/metrics").text().contains("flammable_ready 1"));
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
    assert_eq!(server.get("/predict").status, 405);
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
    let server = Server::ready(&[&f.a, "--max-queue", "2", "--max-batch-size", "1"]);
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
    assert_eq!(server.get("/health").status, 200);
    assert_eq!(server.predict(&test_set().swap_remove(0).0).status, 200);
    let (status, _) = server.stop();
    assert!(status.success());
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
    let f = fixture();
    // A batch waits 400 ms for company: long enough to leave before it is computed.
    let server = Server::ready(&[&f.a, "--max-wait-ms", "400", "--timeout-ms", "100"]);
    let good = serde_json::to_vec(&test_set().swap_remove(0).0).unwrap();
    let started = Instant::now();
    let a = server.post("/predict", &[], &good);
    assert_eq!(a.status, 504, "{}", a.text());
    assert!(a.text().contains("--timeout-ms"), "{}", a.text());
    assert!(started.elapsed() < Duration::from_millis(390));
    wait_for(10, "the timed-out request to be dropped", || {
        dropped(&server.get("/metrics").text(), &f.a) == 1
    });
    // A client that hangs up while its request waits.
    {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
        write!(
            stream,
            "POST /predict HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
            server.addr,
            good.len()
        )
        .unwrap();
        stream.write_all(&good).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for(10, "the abandoned request to be dropped", || {
        dropped(&server.get("/metrics").text(), &f.a) == 2
    });
    let metrics = server.get("/metrics").text();
    let (batches, _) = batch_counts(&metrics, &f.a);
    assert_eq!(
        batches, 0,
        "a request nobody waits for was computed: {metrics}"
    );
}

#[test]
fn a_hot_swap_under_load_fails_no_request() {
    let f = fixture();
    let server = Server::ready(&[&f.a]);
    let stop = Arc::new(AtomicBool::new(false));
    let good = serde_json::to_vec(&test_set().swap_remove(0).0).unwrap();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let addr = server.addr.clone();
            let body = good.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut answered = 0;
                while !stop.load(Ordering::Relaxed) {
                    let a = request("POST", &addr, "/predict", &[], &body).unwrap();
                    assert_eq!(a.status, 200, "{}", a.text());
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let a = server.post(&format!("/reload?run={}", f.b), &[], b"");
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["model"]["hyperparameters"]["hidden"], "32");
    std::thread::sleep(Duration::from_millis(200));
    let a = server.post(&format!("/reload?run={}&checkpoint=latest", f.a), &[], b"");
    assert_eq!(a.status, 200, "{}", a.text());
    // SIGHUP loads the served checkpoint again.
    let ok = Command::new("kill")
        .args(["-HUP", &server.child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    wait_for(10, "the reload on SIGHUP", || {
        server.log().matches("now serving run").count() == 3
    });
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let answered: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert!(answered > 0);
    let info = server.get("/info").json();
    assert_eq!(info["model"]["run"], f.a.as_str());
    let metrics = server.get("/metrics").text();
    // Both models answered, each under its own label.
    assert!(
        metrics.contains(&format!("run=\"{}\",status=\"200\"", f.b)),
        "{metrics}"
    );
    assert!(!metrics.contains("status=\"5"), "{metrics}");
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
    let bearer = format!("Bearer {token}");
    let a = server.post("/predict", &[("Authorization", &bearer)], &good);
    assert_eq!(a.status, 200, "{}", a.text());
    // Probes need no token.
    assert_eq!(server.get("/health").status, 200);
    assert_eq!(server.get("/ready").status, 200);
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
    // A port in use: one line, and the serve run is recorded as failed.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    assert_one_line_error(
        &s.run("digits", &["serve", "-q", &f.a, "--port", &port]),
        2,
        &["cannot listen on", "--port"],
    );
}
