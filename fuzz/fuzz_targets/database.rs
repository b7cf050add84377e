#![no_main]
//! A whole database file, or a database and its WAL split from one input:
//! through check, dump and recover. An even first byte: the rest is the
//! file. An odd one, `2n + 1`: the rest is n pages of the page size its
//! header names (512 when that is not one), then the WAL.
use libfuzzer_sys::fuzz_target;
use sqlite_salvage::{Database, WalChoice};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    let split = if sel & 1 == 1 {
        let ps = rest
            .get(16..18)
            .map(|b| match u16::from_be_bytes([b[0], b[1]]) {
                1 => 65536,
                n => usize::from(n),
            })
            .filter(|p| p.is_power_of_two() && *p >= 512)
            .unwrap_or(512);
        (usize::from(sel >> 1) * ps).min(rest.len())
    } else {
        rest.len()
    };
    std::fs::write(&db, &rest[..split]).unwrap();
    if split < rest.len() {
        std::fs::write(dir.path().join("f.db-wal"), &rest[split..]).unwrap();
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
