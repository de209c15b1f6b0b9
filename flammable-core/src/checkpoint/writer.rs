//! Checkpoints written beside the training loop: the loop copies the tensors and goes on
//! while another thread writes, syncs and links the files. Writing a set takes milliseconds
//! of fsyncs, which would otherwise stall every epoch end.

use crate::checkpoint::{
    link_checkpoint, prune_checkpoints, remove_checkpoint_set, save_state, save_tensors,
    save_tensors_with, TrainingState, CHECKPOINT_FILES,
};
use crate::error::{Error, Result};
use crate::run::Followers;
use crate::store::CHECKPOINTS_DIR;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;
use std::thread::JoinHandle;

/// One checkpoint set to write: copies of the tensors as they were when it was taken, and
/// where training stood.
pub struct CheckpointSet {
    /// The run's checkpoint folder.
    pub dir: PathBuf,
    /// The set's name (`step-0000001234`).
    pub name: String,
    /// The alias pointed at the set once it is complete (`latest`).
    pub alias: String,
    /// Whether `best` is pointed at it too.
    pub best: bool,
    /// How many numbered sets to keep.
    pub keep: usize,
    /// The model's variables.
    pub model: HashMap<String, Tensor>,
    /// What the model's file keeps beside them (see [`crate::checkpoint::model_metadata`]).
    pub metadata: HashMap<String, String>,
    /// The optimizer's state (not written when empty).
    pub optimizer: HashMap<String, Tensor>,
    /// Where training stood.
    pub state: TrainingState,
    /// The run's followers: the sets they have not tested are not pruned, and those pruned
    /// are listed for them (`None`: prune without asking).
    pub followers: Option<Followers>,
}

/// A copy of `t` that later steps cannot change (optimizers update variables in place),
/// in host memory, so that the writer thread never touches the device.
pub fn frozen_copy(t: &Tensor) -> Result<Tensor> {
    Ok(match t.device() {
        Device::Cpu => t.copy()?,
        _ => t.to_device(&Device::Cpu)?,
    })
}

impl CheckpointSet {
    /// Writes the variables, the optimizer's state and then the training state (so the
    /// state file only ever names a complete set), links the alias (and `best`), and prunes
    /// old sets. A set that fails to write is removed, so that it neither hides the previous
    /// checkpoint nor keeps the space it took (a full disk).
    pub fn write(self) -> Result<()> {
        let path = |ext: &str| self.dir.join(format!("{}.{ext}", self.name));
        let files = (|| {
            save_tensors_with(&self.model, &self.metadata, &path("safetensors"))?;
            if !self.optimizer.is_empty() {
                save_tensors(&self.optimizer, &path("optimizer.safetensors"))?;
            }
            save_state(&self.state, &path("ron"))
        })();
        if let Err(e) = files {
            remove_checkpoint_set(&self.dir, &self.name);
            return Err(e);
        }
        link_checkpoint(&self.dir, &self.name, &self.alias)?;
        if self.best {
            link_checkpoint(&self.dir, &self.name, "best")?;
        }
        // Asked after the set is complete: a follower that pinned in the meantime is heard.
        let pinned = self.followers.as_ref().and_then(Followers::lowest_live_pin);
        let removed = prune_checkpoints(&self.dir, self.keep.max(1), pinned);
        self.remember_hashes();
        if let Some(followers) = &self.followers {
            // The list only completes what a late follower reports: training goes on
            // without it.
            if let Err(e) = followers.note_pruned(&removed) {
                crate::util::stderr::errln!("warning: {e}");
            }
        }
        Ok(())
    }
}

impl CheckpointSet {
    /// Hashes the set's files, here on the writer's thread, into the run's
    /// [`crate::store::hashes`], so that a push of the run need not read them again. The
    /// alias and `best` are links to the same files: each is read once. Only for a set in a
    /// run's `checkpoints/` folder.
    fn remember_hashes(&self) {
        let Some(run_dir) = self.dir.parent() else {
            return;
        };
        if self.dir.file_name() != Some(CHECKPOINTS_DIR.as_ref()) {
            return;
        }
        // Every set's files: those of earlier sets were relinked or unlinked by this set
        // (their change times moved), and are taken again rather than hashed again.
        let rels: Vec<String> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| {
                !name.starts_with('.')
                    && CHECKPOINT_FILES
                        .iter()
                        .any(|ext| name.ends_with(&format!(".{ext}")))
            })
            .map(|name| format!("{CHECKPOINTS_DIR}/{name}"))
            .collect();
        crate::store::hashes::remember(run_dir, &rels);
    }
}

/// Writes checkpoint sets on a thread of their own, one at a time, in the order given.
#[derive(Default)]
pub struct CheckpointWriter {
    pending: Option<(String, JoinHandle<Result<()>>)>,
}

impl CheckpointWriter {
    /// Starts writing `set` once the set before it is written. Returns that earlier set's
    /// error, if it failed (and then does not start this one).
    pub fn submit(&mut self, set: CheckpointSet) -> Result<()> {
        self.wait()?;
        let name = set.name.clone();
        let handle = std::thread::Builder::new()
            .name("flammable-checkpoint".into())
            .spawn(move || set.write())
            .map_err(|e| Error::msg(format!("cannot start the checkpoint writer: {e}")))?;
        self.pending = Some((name, handle));
        Ok(())
    }

    /// Waits until the submitted sets are on disk; returns the error of one that failed.
    pub fn wait(&mut self) -> Result<()> {
        let Some((name, handle)) = self.pending.take() else {
            return Ok(());
        };
        handle.join().unwrap_or_else(|_| {
            Err(Error::msg(format!(
                "the writer of checkpoint `{name}` panicked"
            )))
        })
    }
}

impl Drop for CheckpointWriter {
    /// A loop that ends in an error still leaves its last checkpoint complete on disk.
    fn drop(&mut self) {
        if let Err(e) = self.wait() {
            crate::util::stderr::errln!("warning: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{load_tensors, newest_good_checkpoint};

    fn set(dir: &std::path::Path, step: u64) -> CheckpointSet {
        let w = Tensor::new(&[step as f32, 2.0], &Device::Cpu).unwrap();
        CheckpointSet {
            dir: dir.to_path_buf(),
            name: format!("step-{step:010}"),
            alias: "latest".into(),
            best: false,
            keep: 2,
            model: HashMap::from([("w".to_string(), w)]),
            metadata: HashMap::new(),
            optimizer: HashMap::new(),
            state: TrainingState {
                step,
                name: format!("step-{step:010}"),
                ..TrainingState::default()
            },
            followers: None,
        }
    }

    #[test]
    fn sets_are_written_in_order_linked_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = CheckpointWriter::default();
        for step in 1..=4 {
            writer.submit(set(dir.path(), step)).unwrap();
        }
        writer.wait().unwrap();
        let (found, notes) = newest_good_checkpoint(dir.path());
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(found.unwrap().1.step, 4);
        let latest = load_tensors(&dir.path().join("latest.safetensors")).unwrap();
        assert_eq!(latest["w"].to_vec1::<f32>().unwrap(), [4.0, 2.0]);
        let numbered = crate::checkpoint::numbered_checkpoints(dir.path());
        assert_eq!(numbered, ["step-0000000004", "step-0000000003"]);
    }

    #[test]
    fn a_run_remembers_the_hashes_of_the_checkpoints_it_wrote() {
        use crate::store::hashes::{hash_file, KnownHashes};
        let run = tempfile::tempdir().unwrap();
        let dir = run.path().join(CHECKPOINTS_DIR);
        std::fs::create_dir(&dir).unwrap();
        let mut writer = CheckpointWriter::default();
        for step in 1..=3 {
            writer.submit(set(&dir, step)).unwrap();
        }
        writer.wait().unwrap();
        let known = KnownHashes::load(run.path());
        for name in ["latest", "step-0000000003", "step-0000000002"] {
            for ext in ["safetensors", "ron"] {
                let path = dir.join(format!("{name}.{ext}"));
                let meta = std::fs::metadata(&path).unwrap();
                let rel = format!("{CHECKPOINTS_DIR}/{name}.{ext}");
                assert_eq!(
                    known.get(&rel, &meta),
                    Some(hash_file(&path).unwrap().as_str()),
                    "{rel}"
                );
            }
        }
        // The pruned set is forgotten.
        let text = std::fs::read_to_string(run.path().join(".hashes.json")).unwrap();
        assert!(!text.contains("step-0000000001"), "{text}");
    }

    #[test]
    fn a_copy_keeps_the_values_of_when_it_was_taken() {
        let var = candle_core::Var::new(&[1f32, 2.0], &Device::Cpu).unwrap();
        let copy = frozen_copy(var.as_tensor()).unwrap();
        var.set(&Tensor::new(&[5f32, 6.0], &Device::Cpu).unwrap())
            .unwrap();
        assert_eq!(copy.to_vec1::<f32>().unwrap(), [1.0, 2.0]);
    }

    #[test]
    fn a_failed_set_is_removed_and_its_error_returned_by_the_next_wait() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = CheckpointWriter::default();
        writer.submit(set(dir.path(), 1)).unwrap();
        writer.wait().unwrap();
        // A folder where the next set's state file should go makes its last write fail.
        std::fs::create_dir(dir.path().join("step-0000000002.ron")).unwrap();
        writer.submit(set(dir.path(), 2)).unwrap();
        let e = writer.wait().unwrap_err().to_string();
        assert!(e.contains("step-0000000002.ron"), "{e}");
        assert!(!dir.path().join("step-0000000002.safetensors").exists());
        let (found, _) = newest_good_checkpoint(dir.path());
        assert_eq!(found.unwrap().1.step, 1);
    }
}
