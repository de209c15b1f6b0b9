//! The `Task` trait: the train, test and eval meta-algorithms as default methods, each made
//! of small steps a task can replace. `#[flammable::task]` implements it from an `impl`
//! block; implementing it by hand is just as valid.

pub mod fit;
pub mod load;
pub mod output;
pub mod payload;
pub mod request;
pub mod sample;
pub mod serve;
mod test;

use crate::data::{Batch, Batches};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::hyper::config::TrainConfig;
use crate::hyper::Hyperparameters;
use crate::store::record::BuildTarget;
use crate::store::Store;
use crate::task::output::{Output, Prediction};
use crate::task::payload::Payload;
use crate::train::optim::Optimizer;
use crate::train::scalars::{Losses, Metrics, Results};
use crate::train::trainer::Trainer;
use candle_core::{Device, Tensor, Var};
use std::path::{Path, PathBuf};

/// A machine-learning task: a model, its data, its loss and its metrics.
///
/// Required: [`Task::new`], [`Task::train_data`], [`Task::forward`], [`Task::loss`]. Every
/// other method is a step of a meta-algorithm with a default that can be replaced.
///
/// Training ([`Task::fit`] → [`Task::train`]):
/// `train_data` → `optimizer` → for each epoch: [`Task::epoch`] (for each batch:
/// [`Task::iteration`] = `prepare_train` → `forward_train` → `losses` → `backward`), then
/// [`Task::every_n_epochs`] (validation when due, checkpoint).
///
/// Testing ([`Task::test`] → [`Task::test_on`]): for each batch `prepare_test` →
/// `forward_test` → `evaluate_metrics`, then `reduce` per metric.
///
/// Evaluation ([`Task::eval_path`]): `load_sample` → [`Task::eval`] (`prepare_eval` →
/// `forward_eval` → `postprocess`) → `store_result`.
///
/// Serving (`serve`): per request `decode_request`; per batch [`Task::serve_batch`]
/// (`prepare_eval` each → `collate` → `forward_eval` → `uncollate` → `postprocess` and
/// `encode_response` each).
pub trait Task: Sized {
    /// The task's own hyperparameters: a struct deriving clap's `Args` and serde's traits
    /// ([`crate::NoHyperparameters`] when there are none).
    type Hyper: Hyperparameters;

    /// The experiment's name: runs of the same experiment are compared and a `test` without
    /// a run picks the latest `train` of it. The macro uses the binary or example name.
    fn experiment() -> &'static str {
        "task"
    }

    /// Where the task's binary comes from (package, binary or example name, package folder),
    /// recorded with each run so that `rerun` can build it again. The macro fills it in.
    fn build_target() -> BuildTarget {
        BuildTarget::default()
    }

    /// The defaults of the shared training settings (`--epochs`, `--lr`, …) for this task;
    /// flags and `--config` files still override them. Default: [`TrainConfig::default`].
    fn default_config() -> TrainConfig {
        TrainConfig::default()
    }

    /// Builds the task before anything runs, for train, test and eval alike. Create the model
    /// through `env.builder()` so that its variables are seeded, saved and loaded.
    fn new(hyper: &Self::Hyper, env: &Env) -> Result<Self>;

    // ---------------------------------------------------------------- data

    /// The training batches; asked once per `train`, iterated once per epoch.
    fn train_data(&self) -> Result<Batches>;

    /// The names of the metrics [`Task::evaluate_metrics`] returns, when known before any
    /// test (`--best-metric` is checked against them before training starts); `None` when
    /// not known. Default: `None`; the macro lists the `#[metric]` steps (or `loss`).
    fn metric_names() -> Option<Vec<&'static str>> {
        None
    }

    /// Whether larger values of metric `name` are better, when the task knows (`--best-metric`
    /// then needs no `--best-mode`); `None` leaves it to `--best-mode` or the name. Default:
    /// `None`; the macro answers for its `#[metric(NAME)]` built-in metrics.
    fn larger_is_better(name: &str) -> Option<bool> {
        let _ = name;
        None
    }

    /// Whether the task has validation data, when known before it is built (`--best-metric`
    /// is then checked before a run starts); `None` when not known. Default: `None`; the macro
    /// answers.
    fn has_validation_data() -> Option<bool> {
        None
    }

    /// Validation batches, tested every `validate_every` epochs. Default: none.
    fn validation_data(&self) -> Result<Option<Batches>> {
        Ok(None)
    }

    /// The test batches for `test`. Default: an error saying to add `#[data(test)]`.
    fn test_data(&self) -> Result<Batches> {
        Err(Error::msg(
            "this task has no test data: add a #[data(test)] step (or implement Task::test_data)",
        ))
    }

    // ---------------------------------------------------------------- model

    /// The model: a batch of inputs to a batch of outputs.
    fn forward(&self, input: &Tensor) -> Result<Tensor>;

    /// The loss of `output` against `batch` (usually `batch.target`), a scalar tensor.
    fn loss(&self, output: &Tensor, batch: &Batch) -> Result<Tensor>;

    /// Named losses of one training batch, summed by `backward`. Default: `loss` alone,
    /// named `loss`.
    fn losses(&self, output: &Tensor, batch: &Batch) -> Result<Losses> {
        Ok(Losses::single("loss", self.loss(output, batch)?))
    }

    /// The optimizer over `vars` (every trainable variable, sorted by name). Default: AdamW or SGD with
    /// momentum, as `--optimizer` says, with `--lr` and `--weight-decay`.
    fn optimizer(&self, vars: Vec<Var>, env: &Env) -> Result<Box<dyn Optimizer>> {
        crate::train::optim::from_config(vars, env.config())
    }

    // ---------------------------------------------------------------- training

    /// Readies a training batch. Default: moves it to the device.
    fn prepare_train(&self, batch: Batch, device: &Device) -> Result<Batch> {
        batch.to_device(device)
    }

    /// The forward pass in training. Default: `forward(&batch.input)`.
    fn forward_train(&self, batch: &Batch) -> Result<Tensor> {
        self.forward(&batch.input)
    }

    /// Back-propagates `losses` and updates the parameters. Default: [`Trainer::backward`]
    /// (sum, backward, accumulation, clipping, schedule, optimizer step).
    fn backward(&self, losses: &Losses, trainer: &mut Trainer) -> Result<()> {
        trainer.backward(losses)
    }

    /// One training batch: prepare → forward → losses → backward; returns the losses.
    fn iteration(&self, batch: Batch, trainer: &mut Trainer) -> Result<Losses> {
        let batch = self
            .prepare_train(batch, trainer.device())
            .map_err(|e| e.in_step("prepare_train"))?;
        let output = self
            .forward_train(&batch)
            .map_err(|e| e.in_step("forward"))?;
        let losses = self
            .losses(&output, &batch)
            .map_err(|e| e.in_step("loss"))?;
        self.backward(&losses, trainer)
            .map_err(|e| e.in_step("backward"))?;
        Ok(losses)
    }

    /// One pass over `data`: an iteration per batch, each batch's losses recorded (kept on
    /// the device, read back every `log_every` steps).
    ///
    /// A resumed run starts its first epoch after the batches it had done (`trainer.batch()`).
    /// An override does as the default does: `data.epoch_from(epoch, trainer.batch(), seed,
    /// device)`, then per batch `trainer.note_input(&batch.input)` (the record's input shape;
    /// with several processes, the weight of this rank's step), `self.iteration(batch,
    /// trainer)`, `trainer.record(&losses)` and `self.on_step_end(trainer)`. With several
    /// processes every rank must take the same number of steps.
    fn epoch(&self, data: &mut Batches, trainer: &mut Trainer) -> Result<()> {
        fit::epoch(self, data, trainer)
    }

    /// Runs after every epoch. Default: validates every `validate_every` epochs (when there
    /// is validation data; an improved `best_metric` makes this checkpoint `best`, and
    /// `--early-stop` counts validations without improvement), tests on
    /// the test data every `test_every` epochs (when set; recorded as `test/<metric>`), then
    /// writes the `latest` checkpoint (the default [`Task::train`] writes it itself, after
    /// the `epoch_end` hooks, so that it holds what they did).
    fn every_n_epochs(&self, trainer: &mut Trainer) -> Result<()> {
        fit::every_n_epochs(self, trainer)
    }

    /// Tests on validation data during training. Default: [`Task::test_on`].
    fn validate(&self, data: &mut Batches, trainer: &mut Trainer) -> Result<Results> {
        self.test_on(data, trainer.env())
    }

    /// The whole training: `epochs` epochs over `train_data` (a resumed run starts at
    /// `trainer.first_epoch()`), each followed by `every_n_epochs`, the `epoch_end` hooks
    /// and the `latest` checkpoint, until the last epoch or until something called [`Trainer::stop`]; then the
    /// `train_end` hooks. Returns the last epoch's mean losses.
    fn train(&self, trainer: &mut Trainer) -> Result<Results> {
        fit::train(self, trainer)
    }

    // ---------------------------------------------------------------- hooks

    /// Runs after each iteration is recorded (`#[on(step_end)]` functions, in order).
    /// Default: nothing. Keep it cheap: it runs every step; [`Trainer::log`] records a
    /// value without reading it back.
    fn on_step_end(&self, trainer: &mut Trainer) -> Result<()> {
        let _ = trainer;
        Ok(())
    }

    /// Runs after each epoch's `every_n_epochs` (validation, test), before the epoch's
    /// `latest` checkpoint, which holds what it did (`#[on(epoch_end)]` functions, in order).
    /// Default: nothing.
    fn on_epoch_end(&self, trainer: &mut Trainer) -> Result<()> {
        let _ = trainer;
        Ok(())
    }

    /// Runs after each validation with its `results`, once they are recorded and the best
    /// metric considered (`#[on(validation_end)]` functions, in order). Default: nothing.
    fn on_validation_end(&self, trainer: &mut Trainer, results: &Results) -> Result<()> {
        let _ = (trainer, results);
        Ok(())
    }

    /// Runs once after the last epoch, before the trainer finishes (`#[on(train_end)]`
    /// functions, in order). Default: nothing.
    fn on_train_end(&self, trainer: &mut Trainer) -> Result<()> {
        let _ = trainer;
        Ok(())
    }

    /// Builds the optimizer and a [`Trainer`] over `env` (restored from `env.resume_state()`
    /// for a resumed run), then runs [`Task::train`]. When training stops on a signal, writes
    /// the `latest` checkpoint of the exact position before returning the interruption.
    fn fit(&self, env: &Env) -> Result<Results> {
        fit::fit(self, env)
    }

    // ---------------------------------------------------------------- testing

    /// Readies a test batch. Default: moves it to the device.
    fn prepare_test(&self, batch: Batch, device: &Device) -> Result<Batch> {
        batch.to_device(device)
    }

    /// The forward pass in testing. Default: `forward(&batch.input)`.
    fn forward_test(&self, batch: &Batch) -> Result<Tensor> {
        self.forward(&batch.input)
    }

    /// The named metrics of one test batch, scalar tensors. Default: the loss, as `loss`.
    fn evaluate_metrics(&self, output: &Tensor, batch: &Batch) -> Result<Metrics> {
        Ok(Metrics::single("loss", self.loss(output, batch)?))
    }

    /// Reduces a metric's per-batch `values` (with the batches' `sizes`) to one number.
    /// Default: the mean weighted by batch size.
    fn reduce(&self, name: &str, values: &[f64], sizes: &[usize]) -> Result<f64> {
        let total: usize = sizes.iter().sum();
        if total == 0 {
            return Err(Error::msg(format!(
                "metric `{name}`: the test data is empty"
            )));
        }
        let sum: f64 = values.iter().zip(sizes).map(|(v, n)| v * *n as f64).sum();
        Ok(sum / total as f64)
    }

    /// Tests on `data`: metrics per batch stay on the device; one read-back at the end.
    fn test_on(&self, data: &mut Batches, env: &Env) -> Result<Results> {
        test::test_on(self, data, env)
    }

    /// Tests on `test_data`.
    fn test(&self, env: &Env) -> Result<Results> {
        let mut data = self.test_data()?;
        self.test_on(&mut data, env)
    }

    // ---------------------------------------------------------------- evaluation

    /// Reads one input from a file. Default: by extension (see [`crate::task::sample::load_sample`]).
    fn load_sample(&self, path: &Path) -> Result<Tensor> {
        crate::task::sample::load_sample(path)
    }

    /// Readies a sample for the model. Default: moves it to the device and adds a batch
    /// dimension of 1.
    fn prepare_eval(&self, sample: Tensor, device: &Device) -> Result<Tensor> {
        Ok(sample.to_device(device)?.unsqueeze(0)?)
    }

    /// The forward pass in evaluation. Default: `forward`.
    fn forward_eval(&self, input: &Tensor) -> Result<Tensor> {
        self.forward(input)
    }

    /// Turns the model's output into the result. Default: a [`Prediction`] (values and
    /// argmax), which the default `eval` and `serve_batch` complete with the class's name
    /// when the run named its classes ([`Env::set_classes`]).
    fn postprocess(&self, output: &Tensor) -> Result<Output> {
        Output::prediction(&Prediction::from_output(output)?)
    }

    /// Writes a result to `path`. Default: its RON text, atomically.
    fn store_result(&self, result: &Output, path: &Path) -> Result<()> {
        result.write(path)
    }

    /// One sample through the model, for live use: prepare → forward → postprocess (a
    /// default [`Prediction`] then names its class, see [`Output::with_classes`]). An output
    /// holding NaN or an infinite value is an error, not a made-up class (as in
    /// [`Task::serve_batch`]; a task whose outputs may be such overrides both).
    fn eval(&self, sample: Tensor, env: &Env) -> Result<Output> {
        let input = self
            .prepare_eval(sample, env.device())
            .map_err(|e| e.in_step("prepare_eval"))?;
        let output = self
            .forward_eval(&input)
            .map_err(|e| e.in_step("forward"))?;
        request::check_finite_output(&output).map_err(|e| e.in_step("forward"))?;
        self.postprocess(&output)
            .and_then(|result| result.with_classes(&env.classes()))
            .map_err(|e| e.in_step("postprocess"))
    }

    /// The file `input` through the model into the file `output` ([`Task::store_result`]);
    /// an `output` of `-` stores nothing (the `eval` command prints the result either way).
    fn eval_path(&self, input: &Path, output: &Path, env: &Env) -> Result<Output> {
        let sample = self.load_sample(input)?;
        if !Self::NON_FINITE_INPUTS {
            request::check_finite(&sample, &format!("`{}`", input.display()))
                .map_err(|e| Error::msg(e.to_string()))?;
        }
        let shape = sample.dims().to_vec();
        let result = self.eval(sample, env).map_err(|e| {
            Error::msg(format!(
                "`{}`, a sample of shape {shape:?}, does not go through the model: {e}",
                input.display()
            ))
        })?;
        if output != Path::new("-") {
            self.store_result(&result, output)?;
        }
        Ok(result)
    }

    // ---------------------------------------------------------------- serving

    /// Whether the task's inputs may hold NaN or infinite values. Default: `false`, and
    /// `serve` answers such a request with 422 and `eval` refuses such a file (a model fed a
    /// NaN answers with a made-up class). The macro sets it with
    /// `#[flammable::task(non_finite_inputs)]`.
    const NON_FINITE_INPUTS: bool = false;

    /// Reads one sample from a request body (`serve`'s `POST /predict`), with the request's
    /// `Content-Type` (empty when absent). It takes no `&self`: the server calls it where the
    /// request arrives, and refuses what it cannot read (400, with the error's text) before
    /// the request waits for the model. Default: JSON numbers in nested arrays, as `f32`
    /// (see [`request::decode_json`]).
    fn decode_request(body: &[u8], content_type: &str) -> Result<Tensor> {
        let _ = content_type;
        request::decode_json(body)
    }

    /// Joins prepared samples into one batch. Default: concatenates them along the first
    /// dimension (each `prepare_eval` output has a batch dimension).
    fn collate(&self, inputs: Vec<Tensor>) -> Result<Tensor> {
        match inputs.as_slice() {
            [one] => Ok(one.clone()),
            _ => Ok(Tensor::cat(&inputs, 0)?),
        }
    }

    /// Splits a batch's output back into one output per sample: `sizes[i]` is the first
    /// dimension of sample `i`'s prepared input. Default: consecutive slices along the first
    /// dimension.
    fn uncollate(&self, output: &Tensor, sizes: &[usize]) -> Result<Vec<Tensor>> {
        let mut start = 0;
        let mut parts = Vec::with_capacity(sizes.len());
        for &n in sizes {
            parts.push(output.narrow(0, start, n)?);
            start += n;
        }
        Ok(parts)
    }

    /// Turns one result into a response body. Default: its JSON
    /// ([`Payload::from_output`]).
    fn encode_response(&self, result: &Output) -> Result<Payload> {
        Payload::from_output(result)
    }

    /// A batch of decoded samples through the model, one response body per sample in order:
    /// `prepare_eval` each → `collate` → `forward_eval` → one read-back of the output to the
    /// CPU → `uncollate` → `postprocess` and `encode_response` each.
    fn serve_batch(&self, samples: Vec<Tensor>, env: &Env) -> Result<Vec<Payload>> {
        serve::serve_batch(self, samples, env)
    }

    // ---------------------------------------------------------------- checkpoints

    /// Saves the model as checkpoint `name` of the run. Default: [`Env::save_model`].
    fn save_model(&self, env: &Env, name: &str) -> Result<PathBuf> {
        env.save_model(name)
    }

    /// Loads checkpoint `name` (`latest` by default in the CLI). Default: [`Env::load_model`].
    fn load_model(&self, env: &Env, name: &str) -> Result<PathBuf> {
        env.load_model(name)
    }

    /// The run store the task's binary uses, found from any folder as the binary finds it:
    /// `$FLAMMABLE_STORE`, else `.flammable/` of the repository of the task's code; `latest`
    /// counts the task's own train runs. For [`Task::from_run`] in your own program.
    fn store() -> Result<Store> {
        load::store_of::<Self>()
    }

    /// A trained model in your own program, without the command line: builds the task with
    /// the hyperparameters train run `run` of `store` recorded (an id, a unique prefix,
    /// `latest`…) on `device`, and loads its checkpoint `checkpoint` (`latest`, `best` or
    /// `step-N`). Returns the task and its environment, ready for [`Task::eval`] or
    /// [`Task::forward`]. The task's data are not loaded (`env.needs_data()` is false).
    ///
    /// ```ignore
    /// let store = Digits::store()?;
    /// let (digits, env) = Digits::from_run(&store, "latest", "best", Device::Cpu)?;
    /// let prediction = digits.eval(sample, &env)?;
    /// ```
    fn from_run(store: &Store, run: &str, checkpoint: &str, device: Device) -> Result<(Self, Env)> {
        load::from_run(store, run, checkpoint, device)
    }
}
