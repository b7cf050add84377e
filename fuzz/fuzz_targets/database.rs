#![no_main]
//! A whole database file, or a database and its WAL split from one input
//! (see `entries::split`): through check, dump and recover.
use libfuzzer_sys::fuzz_target;
use sqlite_salvage::{Database, WalChoice};

#[path = "../entries.rs"]
#[allow(dead_code)]
mod entries;

fuzz_target!(|data: &[u8]| {
    let Some((db_bytes, wal)) = entries::split(data) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    std::fs::write(&db, db_bytes).unwrap();
    if let Some(wal) = wal {
        std::fs::write(dir.path().join("f.db-wal"), wal).unwrap();
    }
    if let Ok(d) = Database::open_with(&db, WalChoice::Auto) {
        if let Ok(s) = d.latest() {
            let _ = sqlite_salvage::check::check(&s);
            if let Ok(schema) = s.schema() {
                let _ = sqlite_salvage::dump::dump(
                    &s,
                    &schema,
                    &Default::default(),
                    &mut std::io::sink(),
                );
            }
        }
    }
    let opts = sqlite_salvage::recover::RecoverOptions {
        no_sync: true,
        ..Default::default()
    };
    let _ = sqlite_salvage::recover::recover(&db, &dir.path().join("out.db"), &opts);
});
