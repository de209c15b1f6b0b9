//! Sharing runs without a tracking server: `push` and `pull` of runs (record, metrics,
//! chosen checkpoints, code) to a folder or S3-compatible object storage, and `remote ls`.
//!
//! A remote holds `blobs/ab/cdef…` (every file once, named by its SHA-256, written only if
//! absent: pushing again sends nothing, and two pushers cannot corrupt each other) and
//! `runs/<id>.json` (a run's manifest: its record and its files' hashes and sizes, written
//! after its blobs, so that a reader sees a whole run or none). A run's code travels as a Git
//! bundle blob, so that `checkout`, `diff` and `rerun` work where it is pulled.
//!
//! The operations need the `remote` feature (object_store); S3 needs `remote-s3`. The
//! choices below are plain data, so that every binary's command line parses them.

#[cfg(feature = "remote-s3")]
mod credentials;
#[cfg(feature = "remote")]
pub mod location;
#[cfg(feature = "remote")]
pub mod manifest;
#[cfg(feature = "remote")]
pub mod objects;
#[cfg(feature = "remote")]
mod progress;
#[cfg(feature = "remote")]
pub use progress::size_text;
#[cfg(feature = "remote")]
pub mod pull;
#[cfg(feature = "remote")]
pub mod push;

use crate::store::CHECKPOINTS_DIR;

/// What a binary built without the `remote` feature says when asked to push or pull.
pub const UNAVAILABLE: &str =
    "this binary cannot push or pull runs: use the `flammable` command (`cargo install flammable-cli`, \
     with `--features s3` for S3)";

/// The runs a push or a pull takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// These (ids, prefixes; locally also `latest`).
    Runs(Vec<String>),
    /// The runs of the sweep whose id starts so.
    Sweep(String),
    /// Every run.
    All,
}

/// Which checkpoint sets a push or a pull takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Checkpoints {
    /// None.
    None,
    /// `best`, else `latest` for runs with no best.
    Best,
    /// `latest`.
    Latest,
    /// Every set, numbered ones too.
    All,
}

impl Checkpoints {
    /// The flag as typed.
    pub fn flag(self) -> &'static str {
        match self {
            Checkpoints::None => "none",
            Checkpoints::Best => "best",
            Checkpoints::Latest => "latest",
            Checkpoints::All => "all",
        }
    }

    /// True when the file `path` of a run (`checkpoints/best.safetensors`) is taken, among
    /// `all` the run's file paths. Only checkpoint sets (`best`, `latest`, `step-N`) are
    /// chosen; every other file travels.
    pub fn takes(self, path: &str, all: &[&str]) -> bool {
        let Some(set) = checkpoint_set(path) else {
            return true;
        };
        let has = |wanted: &str| all.iter().any(|p| checkpoint_set(p) == Some(wanted));
        match self {
            Checkpoints::None => false,
            Checkpoints::All => true,
            Checkpoints::Latest => set == "latest",
            Checkpoints::Best => set == "best" || (set == "latest" && !has("best")),
        }
    }
}

/// The checkpoint set a run's file belongs to (`best`, `latest`, `step-0000000046`), if it
/// is one's.
fn checkpoint_set(path: &str) -> Option<&str> {
    let name = path.strip_prefix(CHECKPOINTS_DIR)?.strip_prefix('/')?;
    let set = name.split('.').next().unwrap_or(name);
    (set == "best" || set == "latest" || set.starts_with("step-")).then_some(set)
}

/// Runs `future` to its end on a runtime of its own (the commands are otherwise synchronous).
#[cfg(feature = "remote")]
pub fn block_on<F: std::future::Future>(future: F) -> crate::error::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| crate::error::Error::msg(format!("cannot start the network runtime: {e}")))?;
    Ok(runtime.block_on(future))
}

/// The manifests of every run `remote` holds that `filter` (the browser's filter syntax)
/// keeps, oldest first.
#[cfg(feature = "remote")]
pub async fn list(
    remote: &objects::Remote,
    filter: Option<&str>,
) -> crate::error::Result<Vec<manifest::Manifest>> {
    use crate::error::Error;
    let filter = match filter {
        Some(text) => Some(
            crate::ui::Filter::parse(text).map_err(|e| Error::usage(format!("--filter: {e}")))?,
        ),
        None => None,
    };
    let mut all = pull::chosen_manifests(remote, &Selection::All).await?;
    if let Some(filter) = filter.filter(|_| !all.is_empty()) {
        let metrics = all
            .iter()
            .flat_map(|m| m.record.all_metrics().into_keys())
            .collect();
        let hyper = all.iter().flat_map(|m| m.hyper.keys().cloned()).collect();
        filter
            .check_names(&metrics, &hyper)
            .map_err(|e| Error::usage(format!("--filter: {e}")))?;
        all.retain(|m| {
            filter.matches(&crate::ui::summary_of(
                m.record.clone(),
                m.hyper.clone(),
                None,
            ))
        });
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_choices_take_their_sets() {
        let all = [
            "metrics.bin",
            "checkpoints/best.safetensors",
            "checkpoints/best.ron",
            "checkpoints/latest.safetensors",
            "checkpoints/step-0000000010.safetensors",
        ];
        let taken = |c: Checkpoints, files: &[&str]| -> Vec<String> {
            files
                .iter()
                .filter(|p| c.takes(p, files))
                .map(|p| p.to_string())
                .collect()
        };
        assert_eq!(
            taken(Checkpoints::Best, &all),
            [
                "metrics.bin",
                "checkpoints/best.safetensors",
                "checkpoints/best.ron"
            ]
        );
        assert_eq!(taken(Checkpoints::None, &all), ["metrics.bin"]);
        assert_eq!(taken(Checkpoints::All, &all).len(), 5);
        assert_eq!(
            taken(Checkpoints::Latest, &all),
            ["metrics.bin", "checkpoints/latest.safetensors"]
        );
        // No best: best means latest.
        let no_best = [
            "checkpoints/latest.safetensors",
            "checkpoints/step-1.ron",
            "checkpoints/pruned.txt",
        ];
        assert_eq!(
            taken(Checkpoints::Best, &no_best),
            ["checkpoints/latest.safetensors", "checkpoints/pruned.txt"]
        );
    }
}
