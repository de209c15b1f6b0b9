//! Run names as users type them (ids, prefixes, latest, latest~N): any text resolves to a
//! run or fails with an error, never a panic.
#![no_main]

use flammable_core::store::record::{Record, RunKind};
use flammable_core::store::Store;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn store() -> &'static Store {
    static STORE: OnceLock<(tempfile::TempDir, Store)> = OnceLock::new();
    &STORE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = Store::at(dir.path().join("store"));
            for seed in 0..3 {
                store.create(Record::new("fuzz", RunKind::Train, seed)).expect("create");
            }
            (dir, store)
        })
        .1
}

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = std::str::from_utf8(data) else { return };
    if let Ok(record) = store().resolve(spec, |_| true) {
        assert!(store().ids().expect("ids").contains(&record.id));
    }
});
