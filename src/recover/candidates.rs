//! Stage: the candidates, rows on pages no tree vouches for.
//!
//! Takes the page map after the walks; gives, page by page, a
//! [`FoundPage`]: an orphaned leaf's cells through its pointers (first
//! pass), or cells carved from a page whose header or pointers are damaged
//! (second pass), each a [`DecodedCell`] with its overflow chain assembled
//! (the chain's pages claimed in the map). Each found page goes on to the
//! attribution stage; what cannot be read is counted in [`Scan`].

use std::collections::HashSet;

use super::carve::{FoundCell, cells_by_pointer, scan_page, scan_unpointed};
use super::context::Ctx;
use super::pagemap::{Owner, PageMap};
use super::sink::Source;
use crate::tree::{PageVisitor, assemble};
use sqlite_salvage_format::kind::PageKind;
use sqlite_salvage_format::page::{BtreePage, is_zeroed};
use sqlite_salvage_format::record::Record;

/// A cell found on a page, its payload assembled.
pub(crate) struct DecodedCell {
    /// The cell; its `local` bytes moved to `bytes` when nothing spills.
    pub cell: FoundCell,
    /// The whole payload, or as much as the overflow chain gave.
    pub bytes: Vec<u8>,
    /// Whether the payload is cut short (a broken or reused chain) or its
    /// overflow read as zeros.
    pub truncated: bool,
    /// Whether the cell was carved over a 512-byte sector that is all
    /// zeros (a partly zeroed page): its bytes may be cut.
    pub near_zero_sector: bool,
}

/// A page whose cells are candidates for recovery.
pub(crate) struct FoundPage {
    pub pgno: u32,
    /// The table whose walk reached the page but could not read it whole.
    pub owner: Option<usize>,
    /// The kind of cells on it (leaf kinds only).
    pub kind: PageKind,
    /// [`Source::Orphan`] (through its pointers) or [`Source::Carved`].
    pub source: Source,
    /// Whether the page's space adds up (see `BtreePage::is_consistent`).
    pub consistent: bool,
    pub cells: Vec<DecodedCell>,
}

/// What the scan of unclaimed and damaged pages counted.
#[derive(Default)]
pub(crate) struct Scan {
    /// Orphaned pages read, with the table they went to (by position in
    /// the schema's tables; `None`: lost_and_found). Named in the report.
    pub orphan_pages: Vec<(u32, Option<u32>)>,
    /// Pages that could not be read, or held nothing that decodes.
    pub unreadable_pages: Vec<u32>,
    /// Pages no tree reaches and no row was found on that read as overflow
    /// pages (their first four bytes a page number or zero): the rest of a
    /// value whose cell, or the chain page before them, is lost.
    pub loose_overflow_pages: Vec<u32>,
    /// Orphaned index pages (rebuilt from the tables, not data).
    pub index_pages_skipped: u64,
}

/// Which pass over the pages: orphaned leaves first (which also claims
/// their overflow pages), then carving what is still unaccounted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    Orphans,
    Carving,
}

/// Reusable buffers of the scan.
pub(crate) struct Buffers {
    pub page: Vec<u8>,
    payload: Vec<u8>,
    scratch: Vec<u8>,
    chain_seen: HashSet<u32>,
}

impl Buffers {
    pub fn new(page_size: u32) -> Buffers {
        Buffers {
            page: vec![0u8; page_size as usize],
            payload: Vec::new(),
            scratch: Vec::new(),
            chain_seen: HashSet::new(),
        }
    }
}

/// Reads page `pgno` for `pass`: `None` when the pass has nothing to do
/// with it (or it is unreadable, which `scan` records).
pub(crate) fn find_page(
    cx: &Ctx<'_>,
    map: &mut PageMap,
    pgno: u32,
    pass: Pass,
    partly_read: &HashSet<u32>,
    buf: &mut Buffers,
    scan: &mut Scan,
) -> Option<FoundPage> {
    let carving = pass == Pass::Carving;
    let owner = match map.get(pgno)? {
        Owner::Unclaimed => None,
        Owner::TableDamaged(t) => Some(t),
        _ => return None,
    };
    if !carving && owner.is_some() {
        return None;
    }
    if cx.snap.read_page(pgno, &mut buf.page).is_err() {
        scan.unreadable_pages.push(pgno);
        return None;
    }
    if is_zeroed(&buf.page) {
        if owner.is_some() && carving {
            scan.unreadable_pages.push(pgno);
        }
        return None;
    }
    let (cells, kind, source, consistent) =
        page_cells(cx, map, pgno, owner, carving, partly_read, &buf.page)?;
    if cells.is_empty() {
        if owner.is_none() && source == Source::Carved && overflow_like(&buf.page, cx.page_count) {
            scan.loose_overflow_pages.push(pgno);
        } else if !partly_read.contains(&pgno) && (owner.is_some() || source == Source::Carved) {
            scan.unreadable_pages.push(pgno);
        }
        return None;
    }
    let cells = cells
        .into_iter()
        .map(|c| decode_cell(cx, map, c, source, buf))
        .collect();
    Some(FoundPage {
        pgno,
        owner,
        kind,
        source,
        consistent,
        cells,
    })
}

/// Whether a page reads as an overflow page: its first four bytes are the
/// next page of a chain (a page of the database) or zero (the last).
fn overflow_like(page: &[u8], page_count: u32) -> bool {
    page.get(..4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .is_some_and(|b| u32::from_be_bytes(b) <= page_count)
}

/// The cells of a page: through the pointer array when its header is
/// usable (an orphan, first pass), else carved from its content.
fn page_cells(
    cx: &Ctx<'_>,
    map: &mut PageMap,
    pgno: u32,
    owner: Option<usize>,
    carving: bool,
    partly_read: &HashSet<u32>,
    page: &[u8],
) -> Option<(Vec<FoundCell>, PageKind, Source, bool)> {
    let usable = cx.snap.usable_size();
    match BtreePage::parse(page, pgno, usable) {
        Ok(p) if p.kind.is_leaf() && owner.is_none() => {
            if carving {
                return None;
            }
            let (c, _bad) = cells_by_pointer(&p);
            map.set(pgno, Owner::Orphan);
            Some((c, p.kind, Source::Orphan, p.is_consistent()))
        }
        Ok(p) if p.kind == PageKind::IndexInterior && owner.is_none() => {
            // Index interior cells carry records too (WITHOUT ROWID rows);
            // its children are orphans handled on their own.
            if carving {
                return None;
            }
            let (c, _bad) = cells_by_pointer(&p);
            map.set(pgno, Owner::Orphan);
            Some((c, PageKind::IndexLeaf, Source::Orphan, p.is_consistent()))
        }
        // An orphan table interior page: no rows; its leaves are orphans
        // too and are handled on their own.
        Ok(p) if !p.kind.is_leaf() && owner.is_none() => None,
        _ if !carving => None,
        _ => {
            // Which kind to carve for: the owner's, else table leaves.
            let kind = match owner.and_then(|t| cx.schema.tables.get(t)) {
                Some(t) if t.without_rowid => PageKind::IndexLeaf,
                _ => PageKind::TableLeaf,
            };
            let content = page.get(..usable as usize)?;
            if !partly_read.contains(&pgno) {
                return Some((
                    scan_page(content, kind, usable, 8),
                    kind,
                    Source::Carved,
                    true,
                ));
            }
            // Rows from a page whose space does not add up need the same
            // confirmation as those its pointers gave; an interior page's
            // cells hold no rows.
            match BtreePage::parse(page, pgno, usable) {
                Ok(p) if p.kind == kind => Some((
                    scan_unpointed(&p, content, kind, usable),
                    kind,
                    Source::Carved,
                    p.is_consistent(),
                )),
                _ => None,
            }
        }
    }
}

/// Collects the overflow pages an assembly read.
struct Collect(Vec<u32>);

impl PageVisitor for Collect {
    fn overflow_page(&mut self, pgno: u32) {
        self.0.push(pgno);
    }
}

/// Assembles a cell's payload. A chain page something else already owns
/// was reused: the value is good only up to it.
fn decode_cell(
    cx: &Ctx<'_>,
    map: &mut PageMap,
    c: FoundCell,
    source: Source,
    buf: &mut Buffers,
) -> DecodedCell {
    let (mut d, chain) = assemble_cell(cx, c, source, buf);
    let per_page = cx.snap.usable_size() as usize - 4;
    for (k, o) in chain.iter().enumerate() {
        if !map.claim(*o, Owner::Overflow) {
            d.bytes.truncate(d.cell.local.len() + k * per_page);
            d.truncated = true;
            break;
        }
    }
    d
}

/// Assembles a cell's payload through its overflow chain, and gives the
/// chain's pages (for the caller to claim).
pub(crate) fn assemble_cell(
    cx: &Ctx<'_>,
    mut c: FoundCell,
    source: Source,
    buf: &mut Buffers,
) -> (DecodedCell, Vec<u32>) {
    let near_zero_sector =
        source == Source::Carved && touches_zero_sector(&buf.page, c.offset, c.local.len() + 8);
    let p = c.payload();
    if !p.spills() {
        let bytes = std::mem::take(&mut c.local);
        let d = DecodedCell {
            cell: c,
            bytes,
            truncated: false,
            near_zero_sector,
        };
        return (d, Vec::new());
    }
    let mut ovf = Collect(Vec::new());
    let r = assemble(
        cx.snap,
        &p,
        &mut buf.payload,
        &mut buf.scratch,
        &mut buf.chain_seen,
        &mut ovf,
    );
    let d = DecodedCell {
        bytes: buf.payload.clone(),
        truncated: r.is_err() || r.is_ok_and(|zeros| zeros),
        cell: c,
        near_zero_sector,
    };
    (d, ovf.0)
}

/// Whether a cell at `off` spanning about `len` bytes overlaps a 512-byte
/// sector that is all zeros (a partly zeroed page): its bytes may be cut.
fn touches_zero_sector(page: &[u8], off: usize, len: usize) -> bool {
    let end = off.saturating_add(len).min(page.len());
    let mut sector = off / 512;
    while sector * 512 < end {
        let s = page.get(sector * 512..((sector + 1) * 512).min(page.len()));
        if s.is_some_and(is_zeroed) {
            return true;
        }
        sector += 1;
    }
    false
}

/// Whether cell `c` reads as a whole row: its record parses, not cut
/// short, and uses exactly its payload.
pub(crate) fn whole_row(rec: &mut Record, c: &DecodedCell) -> bool {
    !c.truncated && rec.parse(&c.bytes).is_ok() && rec.end() == c.bytes.len()
}

/// Reads orphaned leaf `pgno` again for joining: its cells with payloads
/// assembled (`None` unless every one is a whole row, `cells` of them),
/// and the overflow pages they use, for the caller to claim.
pub(crate) fn read_leaf(
    cx: &Ctx<'_>,
    pgno: u32,
    cells: u16,
    buf: &mut Buffers,
    rec: &mut Record,
) -> Option<(Vec<DecodedCell>, Vec<u32>)> {
    cx.snap.read_page(pgno, &mut buf.page).ok()?;
    let p = BtreePage::parse(&buf.page, pgno, cx.snap.usable_size()).ok()?;
    if !matches!(p.kind, PageKind::TableLeaf | PageKind::IndexLeaf) {
        return None;
    }
    let (found, _bad) = cells_by_pointer(&p);
    if found.len() != usize::from(cells) {
        return None;
    }
    let mut out = Vec::with_capacity(found.len());
    let mut chain = Vec::new();
    for c in found {
        let (d, pages) = assemble_cell(cx, c, Source::Orphan, buf);
        if !whole_row(rec, &d) {
            return None;
        }
        chain.extend(pages);
        out.push(d);
    }
    Some((out, chain))
}
