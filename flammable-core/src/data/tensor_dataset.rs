//! [`TensorDataset`]: examples held as two tensors, and the names of their classes when the
//! targets are class indices.

use super::{Batch, Dataset};
use crate::error::{Error, Result};
use candle_core::Tensor;
use std::sync::Arc;

/// A dataset held as two tensors whose first dimension indexes the examples.
#[derive(Clone, Debug)]
pub struct TensorDataset {
    inputs: Tensor,
    targets: Tensor,
    /// Class `i`'s name at `i`; empty when the targets are not named classes.
    classes: Arc<[String]>,
}

impl TensorDataset {
    /// Pairs `inputs[i]` with `targets[i]`; both must have the same first dimension.
    pub fn new(inputs: Tensor, targets: Tensor) -> Result<Self> {
        let (n, m) = (inputs.dim(0)?, targets.dim(0)?);
        if n != m {
            return Err(Error::msg(format!(
                "a dataset needs as many targets as inputs: {n} inputs, {m} targets"
            )));
        }
        Ok(TensorDataset {
            inputs,
            targets,
            classes: Arc::from(Vec::new()),
        })
    }

    /// The same with class names: the targets are class indices (an integer dtype), and
    /// index `i` is called `names[i]`. [`TensorDataset::from_csv`] names the classes it
    /// numbers; parts of a split keep the names.
    pub fn with_classes(mut self, names: Vec<String>) -> Result<Self> {
        if self.targets.dtype().is_float() {
            return Err(Error::msg(format!(
                "class names need class indices (an integer dtype) as targets; these are {:?}",
                self.targets.dtype()
            )));
        }
        self.classes = Arc::from(names);
        Ok(self)
    }

    /// The input tensor.
    pub fn inputs(&self) -> &Tensor {
        &self.inputs
    }

    /// The target tensor.
    pub fn targets(&self) -> &Tensor {
        &self.targets
    }

    /// The names of the classes, index by index (`classes()[2]` is the name of target 2);
    /// empty when the targets are not named classes. Pass them to
    /// [`crate::Env::set_classes`] so that the run keeps them and `eval` and `serve` answer
    /// the name.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Another dataset of the same classes: `inputs` and `targets` taken from this one.
    pub(super) fn part(&self, inputs: Tensor, targets: Tensor) -> Result<Self> {
        Ok(TensorDataset {
            classes: Arc::clone(&self.classes),
            ..TensorDataset::new(inputs, targets)?
        })
    }
}

impl Dataset for TensorDataset {
    fn len(&self) -> usize {
        self.inputs.dims().first().copied().unwrap_or(0)
    }

    fn get(&self, index: usize) -> Result<(Tensor, Tensor)> {
        Ok((self.inputs.get(index)?, self.targets.get(index)?))
    }

    fn get_batch(&self, indices: &[usize]) -> Result<Batch> {
        let idx = Tensor::from_iter(indices.iter().map(|&i| i as u32), self.inputs.device())?;
        Ok(Batch::new(
            self.inputs.index_select(&idx, 0)?,
            self.targets.index_select(&idx, 0)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn class_names_need_class_indices() {
        let x = Tensor::zeros((2, 1), candle_core::DType::F32, &Device::Cpu).unwrap();
        let labels = Tensor::new(&[0u32, 1], &Device::Cpu).unwrap();
        let d = TensorDataset::new(x.clone(), labels).unwrap();
        assert!(d.classes().is_empty());
        let d = d.with_classes(vec!["cat".into(), "dog".into()]).unwrap();
        assert_eq!(d.classes(), ["cat", "dog"]);
        let values = TensorDataset::new(x.clone(), x).unwrap();
        let refused = values.with_classes(vec!["a".into()]).unwrap_err();
        assert!(refused.to_string().contains("class indices"), "{refused}");
    }
}
