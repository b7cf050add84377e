//! Orphaned leaves joined to their tables' bulk loads: a store whose
//! interior pages are lost (zeroed) has its orphaned leaves written with
//! the tree's rows, at page sizes 512, 1024 and 4096 in UTF-8 and UTF-16,
//! rowid and WITHOUT ROWID tables, with an index that reads whole (copied)
//! and one that does not (built). The generator's database is the oracle:
//! every row on a surviving page comes back once, the output passes
//! SQLite's full `integrity_check`, and the rows are counted and flagged as
//! from orphaned pages. A leaf that overlaps another (a stale copy) is not
//! joined: its rows go in through SQL as before (duplicates skipped).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};
use sqlite_salvage::recover::{Evidence, ProgressFn, RecoverOptions, Report, Source, recover};

use crate::common::*;

const LAYOUTS: [(u32, &str); 6] = [
    (512, "UTF-8"),
    (512, "UTF-16le"),
    (1024, "UTF-16be"),
    (1024, "UTF-8"),
    (4096, "UTF-8"),
    (4096, "UTF-16le"),
];

/// A rowid table with an index, and a WITHOUT ROWID table whose records
/// are wide enough that its interior pages hold few keys; both three
/// levels deep.
fn store(dir: &Path, page_size: u32, enc: &str) -> PathBuf {
    let rows = i64::from(page_size).pow(2) / 1000 + 200;
    let db = dir.join("memory.db");
    let c = Connection::open(&db).unwrap();
    c.execute_batch(&format!(
        "PRAGMA page_size={page_size}; PRAGMA encoding='{enc}';
         CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT);
         CREATE INDEX notes_title ON notes(title);
         CREATE TABLE kv(k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID;
         BEGIN;"
    ))
    .unwrap();
    let mut rng = Rng(0x5eed);
    for i in 1..=rows {
        let title = format!("title {:08x}", rng.next() as u32);
        let body = "body ".repeat(30 + (i % 20) as usize);
        c.execute(
            "INSERT INTO notes VALUES(?1, ?2, ?3)",
            params![i, title, body],
        )
        .unwrap();
        let k = format!("key{:08x}", rng.next() as u32);
        c.execute(
            "INSERT INTO kv VALUES(?1, ?2)",
            params![k, vec![i as u8; 40]],
        )
        .unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
    db
}

/// The pages of b-tree `name` of kind `kind` ('internal', 'leaf'), with
/// the root's first.
fn pages(db: &Path, name: &str, kind: &str) -> Vec<u32> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = ?2 ORDER BY path")
        .unwrap();
    st.query_map([name, kind], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

fn page_bytes(db: &Path, ps: u32, pgno: u32) -> Vec<u8> {
    let b = std::fs::read(db).unwrap();
    let at = (pgno as usize - 1) * ps as usize;
    b[at..at + ps as usize].to_vec()
}

fn write_page(db: &Path, ps: u32, pgno: u32, bytes: &[u8]) {
    let mut b = std::fs::read(db).unwrap();
    let at = (pgno as usize - 1) * ps as usize;
    b[at..at + ps as usize].copy_from_slice(bytes);
    std::fs::write(db, b).unwrap();
}

/// Recovers `db`: the report, the rows, and the progress phases named.
fn recovered(db: &Path) -> (Report, HashSet<String>, Vec<String>) {
    let before = dir_hashes(db.parent().unwrap());
    let out = db.parent().unwrap().with_file_name("recovered.db");
    let phases = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = phases.clone();
    let opts = RecoverOptions {
        no_sync: true,
        force: true,
        progress: Some(ProgressFn(Arc::new(move |phase: &str, _, _| {
            let mut p = seen.lock().unwrap();
            if p.last().is_none_or(|l| l != phase) {
                p.push(phase.to_string());
            }
        }))),
        ..Default::default()
    };
    let report = recover(db, &out, &opts).unwrap();
    assert_eq!(dir_hashes(db.parent().unwrap()), before, "inputs changed");
    let conn = Connection::open(&out).unwrap();
    assert_eq!(integrity(&conn), "ok");
    assert_report_adds_up(&report, &out, &db.display().to_string());
    let phases = phases.lock().unwrap().clone();
    (report, keys(&sqlite_state(&conn)), phases)
}

fn orphan_rows(report: &Report, table: &str) -> u64 {
    report
        .tables
        .iter()
        .filter(|t| t.name == table)
        .filter_map(|t| t.by_source.get(&Source::Orphan).copied())
        .sum()
}

fn assert_same_rows(got: &HashSet<String>, want: &HashSet<String>, what: &str) {
    let missing: Vec<&String> = want.difference(got).take(3).collect();
    let extra: Vec<&String> = got.difference(want).take(3).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} missing, e.g. {missing:?}; {} extra, e.g. {extra:?}",
        want.difference(got).count(),
        got.difference(want).count()
    );
}

/// Whether the run with orphaned leaves joined was the one kept (SQLite
/// did not refuse it, so no run without them followed).
fn joined(phases: &[String]) -> bool {
    phases
        .iter()
        .any(|p| p.ends_with(", with orphaned pages joined"))
        && !phases
            .iter()
            .any(|p| p.contains("without orphaned pages joined"))
}

#[test]
fn orphaned_leaves_under_lost_interior_pages_join_their_tables_loads() {
    for (ps, enc) in LAYOUTS {
        for zero_index in [false, true] {
            let what = format!("{ps} {enc}, index pages zeroed: {zero_index}");
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("in");
            std::fs::create_dir_all(&dir).unwrap();
            let db = store(&dir, ps, enc);
            let located = locate(&db);
            let mut lost = Vec::new();
            for t in ["notes", "kv"] {
                lost.extend(half_the_subtrees(&db, t));
            }
            if zero_index {
                lost.extend(pages(&db, "notes_title", "leaf").into_iter().take(1));
            }
            for &p in &lost {
                write_page(&db, ps, p, &vec![0u8; ps as usize]);
            }
            // Every row but those on the zeroed pages (a WITHOUT ROWID
            // table's interior pages hold rows too).
            let want: HashSet<String> = located
                .iter()
                .filter(|(_, on)| !on.iter().any(|p| lost.contains(p)))
                .map(|(row, _)| row.clone())
                .collect();
            let (report, got, phases) = recovered(&db);
            assert_same_rows(&got, &want, &what);
            assert!(joined(&phases), "{what}: no leaf joined; phases {phases:?}");
            for t in ["notes", "kv"] {
                assert!(orphan_rows(&report, t) > 0, "{what}: no orphan rows in {t}");
                // Orphaned rows are placed on evidence, never as tree rows.
                let rep = report.tables.iter().find(|r| r.name == t).unwrap();
                let tree = rep.by_evidence.get(&Evidence::Tree).copied().unwrap_or(0);
                let rows: u64 = rep.by_source.values().sum();
                assert_eq!(tree + orphan_rows(&report, t), rows, "{what}: {rep:?}");
            }
            let flagged = report
                .flagged
                .iter()
                .filter(|f| f.flag == "from an orphaned page");
            assert!(flagged.count() > 0, "{what}: joined rows not flagged");
            assert!(
                report.orphan_pages.windows(2).all(|w| w[0].0 < w[1].0),
                "{what}: orphaned pages not listed once, in page order"
            );
            assert!(report.restarted.is_none(), "{what}: {:?}", report.restarted);
            // The joined cells' overflow pages are theirs, not loose; the
            // pages zeroed are the only ones that do not read.
            let unreadable = report.unreadable_pages.iter().all(|p| lost.contains(p));
            assert!(
                report.loose_overflow_pages.is_empty() && unreadable,
                "{what}: loose {:?}, unreadable {:?}",
                report.loose_overflow_pages,
                report.unreadable_pages
            );
        }
    }
}

/// The first half (at least one) of the interior pages the root of b-tree
/// `name` points at: zeroed, their leaves are orphans, enough of them for
/// a survey.
fn half_the_subtrees(db: &Path, name: &str) -> Vec<u32> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare(
            "SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = 'internal' \
             AND length(path) = 5 ORDER BY path",
        )
        .unwrap();
    let below_root: Vec<u32> = st
        .query_map([name], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(below_root.len() >= 2, "{name} is not three levels deep");
    below_root[..below_root.len().div_ceil(2)].to_vec()
}

/// The leaves below interior page `pgno` of b-tree `name`, in key order.
fn leaves_below(db: &Path, name: &str, pgno: u32) -> Vec<u32> {
    let c = Connection::open(db).unwrap();
    let path: String = c
        .query_row(
            "SELECT path FROM dbstat WHERE name = ?1 AND pageno = ?2",
            params![name, pgno],
            |r| r.get(0),
        )
        .unwrap();
    let mut st = c
        .prepare(
            "SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = 'leaf' \
             AND path LIKE ?2 || '%' ORDER BY path",
        )
        .unwrap();
    st.query_map(params![name, path], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn an_orphaned_leaf_that_overlaps_rows_already_placed_is_not_joined() {
    for (ps, enc) in LAYOUTS {
        // A stale copy of another orphan, or (WITHOUT ROWID, whose orphans
        // are told by shape, not by a hole's rowids) of a leaf the tree
        // still reaches, whose keys overlap the tree's rows.
        for (table, of_live) in [("notes", false), ("kv", false), ("kv", true)] {
            let what = format!("{ps} {enc} {table}, copy of a live leaf: {of_live}");
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("in");
            std::fs::create_dir_all(&dir).unwrap();
            let db = store(&dir, ps, enc);
            let located = locate(&db);
            let lost = half_the_subtrees(&db, table)[0];
            let below = leaves_below(&db, table, lost);
            assert!(below.len() >= 2, "{what}: too few leaves");
            // The copy overlaps: it goes in through SQL, where its rows are
            // duplicates.
            let twin = if of_live {
                let all = pages(&db, table, "leaf");
                *all.iter().find(|p| !below.contains(p)).unwrap()
            } else {
                below[1]
            };
            let stale = below[0];
            let copy = page_bytes(&db, ps, twin);
            write_page(&db, ps, stale, &copy);
            // Lost interior pages of notes too: enough orphans to survey.
            let mut lost = vec![lost];
            lost.extend(half_the_subtrees(&db, "notes"));
            for &p in &lost {
                write_page(&db, ps, p, &vec![0u8; ps as usize]);
            }
            // Every row but those that were on the pages overwritten.
            let want: HashSet<String> = located
                .iter()
                .filter(|(_, on)| !on.iter().any(|p| *p == stale || lost.contains(p)))
                .map(|(row, _)| row.clone())
                .collect();
            let (report, got, phases) = recovered(&db);
            assert_same_rows(&got, &want, &what);
            assert!(joined(&phases), "{what}: no leaf joined; phases {phases:?}");
            assert!(report.restarted.is_none(), "{what}: {:?}", report.restarted);
            let dups: u64 = report
                .tables
                .iter()
                .filter(|t| t.name == table)
                .map(|t| t.duplicates_skipped)
                .sum();
            let on_twin = located.values().filter(|on| on.contains(&twin)).count() as u64;
            assert_eq!(
                dups, on_twin,
                "{what}: the stale copy's rows are duplicates"
            );
        }
    }
}
