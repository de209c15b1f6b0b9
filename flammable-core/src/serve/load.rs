//! Loading a model to serve: a train run of the experiment in the store and one of its
//! checkpoints (never another file), each failure with the status a client gets for it.

use super::batcher::Model;
use super::shared::{Current, ModelInfo};
use crate::error::Error;
use crate::store::record::RunKind;
use crate::store::{Store, CHECKPOINTS_DIR, HYPERPARAMETERS_FILE};
use crate::task::serve::{Loader, Served};
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
        let record = self
            .store
            .resolve(run, |r| r.kind == RunKind::Train)
            .map_err(|e| AppError::not_found(e.to_string()))?;
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
            .map_err(|missing| AppError::not_found(missing.to_string()))?;
        let served =
            (self.loader)(self.store, &record, &checkpoint, self.device.clone()).map_err(|e| {
                let message = format!(
                    "cannot load run {} (checkpoint {checkpoint}): {e}",
                    record.id
                );
                match e {
                    // The run's files do not fit this binary's task (hyperparameters that no
                    // longer parse, weights of another shape): the request names such a run.
                    Error::Ron { .. } | Error::Usage(_) | Error::Checkpoint { .. } => {
                        AppError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
                    }
                    Error::Store(ref s) if s.is_usage() => {
                        AppError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
                    }
                    _ => AppError::internal(message, None),
                }
            })?;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let current = std::sync::Arc::new(describe(
            self.store,
            served.as_ref(),
            self.any_shape,
            generation,
        ));
        Ok(Model { served, current })
    }
}

/// What `/info` says of `model`, and the dtype requests are converted to.
fn describe(store: &Store, model: &dyn Served, any_shape: bool, generation: u64) -> Current {
    let record = model.record();
    let sample = model.sample();
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
        loaded: crate::store::now_rfc3339(),
    };
    Current {
        info,
        dtype: sample.map(|t| t.dtype()),
        generation,
    }
}
