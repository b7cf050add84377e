#![no_main]
use libfuzzer_sys::fuzz_target;
use sqlite_salvage::wal::WalIndex;

fuzz_target!(|data: &[u8]| {
    let _ = WalIndex::scan_reader(data, data.len() as u64, std::path::Path::new("fuzz-wal"));
});
