//! The server's counters and histograms, written in Prometheus' text format for
//! `GET /metrics`, each series labelled with the run whose model answered.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Upper bounds of the latency histograms, in seconds.
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds of the batch-size histogram.
const SIZES: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// A Prometheus histogram: counts per upper bound (not cumulative here), sum and count.
#[derive(Clone, Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, run: &str) {
        let mut cumulative = 0;
        for (bound, n) in self.bounds.iter().zip(&self.counts) {
            cumulative += n;
            let _ = writeln!(
                out,
                "{name}_bucket{{run=\"{run}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{run=\"{run}\",le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{run=\"{run}\"}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{run=\"{run}\"}} {}", self.count);
    }
}

/// What one run's model did.
#[derive(Clone, Debug)]
struct PerRun {
    requests: BTreeMap<u16, u64>,
    request_seconds: Histogram,
    queue_seconds: Histogram,
    inference_seconds: Histogram,
    batch_size: Histogram,
    dropped: u64,
}

impl PerRun {
    fn new() -> Self {
        PerRun {
            requests: BTreeMap::new(),
            request_seconds: Histogram::new(SECONDS),
            queue_seconds: Histogram::new(SECONDS),
            inference_seconds: Histogram::new(SECONDS),
            batch_size: Histogram::new(SIZES),
            dropped: 0,
        }
    }
}

/// Which histogram of a run's series.
type HistogramOf = fn(&PerRun) -> &Histogram;

/// Every series of the server, by run.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    runs: BTreeMap<String, PerRun>,
}

/// The totals a serve run records when it ends.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    /// Requests answered, by status.
    pub by_status: BTreeMap<u16, u64>,
    /// Forward passes.
    pub batches: u64,
    /// Requests computed (the sum of the batch sizes).
    pub computed: u64,
    /// Time spent in forward passes, in seconds.
    pub inference_seconds: f64,
    /// Requests whose client had gone before the model was free.
    pub dropped: u64,
}

impl Totals {
    /// What the serve run records: requests by outcome, batches, means.
    pub fn results(&self) -> BTreeMap<String, f64> {
        let count = |pred: &dyn Fn(u16) -> bool| -> f64 {
            let n: u64 = self
                .by_status
                .iter()
                .filter(|(s, _)| pred(**s))
                .map(|(_, n)| *n)
                .sum();
            n as f64
        };
        let mut results = BTreeMap::from([
            ("requests".to_string(), count(&|_| true)),
            ("answered".to_string(), count(&|s| s < 300)),
            ("refused".to_string(), count(&|s| (400..500).contains(&s))),
            ("overloaded".to_string(), count(&|s| s == 503)),
            ("failed".to_string(), count(&|s| s >= 500 && s != 503)),
            ("batches".to_string(), self.batches as f64),
            ("dropped".to_string(), self.dropped as f64),
        ]);
        if self.batches > 0 {
            let batches = self.batches as f64;
            results.insert("mean_batch_size".into(), self.computed as f64 / batches);
            results.insert(
                "mean_inference_ms".into(),
                self.inference_seconds * 1e3 / batches,
            );
        }
        results
    }
}

impl Metrics {
    fn run(&mut self, run: &str) -> &mut PerRun {
        self.runs.entry(run.to_string()).or_insert_with(PerRun::new)
    }

    /// A request answered with `status` after `seconds` in all.
    pub fn request(&mut self, run: &str, status: u16, seconds: f64) {
        let r = self.run(run);
        *r.requests.entry(status).or_default() += 1;
        r.request_seconds.observe(seconds);
    }

    /// A request that waited `seconds` in the queue.
    pub fn queued(&mut self, run: &str, seconds: f64) {
        self.run(run).queue_seconds.observe(seconds);
    }

    /// A forward pass over `size` requests that took `seconds`.
    pub fn batch(&mut self, run: &str, size: usize, seconds: f64) {
        let r = self.run(run);
        r.batch_size.observe(size as f64);
        r.inference_seconds.observe(seconds);
    }

    /// A request dropped before compute: its client had gone.
    pub fn dropped(&mut self, run: &str) {
        self.run(run).dropped += 1;
    }

    /// The totals over every run.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for r in self.runs.values() {
            for (status, n) in &r.requests {
                *t.by_status.entry(*status).or_default() += n;
            }
            t.batches += r.batch_size.count;
            t.computed += r.batch_size.sum as u64;
            t.inference_seconds += r.inference_seconds.sum;
            t.dropped += r.dropped;
        }
        t
    }

    /// The Prometheus text exposition, with the queue's depth and readiness as gauges.
    pub fn render(&self, queue_depth: usize, ready: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP flammable_requests_total Requests answered, by HTTP status."
        );
        let _ = writeln!(out, "# TYPE flammable_requests_total counter");
        for (run, r) in &self.runs {
            for (status, n) in &r.requests {
                let _ = writeln!(
                    out,
                    "flammable_requests_total{{run=\"{run}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let _ = writeln!(out, "# HELP flammable_dropped_total Requests dropped before compute because their client had gone.");
        let _ = writeln!(out, "# TYPE flammable_dropped_total counter");
        for (run, r) in &self.runs {
            let _ = writeln!(
                out,
                "flammable_dropped_total{{run=\"{run}\"}} {}",
                r.dropped
            );
        }
        let histograms: [(&str, &str, HistogramOf); 4] = [
            (
                "flammable_request_duration_seconds",
                "Time from a request's arrival to its answer.",
                |r| &r.request_seconds,
            ),
            (
                "flammable_queue_wait_seconds",
                "Time a request waited for the model.",
                |r| &r.queue_seconds,
            ),
            (
                "flammable_inference_seconds",
                "Time of one batch through the model (collate, forward, postprocess).",
                |r| &r.inference_seconds,
            ),
            (
                "flammable_batch_size",
                "Requests computed in one forward pass.",
                |r| &r.batch_size,
            ),
        ];
        for (name, help, of) in histograms {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} histogram");
            for (run, r) in &self.runs {
                of(r).write(&mut out, name, run);
            }
        }
        let _ = writeln!(
            out,
            "# HELP flammable_queue_depth Requests waiting for the model."
        );
        let _ = writeln!(out, "# TYPE flammable_queue_depth gauge");
        let _ = writeln!(out, "flammable_queue_depth {queue_depth}");
        let _ = writeln!(
            out,
            "# HELP flammable_ready 1 once the model has computed its warm-up batch."
        );
        let _ = writeln!(out, "# TYPE flammable_ready gauge");
        let _ = writeln!(out, "flammable_ready {}", u8::from(ready));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let mut m = Metrics::default();
        m.request("r1", 200, 0.002);
        m.request("r1", 200, 0.2);
        m.request("r1", 503, 0.0001);
        m.batch("r1", 3, 0.004);
        m.batch("r1", 1, 0.001);
        m.queued("r1", 0.0);
        m.dropped("r1");
        let text = m.render(2, true);
        assert!(
            text.contains("flammable_requests_total{run=\"r1\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("flammable_requests_total{run=\"r1\",status=\"503\"} 1"));
        assert!(text.contains("flammable_batch_size_bucket{run=\"r1\",le=\"1\"} 1"));
        assert!(text.contains("flammable_batch_size_bucket{run=\"r1\",le=\"4\"} 2"));
        assert!(text.contains("flammable_batch_size_bucket{run=\"r1\",le=\"+Inf\"} 2"));
        assert!(text.contains("flammable_request_duration_seconds_count{run=\"r1\"} 3"));
        assert!(text.contains("flammable_dropped_total{run=\"r1\"} 1"));
        assert!(text.contains("flammable_queue_depth 2") && text.contains("flammable_ready 1"));
        let t = m.totals();
        assert_eq!((t.batches, t.computed, t.dropped), (2, 4, 1));
        assert_eq!(t.by_status[&200], 2);
    }
}
