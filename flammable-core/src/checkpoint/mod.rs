//! Checkpoints: the model's variables as safetensors, the optimizer's state beside them, and
//! where training stood (epoch, step, seed) as RON. Every file is written atomically.

mod sets;
pub mod writer;

pub use sets::*;

use crate::error::{Error, IoContext, Result};
use crate::model::vars::Vars;
use crate::util::atomic::{commit_temp, temp_path_for, write_atomic};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Where training stood when a checkpoint was written: enough to continue exactly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// The epoch to continue in (from 0).
    pub epoch: u64,
    /// Batches of that epoch already done.
    #[serde(default)]
    pub batch: u64,
    /// Iterations (batches) completed in all.
    pub step: u64,
    /// Optimizer steps taken.
    #[serde(default)]
    pub optimizer_steps: u64,
    /// The run seed.
    pub seed: u64,
    /// Running sums of the losses of the current epoch: (name, sum, count).
    #[serde(default)]
    pub epoch_sums: Vec<(String, f64, u64)>,
    /// The positions of the run's seeded generators (dropout masks, …).
    #[serde(default)]
    pub rng_counters: std::collections::BTreeMap<String, u64>,
    /// Metric points recorded up to this checkpoint.
    #[serde(default)]
    pub metric_points: u64,
    /// The name of this checkpoint's files (`step-0000001234`); `latest` and `best` are links
    /// to such a set.
    #[serde(default)]
    pub name: String,
    /// The best value of the best metric so far.
    #[serde(default)]
    pub best: Option<f64>,
    /// Iterations of a gradient accumulation already summed when the checkpoint was taken
    /// (an epoch can end in the middle of one); their summed gradients are in the optimizer
    /// file under [`PENDING_GRADIENT_PREFIX`].
    #[serde(default)]
    pub micro_steps: u64,
    /// How many processes' gradients that sum holds (0 in checkpoints written before it was
    /// said): a training resumed on another number weighs it anew.
    #[serde(default)]
    pub pending_ranks: u64,
    /// `--early-stop`: the best value of the best metric by its rule, and the validations in
    /// a row that have not improved it.
    #[serde(default)]
    pub early_best: Option<f64>,
    /// See `early_best`.
    #[serde(default)]
    pub stale_validations: u64,
}

/// Prefix of the optimizer file's tensors that hold a half-done gradient accumulation, one
/// per variable name (`pending_gradient/<name>`), beside the optimizer's own state.
pub const PENDING_GRADIENT_PREFIX: &str = "pending_gradient/";

/// The three files of a checkpoint set, in the order they are written (the state last, so
/// that it only ever names a complete set).
pub const CHECKPOINT_FILES: [&str; 3] = ["safetensors", "optimizer.safetensors", "ron"];

/// Writes named tensors as a safetensors file, atomically (temp file, fsync, rename).
pub fn save_tensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    save_tensors_with(tensors, &HashMap::new(), path)
}

/// [`save_tensors`] with `metadata` in the file's header (its `__metadata__`; none when
/// empty).
pub fn save_tensors_with(
    tensors: &HashMap<String, Tensor>,
    metadata: &HashMap<String, String>,
    path: &Path,
) -> Result<()> {
    let tmp = temp_path_for(path);
    let metadata = (!metadata.is_empty()).then(|| metadata.clone());
    if let Err(e) = safetensors::serialize_to_file(tensors, metadata, &tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            message: format!("cannot write: {e}"),
        });
    }
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .at("cannot sync", &tmp)?;
    Ok(commit_temp(&tmp, path)?)
}

/// Reads a safetensors file onto the CPU, naming the file when it is missing or corrupt.
pub fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    if !path.exists() {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            message: "not found".into(),
        });
    }
    candle_core::safetensors::load(path, &candle_core::Device::Cpu).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        message: format!("corrupt or not a safetensors file: {e}"),
    })
}

/// The key of a checkpoint's metadata that holds the model's class names (a JSON array of
/// strings; absent when the classes have none).
pub const CLASSES_KEY: &str = "flammable.classes";

/// What a checkpoint of `vars` keeps beside the tensors: the class names, when named.
pub fn model_metadata(vars: &Vars) -> Result<HashMap<String, String>> {
    let classes = vars.classes();
    if classes.is_empty() {
        return Ok(HashMap::new());
    }
    let json = serde_json::to_string(&*classes)
        .map_err(|e| Error::msg(format!("cannot write the class names: {e}")))?;
    Ok(HashMap::from([(CLASSES_KEY.to_string(), json)]))
}

/// The metadata in the header of safetensors file `path` (empty when it has none), read
/// without the tensors.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    use std::io::Read;
    let corrupt = |message: String| Error::Checkpoint {
        path: path.to_path_buf(),
        message,
    };
    let mut file = std::fs::File::open(path).at("cannot read", path)?;
    let mut size = [0u8; 8];
    file.read_exact(&mut size).at("cannot read", path)?;
    let size = u64::from_le_bytes(size);
    // The format caps headers at 100 MB; refuse to allocate more for a corrupt length.
    if size > 100_000_000 {
        return Err(corrupt(format!(
            "a header of {size} bytes is not safetensors"
        )));
    }
    let mut header = vec![0u8; size as usize];
    file.read_exact(&mut header).at("cannot read", path)?;
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__", default)]
        metadata: HashMap<String, String>,
    }
    let header: Header = serde_json::from_slice(&header)
        .map_err(|e| corrupt(format!("corrupt safetensors header: {e}")))?;
    Ok(header.metadata)
}

/// Saves every variable of `vars` to `path`, and its class names in the file's metadata.
pub fn save_vars(vars: &Vars, path: &Path) -> Result<()> {
    let tensors = vars
        .named_vars()
        .into_iter()
        .map(|(k, v)| (k, v.as_tensor().clone()))
        .collect();
    save_tensors_with(&tensors, &model_metadata(vars)?, path)
}

/// Loads `path` into `vars`: every variable must be in the file with the same shape; the
/// error names each mismatch. The class names become the file's (none for a checkpoint
/// that has none, as older ones).
pub fn load_vars(vars: &Vars, path: &Path) -> Result<()> {
    let tensors = load_tensors(path)?;
    let classes = match read_metadata(path)?.get(CLASSES_KEY) {
        None => Vec::new(),
        Some(json) => serde_json::from_str::<Vec<String>>(json).map_err(|e| Error::Checkpoint {
            path: path.to_path_buf(),
            message: format!("its class names are not a list of strings: {e}"),
        })?,
    };
    let mut problems = Vec::new();
    let named = vars.named_vars();
    for (name, var) in &named {
        match tensors.get(name) {
            None => problems.push(format!("`{name}` is missing")),
            Some(t) if t.shape() != var.shape() => problems.push(format!(
                "`{name}` is {:?} in the file but {:?} in the model",
                t.dims(),
                var.dims()
            )),
            Some(_) => {}
        }
    }
    for name in tensors.keys() {
        if !named.iter().any(|(n, _)| n == name) {
            problems.push(format!("`{name}` is not in the model"));
        }
    }
    if !problems.is_empty() {
        problems.sort();
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            message: format!("does not fit this model: {}", problems.join("; ")),
        });
    }
    for (name, var) in named {
        if let Some(t) = tensors.get(&name) {
            var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
        }
    }
    vars.set_classes(&classes);
    Ok(())
}

/// Writes a [`TrainingState`] as RON.
pub fn save_state(state: &TrainingState, path: &Path) -> Result<()> {
    let text = ron::ser::to_string_pretty(state, ron::ser::PrettyConfig::default())
        .map_err(|e| Error::msg(format!("cannot write training state: {e}")))?;
    Ok(write_atomic(path, text.as_bytes())?)
}

/// Reads a [`TrainingState`].
pub fn load_state(path: &Path) -> Result<TrainingState> {
    let text = std::fs::read_to_string(path).at("cannot read", path)?;
    ron::from_str(&text).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_names_give_their_step() {
        assert_eq!(step_of("step-0000001234"), Some(1234));
        assert_eq!(step_of("latest"), None);
        assert_eq!(step_of("step-x"), None);
    }
    use candle_core::{DType, Device};

    fn model(seed: u64, width: usize) -> Vars {
        let vars = Vars::new(seed, Device::Cpu, DType::F32);
        candle_nn::linear(3, width, vars.builder().pp("fc")).unwrap();
        vars
    }

    fn weights(v: &Vars) -> Vec<Vec<f32>> {
        v.named_vars()
            .iter()
            .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
            .collect()
    }

    #[test]
    fn round_trip_gives_identical_weights() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.safetensors");
        let a = model(1, 4);
        save_vars(&a, &p).unwrap();
        let b = model(2, 4);
        assert_ne!(weights(&a), weights(&b));
        load_vars(&b, &p).unwrap();
        assert_eq!(weights(&a), weights(&b));
    }

    #[test]
    fn class_names_travel_in_the_metadata_and_older_files_have_none() {
        let dir = tempfile::tempdir().unwrap();
        let (named, plain) = (
            dir.path().join("n.safetensors"),
            dir.path().join("p.safetensors"),
        );
        let a = model(1, 4);
        save_vars(&a, &plain).unwrap();
        a.set_classes(&["Barolo".into(), "Grignolino".into(), "Barbera".into()]);
        save_vars(&a, &named).unwrap();
        let b = model(2, 4);
        load_vars(&b, &named).unwrap();
        assert_eq!(*b.classes(), ["Barolo", "Grignolino", "Barbera"]);
        assert_eq!(weights(&a), weights(&b));
        assert_eq!(read_metadata(&plain).unwrap(), HashMap::new());
        // A checkpoint without names (an older run's) leaves none.
        load_vars(&b, &plain).unwrap();
        assert!(b.classes().is_empty());
        // Written by the safetensors crate's own reader's rules: it reads them back.
        let bytes = std::fs::read(&named).unwrap();
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let names = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(CLASSES_KEY).cloned());
        assert_eq!(
            names.as_deref(),
            Some(r#"["Barolo","Grignolino","Barbera"]"#)
        );
    }

    #[test]
    fn mismatch_names_the_tensors_and_corruption_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.safetensors");
        save_vars(&model(1, 4), &p).unwrap();
        let e = load_vars(&model(1, 5), &p).unwrap_err().to_string();
        assert!(e.contains("fc.weight") && e.contains("fc.bias"), "{e}");
        std::fs::write(&p, b"garbage").unwrap();
        let e = load_vars(&model(1, 4), &p).unwrap_err().to_string();
        assert!(e.contains("w.safetensors") && e.contains("corrupt"), "{e}");
    }

    /// Writes checkpoint set `name` (weights of `model(seed, 4)`) and returns its state.
    fn write_set(dir: &Path, name: &str, seed: u64) -> TrainingState {
        save_vars(&model(seed, 4), &dir.join(format!("{name}.safetensors"))).unwrap();
        let state = TrainingState {
            step: seed,
            name: name.to_string(),
            ..TrainingState::default()
        };
        save_state(&state, &dir.join(format!("{name}.ron"))).unwrap();
        state
    }

    #[test]
    fn a_half_relinked_latest_resumes_from_the_set_its_state_names() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_set(d, "step-0000000001", 1);
        write_set(d, "step-0000000002", 2);
        link_checkpoint(d, "step-0000000001", "latest").unwrap();
        // Killed while relinking: the weights already point at set 2, the state still at 1.
        std::fs::remove_file(d.join("latest.safetensors")).unwrap();
        std::fs::hard_link(
            d.join("step-0000000002.safetensors"),
            d.join("latest.safetensors"),
        )
        .unwrap();
        let (found, notes) = newest_good_checkpoint(d);
        let (name, state) = found.unwrap();
        assert_eq!((name.as_str(), state.step), ("step-0000000001", 1));
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn a_corrupt_set_falls_back_to_the_previous_one_with_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_set(d, "step-0000000001", 1);
        write_set(d, "step-0000000002", 2);
        link_checkpoint(d, "step-0000000002", "latest").unwrap();
        std::fs::write(d.join("step-0000000002.safetensors"), b"truncated").unwrap();
        let (found, notes) = newest_good_checkpoint(d);
        assert_eq!(found.unwrap().0, "step-0000000001");
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("step-0000000002"), "{notes:?}");
    }
}
