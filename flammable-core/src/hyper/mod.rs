//! Hyperparameters: a task's own settings struct, the shared [`TrainConfig`], and the
//! `--config file.ron` that sets them below the command line.
//!
//! A file's values become the defaults of the matching flags, so clap parses and checks them
//! exactly as if they had been typed, and a flag given on the command line still wins.

pub mod config;
pub mod defaults;
pub mod schedule;
pub mod values;

use crate::error::{Error, IoContext, Result};
use crate::hyper::config::TrainConfig;
use clap::{Args, Command};
use ron::value::RawValue;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;

/// What a task's hyperparameter struct must be: clap `Args` (its fields become flags) and
/// serde (it is recorded with each run). Derive `Clone, Debug, Serialize, Deserialize, Args`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a task's hyperparameters: it lacks a derive",
    note = "write #[derive(Clone, Debug, serde::Serialize, serde::Deserialize, clap::Args)] above `struct {Self}`"
)]
pub trait Hyperparameters:
    Args + clap::FromArgMatches + Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static
{
}

impl<T> Hyperparameters for T where
    T: Args
        + clap::FromArgMatches
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// The hyperparameters of a task that has none of its own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Args)]
pub struct NoHyperparameters {}

/// All hyperparameters of a run, as written to its `hyperparameters.ron` (which `--config`
/// reads back).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HyperRecord<H> {
    /// The shared training settings.
    pub train: TrainConfig,
    /// The task's own hyperparameters.
    pub task: H,
}

// Generic code only hands the task's own struct to `ron_text`; the shared part and the file
// around it go through the non-generic functions below: all RON code is compiled once, in
// this crate, rather than again in every task binary (it was a third of a task's rebuild).

impl<H: Serialize> HyperRecord<H> {
    /// Pretty RON, one field a line.
    pub fn to_ron(&self) -> Result<String> {
        let task = crate::util::ron_text::to_pretty(&self.task)
            .map_err(|e| Error::msg(format!("cannot write hyperparameters as RON: {e}")))?;
        record_text(&self.train, &task)
    }
}

impl<H: Hyperparameters> HyperRecord<H> {
    /// Reads a file written by [`HyperRecord::to_ron`]; fields added to the task (or to the
    /// shared settings) after the run was recorded take their flags' defaults.
    pub fn read(path: &Path) -> Result<Self> {
        Ok(Self::read_filled(path)?.0)
    }

    /// [`HyperRecord::read`], also returning the fields the file lacked, which took their
    /// flags' defaults (see [`defaults::describe`]); the shared settings take
    /// [`TrainConfig::default`]'s.
    pub fn read_filled(path: &Path) -> Result<(Self, Vec<defaults::Filled>)> {
        Self::read_filled_as(path, &TrainConfig::default())
    }

    /// [`HyperRecord::read_filled`] for a task whose shared settings default to
    /// `train_defaults` ([`crate::Task::default_config`]): a setting the file lacks takes the
    /// task's default, as a run started without its flag would.
    pub fn read_filled_as(
        path: &Path,
        train_defaults: &TrainConfig,
    ) -> Result<(Self, Vec<defaults::Filled>)> {
        let (train, task, mut filled) = read_record_parts(path, train_defaults)?;
        let task = match crate::util::ron_text::from_str::<H>(&task) {
            Ok(task) => task,
            Err(first) => {
                let bad = |message: String| Error::Ron {
                    path: path.to_path_buf(),
                    message: format!("task: {message}"),
                };
                let merged = defaults::clap_defaults::<H>()
                    .and_then(|d| defaults::merge_defaults(&task, &d))
                    .filter(|(_, more)| !more.is_empty());
                let Some((text, more)) = merged else {
                    return Err(bad(first));
                };
                let task = crate::util::ron_text::from_str::<H>(&text).map_err(bad)?;
                filled.extend(more);
                task
            }
        };
        Ok((HyperRecord { train, task }, filled))
    }
}

/// The text of a hyperparameter file: `train` and the task's own struct, already RON.
fn record_text(train: &TrainConfig, task: &str) -> Result<String> {
    #[derive(Serialize)]
    struct File<'a> {
        train: &'a TrainConfig,
        task: &'a RawValue,
    }
    // Nested one level deeper than it was written.
    let task = task.replace('\n', "\n    ");
    let task = RawValue::from_ron(&task)
        .map_err(|e| Error::msg(format!("cannot write hyperparameters as RON: {e}")))?;
    ron::ser::to_string_pretty(&File { train, task }, crate::util::ron_text::pretty())
        .map_err(|e| Error::msg(format!("cannot write hyperparameters as RON: {e}")))
}

/// The shared settings of a hyperparameter file (the ones added since it was written taking
/// their values in `train_defaults`, listed), and its task's struct as RON text.
pub(crate) fn read_record_parts(
    path: &Path,
    train_defaults: &TrainConfig,
) -> Result<(TrainConfig, String, Vec<defaults::Filled>)> {
    #[derive(Deserialize)]
    struct File {
        train: Box<RawValue>,
        task: Box<RawValue>,
    }
    let text = std::fs::read_to_string(path).at("cannot read", path)?;
    let bad = |message: String| Error::Ron {
        path: path.to_path_buf(),
        message,
    };
    let file: File = ron::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let train = file.train.get_ron();
    let (train, filled) = match ron::from_str::<TrainConfig>(train) {
        Ok(config) => (config, Vec::new()),
        Err(first) => {
            let merged = crate::util::ron_text::to_pretty(train_defaults)
                .ok()
                .and_then(|d| defaults::merge_defaults(train, &d))
                .filter(|(_, filled)| !filled.is_empty());
            let Some((text, filled)) = merged else {
                return Err(bad(format!("train: {first}")));
            };
            let config =
                ron::from_str::<TrainConfig>(&text).map_err(|e| bad(format!("train: {e}")))?;
            (config, filled)
        }
    };
    Ok((train, file.task.get_ron().to_string(), filled))
}

/// A RON struct with any field names, each value kept as its source text.
struct RawFields(BTreeMap<String, Box<RawValue>>);

impl<'de> Deserialize<'de> for RawFields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RawFields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a struct of hyperparameters, like (lr: 0.01, epochs: 5)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<RawFields, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    out.insert(k, v);
                }
                Ok(RawFields(out))
            }
        }
        d.deserialize_struct("Hyperparameters", &[], Visit)
    }
}

/// Reads a `--config` file into (flag id, value as typed on a command line) pairs; `None`
/// unsets an optional flag. Nested structs (`train: (…)`, `task: (…)`) are flattened, so a
/// run's `hyperparameters.ron` is a valid config file.
pub fn read_config(path: &Path) -> Result<Vec<(String, Option<String>)>> {
    let text = std::fs::read_to_string(path).at("cannot read config", path)?;
    parse_config(text, path)
}

/// [`read_config`] of a text that came from `origin`.
pub fn parse_config(text: String, origin: &Path) -> Result<Vec<(String, Option<String>)>> {
    let bad = |message: String| Error::Ron {
        path: origin.to_path_buf(),
        message,
    };
    let mut out = Vec::new();
    let mut stack = vec![text];
    while let Some(text) = stack.pop() {
        let fields: RawFields = ron::from_str(&text).map_err(|e| bad(e.to_string()))?;
        for (key, raw) in fields.0 {
            let raw = raw.get_ron().trim();
            if raw.starts_with('(') && (key == "train" || key == "task") {
                stack.push(raw.to_string());
                continue;
            }
            let value = cli_value(raw)
                .ok_or_else(|| bad(format!("`{key}: {raw}`: only single values (numbers, strings, names, Some/None) can be set from a file")))?;
            out.push((key.replace('-', "_"), value));
        }
    }
    Ok(out)
}

/// The hyperparameters file `path` of a run, flattened (`lr`, `epochs`, the task's own…), each
/// value as its command-line text (`None` for an unset option); empty when the file is absent
/// or unreadable.
pub fn read_flat(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| parse_config(t, path).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_else(|| "None".into())))
        .collect()
}

/// [`read_flat`] of run `run`'s hyperparameters file `path`, with a warning when the file is
/// there but cannot be read (damaged) rather than an empty answer in silence; `consequence`
/// says what that leaves out.
pub fn read_flat_warned(path: &Path, run: &str, consequence: &str) -> BTreeMap<String, String> {
    let flat = read_flat(path);
    if flat.is_empty() && path.exists() {
        crate::util::stderr::errln!(
            "warning: run {run}: {} cannot be read: {consequence}",
            path.display()
        );
    }
    flat
}

/// A RON value's text as it would be typed on the command line (`Some(v)` as the command line
/// value of `v`, `None` as no value); `None` for lists and structs.
fn cli_value(raw: &str) -> Option<Option<String>> {
    let raw = raw.trim();
    if raw.starts_with('"') {
        return ron::from_str::<String>(raw).ok().map(Some);
    }
    if raw == "None" {
        return Some(None);
    }
    if let Some(inner) = raw.strip_prefix("Some(").and_then(|s| s.strip_suffix(')')) {
        return cli_value(inner);
    }
    if raw.starts_with(['[', '(', '{']) {
        return None;
    }
    Some(Some(raw.to_string()))
}

/// Makes `config` the defaults of the shared training flags of `cmd`.
pub fn apply_train_defaults(cmd: Command, config: &TrainConfig) -> Result<Command> {
    let text = ron::ser::to_string(config)
        .map_err(|e| Error::msg(format!("cannot write training defaults as RON: {e}")))?;
    let values = parse_config(text, Path::new("Task::default_config"))?;
    apply_config::<NoHyperparameters>(cmd, values)
}

/// The ids of the hyperparameter flags: the shared [`TrainConfig`] and the task's `H`.
pub fn hyper_flag_ids<H: Args>() -> Vec<String> {
    let cmd = H::augment_args(TrainConfig::augment_args(Command::new("flags")));
    cmd.get_arguments()
        .map(|a| a.get_id().to_string())
        .collect()
}

/// Makes the values of a config file the defaults of `cmd`'s flags of the same ids.
pub fn apply_config<H: Args>(
    cmd: Command,
    values: Vec<(String, Option<String>)>,
) -> Result<Command> {
    apply_config_to(cmd, values, &hyper_flag_ids::<H>())
}

/// [`apply_config`] with the ids of the hyperparameter flags given: an id not among them is
/// an error.
pub fn apply_config_to(
    mut cmd: Command,
    values: Vec<(String, Option<String>)>,
    known: &[String],
) -> Result<Command> {
    for (key, value) in values {
        if !known.contains(&key) {
            return Err(Error::usage(format!(
                "the config file sets `{key}`, which is not a hyperparameter; known: {}",
                known.join(", ")
            )));
        }
        cmd = cmd.mut_arg(&key, |a| match value {
            Some(v) => a.default_value(v),
            None => a.default_value(clap::builder::Resettable::<clap::builder::OsStr>::Reset),
        });
    }
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{FromArgMatches, Parser};

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Args)]
    struct Task {
        /// Width.
        #[arg(long, default_value_t = 8)]
        hidden: usize,
        /// Name.
        #[arg(long, default_value = "net")]
        name: String,
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        train: TrainConfig,
        #[command(flatten)]
        task: Task,
    }

    #[test]
    fn a_record_round_trips_and_is_a_valid_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hyperparameters.ron");
        let record = HyperRecord {
            train: TrainConfig {
                lr: 0.25,
                ..TrainConfig::default()
            },
            task: Task {
                hidden: 3,
                name: "two\nlines, (and) \"quotes\"".into(),
            },
        };
        let text = record.to_ron().unwrap();
        assert!(text.contains("    task: (\n        hidden: 3,"), "{text}");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(HyperRecord::<Task>::read(&path).unwrap(), record);
        let flags = read_config(&path).unwrap();
        assert!(
            flags.contains(&("hidden".into(), Some("3".into()))),
            "{flags:?}"
        );
        assert!(
            flags.contains(&("lr".into(), Some("0.25".into()))),
            "{flags:?}"
        );
    }

    fn parse(file: Option<&str>, args: &[&str]) -> Result<(TrainConfig, Task)> {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        if let Some(text) = file {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("c.ron");
            std::fs::write(&p, text).unwrap();
            cmd = apply_config::<Task>(cmd, read_config(&p)?)?;
        }
        let m = cmd
            .try_get_matches_from(std::iter::once("x").chain(args.iter().copied()))
            .map_err(|e| Error::usage(e.kind()))?;
        let cli = Cli::from_arg_matches(&m).map_err(|e| Error::usage(e.kind()))?;
        Ok((cli.train, cli.task))
    }

    #[test]
    fn file_sets_defaults_and_flags_win() {
        let file = r#"(epochs: 3, lr: 0.5, hidden: 32, name: "wide net", clip_grad_norm: Some(1.0), optimizer: sgd)"#;
        let (t, k) = parse(Some(file), &["--lr", "0.25"]).unwrap();
        assert_eq!((t.epochs, t.lr, t.clip_grad_norm), (3, 0.25, Some(1.0)));
        assert_eq!(t.optimizer, crate::hyper::config::OptimizerKind::Sgd);
        assert_eq!((k.hidden, k.name.as_str()), (32, "wide net"));
    }

    #[test]
    fn recorded_hyperparameters_are_a_valid_config() {
        let (mut t, mut k) = parse(None, &[]).unwrap();
        t.epochs = 7;
        t.clip_grad_norm = Some(2.0);
        k.hidden = 5;
        let text = HyperRecord {
            train: t.clone(),
            task: k.clone(),
        }
        .to_ron()
        .unwrap();
        assert_eq!(parse(Some(&text), &[]).unwrap(), (t, k));
    }

    #[test]
    fn unknown_keys_lists_and_bad_values_are_errors() {
        assert!(parse(Some("(hiden: 3)"), &[])
            .unwrap_err()
            .to_string()
            .contains("hidden"));
        assert!(parse(Some("(hidden: [1, 2])"), &[]).is_err());
        assert!(parse(Some("(hidden: \"many\")"), &[]).is_err());
        assert!(parse(Some("(hidden: 3"), &[]).is_err());
    }
}
