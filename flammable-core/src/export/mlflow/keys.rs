//! MLflow's names for Flammable's: MLflow takes metric, parameter and tag keys of letters,
//! digits, `_ - . : /` and spaces, at most 250 characters, that read as a normalized relative
//! path (no empty, `.` or `..` part). Other names are changed into such keys, one to one, and
//! the changes kept so that the run says what each key was.

use std::collections::{BTreeMap, HashMap};

/// The longest key MLflow takes.
pub const MAX_KEY_LEN: usize = 250;

/// The keys of one namespace (a run's metrics, or its parameters), each name always given
/// the same key, no two names one key.
#[derive(Debug, Default)]
pub struct Keys {
    /// Name → key.
    keys: HashMap<String, String>,
    /// Key → name, to find keys taken.
    taken: HashMap<String, String>,
}

impl Keys {
    /// The keys of `names`, given in sorted order so that every export gives each name the
    /// same key.
    pub fn of<'a>(names: impl IntoIterator<Item = &'a str>) -> Keys {
        let mut keys = Keys::default();
        keys.extend(names);
        keys
    }

    /// The keys an earlier export gave: its [`Keys::renamed`] (names that are their own keys
    /// need no record).
    pub fn from_renamed<'a>(renamed: impl IntoIterator<Item = (&'a str, &'a str)>) -> Keys {
        let mut keys = Keys::default();
        for (key, name) in renamed {
            keys.insert(name, key.to_string());
        }
        keys
    }

    /// Records that `names` (written by an earlier export, not renamed) kept their own
    /// keys, where no other name holds them.
    pub fn keep_own<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        for name in names {
            if sanitized(name) == name
                && !self.keys.contains_key(name)
                && !self.taken.contains_key(name)
            {
                self.insert(name, name.to_string());
            }
        }
    }

    /// Gives keys to the `names` that have none, in sorted order, never one taken.
    pub fn extend<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        let mut new: Vec<&str> = names
            .into_iter()
            .filter(|n| !self.keys.contains_key(*n))
            .collect();
        new.sort_unstable();
        new.dedup();
        // Names that are keys already keep them, whatever their order, unless taken.
        for name in &new {
            if sanitized(name) == *name && !self.taken.contains_key(*name) {
                self.insert(name, name.to_string());
            }
        }
        new.retain(|n| !self.keys.contains_key(*n));
        for name in new {
            let base = sanitized(name);
            let mut key = base.clone();
            let mut n = 2;
            while self.taken.contains_key(&key) {
                let suffix = format!("_{n}");
                key = format!("{}{suffix}", cut(&base, MAX_KEY_LEN - suffix.len()));
                n += 1;
            }
            self.insert(name, key);
        }
    }

    fn insert(&mut self, name: &str, key: String) {
        self.taken.insert(key.clone(), name.to_string());
        self.keys.insert(name.to_string(), key);
    }

    /// The key of `name` (one of the names the keys were made of; another is sanitized as
    /// is).
    pub fn key(&self, name: &str) -> String {
        self.keys
            .get(name)
            .cloned()
            .unwrap_or_else(|| sanitized(name))
    }

    /// The names that were changed, by key.
    pub fn renamed(&self) -> BTreeMap<&str, &str> {
        self.keys
            .iter()
            .filter(|(name, key)| name != key)
            .map(|(name, key)| (key.as_str(), name.as_str()))
            .collect()
    }
}

/// `name` as a key MLflow takes: characters it refuses become `_`, empty, `.` and `..` parts
/// of the path become `_` and `__`, and the whole is cut to [`MAX_KEY_LEN`].
pub fn sanitized(name: &str) -> String {
    let chars: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | ':' | '/') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let parts: Vec<&str> = chars
        .split('/')
        .map(|part| match part {
            "" | "." => "_",
            ".." => "__",
            part => part,
        })
        .collect();
    // A cut can end in a part that is empty or dots: those characters go.
    let joined = parts.join("/");
    let key = cut(&joined, MAX_KEY_LEN).trim_end_matches(['/', '.']);
    if key.is_empty() {
        "_".to_string()
    } else {
        key.to_string()
    }
}

/// The first `len` bytes of ASCII `s`.
fn cut(s: &str, len: usize) -> &str {
    s.get(..len.min(s.len())).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_mlflow_takes_are_kept() {
        for name in [
            "train/loss",
            "val/acc top-1",
            "lr",
            "optimizer.beta:1",
            "a_b",
        ] {
            assert_eq!(sanitized(name), name);
        }
    }

    #[test]
    fn other_names_become_keys_mlflow_takes() {
        assert_eq!(sanitized("acc@5"), "acc_5");
        assert_eq!(sanitized("f1[macro]"), "f1_macro_");
        assert_eq!(sanitized("/abs"), "_/abs");
        assert_eq!(sanitized("a//b"), "a/_/b");
        assert_eq!(sanitized("a/../b"), "a/__/b");
        assert_eq!(sanitized("./x"), "_/x");
        assert_eq!(sanitized("x/"), "x/_");
        assert_eq!(sanitized(""), "_");
        assert_eq!(sanitized("précision"), "pr_cision");
        assert_eq!(sanitized(&"x".repeat(300)).len(), MAX_KEY_LEN);
        // Cut within a part of dots: never a `.` or empty last part.
        assert_eq!(
            sanitized(&format!("{}/...", "x".repeat(247))),
            "x".repeat(247)
        );
    }

    #[test]
    fn two_names_never_share_a_key_and_a_key_name_keeps_its_key() {
        // "acc_5" is a name already: "acc@5" and "acc#5" take other keys.
        let keys = Keys::of(["acc@5", "acc#5", "acc_5"]);
        assert_eq!(keys.key("acc_5"), "acc_5");
        assert_eq!(keys.key("acc#5"), "acc_5_2");
        assert_eq!(keys.key("acc@5"), "acc_5_3");
        assert_eq!(
            keys.renamed().into_iter().collect::<Vec<_>>(),
            vec![("acc_5_2", "acc#5"), ("acc_5_3", "acc@5")]
        );
        // The same names in another order: the same keys.
        let again = Keys::of(["acc_5", "acc@5", "acc#5"]);
        assert_eq!(again.key("acc@5"), "acc_5_3");
        // A long name cut, and a second one like it, stay within MLflow's length.
        let long = Keys::of([&*format!("{}@", "y".repeat(260)), &*"y".repeat(260)]);
        for name in [format!("{}@", "y".repeat(260)), "y".repeat(260)] {
            assert!(long.key(&name).len() <= MAX_KEY_LEN);
        }
        assert_ne!(
            long.key(&format!("{}@", "y".repeat(260))),
            long.key(&"y".repeat(260))
        );
    }

    #[test]
    fn names_seen_later_keep_the_keys_given_earlier() {
        // A first export saw only "acc@5"; a later one sees "acc_5" too.
        let first = Keys::of(["acc@5"]);
        assert_eq!(first.key("acc@5"), "acc_5");
        let mut later = Keys::from_renamed(first.renamed());
        later.extend(["acc_5", "acc@5", "loss"]);
        assert_eq!(later.key("acc@5"), "acc_5");
        assert_eq!(later.key("acc_5"), "acc_5_2");
        assert_eq!(later.key("loss"), "loss");
        // A first export wrote "acc_5" under its own key (not recorded as renamed); a later
        // "acc@5" must not take it.
        let mut again = Keys::from_renamed(std::iter::empty());
        again.keep_own(["acc_5", "bad@name"]);
        again.extend(["acc@5"]);
        assert_eq!(again.key("acc_5"), "acc_5");
        assert_eq!(again.key("acc@5"), "acc_5_2");
        // A name that is no key was never written under its own.
        assert_eq!(again.key("bad@name"), "bad_name");
    }
}
