//! A child pointer that points into another tree (a torn or damaged
//! interior page): the page it reaches is not read as this tree's (its
//! keys lie outside the range its parent gives it), so its rows stay in
//! their own table and never come back as the pointing table's; and the
//! leaf the pointer lost is an orphan whose rowids fill the hole left,
//! back in its table. The generator's database is the oracle, at page
//! sizes 512, 1024, 4096 and 65536 in UTF-8 and UTF-16.

use std::collections::HashSet;
use std::path::Path;

use rusqlite::{Connection, params};
use sqlite_salvage::recover::Evidence;
use sqlite_salvage_format::cell::Cell;
use sqlite_salvage_format::page::{BtreePage, PageKind};

use crate::common::*;

/// A table of rows of varied length with an index, and a log of short
/// rows (more to a page, so its leaves span wider rowid ranges).
fn store(db: &Path, ps: u32, enc: &str) {
    let c = Connection::open(db).unwrap();
    c.execute_batch(&format!(
        "PRAGMA page_size={ps}; PRAGMA encoding='{enc}';
         CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER, note TEXT);
         CREATE INDEX t_name ON t(name);
         CREATE TABLE log(ts INTEGER, msg TEXT);
         BEGIN;"
    ))
    .unwrap();
    let rows = i64::from(ps) / 2;
    for i in 1..=rows {
        let note = "note ".repeat(1 + (i % 13) as usize);
        c.execute(
            "INSERT INTO t VALUES(?1, ?2, ?3, ?4)",
            params![i, format!("name {i}"), i * 7, note],
        )
        .unwrap();
    }
    for i in 1..=rows * 4 {
        c.execute(
            "INSERT INTO log VALUES(?1, ?2)",
            params![i, format!("m{i}")],
        )
        .unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
}

/// Pages of `name`'s tree of one kind (`leaf`, `internal`), in key order.
fn pages(db: &Path, name: &str, kind: &str) -> Vec<u32> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = ?2 ORDER BY path")
        .unwrap();
    st.query_map(params![name, kind], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// The rowids of table leaf `p` of `b`.
fn rowids(b: &[u8], p: u32, ps: u32) -> Vec<i64> {
    let at = (p as usize - 1) * ps as usize;
    let page = BtreePage::parse(&b[at..at + ps as usize], p, ps).unwrap();
    (0..page.cell_count)
        .filter_map(|i| match page.cell(i) {
            Ok(Cell::TableLeaf { rowid, .. }) => Some(rowid),
            _ => None,
        })
        .collect()
}

#[test]
fn a_pointer_into_another_tree_keeps_both_tables_whole() {
    for (ps, enc) in LAYOUTS {
        // A leaf of log far from the lost leaf's rowids, and one holding
        // the lost leaf's first rowid (some of its rows then lie inside
        // the range the pointer gives: read as t's, they were garbage).
        for overlapping in [false, true] {
            misplaced_leaf(ps, enc, overlapping);
        }
    }
}

fn misplaced_leaf(ps: u32, enc: &str, overlapping: bool) {
    let what = format!("{ps} {enc}, overlapping rowids {overlapping}");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("memory.db");
    store(&db, ps, enc);
    let want = keys(&sqlite_state(&Connection::open(&db).unwrap()));
    let t_leaves: HashSet<u32> = pages(&db, "t", "leaf").into_iter().collect();
    let log_leaves = pages(&db, "log", "leaf");
    let mut b = std::fs::read(&db).unwrap();
    let size = ps as usize;
    // The first interior page of t whose second child is a leaf: that
    // child pointer now points at a leaf in the middle of log.
    let (parent, lost) = pages(&db, "t", "internal")
        .into_iter()
        .find_map(|p| {
            let at = (p as usize - 1) * size;
            let page = BtreePage::parse(&b[at..at + size], p, ps).ok()?;
            assert_eq!(page.kind, PageKind::TableInterior);
            let child = page.cell(1).ok()?.left_child()?;
            t_leaves.contains(&child).then_some((p, child))
        })
        .unwrap_or_else(|| panic!("{what}: no interior page over leaves"));
    let at = (parent as usize - 1) * size;
    let off = at
        + BtreePage::parse(&b[at..at + size], parent, ps)
            .unwrap()
            .cell_offset(1)
            .unwrap();
    let first = rowids(&b, lost, ps)[0];
    let other = if overlapping {
        *log_leaves
            .iter()
            .find(|&&p| rowids(&b, p, ps).contains(&first))
            .unwrap()
    } else {
        log_leaves[log_leaves.len() / 2]
    };
    b[off..off + 4].copy_from_slice(&other.to_be_bytes());
    std::fs::write(&db, &b).unwrap();
    let out = tmp.path().join("recovered.db");
    let (report, conn) = recover_checked(&db, &out, &dir, &what);
    let got = keys(&sqlite_state(&conn));
    let missing: Vec<&String> = want.difference(&got).take(3).collect();
    let extra: Vec<&String> = got.difference(&want).take(3).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} missing, e.g. {missing:?}; {} never committed, e.g. {extra:?}",
        want.difference(&got).count(),
        got.difference(&want).count()
    );
    assert_eq!(report.lost_and_found, 0, "{what}");
    let t = report.tables.iter().find(|r| r.name == "t").unwrap();
    let by_hole = t.by_evidence.get(&Evidence::TreeHole).copied();
    assert!(by_hole.is_some_and(|n| n > 0), "{what}: {t:?}");
    assert!(
        report.orphan_pages.iter().any(|(p, _)| *p == lost),
        "{what}: page {lost} not an orphan: {:?}",
        report.orphan_pages
    );
}
