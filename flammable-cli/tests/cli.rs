//! The `flammable` binary as installed: its commands, including the browser, in a folder with
//! no task to build.

use std::process::Command;

fn flammable(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flammable"))
        .args(args)
        .current_dir(dir)
        .env("FLAMMABLE_STORE", dir.join("store"))
        .output()
        .expect("the binary starts")
}

#[test]
fn lists_an_empty_store_and_offers_the_browser() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A named store must exist (a typo would list nothing): an empty one is listed empty.
    std::fs::create_dir(dir.path().join("store")).expect("the store folder");
    let listed = flammable(dir.path(), &["runs"]);
    assert!(listed.status.success(), "{listed:?}");
    let help = flammable(dir.path(), &["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("ui") && help.contains("Browse the runs"),
        "{help}"
    );
    let ui_help = flammable(dir.path(), &["ui", "--help"]);
    let ui_help = String::from_utf8_lossy(&ui_help.stdout);
    for flag in ["--host", "--port", "--open", "--token"] {
        assert!(ui_help.contains(flag), "{ui_help}");
    }
}
