//! The metric sink: (name, step, epoch, value, time) points appended in batches to the run's
//! `metrics.csv`. A failing writer warns once and never stops training.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// One metric value.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// The metric's name, e.g. `loss` or `val/accuracy`.
    pub name: String,
    /// The training step (iteration) it belongs to.
    pub step: u64,
    /// The epoch it belongs to (from 0).
    pub epoch: u64,
    /// The value.
    pub value: f64,
    /// Seconds since the Unix epoch when it was read back.
    pub time: f64,
}

impl Point {
    /// A point stamped with the current time.
    pub fn now(name: impl Into<String>, step: u64, epoch: u64, value: f64) -> Self {
        Point {
            name: name.into(),
            step,
            epoch,
            value,
            time: unix_now(),
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Appends points to a CSV file (`name,step,epoch,value,time`).
pub struct MetricWriter {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    failed: bool,
    batches: u64,
}

impl MetricWriter {
    /// A writer appending to `path` (created on the first batch).
    pub fn new(path: PathBuf) -> Self {
        MetricWriter {
            path,
            out: None,
            failed: false,
            batches: 0,
        }
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many batches were written (for tests that check batching).
    pub fn batches_written(&self) -> u64 {
        self.batches
    }

    /// Appends `points` and flushes them to the file. On failure, prints one warning (the
    /// first time) and drops the points: metrics never stop training.
    pub fn write(&mut self, points: &[Point]) {
        if points.is_empty() || self.failed {
            return;
        }
        if let Err(e) = self.try_write(points) {
            self.failed = true;
            eprintln!(
                "warning: cannot write metrics to {}: {e}; training goes on without them",
                self.path.display()
            );
        }
    }

    fn try_write(&mut self, points: &[Point]) -> std::io::Result<()> {
        if self.out.is_none() {
            let fresh = !self.path.exists();
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            let mut w = BufWriter::with_capacity(1 << 16, file);
            if fresh {
                writeln!(w, "name,step,epoch,value,time")?;
            }
            self.out = Some(w);
        }
        if let Some(w) = self.out.as_mut() {
            for p in points {
                writeln!(
                    w,
                    "{},{},{},{},{:.3}",
                    csv_field(&p.name),
                    p.step,
                    p.epoch,
                    p.value,
                    p.time
                )?;
            }
            w.flush()?;
        }
        self.batches += 1;
        Ok(())
    }
}

fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// Reads a metrics file back (for `show`, tests and tools).
pub fn read_metrics(path: &Path) -> std::io::Result<Vec<Point>> {
    let text = std::fs::read_to_string(path)?;
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        // Names are quoted only when they hold a comma; the numbers never do.
        let mut parts = line.rsplitn(5, ',');
        let (Some(time), Some(value), Some(epoch), Some(step), Some(name)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            continue;
        };
        let name = name
            .strip_prefix('"')
            .and_then(|n| n.strip_suffix('"'))
            .map(|n| n.replace("\"\"", "\""))
            .unwrap_or_else(|| name.to_string());
        let parsed = (step.parse(), epoch.parse(), value.parse(), time.parse());
        if let (Ok(step), Ok(epoch), Ok(value), Ok(time)) = parsed {
            out.push(Point {
                name,
                step,
                epoch,
                value,
                time,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = MetricWriter::new(dir.path().join("m.csv"));
        let a = Point::now("loss", 1, 0, 0.5);
        let b = Point::now("val,\"odd\"", 2, 1, -1.25);
        w.write(std::slice::from_ref(&a));
        w.write(std::slice::from_ref(&b));
        assert_eq!(w.batches_written(), 2);
        let back = read_metrics(w.path()).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!((back[0].name.as_str(), back[0].value), ("loss", 0.5));
        assert_eq!(
            (back[1].name.as_str(), back[1].step, back[1].value),
            ("val,\"odd\"", 2, -1.25)
        );
    }

    #[test]
    fn unwritable_path_warns_and_goes_on() {
        let mut w = MetricWriter::new(PathBuf::from("/nonexistent-dir/m.csv"));
        w.write(&[Point::now("loss", 1, 0, 0.5)]);
        w.write(&[Point::now("loss", 2, 0, 0.5)]);
        assert_eq!(w.batches_written(), 0);
    }
}
