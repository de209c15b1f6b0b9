//! The server's counters and histograms for `GET /metrics`, kept and written in Prometheus'
//! (OpenMetrics) text format by `prometheus-client`; each series labelled with the run whose
//! model answered. Beside them, the totals the serve run records when it stops.

use super::histogram::Histogram;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

/// Upper bounds of the latency histograms, in seconds.
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds of the batch-size histogram.
const SIZES: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// A series of one run.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabel {
    run: String,
}

/// A request counter's series: the run and the answer's status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    run: String,
    status: u16,
}

/// Makes the histograms of a family, with its bounds.
#[derive(Clone, Copy)]
struct Buckets(&'static [f64]);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0)
    }
}

type Histograms = Family<RunLabel, Histogram, Buckets>;

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

/// The series of one run that every request touches, each taken out of its family once, when
/// first used (a series appears in `/metrics` once something was counted in it): a family's
/// lookup builds its label and hashes it, and five of them were a fiftieth of a small
/// request's time (`bench/results/serve_load.md`). Each handle shares its series with the
/// family, which writes it in `/metrics`.
struct RunSeries {
    run: String,
    answered: OnceLock<Counter>,
    inline: OnceLock<Counter>,
    request_seconds: OnceLock<Histogram>,
    queue_seconds: OnceLock<Histogram>,
    inference_seconds: OnceLock<Histogram>,
    batch_size: OnceLock<Histogram>,
}

/// The totals as the hot path counts them: atomics for what every request or batch adds,
/// a lock only for the statuses other than 200.
#[derive(Default)]
struct Tally {
    answered: AtomicU64,
    by_status: Mutex<BTreeMap<u16, u64>>,
    batches: AtomicU64,
    computed: AtomicU64,
    inference_nanos: AtomicU64,
    dropped: AtomicU64,
}

/// Every series of the server.
pub struct Metrics {
    registry: Registry,
    requests: Family<StatusLabels, Counter>,
    dropped: Family<RunLabel, Counter>,
    inline: Family<RunLabel, Counter>,
    request_seconds: Histograms,
    queue_seconds: Histograms,
    inference_seconds: Histograms,
    batch_size: Histograms,
    queue_depth: Gauge,
    inflight_bytes: Gauge,
    ready: Gauge,
    /// The series of the run that answered last (nearly always the one served).
    last: RwLock<Option<Arc<RunSeries>>>,
    tally: Tally,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<StatusLabels, Counter>::default();
        let dropped = Family::<RunLabel, Counter>::default();
        let inline = Family::<RunLabel, Counter>::default();
        let histograms = |bounds| Histograms::new_with_constructor(Buckets(bounds));
        let (request_seconds, queue_seconds, inference_seconds, batch_size) = (
            histograms(SECONDS),
            histograms(SECONDS),
            histograms(SECONDS),
            histograms(SIZES),
        );
        let (queue_depth, inflight_bytes, ready) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        // prometheus-client ends each help text with a period of its own.
        registry.register(
            "flammable_requests",
            "Requests answered, by HTTP status",
            requests.clone(),
        );
        registry.register(
            "flammable_dropped",
            "Requests dropped before compute because their client had gone",
            dropped.clone(),
        );
        registry.register(
            "flammable_inline",
            "Samples computed on the thread that read their request, without the queue (--inline)",
            inline.clone(),
        );
        registry.register(
            "flammable_request_duration_seconds",
            "Time from a request's arrival to its answer",
            request_seconds.clone(),
        );
        registry.register(
            "flammable_queue_wait_seconds",
            "Time a request waited for the model",
            queue_seconds.clone(),
        );
        registry.register(
            "flammable_inference_seconds",
            "Time of one batch through the model (collate, forward, postprocess)",
            inference_seconds.clone(),
        );
        registry.register(
            "flammable_batch_size",
            "Requests computed in one forward pass",
            batch_size.clone(),
        );
        registry.register(
            "flammable_queue_depth",
            "Requests waiting for the model",
            queue_depth.clone(),
        );
        registry.register(
            "flammable_inflight_bytes",
            "Request bytes the server holds (bodies arriving, being read or waiting for the model)",
            inflight_bytes.clone(),
        );
        registry.register(
            "flammable_ready",
            "1 once the model has computed its warm-up batch",
            ready.clone(),
        );
        Metrics {
            registry,
            requests,
            dropped,
            inline,
            request_seconds,
            queue_seconds,
            inference_seconds,
            batch_size,
            queue_depth,
            inflight_bytes,
            ready,
            last: RwLock::new(None),
            tally: Tally::default(),
        }
    }
}

fn label(run: &str) -> RunLabel {
    RunLabel {
        run: run.to_string(),
    }
}

impl Metrics {
    /// The series of run `run`: the last run's, else a fresh set (and kept).
    fn series(&self, run: &str) -> Arc<RunSeries> {
        if let Some(series) = &*self.last.read().unwrap_or_else(PoisonError::into_inner) {
            if series.run == run {
                return series.clone();
            }
        }
        let series = Arc::new(RunSeries {
            run: run.to_string(),
            answered: OnceLock::new(),
            inline: OnceLock::new(),
            request_seconds: OnceLock::new(),
            queue_seconds: OnceLock::new(),
            inference_seconds: OnceLock::new(),
            batch_size: OnceLock::new(),
        });
        *self.last.write().unwrap_or_else(PoisonError::into_inner) = Some(series.clone());
        series
    }

    /// A request answered with `status` after `seconds` in all, by run `run`'s model.
    pub fn request(&self, run: &str, status: u16, seconds: f64) {
        let series = self.series(run);
        if status == 200 {
            series
                .answered
                .get_or_init(|| {
                    self.requests
                        .get_or_create(&StatusLabels {
                            run: run.to_string(),
                            status,
                        })
                        .clone()
                })
                .inc();
            self.tally.answered.fetch_add(1, Ordering::Relaxed);
        } else {
            self.requests
                .get_or_create(&StatusLabels {
                    run: run.to_string(),
                    status,
                })
                .inc();
            *self
                .tally
                .by_status
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(status)
                .or_default() += 1;
        }
        series
            .request_seconds
            .get_or_init(|| self.request_seconds.get_or_create(&label(run)).clone())
            .observe(seconds);
    }

    /// A request that waited `seconds` in the queue.
    pub fn queued(&self, run: &str, seconds: f64) {
        self.series(run)
            .queue_seconds
            .get_or_init(|| self.queue_seconds.get_or_create(&label(run)).clone())
            .observe(seconds);
    }

    /// A forward pass over `size` requests that took `seconds`.
    pub fn batch(&self, run: &str, size: usize, seconds: f64) {
        self.count_batch(&self.series(run), size, seconds);
    }

    fn count_batch(&self, series: &RunSeries, size: usize, seconds: f64) {
        let run = series.run.as_str();
        series
            .batch_size
            .get_or_init(|| self.batch_size.get_or_create(&label(run)).clone())
            .observe(size as f64);
        series
            .inference_seconds
            .get_or_init(|| self.inference_seconds.get_or_create(&label(run)).clone())
            .observe(seconds);
        let t = &self.tally;
        t.batches.fetch_add(1, Ordering::Relaxed);
        t.computed.fetch_add(size as u64, Ordering::Relaxed);
        // Whole nanoseconds: 584 years of inference before this wraps.
        t.inference_nanos
            .fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
    }

    /// `samples` samples computed on the thread that read their request.
    fn count_inline(&self, series: &RunSeries, samples: usize) {
        series
            .inline
            .get_or_init(|| self.inline.get_or_create(&label(&series.run)).clone())
            .inc_by(samples as u64);
    }

    /// The samples and the batch ([`Metrics::batch`]) of a request's `samples` computed on the
    /// thread that read it, in `seconds`, the run's series looked up once.
    pub fn computed_inline(&self, run: &str, samples: usize, seconds: f64) {
        let series = self.series(run);
        self.count_inline(&series, samples);
        self.count_batch(&series, samples, seconds);
    }

    /// A request dropped before compute: its client had gone.
    pub fn dropped(&self, run: &str) {
        self.dropped.get_or_create(&label(run)).inc();
        self.tally.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// The totals over every run.
    pub fn totals(&self) -> Totals {
        let t = &self.tally;
        let mut by_status = t
            .by_status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let answered = t.answered.load(Ordering::Relaxed);
        if answered > 0 {
            by_status.insert(200, answered);
        }
        Totals {
            by_status,
            batches: t.batches.load(Ordering::Relaxed),
            computed: t.computed.load(Ordering::Relaxed),
            inference_seconds: t.inference_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            dropped: t.dropped.load(Ordering::Relaxed),
        }
    }

    /// The text exposition, with the queue's depth, the request bytes held and readiness as
    /// gauges.
    pub fn render(&self, queue_depth: usize, inflight_bytes: usize, ready: bool) -> String {
        self.queue_depth
            .set(i64::try_from(queue_depth).unwrap_or(i64::MAX));
        self.inflight_bytes
            .set(i64::try_from(inflight_bytes).unwrap_or(i64::MAX));
        self.ready.set(i64::from(ready));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.request("r1", 200, 0.002);
        m.request("r1", 200, 0.2);
        m.request("r1", 503, 0.0001);
        m.batch("r1", 3, 0.004);
        m.batch("r1", 1, 0.001);
        m.queued("r1", 0.0);
        m.dropped("r1");
        let text = m.render(2, 100, true);
        assert!(
            text.contains("flammable_requests_total{run=\"r1\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("flammable_requests_total{run=\"r1\",status=\"503\"} 1"));
        assert!(text.contains("flammable_batch_size_bucket{le=\"1.0\",run=\"r1\"} 1"));
        assert!(text.contains("flammable_batch_size_bucket{le=\"4.0\",run=\"r1\"} 2"));
        assert!(text.contains("flammable_batch_size_bucket{le=\"+Inf\",run=\"r1\"} 2"));
        assert!(text.contains("flammable_request_duration_seconds_count{run=\"r1\"} 3"));
        assert!(text.contains("flammable_dropped_total{run=\"r1\"} 1"));
        assert!(text.contains("flammable_queue_depth 2") && text.contains("flammable_ready 1"));
        assert!(text.contains("flammable_inflight_bytes 100"));
        let t = m.totals();
        assert_eq!((t.batches, t.computed, t.dropped), (2, 4, 1));
        assert_eq!(t.by_status[&200], 2);
        assert!((t.inference_seconds - 0.005).abs() < 1e-9);
    }

    #[test]
    fn each_run_keeps_its_own_series_when_answers_alternate() {
        let m = Metrics::default();
        for run in ["r1", "r2", "r1", "r1", "r2"] {
            m.request(run, 200, 0.001);
            m.computed_inline(run, 2, 0.001);
        }
        let text = m.render(0, 0, true);
        for (run, n, samples) in [("r1", 3, 6), ("r2", 2, 4)] {
            assert!(
                text.contains(&format!(
                    "flammable_requests_total{{run=\"{run}\",status=\"200\"}} {n}"
                )),
                "{text}"
            );
            assert!(text.contains(&format!(
                "flammable_inline_total{{run=\"{run}\"}} {samples}"
            )));
            assert!(text.contains(&format!(
                "flammable_request_duration_seconds_count{{run=\"{run}\"}} {n}"
            )));
        }
        assert_eq!(m.totals().by_status[&200], 5);
    }

    #[test]
    fn a_series_appears_once_something_is_counted_in_it() {
        let m = Metrics::default();
        m.request("r1", 413, 0.001);
        let text = m.render(0, 0, true);
        assert!(text.contains("flammable_requests_total{run=\"r1\",status=\"413\"} 1"));
        for absent in [
            "status=\"200\"",
            "flammable_inline_total{",
            "flammable_batch_size_count{",
        ] {
            assert!(!text.contains(absent), "{absent} in {text}");
        }
    }

    #[test]
    fn labels_are_escaped() {
        let m = Metrics::default();
        m.request("a\"b\\c\nd", 200, 0.001);
        let text = m.render(0, 0, false);
        assert!(
            text.contains(r#"run="a\"b\\c\nd""#),
            "an unescaped label: {text}"
        );
    }
}
