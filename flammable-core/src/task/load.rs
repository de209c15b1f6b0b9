//! The one way to load a trained run's model: the task built with the hyperparameters the
//! run recorded, its checkpoint loaded. [`Task::from_run`] (a model in your own program) and
//! the inference server both come through here.

use super::Task;
use crate::env::Env;
use crate::error::{Error, Result};
use crate::hyper::defaults::Filled;
use crate::hyper::HyperRecord;
use crate::run::code_dir::CodeDir;
use crate::store::record::{Record, RunKind};
use crate::store::{Store, HYPERPARAMETERS_FILE};
use candle_core::Device;

/// Task `T` built with train run `record`'s hyperparameters on `device`, its checkpoint
/// `checkpoint` (`latest`, `best`, `step-N`, already checked as a name) loaded; the
/// environment records nothing.
pub fn load_run<T: Task>(
    store: &Store,
    record: &Record,
    checkpoint: &str,
    device: Device,
) -> Result<(T, Env)> {
    let (task, env, _) = load_run_filled(store, record, checkpoint, device)?;
    Ok((task, env))
}

/// [`load_run`], also returning the hyperparameters the run recorded none of (it was recorded
/// before they existed), which took their defaults.
pub(crate) fn load_run_filled<T: Task>(
    store: &Store,
    record: &Record,
    checkpoint: &str,
    device: Device,
) -> Result<(T, Env, Vec<Filled>)> {
    let (hyper, filled) = HyperRecord::<T::Hyper>::read_filled_as(
        &store.run_dir(&record.id).join(HYPERPARAMETERS_FILE),
        &T::default_config(),
    )?;
    let env = Env::from_record(store, record, device, hyper.train.clone());
    let task = T::new(&hyper.task, &env)?;
    task.load_model(&env, checkpoint)?;
    Ok((task, env, filled))
}

/// [`Task::store`]'s default body: the store the task's binary uses — `$FLAMMABLE_STORE`,
/// else `.flammable/` of the repository of the task's code (`$FLAMMABLE_CODE_DIR`, else its
/// crate folder) — with `latest` counting the task's own runs.
pub fn store_of<T: Task>() -> Result<Store> {
    Ok(store_near_code::<T>(None)?.scoped_to(T::experiment()))
}

/// The store `explicit` names (`--store`), else `$FLAMMABLE_STORE`, else the one of task
/// `T`'s code folder (`$FLAMMABLE_CODE_DIR`, else its crate folder); not scoped to the task.
pub(crate) fn store_near_code<T: Task>(explicit: Option<&std::path::Path>) -> Result<Store> {
    let code = CodeDir::of_task(T::build_target().manifest_dir).map_err(Error::usage)?;
    Ok(Store::locate_near(explicit, &code.path)?)
}

/// [`Task::from_run`]'s default body: train run `run` of `store` (an id, a unique prefix,
/// `latest`…) through [`load_run`].
pub fn from_run<T: Task>(
    store: &Store,
    run: &str,
    checkpoint: &str,
    device: Device,
) -> Result<(T, Env)> {
    let checkpoint = crate::checkpoint::parse_checkpoint_name(checkpoint).map_err(Error::usage)?;
    let record = store.resolve(run, |r| r.kind == RunKind::Train)?;
    load_run(store, &record, &checkpoint, device)
}
