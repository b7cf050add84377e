//! Finding rows on pages the b-tree cannot vouch for: orphaned leaf pages
//! and pages whose header or cell pointers are damaged.
//!
//! A candidate cell is kept only when its record decodes completely and its
//! length agrees exactly with the payload size the cell claims: a random
//! byte run rarely passes both.

use crate::schema::{Affinity, Column, Table};
use sqlite_salvage_format::Malformed;
use sqlite_salvage_format::cell::{Payload, local_size};
use sqlite_salvage_format::header::TextEncoding;
use sqlite_salvage_format::page::{BtreePage, PageKind};
use sqlite_salvage_format::record::{Record, ValueRef};
use sqlite_salvage_format::varint::{read_varint, read_varint_i64};

/// A cell found on a page.
#[derive(Debug, Clone)]
pub struct FoundCell {
    /// Offset of the cell on its page.
    pub offset: usize,
    /// Cell index when it came from the cell pointer array.
    pub index: Option<u16>,
    /// The rowid (table leaf cells).
    pub rowid: Option<i64>,
    /// Payload size the cell claims.
    pub total: u64,
    /// Local payload bytes (owned: pages are reused).
    pub local: Vec<u8>,
    /// First overflow page, 0 when none.
    pub overflow: u32,
    /// Bytes the cell takes on its page.
    pub size: usize,
}

impl FoundCell {
    /// The payload as a [`Payload`] view.
    pub fn payload(&self) -> Payload<'_> {
        Payload {
            total: self.total,
            local: &self.local,
            overflow: self.overflow,
        }
    }
}

/// Cells of a page with a usable header, through its cell pointer array
/// (leaf cells, and the records of index interior cells); cells that do not
/// decode are skipped and counted.
pub fn cells_by_pointer(page: &BtreePage<'_>) -> (Vec<FoundCell>, usize) {
    use sqlite_salvage_format::cell::Cell;
    let mut out = Vec::new();
    let mut bad = 0;
    for i in 0..page.cell_count {
        let (Ok(off), Ok(cell)) = (page.cell_offset(i), page.cell(i)) else {
            bad += 1;
            continue;
        };
        let rowid = match cell {
            Cell::TableLeaf { rowid, .. } => Some(rowid),
            _ => None,
        };
        let Some(p) = cell.payload() else { continue };
        out.push(FoundCell {
            offset: off,
            index: Some(i),
            rowid,
            total: p.total,
            local: p.local.to_vec(),
            overflow: p.overflow,
            size: page.cell_size(i).unwrap_or(0),
        });
    }
    (out, bad)
}

/// Decodes a leaf cell at `off` of `page` (usable part), requiring the local
/// record header to be whole.
pub fn cell_at(
    page: &[u8],
    off: usize,
    kind: PageKind,
    usable: u32,
) -> Result<FoundCell, Malformed> {
    let buf = page.get(off..).ok_or(Malformed("offset past the page"))?;
    let (total, n1) = read_varint(buf).ok_or(Malformed("cell"))?;
    let (rowid, n2) = if kind == PageKind::TableLeaf {
        let (r, n) = buf
            .get(n1..)
            .and_then(read_varint_i64)
            .ok_or(Malformed("cell"))?;
        (Some(r), n)
    } else {
        (None, 0)
    };
    if total == 0 || total > crate::tree::MAX_PAYLOAD {
        return Err(Malformed("payload size"));
    }
    let start = n1 + n2;
    let local = local_size(total, usable, kind) as usize;
    let end = start.checked_add(local).ok_or(Malformed("cell"))?;
    let bytes = buf
        .get(start..end)
        .ok_or(Malformed("payload past the page"))?;
    let overflow = if (local as u64) < total {
        let o = sqlite_salvage_format::be32(buf, end).ok_or(Malformed("overflow pointer"))?;
        if o == 0 {
            return Err(Malformed("overflow pointer is zero"));
        }
        o
    } else {
        0
    };
    Ok(FoundCell {
        offset: off,
        index: None,
        rowid,
        total,
        local: bytes.to_vec(),
        overflow,
        size: end + if overflow != 0 { 4 } else { 0 },
    })
}

/// Whether a whole (non-spilling) payload is exactly one well-formed record.
/// A record whose values take no bytes is no evidence: a run of one
/// repeated byte (an overflow page of a blob, say) decodes as one, header
/// and all. Nor are reserved serial types (10, 11): SQLite never writes
/// them.
fn exact_record(payload: &[u8], rec: &mut Record) -> bool {
    rec.parse(payload).is_ok()
        && rec.end() == payload.len()
        && !rec.is_empty()
        && !rec.body_is_empty()
        && !rec.uses_reserved_types()
}

/// Scans the content of a page whose header or cell pointers cannot be
/// trusted for leaf cells of `kind`. A candidate must decode as a cell,
/// carry a record whose header is whole and, when it does not spill, whose
/// length equals the payload size exactly. Found cells do not overlap.
pub fn scan_page(page: &[u8], kind: PageKind, usable: u32, first: usize) -> Vec<FoundCell> {
    scan_range(page, kind, usable, first, &[])
}

/// Cells of a leaf page that its cell pointers miss (a damaged cell count
/// or pointer array): carved from the cell content area its header names,
/// stepping over the cells the pointers do reach and over freeblocks. The
/// space below the content area and the freeblocks are where a deleted
/// row's bytes linger: they are not scanned, so no deleted row comes back.
pub fn scan_unpointed(
    p: &BtreePage<'_>,
    page: &[u8],
    kind: PageKind,
    usable: u32,
) -> Vec<FoundCell> {
    let mut skip: Vec<(usize, usize)> = (0..p.cell_count)
        .filter_map(|i| {
            let off = p.cell_offset(i).ok()?;
            Some((off, off.saturating_add(p.cell_size(i).ok()?)))
        })
        .collect();
    if let Ok(free) = p.freeblocks() {
        skip.extend(free.into_iter().map(|(o, n)| (o, o.saturating_add(n))));
    }
    skip.sort_unstable();
    let first = (p.content_start as usize).max(p.header_end());
    scan_range(page, kind, usable, first, &skip)
}

/// [`scan_page`] from `first`, stepping over the byte ranges in `skip`
/// (sorted `(start, end)` pairs): no cell found overlaps one.
fn scan_range(
    page: &[u8],
    kind: PageKind,
    usable: u32,
    first: usize,
    skip: &[(usize, usize)],
) -> Vec<FoundCell> {
    let mut out = Vec::new();
    let mut rec = Record::new();
    let end = (usable as usize).min(page.len());
    let mut next = 0;
    let mut off = first;
    while off + 4 <= end {
        // Past every range that ends by here; out of the one we are in.
        while let Some(&(s, e)) = skip.get(next) {
            if e <= off {
                next += 1;
            } else if s <= off {
                off = e;
                next += 1;
            } else {
                break;
            }
        }
        // A cell must end before the next range starts.
        let limit = skip.get(next).map_or(end, |&(s, _)| s.min(end));
        if off + 4 > limit {
            off = limit.max(off + 1);
            continue;
        }
        if let Ok(c) = cell_at(&page[..limit], off, kind, usable) {
            let ok = if c.overflow == 0 {
                exact_record(&c.local, &mut rec)
            } else {
                // Spilling: the header must be in the local part and the
                // values must add up to the claimed total.
                rec.parse_partial(&c.local).is_ok()
                    && !rec.is_empty()
                    && !rec.uses_reserved_types()
                    && record_total(&c.local) == Some(c.total)
            };
            if ok {
                off += c.size.max(4);
                out.push(c);
                continue;
            }
        }
        off += 1;
    }
    out
}

/// Total record length its header describes.
fn record_total(payload: &[u8]) -> Option<u64> {
    let (hdr, mut pos) = read_varint(payload)?;
    let hdr_len = usize::try_from(hdr).ok()?;
    let mut total = hdr;
    while pos < hdr_len {
        let (serial, n) = payload.get(pos..hdr_len).and_then(read_varint)?;
        pos += n;
        total = total.checked_add(sqlite_salvage_format::record::serial_len(serial))?;
    }
    (pos == hdr_len).then_some(total)
}

/// Whether a record's shape fits `table`: not more values than it stores,
/// NULL in the rowid alias's slot, and no value of a type the column's
/// affinity would have converted on the way in.
pub fn fits(table: &Table, rec: &Record, payload: &[u8]) -> bool {
    if !table.parsed || rec.is_empty() || rec.len() > table.stored_columns() {
        return false;
    }
    for (i, col) in table.columns.iter().enumerate() {
        let Some(slot) = col.slot else { continue };
        if slot >= rec.len() {
            continue;
        }
        let v = rec.value(payload, slot);
        if table.rowid_alias == Some(i) {
            if v != ValueRef::Null {
                return false;
            }
            continue;
        }
        if (col.notnull && v == ValueRef::Null) || !value_fits(col, v) {
            return false;
        }
    }
    true
}

/// Whether a row's decoded values (as kept for lost_and_found) could be a
/// row of `table`, by the rules of [`fits`].
pub fn values_fit(table: &Table, values: &[sqlite_salvage_format::record::Value]) -> bool {
    use sqlite_salvage_format::record::Value;
    if !table.parsed || values.is_empty() || values.len() > table.stored_columns() {
        return false;
    }
    table.columns.iter().enumerate().all(|(i, col)| {
        let Some(v) = col.slot.and_then(|s| values.get(s)) else {
            return true;
        };
        let v = match v {
            Value::Null => ValueRef::Null,
            Value::Integer(x) => ValueRef::Integer(*x),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        };
        if table.rowid_alias == Some(i) {
            return v == ValueRef::Null;
        }
        !(col.notnull && v == ValueRef::Null) && value_fits(col, v)
    })
}

/// Whether a stored value can be in a column of this type: a TEXT column
/// never stores a number, and an INTEGER or NUMERIC one stores an integral
/// real as an integer.
pub fn value_fits(col: &Column, v: ValueRef<'_>) -> bool {
    match (col.affinity, v) {
        (Affinity::Text, ValueRef::Integer(_) | ValueRef::Real(_)) => false,
        (Affinity::Integer | Affinity::Numeric, ValueRef::Real(f)) => {
            f.fract() != 0.0 || f.abs() > 9.0e18
        }
        _ => true,
    }
}

/// Whether `b` is valid text in encoding `enc`.
pub(crate) fn text_is_valid(b: &[u8], enc: TextEncoding) -> bool {
    let unit = |c: &[u8]| match (enc, c) {
        (TextEncoding::Utf16le, [x, y]) => u16::from_le_bytes([*x, *y]),
        (_, [x, y]) => u16::from_be_bytes([*x, *y]),
        _ => 0,
    };
    match enc {
        TextEncoding::Utf8 => std::str::from_utf8(b).is_ok(),
        _ => b.len() % 2 == 0 && char::decode_utf16(b.chunks_exact(2).map(unit)).all(|c| c.is_ok()),
    }
}

/// Whether every text value of record `rec` (parsed from `payload`) is
/// valid in encoding `enc`.
pub(crate) fn texts_valid(rec: &Record, payload: &[u8], enc: TextEncoding) -> bool {
    (0..rec.len()).all(|i| match rec.value(payload, i) {
        ValueRef::Text(b) => text_is_valid(b, enc),
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leaf of a real table whose rows 7k and 7k+1 were deleted: its
    /// bytes and page number.
    fn leaf_with_freeblocks() -> (Vec<u8>, u32) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.db");
        let c = rusqlite::Connection::open(&p).unwrap();
        c.execute_batch(
            "PRAGMA page_size=4096; PRAGMA secure_delete=OFF;
             CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 600)
             INSERT INTO t SELECT i, printf('value %d %.50c', i, 'x') FROM n;
             DELETE FROM t WHERE id % 7 IN (0, 1);",
        )
        .unwrap();
        let leaf: u32 = c
            .query_row(
                "SELECT pageno FROM dbstat WHERE name='t' AND pagetype='leaf' LIMIT 1 OFFSET 2",
                [],
                |r| r.get(0),
            )
            .unwrap();
        drop(c);
        let at = (leaf as usize - 1) * 4096;
        (std::fs::read(&p).unwrap()[at..at + 4096].to_vec(), leaf)
    }

    #[test]
    fn what_the_pointers_miss_is_carved_but_not_from_freeblocks() {
        let (mut page, pgno) = leaf_with_freeblocks();
        let p = BtreePage::parse(&page, pgno, 4096).unwrap();
        let live = p.cell_count;
        let (off, size) = (p.cell_offset(0).unwrap(), p.cell_size(0).unwrap());
        let (free, free_size) = p.freeblocks().unwrap()[0];
        assert!(free_size >= size + 4);
        // A whole cell inside a freeblock (as a deleted row's blob could
        // hold one), and the cell count cut to 1.
        let copy = page[off..off + size].to_vec();
        page[free + 4..free + 4 + size].copy_from_slice(&copy);
        page[3..5].copy_from_slice(&1u16.to_be_bytes());
        let p = BtreePage::parse(&page, pgno, 4096).unwrap();
        let found = scan_unpointed(&p, &page, PageKind::TableLeaf, 4096);
        assert_eq!(
            found.len(),
            usize::from(live) - 1,
            "every cell but the pointed one"
        );
        assert!(found.iter().all(|c| c.offset != off));
        assert!(
            found
                .iter()
                .all(|c| c.offset < free || c.offset >= free + free_size)
        );
        // Scanned whole, the copy in the freeblock is found too.
        let all = scan_page(&page, PageKind::TableLeaf, 4096, 8);
        assert!(all.iter().any(|c| c.offset == free + 4));
    }
}
