//! Each misuse of `#[flammable::task]` and the error a user reads. rustc's wording drifts
//! between releases, so the `.stderr` files are checked only on the toolchain they were
//! written with (`PINNED`, the one `rust-toolchain.toml` pins); elsewhere the test says so
//! and passes, unless `FLAMMABLE_REQUIRE_ALL_TESTS` is set (CI sets it), where it fails.
//!
//! The cases that must compile (`tests/ui/pass/`) are test programs of their own (see
//! `Cargo.toml`), so that trybuild only runs `cargo check`.

const PINNED: &str = "rustc 1.95.";

fn rustc_version() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

#[test]
fn ui() {
    let version = rustc_version();
    if !version.starts_with(PINNED) {
        let why = format!("the ui tests are written for {PINNED}x, this is {version}");
        assert!(
            std::env::var_os("FLAMMABLE_REQUIRE_ALL_TESTS").is_none(),
            "{why} (FLAMMABLE_REQUIRE_ALL_TESTS is set)"
        );
        eprintln!("skipping: {why}");
        return;
    }
    // trybuild checks the cases when `t` drops, and panics if one fails.
    let checked = std::panic::catch_unwind(|| {
        let t = trybuild::TestCases::new();
        for topic in [
            "missing",
            "signature",
            "duplicate",
            "unknown",
            "placement",
            "data",
            "hyper",
            "several",
        ] {
            t.compile_fail(format!("tests/ui/{topic}/*.rs"));
        }
    });
    if let Err(panic) = checked {
        eprintln!("{}", what_cargo_said());
        std::panic::resume_unwind(panic);
    }
}

/// What cargo itself prints checking the first case in trybuild's project, for a failed run:
/// trybuild reads the compiler's messages alone, so a cargo that could not check the cases
/// at all (a full disk, a killed compiler) shows as cases that compiled.
fn what_cargo_said() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "(this test's path is unknown)".into();
    };
    // This binary is target/debug/deps/ui-…; trybuild's project is under target/tests.
    let Some(trybuild) = exe
        .ancestors()
        .map(|d| d.join("tests/trybuild"))
        .find(|d| d.is_dir())
    else {
        return "(no trybuild folder under the target folder)".into();
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(cargo)
        .current_dir(trybuild.join("flammable-ui-tests"))
        .env("CARGO_TARGET_DIR", &trybuild)
        .args([
            "check",
            "--offline",
            "--color=never",
            "--bin",
            "trybuild000",
        ])
        .output();
    match out {
        Ok(out) => {
            let said = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> = said.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            format!(
                "cargo check of the first case in trybuild's project ({}):\n{tail}",
                out.status
            )
        }
        Err(e) => format!("(cargo could not be started: {e})"),
    }
}
