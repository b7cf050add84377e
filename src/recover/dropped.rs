//! Dropped tables: their `sqlite_schema` rows in the schema pages' free
//! space.
//!
//! Takes the input and the page map; gives the rowid tables whose
//! `sqlite_schema` row was deleted (a freed cell of page 1 or another page
//! of the schema's tree: a DROP TABLE) and that the live schema does not
//! name, described from their CREATE statement as SQLite parses it, for
//! the deleted-rows stage to look for their rows; and, for freed leaves
//! no table's records fit, tables named by their shape ([`shape_table`]).

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

/// A dropped table's pages, found by a walk of its tree from its old root
/// over freelist pages only (a page reused since is another's): each a page
/// of that table for certain, whatever its records' shape.
#[derive(Default)]
pub(crate) struct DroppedPages {
    /// Its leaves.
    pub leaves: Vec<u32>,
    /// Pages it reached that no longer read as b-tree pages: freelist trunk
    /// pages, their first bytes rewritten with the list, the cells past
    /// those bytes left as they were.
    pub headless: Vec<u32>,
}

/// The pages of the dropped table whose old root is `root` ([`DroppedPages`]).
pub(crate) fn dropped_pages(salvage: &Salvage, map: &PageMap, root: u32) -> DroppedPages {
    let snap = &salvage.snapshot;
    let mut found = DroppedPages::default();
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
            found.headless.push(pgno);
            continue;
        };
        match page.kind {
            PageKind::TableLeaf => found.leaves.push(pgno),
            PageKind::TableInterior => {
                if let Ok(children) = page.children() {
                    queue.extend(children);
                }
            }
            _ => {}
        }
    }
    found.leaves.sort_unstable();
    found.headless.sort_unstable();
    found
}

/// Most columns a shape-named table takes (SQLite's default limit).
pub(crate) const MAX_SHAPE_COLUMNS: usize = 2000;

/// Most shape-named tables one recovery makes (one per record width): a
/// file crafted with freed leaves of every width does not make thousands.
pub(crate) const MAX_SHAPES: usize = 64;

/// A table for the rows of freed leaves no table's records fit (a dropped
/// table whose schema row is gone): `recovered_deleted_rows_<k>` (the
/// first name `schema` does not use from `k` on), with `width` untyped
/// columns `c0`, `c1`, ... that take any value. Its root is a stand-in:
/// it has no tree.
pub(crate) fn shape_table(
    schema: &Schema,
    k: usize,
    width: usize,
    enc: sqlite_salvage_format::header::TextEncoding,
) -> Result<Option<Table>> {
    let mut k = k;
    let mut name = format!("recovered_deleted_rows_{k}");
    while schema.table(&name).is_some() {
        k += 1;
        name = format!("recovered_deleted_rows_{k}");
    }
    let cols: Vec<String> = (0..width).map(|i| format!("c{i}")).collect();
    let entry = SchemaEntry {
        kind: "table".into(),
        name: name.clone(),
        tbl_name: name.clone(),
        rootpage: u32::MAX,
        sql: Some(format!("CREATE TABLE {name}({})", cols.join(", "))),
    };
    let tables = Schema::from_entries(vec![entry], enc)?.tables;
    Ok(tables.into_iter().find(|t| t.parsed))
}

/// The storage classes each column of a shape-named table was seen to hold
/// on the freed leaves that made it (through their pointers): a record
/// found in free space joins it only with values of those classes (an
/// untyped table fits any record of its width, garbage too).
pub(crate) struct Shape {
    /// The table, by its position among the stage's tables.
    pub table: usize,
    classes: Vec<u8>,
}

impl Shape {
    pub fn new(table: usize, width: usize) -> Shape {
        Shape {
            table,
            classes: vec![0; width],
        }
    }

    /// Notes the classes of a record of the table's leaves.
    pub fn observe(&mut self, rec: &Record, payload: &[u8]) {
        for (i, c) in self.classes.iter_mut().enumerate() {
            *c |= class(rec.value(payload, i));
        }
    }

    /// Whether every value of `rec` is of a class its column was seen
    /// with.
    pub fn admits(&self, rec: &Record, payload: &[u8]) -> bool {
        rec.len() == self.classes.len()
            && (0..rec.len()).all(|i| {
                self.classes
                    .get(i)
                    .is_some_and(|&c| c & class(rec.value(payload, i)) != 0)
            })
    }
}

fn class(v: ValueRef<'_>) -> u8 {
    match v {
        ValueRef::Null => 1,
        ValueRef::Integer(_) => 2,
        ValueRef::Real(_) => 4,
        ValueRef::Text(_) => 8,
        ValueRef::Blob(_) => 16,
    }
}
