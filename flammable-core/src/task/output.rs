//! Evaluation results: any serde value, held as RON text (what `eval` writes, atomically) and
//! as JSON (what `serve` answers).

use crate::error::{Error, Result};
use crate::util::atomic::write_output;
use candle_core::Tensor;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The result of evaluating one sample, as RON text and as JSON.
#[derive(Clone)]
pub struct Output {
    /// The RON text: written at once by [`Output::new`], on first use by [`Output::keeping`].
    ron: OnceLock<String>,
    /// The value itself, kept by [`Output::keeping`] to write its RON text when asked: the
    /// server answers JSON and never asks, and writing the text was a tenth of a small
    /// request's time (`bench/results/serve_load.md`).
    value: Option<Arc<dyn erased_serde::Serialize + Send + Sync>>,
    /// serde_json's form of the same value, made at once: the server answers it for every
    /// sample, and reading it back out of the RON cost more than the model (and lost enum
    /// variants' names).
    json: serde_json::Value,
    /// Whether it is the default `postprocess`'s [`Prediction`], which the class names of
    /// the run complete (see [`Output::with_classes`]).
    prediction: bool,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("json", &self.json)
            .field("prediction", &self.prediction)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Output {
    /// The same text.
    fn eq(&self, other: &Self) -> bool {
        self.as_ron() == other.as_ron()
    }
}

impl Eq for Output {}

impl Output {
    /// The RON and JSON forms of any serializable `value`, both written now — except while
    /// the inference server computes (see [`answering_json`]), which answers the JSON and
    /// never reads the text: the RON text is then not written (a tenth of a small request's
    /// time, `bench/results/serve_load.md`), [`Output::parse`] reads the value back from its
    /// JSON, and [`Output::as_ron`] gives the JSON text.
    pub fn new<T: Serialize>(value: &T) -> Result<Self> {
        let ron = if ANSWERING_JSON.get() {
            OnceLock::new()
        } else {
            OnceLock::from(
                crate::util::ron_text::to_pretty(value)
                    .map_err(|e| Error::msg(format!("cannot write the result as RON: {e}")))?,
            )
        };
        Ok(Output {
            ron,
            value: None,
            json: to_json(value)?,
            prediction: false,
        })
    }

    /// [`Output::new`] for a value it may keep: its JSON form is written now, its RON text
    /// when first asked for ([`Output::as_ron`], [`Output::write`], [`Output::parse`]), which
    /// a server never does. (A value whose RON text cannot be written, where its JSON could,
    /// reads as its JSON text.) What the default `postprocess` makes of its [`Prediction`];
    /// a task's own [`crate::Task::postprocess`] may return one too.
    pub fn keeping<T: Serialize + Send + Sync + 'static>(value: T) -> Result<Self> {
        Ok(Output {
            ron: OnceLock::new(),
            json: to_json(&value)?,
            value: Some(Arc::new(value)),
            prediction: false,
        })
    }

    /// The default `postprocess`'s result: `prediction`, which the default `eval` and
    /// `serve` complete with the name of its class when the run named its classes.
    pub fn prediction(prediction: &Prediction) -> Result<Self> {
        Ok(Output {
            prediction: true,
            ..Output::keeping(prediction.clone())?
        })
    }

    /// This result with its class named `names[argmax]`, when it is a [`Prediction`] made by
    /// [`Output::prediction`] that names no class yet and `names` has one name per output
    /// value; otherwise unchanged (a task's own result, a run without class names, an
    /// output that is not one score per class).
    pub fn with_classes(self, names: &[String]) -> Result<Self> {
        if !self.prediction || names.is_empty() {
            return Ok(self);
        }
        let mut p = Prediction::deserialize(&self.json)
            .map_err(|e| Error::msg(format!("cannot read the result: {e}")))?;
        if p.class.is_some() || p.values.len() != names.len() {
            return Ok(self);
        }
        p.class = names.get(p.argmax).cloned();
        Output::prediction(&p)
    }

    /// The RON text.
    pub fn as_ron(&self) -> &str {
        self.ron.get_or_init(|| {
            let written = self
                .value
                .as_deref()
                .map(|value| crate::util::ron_text::to_pretty(value));
            match written {
                Some(Ok(text)) => text,
                // `new` wrote the text; `keeping` wrote the JSON, which is also RON's syntax
                // for maps, lists, strings and numbers.
                _ => serde_json::to_string_pretty(&self.json).unwrap_or_default(),
            }
        })
    }

    /// The value back as `T`: from its RON text, or from its JSON where the text was never
    /// written (an [`Output::new`] made while the server computed; JSON has no NaN nor
    /// infinities, which read back as `null`, and tells `Some(None)` from `None` no more).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        if self.ron.get().is_none() && self.value.is_none() {
            return T::deserialize(&self.json)
                .map_err(|e| Error::msg(format!("cannot read the result: {e}")));
        }
        crate::util::ron_text::from_str(self.as_ron())
            .map_err(|e| Error::msg(format!("cannot read the result: {e}")))
    }

    /// The value as JSON, as serde_json writes it: structs become objects named by their
    /// fields, enum variants keep their names (`"Cat"`, `{"Dog": 3}`).
    pub fn to_json(&self) -> Result<serde_json::Value> {
        Ok(self.json.clone())
    }

    /// The value as JSON (see [`Output::to_json`]), borrowed.
    pub fn as_json(&self) -> &serde_json::Value {
        &self.json
    }

    /// Writes the RON text to `path`: atomically for a file (through a symbolic link to the
    /// file it names), as it is to a FIFO or a device (`/dev/stdout`).
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = self.as_ron().to_string();
        text.push('\n');
        Ok(write_output(path, text.as_bytes())?)
    }
}

thread_local! {
    /// Whether this thread computes answers for the inference server (see [`answering_json`]).
    static ANSWERING_JSON: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `compute` (the task's serving steps, for the inference server) with [`Output::new`]
/// writing only the JSON form, which is all the server answers; the thread is as before
/// afterwards, also when `compute` panics.
pub fn answering_json<R>(compute: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ANSWERING_JSON.set(self.0);
        }
    }
    let _restore = Restore(ANSWERING_JSON.replace(true));
    compute()
}

/// serde_json's form of `value`, its `f32`s as they are written (`0.9691404`): through the
/// text, as `serde_json::to_value` widens each to the `f64` it is (`0.9691404104232788`),
/// where `eval`'s RON and JSON texts write the shortest decimal of the `f32`.
fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<serde_json::Value> {
    let cannot =
        |e: serde_json::Error| Error::msg(format!("cannot turn the result into JSON: {e}"));
    let text = serde_json::to_vec(value).map_err(cannot)?;
    serde_json::from_slice(&text).map_err(cannot)
}

/// What the default `postprocess` makes of a model output: its values, the index of the
/// largest one (the class of a classifier), and that class's name when the run named its
/// classes (`(class: "Barolo", argmax: 0, values: [2.1, -0.3, -1.7])` in RON,
/// `{"class": "Barolo", "argmax": 0, "values": [...]}` in JSON; without names, no `class`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The name of class `argmax` (see [`crate::Env::set_classes`]); `None`, and absent from
    /// the text, when the run named no classes.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "bare_option")]
    pub class: Option<String>,
    /// The index of the largest value.
    pub argmax: usize,
    /// All output values, flattened.
    pub values: Vec<f32>,
}

impl Prediction {
    /// Reads `output` (a batch of one) back to the host.
    pub fn from_output(output: &Tensor) -> Result<Self> {
        let values = output
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?;
        let argmax = values
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                if v > best.1 {
                    (i, v)
                } else {
                    best
                }
            })
            .0;
        Ok(Prediction {
            class: None,
            argmax,
            values,
        })
    }
}

/// An `Option<String>` written as its string alone (`class: "Barolo"`, not
/// `class: Some("Barolo")`): the field is left out when `None`.
mod bare_option {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_str(v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        String::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn single_precision_numbers_are_answered_as_written() {
        #[derive(Serialize)]
        struct Mine {
            probability: f32,
            values: Vec<f32>,
        }
        let out = Output::new(&Mine {
            probability: 0.969_140_4,
            values: vec![0.1, f32::MAX],
        })
        .unwrap();
        assert_eq!(
            serde_json::to_string(out.as_json()).unwrap(),
            r#"{"probability":0.9691404,"values":[0.1,3.4028235e+38]}"#
        );
    }

    #[test]
    fn a_prediction_names_its_class_when_the_run_named_them() {
        let out = Tensor::new(&[[0.5f32, 2.0, -1.0]], &Device::Cpu).unwrap();
        let plain = Output::prediction(&Prediction::from_output(&out).unwrap()).unwrap();
        assert_eq!(plain.as_ron(), "(\n    argmax: 1,\n    values: [\n        0.5,\n        2.0,\n        -1.0,\n    ],\n)");
        let named = plain
            .clone()
            .with_classes(&names(&["a", "b,c", "d"]))
            .unwrap();
        assert!(
            named
                .as_ron()
                .starts_with("(\n    class: \"b,c\",\n    argmax: 1,"),
            "{}",
            named.as_ron()
        );
        let p: Prediction = named.parse().unwrap();
        assert_eq!(p.class.as_deref(), Some("b,c"));
        assert_eq!(
            named.to_json().unwrap(),
            serde_json::json!({"class": "b,c", "argmax": 1, "values": [0.5, 2.0, -1.0]})
        );
        // No names, names that do not fit the output, or a task's own result: unchanged.
        assert_eq!(
            plain.clone().with_classes(&[]).unwrap().as_ron(),
            plain.as_ron()
        );
        assert_eq!(
            plain
                .clone()
                .with_classes(&names(&["a", "b"]))
                .unwrap()
                .as_ron(),
            plain.as_ron()
        );
        let own = Output::new(&Prediction::from_output(&out).unwrap()).unwrap();
        assert_eq!(
            own.clone()
                .with_classes(&names(&["a", "b", "d"]))
                .unwrap()
                .as_ron(),
            own.as_ron()
        );
        assert_eq!(own, plain);
    }

    /// A result with what RON and JSON write otherwise: enum variants, options, tuples.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    enum Pet {
        Cat,
        Dog(u8),
    }

    /// See [`Pet`].
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Seen {
        pet: Pet,
        also: Option<Pet>,
        at: (u32, u32),
    }

    #[test]
    fn a_kept_result_writes_the_same_text_as_one_written_at_once() {
        let seen = Seen {
            pet: Pet::Dog(3),
            also: Some(Pet::Cat),
            at: (1, 2),
        };
        let kept = Output::keeping(seen.clone()).unwrap();
        let written = Output::new(&seen).unwrap();
        assert_eq!(kept.to_json().unwrap(), written.to_json().unwrap());
        // Enum variants, options and tuples as RON writes them, not as their JSON reads.
        assert!(kept.as_ron().contains("pet: Dog(3)"), "{}", kept.as_ron());
        assert_eq!(kept.as_ron(), written.as_ron());
        assert_eq!(kept.parse::<Seen>().unwrap(), seen);
        assert_eq!(kept, written);
    }

    #[test]
    fn a_result_made_for_the_server_is_json_only_and_reads_back_whole() {
        let seen = Seen {
            pet: Pet::Dog(3),
            also: None,
            at: (1, 2),
        };
        let served = answering_json(|| Output::new(&seen)).unwrap();
        assert!(served.ron.get().is_none());
        assert_eq!(served.parse::<Seen>().unwrap(), seen);
        assert_eq!(
            served.to_json().unwrap(),
            Output::new(&seen).unwrap().to_json().unwrap()
        );
        // Outside the server's computation, and after one that panicked, RON is written again.
        assert!(Output::new(&seen).unwrap().ron.get().is_some());
        let panicked = std::panic::catch_unwind(|| answering_json(|| panic!("task")));
        assert!(panicked.is_err());
        assert!(Output::new(&seen).unwrap().as_ron().contains("pet: Dog(3)"));
    }
}
