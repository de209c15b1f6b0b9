//! `--config` files: any text becomes flag values or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = flammable_core::hyper::parse_config(text.to_string(), std::path::Path::new("fuzz.ron"));
});
