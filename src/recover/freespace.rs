//! Deleted cells in a table leaf's free space.
//!
//! Takes a table's b-tree page (its bytes; an index b-tree's for a WITHOUT
//! ROWID table, whose cells have no rowid) and the table; gives the leaf cells
//! found in its free space whose records fit the table: in the gap between the
//! cell pointers and the cell content (a cell freed at the start of the
//! content area is left whole there) and in its freeblocks. A freed cell
//! that became a freeblock's head lost its first four bytes to the
//! freeblock header (next block, size): its payload size and rowid, and
//! often its record header's length byte and first serial type. Such a
//! cell is rebuilt where that can be told: the record header is whole past
//! those bytes; or only its length byte is lost (then the serial types are
//! counted up to the table's width); or also the first serial type, when
//! that column is the rowid alias (always NULL in the record). Its rowid
//! stays unknown. Nothing here decides whether a row is deleted: the caller
//! checks it against the live rows.

use super::carve::{FoundCell, cell_at, fits, texts_valid};
use crate::schema::{Affinity, Table};
use sqlite_salvage_format::cell::local_size;
use sqlite_salvage_format::header::TextEncoding;
use sqlite_salvage_format::page::{BtreePage, PageKind, is_zeroed};
use sqlite_salvage_format::record::{Record, ValueRef, serial_len};
use sqlite_salvage_format::varint::read_varint;

/// Where in the free space a cell was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// The gap between the cell pointers and the cell content: whole.
    Gap,
    /// A freeblock, the cell whole (freed after the one before it).
    Freeblock,
    /// A freeblock's head, rebuilt: its rowid lost.
    Rebuilt,
    /// Not free space: a cell its page's pointers reach.
    Pointed,
}

/// A cell found in free space: its offset, rowid when known, and payload
/// (the local bytes; for a rebuilt cell, the rebuilt record).
pub(crate) struct FreeCell {
    pub offset: usize,
    pub rowid: Option<i64>,
    pub payload: Vec<u8>,
    /// The first overflow page, when the cell spills.
    pub overflow: u32,
    /// The payload size the cell claims (0 when rebuilt).
    pub total: u64,
    pub place: Place,
}

impl FreeCell {
    /// A cell its page's pointers reach (of a freed page, or an older
    /// version), as a found one.
    pub fn pointed(c: FoundCell) -> FreeCell {
        free(c, Place::Pointed)
    }
}

/// Most freeblocks followed on one page (a loop is damage).
const MAX_FREEBLOCKS: usize = 4096;

/// The cells of `t`'s b-tree page `page` (usable size `usable`; a leaf, or
/// an interior page that was a leaf; an index b-tree's for a WITHOUT ROWID
/// table) in its free space whose records fit `t` (see the module doc).
pub(crate) fn free_cells(
    raw: &[u8],
    page: &BtreePage<'_>,
    usable: u32,
    t: &Table,
    enc: TextEncoding,
) -> Vec<FreeCell> {
    let mut out = Vec::new();
    let end = (usable as usize).min(raw.len());
    let gap = page.cell_pointers_end()..(page.content_start as usize).min(end);
    let mut rec = Record::new();
    let mut at = gap.start;
    // A freeblock next to the content's start joins the gap: the gap
    // holds whole cells and freed heads alike.
    while at + 4 <= gap.end {
        if let Some(c) = scanned_cell(raw, (at, gap.end, usable), t, enc, &mut rec) {
            at += c.size.max(1);
            out.push(free(c, Place::Gap));
        } else if let Some((c, next)) = rebuilt(raw, (at, gap.end, usable), t, enc, &mut rec) {
            out.push(c);
            at = next.max(at + 1);
        } else {
            at += 1;
        }
    }
    let Ok(blocks) = page.freeblocks() else {
        return out;
    };
    for (start, size) in blocks.into_iter().take(MAX_FREEBLOCKS) {
        let stop = start.saturating_add(size).min(end);
        freeblock_cells(raw, (start, stop), (usable, true), t, enc, &mut out);
    }
    out
}

fn free(c: FoundCell, place: Place) -> FreeCell {
    FreeCell {
        offset: c.offset,
        rowid: c.rowid,
        payload: c.local,
        overflow: c.overflow,
        total: c.total,
        place,
    }
}

/// The cells of one freeblock `[start, stop)`, one after another: each
/// whole, or rebuilt at its head. Gives where the last one ended. With
/// `past_lost` (a freeblock of a page the table owns), a head that does not
/// rebuild does not end the freeblock: the cells freed after it may still
/// be whole. Without it (a page whose owner the cells are to tell) the
/// freeblock ends there.
fn freeblock_cells(
    raw: &[u8],
    (start, stop): (usize, usize),
    (usable, past_lost): (u32, bool),
    t: &Table,
    enc: TextEncoding,
    out: &mut Vec<FreeCell>,
) -> usize {
    let mut rec = Record::new();
    let mut at = start;
    let mut reached = start;
    // Bounded: each step moves on by at least one byte. Past a head that
    // does not rebuild, the cells freed after it may still be whole.
    while at + 4 <= stop {
        if at > start {
            if let Some(c) = scanned_cell(raw, (at, stop, usable), t, enc, &mut rec) {
                at += c.size.max(1);
                reached = at;
                out.push(free(c, Place::Freeblock));
                continue;
            }
        }
        match rebuilt(raw, (at, stop, usable), t, enc, &mut rec) {
            Some((c, next)) => {
                out.push(c);
                at = next.max(at + 1);
                reached = at;
            }
            None if past_lost => at += 1,
            None => break,
        }
    }
    reached
}

/// The cells of a page whose header is gone (a freelist trunk page, its
/// first bytes rewritten), from byte `first`: in each run of bytes that
/// reads as a freeblock (a next offset past it or 0, a size of at least
/// four that stays in the page) and that cells fitting `t` fill to its
/// end (at most three bytes short).
pub(crate) fn headless_free_cells(
    raw: &[u8],
    first: usize,
    usable: u32,
    t: &Table,
    enc: TextEncoding,
) -> Vec<FreeCell> {
    let end = (usable as usize).min(raw.len());
    let mut out = Vec::new();
    let mut at = first;
    while at + 4 <= end {
        let be16 = |o: usize| {
            raw.get(o..o + 2)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        };
        let (Some(next), Some(size)) = (be16(at), be16(at + 2)) else {
            break;
        };
        if let Some(c) = whole_cell(raw, at, end, usable, t, enc, &mut Record::new()) {
            at += c.size.max(1);
            out.push(free(c, Place::Freeblock));
            continue;
        }
        let stop = at.saturating_add(size);
        if size >= 4 && stop <= end && (next == 0 || next >= stop) {
            let mut cells = Vec::new();
            let reached = freeblock_cells(raw, (at, stop), (usable, false), t, enc, &mut cells);
            if !cells.is_empty() && stop - reached.min(stop) <= 3 {
                out.extend(cells);
                at = stop;
                continue;
            }
        }
        at += 1;
    }
    out
}

/// A whole cell found at `at` by a scan of free space `[.., stop)`: one
/// [`whole_cell`] gives that ends where the free space does (at most three
/// bytes short), where another whole cell starts, or where bytes read as a
/// freeblock header (a cell freed after it). A freed cell's first bytes,
/// rewritten as a freeblock header, can read as a cell's head whose sizes
/// are wrong: such a cell ends in the middle of another.
fn scanned_cell(
    raw: &[u8],
    (at, stop, usable): (usize, usize, u32),
    t: &Table,
    enc: TextEncoding,
    rec: &mut Record,
) -> Option<FoundCell> {
    let c = whole_cell(raw, at, stop, usable, t, enc, rec)?;
    let end = at.checked_add(c.size)?;
    let ends_well = end.saturating_add(3) >= stop
        || freeblock_header(raw, end, usable)
        || whole_cell(raw, end, stop, usable, t, enc, rec).is_some()
        || cell_head_at(raw, end, usable, t);
    ends_well.then_some(c)
}

/// Whether a cell of `t` starts at `at` as far as its head tells: a
/// payload size, a rowid (table leaves), and a record header of `t`'s
/// width whose values take exactly that payload. Its later bytes may be a
/// newer cell's: a cell freed at the content's start is taken back in part
/// by the next insert.
fn cell_head_at(raw: &[u8], at: usize, usable: u32, t: &Table) -> bool {
    let end = (usable as usize).min(raw.len());
    let Some((buf, h)) = CellHead::read(raw, at..end, t) else {
        return false;
    };
    let (total, hdr, n) = (h.total, h.hdr, h.n);
    let Some(head) = buf.get(h.before..) else {
        return false;
    };
    let Some(hdr) = usize::try_from(hdr)
        .ok()
        .filter(|&h| h > n && h <= head.len())
    else {
        return false;
    };
    let (mut p, mut count, mut body) = (n, 0usize, 0u64);
    while p < hdr {
        let Some((serial, k)) = head.get(p..hdr).and_then(read_varint) else {
            return false;
        };
        if serial == 10 || serial == 11 {
            return false;
        }
        body = body.saturating_add(serial_len(serial));
        (p, count) = (p + k, count + 1);
    }
    count == t.stored_columns() && (hdr as u64).saturating_add(body) == total
}

/// The first fields of a cell of `t` read from the start of `buf`: its
/// payload size (not 0), the bytes before its record (the payload size's
/// and the rowid's varints), and its record header's length and that
/// length's own varint size.
struct CellHead {
    total: u64,
    before: usize,
    hdr: u64,
    n: usize,
}

impl CellHead {
    /// Reads the head at the start of `raw[range]`; gives those bytes too.
    fn read<'r>(
        raw: &'r [u8],
        range: std::ops::Range<usize>,
        t: &Table,
    ) -> Option<(&'r [u8], CellHead)> {
        let buf = raw.get(range)?;
        let (total, n1) = read_varint(buf).filter(|&(v, _)| v > 0)?;
        let n2 = if t.without_rowid {
            0
        } else {
            buf.get(n1..).and_then(read_varint)?.1
        };
        let (hdr, n) = buf.get(n1 + n2..).and_then(read_varint)?;
        let head = CellHead {
            total,
            before: n1 + n2,
            hdr,
            n,
        };
        Some((buf, head))
    }
}

/// Whether `[at, stop)` is the start of a cell of `t` cut short inside its
/// record header: a payload size, a rowid (table leaves), a header length
/// that `t`'s width allows and that runs past `stop`, and the serial types
/// before `stop` none of the reserved ones. A cell freed next to a
/// freeblock merges with it and keeps its own head; a newer cell may take
/// all of it but those bytes.
fn cut_head_at(raw: &[u8], at: usize, stop: usize, t: &Table) -> bool {
    let Some((buf, h)) = CellHead::read(raw, at..stop, t) else {
        return false;
    };
    let widest = 1 + 9 * t.stored_columns() as u64;
    let runs_past = (h.before as u64).saturating_add(h.hdr) > buf.len() as u64;
    if h.hdr <= h.n as u64 || h.hdr > widest || h.hdr >= h.total || !runs_past {
        return false;
    }
    let mut p = h.before + h.n;
    let mut count = 0;
    while let Some((serial, k)) = buf.get(p..).and_then(read_varint) {
        if serial == 10 || serial == 11 {
            return false;
        }
        (p, count) = (p + k, count + 1);
    }
    count < t.stored_columns()
}

/// A whole cell at `at`, ending by `stop`, whose record fits `t`.
fn whole_cell(
    raw: &[u8],
    at: usize,
    stop: usize,
    usable: u32,
    t: &Table,
    enc: TextEncoding,
    rec: &mut Record,
) -> Option<FoundCell> {
    // A payload is never empty (a record has at least its header's length
    // byte): a cell does not start with a zero byte, as free space often
    // does.
    if raw.get(at).is_none_or(|&b| b == 0) {
        return None;
    }
    let c = cell_at(raw.get(..stop)?, at, leaf_kind(t), usable).ok()?;
    let ok = if c.overflow == 0 {
        rec.parse(&c.local).is_ok() && rec.end() == c.local.len()
    } else {
        rec.parse_partial(&c.local).is_ok()
    };
    (ok && plausible(rec, &c.local, t, enc)).then_some(c)
}

/// Whether a record found in free space is a row of `t`: it fits the
/// table with a value for each of its stored columns (a record a column
/// short is what a text read over the values before it looks like; a row
/// written before an ALTER TABLE ADD COLUMN is missed), its values take
/// bytes, it uses no reserved serial type, its text is valid and at its
/// alignment, no typed column holds a blob. A reading that fails here
/// takes no bytes from the reading that is right.
fn plausible(rec: &Record, payload: &[u8], t: &Table, enc: TextEncoding) -> bool {
    rec.len() == t.stored_columns()
        && !rec.body_is_empty()
        && !rec.uses_reserved_types()
        && fits(t, rec, payload)
        && texts_valid(rec, payload, enc)
        && !blob_in_typed(t, rec, payload)
        && texts_aligned(rec, payload, enc)
}

/// Whether a value of the record is a blob in a column declared with a
/// type (TEXT, INTEGER, REAL, NUMERIC affinity): legal, but what bytes read
/// at a wrong place look like, and no evidence of a row.
pub(crate) fn blob_in_typed(t: &Table, rec: &Record, payload: &[u8]) -> bool {
    t.columns.iter().any(|c| {
        c.affinity != Affinity::Blob
            && c.slot
                .is_some_and(|s| matches!(rec.value(payload, s), ValueRef::Blob(_)))
    })
}

/// Rebuilds the cell at a freeblock's head `at` (its first four bytes
/// lost, and reading as a freeblock header): tries each place its record
/// header may start (after a payload size and rowid of two to nine bytes).
/// Of the records that fit `t`, with plain text, the one that ends where
/// the freeblock does (at most three bytes short: a fragment) wins; else
/// one that ends where a whole cell starts; else where another freed head
/// starts, one that rebuilds before the first bytes of one a newer cell
/// took. Gives the cell and where the next one starts.
fn rebuilt(
    raw: &[u8],
    (at, stop, usable): (usize, usize, u32),
    t: &Table,
    enc: TextEncoding,
    rec: &mut Record,
) -> Option<(FreeCell, usize)> {
    if t.without_rowid || !freeblock_header(raw, at, usable) {
        return None;
    }
    // The cell's size matters only where the first serial type is lost
    // with the length byte (the record header two bytes on): there the
    // size its header gives is tried, then, failing a cell that ends where
    // the freeblock does, each other size it may have had.
    let own = be16_at(raw, at + 2).unwrap_or(0);
    let mut best: Option<(u8, RebuiltRecord, usize)> = None;
    type Found = Option<(u8, RebuiltRecord, usize)>;
    let keep = |best: &mut Found, b: Found| {
        // Of two readings that end as well, the one that does not spill.
        let key = |b: &(u8, RebuiltRecord, usize)| (b.0, b.1.overflow != 0);
        if let Some(b) = b.filter(|b| best.as_ref().is_none_or(|o| key(b) < key(o))) {
            *best = Some(b);
        }
    };
    for k in first_head(t)..=9usize {
        let place = (at, at + k, stop, usable);
        keep(&mut best, rebuilt_at(raw, place, own, t, enc, rec));
        if k == 2 && best.as_ref().is_none_or(|b| b.0 > 0) {
            for size in cell_sizes(raw, (at, stop, usable), t, enc).skip(1) {
                keep(&mut best, rebuilt_at(raw, place, size, t, enc, rec));
            }
        }
    }
    let (_, r, next) = best?;
    let c = FreeCell {
        offset: at,
        rowid: None,
        payload: r.local,
        overflow: r.overflow,
        total: r.total,
        place: Place::Rebuilt,
    };
    Some((c, next))
}

/// One rebuild of the freed head at `at` ([`rebuilt`]): its record header
/// at `head`, the cell `size` bytes long where that is needed. Gives its
/// rank (0: it ends where the freeblock does; 1: where a whole cell
/// starts; 2: where another freed head starts whose record rebuilds; 3:
/// where another freed head's first bytes are all the free space has
/// left, at most 16), record, and where the next cell starts.
fn rebuilt_at(
    raw: &[u8],
    (at, head, stop, usable): (usize, usize, usize, u32),
    size: usize,
    t: &Table,
    enc: TextEncoding,
    rec: &mut Record,
) -> Option<(u8, RebuiltRecord, usize)> {
    let r = record_from(raw, (at, head, stop), (t, usable), size)?;
    let fits_t = r
        .judged(rec)
        .is_some_and(|p| plausible(rec, p, t, enc) && texts_plain(rec, p, enc));
    // A rebuilt record takes the same bytes in the page as it did, and a
    // spilled one its overflow page's number after them.
    let next = head + r.local.len() + if r.overflow == 0 { 0 } else { 4 };
    if !fits_t || next > stop {
        return None;
    }
    let rank = if stop - next <= 3 {
        0
    } else if whole_cell(raw, next, stop, usable, t, enc, rec).is_some()
        || cell_head_at(raw, next, usable, t)
    {
        1
    } else if freeblock_header(raw, next, usable)
        && head_rebuilds(raw, (next, stop, usable), t, enc, rec)
    {
        2
    } else if stop - next <= 16
        && (freeblock_header(raw, next, usable) || cut_head_at(raw, next, stop, t))
    {
        // What is left of a freed neighbour whose cell a newer one took
        // but for its first bytes (its freeblock header, or its own head
        // where it merged with this one): the free space ends a few bytes
        // on.
        3
    } else {
        return None;
    };
    if r.overflow != 0 && rank > 0 {
        // A spilled reading must end where the free space does: its
        // length comes from its serial types alone, and the bytes after a
        // wrong one are too easily read as the start of something.
        return None;
    }
    Some((rank, r, if rank == 0 { stop } else { next }))
}

/// The two bytes at `at`, big-endian.
fn be16_at(raw: &[u8], at: usize) -> Option<usize> {
    raw.get(at..at.checked_add(2)?)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
}

/// The sizes the cell at freed head `at` may have had: the size its
/// freeblock header gives (a freeblock of this one cell), then the
/// distance to each of the next few bytes in `[at, stop)` that read as a
/// freed head or start a cell of `t`, whole or by its head (cells freed one
/// by one whose freeblocks merged: each head kept the header written when
/// it was freed, and a cell freed next to the content's start was left
/// whole, or its tail taken by a newer cell).
fn cell_sizes<'a>(
    raw: &'a [u8],
    (at, stop, usable): (usize, usize, u32),
    t: &'a Table,
    enc: TextEncoding,
) -> impl Iterator<Item = usize> + 'a {
    let own = be16_at(raw, at + 2).unwrap_or(0);
    let mut rec = Record::new();
    let later = (at + 5..stop)
        .filter(move |&p| {
            freeblock_header(raw, p, usable)
                || cell_head_at(raw, p, usable, t)
                || (stop - p <= 16 && cut_head_at(raw, p, stop, t))
                || whole_cell(raw, p, stop, usable, t, enc, &mut rec).is_some()
        })
        .map(move |p| p - at)
        .filter(move |&z| z != own)
        .take(3);
    std::iter::once(own).chain(later)
}

/// Whether the four bytes at `at` read as a freeblock header: the next
/// block none, or one past this one in the page; a size of at least four
/// that stays in the page.
fn freeblock_header(raw: &[u8], at: usize, usable: u32) -> bool {
    let be16 = |o: usize| {
        raw.get(o..o + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    };
    let (Some(next), Some(size)) = (be16(at), be16(at + 2)) else {
        return false;
    };
    let in_page = (usable as usize).min(raw.len());
    size >= 4 && at + size <= in_page && (next == 0 || (next > at && next < in_page))
}

/// Whether some record rebuilds at freed head `at` (no further look).
fn head_rebuilds(
    raw: &[u8],
    (at, stop, usable): (usize, usize, u32),
    t: &Table,
    enc: TextEncoding,
    rec: &mut Record,
) -> bool {
    let sizes: Vec<usize> = cell_sizes(raw, (at, stop, usable), t, enc).collect();
    (first_head(t)..=9usize).any(|k| {
        sizes.iter().any(|&size| {
            record_from(raw, (at, at + k, stop), (t, usable), size)
                .is_some_and(|r| r.reads_as_row(t, enc, rec))
        })
    })
}

/// Whether the record's text holds no control characters but tab, line
/// feed and carriage return: a record rebuilt at a wrong place reads cell
/// headers (small bytes) as text.
pub(crate) fn texts_plain(rec: &Record, payload: &[u8], enc: TextEncoding) -> bool {
    let plain = |u: u32| u >= 0x20 || u == 9 || u == 10 || u == 13;
    (0..rec.len()).all(|i| match rec.value(payload, i) {
        ValueRef::Text(b) => match enc {
            TextEncoding::Utf8 => b.iter().all(|&x| plain(u32::from(x))),
            TextEncoding::Utf16le => b.chunks(2).all(|c| {
                plain(
                    u32::from(c.first().copied().unwrap_or(0))
                        | (u32::from(c.get(1).copied().unwrap_or(0)) << 8),
                )
            }),
            TextEncoding::Utf16be => b.chunks(2).all(|c| {
                plain(
                    (u32::from(c.first().copied().unwrap_or(0)) << 8)
                        | u32::from(c.get(1).copied().unwrap_or(0)),
                )
            }),
        },
        _ => true,
    })
}

/// Whether the record's UTF-16 text reads at its true alignment: text read
/// one byte off turns each ASCII character into a code unit U+xx00 (xx a
/// printable ASCII byte); a value with two or more of those making a
/// quarter of it or more is taken for bytes read at a wrong place. UTF-8
/// text always passes.
pub(crate) fn texts_aligned(rec: &Record, payload: &[u8], enc: TextEncoding) -> bool {
    let unit = |c: &[u8]| {
        let (a, b) = (
            c.first().copied().unwrap_or(0),
            c.get(1).copied().unwrap_or(0),
        );
        match enc {
            TextEncoding::Utf16le => u16::from_le_bytes([a, b]),
            _ => u16::from_be_bytes([a, b]),
        }
    };
    let shifted = |u: u16| u & 0xff == 0 && (0x20..0x7f).contains(&(u >> 8));
    enc == TextEncoding::Utf8
        || (0..rec.len()).all(|i| match rec.value(payload, i) {
            ValueRef::Text(b) => {
                let n = b.chunks(2).filter(|c| shifted(unit(c))).count();
                n < 2 || n * 4 < b.len() / 2
            }
            _ => true,
        })
}

/// A record for a cell at `at` whose record header starts at `head` (the
/// four bytes from `at` lost, a freeblock header), within `[at, stop)`:
/// read as it is when the header starts past the lost bytes; else with
/// its length byte put back, the serial types counted up to `t`'s width,
/// and a lost first serial type put back too: 0 for the rowid alias, else
/// the one whose value takes the bytes left of the cell, as long as the
/// freeblock header says (a freeblock of this one cell) and of the kind
/// the column's affinity stores.
fn record_from(
    raw: &[u8],
    (at, head, stop): (usize, usize, usize),
    (t, usable): (&Table, u32),
    size: usize,
) -> Option<RebuiltRecord> {
    let region = raw.get(..stop)?;
    if head >= at + 4 {
        let (hdr, _) = read_varint(region.get(head..)?)?;
        let hdr = usize::try_from(hdr).ok()?;
        let mut pos = head.checked_add(hdr)?;
        let mut body = 0usize;
        let mut p = head + 1;
        while p < pos {
            let (serial, n) = read_varint(region.get(p..pos)?)?;
            p += n;
            body = body.checked_add(serial_len(serial) as usize)?;
        }
        pos = pos.checked_add(body)?;
        let (local, overflow) = RebuiltRecord::on_page(region, head, pos - head, (t, usable))?;
        let local = region.get(head..head.checked_add(local)?)?.to_vec();
        return Some(RebuiltRecord::new(local, overflow, pos - head));
    }
    // The length byte is at `head` (lost); serial types from head + 1, of
    // which those before at + 4 are lost too.
    let lost_serials = (at + 4).saturating_sub(head + 1);
    if lost_serials > 1 {
        return None;
    }
    let mut p = at + 4;
    let mut body = 0usize;
    let mut count = lost_serials;
    while count < t.stored_columns() {
        let (serial, n) = read_varint(region.get(p..)?)?;
        body = body.checked_add(serial_len(serial) as usize)?;
        p += n;
        count += 1;
    }
    if region.get(at + 4..p).is_none_or(is_zeroed) {
        // Every serial type read past the lost bytes NULL: zeros, as space
        // never written holds, not a row.
        return None;
    }
    let mut first: Vec<u8> = Vec::new();
    let mut first_len = 0usize;
    if lost_serials == 1 {
        (first, first_len) =
            lost_first_serial(t, size.checked_sub(head - at)?, p - (at + 4), body)?;
    }
    let hdr = 1 + first.len() + (p - (at + 4));
    let total = hdr.checked_add(first_len)?.checked_add(body)?;
    let (local, overflow) = RebuiltRecord::on_page(region, head, total, (t, usable))?;
    // The record's bytes lie where they did: its header put back takes
    // the bytes lost (a spilled one only then), the rest follows.
    let body_end = if overflow == 0 {
        p.checked_add(first_len)?.checked_add(body)?
    } else if first.len() == lost_serials {
        head.checked_add(local)?
    } else {
        return None;
    };
    if hdr > 127 || body_end > region.len() || body_end < p {
        return None;
    }
    let mut out = Vec::with_capacity(body_end.saturating_sub(p).saturating_add(hdr));
    out.push(hdr as u8);
    out.extend_from_slice(&first);
    out.extend_from_slice(region.get(at + 4..p)?);
    out.extend_from_slice(region.get(p..body_end)?);
    Some(RebuiltRecord::new(out, overflow, total))
}

/// A record rebuilt at a freed head: its bytes on the page (all of it, or
/// the part before its overflow chain), the chain's first page (0 when it
/// does not spill) and, when it spills, its whole length.
struct RebuiltRecord {
    local: Vec<u8>,
    overflow: u32,
    total: u64,
}

impl RebuiltRecord {
    fn new(local: Vec<u8>, overflow: u32, total: usize) -> RebuiltRecord {
        let total = if overflow == 0 { 0 } else { total as u64 };
        RebuiltRecord {
            local,
            overflow,
            total,
        }
    }

    /// How much of a record of `total` bytes starting at `head` lies on a
    /// page of `t`'s leaves (SQLite's rule), and the overflow page number
    /// that follows it there when it spills (never 0).
    fn on_page(
        region: &[u8],
        head: usize,
        total: usize,
        (t, usable): (&Table, u32),
    ) -> Option<(usize, u32)> {
        let local = usize::try_from(local_size(total as u64, usable, leaf_kind(t))).ok()?;
        if local >= total {
            return Some((total, 0));
        }
        let at = head.checked_add(local)?;
        let b = region.get(at..at.checked_add(4)?)?;
        let next = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        (next != 0).then_some((local, next))
    }

    /// Parses the record into `rec`; gives the bytes to judge it by: all
    /// of it, or for a spilled one its values on the page, the one its
    /// chain cuts left out (the row is judged again whole once its chain
    /// is read).
    fn judged<'r>(&'r self, rec: &mut Record) -> Option<&'r [u8]> {
        let p = &self.local;
        if self.overflow == 0 {
            return (rec.parse(p).is_ok() && rec.end() == p.len()).then_some(p);
        }
        rec.parse_partial(p).ok()?;
        let cut = (0..rec.len())
            .filter_map(|i| rec.span(i))
            .find(|s| s.end > p.len() as u64)
            .map_or(p.len(), |s| s.start as usize);
        p.get(..cut)
    }

    /// Whether the record reads as a row of `t` ([`plausible`], by the
    /// bytes [`RebuiltRecord::judged`] gives).
    fn reads_as_row(&self, t: &Table, enc: TextEncoding, rec: &mut Record) -> bool {
        self.judged(rec).is_some_and(|p| plausible(rec, p, t, enc))
    }
}

/// The first serial type of a record whose payload is `payload` bytes,
/// `serials` bytes of its other serial types and `rest` bytes of its other
/// values known: 0 for the rowid alias; else the type of the first column's
/// kind whose value takes the bytes left. Gives its varint and its value's
/// length.
fn lost_first_serial(
    t: &Table,
    payload: usize,
    serials: usize,
    rest: usize,
) -> Option<(Vec<u8>, usize)> {
    if alias_first(t) {
        return Some((vec![0], 0));
    }
    let col = t.columns.iter().find(|c| c.slot == Some(0))?;
    // Its varint takes one byte, or two for a long text or blob.
    for width in 1..=2usize {
        let known = serials.checked_add(rest)?.checked_add(1 + width)?;
        let len = payload.checked_sub(known)?;
        let serial: u64 = match col.affinity {
            Affinity::Text => 2 * len as u64 + 13,
            Affinity::Blob => 2 * len as u64 + 12,
            Affinity::Real if len == 8 => 7,
            _ => match len {
                1..=4 => len as u64,
                6 => 5,
                8 => 6,
                _ => return None,
            },
        };
        let mut v = [0u8; 9];
        let n = sqlite_salvage_format::varint::write_varint(serial, &mut v);
        if n == width {
            return Some((v.get(..n)?.to_vec(), len));
        }
    }
    None
}

/// The kind of `t`'s leaf pages: a WITHOUT ROWID table's tree is an index
/// b-tree.
pub(crate) fn leaf_kind(t: &Table) -> PageKind {
    if t.without_rowid {
        PageKind::IndexLeaf
    } else {
        PageKind::TableLeaf
    }
}

/// The fewest bytes before a cell's record header: a payload size and a
/// rowid (table leaves), or a payload size alone (WITHOUT ROWID).
fn first_head(t: &Table) -> usize {
    if t.without_rowid { 1 } else { 2 }
}

/// Whether the table's first stored column is its rowid alias (NULL in
/// every record).
fn alias_first(t: &Table) -> bool {
    t.rowid_alias
        .is_some_and(|a| t.columns.get(a).and_then(|c| c.slot) == Some(0))
}
