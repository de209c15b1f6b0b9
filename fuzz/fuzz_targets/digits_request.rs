//! The digits example's request reader (`decode_digit`), the README's model of a task's own
//! reader: an 8x8 PNG, a CSV row or JSON, chosen by the first byte's lowest bits as the
//! `Content-Type`. Any body becomes 64 pixels or an error, never a panic, an abort or a
//! large allocation (the PNG header's size is checked before decoding).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let content_type = ["image/png", "text/csv", "application/json", ""][usize::from(kind & 3)];
    if let Ok(sample) = flammable_examples::decode_digit(body, content_type) {
        // A PNG or CSV row is 64 pixels; JSON may have any shape (the server checks it).
        if content_type == "image/png" || content_type == "text/csv" {
            assert_eq!(sample.dims(), &[64]);
        }
    }
});
