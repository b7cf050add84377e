//! Dropped tables: their `sqlite_schema` rows in the schema pages' free
//! space.
//!
//! Takes the input and the page map; gives the rowid tables whose
//! `sqlite_schema` row was deleted (a freed cell of page 1 or another page
//! of the schema's tree: a DROP TABLE) and that the live schema does not
//! name, described from their CREATE statement as SQLite parses it, for
//! the deleted-rows stage to look for their rows.

use std::collections::HashSet;

use super::freespace::free_cells;
use super::pagemap::{Owner, PageMap};
use crate::error::Result;
use crate::schema::{Schema, SchemaEntry, Table, schema_table};
use crate::snapshot::Salvage;
use sqlite_salvage_format::page::{BtreePage, PageKind};
use sqlite_salvage_format::record::{Record, ValueRef, decode_text};

/// The tables dropped from `schema` whose schema rows survive (see the
/// module doc).
pub(crate) fn dropped_tables(
    salvage: &Salvage,
    schema: &Schema,
    map: &PageMap,
) -> Result<Vec<Table>> {
    let snap = &salvage.snapshot;
    let (usable, enc) = (snap.usable_size(), snap.header().encoding);
    let meta = schema_table();
    let live: HashSet<String> = schema
        .entries
        .iter()
        .map(|e| e.name.to_ascii_lowercase())
        .collect();
    let mut seen: HashSet<String> = HashSet::new();
    let mut entries = Vec::new();
    let mut buf = vec![0u8; snap.page_size() as usize];
    let mut rec = Record::new();
    for pgno in 1..=snap.page_count() {
        if pgno != 1 && map.get(pgno) != Some(Owner::Schema) {
            continue;
        }
        if snap.read_page(pgno, &mut buf).is_err() {
            continue;
        }
        let Ok(page) = BtreePage::parse(&buf, pgno, usable) else {
            continue;
        };
        for c in free_cells(&buf, &page, usable, &meta, enc) {
            if c.overflow != 0 || rec.parse(&c.payload).is_err() {
                continue;
            }
            let text = |i: usize| match rec.value(&c.payload, i) {
                ValueRef::Text(t) => Some(decode_text(t, enc).into_owned()),
                _ => None,
            };
            let (Some(kind), Some(name), Some(tbl), Some(sql)) =
                (text(0), text(1), text(2), text(4))
            else {
                continue;
            };
            let ValueRef::Integer(root) = rec.value(&c.payload, 3) else {
                continue;
            };
            let key = name.to_ascii_lowercase();
            let plain = sql
                .trim_start()
                .to_ascii_uppercase()
                .starts_with("CREATE TABLE");
            if kind != "table"
                || !plain
                || key.starts_with("sqlite_")
                || live.contains(&key)
                || !seen.insert(key)
            {
                continue;
            }
            entries.push(SchemaEntry {
                kind,
                name,
                tbl_name: tbl,
                rootpage: u32::try_from(root).unwrap_or(0),
                sql: Some(sql),
            });
        }
    }
    let tables = Schema::from_entries(entries, enc)?.tables;
    Ok(tables
        .into_iter()
        .filter(|t| t.parsed && !t.without_rowid)
        .collect())
}

/// The leaves of a dropped table's tree, walked from its old root over
/// freelist pages only (a page reused since is another's): each a page of
/// that table for certain, whatever its records' shape.
pub(crate) fn dropped_leaves(salvage: &Salvage, map: &PageMap, root: u32) -> Vec<u32> {
    let snap = &salvage.snapshot;
    let mut leaves = Vec::new();
    let mut seen = HashSet::new();
    let mut queue = vec![root];
    let mut buf = vec![0u8; snap.page_size() as usize];
    while let Some(pgno) = queue.pop() {
        if pgno == 0 || map.get(pgno) != Some(Owner::Free) || !seen.insert(pgno) {
            continue;
        }
        if snap.read_page(pgno, &mut buf).is_err() {
            continue;
        }
        let Ok(page) = BtreePage::parse(&buf, pgno, snap.usable_size()) else {
            continue;
        };
        match page.kind {
            PageKind::TableLeaf => leaves.push(pgno),
            PageKind::TableInterior => {
                if let Ok(children) = page.children() {
                    queue.extend(children);
                }
            }
            _ => {}
        }
    }
    leaves.sort_unstable();
    leaves
}
