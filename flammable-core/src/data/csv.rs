//! A CSV file with a header row as a [`TensorDataset`]: one column the target, every other
//! one a feature.

use super::TensorDataset;
use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use std::path::Path;

/// What the target column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Class labels, numbered from 0 in sorted order of their distinct values (numerically
    /// when they are all numbers, e.g. wine cultivars 1, 2, 3 become 0, 1, 2): targets of
    /// dtype `u32`, shape `(n)`, for `cross_entropy`.
    Class,
    /// A number to predict: targets of dtype `f32`, shape `(n, 1)`.
    Value,
}

impl TensorDataset {
    /// Reads a CSV file with a header row: column `target` is the target (see [`Target`]),
    /// every other column a feature (`f32`, shape `(n, features)`, in the file's order). A
    /// row that is not numbers, or has another number of fields than the header, is an
    /// error naming its line and column.
    ///
    /// ```ignore
    /// let wine = TensorDataset::from_csv("examples/data/wine.csv", "cultivar", Target::Class)?;
    /// ```
    pub fn from_csv(path: impl AsRef<Path>, target: &str, kind: Target) -> Result<TensorDataset> {
        let path = path.as_ref();
        let at = |line: u64| format!("{}:{line}", path.display());
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(path)
            .map_err(|e| match e.kind() {
                csv::ErrorKind::Io(io) => {
                    Error::msg(format!("cannot read {}: {io}", path.display()))
                }
                _ => Error::msg(format!("{}: {e}", path.display())),
            })?;
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| Error::msg(format!("{}: {e}", at(1))))?
            .iter()
            .map(str::to_string)
            .collect();
        let column = header.iter().position(|h| h == target).ok_or_else(|| {
            Error::msg(format!(
                "{}: no column `{target}`; the columns are {}",
                path.display(),
                header.join(", ")
            ))
        })?;
        let mut features = Vec::new();
        let mut labels = Vec::new();
        let mut rows = 0usize;
        for record in reader.records() {
            let record = record.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        len, expected_len, ..
                    } => Error::msg(format!(
                        "{}: {len} fields where the header has {expected_len}",
                        at(line)
                    )),
                    _ => Error::msg(format!("{}: {e}", at(line))),
                }
            })?;
            let line = record.position().map_or(0, |p| p.line());
            for (i, field) in record.iter().enumerate() {
                if i == column {
                    labels.push((line, field.to_string()));
                    continue;
                }
                let value: f32 = field.parse().map_err(|_| {
                    Error::msg(format!(
                        "{}: column `{}`: `{field}` is not a number",
                        at(line),
                        header[i]
                    ))
                })?;
                if !value.is_finite() {
                    return Err(Error::msg(format!(
                        "{}: column `{}`: `{field}` is not a finite number",
                        at(line),
                        header[i]
                    )));
                }
                features.push(value);
            }
            rows += 1;
        }
        if rows == 0 {
            return Err(Error::msg(format!(
                "{}: no rows below the header",
                path.display()
            )));
        }
        let width = header.len() - 1;
        let inputs = Tensor::from_vec(features, (rows, width), &Device::Cpu)?;
        let targets = match kind {
            Target::Class => {
                let names: Vec<String> = labels.into_iter().map(|(_, l)| l).collect();
                Tensor::from_vec(class_indices(&names), rows, &Device::Cpu)?
            }
            Target::Value => {
                let values = labels
                    .iter()
                    .map(|(line, v)| {
                        v.parse::<f32>().map_err(|_| {
                            Error::msg(format!(
                                "{}: column `{target}`: `{v}` is not a number",
                                at(*line)
                            ))
                        })
                    })
                    .collect::<Result<Vec<f32>>>()?;
                Tensor::from_vec(values, (rows, 1), &Device::Cpu)?
            }
        };
        TensorDataset::new(inputs, targets)
    }
}

/// Each label's index among the distinct labels, sorted (numerically when all are numbers).
fn class_indices(labels: &[String]) -> Vec<u32> {
    let mut distinct: Vec<&String> = labels.iter().collect();
    let numbers: Option<Vec<f64>> = distinct.iter().map(|l| l.parse().ok()).collect();
    match numbers {
        Some(_) => distinct.sort_by(|a, b| {
            let (x, y): (f64, f64) = (a.parse().unwrap_or(0.0), b.parse().unwrap_or(0.0));
            x.total_cmp(&y)
        }),
        None => distinct.sort(),
    }
    distinct.dedup();
    labels
        .iter()
        .map(|l| distinct.iter().position(|d| *d == l).unwrap_or(0) as u32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn features_and_targets_of_either_kind() {
        let (_d, path) = write("a,label,b\n1,3,2\n4,1,5\n7,3,8\n");
        let data = TensorDataset::from_csv(&path, "label", Target::Class).unwrap();
        assert_eq!(data.len(), 3);
        assert_eq!(
            data.inputs().to_vec2::<f32>().unwrap(),
            [[1.0, 2.0], [4.0, 5.0], [7.0, 8.0]]
        );
        assert_eq!(data.targets().to_vec1::<u32>().unwrap(), [1, 0, 1]);
        let data = TensorDataset::from_csv(&path, "b", Target::Value).unwrap();
        assert_eq!(data.targets().dims(), &[3, 1]);
        assert_eq!(
            class_indices(&["b".into(), "a".into(), "10".into()]),
            [2, 1, 0]
        );
        assert_eq!(class_indices(&["10".into(), "9".into()]), [1, 0]);
    }

    #[test]
    fn bad_rows_are_named_with_their_line() {
        let e = |text: &str, target: &str| {
            let (_d, path) = write(text);
            TensorDataset::from_csv(&path, target, Target::Class)
                .unwrap_err()
                .to_string()
        };
        let text = e("a,y\n1,0\n2,0\nx,1\n", "y");
        assert!(
            text.contains("t.csv:4: column `a`: `x` is not a number"),
            "{text}"
        );
        let text = e("a,y\n1,0\n2\n", "y");
        assert!(
            text.contains("t.csv:3: 1 fields where the header has 2"),
            "{text}"
        );
        let text = e("a,y\n1,0\n", "label");
        assert!(
            text.contains("no column `label`; the columns are a, y"),
            "{text}"
        );
        assert!(e("a,y\n", "y").contains("no rows"));
        let missing = TensorDataset::from_csv("/nonexistent/x.csv", "y", Target::Class);
        assert!(missing
            .unwrap_err()
            .to_string()
            .contains("cannot read /nonexistent/x.csv"));
    }
}
