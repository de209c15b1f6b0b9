//! The environment a task runs in: device, seed, variables, training settings, the run, and
//! the stop flag. What the loops (`train/`) and the task's steps see; it sits above the
//! model, data and checkpoint files, and knows the store only through the [`Run`] handle.

use crate::checkpoint::{load_vars, save_vars, TrainingState};
use crate::error::{Error, Result};
use crate::hyper::config::TrainConfig;
use crate::model::rng::{rng_for, Rng};
use crate::model::vars::Vars;
use crate::run::Run;
use crate::store::record::{Record, RunKind};
use crate::store::{Store, CHECKPOINTS_DIR, HYPERPARAMETERS_FILE};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// What a task's constructor and steps can ask for: where to compute, the seeded variables,
/// the training settings, and the run that records it all.
pub struct Env {
    device: Device,
    vars: Vars,
    seed: u64,
    config: TrainConfig,
    run: Option<Run>,
    quiet: bool,
    stop: Arc<AtomicUsize>,
    /// Set once the run has recorded its split seed.
    split_recorded: AtomicBool,
    /// False where the task is built only to compute predictions (`eval`, `serve`,
    /// `Task::from_run`): its data need not be loaded.
    needs_data: bool,
    resume: Option<TrainingState>,
    /// Where `load_model` reads checkpoints when there is no run: a trained run's
    /// `checkpoints/` (see [`Env::from_run`]).
    checkpoints: Option<PathBuf>,
}

impl Env {
    /// An environment on `device` with `seed` and default training settings, recording
    /// nothing (for library use and tests; the CLI adds a run).
    pub fn new(device: Device, seed: u64) -> Self {
        Env {
            vars: Vars::new(seed, device.clone(), DType::F32),
            device,
            seed,
            config: TrainConfig::default(),
            run: None,
            quiet: true,
            stop: Arc::new(AtomicUsize::new(0)),
            split_recorded: AtomicBool::new(false),
            needs_data: true,
            resume: None,
            checkpoints: None,
        }
    }

    /// The same stopping at the next step boundary once `stop` holds a signal number
    /// (the CLI sets it on Ctrl-C and SIGTERM).
    pub fn with_stop(mut self, stop: Arc<AtomicUsize>) -> Self {
        self.stop = stop;
        self
    }

    /// The signal that asked training to stop, if any.
    pub fn stop_signal(&self) -> Option<i32> {
        match self.stop.load(Ordering::Relaxed) {
            0 => None,
            s => Some(s as i32),
        }
    }

    /// Asks training to stop at the next step boundary, as if `signal` had arrived.
    pub fn request_stop(&self, signal: i32) {
        self.stop.store(signal.max(1) as usize, Ordering::Relaxed);
    }

    /// The same continuing from `state` (`train --resume`).
    pub fn with_resume(mut self, state: TrainingState) -> Self {
        for (name, n) in &state.rng_counters {
            self.rng_counter(name).store(*n, Ordering::Relaxed);
        }
        self.resume = Some(state);
        self
    }

    /// Where a resumed run continues from.
    pub fn resume_state(&self) -> Option<&TrainingState> {
        self.resume.as_ref()
    }

    /// The counter of the seeded generator `name` (see [`Vars::rng_counter`]).
    pub fn rng_counter(&self, name: &str) -> Arc<AtomicU64> {
        self.vars.rng_counter(name)
    }

    /// The positions of every seeded generator (see [`Vars::rng_counters`]).
    pub fn rng_counters(&self) -> BTreeMap<String, u64> {
        self.vars.rng_counters()
    }

    /// The same with training settings `config`.
    pub fn with_config(mut self, config: TrainConfig) -> Self {
        self.config = config;
        self
    }

    /// The same recording into `run`.
    pub fn with_run(mut self, run: Run) -> Self {
        self.run = Some(run);
        self
    }

    /// The same printing progress (`quiet = false`) or not.
    pub fn with_quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// Where tensors live.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The model's variables.
    pub fn vars(&self) -> &Vars {
        &self.vars
    }

    /// Names the classes the model's outputs score (output `i` is class `names[i]`), for
    /// example a CSV dataset's: `env.set_classes(all.classes())`. The names are kept in every
    /// checkpoint of the run, and a load puts the run's back (none for a run that had
    /// none), so that `eval`, `serve` and `Task::from_run` answer the class's name beside
    /// its index, and `test` labels the confusion matrix with them.
    pub fn set_classes(&self, names: &[String]) {
        self.vars.set_classes(names);
    }

    /// The names of the classes, index by index (see [`Env::set_classes`]); empty when
    /// none were named.
    pub fn classes(&self) -> std::sync::Arc<[String]> {
        self.vars.classes()
    }

    /// A `VarBuilder` whose variables are created here with seeded values:
    /// `candle_nn::linear(64, 10, env.builder().pp("fc"))`.
    pub fn builder(&self) -> VarBuilder<'static> {
        self.vars.builder()
    }

    /// True when the task's data will be used: by `train` and `test`. False where the task is
    /// built only to compute predictions from a trained run — `eval`, `serve`,
    /// `Task::from_run` — which must need nothing but the run's folder: `#[init]` then
    /// skips loading the data, and builds layers fitted on it unfitted (see
    /// [`crate::data::Scaler::unfitted`]); the checkpoint fills them in.
    pub fn needs_data(&self) -> bool {
        self.needs_data
    }

    /// The same telling the task whether its data will be used (see [`Env::needs_data`]).
    pub fn with_needs_data(mut self, needs_data: bool) -> Self {
        self.needs_data = needs_data;
        self
    }

    /// The run seed: initial weights, shuffling, dropout.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The seed to split the data with (`--split-seed`, the same for every run unless set):
    /// `data.split_stratified(&[0.8, 0.2], env.split_seed())`. Runs that differ only in
    /// `--seed` then train and validate on the same rows. The run records that it split by
    /// it, so that `runs` can say when compared runs were validated on different data.
    pub fn split_seed(&self) -> u64 {
        let seed = self.config.split_seed;
        if !self.split_recorded.swap(true, Ordering::Relaxed) {
            if let Some(run) = &self.run {
                // A record that cannot be written fails the run at its next write.
                let _ = run.update(|r| r.split_seed = Some(seed));
            }
        }
        seed
    }

    /// A generator for the task's own random draws, keyed by `label` and `index` under the
    /// run seed.
    pub fn rng(&self, label: &str, index: u64) -> Rng {
        rng_for(self.seed, label, index)
    }

    /// The training settings.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The run being recorded, if any.
    pub fn run(&self) -> Option<&Run> {
        self.run.as_ref()
    }

    /// True when progress is not printed.
    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// Prints a line of progress (unless quiet) and copies it to the run's log.
    pub fn say(&self, line: &str) {
        if !self.quiet {
            crate::util::stderr::errln!("{line}");
        }
        if let Some(run) = &self.run {
            run.log_line(line);
        }
    }

    /// True when progress bars can be drawn (a terminal, not quiet).
    pub fn interactive(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }

    pub(crate) fn run_or_err(&self) -> Result<&Run> {
        self.run
            .as_ref()
            .ok_or_else(|| Error::msg("checkpoints need a run: this environment records none"))
    }

    /// Saves the variables as checkpoint `name` of this run; returns the file.
    pub fn save_model(&self, name: &str) -> Result<PathBuf> {
        let path = self.run_or_err()?.checkpoint_path(name, "safetensors")?;
        save_vars(&self.vars, &path)?;
        Ok(path)
    }

    /// Loads checkpoint `name` into the variables: the parent's for a test or eval run,
    /// this run's own otherwise, or the trained run's of [`Env::from_run`].
    pub fn load_model(&self, name: &str) -> Result<PathBuf> {
        let path = match (&self.run, &self.checkpoints) {
            (Some(run), _) => run.checkpoint_to_load(name, "safetensors"),
            (None, Some(dir)) => dir.join(format!("{name}.safetensors")),
            (None, None) => {
                return Err(Error::msg(
                    "this environment has no run to load checkpoints from: use Env::from_run (or Task::from_run) to load a trained run",
                ))
            }
        };
        load_vars(&self.vars, &path)?;
        Ok(path)
    }

    /// An environment over train run `run` of `store` (an id, a unique prefix, `latest`…),
    /// for using its model in your own program: its seed and training settings, `device`,
    /// and its checkpoints for [`Env::load_model`]. It records nothing. [`crate::Task::from_run`]
    /// also builds the task with the run's hyperparameters and loads a checkpoint.
    pub fn from_run(store: &Store, run: &str, device: Device) -> Result<Env> {
        let record = store.resolve(run, |r| r.kind == RunKind::Train)?;
        let path = store.run_dir(&record.id).join(HYPERPARAMETERS_FILE);
        let (train, _, _) = crate::hyper::read_record_parts(&path, &TrainConfig::default())?;
        Ok(Env::from_record(store, &record, device, train))
    }

    /// [`Env::from_run`] for a train run already resolved.
    /// `train_defaults`: the task's shared settings, for the ones the record lacks.
    pub(crate) fn from_record(
        store: &Store,
        record: &Record,
        device: Device,
        train: TrainConfig,
    ) -> Env {
        let mut env = Env::new(device, record.seed)
            .with_config(train)
            .with_needs_data(false);
        env.checkpoints = Some(store.run_dir(&record.id).join(CHECKPOINTS_DIR));
        env
    }
}

impl AsRef<Vars> for Env {
    /// The model's variables: layers that need only them (`Dropout::new`,
    /// `Standardize::fit`) take an `Env` as well.
    fn as_ref(&self) -> &Vars {
        &self.vars
    }
}
