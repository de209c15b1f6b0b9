//! The inference server under mixed traffic for a long time: `digits serve` with its default
//! limits, sent valid requests (JSON, PNG and CSV, some trickled in slowly), invalid ones
//! (ragged and nested-bomb JSON, PNG bombs, NaN, wrong shapes, bodies over the limit, 4 MiB
//! bodies) and stalled clients (a head or a body that stops), all at once, for 10 minutes
//! (`--smoke`: 10 seconds). It checks that no valid request failed, that every invalid one got
//! a 4xx (never a 5xx nor a dropped connection), and that the server's resident memory stays
//! bounded; it reports the counts and the memory over time.
//!
//! `cargo run --release -p flammable-bench --bin serve_soak [-- --smoke]` (after building the
//! examples; `bench/run` does both). Exits with 1 when a check fails.

use flammable_bench::{digits_command, free_port, git_project, report, train_digits, SEVEN_JSON};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The resident memory the server may reach: its model and runtime, plus its
/// `--max-inflight-bytes` (64 MiB) of requests, twice over for what decoding them holds.
const RSS_BOUND_MIB: u64 = 400;

/// The "seven" of the digits data set, as the JSON the server takes.
const SEVEN: &str = SEVEN_JSON;

/// The server, killed when dropped.
struct Server {
    addr: String,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What each kind of traffic did.
#[derive(Default)]
struct Counts {
    valid: AtomicU64,
    valid_failed: AtomicU64,
    invalid: AtomicU64,
    invalid_5xx: AtomicU64,
    slow_valid: AtomicU64,
    stalled: AtomicU64,
    stalled_unexpected: AtomicU64,
}

fn fail(what: &str, counter: &AtomicU64, detail: String) {
    if counter.fetch_add(1, Ordering::Relaxed) < 5 {
        eprintln!("{what}: {detail}");
    }
}

/// One request on a fresh connection: its status (0 when the connection closed without an
/// answer).
fn send(addr: &str, content_type: &str, body: &[u8]) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "POST /predict HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    // A server may answer (413) before the whole body is sent, and close.
    let _ = stream.write_all(body);
    status(&mut stream)
}

fn status(stream: &mut TcpStream) -> std::io::Result<u16> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    Ok(code)
}

/// The server's resident memory in MiB, from /proc.
fn rss_mib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024)
}

fn start(project: &Path, run: &str) -> Server {
    let port = free_port();
    let child = digits_command(project)
        .args([
            "serve",
            "-q",
            run,
            "--threads",
            "1",
            "--port",
            &port.to_string(),
        ])
        .args(["--read-timeout-ms", "2000"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("digits serve starts");
    let server = Server {
        addr: format!("127.0.0.1:{port}"),
        child,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(&server.addr) {
            let _ = write!(
                s,
                "GET /ready HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                server.addr
            );
            if status(&mut s).is_ok_and(|c| c == 200) {
                return server;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the server did not get ready");
}

/// A PNG header declaring `w` x `h` pixels, then 2 KB of nothing.
fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = Vec::from(*b"IHDR");
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut crc = !0u32;
    for &b in &ihdr {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    let mut png = Vec::from(*b"\x89PNG\r\n\x1a\n");
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&(!crc).to_be_bytes());
    png.extend_from_slice(&[0; 2048]);
    png
}

/// The invalid bodies, each with its content type.
fn invalid_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let mut nested = "[".repeat(10) + "1";
    for _ in 0..10 {
        nested.push_str(&",1".repeat(39));
        nested.push(']');
    }
    let mut nan = vec!["0"; 64];
    nan[7] = "nan";
    let mut big = vec!["0"; 64];
    big[7] = "1e39";
    vec![
        ("application/json", nested.into_bytes()),
        ("application/json", b"[[1, 2], [3]]".to_vec()),
        ("application/json", b"[1, 2, 3]".to_vec()),
        (
            "application/json",
            format!("[{}]", big.join(",")).into_bytes(),
        ),
        ("text/csv", nan.join(",").into_bytes()),
        ("image/png", png_bomb(1_000_000, 2_147_483_647)),
        ("image/png", png_bomb(30_000, 30_000)),
        ("application/json", vec![b' '; 5 << 20]),
    ]
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let length = if smoke {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(600)
    };
    let project = tempfile::tempdir().expect("temp dir");
    let dir = project.path();
    git_project(dir, "soak");
    let run = train_digits(dir, &[]);
    let server = start(dir, &run);
    let pid = server.child.id();
    let rss_start = rss_mib(pid).unwrap_or(0);
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data");
    let seven_png = std::fs::read(data.join("seven.png")).expect("seven.png");
    let seven_csv = std::fs::read(data.join("seven.csv")).expect("seven.csv");
    let valid: Arc<Vec<(&str, Vec<u8>)>> = Arc::new(vec![
        ("application/json", SEVEN.as_bytes().to_vec()),
        ("image/png", seven_png),
        ("text/csv", seven_csv),
    ]);
    let invalid = Arc::new(invalid_bodies());
    // A 4 MiB body of 64 numbers padded with spaces: valid, and heavy to hold.
    let mut heavy = SEVEN.as_bytes().to_vec();
    heavy.resize(4 << 20, b' ');
    let heavy = Arc::new(heavy);
    let mut threads = Vec::new();
    let spawn = |threads: &mut Vec<std::thread::JoinHandle<()>>,
                 f: Box<dyn Fn(u64) + Send + Sync>| {
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                f(i);
                i += 1;
            }
        }));
    };
    let addr = server.addr.clone();
    // Valid requests, 8 clients.
    for _ in 0..8 {
        let (addr, valid, counts) = (addr.clone(), valid.clone(), counts.clone());
        spawn(
            &mut threads,
            Box::new(move |i| {
                let (kind, body) = &valid[(i % 3) as usize];
                counts.valid.fetch_add(1, Ordering::Relaxed);
                match send(&addr, kind, body) {
                    Ok(200) => {}
                    other => fail(
                        "a valid request failed",
                        &counts.valid_failed,
                        format!("{kind}: {other:?}"),
                    ),
                }
            }),
        );
    }
    // Invalid requests, 2 clients.
    for _ in 0..2 {
        let (addr, invalid, counts) = (addr.clone(), invalid.clone(), counts.clone());
        spawn(
            &mut threads,
            Box::new(move |i| {
                let (kind, body) = &invalid[(i as usize) % invalid.len()];
                counts.invalid.fetch_add(1, Ordering::Relaxed);
                match send(&addr, kind, body) {
                    Ok(code) if (400..500).contains(&code) => {}
                    // A body over the limit may be cut off before its answer is read.
                    Ok(0) | Err(_) if body.len() > 4 << 20 => {}
                    other => fail(
                        "an invalid request got no 4xx",
                        &counts.invalid_5xx,
                        format!("{kind}, {} bytes: {other:?}", body.len()),
                    ),
                }
            }),
        );
    }
    // Heavy valid bodies, 2 clients; and valid bodies trickled in over a second, 2 clients.
    for c in 0..4 {
        let (addr, heavy, counts) = (addr.clone(), heavy.clone(), counts.clone());
        spawn(
            &mut threads,
            Box::new(move |_| {
                counts.slow_valid.fetch_add(1, Ordering::Relaxed);
                let outcome = if c < 2 {
                    send(&addr, "application/json", &heavy)
                } else {
                    trickle(&addr, SEVEN.as_bytes())
                };
                match outcome {
                    Ok(200) => {}
                    other => fail(
                        "a slow valid request failed",
                        &counts.valid_failed,
                        format!("{other:?}"),
                    ),
                }
            }),
        );
    }
    // Stalled clients, 8: a head or a body that stops; the server must close or answer 408.
    for c in 0..8 {
        let (addr, counts) = (addr.clone(), counts.clone());
        spawn(
            &mut threads,
            Box::new(move |_| {
                counts.stalled.fetch_add(1, Ordering::Relaxed);
                let head = if c % 2 == 0 {
                    format!("POST /predict HTTP/1.1\r\nHost: {addr}\r\n")
                } else {
                    format!("POST /predict HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100000\r\n\r\n[1,2,")
                };
                let outcome = TcpStream::connect(&addr).and_then(|mut s| {
                    s.set_read_timeout(Some(Duration::from_secs(30)))?;
                    s.write_all(head.as_bytes())?;
                    status(&mut s)
                });
                match outcome {
                    Ok(0 | 408) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                    other => fail(
                        "a stalled client was not cut off",
                        &counts.stalled_unexpected,
                        format!("{other:?}"),
                    ),
                }
            }),
        );
    }
    // Memory, every second.
    let mut samples: Vec<(u64, u64)> = Vec::new();
    while started.elapsed() < length {
        std::thread::sleep(Duration::from_secs(1));
        if let Some(rss) = rss_mib(pid) {
            samples.push((started.elapsed().as_secs(), rss));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    std::thread::sleep(Duration::from_secs(3));
    let rss_after = rss_mib(pid).unwrap_or(0);
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let minute = |from: u64, to: u64| {
        samples
            .iter()
            .filter(|s| s.0 >= from && s.0 < to)
            .map(|s| s.1)
            .max()
            .unwrap_or(0)
    };
    let secs = length.as_secs();
    let tenth = (secs / 10).max(1);
    let (first, last) = (minute(0, tenth + 1), minute(secs - tenth, secs + 1));
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let mut text = format!(
        "### `digits serve` under {:.0} s of mixed traffic (default limits, `--read-timeout-ms 2000`)\n\n| traffic | requests | per second | failed |\n| --- | --- | --- | --- |\n",
        length.as_secs_f64()
    );
    for (name, n, failed) in [
        (
            "valid (JSON, PNG, CSV), 8 clients",
            get(&counts.valid),
            get(&counts.valid_failed),
        ),
        (
            "valid and slow (4 MiB bodies, bodies trickled over 1 s), 4 clients",
            get(&counts.slow_valid),
            0,
        ),
        (
            "invalid (bombs, ragged, NaN, wrong shape, over the limit), 2 clients: no 4xx",
            get(&counts.invalid),
            get(&counts.invalid_5xx),
        ),
        (
            "stalled (a head or a body that stops), 8 clients: not cut off",
            get(&counts.stalled),
            get(&counts.stalled_unexpected),
        ),
    ] {
        text.push_str(&format!(
            "| {name} | {n} | {:.0} | {failed} |\n",
            n as f64 / elapsed
        ));
    }
    text.push_str(&format!(
        "\nValid requests failed: {} (of {}). Server RSS: {rss_start} MiB before the traffic, peak {peak} MiB (bound {RSS_BOUND_MIB} MiB), {first} MiB at most in the first tenth of the time and {last} MiB in the last, {rss_after} MiB 3 s after the traffic stopped.\n",
        get(&counts.valid_failed),
        get(&counts.valid) + get(&counts.slow_valid),
    ));
    report("serve_soak", &text, smoke);
    let ok = get(&counts.valid_failed) == 0
        && get(&counts.invalid_5xx) == 0
        && get(&counts.stalled_unexpected) == 0
        && peak <= RSS_BOUND_MIB;
    drop(server);
    if !ok {
        eprintln!("serve_soak: a check failed (see above)");
        std::process::exit(1);
    }
}

/// A valid body sent in 4 pieces a quarter of a second apart (well within the read timeout).
fn trickle(addr: &str, body: &[u8]) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "POST /predict HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    for piece in body.chunks(body.len().div_ceil(4)) {
        stream.write_all(piece)?;
        stream.flush()?;
        std::thread::sleep(Duration::from_millis(250));
    }
    status(&mut stream)
}
