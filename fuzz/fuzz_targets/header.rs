#![no_main]
use libfuzzer_sys::fuzz_target;
use sqlite_salvage::format::header::{DbHeader, RawHeader};

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = RawHeader::parse(data) {
        if let Ok(h) = DbHeader::from_raw(raw) {
            let _ = (h.database_size(), h.auto_vacuum(), h.lock_byte_page());
        }
    }
    let _ = DbHeader::parse(data);
});
