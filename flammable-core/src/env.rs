//! The environment a task runs in: device, seed, variables, training settings, and the run.

use crate::checkpoint::{load_vars, save_vars};
use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::rng::{rng_for, Rng};
use crate::run::Run;
use crate::vars::Vars;
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use std::io::IsTerminal;
use std::path::PathBuf;

/// What a task's constructor and steps can ask for: where to compute, the seeded variables,
/// the training settings, and the run that records it all.
pub struct Env {
    device: Device,
    vars: Vars,
    seed: u64,
    config: TrainConfig,
    run: Option<Run>,
    quiet: bool,
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
        }
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

    /// A `VarBuilder` whose variables are created here with seeded values:
    /// `candle_nn::linear(64, 10, env.builder().pp("fc"))`.
    pub fn builder(&self) -> VarBuilder<'static> {
        self.vars.builder()
    }

    /// The run seed.
    pub fn seed(&self) -> u64 {
        self.seed
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
            eprintln!("{line}");
        }
        if let Some(run) = &self.run {
            run.log_line(line);
        }
    }

    /// True when progress bars can be drawn (a terminal, not quiet).
    pub fn interactive(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }

    fn run_or_err(&self) -> Result<&Run> {
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
    /// this run's own otherwise.
    pub fn load_model(&self, name: &str) -> Result<PathBuf> {
        let path = self.run_or_err()?.checkpoint_to_load(name, "safetensors");
        load_vars(&self.vars, &path)?;
        Ok(path)
    }
}
