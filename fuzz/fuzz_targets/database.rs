#![no_main]
//! A whole database file, then the first byte picks whether the rest is
//! split into a database and its WAL: through check, dump and recover.
use libfuzzer_sys::fuzz_target;
use sqlite_salvage::{Database, WalChoice};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    let split = if sel & 1 == 1 { (usize::from(sel) * 97).min(rest.len()) } else { rest.len() };
    std::fs::write(&db, &rest[..split]).unwrap();
    if split < rest.len() {
        std::fs::write(dir.path().join("f.db-wal"), &rest[split..]).unwrap();
    }
    if let Ok(d) = Database::open_with(&db, WalChoice::Auto) {
        if let Ok(s) = d.latest() {
            let _ = sqlite_salvage::check::check(&s);
            if let Ok(schema) = s.schema() {
                let _ = sqlite_salvage::dump::dump(&s, &schema, &Default::default(), &mut std::io::sink());
            }
        }
    }
    let opts = sqlite_salvage::recover::RecoverOptions { no_sync: true, ..Default::default() };
    let _ = sqlite_salvage::recover::recover(&db, &dir.path().join("out.db"), &opts);
});
