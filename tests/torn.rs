//! Torn pages, judged cell by cell: a table leaf written only in part
//! (some of its 512-byte sectors still those of the version before) keeps,
//! in its table, every row whose cell is intact and stands on its own,
//! with no row that was never committed. The generator's two versions are
//! the oracle, at page sizes 1024, 4096 and 65536 (a 512-byte page cannot
//! tear) in UTF-8 and UTF-16, with the older sectors taken at even and at
//! odd positions, for a rowid table and a WITHOUT ROWID one.

use std::collections::HashSet;
use std::path::Path;

use rusqlite::{Connection, params};
use sqlite_salvage::recover::Evidence;
use sqlite_salvage_format::cell::Cell;
use sqlite_salvage_format::page::BtreePage;
use sqlite_salvage_format::record::{Record, ValueRef};

use crate::common::*;

const LAYOUTS: [(u32, &str); 5] = [
    (1024, "UTF-8"),
    (1024, "UTF-16le"),
    (4096, "UTF-8"),
    (4096, "UTF-16be"),
    (65536, "UTF-8"),
];

/// A table of rows of varied length, in rollback-journal mode; keyed by
/// its rowid, or WITHOUT ROWID.
fn store(db: &Path, ps: u32, enc: &str, without_rowid: bool) {
    let c = Connection::open(db).unwrap();
    let wr = if without_rowid { "WITHOUT ROWID" } else { "" };
    c.execute_batch(&format!(
        "PRAGMA page_size={ps}; PRAGMA encoding='{enc}';
         CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER, note TEXT) {wr};
         CREATE INDEX t_name ON t(name);
         BEGIN;"
    ))
    .unwrap();
    let rows = i64::from(ps) / 8;
    for i in 1..=rows * 4 {
        c.execute(
            "INSERT INTO t VALUES(?1, ?2, ?3, ?4)",
            params![
                i,
                format!("name {i}"),
                i * 7,
                "note ".repeat(1 + (i % 13) as usize)
            ],
        )
        .unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
}

/// The leaves of `t`, in key order.
fn leaves(db: &Path) -> Vec<u32> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT pageno FROM dbstat WHERE name = 't' AND pagetype = 'leaf' ORDER BY path")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

fn rows_of(db: &Path) -> HashSet<String> {
    let tmp = tempfile::tempdir().unwrap();
    let copy = copy_set(db, tmp.path(), "c.db");
    keys(&sqlite_state(&Connection::open(&copy).unwrap()))
        .into_iter()
        .filter(|k| k.starts_with("t|"))
        .collect()
}

/// The id of a row of `t` by its key in [`sqlite_state`]'s terms.
fn id_of(key: &str) -> Option<i64> {
    let rest = key
        .strip_prefix("t|(Some(")
        .or_else(|| key.strip_prefix("t|(None, [Integer("))?;
    rest.split(')').next()?.parse().ok()
}

/// The id of cell `i` of a leaf of `t`: its rowid, or its record's first
/// value.
fn cell_id(page: &BtreePage<'_>, i: u16) -> Option<i64> {
    match page.cell(i).ok()? {
        Cell::TableLeaf { rowid, .. } => Some(rowid),
        Cell::IndexLeaf { payload } if !payload.spills() => {
            let mut rec = Record::new();
            rec.parse(payload.local).ok()?;
            match rec.value(payload.local, 0) {
                ValueRef::Integer(id) => Some(id),
                _ => None,
            }
        }
        _ => None,
    }
}

#[test]
fn a_torn_leaf_keeps_every_intact_cell_and_invents_none() {
    torn_leaves(false);
}

#[test]
fn a_torn_without_rowid_leaf_keeps_every_intact_cell_and_invents_none() {
    torn_leaves(true);
}

fn torn_leaves(without_rowid: bool) {
    let mut torn_seen = 0usize;
    for (ps, enc) in LAYOUTS {
        // The older sectors at odd or even places after the first; and,
        // for a rowid table, the first (header and cell pointers) older
        // too: the new cells no pointer reaches are then carved, and kept
        // where an index lists their key and rowid.
        let variants: &[(bool, bool)] = if without_rowid {
            &[(true, false), (false, false)]
        } else {
            &[(true, false), (false, false), (true, true), (false, true)]
        };
        for &(odd, header_old) in variants {
            let what = format!(
                "{ps} {enc}, WITHOUT ROWID {without_rowid}, older sectors at odd places: {odd}, \
                 older header: {header_old}"
            );
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("in");
            std::fs::create_dir_all(&dir).unwrap();
            let db = dir.join("memory.db");
            store(&db, ps, enc, without_rowid);
            let p = leaves(&db)[1];
            let old_rows = rows_of(&db);
            let old = std::fs::read(&db).unwrap();
            // The new version of page p: some rows changed in place, one
            // gone, one longer (cells move).
            let c = Connection::open(&db).unwrap();
            // The rows on page p, by the pages their bytes are on.
            let mut on_p: Vec<i64> = locate(&db)
                .iter()
                .filter(|(_, on)| on.last() == Some(&p))
                .filter_map(|(k, _)| id_of(k))
                .collect();
            on_p.sort_unstable();
            assert!(on_p.len() >= 6, "{what}: too few rows on the leaf");
            for (k, id) in on_p.iter().enumerate() {
                match k % 3 {
                    0 => c
                        .execute("UPDATE t SET n = n + 1 WHERE id = ?1", [id])
                        .unwrap(),
                    1 if k == 1 => c.execute("DELETE FROM t WHERE id = ?1", [id]).unwrap(),
                    _ => 0,
                };
            }
            drop(c);
            let new_rows = rows_of(&db);
            let new = std::fs::read(&db).unwrap();
            let at = (p as usize - 1) * ps as usize;
            let new_page = new[at..at + ps as usize].to_vec();
            // Torn: sector 0 (the header and pointers) new, then every
            // other sector from the old version.
            let mut torn = new_page.clone();
            for s in 0..ps as usize / 512 {
                if (s == 0 && header_old) || (s > 0 && (s % 2 == 1) == odd) {
                    torn[s * 512..(s + 1) * 512]
                        .copy_from_slice(&old[at + s * 512..at + (s + 1) * 512]);
                }
            }
            if torn == new_page || (header_old && ps == 1024) {
                // A 1024-byte page has one sector after the first.
                continue;
            }
            let mut b = new.clone();
            b[at..at + ps as usize].copy_from_slice(&torn);
            std::fs::write(&db, &b).unwrap();
            // The rows whose pointer and cell read the same in the torn page
            // as in the new one, the cell within one sector, must come back.
            let page = BtreePage::parse(&new_page, p, ps).unwrap();
            let mut intact = Vec::new();
            for i in 0..page.cell_count {
                let start = page.cell_offset(i).unwrap();
                let end = start + page.cell_size(i).unwrap();
                let ptr = 8 + 2 * usize::from(i);
                let same = torn[start..end] == new_page[start..end]
                    && (header_old || torn[ptr..ptr + 2] == new_page[ptr..ptr + 2]);
                if same && start / 512 == (end - 1) / 512 {
                    intact.extend(cell_id(&page, i));
                }
            }
            assert!(!intact.is_empty(), "{what}: no intact cell to look for");
            let out = tmp.path().join("recovered.db");
            let (report, conn) = recover_checked(&db, &out, &dir, &what);
            let got: HashSet<String> = keys(&sqlite_state(&conn))
                .into_iter()
                .filter(|k| k.starts_with("t|"))
                .collect();
            for id in &intact {
                let row = new_rows.iter().find(|k| id_of(k) == Some(*id)).unwrap();
                // With the older pointers, the older version of the row may
                // be read first (committed too).
                let older = old_rows.iter().find(|k| id_of(k) == Some(*id));
                let back =
                    got.contains(row) || (header_old && older.is_some_and(|o| got.contains(o)));
                assert!(
                    back,
                    "{what}: intact row {id} missing; got {:?}; lost_and_found {}; {}",
                    got.iter().find(|k| id_of(k) == Some(*id)),
                    report.lost_and_found,
                    serde_json::to_string(&report.tables).unwrap()
                );
            }
            let invented: Vec<&String> = got
                .iter()
                .filter(|k| !new_rows.contains(*k) && !old_rows.contains(*k))
                .collect();
            assert!(
                invented.is_empty(),
                "{what}: rows never committed: {invented:?}"
            );
            let flagged = report
                .flagged
                .iter()
                .filter(|f| f.flag.starts_with("on a page whose space does not add up"))
                .count();
            // (A tear that leaves the page's space adding up is not seen.)
            let seen = !BtreePage::parse(&torn, p, ps).unwrap().is_consistent();
            assert!(
                !seen || flagged > 0,
                "{what}: rows kept on their own evidence not flagged"
            );
            let own: u64 = report
                .tables
                .iter()
                .filter_map(|t| t.by_evidence.get(&Evidence::OwnCell))
                .sum();
            assert_eq!(own as usize, flagged, "{what}: rows on their own evidence");
            torn_seen += usize::from(seen);
        }
    }
    assert!(torn_seen >= 4, "only {torn_seen} tears seen");
}
