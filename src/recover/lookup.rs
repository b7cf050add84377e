//! Index lookups in the input: whether an index lists a row.
//!
//! Takes a plain index of the input (table columns only, BINARY and
//! ascending, as `index_copy::plain_indexes` finds them) and a row (its
//! record and rowid); gives whether the index holds the entry (the row's
//! key values, its rowid), by one descent of the index's b-tree: a few
//! page reads, nothing kept. `None` when the descent cannot tell (a page
//! on the way unreadable or of the wrong kind, an entry whose key spills
//! to overflow pages, a key value of the row missing).

use std::cmp::Ordering;

use super::index_copy::compare;
use crate::rows::column_value;
use crate::schema::Table;
use crate::snapshot::Snapshot;
use crate::tree::MAX_DEPTH;
use sqlite_salvage_format::page::{BtreePage, PageKind};
use sqlite_salvage_format::record::{Record, ValueRef};

/// A row looked up in one index: its key values by the index's columns,
/// then its rowid.
pub(crate) struct Probe<'r> {
    key: Vec<ValueRef<'r>>,
    rowid: i64,
}

impl<'r> Probe<'r> {
    /// The entry index columns `cols` of `t` give row `rowid`, its record
    /// `rec` parsed from `payload`; `None` when a key column lies past the
    /// record's end.
    pub fn new(
        t: &'r Table,
        cols: &[usize],
        (rec, payload): (&Record, &'r [u8]),
        rowid: i64,
    ) -> Option<Probe<'r>> {
        let mut key = Vec::with_capacity(cols.len());
        for &c in cols {
            let past = t
                .columns
                .get(c)
                .and_then(|col| col.slot)
                .is_some_and(|s| s >= rec.len());
            if past && t.rowid_alias != Some(c) {
                return None;
            }
            key.push(column_value(t, rec, payload, Some(rowid), c));
        }
        Some(Probe { key, rowid })
    }

    /// The entry of key values `key` and `rowid`.
    pub fn of_values(key: impl Iterator<Item = ValueRef<'r>>, rowid: i64) -> Probe<'r> {
        Probe {
            key: key.collect(),
            rowid,
        }
    }

    /// The order of an index entry (its record `e` parsed from `p`) against
    /// this probe; `None` when the entry is not one of this index's.
    fn cmp_entry(&self, e: &Record, p: &[u8]) -> Option<Ordering> {
        if e.len() != self.key.len() + 1 {
            return None;
        }
        for (k, v) in self.key.iter().enumerate() {
            match compare(e.value(p, k), *v) {
                Ordering::Equal => {}
                o => return Some(o),
            }
        }
        match e.value(p, self.key.len()) {
            ValueRef::Integer(r) => Some(r.cmp(&self.rowid)),
            _ => None,
        }
    }
}

/// Whether the index rooted at `root` lists `probe` (see the module doc).
pub(crate) fn index_lists(snap: &Snapshot, root: u32, probe: &Probe<'_>) -> Option<bool> {
    let mut buf = vec![0u8; snap.page_size() as usize];
    let mut rec = Record::new();
    let mut pgno = root;
    for _ in 0..MAX_DEPTH {
        if pgno == 0 || pgno > snap.page_count() {
            return None;
        }
        snap.read_page(pgno, &mut buf).ok()?;
        let page = BtreePage::parse(&buf, pgno, snap.usable_size()).ok()?;
        if !matches!(page.kind, PageKind::IndexLeaf | PageKind::IndexInterior) {
            return None;
        }
        // The first cell whose entry is not below the probe.
        let (mut lo, mut hi) = (0u16, page.cell_count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let cell = page.cell(mid).ok()?;
            let payload = cell.payload()?;
            if payload.spills() {
                return None;
            }
            rec.parse(payload.local).ok()?;
            match probe.cmp_entry(&rec, payload.local)? {
                Ordering::Less => lo = mid + 1,
                Ordering::Equal => return Some(true),
                Ordering::Greater => hi = mid,
            }
        }
        if page.kind == PageKind::IndexLeaf {
            return Some(false);
        }
        pgno = if lo < page.cell_count {
            page.cell(lo).ok()?.left_child()?
        } else {
            page.right_child?
        };
    }
    None
}
