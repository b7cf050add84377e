//! B-tree cells and the payload spill rule.
//!
//! ```text
//! table leaf     (0x0d): varint payload-size, varint rowid, payload, [u32 first overflow]
//! table interior (0x05): u32 left child, varint rowid
//! index leaf     (0x0a): varint payload-size, payload, [u32 first overflow]
//! index interior (0x02): u32 left child, varint payload-size, payload, [u32 first overflow]
//! ```
//!
//! With U the usable page size and P the payload size, a table leaf keeps
//! the whole payload on the page when P <= U-35 and an index page when
//! P <= ((U-12)*64/255)-23. Otherwise, with M = ((U-12)*32/255)-23 and
//! K = M + ((P-M) % (U-4)), the page keeps K bytes if K fits under that
//! maximum, else M bytes; the rest goes to a chain of overflow pages, each a
//! u32 next-page number followed by U-4 bytes of payload.

use super::kind::PageKind;
use super::varint::{read_varint, read_varint_i64};
use super::{Malformed, be32};

/// The most payload a cell of `kind` keeps on the page before spilling.
#[inline]
pub fn max_local(usable: u32, kind: PageKind) -> u64 {
    let u = u64::from(usable);
    if kind.is_table() {
        u - 35
    } else {
        ((u - 12) * 64 / 255) - 23
    }
}

/// The least payload a spilling cell keeps on the page.
#[inline]
pub fn min_local(usable: u32) -> u64 {
    ((u64::from(usable) - 12) * 32 / 255) - 23
}

/// How many bytes of a `total`-byte payload are stored on the page.
#[inline]
pub fn local_size(total: u64, usable: u32, kind: PageKind) -> u64 {
    let max = max_local(usable, kind);
    if total <= max {
        return total;
    }
    let min = min_local(usable);
    let k = min + (total - min) % (u64::from(usable) - 4);
    if k <= max { k } else { min }
}

/// A cell's payload: the bytes on the page and where the rest continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload<'a> {
    /// Total payload size claimed by the cell.
    pub total: u64,
    /// The bytes stored on the page.
    pub local: &'a [u8],
    /// First overflow page, or 0 when the payload is all local.
    pub overflow: u32,
}

impl Payload<'_> {
    /// Whether the payload continues on overflow pages.
    #[inline]
    pub fn spills(&self) -> bool {
        (self.local.len() as u64) < self.total
    }
}

/// One decoded cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// A row of a rowid table.
    TableLeaf {
        /// The rowid.
        rowid: i64,
        /// The record.
        payload: Payload<'a>,
    },
    /// A divider of a rowid table.
    TableInterior {
        /// Child page holding keys <= `rowid`.
        left: u32,
        /// The divider key.
        rowid: i64,
    },
    /// An index entry (or a WITHOUT ROWID row) on a leaf.
    IndexLeaf {
        /// The key record.
        payload: Payload<'a>,
    },
    /// An index entry on an interior page, with the child holding smaller keys.
    IndexInterior {
        /// Child page holding smaller keys.
        left: u32,
        /// The key record.
        payload: Payload<'a>,
    },
}

impl<'a> Cell<'a> {
    /// Decodes the cell starting at `buf[0]`, where `buf` runs to the end
    /// of the page's usable area.
    pub fn parse(buf: &'a [u8], kind: PageKind, usable: u32) -> Result<Self, Malformed> {
        match kind {
            PageKind::TableInterior => {
                let left = be32(buf, 0).ok_or(Malformed("cell runs past the page"))?;
                let (rowid, _) = buf
                    .get(4..)
                    .and_then(read_varint_i64)
                    .ok_or(Malformed("cell runs past the page"))?;
                Ok(Cell::TableInterior { left, rowid })
            }
            PageKind::TableLeaf => {
                let (total, n1) = read_varint(buf).ok_or(Malformed("cell runs past the page"))?;
                let (rowid, n2) = buf
                    .get(n1..)
                    .and_then(read_varint_i64)
                    .ok_or(Malformed("cell runs past the page"))?;
                let payload = payload_at(buf, n1 + n2, total, kind, usable)?;
                Ok(Cell::TableLeaf { rowid, payload })
            }
            PageKind::IndexLeaf => {
                let (total, n1) = read_varint(buf).ok_or(Malformed("cell runs past the page"))?;
                let payload = payload_at(buf, n1, total, kind, usable)?;
                Ok(Cell::IndexLeaf { payload })
            }
            PageKind::IndexInterior => {
                let left = be32(buf, 0).ok_or(Malformed("cell runs past the page"))?;
                let (total, n1) = buf
                    .get(4..)
                    .and_then(read_varint)
                    .ok_or(Malformed("cell runs past the page"))?;
                let payload = payload_at(buf, 4 + n1, total, kind, usable)?;
                Ok(Cell::IndexInterior { left, payload })
            }
        }
    }

    /// The payload, for the kinds that carry one.
    #[inline]
    pub fn payload(&self) -> Option<&Payload<'a>> {
        match self {
            Cell::TableLeaf { payload, .. }
            | Cell::IndexLeaf { payload }
            | Cell::IndexInterior { payload, .. } => Some(payload),
            Cell::TableInterior { .. } => None,
        }
    }

    /// The left child, for interior cells.
    #[inline]
    pub fn left_child(&self) -> Option<u32> {
        match self {
            Cell::TableInterior { left, .. } | Cell::IndexInterior { left, .. } => Some(*left),
            _ => None,
        }
    }
}

/// Size of the cell at `buf[0]` in bytes (header, local payload and overflow
/// pointer), as SQLite's `cellSizePtr` counts it (at least 4).
#[inline]
pub fn cell_size(buf: &[u8], kind: PageKind, usable: u32) -> Result<usize, Malformed> {
    let cell = Cell::parse(buf, kind, usable)?;
    size_of_parsed(buf, &cell)
}

/// The size in bytes of `cell`, parsed from the start of `buf` (as
/// [`cell_size`] gives it, without parsing the cell again).
pub(crate) fn size_of_parsed(buf: &[u8], cell: &Cell<'_>) -> Result<usize, Malformed> {
    let end = match cell {
        Cell::TableInterior { .. } => {
            let (_, n) = buf
                .get(4..)
                .and_then(read_varint)
                .ok_or(Malformed("cell"))?;
            4 + n
        }
        c => {
            let p = c.payload().ok_or(Malformed("cell"))?;
            let start = (p.local.as_ptr() as usize)
                .checked_sub(buf.as_ptr() as usize)
                .ok_or(Malformed("cell"))?;
            start + p.local.len() + if p.overflow != 0 || p.spills() { 4 } else { 0 }
        }
    };
    Ok(end.max(4))
}

fn payload_at(
    buf: &[u8],
    start: usize,
    total: u64,
    kind: PageKind,
    usable: u32,
) -> Result<Payload<'_>, Malformed> {
    let local = local_size(total, usable, kind);
    // local <= usable - 35 < 65536, so the conversion cannot truncate.
    let local = usize::try_from(local).map_err(|_| Malformed("payload size"))?;
    let end = start
        .checked_add(local)
        .ok_or(Malformed("payload size overflows"))?;
    let bytes = buf
        .get(start..end)
        .ok_or(Malformed("payload runs past the page"))?;
    let overflow = if (local as u64) < total {
        let p = be32(buf, end).ok_or(Malformed("overflow pointer runs past the page"))?;
        if p == 0 {
            return Err(Malformed("overflow pointer is zero"));
        }
        p
    } else {
        0
    };
    Ok(Payload {
        total,
        local: bytes,
        overflow,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spill_thresholds_match_sqlite() {
        // Values from SQLite's btree.c formulas for a 4096-byte page.
        assert_eq!(max_local(4096, PageKind::TableLeaf), 4061);
        assert_eq!(max_local(4096, PageKind::IndexLeaf), 1002);
        assert_eq!(min_local(4096), 489);
        assert_eq!(local_size(4061, 4096, PageKind::TableLeaf), 4061);
        assert_eq!(local_size(4062, 4096, PageKind::TableLeaf), 489);
        assert_eq!(
            local_size(10_000, 4096, PageKind::TableLeaf),
            489 + (10_000 - 489) % 4092
        );
        assert_eq!(local_size(u64::MAX, 512, PageKind::IndexLeaf), {
            let k = 39 + (u64::MAX - 39) % 508;
            if k <= 102 { k } else { 39 }
        });
    }
}
