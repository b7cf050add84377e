//! Orphaned leaves that fit two tables alike (one shape, both trees lost
//! at the root, so that each one's holes hold every rowid): the tables'
//! own indexes in the input tell whose each leaf is, by its rows' keys and
//! rowids. The generator's database is the oracle, at page sizes 512,
//! 1024, 4096 and 65536 in UTF-8 and UTF-16.

use std::collections::HashSet;

use rusqlite::{Connection, params};
use sqlite_salvage::recover::{Evidence, RecoverOptions, recover};

use crate::common::*;

const LAYOUTS: [(u32, &str); 8] = [
    (512, "UTF-8"),
    (512, "UTF-16le"),
    (1024, "UTF-8"),
    (1024, "UTF-16be"),
    (4096, "UTF-8"),
    (4096, "UTF-16le"),
    (65536, "UTF-8"),
    (65536, "UTF-16be"),
];

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
        let opts = RecoverOptions {
            no_sync: true,
            ..Default::default()
        };
        let before = dir_hashes(&dir);
        let report = recover(&db, &out, &opts).unwrap();
        assert_eq!(dir_hashes(&dir), before, "{what}: inputs changed");
        let conn = Connection::open(&out).unwrap();
        assert_eq!(integrity(&conn), "ok", "{what}");
        assert_report_adds_up(&report, &out, &what);
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
