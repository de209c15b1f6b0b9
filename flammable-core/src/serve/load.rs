//! Loading a model to serve: a train run of the experiment in the store and one of its
//! checkpoints (never another file), each failure with the status a client gets for it.

use super::batcher::Model;
use super::inline::Inline;
use super::shared::{Current, ModelInfo};
use crate::store::record::{Record, RunKind};
use crate::store::{Store, StoreError, CHECKPOINTS_DIR, HYPERPARAMETERS_FILE};
use crate::task::serve::{Loader, Served};
use crate::util::printable::one_line;
use crate::web::AppError;
use axum::http::StatusCode;
use candle_core::Device;
use std::sync::atomic::{AtomicU64, Ordering};

/// What loading a model needs: shared by the threads that load.
pub struct Loading<'a> {
    /// The run store.
    pub store: &'a Store,
    /// The task's model loader.
    pub loader: Loader,
    /// Where to compute.
    pub device: Device,
    /// The experiment served: only its runs can be loaded.
    pub experiment: String,
    /// `--any-shape`: requests are not checked against the sample's shape.
    pub any_shape: bool,
    /// Numbers the loads: a later load has a larger generation.
    pub generations: AtomicU64,
}

impl Loading<'_> {
    /// Train run `run` (as `RUN` is written) of the experiment, its checkpoint `checkpoint`
    /// loaded (`None`: `best` where the run kept one, else `latest`).
    pub fn load(&self, run: &str, checkpoint: Option<&str>) -> Result<Model, AppError> {
        let checkpoint = checkpoint
            .map(|c| {
                crate::checkpoint::parse_checkpoint_name(c)
                    .map_err(|e| AppError::bad(format!("checkpoint `{c}`: {e}")))
            })
            .transpose()?;
        let record = self.train_run(run)?;
        if record.experiment != self.experiment {
            return Err(AppError::bad(format!(
                "run {} is of experiment `{}`, not `{}`",
                record.id, record.experiment, self.experiment
            )));
        }
        let dir = self.store.run_dir(&record.id).join(CHECKPOINTS_DIR);
        let checkpoint = checkpoint.unwrap_or_else(|| {
            match crate::checkpoint::require(&dir, &record.id, "best") {
                Ok(()) => "best".to_string(),
                Err(_) => "latest".to_string(),
            }
        });
        crate::checkpoint::require(&dir, &record.id, &checkpoint)
            .map_err(|missing| AppError::not_found(missing.of_run(&record)))?;
        // Whatever stops the task from being built of the run's files (hyperparameters that
        // no longer parse or are missing, a layer of size 0, weights of another shape, a
        // panic in the task's constructor) is the run's: the request names a run this binary
        // cannot load.
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (self.loader)(self.store, &record, &checkpoint, self.device.clone())
        }));
        let cannot = |why: String| {
            AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "cannot load run {} (checkpoint {checkpoint}): {}",
                    record.id,
                    one_line(&why)
                ),
            )
        };
        let served = match loaded {
            Ok(Ok(served)) => served,
            Ok(Err(e)) => return Err(cannot(e.to_string())),
            Err(panic) => {
                return Err(cannot(format!(
                    "the task panicked: {}",
                    crate::util::panic::panic_message(&*panic)
                )))
            }
        };
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        // On an accelerator, batches are what make it pay: its requests always queue.
        let inline = served.shared().filter(|_| self.device.is_cpu()).map(Inline);
        let current = std::sync::Arc::new(describe(
            self.store,
            served.as_ref(),
            self.any_shape,
            generation,
            inline,
        ));
        Ok(Model { served, current })
    }
}

impl Loading<'_> {
    /// The train run `run` names: 404 when it names none, 400 when it cannot name one (an
    /// empty name, a prefix that fits several runs, a run of another kind).
    fn train_run(&self, run: &str) -> Result<Record, AppError> {
        if run.trim().is_empty() {
            return Err(AppError::bad(
                "the run to load is empty: name a train run (an id, a unique prefix, latest or latest~N)",
            ));
        }
        match self.store.resolve(run, |r| r.kind == RunKind::Train) {
            Ok(record) => Ok(record),
            Err(StoreError::Ambiguous { prefix, candidates }) => {
                Err(AppError::bad(ambiguous(&prefix, &candidates)))
            }
            Err(StoreError::WrongKind { id, kind }) => Err(not_a_train_run(&id, &kind)),
            Err(e @ StoreError::NotFound { .. }) => {
                // A prefix of a run of another kind names it, but not as a train run.
                match self.store.resolve(run, |_| true) {
                    Ok(other) if other.kind != RunKind::Train => {
                        Err(not_a_train_run(&other.id, &other.kind.to_string()))
                    }
                    _ => Err(AppError::not_found(e.to_string())),
                }
            }
            Err(e) if e.is_usage() => Err(AppError::not_found(e.to_string())),
            Err(e) => Err(AppError::internal(e.to_string(), None)),
        }
    }
}

/// One line for a prefix that fits several train runs.
fn ambiguous(prefix: &str, candidates: &[String]) -> String {
    crate::store::ambiguous_prefix(prefix, candidates, "train runs")
}

fn not_a_train_run(id: &str, kind: &str) -> AppError {
    AppError::bad(format!(
        "run {id} is a {kind} run: only train runs have a model to serve"
    ))
}

/// What `/info` says of `model`, the dtype requests are converted to, and the handle the HTTP
/// threads may compute with (`inline`).
fn describe(
    store: &Store,
    model: &dyn Served,
    any_shape: bool,
    generation: u64,
    inline: Option<Inline>,
) -> Current {
    let record = model.record();
    let sample = model.sample();
    // What the Open Inference Protocol describes as the model's output: one sample's.
    let output = sample.and_then(|s| model.infer_outputs(vec![s.clone()]).ok()?.pop());
    let info = ModelInfo {
        run: record.id.clone(),
        experiment: record.experiment.clone(),
        checkpoint: model.checkpoint().to_string(),
        commit: record.snapshot.as_ref().map(|s| s.commit.clone()),
        hyperparameters: crate::hyper::read_flat(
            &store.run_dir(&record.id).join(HYPERPARAMETERS_FILE),
        ),
        sample_shape: sample.filter(|_| !any_shape).map(|t| t.dims().to_vec()),
        sample_dtype: sample.map(|t| t.dtype().as_str().to_string()),
        // The output of the batch of one, without that batch's dimension: one sample's, as
        // `sample_shape` is.
        output_shape: output
            .as_ref()
            .map(|t| t.dims().get(1..).unwrap_or(&[]).to_vec()),
        output_dtype: output.as_ref().map(|t| t.dtype().as_str().to_string()),
        loaded: crate::store::now_rfc3339(),
    };
    Current {
        info,
        dtype: sample.map(|t| t.dtype()),
        generation,
        inline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ambiguous_prefix_lists_a_few_runs_and_counts_the_rest() {
        let ids: Vec<String> = (0..42)
            .map(|i| format!("20261130-0720{i:02}-abcd"))
            .collect();
        let line = ambiguous("2026", &ids);
        assert_eq!(
            line,
            "run prefix `2026` fits 42 train runs (20261130-072000-abcd, 20261130-072001-abcd, \
             20261130-072002-abcd and 39 more); type more of it"
        );
        assert_eq!(
            ambiguous("2026", &ids[..2]),
            "run prefix `2026` fits 2 train runs (20261130-072000-abcd, 20261130-072001-abcd); type more of it"
        );
        assert_eq!(one_line("a\n  b\tc"), "a b c");
    }
}
