//! The metric sink: (name, step, epoch, value, time) points appended in batches to the run's
//! `metrics.bin`. A failing writer warns once and never stops training.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// One metric value.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// The metric's name, e.g. `loss` or `val/accuracy` (shared by the points of a series).
    pub name: Arc<str>,
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
    pub fn now(name: impl Into<Arc<str>>, step: u64, epoch: u64, value: f64) -> Self {
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

/// Bytes per stored point: name id u32, epoch u32, step u64, value f64, time f64 (little-endian).
pub(super) const RECORD: usize = 32;

/// Appends points to a run's metric files: `<stem>.bin` (fixed-size binary records, so that
/// a million points read back in tens of milliseconds) and `<stem>.names` (one metric name
/// per line; a record names its metric by line number).
pub struct MetricWriter {
    path: PathBuf,
    names: Vec<String>,
    out: Option<(File, File)>,
    failed: bool,
    batches: u64,
    buf: Vec<u8>,
}

impl MetricWriter {
    /// A writer appending to `path` (`….bin`, created on the first batch) and the names file
    /// beside it.
    pub fn new(path: PathBuf) -> Self {
        MetricWriter {
            names: read_names(&names_path(&path)),
            path,
            out: None,
            failed: false,
            batches: 0,
            buf: Vec::new(),
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

    /// How many points the file holds.
    pub fn points(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len() / RECORD as u64)
    }

    /// Drops every point after the first `points` (a resumed run discards what was recorded
    /// after its checkpoint, so that its series equals an uninterrupted run's).
    pub fn truncate(&mut self, points: u64) -> std::io::Result<()> {
        self.out = None;
        match OpenOptions::new().write(true).open(&self.path) {
            Ok(f) => f.set_len(points * RECORD as u64),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Appends `points` as one write. On failure, prints one warning (the first time) and
    /// drops the points: metrics never stop training.
    pub fn write(&mut self, points: &[Point]) {
        if points.is_empty() || self.failed {
            return;
        }
        if let Err(e) = self.try_write(points) {
            self.failed = true;
            crate::util::stderr::errln!(
                "warning: cannot write metrics to {}: {e}; training goes on without them",
                self.path.display()
            );
        }
    }

    fn try_write(&mut self, points: &[Point]) -> std::io::Result<()> {
        if self.out.is_none() {
            let open = |p: &Path| OpenOptions::new().create(true).append(true).open(p);
            self.out = Some((open(&self.path)?, open(&names_path(&self.path))?));
        }
        let Some((records, names)) = self.out.as_mut() else {
            return Ok(());
        };
        self.buf.clear();
        let mut new_names = String::new();
        for p in points {
            let id = match self.names.iter().position(|n| **n == *p.name) {
                Some(i) => i,
                None => {
                    self.names.push(p.name.replace('\n', " "));
                    new_names.push_str(&self.names[self.names.len() - 1]);
                    new_names.push('\n');
                    self.names.len() - 1
                }
            };
            self.buf.extend_from_slice(&(id as u32).to_le_bytes());
            self.buf.extend_from_slice(&(p.epoch as u32).to_le_bytes());
            self.buf.extend_from_slice(&p.step.to_le_bytes());
            self.buf.extend_from_slice(&p.value.to_le_bytes());
            self.buf.extend_from_slice(&p.time.to_le_bytes());
        }
        // Names first: a record never refers to a name that is not on disk.
        if !new_names.is_empty() {
            names.write_all(new_names.as_bytes())?;
        }
        records.write_all(&self.buf)?;
        self.batches += 1;
        Ok(())
    }
}

pub(super) fn names_path(path: &Path) -> PathBuf {
    path.with_extension("names")
}

fn read_names(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Reads a metrics file back (for `show`, tests and tools). A record cut short by a crash
/// is ignored, and so is one that names no metric of `metrics.names` (see
/// [`read_metrics_checked`] to count those).
pub fn read_metrics(path: &Path) -> std::io::Result<Vec<Point>> {
    read_metrics_checked(path).map(|(points, _)| points)
}

/// [`read_metrics`], also returning how many whole records name no metric of
/// `metrics.names`: more than zero means the files are damaged.
pub fn read_metrics_checked(path: &Path) -> std::io::Result<(Vec<Point>, usize)> {
    let names: Vec<Arc<str>> = read_names(&names_path(path))
        .into_iter()
        .map(Arc::from)
        .collect();
    let bytes = std::fs::read(path)?;
    let mut out = Vec::with_capacity(bytes.len() / RECORD);
    let mut unnamed = 0;
    for r in bytes.chunks_exact(RECORD) {
        let u32_at = |i: usize| u32::from_le_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&r[i..i + 8]);
            b
        };
        let Some(name) = names.get(u32_at(0) as usize) else {
            unnamed += 1;
            continue;
        };
        out.push(Point {
            name: name.clone(),
            epoch: u64::from(u32_at(4)),
            step: u64::from_le_bytes(u64_at(8)),
            value: f64::from_le_bytes(u64_at(16)),
            time: f64::from_le_bytes(u64_at(24)),
        });
    }
    Ok((out, unnamed))
}

/// One metric's points as columns: the fast way to read a long series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// The training step of each point.
    pub steps: Vec<u64>,
    /// The epoch of each point.
    pub epochs: Vec<u32>,
    /// The values.
    pub values: Vec<f64>,
    /// When each was read back (seconds since the Unix epoch).
    pub times: Vec<f64>,
}

/// Reads the points of metric `name` as columns (empty when there is no such metric).
pub fn read_series(path: &Path, name: &str) -> std::io::Result<Series> {
    let names = read_names(&names_path(path));
    let mut series = Series::default();
    let Some(id) = names.iter().position(|n| n == name) else {
        return Ok(series);
    };
    let id = (id as u32).to_le_bytes();
    let bytes = std::fs::read(path)?;
    let n = bytes.len() / RECORD;
    series.steps.reserve(n);
    series.epochs.reserve(n);
    series.values.reserve(n);
    series.times.reserve(n);
    for r in bytes.chunks_exact(RECORD).filter(|r| r[..4] == id) {
        series.push_record(r);
    }
    Ok(series)
}

impl Series {
    /// Appends the point of one stored record (`RECORD` bytes: name id, epoch, step, value,
    /// time).
    pub(super) fn push_record(&mut self, r: &[u8]) {
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&r[i..i + 8]);
            b
        };
        self.epochs
            .push(u32::from_le_bytes([r[4], r[5], r[6], r[7]]));
        self.steps.push(u64::from_le_bytes(word(8)));
        self.values.push(f64::from_le_bytes(word(16)));
        self.times.push(f64::from_le_bytes(word(24)));
    }
}

/// Every metric of the file as columns, in the order of `metrics.names`, read in one pass
/// (a page that charts every series of a run reads the file once). Metrics with no point are
/// left out.
pub fn read_all_series(path: &Path) -> std::io::Result<Vec<(String, Series)>> {
    let names = read_names(&names_path(path));
    let mut all: Vec<Series> = vec![Series::default(); names.len()];
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    for r in bytes.chunks_exact(RECORD) {
        let id = u32::from_le_bytes([r[0], r[1], r[2], r[3]]) as usize;
        if let Some(series) = all.get_mut(id) {
            series.push_record(r);
        }
    }
    Ok(names
        .into_iter()
        .zip(all)
        .filter(|(_, s)| !s.steps.is_empty())
        .collect())
}

/// Writes points as CSV (`name,step,epoch,value,time`), for spreadsheets and dataframes.
pub fn write_csv(points: &[Point], out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "name,step,epoch,value,time")?;
    for p in points {
        let name = if p.name.contains([',', '"']) {
            format!("\"{}\"", p.name.replace('"', "\"\""))
        } else {
            p.name.to_string()
        };
        writeln!(
            out,
            "{name},{},{},{},{:.3}",
            p.step, p.epoch, p.value, p.time
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = MetricWriter::new(dir.path().join("m.bin"));
        let a = Point::now("loss", 1, 0, 0.5);
        let b = Point::now("val,\"odd\"", 2, 1, -1.25);
        w.write(std::slice::from_ref(&a));
        w.write(std::slice::from_ref(&b));
        assert_eq!(w.batches_written(), 2);
        let back = read_metrics(w.path()).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!((&*back[0].name, back[0].value), ("loss", 0.5));
        assert_eq!(
            (&*back[1].name, back[1].step, back[1].value),
            ("val,\"odd\"", 2, -1.25)
        );
    }

    #[test]
    fn unwritable_path_warns_and_goes_on() {
        let mut w = MetricWriter::new(PathBuf::from("/nonexistent-dir/m.bin"));
        w.write(&[Point::now("loss", 1, 0, 0.5)]);
        w.write(&[Point::now("loss", 2, 0, 0.5)]);
        assert_eq!(w.batches_written(), 0);
    }
}
