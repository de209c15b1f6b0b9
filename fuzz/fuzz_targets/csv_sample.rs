//! The default sample reader's CSV (`eval`'s `.csv` and `.txt` inputs): any text becomes
//! numbers or an error naming what is not a number, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(values) = flammable_core::task::sample::csv_values(text) {
        assert!(values.len() <= text.len());
    }
});
