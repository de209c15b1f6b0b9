//! Progress while training: an indicatif bar on a terminal, plain periodic lines otherwise;
//! results as a small table.

use crate::env::Env;
use crate::train::scalars::Results;
use crate::util::number::metric_text;
use indicatif::{ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};

/// Plain-line mode prints at most one line per this interval between epoch ends.
const LINE_INTERVAL: Duration = Duration::from_secs(10);

/// The progress display of one training run.
pub struct Progress {
    bar: Option<ProgressBar>,
    epochs: u64,
    start: Instant,
    /// The step training started from (a resumed run's, or one trained further): speeds
    /// count only the steps taken since.
    first_step: u64,
    last_line: Instant,
}

impl Progress {
    /// A display for `epochs` epochs of `steps_per_epoch` steps (when known), training from
    /// step `first_step`.
    pub fn new(env: &Env, epochs: u64, steps_per_epoch: Option<usize>, first_step: u64) -> Self {
        let bar = env.interactive().then(|| {
            let total = steps_per_epoch.map(|s| s as u64 * epochs);
            let bar = total.map_or_else(ProgressBar::new_spinner, ProgressBar::new);
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {msg} {per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_position(first_step);
            bar.reset_eta();
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            epochs,
            start: now,
            first_step,
            last_line: now,
        }
    }

    /// An epoch begins.
    pub fn epoch(&self, epoch: u64) {
        if let Some(b) = &self.bar {
            b.set_prefix(format!("epoch {}/{}", epoch + 1, self.epochs));
        }
    }

    /// One step done (no device access).
    pub fn step(&self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    /// The latest read-back losses; in plain mode, a line now and then.
    pub fn losses(&mut self, env: &Env, epoch: u64, step: u64, losses: &Results) {
        let text = format_values(losses);
        match &self.bar {
            Some(b) => {
                b.set_prefix(format!("epoch {}/{}", epoch + 1, self.epochs));
                b.set_message(text);
            }
            None if self.last_line.elapsed() >= LINE_INTERVAL => {
                self.line(
                    env,
                    &format!(
                        "epoch {}/{} step {step} {text} {}",
                        epoch + 1,
                        self.epochs,
                        self.rate(step)
                    ),
                );
            }
            None => {}
        }
    }

    /// The end of an epoch: always a line.
    pub fn epoch_end(&mut self, env: &Env, epoch: u64, step: u64, losses: &Results) {
        let line = format!(
            "epoch {}/{} step {step} {} {}",
            epoch + 1,
            self.epochs,
            format_values(losses),
            self.rate(step)
        );
        self.line(env, &line);
    }

    /// Prints `line` above the bar (or plainly) and copies it to the run log.
    pub fn line(&mut self, env: &Env, line: &str) {
        self.last_line = Instant::now();
        match &self.bar {
            Some(b) => {
                b.println(line);
                if let Some(run) = env.run() {
                    run.log_line(line);
                }
            }
            None => env.say(line),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    fn rate(&self, step: u64) -> String {
        let secs = self.start.elapsed().as_secs_f64();
        if secs > 0.0 {
            format!(
                "({:.0} steps/s)",
                step.saturating_sub(self.first_step) as f64 / secs
            )
        } else {
            String::new()
        }
    }
}

/// `loss 0.1234 acc 0.9000`.
pub fn format_values(values: &Results) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{k} {}", metric_text(*v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A two-column table of results under `title`.
pub fn table(title: &str, results: &Results) -> String {
    let width = results.keys().map(|k| k.len()).max().unwrap_or(6).max(6);
    let mut out = format!("{title}\n  {:<width$}  value\n", "metric");
    for (k, v) in results {
        out.push_str(&format!("  {k:<width$}  {}\n", metric_text(*v)));
    }
    out.pop();
    out
}
