//! Where runs are pushed: `s3://bucket/prefix`, `file:///path` or a plain folder path, and
//! the object store each names.

use crate::error::{Error, Result};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What `REMOTE` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A folder (`file:///mnt/team/runs`, `../shared-runs`), absolute.
    Folder(PathBuf),
    /// An S3-compatible bucket and a prefix in it (maybe empty).
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, without slashes at either end.
        prefix: String,
    },
}

impl Location {
    /// Parses `text` as typed; a relative folder is relative to the current folder.
    pub fn parse(text: &str) -> Result<Location> {
        let usage = |why: &str| {
            Error::usage(format!(
                "remote `{text}`: {why} (write s3://BUCKET/PREFIX, file:///PATH or a folder)"
            ))
        };
        if text.trim().is_empty() {
            return Err(usage("it is empty"));
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.len() < 3
                || !bucket
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            {
                return Err(usage("no valid bucket name after s3://"));
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|p| p == "." || p == "..") {
                return Err(usage("`.` and `..` cannot be parts of a key prefix"));
            }
            // Keys as typed, or refused: never quietly percent-encoded into other ones.
            let plain = |c: char| {
                c.is_ascii_alphanumeric()
                    || matches!(c, '-' | '_' | '.' | '/' | '=' | '+' | ',' | '@')
            };
            if prefix.contains("//") || !prefix.chars().all(plain) {
                return Err(usage(
                    "a key prefix of letters, digits and - _ . / = + , @ only (no empty parts)",
                ));
            }
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        let path = if let Some(rest) = text.strip_prefix("file://") {
            // file:///abs/path, or file://localhost/abs/path.
            let rest = rest.strip_prefix("localhost").unwrap_or(rest);
            if !rest.starts_with('/') {
                return Err(usage("a file:// URL names an absolute path (file:///PATH)"));
            }
            PathBuf::from(rest)
        } else if let Some((scheme, _)) = text.split_once("://") {
            return Err(usage(&format!(
                "`{scheme}://` is not a kind of remote Flammable knows"
            )));
        } else {
            PathBuf::from(text)
        };
        let path = if path.is_absolute() {
            path
        } else {
            std::env::current_dir()
                .map_err(|e| Error::io("cannot read", ".", e))?
                .join(path)
        };
        // As it will be named in records and hints: without `..`, through links.
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        if path.exists() && !path.is_dir() {
            return Err(usage("it is a file, not a folder"));
        }
        Ok(Location::Folder(path))
    }

    /// How messages and records name it.
    pub fn display(&self) -> String {
        match self {
            Location::Folder(p) => p.display().to_string(),
            Location::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            Location::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// The object store it names, and the prefix of Flammable's keys in it. A folder that
    /// does not exist is created when `create` (push), else refused (pull, ls).
    pub fn open(&self, create: bool) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
        match self {
            Location::Folder(dir) => {
                if !dir.is_dir() {
                    if !create {
                        return Err(Error::usage(format!(
                            "remote {}: no such folder",
                            dir.display()
                        )));
                    }
                    std::fs::create_dir_all(dir)
                        .map_err(|e| Error::io("cannot create the remote folder", dir, e))?;
                }
                let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| Error::msg(format!("remote {}: {e}", dir.display())))?
                    // Pulled files are written through temporary files of our own.
                    .with_automatic_cleanup(false);
                Ok((Arc::new(store), ObjectPath::default()))
            }
            Location::S3 { bucket, prefix } => Ok((
                open_s3(bucket, &self.display())?,
                ObjectPath::from(prefix.as_str()),
            )),
        }
    }
}

/// The S3 client: credentials, region and endpoint from the AWS environment variables, else
/// from the shared profile files (`AWS_PROFILE`, default `default`).
#[cfg(feature = "remote-s3")]
fn open_s3(bucket: &str, name: &str) -> Result<Arc<dyn ObjectStore>> {
    let settings = super::credentials::settings()?;
    let mut builder = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
        // An endpoint that does not answer is an error within a minute, not after three.
        .with_retry(object_store::RetryConfig {
            max_retries: 3,
            retry_timeout: std::time::Duration::from_secs(30),
            ..object_store::RetryConfig::default()
        });
    if std::env::var_os("AWS_CONNECT_TIMEOUT").is_none() {
        builder = builder.with_config(
            object_store::aws::AmazonS3ConfigKey::Client(
                object_store::ClientConfigKey::ConnectTimeout,
            ),
            "5s",
        );
    }
    for (key, value) in settings {
        let key: object_store::aws::AmazonS3ConfigKey = key
            .parse()
            .map_err(|e| Error::msg(format!("remote {name}: {e}")))?;
        builder = builder.with_config(key, value);
    }
    let store = builder
        .build()
        .map_err(|e| Error::usage(format!("remote {name}: {e}")))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "remote-s3"))]
fn open_s3(_bucket: &str, name: &str) -> Result<Arc<dyn ObjectStore>> {
    Err(Error::usage(format!(
        "remote {name}: this `flammable` was built without S3: install it with `cargo install flammable-cli --features s3`"
    )))
}

/// `path` made a key under `prefix` (`/`-separated, whatever the platform).
pub fn key(prefix: &ObjectPath, parts: &[&str]) -> ObjectPath {
    let mut all: Vec<object_store::path::PathPart> = prefix.parts().collect();
    all.extend(parts.iter().map(|p| object_store::path::PathPart::from(*p)));
    ObjectPath::from_iter(all)
}

/// A relative path of a run folder as a key's parts (`checkpoints/best.safetensors`).
pub fn relative_parts(path: &Path) -> Vec<String> {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_parse_as_typed() {
        assert_eq!(
            Location::parse("s3://team-runs/exp/digits/").ok(),
            Some(Location::S3 {
                bucket: "team-runs".into(),
                prefix: "exp/digits".into()
            })
        );
        assert_eq!(
            Location::parse("s3://team-runs").ok(),
            Some(Location::S3 {
                bucket: "team-runs".into(),
                prefix: String::new()
            })
        );
        assert_eq!(
            Location::parse("file:///mnt/runs").ok(),
            Some(Location::Folder("/mnt/runs".into()))
        );
        assert_eq!(
            Location::parse("/mnt/runs").ok(),
            Some(Location::Folder("/mnt/runs".into()))
        );
        for bad in [
            "",
            "s3://",
            "s3://a",
            "gs://bucket/x",
            "file://relative",
            "s3://b/x/../y",
        ] {
            let e = Location::parse(bad)
                .err()
                .map(|e| (e.exit_code(), e.to_string()));
            assert!(
                matches!(&e, Some((2, t)) if t.contains("s3://BUCKET")),
                "{bad}: {e:?}"
            );
        }
    }
}
