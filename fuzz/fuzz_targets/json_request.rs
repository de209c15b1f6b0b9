//! The default request reader (`decode_request`'s JSON): any body becomes numbers and a shape
//! or an error, never a panic or an abort; it never keeps more numbers than the body holds,
//! and what it keeps fills the shape exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((values, shape)) = flammable_core::task::request::read_json(data, usize::MAX) {
        assert!(
            values.len() <= data.len(),
            "{} numbers from {} bytes",
            values.len(),
            data.len()
        );
        let count = shape.iter().try_fold(1usize, |n, d| n.checked_mul(*d));
        assert_eq!(count, Some(values.len()), "shape {shape:?}");
    }
    // A bound from the model's sample size is never passed.
    if let Ok((values, _)) = flammable_core::task::request::read_json(data, 64) {
        assert!(values.len() <= 64);
    }
});
