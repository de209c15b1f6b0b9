//! Where a running train run is — its last step and epoch, its speed and ETA — read from the
//! tail of its metrics file, for the browser and `watch`.

use crate::store::metrics::unix_now;
use crate::store::record::Record;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::SystemTime;

/// Where a running train run is, from the tail of its metrics file.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Progress {
    /// The last recorded step.
    pub step: u64,
    /// Its epoch (from 0).
    pub epoch: u64,
    /// The epochs it was asked for.
    pub epochs: Option<u64>,
    /// Training speed over the recorded points.
    pub steps_per_s: Option<f64>,
    /// Seconds left, once an epoch has ended (its length is known then).
    pub eta: Option<f64>,
}

/// An RFC 3339 time as seconds since the Unix epoch.
pub fn parse_time(text: &str) -> Option<f64> {
    humantime::parse_rfc3339_weak(text)
        .ok()?
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// Bytes per point of a metrics file (see `store::metrics`): name u32, epoch u32, step u64,
/// value f64, time f64.
const POINT: u64 = 32;

/// (epoch, step, time) of point `i` of an open metrics file.
fn point_at(file: &mut std::fs::File, i: u64) -> Option<(u64, u64, f64)> {
    let mut b = [0u8; POINT as usize];
    file.seek(SeekFrom::Start(i * POINT)).ok()?;
    file.read_exact(&mut b).ok()?;
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[at..at + 8]);
        w
    };
    Some((
        u64::from(u32::from_le_bytes([b[4], b[5], b[6], b[7]])),
        u64::from_le_bytes(word(8)),
        f64::from_le_bytes(word(24)),
    ))
}

/// The progress of a running train run: its last point, and — by binary search over the
/// points, which are in step order — when its first epoch ended, for the ETA. Reads a few
/// dozen points whatever the file's size.
pub fn progress(
    metrics: &Path,
    record: &Record,
    hyper: &BTreeMap<String, String>,
) -> Option<Progress> {
    let mut file = std::fs::File::open(metrics).ok()?;
    let points = file.metadata().ok()?.len() / POINT;
    let epochs = hyper.get("epochs").and_then(|e| e.parse::<u64>().ok());
    if points == 0 {
        return Some(Progress {
            epochs,
            ..Progress::default()
        });
    }
    let (epoch, step, last_time) = point_at(&mut file, points - 1)?;
    let (_, _, first_time) = point_at(&mut file, 0)?;
    let started = parse_time(&record.started).unwrap_or(first_time);
    let elapsed = last_time - started;
    let steps_per_s = (elapsed > 0.0 && step > 0).then(|| step as f64 / elapsed);
    // The first point of epoch 1 tells the steps of an epoch.
    let eta = (|| {
        let epochs = epochs?;
        if epoch == 0 {
            return None;
        }
        let (mut lo, mut hi) = (0, points - 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if point_at(&mut file, mid)?.0 >= 1 {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let (_, epoch_one_step, _) = point_at(&mut file, lo)?;
        let per_epoch = epoch_one_step.max(1);
        let total = per_epoch.saturating_mul(epochs);
        let rate = steps_per_s?;
        Some(total.saturating_sub(step) as f64 / rate - (unix_now() - last_time).max(0.0))
            .map(|s| s.max(0.0))
            .filter(|s| s.is_finite())
    })();
    Some(Progress {
        step,
        epoch,
        epochs,
        steps_per_s,
        eta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::metrics::{MetricWriter, Point};
    use crate::store::record::RunKind;
    use std::time::{Duration, SystemTime};

    #[test]
    fn progress_reads_the_tail_and_the_epoch_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.bin");
        let mut w = MetricWriter::new(path.clone());
        let mut record = Record::new("x", RunKind::Train, 0);
        record.started =
            humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000))
                .to_string();
        // 10 steps an epoch, one point a step, a step a second.
        let points: Vec<Point> = (1..=25u64)
            .map(|s| Point {
                name: "loss".into(),
                step: s,
                epoch: (s - 1) / 10,
                value: 1.0,
                time: 1_000.0 + s as f64,
            })
            .collect();
        w.write(&points);
        let hyper = BTreeMap::from([("epochs".to_string(), "4".to_string())]);
        let p = progress(&path, &record, &hyper).unwrap();
        assert_eq!((p.step, p.epoch, p.epochs), (25, 2, Some(4)));
        assert!((p.steps_per_s.unwrap() - 1.0).abs() < 1e-9);
        // The first point of epoch 1 is step 11: 11 steps an epoch, 44 in all, 19 left.
        assert!(p.eta.is_some());
    }
}
