//! A run's record file: any bytes parse or fail cleanly, and what parses writes back to the
//! same record.
#![no_main]

use flammable_core::store::record::Record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(record) = ron::from_str::<Record>(text) {
        let again = ron::to_string(&record).expect("a parsed record writes back");
        let back: Record = ron::from_str(&again).expect("what was written parses");
        assert_eq!(back, record);
    }
});
