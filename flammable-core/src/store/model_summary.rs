//! A model's variables as a table — name, shape, parameters, and the total — from the live
//! variables (`train` prints it) or from a checkpoint file's header (`show`, without candle).

use std::fmt::Write as _;
use std::path::Path;

/// One variable: its name and shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variable {
    /// The full name (`hidden.weight`).
    pub name: String,
    /// Its dimensions.
    pub shape: Vec<usize>,
}

impl Variable {
    /// The number of scalars it holds.
    pub fn parameters(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The table of `variables` (sorted by name), with the total on its last line.
pub fn table(variables: &[Variable]) -> String {
    let mut rows: Vec<&Variable> = variables.iter().collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let shapes: Vec<String> = rows
        .iter()
        .map(|v| {
            let dims: Vec<String> = v.shape.iter().map(|d| d.to_string()).collect();
            format!("[{}]", dims.join(", "))
        })
        .collect();
    let name_width = rows.iter().map(|v| v.name.len()).max().unwrap_or(0).max(8);
    let shape_width = shapes.iter().map(String::len).max().unwrap_or(0).max(5);
    let total: usize = rows.iter().map(|v| v.parameters()).sum();
    let mut out = format!(
        "{:<name_width$}  {:<shape_width$}  {:>12}\n",
        "variable", "shape", "parameters"
    );
    for (v, shape) in rows.iter().zip(&shapes) {
        let _ = writeln!(
            out,
            "{:<name_width$}  {:<shape_width$}  {:>12}",
            v.name,
            shape,
            grouped(v.parameters())
        );
    }
    let _ = write!(
        out,
        "{:<name_width$}  {:<shape_width$}  {:>12}",
        "total",
        format!("{} variable(s)", rows.len()),
        grouped(total)
    );
    out
}

/// `n` with thousands separated by commas.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The variables a safetensors file holds, read from its header alone (the tensors are not
/// read); `None` when the file is missing or not safetensors.
pub fn read_safetensors(path: &Path) -> Option<Vec<Variable>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut size = [0u8; 8];
    file.read_exact(&mut size).ok()?;
    let size = u64::from_le_bytes(size);
    // A header is JSON of a few kilobytes per hundred tensors; refuse absurd sizes.
    if size > 100 << 20 {
        return None;
    }
    let mut header = vec![0u8; size as usize];
    file.read_exact(&mut header).ok()?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).ok()?;
    let mut out = Vec::new();
    for (name, info) in header {
        if name == "__metadata__" {
            continue;
        }
        let shape = info
            .get("shape")?
            .as_array()?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<Vec<usize>>>()?;
        out.push(Variable { name, shape });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_with_the_total() {
        let t = table(&[
            Variable {
                name: "out.weight".into(),
                shape: vec![10, 128],
            },
            Variable {
                name: "hidden.weight".into(),
                shape: vec![128, 64],
            },
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("variable"));
        assert!(lines[1].starts_with("hidden.weight  [128, 64]"), "{t}");
        assert!(lines[1].ends_with("8,192"), "{t}");
        assert!(
            lines[3].starts_with("total") && lines[3].ends_with("9,472"),
            "{t}"
        );
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(12), "12");
    }

    #[test]
    fn shapes_come_from_a_safetensors_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let header = br#"{"a.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"__metadata__":{"k":"v"}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0u8; 24]);
        std::fs::write(&path, bytes).unwrap();
        let vars = read_safetensors(&path).unwrap();
        assert_eq!(
            vars,
            [Variable {
                name: "a.weight".into(),
                shape: vec![2, 3]
            }]
        );
        assert!(read_safetensors(&dir.path().join("none")).is_none());
        std::fs::write(&path, b"not safetensors").unwrap();
        assert!(read_safetensors(&path).is_none());
    }
}
