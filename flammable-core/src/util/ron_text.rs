//! RON text of the task's own types (its hyperparameters, its eval results).
//!
//! Their serde impls are instantiated against erased-serde's object-safe traits, so RON's
//! reader and writer are compiled once, here, rather than again in every task binary: a
//! task's rebuild after an edit then costs little more than a hand-written program's.

use serde::de::DeserializeOwned;

/// Settings of the pretty RON that Flammable writes: four-space indents, `\n` line ends.
pub fn pretty() -> ron::ser::PrettyConfig {
    ron::ser::PrettyConfig::default()
        .new_line("\n")
        .indentor("    ")
}

/// `value` as pretty RON.
pub fn to_pretty(value: &dyn erased_serde::Serialize) -> Result<String, String> {
    ron::ser::to_string_pretty(value, pretty()).map_err(|e| e.to_string())
}

/// Reads a `T` from RON `text` (all of it).
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let mut out = None;
    with_deserializer(text, &mut |de| {
        out = Some(erased_serde::deserialize::<T>(de).map_err(|e| e.to_string())?);
        Ok(())
    })?;
    out.ok_or_else(|| "nothing was read".to_string())
}

/// Runs `read` on a RON deserializer of `text`, then checks that nothing but whitespace and
/// comments follows what it read.
fn with_deserializer(
    text: &str,
    read: &mut dyn FnMut(&mut dyn erased_serde::Deserializer) -> Result<(), String>,
) -> Result<(), String> {
    let mut de = ron::Deserializer::from_str(text).map_err(|e| e.to_string())?;
    read(&mut <dyn erased_serde::Deserializer>::erase(&mut de))?;
    de.end().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Hyper {
        hidden: usize,
        name: String,
        dropout: Option<f32>,
        kind: Kind,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Kind {
        Wide,
        Deep { layers: u8 },
    }

    #[test]
    fn round_trips_and_refuses_trailing_text() {
        let h = Hyper {
            hidden: 3,
            name: "a \"b\"\nc".into(),
            dropout: Some(0.5),
            kind: Kind::Deep { layers: 4 },
        };
        let text = to_pretty(&h).unwrap();
        assert_eq!(from_str::<Hyper>(&text).unwrap(), h);
        assert!(from_str::<Hyper>(&format!("{text} (extra)")).is_err());
        assert!(from_str::<Hyper>("(hidden: -1)").is_err());
    }
}
