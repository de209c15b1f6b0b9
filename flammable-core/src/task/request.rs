//! Reading a request into a sample: the default reader (JSON numbers in nested arrays) and
//! the check that a sample holds only finite numbers.
//!
//! The JSON reader streams: it never builds a tree of the document, and never reserves room
//! for a shape it has not yet seen whole. The numbers it keeps are at most what the body
//! holds (each takes at least one byte), or fewer when the caller gives a bound (a model's
//! sample size), so a small body cannot ask for much memory.

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use std::fmt::Write as _;

/// The default request reader: a JSON number or nested arrays of numbers (`[[0.1, 0.2],
/// [0.3, 0.4]]`), as an `f32` tensor of that shape on the CPU. A body that is not such
/// JSON — not JSON, ragged arrays, strings — gets a usage error naming where it goes wrong.
/// It keeps at most as many numbers as the body can hold; see [`decode_json_at_most`] for a
/// reader that knows its sample's size.
pub fn decode_json(body: &[u8]) -> Result<Tensor> {
    decode_json_at_most(body, usize::MAX)
}

/// [`decode_json`] for a task that knows how many numbers a sample has: a body with more
/// than `max_values` numbers is refused as soon as the reader meets the one too many,
/// before it is kept.
pub fn decode_json_at_most(body: &[u8], max_values: usize) -> Result<Tensor> {
    let (values, shape) = read_json(body, max_values)?;
    Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
}

/// The numbers of a JSON body in order, and the shape of their nested arrays (see
/// [`decode_json_at_most`]): what [`decode_json`] builds its tensor from.
pub fn read_json(body: &[u8], max_values: usize) -> Result<(Vec<f32>, Vec<usize>)> {
    // Every number takes at least two bytes with its separator: room for all of a small
    // body's at once, rather than growing the vector as they come (a tenth of reading a
    // small body); a large one grows as usual past the first 64 Ki.
    let room = (body.len() / 2 + 1).min(max_values).min(1 << 16);
    let mut reader = Reader {
        max_values,
        values: Vec::with_capacity(room),
        ..Reader::default()
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Level {
        depth: 0,
        reader: &mut reader,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if let Err(e) = parsed {
        return Err(Error::usage(match reader.refusal.take() {
            Some(refusal) => refusal,
            None => format!("the body is not JSON: {e}"),
        }));
    }
    let shape: Vec<usize> = reader.shape.iter().map(|d| d.unwrap_or(0)).collect();
    // What the walk checked, counted again: every array of a depth has the first's length.
    let count = shape.iter().try_fold(1usize, |n, d| n.checked_mul(*d));
    if count != Some(reader.values.len()) {
        return Err(Error::usage(format!(
            "the arrays must form a rectangular tensor: shape {shape:?} for {} numbers",
            reader.values.len()
        )));
    }
    Ok((reader.values, shape))
}

/// What the walk of the document has learnt so far.
#[derive(Default)]
struct Reader {
    /// The numbers, in order.
    values: Vec<f32>,
    /// The length of the arrays at each depth, once the first array of the depth has ended.
    shape: Vec<Option<usize>>,
    /// The depth numbers are at, once the first number has been read.
    leaf: Option<usize>,
    /// The indices from the root to the element being read, for messages.
    path: Vec<usize>,
    /// The most numbers to keep.
    max_values: usize,
    /// Why the document was refused, when the walk refused it (rather than the parser).
    refusal: Option<String>,
}

impl Reader {
    /// Where the walk is, as a message names it: `the body` or `element [2][0]`.
    fn at(&self) -> String {
        if self.path.is_empty() {
            return "the body".into();
        }
        let mut s = String::from("element ");
        for i in &self.path {
            let _ = write!(s, "[{i}]");
        }
        s
    }

    /// Refuses the document with `message`.
    fn refuse<E: serde::de::Error>(&mut self, message: String) -> E {
        let e = E::custom(&message);
        self.refusal = Some(message);
        e
    }

    fn number<E: serde::de::Error>(&mut self, depth: usize, value: f64) -> Result<(), E> {
        match self.leaf {
            None if self.shape.len() > depth => {
                // An array has already ended at this depth.
                let at = self.at();
                return Err(self.refuse(format!(
                    "{at} is a number where an array was expected: the arrays must form a rectangular tensor"
                )));
            }
            None => self.leaf = Some(depth),
            Some(leaf) if leaf != depth => {
                let at = self.at();
                return Err(self.refuse(format!(
                    "{at} is a number where an array was expected: the arrays must form a rectangular tensor"
                )));
            }
            Some(_) => {}
        }
        if self.values.len() >= self.max_values {
            let max = self.max_values;
            return Err(self.refuse(format!(
                "the body has more than {max} numbers, the most a sample of this model has"
            )));
        }
        self.values.push(value as f32);
        Ok(())
    }

    fn other<E: serde::de::Error>(&mut self, kind: &str) -> E {
        let at = self.at();
        self.refuse(format!(
            "{at} is {kind}: send numbers in nested arrays, e.g. [[0.5, 1.0], [0.0, 2.5]]"
        ))
    }
}

/// The value at `depth` of the document.
struct Level<'r> {
    depth: usize,
    reader: &'r mut Reader,
}

impl<'de> DeserializeSeed<'de> for Level<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Level<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a number or an array of numbers")
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        self.reader.number(self.depth, v)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.reader.number(self.depth, v as f64)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.reader.number(self.depth, v as f64)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Level { depth, reader } = self;
        if reader.leaf.is_some_and(|leaf| depth >= leaf) {
            let at = reader.at();
            return Err(reader.refuse(format!(
                "{at} is an array where a number was expected: the arrays must form a rectangular tensor"
            )));
        }
        let mut n = 0usize;
        loop {
            reader.path.push(n);
            let more = seq.next_element_seed(Level {
                depth: depth + 1,
                reader: &mut *reader,
            })?;
            reader.path.pop();
            if more.is_none() {
                break;
            }
            n += 1;
            // An array longer than the first of its depth is refused at its extra element.
            if let Some(Some(len)) = reader.shape.get(depth) {
                if n > *len {
                    let (at, len) = (reader.at(), *len);
                    return Err(reader.refuse(format!(
                        "{at} has more than {len} elements where the first array at its depth has {len}: the arrays must form a rectangular tensor"
                    )));
                }
            }
        }
        if reader.shape.len() <= depth {
            reader.shape.resize(depth + 1, None);
        }
        match reader.shape[depth] {
            None => reader.shape[depth] = Some(n),
            Some(len) if len == n => {}
            Some(len) => {
                let at = reader.at();
                return Err(reader.refuse(format!(
                    "{at} has {n} elements where the first array at its depth has {len}: the arrays must form a rectangular tensor"
                )));
            }
        }
        Ok(())
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.reader.other("a string"))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.reader.other("a boolean"))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Err(self.reader.other("null"))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.reader.other("an object"))
    }
}

/// Refuses a sample holding a NaN or an infinity (a model answers such input with a made-up
/// class); samples of integer dtypes always pass. `what` names the sample in the message.
pub fn check_finite(sample: &Tensor, what: &str) -> Result<()> {
    match first_non_finite(sample)? {
        None => Ok(()),
        Some(i) => Err(Error::usage(format!(
            "{what} has a value that is not a finite number (NaN or infinite, at index {i} of its values flattened), which this task does not take"
        ))),
    }
}

/// Refuses a model output holding NaN or an infinite value: its class would be made up.
pub fn check_finite_output(output: &Tensor) -> Result<()> {
    match first_non_finite(output)? {
        None => Ok(()),
        Some(i) => Err(Error::msg(format!(
            "the model's output is not a finite number (NaN or infinite, value {i} in order): no answer is made up from it"
        ))),
    }
}

/// The position of the first NaN or infinite value of `t` in order; `None` for integer
/// tensors and finite ones.
fn first_non_finite(t: &Tensor) -> Result<Option<usize>> {
    let flat = t.flatten_all()?;
    let first_bad = match t.dtype() {
        DType::F64 => flat.to_vec1::<f64>()?.iter().position(|v| !v.is_finite()),
        DType::F32 => flat.to_vec1::<f32>()?.iter().position(|v| !v.is_finite()),
        DType::F16 | DType::BF16 => flat
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?
            .iter()
            .position(|v| !v.is_finite()),
        _ => None,
    };
    Ok(first_bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_arrays_become_tensors() {
        let t = decode_json(b"[[1, 2.5], [3, 4]]").unwrap();
        assert_eq!(t.dims(), &[2, 2]);
        assert_eq!(
            t.to_vec2::<f32>().unwrap(),
            vec![vec![1.0, 2.5], vec![3.0, 4.0]]
        );
        assert_eq!(decode_json(b"7").unwrap().dims(), &[] as &[usize]);
        assert_eq!(decode_json(b"[]").unwrap().dims(), &[0]);
        assert_eq!(decode_json(b"[[], []]").unwrap().dims(), &[2, 0]);
        assert_eq!(decode_json(b" [[[-1e3]]] ").unwrap().dims(), &[1, 1, 1]);
    }

    #[test]
    fn bad_json_is_named_where_it_goes_wrong() {
        let e = |b: &[u8]| decode_json(b).unwrap_err().to_string();
        assert!(e(b"[1, 2").contains("not JSON"), "{}", e(b"[1, 2"));
        assert!(e(b"oops").contains("not JSON"), "{}", e(b"oops"));
        assert!(e(b"[[1, 2], [3]]").contains("element [1] has 1 elements"));
        assert!(e(b"[[1], [2, 3]]").contains("element [1] has more than 1"));
        assert!(e(b"[[1, \"x\"]]").contains("element [0][1] is a string"));
        assert!(e(b"[1, [2]]").contains("element [1] is an array"));
        assert!(e(b"[[1], 2]").contains("element [1] is a number where an array"));
        assert!(e(b"[[], 2]").contains("element [1] is a number where an array"));
        assert!(e(b"{\"a\": 1}").contains("the body is an object"));
        assert!(e(b"[1] [2]").contains("not JSON"));
        assert_eq!(decode_json(b"[1, null]").unwrap_err().exit_code(), 2);
    }

    #[test]
    fn a_small_body_cannot_ask_for_much_memory() {
        // Nested arrays whose first elements promise 40^10 numbers, then stop: the old reader
        // reserved the product of the first lengths before it found the arrays ragged.
        let mut body = String::new();
        for _ in 0..10 {
            body.push('[');
        }
        body.push('1');
        for _ in 0..10 {
            body.push_str(&",1".repeat(39));
            body.push(']');
        }
        let e = decode_json(body.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("rectangular"), "{e}");
        // A bound from the model's sample size stops the walk at the first number too many.
        let e = decode_json_at_most(b"[1, 2, 3]", 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than 2 numbers"), "{e}");
        assert_eq!(
            decode_json_at_most(b"[1, 2]", 2).unwrap().dims(),
            &[2usize] as &[usize]
        );
        // Deeper than the parser follows: refused, not a stack overflow.
        let deep = "[".repeat(100_000);
        assert!(decode_json(deep.as_bytes()).is_err());
    }

    #[test]
    fn non_finite_samples_are_refused() {
        let big = decode_json(b"[1, 1e39]").unwrap();
        let e = check_finite(&big, "the request").unwrap_err().to_string();
        assert!(
            e.contains("not a finite number") && e.contains("at index 1 "),
            "{e}"
        );
        let nan = Tensor::new(&[0f64, f64::NAN], &Device::Cpu).unwrap();
        assert!(check_finite(&nan, "x").is_err());
        assert!(check_finite(&decode_json(b"[1, 2]").unwrap(), "x").is_ok());
        let ids = Tensor::new(&[1u32, 2], &Device::Cpu).unwrap();
        assert!(check_finite(&ids, "x").is_ok());
    }
}
