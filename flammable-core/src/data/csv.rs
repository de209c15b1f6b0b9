//! A CSV file with a header row as a [`TensorDataset`]: one column the target, every other
//! one a feature.

use super::TensorDataset;
use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use std::path::Path;

/// What the target column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Class labels, numbered from 0 in sorted order of their distinct values: numerically
    /// when they are all numbers (wine cultivars 1, 2, 3 become 0, 1, 2; `1`, `1.0` and `01`
    /// are one class, named `1`), else as text. Targets of dtype `u32`, shape `(n)`, for
    /// `cross_entropy`; the dataset keeps the labels as its class names
    /// ([`TensorDataset::classes`]).
    Class,
    /// A finite number to predict: targets of dtype `f32`, shape `(n, 1)`.
    Value,
}

impl TensorDataset {
    /// Reads a CSV file with a header row: column `target` is the target (see [`Target`]),
    /// every other column a feature (`f32`, shape `(n, features)`, in the file's order). A
    /// feature that is not a finite number, an empty class label, a value target that is
    /// not a finite number, or a row with another number of fields than the header, is an
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
                    // A relative path is read from the current folder, which a task binary
                    // started elsewhere does not share with its crate: say which it was.
                    let relative = match std::env::current_dir() {
                        Ok(cwd) if path.is_relative() => {
                            format!(" (relative to {})", cwd.display())
                        }
                        _ => String::new(),
                    };
                    Error::msg(format!("cannot read {}{relative}: {io}", path.display()))
                }
                _ => Error::msg(format!("{}: {e}", path.display())),
            })?;
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| Error::msg(format!("{}: {e}", at(1))))?
            .iter()
            .map(str::to_string)
            .collect();
        if header.iter().all(String::is_empty) {
            return Err(Error::msg(format!(
                "{}: no header row (the file is empty); the first line names the columns",
                path.display()
            )));
        }
        let column = header.iter().position(|h| h == target).ok_or_else(|| {
            Error::msg(format!(
                "{}: no column `{target}`; the columns are {}",
                path.display(),
                header.join(", ")
            ))
        })?;
        if header.len() == 1 {
            return Err(Error::msg(format!(
                "{}: no feature columns besides `{target}`",
                path.display()
            )));
        }
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
        match kind {
            Target::Class => {
                let (indices, names) = number_classes(&labels, target, &at)?;
                TensorDataset::new(inputs, Tensor::from_vec(indices, rows, &Device::Cpu)?)?
                    .with_classes(names)
            }
            Target::Value => {
                let values = labels
                    .iter()
                    .map(|(line, v)| match v.parse::<f32>() {
                        Ok(x) if x.is_finite() => Ok(x),
                        _ => Err(Error::msg(format!(
                            "{}: column `{target}`: `{v}` is not a finite number",
                            at(*line)
                        ))),
                    })
                    .collect::<Result<Vec<f32>>>()?;
                TensorDataset::new(inputs, Tensor::from_vec(values, (rows, 1), &Device::Cpu)?)
            }
        }
    }
}

/// Each label's class index, and the classes' names: the distinct labels in sorted order,
/// numerically (one class per value, named by it) when every label is a finite number.
/// `labels` are (line, text); an empty one is an error naming its line.
fn number_classes(
    labels: &[(u64, String)],
    column: &str,
    at: &dyn Fn(u64) -> String,
) -> Result<(Vec<u32>, Vec<String>)> {
    if let Some((line, _)) = labels.iter().find(|(_, l)| l.is_empty()) {
        return Err(Error::msg(format!(
            "{}: column `{column}`: no class label",
            at(*line)
        )));
    }
    let numbers: Option<Vec<f64>> = labels
        .iter()
        .map(|(_, l)| l.parse::<f64>().ok().filter(|v| v.is_finite()))
        .collect();
    Ok(match numbers {
        Some(values) => {
            // -0 is 0: one class.
            let values: Vec<f64> = values.into_iter().map(|v| v + 0.0).collect();
            let mut distinct = values.clone();
            distinct.sort_by(f64::total_cmp);
            distinct.dedup();
            let indices = values
                .iter()
                .map(|v| distinct.partition_point(|d| d < v) as u32)
                .collect();
            (indices, distinct.iter().map(f64::to_string).collect())
        }
        None => {
            let mut distinct: Vec<&str> = labels.iter().map(|(_, l)| l.as_str()).collect();
            distinct.sort_unstable();
            distinct.dedup();
            let indices = labels
                .iter()
                .map(|(_, l)| distinct.partition_point(|d| *d < l.as_str()) as u32)
                .collect();
            (indices, distinct.iter().map(|d| d.to_string()).collect())
        }
    })
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

    /// The class indices and names of `labels` (one per line from line 2).
    fn classes(labels: &[&str]) -> (Vec<u32>, Vec<String>) {
        let lines: Vec<(u64, String)> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (i as u64 + 2, l.to_string()))
            .collect();
        number_classes(&lines, "y", &|line| format!("t.csv:{line}")).unwrap()
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
        assert_eq!(data.classes(), ["1", "3"]);
        let data = TensorDataset::from_csv(&path, "b", Target::Value).unwrap();
        assert_eq!(data.targets().dims(), &[3, 1]);
        assert!(data.classes().is_empty());
    }

    #[test]
    fn classes_are_numbered_by_value_when_every_label_is_a_number() {
        assert_eq!(
            classes(&["b", "a", "10"]),
            (vec![2, 1, 0], vec!["10".into(), "a".into(), "b".into()])
        );
        assert_eq!(
            classes(&["10", "9"]),
            (vec![1, 0], vec!["9".into(), "10".into()])
        );
        // One number, however it is written, is one class.
        assert_eq!(
            classes(&["1", "1.0", "01", "2", "-0", "0", "1e0"]),
            (
                vec![1, 1, 1, 2, 0, 0, 1],
                vec!["0".into(), "1".into(), "2".into()]
            )
        );
        // A label that is not a finite number makes them all text.
        assert_eq!(classes(&["1", "nan", "01"]).1, ["01", "1", "nan"]);
    }

    #[test]
    fn many_distinct_labels_are_numbered_in_sorted_order() {
        let labels: Vec<String> = (0..100_000).rev().map(|i| format!("c{i:06}")).collect();
        let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
        let (indices, names) = classes(&refs);
        assert_eq!(indices.first(), Some(&99_999));
        assert_eq!(indices.last(), Some(&0));
        assert!(indices.iter().rev().copied().eq(0..100_000));
        assert_eq!(names[12_345], "c012345");
    }

    #[test]
    fn bad_rows_are_named_with_their_line() {
        let e = |text: &str, target: &str, kind: Target| {
            let (_d, path) = write(text);
            TensorDataset::from_csv(&path, target, kind)
                .unwrap_err()
                .to_string()
        };
        let class = |text: &str, target: &str| e(text, target, Target::Class);
        let text = class("a,y\n1,0\n2,0\nx,1\n", "y");
        assert!(
            text.contains("t.csv:4: column `a`: `x` is not a number"),
            "{text}"
        );
        let text = class("a,y\n1,0\n2\n", "y");
        assert!(
            text.contains("t.csv:3: 1 fields where the header has 2"),
            "{text}"
        );
        let text = class("a,y\n1,0\n", "label");
        assert!(
            text.contains("no column `label`; the columns are a, y"),
            "{text}"
        );
        assert!(class("a,y\n", "y").contains("no rows"));
        let text = class("", "y");
        assert!(
            text.ends_with(
                "t.csv: no header row (the file is empty); the first line names the columns"
            ),
            "{text}"
        );
        let text = class("y\n1\n", "y");
        assert!(
            text.ends_with("t.csv: no feature columns besides `y`"),
            "{text}"
        );
        let text = class("a,y\n1,0\n2,\n", "y");
        assert!(
            text.ends_with("t.csv:3: column `y`: no class label"),
            "{text}"
        );
        for bad in ["nan", "inf", "-inf", "1e39", "x"] {
            let text = e(&format!("a,y\n1,0\n2,{bad}\n"), "y", Target::Value);
            assert!(
                text.ends_with(&format!(
                    "t.csv:3: column `y`: `{bad}` is not a finite number"
                )),
                "{text}"
            );
        }
        let missing = TensorDataset::from_csv("/nonexistent/x.csv", "y", Target::Class);
        assert!(missing
            .unwrap_err()
            .to_string()
            .contains("cannot read /nonexistent/x.csv"));
    }
}
