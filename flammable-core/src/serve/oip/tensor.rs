//! Tensors as the Open Inference Protocol (v2) writes them: a datatype name (`FP32`,
//! `INT64`, …), a shape, and the values either as JSON (`data`, flat or nested, row-major)
//! or as raw little-endian bytes (the binary tensor extension).

use crate::web::AppError;
use candle_core::{DType, Device, Tensor};
use serde_json::Value;

/// The datatypes this server takes and answers, with candle's.
pub const DATATYPES: &[(&str, DType)] = &[
    ("FP32", DType::F32),
    ("FP64", DType::F64),
    ("FP16", DType::F16),
    ("BF16", DType::BF16),
    ("INT64", DType::I64),
    ("INT32", DType::I32),
    ("INT16", DType::I16),
    ("UINT32", DType::U32),
    ("UINT8", DType::U8),
];

/// The protocol's name of `dtype` (`None` for the float formats it has no name for).
pub fn datatype_of(dtype: DType) -> Option<&'static str> {
    DATATYPES.iter().find(|(_, d)| *d == dtype).map(|(n, _)| *n)
}

/// Candle's dtype of the protocol's `name`; 400 for another.
pub fn dtype_of(name: &str) -> Result<DType, AppError> {
    DATATYPES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
        .ok_or_else(|| {
            AppError::bad(format!(
                "datatype {name:?} is not one this server takes: {}",
                DATATYPES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// The shape as given: every dimension 0 or more.
pub fn shape_of(shape: &[i64], name: &str) -> Result<Vec<usize>, AppError> {
    shape
        .iter()
        .map(|d| usize::try_from(*d))
        .collect::<Result<_, _>>()
        .map_err(|_| {
            AppError::bad(format!(
                "input {name:?}: shape {shape:?} has a negative dimension"
            ))
        })
}

/// The number of values of `shape`, or 400 when it overflows.
fn count(shape: &[usize], name: &str) -> Result<usize, AppError> {
    shape
        .iter()
        .try_fold(1usize, |n, d| n.checked_mul(*d))
        .ok_or_else(|| AppError::bad(format!("input {name:?}: shape {shape:?} is too large")))
}

/// A tensor of `dtype` and `shape` from JSON `data`: flat (row-major), or nested as the
/// shape is; integers within the datatype's range.
pub fn from_json(
    data: &Value,
    dtype: DType,
    shape: &[usize],
    name: &str,
) -> Result<Tensor, AppError> {
    let n = count(shape, name)?;
    let mut flat = Vec::new();
    let nested = matches!(data, Value::Array(items) if items.iter().any(Value::is_array));
    if nested {
        unnest(data, shape, &mut flat).map_err(|()| {
            AppError::bad(format!(
                "input {name:?}: its nested data does not have its shape {shape:?}"
            ))
        })?;
    } else {
        match data {
            Value::Array(items) => flat.extend(items),
            other => flat.push(other),
        }
    }
    if flat.len() != n {
        return Err(AppError::bad(format!(
            "input {name:?}: shape {shape:?} holds {n} values; data has {}",
            flat.len()
        )));
    }
    if let Some(v) = flat.iter().find(|v| !v.is_number()) {
        return Err(AppError::bad(format!(
            "input {name:?}: data must be numbers (flat or nested arrays), not {v}"
        )));
    }
    let bad = |e: candle_core::Error| AppError::bad(format!("input {name:?}: {e}"));
    let tensor = match integer_range(dtype) {
        Some((lo, hi)) => {
            let ints = flat
                .iter()
                .map(|v| match v.as_i64() {
                    Some(i) if (lo..=hi).contains(&i) => Ok(i),
                    // Whole, but beyond the range (beyond i64's, serde_json keeps a u64 or f64).
                    _ if v.is_i64()
                        || v.is_u64()
                        || v.as_f64().is_some_and(|f| f.fract() == 0.0) =>
                    {
                        Err(AppError::bad(format!(
                            "input {name:?}: {v} is beyond {}'s range {lo}..={hi}",
                            datatype_of(dtype).unwrap_or("its datatype")
                        )))
                    }
                    _ => Err(AppError::bad(format!(
                        "input {name:?}: {v} is not an integer, as its datatype wants"
                    ))),
                })
                .collect::<Result<Vec<i64>, _>>()?;
            Tensor::from_vec(ints, shape, &Device::Cpu).map_err(bad)?
        }
        None => {
            let floats: Vec<f64> = flat.iter().filter_map(|v| v.as_f64()).collect();
            Tensor::from_vec(floats, shape, &Device::Cpu).map_err(bad)?
        }
    };
    tensor.to_dtype(dtype).map_err(bad)
}

/// The values an integer datatype holds; `None` for floats.
fn integer_range(dtype: DType) -> Option<(i64, i64)> {
    match dtype {
        DType::U8 => Some((0, i64::from(u8::MAX))),
        DType::U32 => Some((0, i64::from(u32::MAX))),
        DType::I16 => Some((i64::from(i16::MIN), i64::from(i16::MAX))),
        DType::I32 => Some((i64::from(i32::MIN), i64::from(i32::MAX))),
        DType::I64 => Some((i64::MIN, i64::MAX)),
        _ => None,
    }
}

/// The values of `data` nested as `shape` is (an array of `shape[0]` arrays of `shape[1]`
/// …), in row-major order; `Err` where the nesting differs.
fn unnest<'a>(data: &'a Value, shape: &[usize], out: &mut Vec<&'a Value>) -> Result<(), ()> {
    match (shape.split_first(), data) {
        (None, Value::Array(_)) => Err(()),
        (None, value) => {
            out.push(value);
            Ok(())
        }
        (Some((&n, rest)), Value::Array(items)) if items.len() == n => {
            items.iter().try_for_each(|item| unnest(item, rest, out))
        }
        _ => Err(()),
    }
}

/// A tensor of `dtype` and `shape` from raw little-endian `bytes` (the binary extension).
pub fn from_bytes(
    bytes: &[u8],
    dtype: DType,
    shape: &[usize],
    name: &str,
) -> Result<Tensor, AppError> {
    let n = count(shape, name)?;
    let want = n.checked_mul(dtype.size_in_bytes());
    if want != Some(bytes.len()) {
        return Err(AppError::bad(format!(
            "input {name:?}: shape {shape:?} of {} holds {} bytes; its binary data has {}",
            datatype_of(dtype).unwrap_or("?"),
            want.map_or("too many".to_string(), |w| w.to_string()),
            bytes.len()
        )));
    }
    Tensor::from_raw_buffer(bytes, dtype, shape, &Device::Cpu)
        .map_err(|e| AppError::bad(format!("input {name:?}: {e}")))
}

/// A tensor's values, flat, as the protocol's JSON `data` writes them: integers as integers,
/// floats as f64 (an f32's exact value).
#[derive(Debug, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Data {
    /// Integer datatypes' values.
    Integers(Vec<i64>),
    /// Float datatypes' values.
    Floats(Vec<f64>),
}

/// `tensor`'s values as a flat JSON array.
pub fn to_json(tensor: &Tensor) -> candle_core::Result<Data> {
    let flat = tensor.flatten_all()?;
    Ok(match tensor.dtype() {
        DType::U8 | DType::U32 | DType::I16 | DType::I32 | DType::I64 => {
            Data::Integers(flat.to_dtype(DType::I64)?.to_vec1::<i64>()?)
        }
        DType::F32 => Data::Floats(flat.to_vec1::<f32>()?.into_iter().map(f64::from).collect()),
        _ => Data::Floats(flat.to_dtype(DType::F64)?.to_vec1::<f64>()?),
    })
}

/// `tensor` in a dtype the answer can hold: half and smaller floats as FP32.
pub fn answerable(tensor: Tensor) -> candle_core::Result<Tensor> {
    match tensor.dtype() {
        DType::U8 | DType::U32 | DType::I16 | DType::I32 | DType::I64 | DType::F32 | DType::F64 => {
            Ok(tensor)
        }
        _ => tensor.to_dtype(DType::F32),
    }
}

/// `tensor`'s values as raw little-endian bytes, row-major (an [`answerable`] tensor's; any
/// other is sent as FP32).
pub fn to_bytes(tensor: &Tensor) -> candle_core::Result<Vec<u8>> {
    let flat = tensor.flatten_all()?;
    fn le<T: candle_core::WithDType, const N: usize>(
        t: &Tensor,
        bytes: impl Fn(T) -> [u8; N],
    ) -> candle_core::Result<Vec<u8>> {
        Ok(t.to_vec1::<T>()?.into_iter().flat_map(bytes).collect())
    }
    match flat.dtype() {
        DType::U8 => flat.to_vec1::<u8>(),
        DType::U32 => le(&flat, u32::to_le_bytes),
        DType::I16 => le(&flat, i16::to_le_bytes),
        DType::I32 => le(&flat, i32::to_le_bytes),
        DType::I64 => le(&flat, i64::to_le_bytes),
        DType::F64 => le(&flat, f64::to_le_bytes),
        _ => le(&flat.to_dtype(DType::F32)?, f32::to_le_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_data_flat_or_nested_makes_the_same_tensor() {
        let flat = from_json(&json!([1, 2, 3, 4, 5, 6]), DType::F32, &[2, 3], "x").unwrap();
        let nested = from_json(&json!([[1, 2, 3], [4, 5, 6]]), DType::F32, &[2, 3], "x").unwrap();
        assert_eq!(
            flat.to_vec2::<f32>().unwrap(),
            nested.to_vec2::<f32>().unwrap()
        );
        let ints = from_json(&json!([1, -2]), DType::I64, &[2], "x").unwrap();
        assert_eq!(ints.to_vec1::<i64>().unwrap(), [1, -2]);
    }

    #[test]
    fn data_that_does_not_fit_is_refused_with_the_reason() {
        let e = from_json(&json!([1, 2, 3]), DType::F32, &[2, 2], "x").unwrap_err();
        assert!(
            e.message.contains("holds 4 values; data has 3"),
            "{}",
            e.message
        );
        let e = from_json(&json!([1.5]), DType::I64, &[1], "x").unwrap_err();
        assert!(e.message.contains("not an integer"), "{}", e.message);
        let e = from_json(&json!(["a"]), DType::F32, &[1], "x").unwrap_err();
        assert!(e.message.contains("must be numbers"), "{}", e.message);
        // Nested data must nest as the shape does.
        let e = from_json(&json!([[1, 2], [3, 4]]), DType::F32, &[1, 4], "x").unwrap_err();
        assert!(e.message.contains("nested data"), "{}", e.message);
        let ragged = json!([[1, 2, 3], [4]]);
        assert!(from_json(&ragged, DType::F32, &[2, 2], "x").is_err());
        // Integers within their datatype's range.
        let e = from_json(&json!([300]), DType::U8, &[1], "x").unwrap_err();
        assert!(
            e.message.contains("beyond UINT8's range 0..=255"),
            "{}",
            e.message
        );
        assert!(from_json(&json!([-1]), DType::U8, &[1], "x").is_err());
        assert!(from_json(&json!([70000]), DType::I16, &[1], "x").is_err());
        assert!(from_json(&json!([255]), DType::U8, &[1], "x").is_ok());
        assert!(dtype_of("BYTES").unwrap_err().message.contains("FP32"));
        let e = from_bytes(&[0; 7], DType::F32, &[2], "x").unwrap_err();
        assert!(e.message.contains("holds 8 bytes"), "{}", e.message);
        assert!(shape_of(&[-1, 3], "x").is_err());
        assert!(from_json(&json!([]), DType::F32, &[usize::MAX, 2], "x").is_err());
    }

    #[test]
    fn bytes_round_trip_little_endian() {
        let t = Tensor::new(&[[1.5f32, -2.0], [3.25, 0.0]], &Device::Cpu).unwrap();
        let bytes = to_bytes(&t).unwrap();
        assert_eq!(&bytes[..4], &1.5f32.to_le_bytes());
        let back = from_bytes(&bytes, DType::F32, &[2, 2], "x").unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), t.to_vec2::<f32>().unwrap());
        let i = Tensor::new(&[7i64, -9], &Device::Cpu).unwrap();
        assert_eq!(
            from_bytes(&to_bytes(&i).unwrap(), DType::I64, &[2], "x")
                .unwrap()
                .to_vec1::<i64>()
                .unwrap(),
            [7, -9]
        );
        assert_eq!(
            serde_json::to_value(to_json(&t).unwrap()).unwrap(),
            json!([1.5, -2.0, 3.25, 0.0])
        );
    }
}
