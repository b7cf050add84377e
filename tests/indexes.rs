//! A bulk-loaded table's indexes copied from the input: the output's
//! indexes agree with its tables (SQLite's full `integrity_check`, which
//! looks every row up in every index) for values of every kind, at several
//! page sizes and in every text encoding; and an input index that does not
//! agree with its table (bytes changed on its pages) is never copied.

use std::path::Path;

use rusqlite::{Connection, params};

use crate::common::*;

const LAYOUTS: [(u32, &str); 4] = [
    (512, "UTF-8"),
    (1024, "UTF-16le"),
    (4096, "UTF-16be"),
    (65536, "UTF-8"),
];

/// A table whose indexed columns hold every kind of value: integers,
/// reals (integral ones too), text, blobs and NULLs, duplicates and all.
fn make(path: &Path, page_size: u32, enc: &str) -> i64 {
    let c = Connection::open(path).unwrap();
    c.execute_batch(&format!(
        "PRAGMA page_size={page_size}; PRAGMA encoding='{enc}';
         CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b REAL, c BLOB, d INTEGER UNIQUE, e, f NUMERIC);
         CREATE INDEX t_a ON t(a);
         CREATE INDEX t_ba ON t(b, a);
         CREATE INDEX t_e ON t(e);
         CREATE UNIQUE INDEX t_fc ON t(f, c);
         CREATE TABLE u(k TEXT PRIMARY KEY, v);
         CREATE INDEX u_v ON u(v);
         BEGIN;"
    ))
    .unwrap();
    let mut rng = Rng(page_size as u64 * 31 + enc.len() as u64);
    let n = 1500i64;
    for i in 0..n {
        let a = match i % 5 {
            0 => None,
            _ => Some(format!("name {} é", rng.below(300))),
        };
        let b = match i % 4 {
            0 => rusqlite::types::Value::Integer(i % 17),
            1 => rusqlite::types::Value::Real(i as f64 / 8.0),
            2 => rusqlite::types::Value::Null,
            _ => rusqlite::types::Value::Real(-(i as f64)),
        };
        let e = match i % 6 {
            0 => rusqlite::types::Value::Integer(i % 40),
            1 => rusqlite::types::Value::Real(0.5 + (i % 9) as f64),
            2 => rusqlite::types::Value::Text(format!("t{}", i % 50)),
            3 => rusqlite::types::Value::Blob(rng.bytes(1 + (i % 7) as usize)),
            4 => rusqlite::types::Value::Null,
            _ => rusqlite::types::Value::Text("x".repeat((i % 300) as usize)),
        };
        let mut c_blob = i.to_be_bytes().to_vec();
        c_blob.extend(rng.bytes((i % 40) as usize));
        let f = if i % 3 == 0 {
            rusqlite::types::Value::Null
        } else {
            rusqlite::types::Value::Text(format!("{}", i % 100))
        };
        c.execute(
            "INSERT INTO t(a, b, c, d, e, f) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                a,
                b,
                c_blob,
                if i % 10 == 0 { None } else { Some(i * 3) },
                e,
                f
            ],
        )
        .unwrap();
        c.execute(
            "INSERT INTO u VALUES(?1, ?2)",
            params![
                format!("key {i:05} {}", "k".repeat((i % 90) as usize)),
                i % 13
            ],
        )
        .unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
    assert_eq!(integrity(&c), "ok");
    n
}

fn check_output(out: &Path, rows: i64, what: &str) {
    let c = Connection::open(out).unwrap();
    assert_eq!(integrity(&c), "ok", "{what}");
    let n: i64 = c
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, rows, "{what}");
    // Through each index, the same rows as through the table.
    for (ix, col) in [("t_a", "a"), ("t_ba", "b"), ("t_e", "e")] {
        let via: i64 = c
            .query_row(
                &format!("SELECT count(*) FROM t INDEXED BY {ix} WHERE {col} IS NOT NULL"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        let scan: i64 = c
            .query_row(
                &format!("SELECT count(*) FROM t NOT INDEXED WHERE {col} IS NOT NULL"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(via, scan, "{what}: {ix}");
    }
}

#[test]
fn copied_indexes_agree_with_their_tables() {
    for (page_size, enc) in LAYOUTS {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("in.db");
        let rows = make(&db, page_size, enc);
        let out = dir.path().join("out.db");
        let r = recover_no_sync(&db, &out).unwrap();
        let what = format!("{page_size} {enc}");
        assert_eq!(r.restarted, None, "{what}");
        assert_eq!(r.rows(), 2 * rows as u64, "{what}");
        check_output(&out, rows, &what);
    }
}

/// Index leaf pages of `db` (page type 0x0a), by number.
fn index_leaves(db: &Path, page_size: u32) -> Vec<u32> {
    let bytes = std::fs::read(db).unwrap();
    bytes
        .chunks(page_size as usize)
        .enumerate()
        .filter(|(i, p)| p[if *i == 0 { 100 } else { 0 }] == 0x0a)
        .map(|(i, _)| i as u32 + 1)
        .collect()
}

#[test]
fn an_index_that_disagrees_with_its_table_is_rebuilt_not_copied() {
    for (page_size, enc) in LAYOUTS {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("in.db");
        let rows = make(&db, page_size, enc);
        let leaves = index_leaves(&db, page_size);
        assert!(!leaves.is_empty());
        let mut rng = Rng(u64::from(page_size));
        for k in 0..6 {
            let page = leaves[rng.below(leaves.len() as u64) as usize];
            let bad = dir.path().join(format!("bad{k}.db"));
            std::fs::copy(&db, &bad).unwrap();
            // A byte of the cell content area changed: a key, a rowid or a
            // record header of the index; the tables' pages are untouched.
            let ps = page_size as usize;
            let mut bytes = std::fs::read(&bad).unwrap();
            let base = (page as usize - 1) * ps;
            let start = usize::from(u16::from_be_bytes([bytes[base + 5], bytes[base + 6]]));
            let start = if start == 0 { 65536 } else { start };
            if start >= ps {
                continue;
            }
            let at = base + start + rng.below((ps - start) as u64) as usize;
            bytes[at] ^= 1 << rng.below(8);
            std::fs::write(&bad, &bytes).unwrap();
            let out = dir.path().join(format!("out{k}.db"));
            let r = recover_no_sync(&bad, &out).unwrap();
            let what = format!("{page_size} {enc}: page {page} byte {}", at - base);
            assert_eq!(
                r.tables
                    .iter()
                    .find(|t| t.name == "t")
                    .map(|t| t.by_source.values().sum::<u64>()),
                Some(rows as u64),
                "{what}"
            );
            check_output(&out, rows, &what);
        }
    }
}

#[test]
fn indexes_built_from_the_rows_agree_with_their_table_past_the_memory_budget() {
    // Keys of ~150 bytes in two indexes of 60,000 rows: 18 MB of sort keys,
    // more than the 8 MB held in memory, so sorted runs are merged.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("in.db");
    let c = Connection::open(&db).unwrap();
    c.execute_batch(
        "PRAGMA page_size=4096;
         CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT UNIQUE, b REAL, e);
         CREATE INDEX t_ba ON t(b, a);
         BEGIN;",
    )
    .unwrap();
    let rows = 60_000i64;
    let mut rng = Rng(7);
    for i in 1..=rows {
        let a = format!("{:0>140}-{i}", rng.below(u64::MAX));
        let b = if i % 3 == 0 {
            (i % 97) as f64
        } else {
            rng.below(1000) as f64 / 8.0
        };
        c.execute(
            "INSERT INTO t VALUES(?1, ?2, ?3, ?4)",
            params![i, a, b, i % 5],
        )
        .unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
    drop(c);
    // One leaf of each index changed: neither can be copied.
    let mut bytes = std::fs::read(&db).unwrap();
    let leaves = index_leaves(&db, 4096);
    for &p in [leaves[3], leaves[leaves.len() - 3]].iter() {
        let at = (p as usize - 1) * 4096 + 4000;
        bytes[at] ^= 0x10;
    }
    std::fs::write(&db, bytes).unwrap();
    let out = dir.path().join("out.db");
    let r = recover_no_sync(&db, &out).unwrap();
    assert_eq!(r.restarted, None);
    assert_eq!(r.rows(), rows as u64);
    let c = Connection::open(&out).unwrap();
    assert_eq!(integrity(&c), "ok");
    for ix in ["sqlite_autoindex_t_1", "t_ba"] {
        let via: i64 = c
            .query_row(
                &format!("SELECT count(*) FROM t INDEXED BY {ix} WHERE a IS NOT NULL"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(via, rows, "{ix}");
    }
    // The runs were unnamed files: nothing beside the output.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["in.db", "out.db"]);
}

#[test]
fn an_intact_index_of_a_damaged_table_is_copied_without_the_lost_rows() {
    for (page_size, enc) in LAYOUTS {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("in.db");
        let rows = make(&db, page_size, enc);
        // A leaf of t zeroed: its rows are a hole in the tree, while every
        // index still lists them.
        let leaves: Vec<u32> = {
            let c = Connection::open(&db).unwrap();
            let mut st = c
                .prepare("SELECT pageno FROM dbstat WHERE name = 't' AND pagetype = 'leaf'")
                .unwrap();
            st.query_map([], |r| r.get(0))
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        let what = format!("{page_size} {enc}");
        assert!(leaves.len() >= 2, "{what}: {} leaves", leaves.len());
        let p = leaves[leaves.len() / 2] as usize;
        let ps = page_size as usize;
        let mut bytes = std::fs::read(&db).unwrap();
        bytes[(p - 1) * ps..p * ps].fill(0);
        std::fs::write(&db, &bytes).unwrap();
        let out = dir.path().join("out.db");
        let r = recover_no_sync(&db, &out).unwrap();
        assert_eq!(r.restarted, None, "{what}");
        let t = r.tables.iter().find(|t| t.name == "t").unwrap();
        let kept = t.by_source.values().sum::<u64>() as i64;
        assert!(kept < rows && kept > 0, "{what}: {kept} of {rows}");
        // Every index agrees with the rows that came back, no more, no less.
        check_output(&out, kept, &what);
    }
}
