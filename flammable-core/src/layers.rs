//! The layers of this crate, lowest first, and a test that keeps them pointing one way: a
//! module may name (`crate::…`) only modules of its own layer or below. The composition
//! root, `cli/`, names anything; `lib.rs` re-exports.
//!
//! `error.rs` sits just above the store: it converts the store's and the snapshots' errors
//! into the one user-facing [`crate::Error`], so the layers below it (`util`, `snapshot`,
//! `store`) return their own errors and never name it.

/// Every top-level module, lowest first: each may use those before it.
pub const LAYERS: &[&str] = &[
    "util",
    "snapshot",
    "store",
    "error",
    "run",
    "hyper",
    "web",
    "ui",
    "export",
    "remote",
    // candle from here on
    "model",
    "data",
    "checkpoint",
    "env",
    "collective",
    "train",
    "task",
    "serve",
    "cli",
];

#[cfg(test)]
mod tests {
    use super::LAYERS;
    use std::path::{Path, PathBuf};

    /// The top-level modules a source text names through `crate::` paths (in `use` lines,
    /// `use crate::{a, b::c}` groups and inline paths), comments and test modules left out.
    fn named_modules(source: &str) -> Vec<String> {
        let code: String = source
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or("")
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut names = Vec::new();
        let mut rest = code.as_str();
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a::x, b}`: the first segment of each item at the group's top level.
                let mut depth = 0;
                let mut item_start = true;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => {
                            rest = &group[i..];
                            break;
                        }
                        '}' => depth -= 1,
                        ',' if depth == 0 => item_start = true,
                        c if item_start && (c.is_alphanumeric() || c == '_') => {
                            let name: String = group[i..]
                                .chars()
                                .take_while(|c| c.is_alphanumeric() || *c == '_')
                                .collect();
                            names.push(name);
                            item_start = false;
                        }
                        _ => {}
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.push(name);
            }
        }
        names
    }

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_module_names_only_its_layer_or_below() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
        let mut wrong = Vec::new();
        for file in files {
            let relative = file.strip_prefix(&src).unwrap();
            let top = relative
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if top == "lib" || top == "layers" || top == "cli" {
                continue;
            }
            let Some(mine) = rank(&top) else {
                wrong.push(format!(
                    "{}: module `{top}` is in no layer",
                    relative.display()
                ));
                continue;
            };
            let source = std::fs::read_to_string(&file).unwrap();
            for name in named_modules(&source) {
                match rank(&name) {
                    Some(theirs) if theirs > mine => wrong.push(format!(
                        "{}: layer `{top}` names `crate::{name}`, a layer above it",
                        relative.display()
                    )),
                    // Re-exports at the crate root (`crate::Error`, `crate::Task`, …) are
                    // checked by what they re-export: name the module instead.
                    None if name.chars().next().is_some_and(char::is_uppercase) => {
                        wrong.push(format!(
                            "{}: names `crate::{name}`; use the module path, so that its layer is checked",
                            relative.display()
                        ))
                    }
                    _ => {}
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "layers pointing up:\n{}",
            wrong.join("\n")
        );
    }

    #[test]
    fn the_scan_sees_groups_and_inline_paths() {
        let names = named_modules(
            "use crate::{store::x, task::{a, b}};\n// crate::cli\nfn f() { crate::hyper::y(); }\n#[cfg(test)]\nmod tests { use crate::serve; }",
        );
        assert_eq!(names, ["store", "task", "hyper"]);
    }
}
