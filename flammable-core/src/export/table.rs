//! A table of typed, nullable columns, written as Parquet (snappy) or as CSV, through a
//! temporary file renamed into place.

use crate::error::{Error, Result};
use parquet::basic::{Compression, LogicalType, Repetition, Type as Physical};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// One column's values, `None` where a row has none.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// UTF-8 text.
    Text(Vec<Option<String>>),
    /// 64-bit floats.
    Float(Vec<Option<f64>>),
    /// 64-bit integers.
    Int(Vec<Option<i64>>),
    /// Unsigned 64-bit integers (seeds).
    UInt(Vec<Option<u64>>),
    /// Booleans.
    Bool(Vec<Option<bool>>),
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::Text(v) => v.len(),
            Values::Float(v) => v.len(),
            Values::Int(v) => v.len(),
            Values::UInt(v) => v.len(),
            Values::Bool(v) => v.len(),
        }
    }

    fn physical(&self) -> (Physical, Option<LogicalType>) {
        match self {
            Values::Text(_) => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
            Values::Float(_) => (Physical::DOUBLE, None),
            Values::Int(_) => (Physical::INT64, None),
            Values::UInt(_) => (Physical::INT64, Some(LogicalType::integer(64, false))),
            Values::Bool(_) => (Physical::BOOLEAN, None),
        }
    }

    /// The text of row `i` as CSV writes it (empty for none).
    fn csv(&self, i: usize) -> String {
        match self {
            Values::Text(v) => v[i].clone().unwrap_or_default(),
            Values::Float(v) => v[i].map(|x| x.to_string()).unwrap_or_default(),
            Values::Int(v) => v[i].map(|x| x.to_string()).unwrap_or_default(),
            Values::UInt(v) => v[i].map(|x| x.to_string()).unwrap_or_default(),
            Values::Bool(v) => v[i].map(|x| x.to_string()).unwrap_or_default(),
        }
    }
}

/// Named columns of equal length, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    /// The columns.
    pub columns: Vec<(String, Values)>,
}

impl Table {
    /// Its number of rows.
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |(_, v)| v.len())
    }
}

/// Writes `groups` (tables of one schema: the first's) as one Parquet file at `path`, each
/// table a row group.
pub fn write_parquet(path: &Path, groups: impl IntoIterator<Item = Result<Table>>) -> Result<()> {
    let mut groups = groups.into_iter().peekable();
    let first = match groups.peek() {
        Some(Ok(t)) => t.clone(),
        Some(Err(_)) => return groups.next().map_or(Ok(()), |g| g.map(|_| ())),
        None => Table::default(),
    };
    let pq = |e: parquet::errors::ParquetError| {
        Error::msg(format!("cannot write {}: {e}", path.display()))
    };
    let fields = first
        .columns
        .iter()
        .map(|(name, values)| {
            let (physical, logical) = values.physical();
            Type::primitive_type_builder(name, physical)
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(logical)
                .build()
                .map(Arc::new)
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(pq)?;
    let schema = Arc::new(
        Type::group_type_builder("schema")
            .with_fields(fields)
            .build()
            .map_err(pq)?,
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    through_temp(path, |tmp| {
        let file = std::fs::File::create(tmp).map_err(|e| Error::io("cannot write", tmp, e))?;
        let mut writer = SerializedFileWriter::new(file, schema, props).map_err(pq)?;
        for table in groups {
            let table = table?;
            if table.rows() == 0 {
                continue;
            }
            let mut group = writer.next_row_group().map_err(pq)?;
            let mut columns = table.columns.iter();
            while let Some(mut column) = group.next_column().map_err(pq)? {
                let Some((_, values)) = columns.next() else {
                    return Err(Error::msg("a table has fewer columns than its schema"));
                };
                write_column(&mut column, values).map_err(pq)?;
                column.close().map_err(pq)?;
            }
            group.close().map_err(pq)?;
        }
        writer.into_inner().map_err(pq)
    })
}

/// Writes the file at `path` through a temporary file beside it: `write` creates it and
/// returns it written; it is synced and renamed into place, or removed on an error.
fn through_temp(path: &Path, write: impl FnOnce(&Path) -> Result<std::fs::File>) -> Result<()> {
    let tmp = crate::util::atomic::temp_path_for(path);
    let written = write(&tmp).and_then(|file| {
        file.sync_all()
            .map_err(|e| Error::io("cannot write", &tmp, e))
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    crate::util::atomic::commit_temp(&tmp, path).map_err(Error::from)
}

fn write_column(
    column: &mut parquet::file::writer::SerializedColumnWriter<'_>,
    values: &Values,
) -> parquet::errors::Result<()> {
    /// The values present, and each row's definition level (1 present, 0 null).
    fn split<T: Clone>(v: &[Option<T>]) -> (Vec<T>, Vec<i16>) {
        let levels = v.iter().map(|x| i16::from(x.is_some())).collect();
        (v.iter().flatten().cloned().collect(), levels)
    }
    fn put<T: parquet::data_type::DataType>(
        column: &mut parquet::file::writer::SerializedColumnWriter<'_>,
        (present, levels): (Vec<T::T>, Vec<i16>),
    ) -> parquet::errors::Result<()> {
        column
            .typed::<T>()
            .write_batch(&present, Some(&levels), None)
            .map(|_| ())
    }
    match values {
        Values::Text(v) => {
            let (present, levels) = split(v);
            let bytes = present
                .into_iter()
                .map(|s| ByteArray::from(s.into_bytes()))
                .collect();
            put::<ByteArrayType>(column, (bytes, levels))
        }
        Values::Float(v) => put::<DoubleType>(column, split(v)),
        Values::Int(v) => put::<Int64Type>(column, split(v)),
        // Parquet keeps unsigned integers in INT64, bit for bit.
        Values::UInt(v) => {
            let (present, levels) = split(v);
            put::<Int64Type>(
                column,
                (present.into_iter().map(|x| x as i64).collect(), levels),
            )
        }
        Values::Bool(v) => put::<BoolType>(column, split(v)),
    }
}

/// Writes `groups` (tables of one schema) as one CSV file at `path`, with a header row;
/// fields quoted as RFC 4180 says where they need it.
pub fn write_csv(path: &Path, groups: impl IntoIterator<Item = Result<Table>>) -> Result<()> {
    through_temp(path, |tmp| {
        let file = std::fs::File::create(tmp).map_err(|e| Error::io("cannot write", tmp, e))?;
        let mut out = std::io::BufWriter::new(file);
        let mut header = false;
        for table in groups {
            let table = table?;
            let line = |fields: Vec<String>| {
                let mut l = fields
                    .iter()
                    .map(|f| quoted(f))
                    .collect::<Vec<_>>()
                    .join(",");
                l.push('\n');
                l
            };
            if !header {
                let names = table.columns.iter().map(|(n, _)| n.clone()).collect();
                out.write_all(line(names).as_bytes())
                    .map_err(|e| Error::io("cannot write", tmp, e))?;
                header = true;
            }
            for i in 0..table.rows() {
                let fields = table.columns.iter().map(|(_, v)| v.csv(i)).collect();
                out.write_all(line(fields).as_bytes())
                    .map_err(|e| Error::io("cannot write", tmp, e))?;
            }
        }
        out.into_inner()
            .map_err(|e| Error::io("cannot write", tmp, e.into_error()))
    })
}

/// `field` as a CSV field: quoted, its quotes doubled, when it holds a comma, a quote or a
/// line break.
fn quoted(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_where_they_need_it() {
        assert_eq!(quoted("plain"), "plain");
        assert_eq!(quoted("a,b"), "\"a,b\"");
        assert_eq!(quoted("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quoted("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn a_table_is_written_as_csv_with_nones_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let table = Table {
            columns: vec![
                ("id".into(), Values::Text(vec![Some("a".into()), None])),
                ("x".into(), Values::Float(vec![Some(0.5), None])),
                ("n".into(), Values::Int(vec![None, Some(3)])),
            ],
        };
        write_csv(&path, [Ok(table)]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "id,x,n\na,0.5,\n,,3\n"
        );
    }
}
