#![no_main]
use libfuzzer_sys::fuzz_target;
use sqlite_salvage::format::header::TextEncoding;
use sqlite_salvage::format::record::Record;

fuzz_target!(|data: &[u8]| {
    let mut r = Record::new();
    if r.parse(data).is_ok() {
        for i in 0..r.len() + 1 {
            let v = r.value(data, i);
            let _ = v.to_owned(TextEncoding::Utf16le);
            let _ = v.to_owned(TextEncoding::Utf8);
        }
    }
});
