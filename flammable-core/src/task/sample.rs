//! The default `load_sample`: one input from a file, by extension.

use crate::error::{Error, IoContext, Result};
use candle_core::{Device, Tensor};
use std::path::Path;

/// The extensions the default loader reads.
pub const FORMATS: &str = ".csv, .txt, .ron, .npy, .safetensors";

/// Reads one sample: `.csv`/`.txt` (numbers of the first non-empty line, separated by
/// commas or spaces), `.ron` (a list of numbers), `.npy`, or `.safetensors` (its one tensor).
pub fn load_sample(path: &Path) -> Result<Tensor> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let bad = |why: String| Error::msg(format!("cannot read sample `{}`: {why}", path.display()));
    match ext.as_str() {
        "csv" | "txt" => {
            let text = std::fs::read_to_string(path).at("cannot read sample", path)?;
            let values = csv_values(&text).map_err(bad)?;
            Ok(Tensor::new(values, &Device::Cpu)?)
        }
        "ron" => {
            let text = std::fs::read_to_string(path).at("cannot read sample", path)?;
            let values: Vec<f32> = ron::from_str(&text).map_err(|e| bad(e.to_string()))?;
            Ok(Tensor::new(values, &Device::Cpu)?)
        }
        "npy" => {
            if !path.exists() {
                return Err(bad("not found".into()));
            }
            Tensor::read_npy(path).map_err(|e| bad(e.to_string()))
        }
        "safetensors" => {
            let tensors = crate::checkpoint::load_tensors(path)?;
            let mut it = tensors.into_values();
            match (it.next(), it.next()) {
                (Some(t), None) => Ok(t),
                _ => Err(bad("it must hold exactly one tensor".into())),
            }
        }
        _ => Err(bad(format!(
            "unknown format; the default loader reads {FORMATS}: add an #[eval(load)] step for others"
        ))),
    }
}

/// The numbers of the one row of values in `text`, separated by commas or spaces, after a
/// header row of names if there is one (as `TensorDataset::from_csv` files have); the error
/// says which field is not a number, that there is no row, or that there are several (a
/// sample is one row).
pub fn csv_values(text: &str) -> std::result::Result<Vec<f32>, String> {
    let fields = |line: &str| -> Vec<String> {
        line.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut rows = text.lines().filter(|l| !l.trim().is_empty()).map(fields);
    let mut row = rows.next().ok_or_else(|| "it is empty".to_string())?;
    // A header: no field of the first row is a number.
    if !row.is_empty() && row.iter().all(|f| f.parse::<f32>().is_err()) {
        row = rows
            .next()
            .ok_or_else(|| "it has a header row and no values".to_string())?;
    }
    let more = rows.count();
    if more > 0 {
        return Err(format!(
            "it has {} rows of values: a sample is one row (eval reads one sample)",
            more + 1
        ));
    }
    row.iter()
        .map(|s| {
            s.parse::<f32>()
                .map_err(|_| format!("`{s}` is not a number"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_sample_may_have_a_header_and_has_one_row() {
        assert_eq!(csv_values("alcohol,ash\n13.2, 2.1\n"), Ok(vec![13.2, 2.1]));
        assert_eq!(csv_values("1,2\n"), Ok(vec![1.0, 2.0]));
        assert!(csv_values("a,b\n").unwrap_err().contains("no values"));
        assert!(csv_values("1,2\n3,4\n").unwrap_err().contains("2 rows"));
        assert!(csv_values("a,b\n1,x\n")
            .unwrap_err()
            .contains("`x` is not a number"));
        assert!(csv_values("1,x\n")
            .unwrap_err()
            .contains("`x` is not a number"));
    }

    #[test]
    fn csv_ron_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("a.csv");
        std::fs::write(&csv, "\n1, 2,3\n").unwrap();
        assert_eq!(
            load_sample(&csv).unwrap().to_vec1::<f32>().unwrap(),
            vec![1.0, 2.0, 3.0]
        );
        let ron = dir.path().join("a.ron");
        std::fs::write(&ron, "[0.5, 1.5]").unwrap();
        assert_eq!(
            load_sample(&ron).unwrap().to_vec1::<f32>().unwrap(),
            vec![0.5, 1.5]
        );
        std::fs::write(&csv, "1,x").unwrap();
        assert!(load_sample(&csv)
            .unwrap_err()
            .to_string()
            .contains("`x` is not a number"));
        assert!(load_sample(&dir.path().join("missing.csv")).is_err());
        assert!(load_sample(&dir.path().join("a.png"))
            .unwrap_err()
            .to_string()
            .contains("#[eval(load)]"));
    }
}
