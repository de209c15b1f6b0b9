//! Records the compiler, target and Cargo profile this crate is built with, for each run's
//! record.
fn main() {
    // OUT_DIR is <target dir>/[<triple>/]<profile dir>/build/<crate>-<hash>/out, whatever the
    // profile is called; the binary may later be copied or installed anywhere.
    let profile_dir = std::env::var("OUT_DIR")
        .ok()
        .and_then(|out| {
            std::path::Path::new(&out)
                .ancestors()
                .nth(3)
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let profile = match profile_dir.as_str() {
        "debug" => "dev",
        other => other,
    };
    println!("cargo:rustc-env=FLAMMABLE_PROFILE={profile}");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    println!("cargo:rustc-env=FLAMMABLE_RUSTC_VERSION={}", version.trim());
    println!(
        "cargo:rustc-env=FLAMMABLE_TARGET={}",
        std::env::var("TARGET").unwrap_or_default()
    );
    println!("cargo:rerun-if-changed=build.rs");
}
