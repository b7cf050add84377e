//! Rows of a readable tree that break SQLite's rules for their table (a
//! NULL in a NOT NULL column, a number in a TEXT column, numeric text in an
//! INTEGER column, a CHECK constraint, a STRICT table's types): a file
//! written by other software, or a schema edited after the rows were
//! written. SQLite's own `quick_check` of the input finds them; the output
//! must pass SQLite's `integrity_check` with every row kept (in its table,
//! as SQLite would store it, or in lost_and_found when SQLite refuses it),
//! the others written as they are. CHECK constraints are not enforced on
//! recovered rows (the README says so): those rows stay in their table. Generated at every page
//! size and encoding of [`LAYOUTS`], with SQLite's reading of the input as
//! the oracle.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};
use sqlite_salvage::recover::{RecoverOptions, Report, recover};

use crate::common::*;

const ROWS: i64 = 400;

/// What table `c` becomes once its rows are in.
#[derive(Clone, Copy, PartialEq)]
enum Then {
    /// As it was: every row meets its rules.
    Plain,
    /// `CHECK(v >= 0)`, which every eighth row breaks.
    Check,
    /// STRICT, with every eighth row's `v` a text.
    Strict,
}

/// A table whose columns had no type and no NOT NULL when its rows went
/// in, then a schema that gives them both, and table `c` as `then` says:
/// `sqlite_schema` rewritten as other software might leave it.
fn store(dir: &Path, (page_size, enc): (u32, &str), then: Then) -> PathBuf {
    let db = dir.join("in").join("memory.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let c = Connection::open(&db).unwrap();
    c.execute_batch(&format!(
        "PRAGMA page_size={page_size}; PRAGMA encoding='{enc}';
         CREATE TABLE t(id INTEGER PRIMARY KEY, name, n, note, pad);
         CREATE INDEX t_name ON t(name);
         CREATE TABLE c(id INTEGER PRIMARY KEY, v, pad TEXT);
         BEGIN;"
    ))
    .unwrap();
    for i in 1..=ROWS {
        let name = (i % 10 != 0).then(|| format!("name{i}"));
        let n: rusqlite::types::Value = if i % 7 == 0 {
            "12".to_string().into()
        } else {
            i.into()
        };
        let note: rusqlite::types::Value = if i % 9 == 0 {
            i.into()
        } else {
            format!("note {i}").into()
        };
        c.execute(
            "INSERT INTO t VALUES(?1, ?2, ?3, ?4, ?5)",
            params![i, name, n, note, "x".repeat(40)],
        )
        .unwrap();
        let v: rusqlite::types::Value = match (i % 8, then) {
            (0, Then::Strict) => format!("v{i}").into(),
            (0, _) => (-i).into(),
            _ => i.into(),
        };
        c.execute(
            "INSERT INTO c VALUES(?1, ?2, ?3)",
            params![i, v, "y".repeat(40)],
        )
        .unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
    let c_sql = match then {
        Then::Plain => "CREATE TABLE c(id INTEGER PRIMARY KEY, v INTEGER, pad TEXT)",
        Then::Check => "CREATE TABLE c(id INTEGER PRIMARY KEY, v INTEGER CHECK(v >= 0), pad TEXT)",
        Then::Strict => "CREATE TABLE c(id INTEGER PRIMARY KEY, v INTEGER, pad TEXT) STRICT",
    };
    let version: i64 = c
        .query_row("PRAGMA schema_version", [], |r| r.get(0))
        .unwrap();
    c.execute_batch("PRAGMA writable_schema=ON").unwrap();
    c.execute(
        "UPDATE sqlite_schema SET sql = ?1 WHERE name = 't'",
        ["CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER, note TEXT, pad)"],
    )
    .unwrap();
    c.execute(
        "UPDATE sqlite_schema SET sql = ?1 WHERE name = 'c'",
        [c_sql],
    )
    .unwrap();
    c.execute_batch(&format!(
        "PRAGMA schema_version={}; PRAGMA writable_schema=OFF;",
        version + 1
    ))
    .unwrap();
    drop(c);
    db
}

/// Recovers `db`: inputs unchanged, output sound by SQLite's
/// `integrity_check` (with CHECK constraints ignored, as the recovery
/// ignores them), report adding up.
fn recovered(db: &Path) -> (Report, Connection) {
    let out = db.parent().unwrap().with_file_name("recovered.db");
    let before = dir_hashes(db.parent().unwrap());
    let opts = RecoverOptions {
        no_sync: true,
        force: true,
        ..Default::default()
    };
    let report = recover(db, &out, &opts).unwrap();
    assert_eq!(dir_hashes(db.parent().unwrap()), before, "inputs changed");
    let conn = Connection::open(&out).unwrap();
    conn.execute_batch("PRAGMA ignore_check_constraints=ON")
        .unwrap();
    assert_eq!(integrity(&conn), "ok");
    assert_report_adds_up(&report, &out, "rules");
    (report, conn)
}

fn count(c: &Connection, q: &str) -> i64 {
    c.query_row(q, [], |r| r.get(0)).unwrap()
}

#[test]
fn rows_that_break_not_null_and_column_types_go_in_one_by_one() {
    for layout in LAYOUTS {
        let what = format!("{}/{}", layout.0, layout.1);
        let tmp = tempfile::tempdir().unwrap();
        let db = store(tmp.path(), layout, Then::Check);
        let input = Connection::open(&db).unwrap();
        let verdict: String = input
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .unwrap();
        assert_ne!(verdict, "ok", "{what}: the generator broke no rule");
        drop(input);
        let (report, out) = recovered(&db);
        // Only the rows that break a rule left the page-by-page load.
        assert_eq!(report.restarted, None, "{what}");
        assert_eq!(count(&out, "SELECT count(*) FROM t"), ROWS, "{what}");
        assert_eq!(count(&out, "SELECT count(*) FROM c"), ROWS, "{what}");
        let t = report.tables.iter().find(|t| t.name == "t").unwrap();
        // Each NULL name stood in for, and counted.
        assert_eq!(t.stand_ins, (ROWS / 10) as u64, "{what}");
        assert_eq!(count(&out, "SELECT count(*) FROM t WHERE name IS NULL"), 0);
        let q = "SELECT count(*) FROM t WHERE id % 10 != 0 AND name = 'name' || id";
        assert_eq!(count(&out, q), ROWS - ROWS / 10, "{what}");
        // As SQLite's affinity stores them.
        let q = "SELECT count(*) FROM t WHERE id % 7 = 0 AND typeof(n) = 'integer' AND n = 12";
        assert_eq!(count(&out, q), ROWS / 7, "{what}");
        let q = "SELECT count(*) FROM t WHERE id % 7 != 0 AND n = id";
        assert_eq!(count(&out, q), ROWS - ROWS / 7, "{what}");
        let q = "SELECT count(*) FROM t WHERE id % 9 = 0 AND typeof(note) = 'text' AND note = CAST(id AS TEXT)";
        assert_eq!(count(&out, q), ROWS / 9, "{what}");
        let q = "SELECT count(*) FROM t WHERE id % 9 != 0 AND note = 'note ' || id";
        assert_eq!(count(&out, q), ROWS - ROWS / 9, "{what}");
        // CHECK constraints are not enforced: those rows stay.
        let q = "SELECT count(*) FROM c WHERE v = CASE WHEN id % 8 = 0 THEN -id ELSE id END";
        assert_eq!(count(&out, q), ROWS, "{what}");
    }
}

#[test]
fn a_strict_table_is_judged_by_sqlite() {
    for layout in LAYOUTS {
        let what = format!("{}/{}", layout.0, layout.1);
        let tmp = tempfile::tempdir().unwrap();
        let db = store(tmp.path(), layout, Then::Strict);
        let (report, out) = recovered(&db);
        // SQLite's check of the STRICT table refuses the load; row by row,
        // SQLite refuses the rows whose types break it: they are kept in
        // lost_and_found, the others in their table.
        let why = report.restarted.clone().unwrap_or_default();
        assert!(why.contains("non-INTEGER value in c.v"), "{what}: {why:?}");
        assert_eq!(count(&out, "SELECT count(*) FROM c"), ROWS - ROWS / 8);
        assert_eq!(report.lost_and_found, (ROWS / 8) as u64, "{what}");
        let c = report.tables.iter().find(|t| t.name == "c").unwrap();
        assert_eq!(c.wrong_type, (ROWS / 8) as u64, "{what}");
        let q = "SELECT count(*) FROM c WHERE typeof(v) = 'integer' AND v = id";
        assert_eq!(count(&out, q), ROWS - ROWS / 8, "{what}");
        assert_eq!(count(&out, "SELECT count(*) FROM t"), ROWS, "{what}");
    }
}

#[test]
fn rows_that_meet_the_rules_are_all_written_page_by_page() {
    for layout in LAYOUTS {
        let what = format!("{}/{}", layout.0, layout.1);
        let tmp = tempfile::tempdir().unwrap();
        let db = store(tmp.path(), layout, Then::Plain);
        let (report, out) = recovered(&db);
        assert_eq!(report.restarted, None, "{what}");
        let c = report.tables.iter().find(|t| t.name == "c").unwrap();
        assert_eq!(c.stand_ins, 0, "{what}");
        let q = "SELECT count(*) FROM c WHERE v = CASE WHEN id % 8 = 0 THEN -id ELSE id END";
        assert_eq!(count(&out, q), ROWS, "{what}");
    }
}
