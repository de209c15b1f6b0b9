//! A metrics file read as it grows: each [`GrowingFile::update`] reads only the records
//! appended since the last one, so that a browser refreshing a live 10-million-point run
//! reads kilobytes a refresh, not the whole file.
//!
//! Metrics files only grow, except when a resumed run truncates what it recorded after its
//! checkpoint and writes on, or when the file is replaced (a pull, a restore from the trash).
//! Both are told apart from growth: a new inode, a shorter file, or a last-read record that
//! no longer reads the same makes the next update read the file again from the start.

use super::metrics::{names_path, Series, RECORD};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

/// The series of one metrics file, as far as it has been read.
#[derive(Clone, Default)]
pub struct GrowingFile {
    /// The file read: its inode (on Unix; 0 elsewhere), or `None` before the first read.
    identity: Option<u64>,
    /// Bytes of whole records read.
    read: u64,
    /// The last record read, to notice a file truncated and written again past this point.
    last: Option<[u8; RECORD]>,
    /// How long the names file was when read.
    names_len: u64,
    names: Vec<String>,
    /// One series per name (by the name's line number).
    series: Vec<Arc<Series>>,
}

impl GrowingFile {
    /// Nothing read yet.
    pub fn new() -> Self {
        GrowingFile::default()
    }

    /// Reads what was appended to `path` since the last update (all of it on the first, or
    /// when the file was replaced or truncated). Returns the bytes of records read. A file
    /// that does not exist holds no series. A record cut short (being written) is left for the
    /// next update; one that names no metric is skipped, as [`super::metrics::read_metrics`]
    /// does.
    pub fn update(&mut self, path: &Path) -> std::io::Result<u64> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                *self = GrowingFile::default();
                return Ok(0);
            }
            Err(e) => return Err(e),
        };
        // The length first, the names after: the writer writes a name before any record that
        // uses it, so every record within this length has its name in the names read below.
        let meta = file.metadata()?;
        let len = meta.len() - meta.len() % RECORD as u64;
        let identity = inode(&meta);
        if self.identity != Some(identity)
            || len < self.read
            || !self.last_still_there(&mut file)?
        {
            *self = GrowingFile {
                identity: Some(identity),
                ..GrowingFile::default()
            };
        }
        self.read_names(path)?;
        if len == self.read {
            return Ok(0);
        }
        file.seek(SeekFrom::Start(self.read))?;
        let mut bytes = vec![0u8; (len - self.read) as usize];
        file.read_exact(&mut bytes)?;
        if self.series.len() < self.names.len() {
            self.series.resize_with(self.names.len(), Default::default);
        }
        for r in bytes.chunks_exact(RECORD) {
            let id = u32::from_le_bytes([r[0], r[1], r[2], r[3]]) as usize;
            if let Some(series) = self.series.get_mut(id) {
                // Copied only while a reader still holds the previous state of this series.
                Arc::make_mut(series).push_record(r);
            }
        }
        if let Some(tail) = bytes.rchunks_exact(RECORD).next() {
            let mut last = [0u8; RECORD];
            last.copy_from_slice(tail);
            self.last = Some(last);
        }
        self.read = len;
        Ok(bytes.len() as u64)
    }

    /// Whether the last record read is still where it was (true when none was read).
    fn last_still_there(&self, file: &mut File) -> std::io::Result<bool> {
        let Some(last) = self.last else {
            return Ok(true);
        };
        let mut now = [0u8; RECORD];
        file.seek(SeekFrom::Start(self.read - RECORD as u64))?;
        match file.read_exact(&mut now) {
            Ok(()) => Ok(now == last),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads the names again when the names file changed length (names are only appended).
    fn read_names(&mut self, path: &Path) -> std::io::Result<()> {
        let names = names_path(path);
        let len = match std::fs::metadata(&names) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        if len != self.names_len {
            // A name that is not UTF-8 is shown with replacement characters, not dropped.
            let text = match std::fs::read(&names) {
                Ok(t) => String::from_utf8_lossy(&t).into_owned(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(e),
            };
            // A name whose line is not finished yet is read on a later update.
            let whole = text.rfind('\n').map_or(0, |i| i + 1);
            self.names = text[..whole].lines().map(str::to_string).collect();
            self.names_len = len;
        }
        Ok(())
    }

    /// Every series with at least one point, in the order of the names file.
    pub fn series(&self) -> impl Iterator<Item = (&str, &Arc<Series>)> {
        self.names
            .iter()
            .zip(&self.series)
            .filter(|(_, s)| !s.steps.is_empty())
            .map(|(n, s)| (n.as_str(), s))
    }

    /// How many points are held.
    pub fn points(&self) -> u64 {
        self.read / RECORD as u64
    }
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    meta.ino()
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::metrics::{read_all_series, MetricWriter, Point};

    fn as_read(g: &GrowingFile) -> Vec<(String, Series)> {
        g.series()
            .map(|(n, s)| (n.to_string(), Series::clone(s)))
            .collect()
    }

    #[test]
    fn reads_only_what_was_appended_and_agrees_with_a_whole_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.bin");
        let mut g = GrowingFile::new();
        assert_eq!(g.update(&path).unwrap(), 0, "no file yet");
        let mut w = MetricWriter::new(path.clone());
        w.write(&[Point::now("loss", 1, 0, 1.0)]);
        assert_eq!(g.update(&path).unwrap(), RECORD as u64);
        w.write(&[Point::now("loss", 2, 0, 0.5), Point::now("acc", 2, 0, 0.1)]);
        assert_eq!(g.update(&path).unwrap(), 2 * RECORD as u64);
        assert_eq!(g.update(&path).unwrap(), 0, "nothing new");
        assert_eq!(as_read(&g), read_all_series(&path).unwrap());
        assert_eq!(g.points(), 3);
        // A record half written is left for the next update.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &[0u8; 10]))
            .unwrap();
        assert_eq!(g.update(&path).unwrap(), 0);
    }

    #[test]
    fn a_truncated_or_replaced_file_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.bin");
        let mut w = MetricWriter::new(path.clone());
        w.write(&[
            Point::now("loss", 1, 0, 1.0),
            Point::now("loss", 2, 0, 0.9),
            Point::now("loss", 3, 0, 0.8),
        ]);
        let mut g = GrowingFile::new();
        g.update(&path).unwrap();
        // Resumed from step 1: truncated to one point, then as many written again, so the
        // file is as long as before but not the same.
        w.truncate(1).unwrap();
        w.write(&[Point::now("loss", 2, 0, 0.7), Point::now("loss", 3, 0, 0.6)]);
        assert_eq!(g.update(&path).unwrap(), 3 * RECORD as u64);
        assert_eq!(as_read(&g)[0].1.values, [1.0, 0.7, 0.6]);
        // Replaced by another file with the same content length.
        let other = dir.path().join("other.bin");
        MetricWriter::new(other.clone()).write(&[
            Point::now("loss", 1, 0, 5.0),
            Point::now("loss", 2, 0, 4.0),
            Point::now("loss", 3, 0, 3.0),
        ]);
        std::fs::rename(other.with_extension("names"), path.with_extension("names")).unwrap();
        std::fs::rename(&other, &path).unwrap();
        g.update(&path).unwrap();
        assert_eq!(as_read(&g)[0].1.values, [5.0, 4.0, 3.0]);
        std::fs::remove_file(&path).unwrap();
        g.update(&path).unwrap();
        assert_eq!(g.series().count(), 0);
    }
}
