//! B-tree page headers, cell pointer arrays, freeblocks, freelist trunk
//! pages and pointer-map pages.
//!
//! ```text
//! b-tree page header (at byte 100 on page 1, else byte 0)
//! offset size
//!      0    1 kind: 2 index interior, 5 table interior, 10 index leaf, 13 table leaf
//!      1    2 first freeblock (0 = none)
//!      3    2 number of cells
//!      5    2 start of cell content area (0 = 65536)
//!      7    1 fragmented free bytes
//!      8    4 right-most child (interior pages only)
//! then the cell pointer array: one u16 offset per cell, in key order.
//! ```

pub use super::kind::PageKind;

use super::cell::{Cell, cell_size};
use super::{Malformed, be16, be32};

/// A typed, borrowed view of one b-tree page.
#[derive(Debug, Clone, Copy)]
pub struct BtreePage<'a> {
    data: &'a [u8],
    usable: u32,
    header_offset: usize,
    /// The page kind.
    pub kind: PageKind,
    /// Offset of the first freeblock, 0 when none.
    pub first_freeblock: u16,
    /// Number of cells.
    pub cell_count: u16,
    /// Start of the cell content area.
    pub content_start: u32,
    /// Fragmented free bytes.
    pub fragmented: u8,
    /// Right-most child, for interior pages.
    pub right_child: Option<u32>,
}

impl<'a> BtreePage<'a> {
    /// Parses the page header of `data` (a whole page; `pgno` 1 has the
    /// database header first) whose first `usable` bytes are usable.
    pub fn parse(data: &'a [u8], pgno: u32, usable: u32) -> Result<Self, Malformed> {
        let header_offset = if pgno == 1 { 100 } else { 0 };
        let usable_len = usable as usize;
        if data.len() < usable_len || usable_len < 480 {
            return Err(Malformed("page buffer shorter than the usable size"));
        }
        let data = &data[..usable_len];
        let kind_byte = *data
            .get(header_offset)
            .ok_or(Malformed("page header past the page"))?;
        let kind = PageKind::from_byte(kind_byte).ok_or(Malformed("not a b-tree page"))?;
        let h = header_offset;
        let first_freeblock = be16(data, h + 1).ok_or(Malformed("page header past the page"))?;
        let cell_count = be16(data, h + 3).ok_or(Malformed("page header past the page"))?;
        let content_start = match be16(data, h + 5).ok_or(Malformed("page header past the page"))? {
            0 => 65536,
            v => u32::from(v),
        };
        let fragmented = *data
            .get(h + 7)
            .ok_or(Malformed("page header past the page"))?;
        let right_child = if kind.is_leaf() {
            None
        } else {
            Some(be32(data, h + 8).ok_or(Malformed("page header past the page"))?)
        };
        let page = BtreePage {
            data,
            usable,
            header_offset,
            kind,
            first_freeblock,
            cell_count,
            content_start,
            fragmented,
            right_child,
        };
        if page.cell_pointers_end() > usable_len {
            return Err(Malformed("cell count larger than the page"));
        }
        Ok(page)
    }

    /// The page bytes (usable area only).
    #[inline]
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Usable size the page was parsed with.
    #[inline]
    pub fn usable(&self) -> u32 {
        self.usable
    }

    /// Offset of the page header (100 on page 1, else 0).
    #[inline]
    pub fn header_offset(&self) -> usize {
        self.header_offset
    }

    /// Offset just past the cell pointer array.
    #[inline]
    pub fn cell_pointers_end(&self) -> usize {
        self.header_end() + 2 * usize::from(self.cell_count)
    }

    /// Offset just past the page header (where the cell pointers start).
    #[inline]
    pub fn header_end(&self) -> usize {
        self.header_offset + self.kind.header_len()
    }

    /// Offset of cell `i` within the page, checked to lie in the cell
    /// content area.
    #[inline]
    pub fn cell_offset(&self, i: u16) -> Result<usize, Malformed> {
        if i >= self.cell_count {
            return Err(Malformed("cell index out of range"));
        }
        let at = self.header_offset + self.kind.header_len() + 2 * usize::from(i);
        let off = usize::from(be16(self.data, at).ok_or(Malformed("cell pointer past the page"))?);
        if off < self.cell_pointers_end() || off + 4 > self.data.len() {
            return Err(Malformed("cell pointer out of range"));
        }
        Ok(off)
    }

    /// Decodes cell `i`.
    #[inline]
    pub fn cell(&self, i: u16) -> Result<Cell<'a>, Malformed> {
        let off = self.cell_offset(i)?;
        Cell::parse(&self.data[off..], self.kind, self.usable)
    }

    /// Size in bytes of cell `i` on the page.
    #[inline]
    pub fn cell_size(&self, i: u16) -> Result<usize, Malformed> {
        let off = self.cell_offset(i)?;
        cell_size(&self.data[off..], self.kind, self.usable)
    }

    /// Walks the freeblock list: (offset, size) pairs, checked to be in
    /// ascending order inside the content area. At most one freeblock per
    /// four bytes of page can exist, which bounds the walk.
    pub fn freeblocks(&self) -> Result<Vec<(usize, usize)>, Malformed> {
        let mut out = Vec::new();
        let mut next = usize::from(self.first_freeblock);
        let mut prev_end = 0usize;
        while next != 0 {
            if out.len() > self.data.len() / 4 {
                return Err(Malformed("freeblock list loops"));
            }
            if next < self.cell_pointers_end() || next < prev_end {
                return Err(Malformed("freeblock out of order or inside the header"));
            }
            let link = be16(self.data, next).ok_or(Malformed("freeblock past the page"))?;
            let size =
                usize::from(be16(self.data, next + 2).ok_or(Malformed("freeblock past the page"))?);
            if size < 4 || next + size > self.data.len() {
                return Err(Malformed("freeblock size out of range"));
            }
            out.push((next, size));
            prev_end = next + size;
            next = usize::from(link);
            if next != 0 && next <= prev_end.saturating_sub(1) {
                return Err(Malformed("freeblocks overlap or are out of order"));
            }
        }
        Ok(out)
    }

    /// Whether the page's space adds up as SQLite requires: every cell
    /// inside the content area, no two cells or freeblocks overlapping, and
    /// cells, freeblocks and fragmented bytes together filling the content
    /// area exactly; on table pages, rowids strictly increasing. A torn
    /// page (some sectors from another version) almost never passes.
    pub fn is_consistent(&self) -> bool {
        let mut extents: Vec<(usize, usize)> = Vec::with_capacity(usize::from(self.cell_count) + 8);
        let mut last_key: Option<i64> = None;
        for i in 0..self.cell_count {
            // Each cell parsed once: its size and its key from one reading.
            let Ok(off) = self.cell_offset(i) else {
                return false;
            };
            let buf = &self.data[off..];
            let Ok(cell) = super::cell::Cell::parse(buf, self.kind, self.usable) else {
                return false;
            };
            let Ok(size) = super::cell::size_of_parsed(buf, &cell) else {
                return false;
            };
            if off < self.content_start as usize || off + size > self.data.len() {
                return false;
            }
            if self.kind.is_table() {
                let key = match cell {
                    super::cell::Cell::TableLeaf { rowid, .. }
                    | super::cell::Cell::TableInterior { rowid, .. } => rowid,
                    _ => return false,
                };
                if last_key.is_some_and(|k| key <= k) {
                    return false;
                }
                last_key = Some(key);
            }
            extents.push((off, size));
        }
        let Ok(free) = self.freeblocks() else {
            return false;
        };
        extents.extend(free);
        extents.sort_unstable();
        let mut end = self.content_start as usize;
        let mut used = 0usize;
        for (off, size) in &extents {
            if *off < end {
                return false;
            }
            end = off + size;
            used += size;
        }
        let area = self.data.len().saturating_sub(self.content_start as usize);
        used + usize::from(self.fragmented) == area
    }

    /// Every child page number of an interior page, in key order (left
    /// children then the right-most pointer). Empty for leaves.
    pub fn children(&self) -> Result<Vec<u32>, Malformed> {
        let Some(right) = self.right_child else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(usize::from(self.cell_count) + 1);
        for i in 0..self.cell_count {
            let off = self.cell_offset(i)?;
            out.push(be32(self.data, off).ok_or(Malformed("cell runs past the page"))?);
        }
        out.push(right);
        Ok(out)
    }
}

/// A freelist trunk page: the next trunk and the leaf pages it lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreelistTrunk {
    /// Next trunk page, 0 at the end of the list.
    pub next: u32,
    /// Leaf page numbers.
    pub leaves: Vec<u32>,
}

impl FreelistTrunk {
    /// Decodes a trunk page. The leaf count is checked against the most a
    /// page can hold (usable/4 - 2).
    pub fn parse(data: &[u8], usable: u32) -> Result<Self, Malformed> {
        let next = be32(data, 0).ok_or(Malformed("freelist trunk past the page"))?;
        let count = be32(data, 4).ok_or(Malformed("freelist trunk past the page"))?;
        let max = (usable / 4).saturating_sub(2);
        if count > max {
            return Err(Malformed("freelist trunk leaf count larger than the page"));
        }
        let mut leaves = Vec::with_capacity(count as usize);
        for i in 0..count as usize {
            leaves.push(be32(data, 8 + 4 * i).ok_or(Malformed("freelist trunk past the page"))?);
        }
        Ok(FreelistTrunk { next, leaves })
    }
}

/// What a pointer-map entry says a page is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PtrmapKind {
    /// A b-tree root page (parent 0).
    RootPage,
    /// A page on the freelist (parent 0).
    FreePage,
    /// The first page of an overflow chain; parent is the b-tree page.
    Overflow1,
    /// A later overflow page; parent is the previous overflow page.
    Overflow2,
    /// A non-root b-tree page; parent is its parent page.
    Btree,
}

/// One pointer-map entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtrmapEntry {
    /// What the page is.
    pub kind: PtrmapKind,
    /// Its parent, as described by the kind.
    pub parent: u32,
}

/// Whether every byte of `bytes` is zero: a page never written, or wiped.
/// Compared 64 bytes at a time (a byte-by-byte loop is the cost of reading
/// a page in the passes over unreached pages).
pub fn is_zeroed(bytes: &[u8]) -> bool {
    let mut blocks = bytes.chunks_exact(64);
    blocks
        .by_ref()
        .all(|b| b.iter().fold(0u8, |a, &x| a | x) == 0)
        && blocks.remainder().iter().all(|&x| x == 0)
}

/// The pointer-map page that holds the entry for `pgno` (auto-vacuum
/// databases only), as SQLite's `ptrmapPageno` computes it.
#[inline]
pub fn ptrmap_page_for(pgno: u32, usable: u32, page_size: u32) -> Option<u32> {
    if pgno < 2 {
        return None;
    }
    let per_page = usable / 5 + 1;
    let index = (pgno - 2) / per_page;
    let mut ret = index.checked_mul(per_page)?.checked_add(2)?;
    if ret == super::header::lock_byte_page(page_size) {
        ret = ret.checked_add(1)?;
    }
    Some(ret)
}

/// Whether `pgno` is itself a pointer-map page.
#[inline]
pub fn is_ptrmap_page(pgno: u32, usable: u32, page_size: u32) -> bool {
    ptrmap_page_for(pgno, usable, page_size) == Some(pgno)
}

/// Reads the entry for `pgno` from its pointer-map page `map` (numbered `map_pgno`).
pub fn ptrmap_entry(map: &[u8], map_pgno: u32, pgno: u32) -> Result<PtrmapEntry, Malformed> {
    let slot = pgno
        .checked_sub(map_pgno)
        .and_then(|d| d.checked_sub(1))
        .ok_or(Malformed("page is not covered by this pointer-map page"))?;
    let off = 5 * slot as usize;
    let kind = match map.get(off) {
        Some(1) => PtrmapKind::RootPage,
        Some(2) => PtrmapKind::FreePage,
        Some(3) => PtrmapKind::Overflow1,
        Some(4) => PtrmapKind::Overflow2,
        Some(5) => PtrmapKind::Btree,
        Some(_) => return Err(Malformed("invalid pointer-map entry type")),
        None => return Err(Malformed("pointer-map entry past the page")),
    };
    let parent = be32(map, off + 1).ok_or(Malformed("pointer-map entry past the page"))?;
    Ok(PtrmapEntry { kind, parent })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_is_every_byte_zero() {
        for len in [0usize, 1, 63, 64, 65, 512, 4096, 4099] {
            let mut b = vec![0u8; len];
            assert!(is_zeroed(&b), "{len}");
            for at in [0, len / 2, len.saturating_sub(1)] {
                if let Some(x) = b.get_mut(at) {
                    *x = 0x80;
                    assert!(!is_zeroed(&b), "{len} {at}");
                    b[at] = 0;
                }
            }
        }
    }

    #[test]
    fn ptrmap_pages_follow_sqlite() {
        // 4096-byte pages: 819 entries per map page, maps at 2, 822, 1642...
        assert_eq!(ptrmap_page_for(3, 4096, 4096), Some(2));
        assert_eq!(ptrmap_page_for(821, 4096, 4096), Some(2));
        assert_eq!(ptrmap_page_for(822, 4096, 4096), Some(822));
        assert_eq!(ptrmap_page_for(823, 4096, 4096), Some(822));
        assert!(is_ptrmap_page(1642, 4096, 4096));
        assert_eq!(ptrmap_page_for(1, 4096, 4096), None);
        // The lock-byte page is skipped: at 512-byte pages it is 2097153.
        assert_eq!(super::super::header::lock_byte_page(512), 2_097_153);
        assert_eq!(super::super::header::lock_byte_page(65536), 16_385);
        // No overflow at the top of the range.
        assert!(ptrmap_page_for(u32::MAX, 512, 512).is_some());
        let e = ptrmap_entry(&[0, 0, 0, 0, 0, 5, 0, 0, 0, 9], 2, 4).unwrap();
        assert_eq!(
            e,
            PtrmapEntry {
                kind: PtrmapKind::Btree,
                parent: 9
            }
        );
        assert!(ptrmap_entry(&[9; 10], 2, 3).is_err());
        assert!(ptrmap_entry(&[1; 10], 2, 2).is_err());
    }
}
