//! What each default feature of `flammable` costs a task binary: the smallest task
//! (`bench/probe/main.rs`) built in release mode against `flammable` with no default feature,
//! then with each feature alone, and with the defaults. The first build is cold (every
//! dependency); each other one starts from a copy of its target folder, so its time is what
//! the feature adds to a cold build. Sizes are of the stripped binary.
//!
//! `cargo run --release -p flammable-bench --bin feature_cost [-- --smoke]` (`--smoke` only
//! checks that the probe's manifest is made; the builds take minutes).

use flammable_bench::report;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The feature sets built: a name and `flammable`'s features.
const VARIANTS: [(&str, &[&str]); 6] = [
    ("no default feature", &[]),
    ("follow-events (notify)", &["follow-events"]),
    ("watch (ratatui)", &["watch"]),
    ("serve (axum, tokio, tower)", &["serve"]),
    ("mimalloc (the global allocator)", &["mimalloc"]),
    ("the defaults", &["default"]),
];

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A crate of the probe task against `flammable` with `features`, in `dir`, with the
/// workspace's lock file (the same versions of everything).
fn probe_crate(dir: &Path, features: &[&str]) -> std::io::Result<()> {
    let repo = repository();
    let (defaults, features): (bool, Vec<&str>) = match features {
        ["default"] => (true, Vec::new()),
        other => (false, other.to_vec()),
    };
    let features: Vec<String> = features.iter().map(|f| format!("\"{f}\"")).collect();
    let manifest = format!(
        "[package]\nname = \"feature-probe\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [workspace]\n\n[[bin]]\nname = \"probe\"\npath = \"main.rs\"\n\n\
         [dependencies]\nflammable = {{ path = \"{}\", default-features = {defaults}, features = [{}] }}\n\
         clap = {{ version = \"4.6\", features = [\"derive\"] }}\nserde = {{ version = \"1\", features = [\"derive\"] }}\n\n\
         [profile.release]\nstrip = true\n",
        repo.join("flammable").display(),
        features.join(", ")
    );
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("Cargo.toml"), manifest)?;
    std::fs::copy(repo.join("bench/probe/main.rs"), dir.join("main.rs"))?;
    std::fs::copy(repo.join("Cargo.lock"), dir.join("Cargo.lock"))?;
    Ok(())
}

/// Builds the probe in `dir` into `target`; its wall time and binary size.
fn build(dir: &Path, target: &Path) -> Option<(Duration, u64)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let started = Instant::now();
    let ok = Command::new(cargo)
        .args(["build", "--release", "--quiet"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("RUSTFLAGS")
        .status()
        .is_ok_and(|s| s.success());
    let took = started.elapsed();
    if !ok {
        eprintln!("warning: the probe did not build in {}", dir.display());
        return None;
    }
    let size = std::fs::metadata(target.join("release/probe")).ok()?.len();
    Some((took, size))
}

fn copy_dir(from: &Path, to: &Path) -> bool {
    Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .is_ok_and(|s| s.success())
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let Ok(work) = tempfile::tempdir() else {
        eprintln!("error: no temporary folder");
        std::process::exit(1);
    };
    if smoke {
        for (i, (_, features)) in VARIANTS.iter().enumerate() {
            let dir = work.path().join(format!("probe-{i}"));
            if let Err(e) = probe_crate(&dir, features) {
                eprintln!("error: cannot write the probe crate: {e}");
                std::process::exit(1);
            }
        }
        println!(
            "feature_cost: smoke mode writes the probe crates only (each build takes minutes)"
        );
        return;
    }
    let base_target = work.path().join("target-base");
    let mut rows = Vec::new();
    let mut base: Option<(Duration, u64)> = None;
    for (i, (name, features)) in VARIANTS.iter().enumerate() {
        let dir = work.path().join(format!("probe-{i}"));
        if let Err(e) = probe_crate(&dir, features) {
            eprintln!("error: cannot write the probe crate: {e}");
            std::process::exit(1);
        }
        let target = if i == 0 {
            base_target.clone()
        } else {
            let copy = work.path().join(format!("target-{i}"));
            if !copy_dir(&base_target, &copy) {
                eprintln!("warning: cannot copy the base target folder");
                continue;
            }
            copy
        };
        eprintln!("== building the probe with {name}");
        let Some((took, size)) = build(&dir, &target) else {
            continue;
        };
        let row = match base {
            None => {
                base = Some((took, size));
                format!(
                    "| {name} | {:.0} s (cold) | {:.1} MB | |",
                    took.as_secs_f64(),
                    size as f64 / 1e6
                )
            }
            Some((_, base_size)) => format!(
                "| {name} | +{:.0} s | {:.1} MB | +{:.1} MB |",
                took.as_secs_f64(),
                size as f64 / 1e6,
                (size as f64 - base_size as f64) / 1e6
            ),
        };
        rows.push(row);
        if i > 0 {
            let _ = std::fs::remove_dir_all(&target);
        }
    }
    let text = format!(
        "## What a task binary pays for each feature (release, stripped)\n\n\
         | features of `flammable` | build time (added to a cold build) | binary | added |\n| --- | --- | --- | --- |\n{}\n",
        rows.join("\n")
    );
    report("feature_cost", &text, false);
}
