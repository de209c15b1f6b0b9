//! The remote's objects: content-addressed blobs (`blobs/ab/cdef…`, written only if absent)
//! and one manifest per run (`runs/<id>.json`), over object_store.

use super::location::{key, Location};
use super::manifest::{hex, Manifest, MANIFEST_FORMAT};
use crate::error::{Error, Result};
use crate::util::printable::one_line;
use futures::StreamExt as _;
use indicatif::ProgressBar;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, WriteMultipart};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Files larger than this go up in parts, of this size unless the file needs larger ones
/// (more than S3's 10,000). 8 MiB is the AWS CLI's size too; with 16 MiB parts moto's server
/// spent more CPU time a byte, and a 1 GiB push took 6 % longer (measured by hand, medians
/// of 3).
pub const PART_SIZE: usize = 8 << 20;
/// The most parts S3 takes in one multipart upload.
const MAX_PARTS: u64 = 10_000;
/// The largest object S3 stores (5 TiB).
const MAX_OBJECT_SIZE: u64 = 5 << 40;
/// Parts of one file in flight at once (rclone's default too): more only made a loopback
/// server that handles requests on one core slower (`bench/results/remote_sync.md`).
const PARTS_IN_FLIGHT: usize = 4;

/// An opened remote.
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// The remote's folder, for a folder remote: its blobs are copied in by the kernel.
    folder: Option<PathBuf>,
    /// How messages name it.
    pub name: String,
}

impl Remote {
    /// Opens `location`; a missing folder is created when `create`.
    pub fn open(location: &Location, create: bool) -> Result<Remote> {
        let (store, prefix) = location.open(create)?;
        let folder = match location {
            Location::Folder(dir) => Some(dir.clone()),
            Location::S3 { .. } => None,
        };
        Ok(Remote {
            store,
            prefix,
            folder,
            name: location.display(),
        })
    }

    fn blob_key(&self, sha: &str) -> ObjectPath {
        key(&self.prefix, &["blobs", &sha[..2], &sha[2..]])
    }

    fn manifest_key(&self, id: &str) -> ObjectPath {
        key(&self.prefix, &["runs", &format!("{id}.json")])
    }

    /// `e`, as one line naming the remote.
    fn err(&self, e: object_store::Error) -> Error {
        let e = e.to_string();
        Error::msg(one_line(&format!(
            "remote {}: {e}{}",
            self.name,
            checksum_hint(&e)
        )))
    }

    /// The manifest of run `id`, if the remote has it.
    pub async fn manifest(&self, id: &str) -> Result<Option<Manifest>> {
        let bytes = match self.store.get(&self.manifest_key(id)).await {
            Ok(got) => got.bytes().await.map_err(|e| self.err(e))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
            Error::msg(format!(
                "remote {}: the manifest of run {id} cannot be read: {}",
                self.name,
                e.to_string().escape_debug()
            ))
        })?;
        if m.format != MANIFEST_FORMAT {
            return Err(Error::msg(format!(
                "remote {}: the manifest of run {id} is of format {} (this Flammable reads format {MANIFEST_FORMAT})",
                self.name, m.format
            )));
        }
        if m.id != id {
            return Err(Error::msg(format!(
                "remote {}: the manifest of run {id} is that of run {}",
                self.name,
                m.id.escape_debug()
            )));
        }
        // A record of another run under this name would be pulled as this run: refused here,
        // so that `remote ls` leaves it out with a warning as `pull` refuses it.
        if m.record.id != m.id {
            return Err(Error::msg(format!(
                "remote {}: the manifest of run {id} holds the record of run {}",
                self.name,
                m.record.id.escape_debug()
            )));
        }
        Ok(Some(m))
    }

    /// Makes what a push copied into a folder remote durable (one sync of its file
    /// system: see [`crate::util::atomic::sync_file_system`]), so that a manifest written
    /// after never names a blob a power loss could take back. Object storage: nothing to do.
    fn settle(&self) -> Result<()> {
        match &self.folder {
            Some(folder) => crate::util::atomic::sync_file_system(folder).map_err(Error::from),
            None => Ok(()),
        }
    }

    /// Writes the manifests of runs whose blobs are all there (replacing older ones). Into a
    /// folder: each to a temporary file, the file system synced, each renamed into place, and
    /// synced again — the store's temp-file, fsync and rename, with two waits for the disk
    /// rather than two a manifest.
    pub async fn put_manifests(&self, manifests: &[Manifest]) -> Result<()> {
        if manifests.is_empty() {
            return Ok(());
        }
        let Some(folder) = &self.folder else {
            let written: Vec<Result<()>> = futures::stream::iter(manifests)
                .map(|m| self.put_manifest(m))
                .buffer_unordered(MANIFESTS_IN_FLIGHT)
                .collect()
                .await;
            return written.into_iter().collect();
        };
        let mut staged = Vec::with_capacity(manifests.len());
        let written = (|| {
            for m in manifests {
                let path = folder.join(self.manifest_key(&m.id).as_ref());
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
                }
                let tmp = crate::util::atomic::temp_path_for(&path);
                std::fs::write(&tmp, manifest_bytes(m)?)
                    .map_err(|e| Error::io("cannot write", &tmp, e))?;
                staged.push((tmp, path));
            }
            self.settle()?;
            for (tmp, path) in &staged {
                std::fs::rename(tmp, path).map_err(|e| Error::io("cannot write", path, e))?;
            }
            self.settle()
        })();
        for (tmp, _) in &staged {
            let _ = std::fs::remove_file(tmp);
        }
        written
    }

    /// Writes the manifest of a run to object storage (replacing an older one: its blobs are
    /// all there first).
    async fn put_manifest(&self, m: &Manifest) -> Result<()> {
        let bytes = manifest_bytes(m)?;
        self.store
            .put(&self.manifest_key(&m.id), bytes.into())
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The ids of the runs the remote holds, sorted.
    pub async fn run_ids(&self) -> Result<Vec<String>> {
        let runs = key(&self.prefix, &["runs"]);
        let mut list = self.store.list(Some(&runs));
        let mut ids = Vec::new();
        while let Some(meta) = list.next().await {
            let meta = match meta {
                Ok(m) => m,
                // A folder remote that has no runs yet.
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(self.err(e)),
            };
            if let Some(id) = meta
                .location
                .filename()
                .and_then(|f| f.strip_suffix(".json"))
            {
                if crate::store::is_valid_id(id) {
                    ids.push(id.to_string());
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// True when the remote holds blob `sha`.
    pub async fn has_blob(&self, sha: &str) -> Result<bool> {
        match self.store.head(&self.blob_key(sha)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Sends the file at `path` as blob `sha` unless the remote has it; false when it had.
    /// The bytes sent are hashed on the way: a file that no longer hashes to `sha` is not
    /// stored (and the hashes its run remembered are cleared). Files over [`PART_SIZE`] go up
    /// to object storage in parts.
    pub async fn upload(
        &self,
        path: &Path,
        sha: &str,
        stamp: &FileStamp,
        bar: &ProgressBar,
    ) -> Result<bool> {
        let size = stamp.size;
        if let Some(folder) = &self.folder {
            let sent = copy_blob(path, sha, stamp, &folder.join(self.blob_key(sha).as_ref()))?;
            bar.inc(size);
            return Ok(sent);
        }
        let key = self.blob_key(sha);
        if size <= PART_SIZE as u64 {
            let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
            check_hash(path, sha, &hex(&Sha256::digest(&bytes)), stamp)?;
            let opts = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            let sent = match self.store.put_opts(&key, bytes.into(), opts).await {
                Ok(_) => true,
                Err(object_store::Error::AlreadyExists { .. }) => false,
                Err(e) => return Err(self.err(e)),
            };
            bar.inc(size);
            return Ok(sent);
        }
        // A large blob is looked for first: sending gigabytes to learn that it was there
        // would cost more than a request.
        if self.has_blob(sha).await? {
            bar.inc(size);
            return Ok(false);
        }
        let upload = self
            .store
            .put_multipart(&key)
            .await
            .map_err(|e| self.err(e))?;
        let part = part_size(size).ok_or_else(|| {
            Error::msg(format!(
                "`{}` is {size} bytes: S3 stores objects of at most 5 TiB",
                path.display()
            ))
        })?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part);
        let mut file = std::fs::File::open(path).map_err(|e| Error::io("cannot read", path, e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; part];
        // Whatever stops the upload midway aborts it, so S3 drops the parts it holds.
        let sent: Result<()> = async {
            loop {
                let n = read_full(&mut file, &mut buf)
                    .map_err(|e| Error::io("cannot read", path, e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| self.err(e))?;
                writer.write(&buf[..n]);
                bar.inc(n as u64);
            }
            check_hash(path, sha, &hex(&hasher.finalize()), stamp)
        }
        .await;
        if let Err(e) = sent {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.finish().await.map_err(|e| self.err(e))?;
        Ok(true)
    }

    /// Writes blob `sha` to `dest` (through a temporary file beside it, synced, renamed),
    /// checking that its bytes hash to `sha`.
    pub async fn download(
        &self,
        sha: &str,
        size: u64,
        dest: &Path,
        bar: &ProgressBar,
    ) -> Result<()> {
        let got = self
            .store
            .get(&self.blob_key(sha))
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => Error::msg(format!(
                    "remote {}: blob {sha} is missing (the remote lost a file its manifest names)",
                    self.name
                )),
                e => self.err(e),
            })?;
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
        }
        let tmp = crate::util::atomic::temp_path_for(dest);
        let written = async {
            let mut file =
                std::fs::File::create(&tmp).map_err(|e| Error::io("cannot write", &tmp, e))?;
            let mut hasher = Sha256::new();
            let mut stream = got.into_stream();
            let mut read: u64 = 0;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.err(e))?;
                read = read.saturating_add(chunk.len() as u64);
                if read > size {
                    return Err(Error::msg(format!(
                        "remote {}: blob {sha} is larger than its manifest says ({size} bytes): not written",
                        self.name
                    )));
                }
                hasher.update(&chunk);
                file.write_all(&chunk)
                    .map_err(|e| Error::io("cannot write", &tmp, e))?;
                bar.inc(chunk.len() as u64);
            }
            let got = hex(&hasher.finalize());
            if got != sha || read != size {
                return Err(Error::msg(format!(
                    "remote {}: blob {sha} is damaged ({read} bytes hashing to {got}, where the manifest says {size} bytes): not written",
                    self.name
                )));
            }
            file.sync_all()
                .map_err(|e| Error::io("cannot write", &tmp, e))
        }
        .await;
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        crate::util::atomic::commit_temp(&tmp, dest).map_err(Error::from)
    }
}

/// A file to send, as it was when it was hashed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStamp {
    /// Its bytes.
    pub size: u64,
    /// The run whose remembered hashes gave its hash: cleared when the bytes disagree.
    pub run_dir: Option<PathBuf>,
}

impl FileStamp {
    /// The stamp of `meta`.
    pub fn of(meta: &std::fs::Metadata) -> FileStamp {
        FileStamp {
            size: meta.len(),
            run_dir: None,
        }
    }

    /// The stamp of the file at `path` as it is now.
    pub fn now(path: &Path) -> Result<FileStamp> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io("cannot read", path, e))?;
        Ok(FileStamp::of(&meta))
    }
}

/// Copies the file at `path` (as `stamp` says it was) to `blob` in a folder remote, through a
/// temporary file beside it linked into place, so that a blob is whole or absent and a blob
/// already there is never written again; false when it was there. The bytes are hashed as
/// they are copied: a file that no longer hashes to `sha` is not stored.
fn copy_blob(path: &Path, sha: &str, stamp: &FileStamp, blob: &Path) -> Result<bool> {
    if blob.exists() {
        return Ok(false);
    }
    if let Some(dir) = blob.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    }
    let tmp = crate::util::atomic::temp_path_for(blob);
    let placed = (|| {
        let mut from = std::fs::File::open(path).map_err(|e| Error::io("cannot read", path, e))?;
        let mut to = std::fs::File::create(&tmp).map_err(|e| Error::io("cannot write", &tmp, e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 4 << 20];
        loop {
            let n =
                read_full(&mut from, &mut buf).map_err(|e| Error::io("cannot read", path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            to.write_all(&buf[..n])
                .map_err(|e| Error::io("cannot write", &tmp, e))?;
        }
        drop(to);
        check_hash(path, sha, &hex(&hasher.finalize()), stamp)?;
        match std::fs::hard_link(&tmp, blob) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            // A file system without hard links: a rename, which may replace a blob another
            // pusher just placed, with the same bytes.
            Err(_) => std::fs::rename(&tmp, blob)
                .map(|()| true)
                .map_err(|e| Error::io("cannot write", blob, e)),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    placed
}

/// A manifest as the remote keeps it.
fn manifest_bytes(m: &Manifest) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(m)
        .map_err(|e| Error::msg(format!("cannot write the manifest of run {}: {e}", m.id)))
}

/// Manifests read or written at once (push, pull, listing).
pub const MANIFESTS_IN_FLIGHT: usize = 16;

/// The hint for an upload that S3 refused when checksums went with it: a store that does not
/// take them answers 400 (an `InvalidArgument`, or a word on the checksum).
fn checksum_hint(error: &str) -> &'static str {
    let lower = error.to_ascii_lowercase();
    if lower.contains("400") && (lower.contains("checksum") || lower.contains("invalidargument")) {
        " (a store that refuses checksums takes uploads without them: set AWS_REQUEST_CHECKSUM_CALCULATION=when_required)"
    } else {
        ""
    }
}

/// The size of the parts a file of `size` bytes goes up in: [`PART_SIZE`], or whole MiB
/// just large enough to keep within S3's 10,000 parts; `None` above S3's largest object.
fn part_size(size: u64) -> Option<usize> {
    if size > MAX_OBJECT_SIZE {
        return None;
    }
    let mib = 1u64 << 20;
    let needed = size.div_ceil(MAX_PARTS).div_ceil(mib) * mib;
    usize::try_from(needed.max(PART_SIZE as u64)).ok()
}

/// Reads until `buf` is full or the file ends; the bytes read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Whether the bytes sent hash to what the manifest says; when not, the run's remembered
/// hashes (which may have given the wrong one) are cleared, so the next push reads anew.
fn check_hash(path: &Path, want: &str, got: &str, stamp: &FileStamp) -> Result<()> {
    if want == got {
        return Ok(());
    }
    if let Some(dir) = &stamp.run_dir {
        crate::store::hashes::forget(dir);
    }
    Err(Error::msg(format!(
        "`{}` changed since it was hashed: push again once nothing writes it",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_8_mib_until_a_file_needs_more_than_10000_of_them() {
        assert_eq!(part_size(1 << 30), Some(PART_SIZE));
        let largest_at_8_mib = MAX_PARTS * PART_SIZE as u64;
        assert_eq!(part_size(largest_at_8_mib), Some(PART_SIZE));
        assert_eq!(part_size(largest_at_8_mib + 1), Some(PART_SIZE + (1 << 20)));
        for size in [200u64 << 30, (1 << 40) + 7, MAX_OBJECT_SIZE] {
            let part = part_size(size).unwrap() as u64;
            assert!(size.div_ceil(part) <= MAX_PARTS, "{size}: {part}");
            assert_eq!(part % (1 << 20), 0);
        }
        assert_eq!(part_size(MAX_OBJECT_SIZE + 1), None);
    }

    #[test]
    fn an_upload_refused_for_its_checksum_says_how_to_send_none() {
        let refused =
            "Server returned non-2xx status code: 400 Bad Request: <Code>InvalidArgument</Code>";
        assert!(checksum_hint(refused).contains("AWS_REQUEST_CHECKSUM_CALCULATION=when_required"));
        assert_eq!(checksum_hint("404 Not Found: NoSuchBucket"), "");
    }
}
