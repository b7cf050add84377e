//! `recover --deleted`: deleted rows back in `<table>__deleted`, measured
//! against the generator's ground truth at page sizes 512, 1024, 4096 and
//! 65536 in UTF-8 and UTF-16, in rollback-journal and WAL mode: recall over
//! the deleted rows whose bytes survive (their record's body, as stored, is
//! still somewhere in the input's files: in one piece, or for a row that
//! spills, the part in its cell and each overflow page's part, each in one
//! piece), and precision (rows in the
//! `__deleted` table that really were deleted, with their values, and
//! their rowid when given); and with auto-vacuum FULL and INCREMENTAL, and
//! with secure_delete on and a journal kept (`journal_mode=PERSIST`).
//! `cargo test deleted -- --nocapture` prints the table.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use rusqlite::{Connection, params};
use sqlite_salvage::recover::{RecoverOptions, recover};

use crate::common::*;

/// A row of the generator: id, name, email, n.
type Row = (i64, String, String, i64);

fn row(i: i64, long: bool) -> Row {
    let email = if long {
        format!("u{i}@example.com ").repeat(40 + (i % 5) as usize)
    } else {
        format!("u{i}@example.com").repeat(1 + (i % 3) as usize)
    };
    (i, format!("user {i:05}"), email, 20 + i % 50)
}

/// What a case does after the rows are in.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Case {
    /// Every seventh row and a run of rows deleted.
    Deletes,
    /// The same, then some rows updated (cells move) and new rows inserted
    /// into the space freed.
    DeletesThenWrites,
    /// Rows whose values spill to overflow pages, some deleted.
    Overflow,
    /// Deletes, then VACUUM: nothing left to find.
    Vacuum,
    /// No delete at all: nothing to find.
    NoDeletes,
    /// Deletes with secure_delete on in journal_mode=PERSIST: the file's
    /// free space is zeroed, the journal keeps the pages as they were.
    PersistedJournal,
}

struct Measured {
    case: String,
    deleted: usize,
    surviving: usize,
    found: usize,
    rows: usize,
    wrong: usize,
    wrong_rows: Vec<String>,
}

fn encode(s: &str, enc: &str) -> Vec<u8> {
    match enc {
        "UTF-16le" => s.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        "UTF-16be" => s.encode_utf16().flat_map(u16::to_be_bytes).collect(),
        _ => s.as_bytes().to_vec(),
    }
}

/// The files of `db` (its -wal and -journal too) copied into
/// `dir/frozen`, as a crash would leave them; the copy's path.
fn freeze(db: &Path, dir: &Path) -> std::path::PathBuf {
    let frozen = dir.join("frozen");
    std::fs::create_dir_all(&frozen).unwrap();
    let input = copy_set(db, &frozen, "memory.db");
    if side(db, "-journal").exists() {
        std::fs::copy(side(db, "-journal"), side(&input, "-journal")).unwrap();
    }
    input
}

/// Every byte of the input's files (database, -wal, -journal): where a
/// row's bytes may survive.
fn input_bytes(input: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(input).unwrap();
    for s in ["-wal", "-journal"] {
        if let Ok(w) = std::fs::read(side(input, s)) {
            bytes.extend(w);
        }
    }
    bytes
}

/// SQLite's varint encoding of `v`.
fn varint(mut v: u64) -> Vec<u8> {
    if v > 0x00ff_ffff_ffff_ffff {
        let mut out = vec![0u8; 9];
        out[8] = v as u8;
        v >>= 8;
        for b in out[..8].iter_mut().rev() {
            *b = (v as u8 & 0x7f) | 0x80;
            v >>= 7;
        }
        return out;
    }
    let mut out = vec![(v & 0x7f) as u8];
    v >>= 7;
    while v > 0 {
        out.push((v & 0x7f) as u8 | 0x80);
        v >>= 7;
    }
    out.reverse();
    out
}

/// The pieces in which row `r`'s record body was stored in a table leaf
/// of `page_size` bytes: the body's part in the cell (the record header
/// before it left out), then each overflow page's part, split where
/// SQLite splits a payload.
fn stored_parts(r: &Row, enc: &str, page_size: u32) -> Vec<Vec<u8>> {
    let (name, email) = (encode(&r.1, enc), encode(&r.2, enc));
    let mut serials = vec![0u8];
    serials.extend(varint(13 + 2 * name.len() as u64));
    serials.extend(varint(13 + 2 * email.len() as u64));
    serials.push(1);
    let header_len = serials.len() + 1;
    let body: Vec<u8> = [name, email, vec![r.3 as u8]].concat();
    let (u, p) = (page_size as usize, header_len + body.len());
    let (x, m) = (u - 35, (u - 12) * 32 / 255 - 23);
    let local = if p <= x {
        p
    } else {
        let k = m + (p - m) % (u - 4);
        if k <= x { k } else { m }
    };
    let mut parts = vec![body[..local - header_len].to_vec()];
    parts.extend(body[local - header_len..].chunks(u - 4).map(<[u8]>::to_vec));
    parts
}

/// Runs one case; gives the truth (deleted rows) and what came back.
fn run_case(
    dir: &Path,
    (ps, enc): (u32, &str),
    (wal, vacuum): (bool, &str),
    case: Case,
) -> Measured {
    let db = dir.join("memory.db");
    let c = Connection::open(&db).unwrap();
    let mode = match (wal, case) {
        (true, _) => "WAL",
        (false, Case::PersistedJournal) => "PERSIST",
        (false, _) => "DELETE",
    };
    c.execute_batch(&format!(
        "PRAGMA page_size={ps}; PRAGMA encoding='{enc}'; PRAGMA auto_vacuum={vacuum};
         PRAGMA journal_mode={mode};
         PRAGMA secure_delete=OFF; PRAGMA wal_autocheckpoint=0;
         CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, n INTEGER);"
    ))
    .unwrap();
    let long = case == Case::Overflow;
    let total = if long {
        120
    } else {
        i64::from(ps).clamp(1024, 8192) / 2
    };
    c.execute_batch("BEGIN").unwrap();
    for i in 1..=total {
        let r = row(i, long);
        c.execute(
            "INSERT INTO users VALUES(?1, ?2, ?3, ?4)",
            params![r.0, r.1, r.2, r.3],
        )
        .unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
    let mut deleted: Vec<i64> = Vec::new();
    if case != Case::NoDeletes {
        let run = total / 3..total / 3 + total / 10;
        deleted = (1..=total)
            .filter(|i| i % 7 == 0 || run.contains(i))
            .collect();
        if case == Case::PersistedJournal {
            c.execute_batch("PRAGMA secure_delete=ON").unwrap();
        }
        c.execute_batch("BEGIN").unwrap();
        for i in &deleted {
            c.execute("DELETE FROM users WHERE id = ?1", [i]).unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
    }
    if case == Case::DeletesThenWrites {
        c.execute_batch("BEGIN").unwrap();
        for i in (1..=total).filter(|i| i % 11 == 0 && i % 7 != 0) {
            c.execute(
                "UPDATE users SET email = email || '.moved' WHERE id = ?1",
                [i],
            )
            .unwrap();
        }
        for i in total + 1..=total + total / 20 {
            let r = row(i, false);
            c.execute(
                "INSERT INTO users VALUES(?1, ?2, ?3, ?4)",
                params![r.0, r.1, r.2, r.3],
            )
            .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
    }
    if case == Case::Vacuum {
        c.execute_batch("VACUUM").unwrap();
    }
    // The files as a crash would leave them (WAL not checkpointed).
    let input = freeze(&db, dir);
    let frozen = dir.join("frozen");
    drop(c);
    let bytes = input_bytes(&input);
    let truth: BTreeMap<i64, Row> = deleted.iter().map(|&i| (i, row(i, long))).collect();
    let surviving: HashSet<i64> = truth
        .values()
        .filter(|r| {
            // The record's body (name, email, then n as one byte) as it was
            // stored: the part in the cell and each overflow page's part.
            let found = |part: &[u8]| bytes.windows(part.len()).any(|w| w == part);
            stored_parts(r, enc, ps).iter().all(|p| found(p))
        })
        .map(|r| r.0)
        .collect();
    let out = dir.join("recovered.db");
    let opts = RecoverOptions {
        no_sync: true,
        deleted: true,
        ..Default::default()
    };
    let before = dir_hashes(&frozen);
    let report = recover(&input, &out, &opts).unwrap();
    assert_eq!(dir_hashes(&frozen), before, "inputs changed");
    let conn = Connection::open(&out).unwrap();
    assert_eq!(integrity(&conn), "ok");
    assert_report_adds_up(&report, &out, "deleted");
    // The live table is exactly SQLite's.
    let live: i64 = conn
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    let want: i64 = Connection::open(&input)
        .unwrap()
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(live, want, "live rows");
    type Got = (
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<i64>,
    );
    let text = |v: rusqlite::types::Value| match v {
        rusqlite::types::Value::Text(s) => Some(s),
        _ => None,
    };
    let int = |v: rusqlite::types::Value| match v {
        rusqlite::types::Value::Integer(i) => Some(i),
        _ => None,
    };
    let got: Vec<Got> =
        match conn.prepare("SELECT id, name, email, n, salvage_rowid FROM users__deleted") {
            Ok(mut st) => st
                .query_map([], |r| {
                    Ok((
                        int(r.get(0)?),
                        text(r.get(1)?),
                        text(r.get(2)?),
                        int(r.get(3)?),
                        int(r.get(4)?),
                    ))
                })
                .unwrap()
                .map(|r| r.unwrap())
                .collect(),
            Err(_) => Vec::new(),
        };
    let n_reported: u64 = report.deleted.iter().map(|d| d.rows).sum();
    if case == Case::PersistedJournal {
        // secure_delete zeroed the freed cells in the file: most rows come
        // from the journal (a few copies a rebalance left stay in the gap).
        let journal: u64 = report
            .deleted
            .iter()
            .filter_map(|d| d.by_source.get("rollback-journal"))
            .sum();
        assert!(journal * 2 > n_reported, "sources {:?}", report.deleted);
    }

    assert_eq!(n_reported as usize, got.len(), "report and table agree");
    let mut found = HashSet::new();
    let mut wrong = 0;
    let mut wrong_rows = Vec::new();
    for (id, name, email, n, rowid) in &got {
        let i = name
            .as_deref()
            .and_then(|s| s.strip_prefix("user "))
            .and_then(|s| s.parse::<i64>().ok());
        let right = i.and_then(|i| truth.get(&i)).is_some_and(|t| {
            name.as_deref() == Some(t.1.as_str())
                && email.as_deref() == Some(t.2.as_str())
                && *n == Some(t.3)
                && id.is_none_or(|id| id == t.0)
                && rowid.is_none_or(|r| r == t.0)
        });
        if right {
            found.extend(i);
        } else {
            wrong += 1;
            if wrong_rows.len() < 3 {
                wrong_rows.push(format!("{:?}", (id, name, email, n, rowid)));
            }
        }
    }
    Measured {
        case: format!(
            "{ps} {enc} {}{} {case:?}",
            if wal { "wal" } else { "rollback" },
            if vacuum == "NONE" {
                String::new()
            } else {
                format!(" {vacuum}")
            }
        ),
        deleted: truth.len(),
        surviving: surviving.len(),
        found: found.intersection(&surviving).count(),
        rows: got.len(),
        wrong,
        wrong_rows,
    }
}

#[test]
fn deleted_rows_come_back_in_tables_of_their_own() {
    let mut all = Vec::new();
    for layout in LAYOUTS {
        for wal in [false, true] {
            for case in [
                Case::Deletes,
                Case::DeletesThenWrites,
                Case::Overflow,
                Case::Vacuum,
                Case::NoDeletes,
            ] {
                let tmp = tempfile::tempdir().unwrap();
                all.push(run_case(tmp.path(), layout, (wal, "NONE"), case));
            }
            // Auto-vacuum: freed pages are moved off the end at commit.
            for vacuum in ["FULL", "INCREMENTAL"] {
                let tmp = tempfile::tempdir().unwrap();
                all.push(run_case(tmp.path(), layout, (wal, vacuum), Case::Deletes));
            }
            if !wal {
                let tmp = tempfile::tempdir().unwrap();
                let case = Case::PersistedJournal;
                all.push(run_case(tmp.path(), layout, (wal, "NONE"), case));
            }
        }
    }
    println!(
        "{:<36} {:>7} {:>9} {:>6} {:>6} {:>6} {:>7} {:>9}",
        "case", "deleted", "surviving", "found", "rows", "wrong", "recall", "precision"
    );
    let (mut surv, mut found, mut rows, mut wrong) = (0, 0, 0, 0);
    for m in &all {
        let recall = m.found as f64 / m.surviving.max(1) as f64;
        let precision = (m.rows - m.wrong) as f64 / m.rows.max(1) as f64;
        println!(
            "{:<36} {:>7} {:>9} {:>6} {:>6} {:>6} {:>7.3} {:>9.3}",
            m.case, m.deleted, m.surviving, m.found, m.rows, m.wrong, recall, precision
        );
        (surv, found, rows, wrong) = (
            surv + m.surviving,
            found + m.found,
            rows + m.rows,
            wrong + m.wrong,
        );
        // VACUUM rewrites a rollback-mode file whole; in WAL mode the file's
        // older pages keep the deleted rows' bytes (measured as any case).
        if m.case.ends_with("rollback Vacuum") || m.case.ends_with("NoDeletes") {
            assert_eq!(m.rows, 0, "{}: rows reported deleted", m.case);
        }
    }
    let recall = found as f64 / surv.max(1) as f64;
    let precision = (rows - wrong) as f64 / rows.max(1) as f64;
    println!("all: recall {recall:.3}, precision {precision:.3} ({rows} rows, {wrong} wrong)");
    for m in all.iter().filter(|m| m.wrong > 0) {
        println!("wrong in {}: {:?}", m.case, m.wrong_rows);
    }
    assert!(precision >= 0.99, "precision {precision:.3}");
    assert!(recall >= 0.95, "recall {recall:.3}");
}

/// `dir/m.db`: a table of 500 rows, every third deleted.
fn thirds_deleted(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("m.db");
    let c = Connection::open(&db).unwrap();
    c.execute_batch(
        "PRAGMA secure_delete=OFF; CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b TEXT, c INTEGER);",
    )
    .unwrap();
    for i in 1..=500 {
        c.execute(
            "INSERT INTO t VALUES(?1, ?2, ?2, ?1)",
            params![i, format!("row {i}")],
        )
        .unwrap();
    }
    c.execute("DELETE FROM t WHERE id % 3 = 0", []).unwrap();
    db
}

#[test]
fn without_deleted_the_output_has_no_deleted_table() {
    let tmp = tempfile::tempdir().unwrap();
    let db = thirds_deleted(tmp.path());
    let out = tmp.path().join("out.db");
    let report = recover_no_sync(&db, &out).unwrap();
    assert!(report.deleted.is_empty());
    let json = serde_json::to_value(&report).unwrap();
    assert!(json.get("deleted").is_none(), "the report is as before");
    let n: i64 = Connection::open(&out)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name LIKE '%deleted%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0);
}

/// A dropped table of its own shape (five columns, no live table alike):
/// its freed leaves are its by their records' shape, and by a walk of its
/// tree from its old root where that still reads. (One of a live table's
/// shape is found only by the walk: a freed leaf both fit is left out.)
/// With its schema row gone too (zeroed here), its rows come back in
/// `recovered_deleted_rows_1`, named by their shape.
#[test]
fn a_dropped_tables_rows_come_back_under_its_name() {
    let mut lines = Vec::new();
    let (mut surv_all, mut found_all, mut rows_all, mut wrong_all) = (0, 0, 0, 0);
    for ((ps, enc), lost) in LAYOUTS.into_iter().flat_map(|l| [(l, false), (l, true)]) {
        for wal in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let db = tmp.path().join("memory.db");
            let c = Connection::open(&db).unwrap();
            let mode = if wal { "WAL" } else { "DELETE" };
            c.execute_batch(&format!(
                "PRAGMA page_size={ps}; PRAGMA encoding='{enc}'; PRAGMA journal_mode={mode};
                 PRAGMA secure_delete=OFF; PRAGMA wal_autocheckpoint=0;
                 CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, n INTEGER);
                 CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body TEXT, k INTEGER, at REAL);
                 CREATE TABLE tags(id INTEGER PRIMARY KEY, tag TEXT, w REAL);
                 BEGIN;"
            ))
            .unwrap();
            let total = i64::from(ps).clamp(1024, 8192) / 4;
            let note = |i: i64| {
                (
                    format!("note {i:05}"),
                    format!("body of note {i} ").repeat(1 + (i % 4) as usize),
                    i % 9,
                )
            };
            for i in 1..=total {
                let r = row(i, false);
                c.execute(
                    "INSERT INTO users VALUES(?1, ?2, ?3, ?4)",
                    params![r.0, r.1, r.2, r.3],
                )
                .unwrap();
                let n = note(i);
                c.execute(
                    "INSERT INTO notes VALUES(?1, ?2, ?3, ?4, ?1 + 0.5)",
                    params![i, n.0, n.1, n.2],
                )
                .unwrap();
                c.execute(
                    "INSERT INTO tags VALUES(?1, ?2, ?3)",
                    params![i, format!("tag{i}"), i as f64 / 7.0],
                )
                .unwrap();
            }
            c.execute_batch("COMMIT; DROP TABLE notes;").unwrap();
            if lost && wal {
                // Into the file, where its schema row is zeroed below (a WAL
                // frame changed would fail its checksum).
                c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
            }
            let input = freeze(&db, tmp.path());
            drop(c);
            if lost {
                // The freed schema row's CREATE statement, wherever it is.
                let create = encode("CREATE TABLE notes(", enc);
                let mut b = std::fs::read(&input).unwrap();
                let mut at = 0;
                while let Some(p) = b[at..].windows(create.len()).position(|w| w == create) {
                    let p = at + p;
                    b[p..p + create.len()].fill(0);
                    at = p + create.len();
                }
                std::fs::write(&input, b).unwrap();
            }
            let bytes = input_bytes(&input);
            let surviving: HashSet<i64> = (1..=total)
                .filter(|&i| {
                    let n = note(i);
                    let mut body = encode(&n.0, enc);
                    body.extend(encode(&n.1, enc));
                    bytes.windows(body.len()).any(|w| w == body.as_slice())
                })
                .collect();
            let out = tmp.path().join("recovered.db");
            let (report, conn) = recover_deleted(&input, &out, "dropped");
            type Note = (Option<i64>, Option<String>, Option<String>, Option<i64>);
            let query = if lost {
                "SELECT salvage_rowid, c1, c2, c3 FROM recovered_deleted_rows_1"
            } else {
                "SELECT id, title, body, k FROM notes__deleted"
            };
            let got: Vec<Note> = conn
                .prepare(query)
                .map(|mut st| {
                    st.query_map([], |r| {
                        Ok((r.get(0).ok(), r.get(1).ok(), r.get(2).ok(), r.get(3).ok()))
                    })
                    .unwrap()
                    .map(|r| r.unwrap())
                    .collect()
                })
                .unwrap_or_default();
            let mut found = HashSet::new();
            let mut wrong = 0;
            for (id, title, body, k) in &got {
                let i = title
                    .as_deref()
                    .and_then(|t| t.strip_prefix("note "))
                    .and_then(|t| t.parse::<i64>().ok());
                let right = i.is_some_and(|i| {
                    let n = note(i);
                    title.as_deref() == Some(n.0.as_str())
                        && body.as_deref() == Some(n.1.as_str())
                        && *k == Some(n.2)
                        && id.is_none_or(|id| id == i)
                });
                if right {
                    found.extend(i);
                } else {
                    wrong += 1;
                }
            }
            let found = found.intersection(&surviving).count();
            let name = if lost {
                "recovered_deleted_rows_1"
            } else {
                "notes"
            };
            assert!(
                report.deleted.iter().any(|d| d.table == name) || surviving.is_empty(),
                "{ps} {enc} wal {wal}: no notes__deleted: {:?}",
                report.deleted
            );
            lines.push(format!(
                "{ps} {enc} {}{}: surviving {}, found {found}, rows {}, wrong {wrong}",
                if wal { "wal" } else { "rollback" },
                if lost { ", schema row lost" } else { "" },
                surviving.len(),
                got.len()
            ));
            (surv_all, found_all, rows_all, wrong_all) = (
                surv_all + surviving.len(),
                found_all + found,
                rows_all + got.len(),
                wrong_all + wrong,
            );
        }
    }
    for l in &lines {
        println!("dropped: {l}");
    }
    let recall = found_all as f64 / surv_all.max(1) as f64;
    let precision = (rows_all - wrong_all) as f64 / rows_all.max(1) as f64;
    println!("dropped, all: recall {recall:.3}, precision {precision:.3}");
    assert!(precision >= 0.99, "precision {precision:.3}");
    assert!(recall >= 0.95, "recall {recall:.3}");
}

/// `dump --deleted` gives, after the live rows, the rows `recover
/// --deleted` writes, as JSON lines with `"deleted": true`; its temporary
/// database is gone when it is done; without `--deleted` no line is one.
#[test]
fn dump_deleted_gives_the_rows_recover_deleted_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let db = thirds_deleted(tmp.path());
    let out = tmp.path().join("out.db");
    let opts = RecoverOptions {
        no_sync: true,
        deleted: true,
        ..Default::default()
    };
    recover(&db, &out, &opts).unwrap();
    let conn = Connection::open(&out).unwrap();
    let mut want: Vec<(Option<i64>, String)> = conn
        .prepare("SELECT salvage_rowid, a FROM t__deleted")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    want.sort();
    assert!(want.len() > 100, "{} deleted rows found", want.len());
    let scratch = tmp.path().join("tmpdir");
    std::fs::create_dir(&scratch).unwrap();
    let db_s = db.to_str().unwrap();
    let dump = |args: &[&str]| {
        let o = std::process::Command::new(bin())
            .args(args)
            .env("TMPDIR", &scratch)
            .output()
            .unwrap();
        (o.status.code(), String::from_utf8(o.stdout).unwrap())
    };
    let (code, text) = dump(&["dump", db_s, "--deleted", "-f", "jsonl"]);
    assert_eq!(code, Some(0));
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let deleted: Vec<&serde_json::Value> = lines.iter().filter(|v| v["deleted"] == true).collect();
    assert_eq!(
        lines.len() - deleted.len(),
        334,
        "live rows first, as dump gives them"
    );
    assert!(lines[..334].iter().all(|v| v.get("deleted").is_none()));
    let mut got: Vec<(Option<i64>, String)> = deleted
        .iter()
        .map(|v| {
            assert_eq!(v["table"], "t");
            assert!(v["found"]["source"].is_string() && v["found"]["page"].is_i64());
            assert_eq!(v["row"]["id"], v["rowid"]);
            (
                v.get("rowid").and_then(|r| r.as_i64()),
                v["row"]["a"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "temporary files left"
    );
    let (code, text) = dump(&["dump", db_s, "-f", "jsonl"]);
    assert_eq!(code, Some(0));
    assert_eq!(text.lines().count(), 334);
    assert!(!text.contains("\"deleted\""));
    let (code, _) = dump(&["dump", db_s, "--deleted"]);
    assert_eq!(code, Some(2), "--deleted needs --format jsonl");
}

/// A WITHOUT ROWID table's deleted rows (its tree an index b-tree, a row
/// deleted when no live row has its primary key), at 8 layouts in
/// rollback-journal and WAL mode: recall over the rows whose record body
/// survives, and over those whose values can also be told apart (the
/// record from its second serial type on survives), precision over the
/// rows reported. In rollback mode most rows of a run of deletes sit in
/// freeblocks that merged: each cell's first four bytes were a freeblock
/// header (the payload size, the record header's length and the key's and
/// the next column's serial types: two lengths one cell size cannot both
/// give), and such a head is not rebuilt; in WAL mode the older page
/// versions hold them whole.
#[test]
fn deleted_rows_of_a_without_rowid_table_come_back() {
    // Per mode (rollback, WAL): surviving, found, rows, wrong, delimited,
    // found of those.
    let mut totals = [[0usize; 6]; 2];
    for (ps, enc) in LAYOUTS {
        for wal in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let db = tmp.path().join("memory.db");
            let c = Connection::open(&db).unwrap();
            let mode = if wal { "WAL" } else { "DELETE" };
            c.execute_batch(&format!(
                "PRAGMA page_size={ps}; PRAGMA encoding='{enc}'; PRAGMA journal_mode={mode};
                 PRAGMA secure_delete=OFF; PRAGMA wal_autocheckpoint=0;
                 CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT, n INTEGER) WITHOUT ROWID;
                 CREATE INDEX kv_n ON kv(n);
                 BEGIN;"
            ))
            .unwrap();
            let total = i64::from(ps).clamp(1024, 8192) / 2;
            let kv = |i: i64| {
                (
                    format!("key {i:05}"),
                    format!("value {i} ").repeat(1 + (i % 4) as usize),
                    i % 97,
                )
            };
            for i in 1..=total {
                let (k, v, n) = kv(i);
                c.execute("INSERT INTO kv VALUES(?1, ?2, ?3)", params![k, v, n])
                    .unwrap();
            }
            c.execute_batch("COMMIT; BEGIN").unwrap();
            let deleted: Vec<i64> = (1..=total)
                .filter(|i| i % 7 == 0 || (total / 3..total / 2).contains(i))
                .collect();
            for &i in &deleted {
                c.execute("DELETE FROM kv WHERE k = ?1", [kv(i).0]).unwrap();
            }
            c.execute_batch("COMMIT").unwrap();
            let input = freeze(&db, tmp.path());
            drop(c);
            let bytes = input_bytes(&input);
            let found_in = |part: &[u8]| bytes.windows(part.len()).any(|w| w == part);
            let surviving: HashSet<String> = deleted
                .iter()
                .map(|&i| kv(i))
                .filter(|(k, v, _)| found_in(&[encode(k, enc), encode(v, enc)].concat()))
                .map(|r| r.0)
                .collect();
            // Of those, the rows whose values can be told apart: the record
            // from its second serial type on is there too (a freed head
            // loses the first four bytes: the payload size, the header's
            // length and the first two serial types; one lost serial type
            // the cell's size gives back, two it cannot).
            let delimited: HashSet<String> = deleted
                .iter()
                .map(|&i| kv(i))
                .filter(|(k, v, n)| {
                    let (k, v) = (encode(k, enc), encode(v, enc));
                    let n_serial = match n {
                        0 => 8,
                        1 => 9,
                        _ => 1,
                    };
                    let tail = [
                        varint(13 + 2 * v.len() as u64),
                        vec![n_serial],
                        k,
                        v,
                        int_body(*n),
                    ];
                    found_in(&tail.concat())
                })
                .map(|r| r.0)
                .collect();
            let out = tmp.path().join("out.db");
            let (_, conn) = recover_deleted(&input, &out, "without rowid deleted");
            // k, v, n, where it was found.
            type Got = (Option<String>, Option<String>, Option<i64>, String);
            let got: Vec<Got> = conn
                .prepare("SELECT k, v, n, salvage_source FROM kv__deleted")
                .map(|mut st| {
                    st.query_map([], |r| {
                        Ok((
                            r.get(0).ok(),
                            r.get(1).ok(),
                            r.get(2).ok(),
                            r.get::<_, String>(3)?,
                        ))
                    })
                    .unwrap()
                    .map(|r| r.unwrap())
                    .collect()
                })
                .unwrap_or_default();
            let truth: HashSet<i64> = deleted.iter().copied().collect();
            let mut found = HashSet::new();
            let mut wrong = 0;
            for (k, v, n, from) in &got {
                let i = k
                    .as_deref()
                    .and_then(|k| k.strip_prefix("key "))
                    .and_then(|s| s.parse::<i64>().ok());
                let right = i.filter(|i| truth.contains(i)).is_some_and(|i| {
                    let t = kv(i);
                    v.as_deref() == Some(t.1.as_str()) && *n == Some(t.2)
                });
                if right {
                    found.insert(k.clone().unwrap_or_default());
                } else {
                    wrong += 1;
                    if wrong <= 2 {
                        println!("  wrong: {:?}", (k, v, n, from));
                    }
                }
            }
            let hit = found.intersection(&surviving).count();
            let hit_delimited = found.intersection(&delimited).count();
            println!(
                "{ps} {enc} {}: deleted {}, surviving {} ({} delimited), found {hit} ({hit_delimited}), rows {}, wrong {wrong}",
                if wal { "wal" } else { "rollback" },
                deleted.len(),
                surviving.len(),
                delimited.len(),
                got.len()
            );
            let m = &mut totals[usize::from(wal)];
            let counts = [
                surviving.len(),
                hit,
                got.len(),
                wrong,
                delimited.len(),
                hit_delimited,
            ];
            for (k, n) in counts.into_iter().enumerate() {
                m[k] += n;
            }
        }
    }
    for (mode, [surv, found, rows, wrong, delim, found_delim]) in
        ["rollback", "wal"].iter().zip(totals)
    {
        let recall = found as f64 / surv.max(1) as f64;
        let recall_delimited = found_delim as f64 / delim.max(1) as f64;
        let precision = (rows - wrong) as f64 / rows.max(1) as f64;
        println!(
            "without rowid, {mode}: recall {recall:.3} of the rows whose body survives, \
             {recall_delimited:.3} of those whose values can be told apart ({delim}), \
             precision {precision:.3} ({rows} rows, {wrong} wrong)"
        );
        assert!(surv > 0 && delim > 0);
        assert!(precision >= 0.99, "{mode}: precision {precision:.3}");
        assert!(
            recall_delimited >= 0.95,
            "{mode}: recall {recall_delimited:.3}"
        );
        let floor = if *mode == "wal" { 0.95 } else { 0.45 };
        assert!(recall >= floor, "{mode}: recall {recall:.3}");
    }
}

/// How the rows of [`rows_deleted_one_by_one_come_back_without_a_rowid_alias`]
/// went.
#[derive(Debug, Clone, Copy, PartialEq)]
enum OneByOne {
    /// Some rows, neighbours among them, one statement each.
    Neighbours,
    /// Every row, one statement each, in no order: a freed head's cell
    /// often ends where a whole cell starts (one freed next to the
    /// content's start), and the emptied leaf's header is reset.
    EveryRowShuffled,
    /// Half the rows, one statement each, in no order, then new rows that
    /// take part of the space: a freed cell may end a few bytes before a
    /// newer one, the rest of its neighbour's head all that is left.
    ThenInserted,
    /// As `EveryRowShuffled`, then the table dropped: its emptied root
    /// became a freelist trunk page, its first bytes the list.
    ThenDropped,
    /// Two tables of the same shape dropped, no row deleted before: the
    /// first one's root became a trunk page, which its records fit as
    /// well as the other's.
    TwinTablesDropped,
}

/// Rows deleted one statement at a time from a table without a rowid
/// alias (its first column a plain integer): each freed cell's first four
/// bytes became a freeblock header, and merged freeblocks keep the inner
/// ones. The first value's serial type is put back from the cell's size,
/// which the next freed head or whole cell gives. Then the same with new
/// rows inserted after, with the table dropped, and with twin tables
/// dropped ([`OneByOne`]).
#[test]
fn rows_deleted_one_by_one_come_back_without_a_rowid_alias() {
    use OneByOne::*;
    for case in [
        Neighbours,
        EveryRowShuffled,
        ThenInserted,
        ThenDropped,
        TwinTablesDropped,
    ] {
        let mut all = [0usize; 4];
        for (ps, enc) in LAYOUTS {
            let got = one_by_one(ps, enc, case);
            println!(
                "one by one, {case:?} {ps} {enc}: surviving {}, found {}, rows {}, wrong {}",
                got[0], got[1], got[2], got[3]
            );
            for (a, g) in all.iter_mut().zip(got) {
                *a += g;
            }
        }
        let [surviving, found, rows, wrong] = all;
        let recall = found as f64 / surviving as f64;
        let precision = (rows - wrong) as f64 / rows.max(1) as f64;
        println!("one by one, {case:?}: recall {recall:.3}, precision {precision:.3}");
        assert!(precision >= 0.99, "{case:?}: precision {precision:.3}");
        assert!(recall >= 0.95, "{case:?}: recall {recall:.3}");
    }
}

/// An integer's bytes in a record body as SQLite stores it: none for 0 and
/// 1, else the fewest big-endian bytes of 1, 2, 3, 4, 6 or 8.
fn int_body(v: i64) -> Vec<u8> {
    if v == 0 || v == 1 {
        return Vec::new();
    }
    let n = [1usize, 2, 3, 4, 6, 8]
        .into_iter()
        .find(|&n| n == 8 || (-(1i64 << (8 * n - 1))..1i64 << (8 * n - 1)).contains(&v))
        .unwrap_or(8);
    v.to_be_bytes()[8 - n..].to_vec()
}

/// One [`OneByOne`] case at one layout: deleted rows whose record body
/// survives in the file, found of them, rows given, wrong.
fn one_by_one(ps: u32, enc: &str, case: OneByOne) -> [usize; 4] {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("m.db");
    let c = Connection::open(&db).unwrap();
    let tables: &[&str] = if case == OneByOne::TwinTablesDropped {
        &["t", "u"]
    } else {
        &["t"]
    };
    c.execute_batch(&format!(
        "PRAGMA page_size={ps}; PRAGMA encoding='{enc}'; PRAGMA secure_delete=OFF;"
    ))
    .unwrap();
    let row = |k: usize, i: i64| {
        (
            20000 + i + 1000 * k as i64,
            i * 7919 % 100_003,
            -(i * 31),
            format!("note {k} {i}"),
        )
    };
    for (k, t) in tables.iter().enumerate() {
        c.execute_batch(&format!(
            "CREATE TABLE {t}(id INT NOT NULL, a INT, b INT, note TEXT);"
        ))
        .unwrap();
        for i in 1..=40 {
            let r = row(k, i);
            c.execute(
                &format!("INSERT INTO {t} VALUES(?1, ?2, ?3, ?4)"),
                params![r.0, r.1, r.2, r.3],
            )
            .unwrap();
        }
    }
    let deleted: Vec<(usize, i64)> = match case {
        OneByOne::Neighbours => [1i64, 2, 3, 5, 9, 10, 17, 18, 19, 20, 30]
            .into_iter()
            .map(|i| (0, i))
            .collect(),
        OneByOne::EveryRowShuffled | OneByOne::ThenDropped => {
            (1..=40).map(|j| (0, j * 17 % 41)).collect()
        }
        OneByOne::ThenInserted => (1..=20).map(|j| (0, j * 17 % 41)).collect(),
        OneByOne::TwinTablesDropped => (0..2).flat_map(|k| (1..=40).map(move |i| (k, i))).collect(),
    };
    if case != OneByOne::TwinTablesDropped {
        for &(_, i) in &deleted {
            c.execute("DELETE FROM t WHERE id = ?1", [row(0, i).0])
                .unwrap();
        }
    }
    if case == OneByOne::ThenInserted {
        // Of lengths that leave a few bytes of a freed neighbour's head.
        for i in 1..=20i64 {
            let note = "n".repeat(i as usize % 8);
            c.execute(
                "INSERT INTO t VALUES(?1, ?2, ?3, ?4)",
                params![30000 + i, i * 13, i, note],
            )
            .unwrap();
        }
    }
    if matches!(case, OneByOne::ThenDropped | OneByOne::TwinTablesDropped) {
        for t in tables {
            c.execute_batch(&format!("DROP TABLE {t};")).unwrap();
        }
    }
    drop(c);
    let bytes = input_bytes(&db);
    let surviving: HashSet<(usize, i64)> = deleted
        .iter()
        .copied()
        .filter(|&(k, i)| {
            let r = row(k, i);
            let mut body = [int_body(r.0), int_body(r.1), int_body(r.2)].concat();
            body.extend(encode(&r.3, enc));
            bytes.windows(body.len()).any(|w| w == body.as_slice())
        })
        .collect();
    let out = tmp.path().join("out.db");
    let (_, conn) = recover_deleted(&db, &out, &format!("one by one {case:?}"));
    type Got = (Option<i64>, Option<i64>, Option<i64>, Option<String>);
    let mut got: Vec<Got> = Vec::new();
    for t in tables {
        let sql = format!("SELECT id, a, b, note FROM {t}__deleted");
        if let Ok(mut st) = conn.prepare(&sql) {
            let rows = st.query_map([], |r| {
                Ok((r.get(0).ok(), r.get(1).ok(), r.get(2).ok(), r.get(3).ok()))
            });
            got.extend(rows.unwrap().map(|r| r.unwrap()));
        }
    }
    let as_got = |&(k, i): &(usize, i64)| {
        let r = row(k, i);
        (Some(r.0), Some(r.1), Some(r.2), Some(r.3))
    };
    let truth: HashSet<Got> = deleted.iter().map(as_got).collect();
    let surviving: HashSet<Got> = surviving.iter().map(as_got).collect();
    let found = got
        .iter()
        .filter(|r| surviving.contains(*r))
        .collect::<HashSet<_>>();
    let wrong: Vec<&Got> = got.iter().filter(|r| !truth.contains(*r)).collect();
    [surviving.len(), found.len(), got.len(), wrong.len()]
}
