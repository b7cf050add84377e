//! Orphaned leaves that fit two tables alike (one shape, both trees lost
//! at the root, so that each one's holes hold every rowid): the tables'
//! own indexes in the input tell whose each leaf is, by its rows' keys and
//! rowids. The generator's database is the oracle, at page sizes 512,
//! 1024, 4096 and 65536 in UTF-8 and UTF-16.

use std::collections::HashSet;

use rusqlite::{Connection, params};
use sqlite_salvage::recover::{Evidence, RecoverOptions, recover};

use crate::common::*;

#[test]
fn orphaned_leaves_of_two_tables_of_one_shape_go_where_their_indexes_list_them() {
    for (ps, enc) in LAYOUTS {
        let what = format!("{ps} {enc}");
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("in");
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("memory.db");
        let c = Connection::open(&db).unwrap();
        c.execute_batch(&format!(
            "PRAGMA page_size={ps}; PRAGMA encoding='{enc}';
             CREATE TABLE a(id INTEGER PRIMARY KEY, name TEXT, v INTEGER);
             CREATE TABLE b(id INTEGER PRIMARY KEY, name TEXT, v INTEGER);
             CREATE INDEX a_name ON a(name);
             CREATE INDEX b_v ON b(v, name);
             BEGIN;"
        ))
        .unwrap();
        let rows = i64::from(ps) / 2;
        for i in 1..=rows {
            let text = |t: &str| format!("{t}-{i:06}-{}", "x".repeat((i % 7) as usize));
            c.execute("INSERT INTO a VALUES(?1, ?2, ?1)", params![i, text("a")])
                .unwrap();
            c.execute(
                "INSERT INTO b VALUES(?1, ?2, ?1 * 3)",
                params![i, text("b")],
            )
            .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
        let root = |t: &str| -> u32 {
            c.query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
                [t],
                |r| r.get(0),
            )
            .unwrap()
        };
        let roots = [root("a"), root("b")];
        drop(c);
        let want = keys(&sqlite_state(&Connection::open(&db).unwrap()));
        let mut bytes = std::fs::read(&db).unwrap();
        for r in roots {
            let at = (r as usize - 1) * ps as usize;
            bytes[at..at + ps as usize].fill(0);
        }
        std::fs::write(&db, bytes).unwrap();
        let out = tmp.path().join("recovered.db");
        let (report, conn) = recover_checked(&db, &out, &dir, &what);
        let got: HashSet<String> = keys(&sqlite_state(&conn));
        // Every row: the roots are interior pages (no row on them).
        let missing: Vec<&String> = want.difference(&got).take(3).collect();
        let extra: Vec<&String> = got.difference(&want).take(3).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{what}: {} missing, e.g. {missing:?}; rows never committed: {extra:?}",
            want.difference(&got).count()
        );
        assert_eq!(report.lost_and_found, 0, "{what}");
        for t in &report.tables {
            let by_index = t.by_evidence.get(&Evidence::IndexEntry).copied();
            let rows: u64 = t.by_source.values().sum();
            assert!(
                rows == 0 || by_index.is_some_and(|n| n > 0),
                "{what}: {t:?}"
            );
        }
    }
}

#[test]
fn orphaned_rows_whose_chains_broke_name_their_lost_values() {
    for (ps, enc) in LAYOUTS {
        let what = format!("{ps} {enc}");
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("in");
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("memory.db");
        let c = Connection::open(&db).unwrap();
        c.execute_batch(&format!(
            "PRAGMA page_size={ps}; PRAGMA encoding='{enc}';
             CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, data BLOB, tail TEXT);
             BEGIN;"
        ))
        .unwrap();
        for i in 1..=120i64 {
            let data = vec![(i % 256) as u8; 3 * ps as usize + i as usize];
            c.execute(
                "INSERT INTO t VALUES(?1, ?2, ?3, ?4)",
                params![i, format!("n{i}"), data, format!("tail{i}")],
            )
            .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
        let pages = |kind: &str| -> Vec<u32> {
            let mut st = c
                .prepare("SELECT pageno FROM dbstat WHERE name = 't' AND pagetype = ?1")
                .unwrap();
            st.query_map([kind], |r| r.get(0))
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        let (internal, overflow) = (pages("internal"), pages("overflow"));
        drop(c);
        assert!(!internal.is_empty(), "{what}: t's tree has one level");
        // Every interior page and every fifth overflow page zeroed: every
        // leaf an orphan, some of its rows' chains broken.
        let mut b = std::fs::read(&db).unwrap();
        for p in internal
            .iter()
            .chain(overflow.iter().filter(|p| *p % 5 == 0))
        {
            let at = (*p as usize - 1) * ps as usize;
            b[at..at + ps as usize].fill(0);
        }
        std::fs::write(&db, b).unwrap();
        let out = tmp.path().join("recovered.db");
        let opts = RecoverOptions {
            no_sync: true,
            ..Default::default()
        };
        let report = recover(&db, &out, &opts).unwrap();
        assert_report_adds_up(&report, &out, &what);
        let t = report.tables.iter().find(|r| r.name == "t").unwrap();
        assert_eq!(report.lost_and_found, 0, "{what}");
        assert!(t.partial > 0, "{what}: no row read in part: {t:?}");
        let orphans = t.by_source.get(&sqlite_salvage::recover::Source::Orphan);
        assert_eq!(orphans.copied().unwrap_or(0), 120, "{what}: {t:?}");
        // Each partial row names its lost values in the flags table: data,
        // whose chain broke or read as zeros, and tail, whose bytes follow.
        let conn = Connection::open(&out).unwrap();
        let flags = report.flags_table.clone().expect("a flags table");
        let named = |col: &str| -> u64 {
            let q = format!("SELECT count(DISTINCT row) FROM {flags} WHERE tbl = 't' AND col = ?1");
            conn.query_row(&q, [col], |r| r.get::<_, i64>(0)).unwrap() as u64
        };
        assert_eq!(named("data"), t.partial, "{what}");
        assert_eq!(named("tail"), t.partial, "{what}");
        assert_eq!(named("name"), 0, "{what}");
    }
}
