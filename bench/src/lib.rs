//! Shared by the benchmarks: interleaved repetitions, medians, Markdown rows.

use std::time::{Duration, Instant};

/// Timings of one variant.
#[derive(Clone, Debug, Default)]
pub struct Samples(pub Vec<Duration>);

impl Samples {
    /// The median.
    pub fn median(&self) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    }

    /// The fastest and slowest.
    pub fn range(&self) -> (Duration, Duration) {
        let min = self.0.iter().min().copied().unwrap_or_default();
        let max = self.0.iter().max().copied().unwrap_or_default();
        (min, max)
    }
}

/// Runs each variant once as a warm-up, then `reps` rounds of every variant in turn
/// (A B A B …), so that drift in the machine's speed hits all variants alike.
pub fn interleave(
    reps: usize,
    variants: &mut [(&str, &mut dyn FnMut())],
) -> Vec<(String, Samples)> {
    for (_, f) in variants.iter_mut() {
        f();
    }
    let mut out: Vec<(String, Samples)> = variants
        .iter()
        .map(|(n, _)| (n.to_string(), Samples::default()))
        .collect();
    for _ in 0..reps {
        for (i, (_, f)) in variants.iter_mut().enumerate() {
            let t = Instant::now();
            f();
            out[i].1 .0.push(t.elapsed());
        }
    }
    out
}

/// A Markdown table: variant, median, min–max, ratio to the first variant.
pub fn table(title: &str, results: &[(String, Samples)]) -> String {
    let base = results
        .first()
        .map(|(_, s)| s.median().as_secs_f64())
        .unwrap_or(1.0);
    let mut out = format!(
        "### {title}\n\n| variant | median | min–max | ratio |\n| --- | --- | --- | --- |\n"
    );
    for (name, s) in results {
        let (lo, hi) = s.range();
        out.push_str(&format!(
            "| {name} | {:.2} ms | {:.2}–{:.2} ms | {:.2}x |\n",
            s.median().as_secs_f64() * 1e3,
            lo.as_secs_f64() * 1e3,
            hi.as_secs_f64() * 1e3,
            s.median().as_secs_f64() / base
        ));
    }
    out
}

/// Facts about this machine and build, for the head of a results file.
pub fn machine_facts() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kb: u64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    format!(
        "- machine: {cpu}, {cores} cores, {:.0} GiB\n- flammable {}, {}, {}\n- date: {}\n",
        mem_kb as f64 / 1_048_576.0,
        env!("CARGO_PKG_VERSION"),
        if cfg!(debug_assertions) {
            "debug build"
        } else {
            "release build"
        },
        std::env::consts::ARCH,
        humantime_now(),
    )
}

fn humantime_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{secs} (Unix time)")
}

/// Prints `text` and, unless `smoke`, writes it with the machine's facts to
/// `bench/results/<name>.md`.
pub fn report(name: &str, text: &str, smoke: bool) {
    println!("{text}");
    if smoke {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    let body = format!("# {name}\n\n{}\n{text}\n", machine_facts());
    if let Err(e) = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(format!("{name}.md")), body))
    {
        eprintln!("warning: cannot save the results: {e}");
    }
}
