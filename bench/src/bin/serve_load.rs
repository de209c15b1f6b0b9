//! The inference server under load: `digits serve` with batching on and off (`/predict`, and
//! the Open Inference Protocol's `/v2/models/digits/infer` with one sample a request), against
//! the limit — a bare axum server that reads the same bodies and answers a fixed answer
//! (`bare_axum`), and the same server computing the network in its handler — and against LitServe (batching on and off) and a plain FastAPI + PyTorch
//! server for the same network, at 1, 8 and 64 concurrent clients with keep-alive
//! connections, for the digits MLP and a wider one; and the server's overhead over a direct
//! forward call at batch 1.
//!
//! Rounds interleave the servers, one running at a time: each round starts each server, runs
//! the load at every concurrency for a fixed time (throughput, latency percentiles) and stops
//! it. The tables give the medians over rounds, and each server's throughput as a ratio to
//! Flammable's (batching on).
//!
//! `cargo run --release -p flammable-bench --bin serve_load [-- --smoke | --quick]` (after building the
//! examples; `bench/run` does both)

use flammable_bench::{
    digits_command, free_port, git_project, latest_checkpoint, peer_script, python, report,
    train_digits, DigitsNet, SEVEN_JSON,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process, killed when dropped with the processes it started (LitServe's workers
/// would otherwise outlive it, and keep a core busy polling).
struct Server {
    addr: String,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Each server leads a process group of its own (see `group`).
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `command` as the leader of a new process group.
fn group(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    command.process_group(0)
}

/// Waits until `GET path` answers 200 (up to a minute); false when it never does.
fn wait_ready(addr: &str, path: &str, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut c) = Client::connect(addr) {
            if c.send("GET", path, b"").is_ok_and(|s| s == 200) {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Starts `command` (a server told to listen on `port`) as a process group of its own and
/// waits until `GET ready_path` answers 200; `None` when it does not start (`what` says
/// which, unless `None`: a missing peer is no warning).
fn start(command: &mut Command, port: u16, ready_path: &str, what: Option<&str>) -> Option<Server> {
    let mut child = group(command).stdout(Stdio::null()).spawn().ok()?;
    let addr = format!("127.0.0.1:{port}");
    let ready = wait_ready(&addr, ready_path, &mut child);
    let server = Server { addr, child };
    if let (false, Some(what)) = (ready, what) {
        eprintln!("warning: {what} did not start");
    }
    ready.then_some(server)
}

/// `digits serve RUN` with `args`, on one CPU thread for the model.
fn flammable(project: &Path, run: &str, args: &[&str]) -> Option<Server> {
    let port = free_port();
    let mut command = digits_command(project);
    command
        .args([
            "serve",
            "-q",
            run,
            "--threads",
            "1",
            "--port",
            &port.to_string(),
        ])
        .args(args)
        .stderr(Stdio::inherit());
    start(&mut command, port, "/ready", None)
}

/// The bare axum server beside this benchmark's binary (`bare_axum`); with `checkpoint`, its
/// `/predict` computes the answer with that network in the handler (on one candle thread,
/// as `serve --threads 1`).
fn bare_axum(checkpoint: Option<&Path>) -> Option<Server> {
    let program = std::env::current_exe().ok()?.with_file_name("bare_axum");
    let port = free_port();
    let mut command = Command::new(program);
    command.arg(port.to_string()).stderr(Stdio::inherit());
    if let Some(checkpoint) = checkpoint {
        command.arg(checkpoint).env("RAYON_NUM_THREADS", "1");
    }
    start(
        &mut command,
        port,
        "/ready",
        Some("bare_axum (build it: cargo build -p flammable-bench)"),
    )
}

/// A Python peer (`bench/peers/serve_peers.py KIND`), when the peers are installed.
fn peer(kind: &str, hidden: usize) -> Option<Server> {
    let python = python()?;
    let port = free_port();
    let mut command = Command::new(python);
    command
        .arg(peer_script("serve_peers.py"))
        .args([kind, &port.to_string(), &hidden.to_string()])
        .env("OMP_NUM_THREADS", "1")
        .stderr(Stdio::null());
    start(&mut command, port, "/health", Some(&format!("peer {kind}")))
}

/// An HTTP/1.1 client on one keep-alive connection.
struct Client {
    addr: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: &str) -> std::io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Client {
            addr: addr.to_string(),
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends a request and reads the whole answer; returns its status.
    fn send(&mut self, method: &str, path: &str, body: &[u8]) -> std::io::Result<u16> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        self.writer.write_all(&request)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let (mut length, mut chunked, mut close) = (0usize, false, false);
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let l = line.trim_end().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            } else if l.starts_with("transfer-encoding:") && l.contains("chunked") {
                chunked = true;
            } else if l.starts_with("connection:") && l.contains("close") {
                close = true;
            }
        }
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk)?;
                if size == 0 {
                    break;
                }
            }
        } else {
            let mut body = vec![0; length];
            self.reader.read_exact(&mut body)?;
        }
        if close {
            *self = Client::connect(&self.addr)?;
        }
        Ok(status)
    }
}

/// One load round: throughput (requests/s) and latency percentiles.
#[derive(Clone, Copy, Debug)]
struct Round {
    throughput: f64,
    p50: Duration,
    p99: Duration,
}

/// What the clients send: `POST path` with `body`.
#[derive(Clone, Copy)]
struct Request<'a> {
    path: &'a str,
    body: &'a [u8],
}

/// `concurrency` clients sending `request` for `time`, each on its own connection.
fn load(addr: &str, concurrency: usize, time: Duration, request: Request) -> Option<Round> {
    let started = Instant::now();
    let deadline = started + time;
    let clients: Vec<_> = (0..concurrency)
        .map(|_| {
            let addr = addr.to_string();
            let (path, body) = (request.path.to_string(), request.body.to_vec());
            std::thread::spawn(move || -> Option<Vec<Duration>> {
                let mut client = Client::connect(&addr).ok()?;
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let status = client.send("POST", &path, &body).ok()?;
                    if status != 200 {
                        eprintln!("warning: {addr} answered {status}");
                        return None;
                    }
                    latencies.push(t.elapsed());
                }
                Some(latencies)
            })
        })
        .collect();
    let mut all = Vec::new();
    for c in clients {
        all.extend(c.join().ok()??);
    }
    let elapsed = started.elapsed();
    if all.is_empty() {
        return None;
    }
    all.sort();
    let at = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize];
    Some(Round {
        throughput: all.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
    })
}

fn median_f64(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn median_duration(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A train run of digits with `hidden` units, trained for one epoch on one thread.
fn train(project: &Path, hidden: usize) -> String {
    train_digits(project, &["--hidden", &hidden.to_string()])
}

/// The median time of a direct forward pass at batch 1 through run `run`'s network (the
/// digits MLP written with candle, its checkpoint loaded), with the softmax and argmax the
/// task's `postprocess` does: what serving one request costs without the server.
fn direct_forward(project: &Path, run: &str, calls: usize, body: &[u8]) -> Duration {
    let net = DigitsNet::load(&latest_checkpoint(project, run)).expect("the checkpoint loads");
    let pixels: Vec<f32> = parse_numbers(body);
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        let answer = net.predict(pixels.clone()).expect("the network computes");
        std::hint::black_box(answer);
        times.push(started.elapsed());
    }
    median_duration(times)
}

/// The numbers of a JSON array of numbers (the request body this benchmark sends).
fn parse_numbers(body: &[u8]) -> Vec<f32> {
    String::from_utf8_lossy(body)
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

fn main() {
    // The direct forward pass runs on one thread, as the served models do (`--threads 1`).
    // Sound here: no thread has started yet.
    std::env::set_var("CANDLE_NUM_THREADS", "1");
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let smoke = std::env::args().any(|a| a == "--smoke");
    let project = tempfile::tempdir().expect("temp dir");
    let dir = project.path();
    git_project(dir, "bench");
    let body = SEVEN_JSON.as_bytes().to_vec();
    let predict = Request {
        path: "/predict",
        body: &body,
    };
    // The same sample as the protocol's tensor: the model's input (pixels / 16), one a request.
    let pixels: Vec<f32> = parse_numbers(&body).iter().map(|v| v / 16.0).collect();
    let infer_body = serde_json::json!({
        "inputs": [{ "name": "input", "datatype": "FP32", "shape": [1, 64], "data": pixels }],
    })
    .to_string()
    .into_bytes();
    let infer = Request {
        path: "/v2/models/digits/infer",
        body: &infer_body,
    };
    // --quick: one round of the small model, for a look while working on the server.
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, time, concurrencies, models): (usize, Duration, &[usize], &[usize]) = if smoke {
        (1, Duration::from_millis(200), &[1, 8], &[128])
    } else if quick {
        (1, Duration::from_secs(2), &[1, 8, 64], &[128])
    } else {
        (3, Duration::from_secs(2), &[1, 8, 64], &[128, 4096])
    };
    let mut text = String::new();
    for &hidden in models {
        let run = train(dir, hidden);
        type Start<'a> = Box<dyn Fn() -> Option<Server> + 'a>;
        let run = run.as_str();
        let checkpoint = latest_checkpoint(dir, run);
        let batching = || flammable(dir, run, &["--max-batch-size", "32"]);
        // The first row is the one the peers are compared with; rows 4 and 5 the limit, and
        // row 6 what the network adds to it when computed in the handler.
        let servers: Vec<(&str, Start, Request)> = vec![
            ("flammable, batching", Box::new(batching), predict),
            (
                "flammable, no batching",
                Box::new(|| flammable(dir, run, &["--max-batch-size", "1"])),
                predict,
            ),
            ("flammable, batching: /v2 infer", Box::new(batching), infer),
            (
                "flammable, batching, --inline off",
                Box::new(|| flammable(dir, run, &["--max-batch-size", "32", "--inline", "off"])),
                predict,
            ),
            ("bare axum: /predict", Box::new(|| bare_axum(None)), predict),
            ("bare axum: /v2 infer", Box::new(|| bare_axum(None)), infer),
            (
                "bare axum, the network in the handler: /predict",
                Box::new(|| bare_axum(Some(&checkpoint))),
                predict,
            ),
            (
                "LitServe, batching",
                Box::new(|| peer("litserve-batch", hidden)),
                predict,
            ),
            (
                "LitServe, no batching",
                Box::new(|| peer("litserve", hidden)),
                predict,
            ),
            (
                "FastAPI + PyTorch",
                Box::new(|| peer("fastapi", hidden)),
                predict,
            ),
        ];
        let names: Vec<String> = servers.iter().map(|(n, _, _)| n.to_string()).collect();
        // rows[server][concurrency] = the rounds. Each round starts each server in turn, loads
        // it at every concurrency (after a short warm-up) and stops it: one server runs at a
        // time, and drift in the machine's speed hits all alike.
        let mut rows: Vec<Vec<Vec<Round>>> =
            vec![vec![Vec::new(); concurrencies.len()]; names.len()];
        for _ in 0..rounds {
            for (si, (name, start, request)) in servers.iter().enumerate() {
                let Some(server) = start() else { continue };
                for (ci, &c) in concurrencies.iter().enumerate() {
                    let _ = load(&server.addr, c, time / 4, *request);
                    match load(&server.addr, c, time, *request) {
                        Some(r) => rows[si][ci].push(r),
                        None => eprintln!("warning: {name} failed under load at {c} client(s)"),
                    }
                }
            }
        }
        let model = format!("64→{hidden}→10");
        text.push_str(&format!(
            "### digits MLP {model}: throughput (requests/s) and latency, median of {rounds} rounds of {} s\n\n| server |",
            time.as_secs_f64()
        ));
        for c in concurrencies.iter() {
            text.push_str(&format!(" {c} client(s): req/s, p50, p99 |"));
        }
        text.push_str("\n| --- |");
        for _ in concurrencies.iter() {
            text.push_str(" --- |");
        }
        text.push('\n');
        let medians: Vec<Vec<Option<Round>>> = rows
            .iter()
            .map(|per_c| {
                per_c
                    .iter()
                    .map(|rs| {
                        (!rs.is_empty()).then(|| Round {
                            throughput: median_f64(rs.iter().map(|r| r.throughput).collect()),
                            p50: median_duration(rs.iter().map(|r| r.p50).collect()),
                            p99: median_duration(rs.iter().map(|r| r.p99).collect()),
                        })
                    })
                    .collect()
            })
            .collect();
        for (name, per_c) in names.iter().zip(&medians) {
            text.push_str(&format!("| {name} |"));
            for r in per_c {
                match r {
                    Some(r) => text.push_str(&format!(
                        " {:.0}, {:.2} ms, {:.2} ms |",
                        r.throughput,
                        r.p50.as_secs_f64() * 1e3,
                        r.p99.as_secs_f64() * 1e3
                    )),
                    None => text.push_str(" not run |"),
                }
            }
            text.push('\n');
        }
        text.push_str(&format!(
            "\nThroughput as a ratio to Flammable with batching ({model}):\n\n| server |"
        ));
        for c in concurrencies.iter() {
            text.push_str(&format!(" {c} client(s) |"));
        }
        text.push_str("\n| --- |");
        for _ in concurrencies.iter() {
            text.push_str(" --- |");
        }
        text.push('\n');
        for (name, per_c) in names.iter().zip(&medians) {
            text.push_str(&format!("| {name} |"));
            for (ci, r) in per_c.iter().enumerate() {
                match (r, medians[0][ci]) {
                    (Some(r), Some(base)) => {
                        text.push_str(&format!(" {:.2}x |", r.throughput / base.throughput))
                    }
                    _ => text.push_str(" not run |"),
                }
            }
            text.push('\n');
        }
        // Against the limit: each of Flammable's rows over the bare server's row for the same
        // request (the goal: at least 0.7x the throughput at 8 and 64 clients, and a one-client
        // p50 within 2x).
        text.push_str(&format!(
            "\nAgainst the limit, a bare axum server that reads the same request and answers a fixed answer, and against that server computing the network in its handler ({model}): throughput ratio, and p50 latency ratio (lower is better):\n\n| server |"
        ));
        for c in concurrencies.iter() {
            text.push_str(&format!(" {c} client(s) |"));
        }
        text.push_str("\n| --- |");
        for _ in concurrencies.iter() {
            text.push_str(" --- |");
        }
        text.push('\n');
        for (row, bare) in [(0, 4), (1, 4), (2, 5), (3, 4), (6, 4), (0, 6), (1, 6)] {
            text.push_str(&format!("| {} ÷ {} |", names[row], names[bare]));
            for (r, b) in medians[row].iter().zip(&medians[bare]) {
                match (r, b) {
                    (Some(r), Some(b)) => text.push_str(&format!(
                        " {:.2}x, p50 {:.2}x |",
                        r.throughput / b.throughput,
                        r.p50.as_secs_f64() / b.p50.as_secs_f64()
                    )),
                    _ => text.push_str(" not run |"),
                }
            }
            text.push('\n');
        }
        let forward = direct_forward(dir, run, if smoke { 50 } else { 5000 }, &body);
        let served = medians[1][0].map(|r| r.p50);
        text.push_str(&format!(
            "\nA direct forward pass at batch 1 ({model}, candle, one thread, with the softmax): p50 {:.3} ms. ",
            forward.as_secs_f64() * 1e3
        ));
        if let Some(served) = served {
            text.push_str(&format!(
                "One client through `serve` without batching: p50 {:.3} ms, so the server adds {:.3} ms (HTTP on loopback, JSON, the queue, the worker).\n\n",
                served.as_secs_f64() * 1e3,
                (served.as_secs_f64() - forward.as_secs_f64()) * 1e3
            ));
        } else {
            text.push_str("\n\n");
        }
    }
    // A quick look is not a result to keep.
    report("serve_load", &text, smoke || quick);
}
