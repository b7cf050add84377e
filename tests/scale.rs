//! Sizes past the format's thresholds: a database over 1 GiB has the
//! lock-byte page (the page holding file offset 2^30, which SQLite never
//! uses) among its b-tree pages, and so must the output.

use rusqlite::Connection;
use sqlite_salvage::recover::{Outcome, RecoverOptions, recover};

/// A database of a little over 1 GiB: rows with overflow chains, and a
/// table of small rows whose leaves come after the lock-byte page.
fn large_db(path: &std::path::Path, page_size: u32) -> (u64, u64) {
    let c = Connection::open(path).unwrap();
    c.execute_batch(&format!(
        "PRAGMA page_size={page_size}; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
         CREATE TABLE big(id INTEGER PRIMARY KEY, body BLOB);
         CREATE TABLE small(id INTEGER PRIMARY KEY, note TEXT);
         CREATE INDEX small_note ON small(note);
         BEGIN;"
    ))
    .unwrap();
    let blob = 1u64 << 20;
    let big = (1u64 << 30) / blob + 8;
    let mut st = c
        .prepare("INSERT INTO big(id, body) VALUES(?1, ?2)")
        .unwrap();
    for i in 1..=big {
        st.execute(rusqlite::params![i as i64, body(i, blob as usize)])
            .unwrap();
    }
    drop(st);
    let small = 20_000u64;
    let mut st = c.prepare("INSERT INTO small(note) VALUES(?1)").unwrap();
    for i in 0..small {
        st.execute([format!("note {i}")]).unwrap();
    }
    drop(st);
    c.execute_batch("COMMIT").unwrap();
    (big, small)
}

/// Row `i`'s value: `len` bytes no two rows share.
fn body(i: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|k| (k.wrapping_mul(31) ^ i.wrapping_mul(0x9e37)) as u8 | 1)
        .collect()
}

/// The output crosses 1 GiB: the bulk writer passes over the lock-byte
/// page (in overflow chains and between leaves), so SQLite accepts the
/// pages as written and nothing is loaded a second time.
#[test]
fn recover_past_the_lock_byte_page() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("large.db");
    let (big, small) = large_db(&db, 4096);
    assert!(std::fs::metadata(&db).unwrap().len() > 1 << 30);
    let out = dir.path().join("out.db");
    let opts = RecoverOptions {
        no_sync: true,
        ..Default::default()
    };
    let r = recover(&db, &out, &opts).unwrap();
    assert_eq!(r.restarted, None, "the page-by-page load was given up");
    assert_eq!(r.outcome, Outcome::Complete);
    assert_eq!(r.rows(), big + small);
    let c = Connection::open(&out).unwrap();
    let ic: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ic, "ok");
    let mut st = c.prepare("SELECT id, body FROM big ORDER BY id").unwrap();
    let mut rows = st.query([]).unwrap();
    let mut n = 0;
    while let Some(row) = rows.next().unwrap() {
        let (id, b): (i64, Vec<u8>) = (row.get(0).unwrap(), row.get(1).unwrap());
        n += 1;
        assert_eq!(id as u64, n);
        assert!(b == body(n, 1 << 20), "row {n} of big differs");
    }
    assert_eq!(n, big);
    drop(rows);
    drop(st);
    let last: String = c
        .query_row("SELECT note FROM small ORDER BY id DESC LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(last, format!("note {}", small - 1));
}
