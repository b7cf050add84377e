#![no_main]
//! One WAL file: the frame scan, then replay (as SQLite would and as
//! salvage) onto a one-page database of the WAL's page size.
use libfuzzer_sys::fuzz_target;
use sqlite_salvage::format::header::empty_database;
use sqlite_salvage::wal::WalIndex;
use sqlite_salvage::{Database, WalChoice};

fuzz_target!(|data: &[u8]| {
    let _ = WalIndex::scan_reader(data, data.len() as u64, std::path::Path::new("fuzz-wal"));
    let ps = data
        .get(8..12)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .filter(|p| p.is_power_of_two() && (512..=65536).contains(p))
        .unwrap_or(4096);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    std::fs::write(&db, empty_database(ps)).unwrap();
    std::fs::write(dir.path().join("f.db-wal"), data).unwrap();
    let out = dir.path().join("out.db");
    if let Ok(d) = Database::open_with(&db, WalChoice::Auto) {
        for at in [None, Some(1)] {
            if let Ok(s) = d.snapshot(at) {
                let _ = sqlite_salvage::replay::replay_with(&s, &out, false);
            }
        }
    }
    if let Ok(d) = Database::open_salvage(&db, WalChoice::Auto) {
        if let Ok(s) = d.salvage(None) {
            let _ = sqlite_salvage::replay::replay_with(&s.snapshot, &out, false);
        }
    }
});
