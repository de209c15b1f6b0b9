//! Path dependencies that lead out of a run's code (`flammable = { path =
//! "../flammable/flammable" }`, a clone beside the repository), for `rerun` and `bisect`: their
//! checkout sits in the store, where such a path names nothing, so it is pointed at the folder
//! it named from the code's own working tree.

use crate::error::{IoContext, Result};
use crate::store::lexically_normal;
use std::path::{Path, PathBuf};

/// The sections of a manifest whose entries may name a `path`.
const DEPENDENCY_TABLES: [&str; 3] = ["dependencies", "dev-dependencies", "build-dependencies"];

/// Rewrites, in every `Cargo.toml` of the code checked out at `src`, each relative `path` of a
/// dependency (plain, dev, build, per target, the workspace's, a `[patch]`) that leads out of
/// `src` into the absolute path it named from `workdir`, where the code was snapshotted. The
/// snapshot itself is untouched: only this checkout's manifests change. Returns how many
/// paths were rewritten.
pub(super) fn pin_outside_paths(src: &Path, workdir: &Path) -> Result<usize> {
    let mut rewritten = 0;
    for manifest in manifests(src) {
        let text = std::fs::read_to_string(&manifest).at("cannot read", &manifest)?;
        // A manifest that does not parse is left for cargo to report.
        let Ok(mut doc) = text.parse::<toml_edit::DocumentMut>() else {
            continue;
        };
        let dir = manifest.parent().unwrap_or(src);
        let relative = dir.strip_prefix(src).unwrap_or(Path::new(""));
        let mut pin = |path: &str| -> Option<String> {
            let named = Path::new(path);
            if named.is_absolute() || lexically_normal(&dir.join(named)).starts_with(src) {
                return None;
            }
            let original = lexically_normal(&workdir.join(relative).join(named));
            Some(original.to_string_lossy().into_owned())
        };
        let mut changed = 0;
        for table in dependency_tables(doc.as_table_mut()) {
            for (_, entry) in table.iter_mut() {
                let Some(path) = entry.get_mut("path") else {
                    continue;
                };
                if let Some(pinned) = path.as_str().and_then(&mut pin) {
                    *path = toml_edit::value(pinned);
                    changed += 1;
                }
            }
        }
        if changed > 0 {
            std::fs::write(&manifest, doc.to_string()).at("cannot write", &manifest)?;
            rewritten += changed;
        }
    }
    Ok(rewritten)
}

/// Every table of `root` that lists dependencies: the plain, dev and build ones, those of each
/// `[target.'cfg(…)']`, `[workspace.dependencies]` and each `[patch.<source>]`.
fn dependency_tables(root: &mut toml_edit::Table) -> Vec<&mut dyn toml_edit::TableLike> {
    let mut out: Vec<&mut dyn toml_edit::TableLike> = Vec::new();
    for (key, item) in root.iter_mut() {
        match key.get() {
            "target" => {
                if let Some(targets) = item.as_table_like_mut() {
                    for (_, target) in targets.iter_mut() {
                        if let Some(target) = target.as_table_like_mut() {
                            for (key, item) in target.iter_mut() {
                                if DEPENDENCY_TABLES.contains(&key.get()) {
                                    out.extend(item.as_table_like_mut());
                                }
                            }
                        }
                    }
                }
            }
            "workspace" => {
                if let Some(workspace) = item.as_table_like_mut() {
                    out.extend(
                        workspace
                            .get_mut("dependencies")
                            .and_then(|d| d.as_table_like_mut()),
                    );
                }
            }
            "patch" => {
                if let Some(sources) = item.as_table_like_mut() {
                    for (_, source) in sources.iter_mut() {
                        out.extend(source.as_table_like_mut());
                    }
                }
            }
            name if DEPENDENCY_TABLES.contains(&name) => out.extend(item.as_table_like_mut()),
            _ => {}
        }
    }
    out
}

/// The `Cargo.toml` files under `src`, outside `.git` and `target` folders.
fn manifests(src: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut folders = vec![src.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if entry.file_name() != ".git" && entry.file_name() != "target" {
                    folders.push(path);
                }
            } else if entry.file_name() == "Cargo.toml" {
                out.push(path);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_out_of_the_checkout_point_where_they_pointed_from_the_working_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("reruns/run/src");
        std::fs::create_dir_all(src.join("tasks/mine")).unwrap();
        std::fs::create_dir_all(src.join("helper")).unwrap();
        std::fs::write(
            src.join("Cargo.toml"),
            "[workspace]\nmembers = [\"tasks/mine\"]\n\n[workspace.dependencies]\nflammable = { path = \"../flammable/flammable\", features = [\"mpi\"] }\n\n[patch.crates-io]\nrand = { path = \"/abs/rand\" }\n",
        )
        .unwrap();
        std::fs::write(
            src.join("tasks/mine/Cargo.toml"),
            "[package]\nname = \"mine\" # a comment kept\n\n[dependencies]\nflammable.workspace = true\nhelper = { path = \"../../helper\" }\nother = { path = \"../../../other\" }\n\n[target.'cfg(unix)'.dev-dependencies]\nlibx = { path = \"../../../libx\" }\n",
        )
        .unwrap();
        let workdir = Path::new("/home/me/code/repo");
        assert_eq!(pin_outside_paths(&src, workdir).unwrap(), 3);
        let root = std::fs::read_to_string(src.join("Cargo.toml")).unwrap();
        assert!(
            root.contains("path = \"/home/me/code/flammable/flammable\", features = [\"mpi\"]"),
            "{root}"
        );
        assert!(root.contains("path = \"/abs/rand\""), "{root}");
        let task = std::fs::read_to_string(src.join("tasks/mine/Cargo.toml")).unwrap();
        // Inside the checkout: as it was; outside: where it pointed from the working tree.
        assert!(task.contains("path = \"../../helper\""), "{task}");
        assert!(task.contains("path = \"/home/me/code/other\""), "{task}");
        assert!(task.contains("path = \"/home/me/code/libx\""), "{task}");
        assert!(task.contains("# a comment kept"), "{task}");
        // Run again: nothing left to pin.
        assert_eq!(pin_outside_paths(&src, workdir).unwrap(), 0);
    }
}
