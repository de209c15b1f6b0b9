//! Each misuse of `#[flammable::task]` and the error a user reads. rustc's wording drifts
//! between releases, so the `.stderr` files are checked only on the toolchain they were
//! written with (`PINNED`); elsewhere the test says so and passes.

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
        eprintln!("skipping the ui tests: they are written for {PINNED}x, this is {version}");
        return;
    }
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    for topic in ["missing", "signature", "duplicate", "unknown", "placement"] {
        t.compile_fail(format!("tests/ui/{topic}/*.rs"));
    }
}
