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
}
