//! `recover` and the readers on damage classes where rows were lost or
//! misread before, each generated at page sizes 512, 1024, 4096 and 65536
//! in UTF-8 and UTF-16, with the generator's database (read by SQLite
//! before the damage) as the oracle: every row whose bytes survive comes
//! back in its table, and no row comes back that was never there.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};
use sqlite_salvage::recover::{Evidence, Outcome, RecoverOptions, Report, recover};

use crate::common::*;

const LAYOUTS: [(u32, &str); 8] = [
    (512, "UTF-8"),
    (512, "UTF-16le"),
    (1024, "UTF-8"),
    (1024, "UTF-16be"),
    (4096, "UTF-8"),
    (4096, "UTF-16le"),
    (65536, "UTF-8"),
    (65536, "UTF-16le"),
];

/// A rowid table with a UNIQUE text column and an index, a WITHOUT ROWID
/// table whose rows are shaped like that UNIQUE index's entries (text,
/// then an integer), and a log with NULLs, in rollback-journal mode.
fn store(dir: &Path, page_size: u32, encoding: &str, rows: i64) -> PathBuf {
    let db = input_dir(dir).join("memory.db");
    let c = Connection::open(&db).unwrap();
    c.execute_batch(&format!(
        "PRAGMA page_size={page_size}; PRAGMA encoding='{encoding}';
         CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT, tag TEXT UNIQUE);
         CREATE INDEX notes_title ON notes(title);
         CREATE TABLE kv(k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID;
         CREATE TABLE log(ts INTEGER, msg TEXT);
         BEGIN;"
    ))
    .unwrap();
    for i in 1..=rows {
        c.execute(
            "INSERT INTO notes VALUES(?1, ?2, ?3, ?4)",
            params![
                i,
                format!("title {i}"),
                "body ".repeat(1 + (i % 9) as usize),
                format!("tag{i:05}")
            ],
        )
        .unwrap();
        c.execute(
            "INSERT INTO kv VALUES(?1, ?2)",
            params![format!("key{i:05}"), i],
        )
        .unwrap();
        // A marker in ts: 0x7abc0000 + i, stored in 4 bytes, then a NULL.
        let msg: Option<String> = (i % 2 == 0).then(|| format!("m{i}"));
        c.execute(
            "INSERT INTO log VALUES(?1, ?2)",
            params![0x7abc_0000 + i, msg],
        )
        .unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
    db
}

/// `dir/in`, made: the inputs' own directory (outputs go beside it).
fn input_dir(dir: &Path) -> PathBuf {
    let d = dir.join("in");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `dir/name`, made.
fn sub(dir: &Path, name: &str) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A new database `dir/in/memory.db` of this page size and encoding,
/// made by `sql`, with a transaction open for the rows to come.
fn fresh(dir: &Path, page_size: u32, encoding: &str, sql: &str) -> (PathBuf, Connection) {
    let db = input_dir(dir).join("memory.db");
    let c = Connection::open(&db).unwrap();
    c.execute_batch(&format!(
        "PRAGMA page_size={page_size}; PRAGMA encoding='{encoding}'; {sql} BEGIN;"
    ))
    .unwrap();
    (db, c)
}

/// Every row of every user table, as `keys` names them.
fn truth(db: &Path) -> HashSet<String> {
    let tmp = tempfile::tempdir().unwrap();
    let copy = copy_set(db, tmp.path(), "t.db");
    keys(&sqlite_state(&Connection::open(&copy).unwrap()))
}

/// Recovers `db` (inputs unchanged, output sound) into the rows it gives.
fn recovered(db: &Path, schema_sql: Option<&str>) -> (Report, HashSet<String>) {
    let before = dir_hashes(db.parent().unwrap());
    let out = db.parent().unwrap().with_file_name("recovered.db");
    let opts = RecoverOptions {
        schema_sql: schema_sql.map(String::from),
        no_sync: true,
        force: true,
        ..Default::default()
    };
    let report = recover(db, &out, &opts).unwrap();
    assert_eq!(dir_hashes(db.parent().unwrap()), before, "inputs changed");
    let conn = Connection::open(&out).unwrap();
    assert_eq!(integrity(&conn), "ok");
    assert_report_adds_up(&report, &out, &db.display().to_string());
    (report, keys(&sqlite_state(&conn)))
}

/// Asserts that `got` holds exactly the rows of `want`, naming a few of
/// those missing and those that should not be there.
fn assert_rows(got: &HashSet<String>, want: &HashSet<String>, what: &str) {
    let missing: Vec<&String> = want.difference(got).take(3).collect();
    let extra: Vec<&String> = got.difference(want).take(3).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} rows missing, e.g. {missing:?}; {} not in the original, e.g. {extra:?}",
        want.difference(got).count(),
        got.difference(want).count()
    );
}

fn rows_of(report: &Report, table: &str) -> u64 {
    report
        .tables
        .iter()
        .filter(|t| t.name == table)
        .map(|t| t.by_source.values().sum::<u64>())
        .sum()
}

#[test]
fn a_destroyed_header_leaves_page_1s_schema_readable() {
    for (ps, enc) in LAYOUTS {
        let tmp = tempfile::tempdir().unwrap();
        let db = store(tmp.path(), ps, enc, 300);
        let want = truth(&db);
        let mut b = std::fs::read(&db).unwrap();
        b[..100].fill(0);
        std::fs::write(&db, b).unwrap();
        let (report, got) = recovered(&db, None);
        let what = format!("{ps}/{enc}");
        assert_eq!(report.schema_from, "page 1", "{what}");
        assert_rows(&got, &want, &format!("{what}: every row in its table"));
        assert_eq!(report.lost_and_found, 0, "{what}");
        assert!(report.inferred_tables.is_empty(), "{what}");
    }
}

/// Rewrites the NULL of every log row with an odd marker to serial type
/// 10 or 11 (both zero bytes long, as NULL): the bytes `03 04 00` + the
/// 4-byte marker become `03 04 0a|0b` + the marker. Returns how many.
fn reserved_serial_types(db: &Path, rows: i64) -> usize {
    let mut b = std::fs::read(db).unwrap();
    let mut n = 0;
    for i in (1..=rows).filter(|i| i % 2 == 1) {
        let marker = (0x7abc_0000u32 + i as u32).to_be_bytes();
        let pat = [3u8, 4, 0, marker[0], marker[1], marker[2], marker[3]];
        if let Some(at) = b.windows(pat.len()).position(|w| w == pat) {
            b[at + 2] = if i % 4 == 1 { 10 } else { 11 };
            n += 1;
        }
    }
    std::fs::write(db, b).unwrap();
    n
}

#[test]
fn reserved_serial_types_read_as_null_everywhere() {
    for (ps, enc) in LAYOUTS {
        let tmp = tempfile::tempdir().unwrap();
        let db = store(tmp.path(), ps, enc, 200);
        let want = truth(&db);
        assert_eq!(reserved_serial_types(&db, 200), 100, "{ps}/{enc}");
        let what = format!("{ps}/{enc}");
        // SQLite reads them as NULL and calls the file sound.
        {
            let copy = copy_set(&db, &sub(tmp.path(), "sqlite"), "s.db");
            let c = Connection::open(&copy).unwrap();
            assert_eq!(integrity(&c), "ok", "{what}");
            assert_rows(&keys(&sqlite_state(&c)), &want, &what);
        }
        assert_rows(&keys(&our_view(&db)), &want, &format!("{what}: our reader"));
        let d = sqlite_salvage::Database::open(&db).unwrap();
        let check = sqlite_salvage::check::check(&d.latest().unwrap()).unwrap();
        assert!(check.is_ok(), "{what}: {:?}", check.damage.first());
        let mut dumped = Vec::new();
        let snap = d.latest().unwrap();
        let opts = sqlite_salvage::dump::DumpOptions {
            format: sqlite_salvage::dump::Format::Jsonl,
            table: Some("log".into()),
        };
        sqlite_salvage::dump::dump(&snap, &snap.schema().unwrap(), &opts, &mut dumped).unwrap();
        assert_eq!(
            dumped
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .count(),
            200
        );
        let (report, got) = recovered(&db, None);
        assert_rows(&got, &want, &what);
        assert_eq!(report.outcome, Outcome::Complete, "{what}");
    }
}

/// Tables whose CREATE statements take several schema pages: table `wK`
/// has K + 2 columns (so that its records' width names it), each CREATE
/// padded with a comment.
fn wide_schema(dir: &Path, page_size: u32, encoding: &str) -> (PathBuf, String) {
    let db = input_dir(dir).join("memory.db");
    let c = Connection::open(&db).unwrap();
    c.execute_batch(&format!(
        "PRAGMA page_size={page_size}; PRAGMA encoding='{encoding}';"
    ))
    .unwrap();
    let pad = "x".repeat(page_size as usize / 6);
    let mut sql = String::new();
    for k in 0..12 {
        let cols: Vec<String> = (0..k + 1).map(|j| format!("c{j} TEXT")).collect();
        sql.push_str(&format!(
            "CREATE TABLE w{k}(id INTEGER PRIMARY KEY /* {pad} */, {});\n",
            cols.join(", ")
        ));
    }
    c.execute_batch(&sql).unwrap();
    c.execute_batch("BEGIN").unwrap();
    for k in 0..12 {
        for i in 1..=40 {
            let vals: Vec<String> = (0..k + 1).map(|j| format!("'w{k} r{i} c{j}'")).collect();
            c.execute_batch(&format!(
                "INSERT INTO w{k} VALUES({i}, {})",
                vals.join(", ")
            ))
            .unwrap();
        }
    }
    c.execute_batch("COMMIT").unwrap();
    (db, sql)
}

#[test]
fn schema_fills_in_the_tables_a_lost_schema_page_named() {
    for (ps, enc) in LAYOUTS {
        let tmp = tempfile::tempdir().unwrap();
        let (db, sql) = wide_schema(tmp.path(), ps, enc);
        let want = truth(&db);
        let what = format!("{ps}/{enc}");
        // A leaf of sqlite_schema other than page 1.
        let tmp2 = tempfile::tempdir().unwrap();
        let q = Connection::open(copy_set(&db, tmp2.path(), "q.db")).unwrap();
        let leaf: u32 = q
            .query_row(
                "SELECT max(pageno) FROM dbstat WHERE name='sqlite_schema' AND pagetype='leaf'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(leaf > 1, "{what}: the schema spans pages");
        let mut b = std::fs::read(&db).unwrap();
        let at = (leaf as usize - 1) * ps as usize;
        b[at..at + ps as usize].fill(0);
        std::fs::write(&db, b).unwrap();
        let (report, got) = recovered(&db, Some(&sql));
        assert!(
            report.schema_from.contains("--schema"),
            "{what}: {}",
            report.schema_from
        );
        assert_rows(&got, &want, &format!("{what}: every row in its table"));
        assert_eq!(report.lost_and_found, 0, "{what}");
        for k in 0..12 {
            assert_eq!(rows_of(&report, &format!("w{k}")), 40, "{what}: w{k}");
        }
    }
}

#[test]
fn orphaned_index_leaves_and_without_rowid_leaves_of_one_shape_are_told_apart() {
    for (ps, enc) in LAYOUTS {
        let tmp = tempfile::tempdir().unwrap();
        let rows = if ps >= 65536 { 3000 } else { 600 };
        let db = store(tmp.path(), ps, enc, rows);
        let want = truth(&db);
        let what = format!("{ps}/{enc}");
        // Cut the UNIQUE index's tree off at its root, and damage notes'
        // tree too, so that its pages are orphans beside a damaged table.
        let tmp2 = tempfile::tempdir().unwrap();
        let q = Connection::open(copy_set(&db, tmp2.path(), "q.db")).unwrap();
        let root = |name: &str| -> u32 {
            q.query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name=?1",
                [name],
                |r| r.get(0),
            )
            .unwrap()
        };
        let (index_root, kv_root) = (root("sqlite_autoindex_notes_1"), root("kv"));
        let index_pages: u32 = q
            .query_row(
                "SELECT count(*) FROM dbstat WHERE name='sqlite_autoindex_notes_1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let db_before = copy_set(&db, &sub(tmp.path(), "before"), "memory.db");
        let mut b = std::fs::read(&db).unwrap();
        for p in [index_root, kv_root] {
            let at = (p as usize - 1) * ps as usize;
            b[at..at + ps as usize].fill(0);
        }
        std::fs::write(&db, b).unwrap();
        let surviving_kv = locate(&copy_set(&db_before, tmp2.path(), "l.db"))
            .iter()
            .filter(|(k, pages)| k.starts_with("kv|") && !pages.contains(&kv_root))
            .count();
        let (report, got) = recovered(&db, None);
        let invented: Vec<&String> = got.difference(&want).collect();
        assert!(
            invented.is_empty(),
            "{what}: {:?}",
            &invented[..invented.len().min(3)]
        );
        // Nothing read is dropped: kv's rows that survive are in kv, or (where
        // its leaves cannot be told from the index's) in lost_and_found.
        let out = Connection::open(db.parent().unwrap().with_file_name("recovered.db")).unwrap();
        let in_lost: i64 = match &report.lost_and_found_table {
            Some(t) => out
                .query_row(
                    &format!("SELECT count(*) FROM \"{t}\" WHERE c0 LIKE 'key%'"),
                    [],
                    |r| r.get(0),
                )
                .unwrap(),
            None => 0,
        };
        assert_eq!(
            rows_of(&report, "kv") as usize + in_lost as usize,
            surviving_kv,
            "{what}: {index_pages} index pages"
        );
        // notes' rows are all there: they contradict reading kv's leaves as
        // the index's entries (rowid 3 holds tag00003, not key00001), and
        // they confirm the index's own leaves: kv's rows are in kv.
        assert_eq!(in_lost, 0, "{what}");
    }
}

#[test]
fn rows_whose_overflow_chain_broke_keep_their_not_null_columns_with_stand_ins() {
    for (ps, enc) in LAYOUTS {
        let tmp = tempfile::tempdir().unwrap();
        let (db, c) = fresh(
            tmp.path(),
            ps,
            enc,
            "CREATE TABLE t(id INTEGER PRIMARY KEY, big BLOB, n INTEGER NOT NULL, s TEXT NOT NULL DEFAULT 'none', r REAL NOT NULL CHECK (r >= 0));",
        );
        let rows = 30i64;
        for i in 1..=rows {
            let big: Vec<u8> = (0..ps as usize * 3)
                .map(|k| (k as i64 * 7 + i) as u8)
                .collect();
            c.execute(
                "INSERT INTO t VALUES(?1, ?2, ?3, ?4, ?5)",
                params![i, big, i * 10, format!("s{i}"), i as f64 / 2.0],
            )
            .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
        drop(c);
        let what = format!("{ps}/{enc}");
        // Zero the first overflow page of every third row: the chain ends
        // there, and the values after `big` (n, s, r) are lost.
        let tmp2 = tempfile::tempdir().unwrap();
        let q = Connection::open(copy_set(&db, tmp2.path(), "q.db")).unwrap();
        let overflow: Vec<u32> = {
            let mut st = q
                .prepare("SELECT pageno FROM dbstat WHERE name='t' AND pagetype='overflow' ORDER BY pageno")
                .unwrap();
            st.query_map([], |r| r.get(0))
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        let per_row = overflow.len() / rows as usize;
        assert!(per_row >= 2, "{what}: {} overflow pages", overflow.len());
        let mut b = std::fs::read(&db).unwrap();
        let mut broken = 0;
        for row in (0..rows as usize).step_by(3) {
            // Rows are written in order: each row's chain is contiguous.
            let first = overflow[row * per_row];
            let at = (first as usize - 1) * ps as usize;
            b[at..at + ps as usize].fill(0);
            broken += 1;
        }
        std::fs::write(&db, b).unwrap();
        let (report, _) = recovered(&db, None);
        let t = report.tables.iter().find(|t| t.name == "t").unwrap();
        assert_eq!(
            rows_of(&report, "t"),
            rows as u64,
            "{what}: every row kept: {t:?}"
        );
        assert_eq!(t.duplicates_skipped, 0, "{what}");
        assert_eq!(t.stand_ins, broken, "{what}");
        let out = Connection::open(db.parent().unwrap().with_file_name("recovered.db")).unwrap();
        let flags = report.flags_table.clone().expect("a flags table");
        let listed = |what: &str| -> i64 {
            out.query_row(
                &format!("SELECT count(*) FROM \"{flags}\" WHERE tbl='t' AND what LIKE ?1"),
                [what],
                |r| r.get(0),
            )
            .unwrap()
        };
        // n, s and r of every broken row; r stands in as 0.0, s as its DEFAULT.
        assert_eq!(listed("stand-in%"), broken as i64 * 3, "{what}");
        // Each of them also read only in part (the spilled value with them).
        assert!(listed("read only in part%") >= broken as i64 * 3, "{what}");
        let kept: (i64, String, f64) = out
            .query_row("SELECT n, s, r FROM t WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(kept, (0, "none".into(), 0.0), "{what}");
        let intact: (i64, String) = out
            .query_row("SELECT n, s FROM t WHERE id = 2", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(intact, (20, "s2".into()), "{what}");
    }
}

/// `SELECT *` of table `t` of `db`, in rowid order, as text.
fn select_all(db: &Path, t: &str) -> Result<Vec<String>, String> {
    let tmp = tempfile::tempdir().unwrap();
    let c = Connection::open(copy_set(db, tmp.path(), "s.db")).map_err(|e| e.to_string())?;
    let mut st = c
        .prepare(&format!("SELECT * FROM \"{t}\" ORDER BY rowid"))
        .map_err(|e| e.to_string())?;
    let n = st.column_count();
    st.query_map([], |r| {
        Ok((0..n)
            .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
            .collect::<Vec<_>>()
            .join("|"))
    })
    .map_err(|e| e.to_string())?
    .collect::<Result<Vec<_>, _>>()
    .map_err(|e| e.to_string())
}

#[test]
fn virtual_tables_come_back_over_their_shadow_tables() {
    for (ps, enc) in LAYOUTS {
        let tmp = tempfile::tempdir().unwrap();
        let (db, c) = fresh(
            tmp.path(),
            ps,
            enc,
            "CREATE VIRTUAL TABLE docs USING fts5(title, body); CREATE VIRTUAL TABLE old USING fts4(x); CREATE VIRTUAL TABLE boxes USING rtree(id, x0, x1); CREATE TABLE plain(a INTEGER PRIMARY KEY, b TEXT);",
        );
        for i in 0..150 {
            c.execute(
                "INSERT INTO docs VALUES(?1, ?2)",
                params![format!("title {i}"), format!("body {i} hello")],
            )
            .unwrap();
            c.execute("INSERT INTO old VALUES(?1)", params![format!("four {i}")])
                .unwrap();
            c.execute("INSERT INTO boxes VALUES(?1, ?2, ?3)", params![i, i, i + 1])
                .unwrap();
            c.execute(
                "INSERT INTO plain VALUES(?1, ?2)",
                params![i, format!("p{i}")],
            )
            .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
        drop(c);
        let what = format!("{ps}/{enc}");
        let out = db.parent().unwrap().with_file_name("recovered.db");
        let (report, got) = recovered(&db, None);
        assert_rows(&got, &truth(&db), &what);
        assert!(
            report.objects_not_created.is_empty(),
            "{what}: {:?}",
            report.objects_not_created
        );
        for t in ["docs", "old", "boxes"] {
            assert_eq!(select_all(&out, t), select_all(&db, t), "{what}: {t}");
        }
        let c = Connection::open(&out).unwrap();
        let hits: i64 = c
            .query_row(
                "SELECT count(*) FROM docs WHERE docs MATCH 'hello'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(hits, 150, "{what}");
        drop(c);
        // A virtual table SQLite refuses (its module unknown, a shadow
        // table renamed) is listed and left out; the rest comes back.
        let c = Connection::open(&db).unwrap();
        c.execute_batch(
            "PRAGMA writable_schema=ON;
             UPDATE sqlite_schema SET sql = 'CREATE VIRTUAL TABLE old USING nomodule(x)' WHERE name = 'old';
             UPDATE sqlite_schema SET name = 'docs_dutu', tbl_name = 'docs_dutu',
                 sql = replace(sql, 'docs_data', 'docs_dutu') WHERE name = 'docs_data';
             PRAGMA writable_schema=OFF;",
        )
        .unwrap();
        drop(c);
        let (report, _) = recovered(&db, None);
        let refused: Vec<&str> = report
            .objects_not_created
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert!(
            refused.contains(&"old") && refused.contains(&"docs"),
            "{what}: {refused:?}"
        );
        assert_eq!(
            select_all(&out, "boxes"),
            select_all(&db, "boxes"),
            "{what}"
        );
        assert_eq!(rows_of(&report, "plain"), 150, "{what}");
        assert_eq!(integrity(&Connection::open(&out).unwrap()), "ok", "{what}");
    }
}

/// The text `s` as `encoding` stores it.
fn encoded(s: &str, encoding: &str) -> Vec<u8> {
    match encoding {
        "UTF-8" => s.as_bytes().to_vec(),
        "UTF-16le" => s.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        _ => s.encode_utf16().flat_map(u16::to_be_bytes).collect(),
    }
}

/// `dir/in/memory.db` with `t(id INTEGER PRIMARY KEY, <second>, <third>)`
/// (the column definitions given) and rows 1 to `rows` of two texts each.
fn text_table(
    dir: &Path,
    (ps, enc): (u32, &str),
    columns: &str,
    rows: i64,
    texts: impl Fn(i64) -> (String, String),
) -> PathBuf {
    let sql = format!("CREATE TABLE t(id INTEGER PRIMARY KEY, {columns});");
    let (db, c) = fresh(dir, ps, enc, &sql);
    for i in 1..=rows {
        let (x, y) = texts(i);
        c.execute("INSERT INTO t VALUES(?1, ?2, ?3)", params![i, x, y])
            .unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
    db
}

/// A `text_table` of `a TEXT NOT NULL, b TEXT` holding ("alpha<i>",
/// "beta<i>"), whose records [`record_copies`] finds.
fn alpha_beta(dir: &Path, layout: (u32, &str), rows: i64) -> PathBuf {
    text_table(dir, layout, "a TEXT NOT NULL, b TEXT", rows, |i| {
        (format!("alpha{i:04}"), format!("beta{i:04}"))
    })
}

/// Where the record of row `i` of a `text_table` of ("alpha<i>",
/// "beta<i>") starts, in every copy (a balance can leave an old one in
/// free space): its header is 04 00 <a's type> <b's type>.
fn record_copies(b: &[u8], enc: &str, i: i64, what: &str) -> Vec<usize> {
    let a = encoded(&format!("alpha{i:04}"), enc);
    let bl = encoded(&format!("beta{i:04}"), enc).len();
    let mut pat = vec![4u8, 0, 13 + 2 * a.len() as u8, 13 + 2 * bl as u8];
    pat.extend_from_slice(&a);
    let copies: Vec<usize> = b
        .windows(pat.len())
        .enumerate()
        .filter(|(_, w)| *w == pat.as_slice())
        .map(|(at, _)| at)
        .collect();
    assert!(!copies.is_empty(), "{what}: row {i}");
    copies
}

#[test]
fn a_record_whose_values_run_past_its_cell_keeps_its_leading_values() {
    for (ps, enc) in LAYOUTS {
        let tmp = tempfile::tempdir().unwrap();
        let rows = 200;
        let db = alpha_beta(tmp.path(), (ps, enc), rows);
        let want = truth(&db);
        let what = format!("{ps}/{enc}");
        // Every tenth record: b's serial type claims 20 bytes more than
        // the cell holds (header 04 00 <a> <b>, then a's bytes).
        let mut b = std::fs::read(&db).unwrap();
        let mut damaged = 0;
        for i in (1..=rows).step_by(10) {
            for at in record_copies(&b, enc, i, &what) {
                b[at + 3] += 40;
            }
            damaged += 1;
        }
        std::fs::write(&db, b).unwrap();
        let (report, got) = recovered(&db, None);
        // b is the record's last value: what the cell holds of it is all
        // of it, so every row comes back whole, and the damaged ones flagged
        // (b of each listed in the output's flags table).
        let (flags, got): (HashSet<String>, HashSet<String>) = got
            .into_iter()
            .partition(|k| k.starts_with("salvage_flags|"));
        assert_rows(&got, &want, &what);
        assert_eq!(flags.len() as u64, damaged, "{what}");
        assert!(flags.iter().all(|f| f.contains("Text(\"b\")")), "{what}");
        let t = report.tables.iter().find(|t| t.name == "t").unwrap();
        assert_eq!(t.cells_lost, 0, "{what}");
        assert_eq!(t.partial, damaged, "{what}: {t:?}");
        let flagged = report
            .flagged
            .iter()
            .filter(|f| f.flag.starts_with("record damaged"))
            .count();
        assert_eq!(flagged as u64, damaged, "{what}");
        assert_eq!(report.outcome, Outcome::Partial, "{what}");
    }
}

#[test]
fn a_record_whose_header_is_damaged_keeps_its_row() {
    for (ps, enc) in LAYOUTS {
        let tmp = tempfile::tempdir().unwrap();
        let rows = 200;
        let db = alpha_beta(tmp.path(), (ps, enc), rows);
        let want = truth(&db);
        let what = format!("{ps}/{enc}");
        // Rows 1, 11, ...: the header's length byte says 127 (past the
        // cell); its serial types still describe its values exactly.
        // Rows 5, 15, ...: the same, and a's serial type claims one byte
        // more: no header length fits, the values cannot be placed.
        let mut b = std::fs::read(&db).unwrap();
        let (mut refit, mut lost) = (HashSet::new(), HashSet::new());
        for i in (1..=rows).filter(|i| i % 10 == 1 || i % 10 == 5) {
            for at in record_copies(&b, enc, i, &what) {
                b[at] = 0x7f;
                if i % 10 == 5 {
                    b[at + 2] += 2;
                }
            }
            if i % 10 == 1 {
                refit.insert(i);
            } else {
                lost.insert(i);
            }
        }
        std::fs::write(&db, b).unwrap();
        let (report, got) = recovered(&db, None);
        let t = report.tables.iter().find(|t| t.name == "t").unwrap();
        assert_eq!(t.cells_lost, 0, "{what}");
        assert_eq!(rows_of(&report, "t"), rows as u64, "{what}: every row kept");
        assert_eq!(report.outcome, Outcome::Partial, "{what}");
        let flagged = |start: &str| {
            report
                .flagged
                .iter()
                .filter(|f| f.flag.starts_with(start))
                .count()
        };
        assert_eq!(
            flagged("record damaged: its header's length was wrong"),
            refit.len(),
            "{what}"
        );
        assert_eq!(
            flagged("record damaged: its header cannot be read"),
            lost.len(),
            "{what}"
        );
        // Every row but the unreadable ones exactly as it was (the refit
        // ones included); those by their rowid, a stood in, b NULL.
        let lost_keys: HashSet<String> = want
            .iter()
            .filter(|k| lost.iter().any(|i| k.contains(&format!("alpha{i:04}"))))
            .cloned()
            .collect();
        assert_eq!(lost_keys.len(), lost.len(), "{what}");
        let exact: HashSet<String> = got.intersection(&want).cloned().collect();
        assert_rows(
            &exact,
            &want.difference(&lost_keys).cloned().collect(),
            &what,
        );
        let out = db.parent().unwrap().with_file_name("recovered.db");
        let c = Connection::open(&out).unwrap();
        for &i in &lost {
            let (a, b): (String, Option<String>) = c
                .query_row("SELECT a, b FROM t WHERE id = ?1", [i], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap_or_else(|e| panic!("{what}: row {i}: {e}"));
            assert_eq!((a.as_str(), b), ("", None), "{what}: row {i}");
        }
        let n: i64 = c
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, rows, "{what}");
        // The output lists each lost value: a and b of each such row (a
        // also as stood in for NOT NULL), never the rowid alias.
        let flags: Vec<(i64, String)> = c
            .prepare(
                "SELECT row, col FROM salvage_flags WHERE what LIKE 'lost:%' ORDER BY row, col",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let mut want_flags: Vec<(i64, String)> = lost
            .iter()
            .flat_map(|&i| [(i, "a".to_string()), (i, "b".to_string())])
            .collect();
        want_flags.sort();
        assert_eq!(flags, want_flags, "{what}");
    }
}

#[test]
fn an_orphaned_record_whose_header_length_is_wrong_is_refit() {
    for (ps, enc) in LAYOUTS {
        let tmp = tempfile::tempdir().unwrap();
        let rows = i64::from(ps) / 8;
        let db = alpha_beta(tmp.path(), (ps, enc), rows);
        let want = truth(&db);
        let what = format!("{ps}/{enc}");
        let c = Connection::open(&db).unwrap();
        let root: u32 = c
            .query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = 't'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        drop(c);
        let mut b = std::fs::read(&db).unwrap();
        let at = (root as usize - 1) * ps as usize;
        assert_eq!(b[at], 5, "{what}: the root is an interior page");
        // The root zeroed: every leaf is orphaned. Every tenth record's
        // header length says 127.
        b[at..at + ps as usize].fill(0);
        let mut refit = 0;
        for i in (1..=rows).step_by(10) {
            for at in record_copies(&b, enc, i, &what) {
                b[at] = 0x7f;
            }
            refit += 1;
        }
        std::fs::write(&db, b).unwrap();
        let (report, got) = recovered(&db, None);
        assert_rows(&got, &want, &what);
        let flagged = report
            .flagged
            .iter()
            .filter(|f| f.flag.contains("header's length was wrong"))
            .count();
        assert_eq!(flagged, refit, "{what}");
    }
}

/// The pages of table `t`'s tree by kind ("leaf", "internal",
/// "overflow"), from SQLite's dbstat.
fn dbstat_pages(db: &Path, kind: &str) -> HashSet<u32> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT pageno FROM dbstat WHERE name = 't' AND pagetype = ?1")
        .unwrap();
    st.query_map([kind], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn long_overflow_chains_under_zeroed_pages_keep_their_rows_and_name_their_pages() {
    for (ps, enc) in LAYOUTS {
        let tmp = tempfile::tempdir().unwrap();
        let sql = "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, data BLOB, tail TEXT NOT NULL);";
        let (db, c) = fresh(tmp.path(), ps, enc, sql);
        let rows = 120i64;
        for i in 1..=rows {
            // A run of one byte value: carving its overflow pages must not
            // find records in it (0x0b is a reserved serial type).
            let data = vec![(i % 256) as u8; 3 * ps as usize + i as usize];
            c.execute(
                "INSERT INTO t VALUES(?1, ?2, ?3, ?4)",
                params![i, format!("n{i}"), data, format!("tail{i}")],
            )
            .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
        drop(c);
        let what = format!("{ps}/{enc}");
        let located = locate(&db);
        let leaves = dbstat_pages(&db, "leaf");
        let overflow = dbstat_pages(&db, "overflow");
        // Every seventh overflow page and every fifth leaf zeroed.
        let mut zeroed: HashSet<u32> = overflow.iter().copied().filter(|p| p % 7 == 0).collect();
        zeroed.extend(leaves.iter().copied().filter(|p| p % 5 == 0));
        let mut b = std::fs::read(&db).unwrap();
        for &p in &zeroed {
            let at = (p as usize - 1) * ps as usize;
            b[at..at + ps as usize].fill(0);
        }
        std::fs::write(&db, b).unwrap();
        let (report, got) = recovered(&db, None);
        // Nothing but rows of t, and no row invented.
        assert_eq!(report.lost_and_found, 0, "{what}");
        let ids: HashSet<i64> = got
            .iter()
            .filter_map(|k| k.strip_prefix("t|(Some("))
            .filter_map(|k| k.split(')').next()?.parse().ok())
            .collect();
        assert!(ids.iter().all(|i| (1..=rows).contains(i)), "{what}");
        // Unreadable means destroyed; the overflow pages of lost cells or
        // broken chains are named as such, and are overflow pages.
        assert!(
            report.unreadable_pages.iter().all(|p| zeroed.contains(p)),
            "{what}: {:?} unreadable, zeroed {zeroed:?}",
            report.unreadable_pages
        );
        assert!(!report.loose_overflow_pages.is_empty(), "{what}");
        assert!(
            report
                .loose_overflow_pages
                .iter()
                .all(|p| overflow.contains(p) && !zeroed.contains(p)),
            "{what}"
        );
        let kept = rows_of(&report, "t");
        assert_eq!(kept as usize, ids.len(), "{what}");
        // A row is lost only with its leaf (whole, or with the values its
        // broken chain still gives).
        let id_of = |k: &str| -> Option<i64> {
            k.strip_prefix("t|(Some(")?.split(')').next()?.parse().ok()
        };
        for (k, pages) in &located {
            let (Some(id), Some(leaf)) = (id_of(k), pages.last()) else {
                continue;
            };
            assert!(
                zeroed.contains(leaf) || ids.contains(&id),
                "{what}: row {id} lost, its leaf {leaf} intact"
            );
        }
        assert!(ids.len() < rows as usize, "{what}: some leaf was zeroed");
    }
}

#[test]
fn a_without_rowid_leaf_out_of_key_order_is_loaded_row_by_row_whole() {
    for (ps, enc) in LAYOUTS {
        let tmp = tempfile::tempdir().unwrap();
        let sql = "CREATE TABLE kv(k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID;";
        let (db, c) = fresh(tmp.path(), ps, enc, sql);
        for i in 1..=300 {
            c.execute(
                "INSERT INTO kv VALUES(?1, ?2)",
                params![format!("key{i:05}"), i],
            )
            .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
        let leaves: Vec<u32> = c
            .prepare("SELECT pageno FROM dbstat WHERE name = 'kv' AND pagetype = 'leaf'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        drop(c);
        let want = truth(&db);
        let what = format!("{ps}/{enc}");
        // The first two cell pointers of a leaf swapped: its first two
        // rows come out of the tree in the wrong order.
        let p = leaves[leaves.len() / 2] as usize;
        let at = (p - 1) * ps as usize;
        let mut b = std::fs::read(&db).unwrap();
        assert_eq!(b[at], 0x0a, "{what}");
        for i in 0..2 {
            b.swap(at + 8 + i, at + 10 + i);
        }
        std::fs::write(&db, b).unwrap();
        let (report, got) = recovered(&db, None);
        // SQLite's check of the key order refuses the page-by-page load;
        // row by row, every row goes in.
        let why = report.restarted.clone().unwrap_or_default();
        assert!(why.contains("PRIMARY KEY order"), "{what}: {why:?}");
        // The input's keys out of order are damage: not a complete one.
        assert_eq!(report.outcome, Outcome::Partial, "{what}");
        assert_rows(&got, &want, &what);
    }
}

/// Swaps child `k` of interior page `p` with child `k` of interior page
/// `q` in the file's bytes.
fn swap_children(b: &mut [u8], ps: usize, (p, q): (u32, u32), k: usize) {
    let child = |pg: u32| {
        let at = (pg as usize - 1) * ps;
        assert_eq!(b[at], 5, "page {pg} is a table interior page");
        let ptr = u16::from_be_bytes([b[at + 12 + 2 * k], b[at + 13 + 2 * k]]) as usize;
        at + ptr
    };
    let (x, y) = (child(p), child(q));
    for i in 0..4 {
        b.swap(x + i, y + i);
    }
}

#[test]
fn rows_of_cross_linked_trees_go_back_to_the_table_whose_index_lists_them() {
    for (ps, enc) in LAYOUTS {
        let tmp = tempfile::tempdir().unwrap();
        let sql = "CREATE TABLE a(id INTEGER PRIMARY KEY, name TEXT UNIQUE, v INTEGER);
                   CREATE TABLE b(id INTEGER PRIMARY KEY, name TEXT UNIQUE, v INTEGER);";
        let (db, c) = fresh(tmp.path(), ps, enc, sql);
        let rows = i64::from(ps) / 4;
        for i in 1..=rows {
            c.execute(
                "INSERT INTO a VALUES(?1, ?2, ?1)",
                params![i, format!("a-{i:06}")],
            )
            .unwrap();
            c.execute(
                "INSERT INTO b VALUES(?1, ?2, ?1 * 2)",
                params![i, format!("b-{i:06}")],
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
        let (ra, rb) = (root("a"), root("b"));
        drop(c);
        let want = truth(&db);
        let what = format!("{ps}/{enc}");
        // The second child of each root points into the other table.
        let mut bytes = std::fs::read(&db).unwrap();
        swap_children(&mut bytes, ps as usize, (ra, rb), 1);
        std::fs::write(&db, bytes).unwrap();
        let (report, got) = recovered(&db, None);
        // No row in the other table; every row in its own, or (a cell whose
        // key falls outside the range its page was reached by, which no
        // index of its walk's table confirms) in lost_and_found.
        let (own, other): (HashSet<String>, HashSet<String>) = got
            .iter()
            .filter(|k| k.starts_with("a|") || k.starts_with("b|"))
            .cloned()
            .partition(|k| want.contains(k));
        assert!(
            other.is_empty(),
            "{what}: rows in the wrong table: {:?}",
            other.iter().take(3).collect::<Vec<_>>()
        );
        let lost = report.lost_and_found as usize;
        assert_eq!(
            own.len() + lost,
            want.len(),
            "{what}: {} own, {lost} lost_and_found",
            own.len()
        );
        assert!(lost * 20 < want.len(), "{what}: {lost} in lost_and_found");
        // Back by the other table's index (moved), or, where the keys a
        // leaf holds lie outside the range its parent gives it, as an
        // orphan in its own table's hole.
        let moved: u64 = report.tables.iter().map(|t| t.cross_linked).sum();
        let evidence = |ev: Evidence| -> u64 {
            report
                .tables
                .iter()
                .filter_map(|t| t.by_evidence.get(&ev))
                .sum()
        };
        assert_eq!(evidence(Evidence::CrossLinked), moved, "{what}");
        assert!(
            moved + evidence(Evidence::TreeHole) > 0,
            "{what}: no row given back"
        );
        assert_eq!(report.outcome, Outcome::Partial, "{what}");
    }
}

#[test]
fn a_row_that_clashes_on_a_unique_value_is_kept_not_counted_as_a_duplicate() {
    for (ps, enc) in LAYOUTS {
        let tmp = tempfile::tempdir().unwrap();
        let rows = 300;
        let db = text_table(tmp.path(), (ps, enc), "u TEXT UNIQUE, v TEXT", rows, |i| {
            (format!("u{i:05}"), format!("v{i}"))
        });
        let what = format!("{ps}/{enc}");
        // Rows 10, 20, ... take the UNIQUE value of the row before them, in
        // the table's leaves (the index, rebuilt, does not matter).
        let tmp2 = tempfile::tempdir().unwrap();
        let q = Connection::open(copy_set(&db, tmp2.path(), "q.db")).unwrap();
        let leaves: Vec<u32> = q
            .prepare("SELECT pageno FROM dbstat WHERE name='t' AND pagetype='leaf'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let mut b = std::fs::read(&db).unwrap();
        let mut clashes = 0u64;
        for i in (10..=rows).step_by(10) {
            let (mine, theirs) = (
                encoded(&format!("u{i:05}"), enc),
                encoded(&format!("u{:05}", i - 1), enc),
            );
            for &p in &leaves {
                let page = &mut b[(p as usize - 1) * ps as usize..p as usize * ps as usize];
                if let Some(at) = page.windows(mine.len()).position(|w| w == mine.as_slice()) {
                    page[at..at + mine.len()].copy_from_slice(&theirs);
                    clashes += 1;
                    break;
                }
            }
        }
        assert_eq!(clashes, rows as u64 / 10, "{what}");
        std::fs::write(&db, b).unwrap();
        let (report, _) = recovered(&db, None);
        let t = report.tables.iter().find(|t| t.name == "t").unwrap();
        assert_eq!(t.duplicates_skipped, 0, "{what}");
        assert_eq!(t.conflicts, clashes, "{what}");
        assert_eq!(
            rows_of(&report, "t") + t.conflicts,
            rows as u64,
            "{what}: no row dropped"
        );
        assert_eq!(report.lost_and_found, clashes, "{what}");
    }
}
