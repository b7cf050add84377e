//! What the format crate's fuzz targets run on one input, shared with the
//! test suite, which replays the seeds and regressions through the same
//! calls. Nothing here does I/O or needs SQLite.

use sqlite_salvage_format::header::{DbHeader, RawHeader, TextEncoding};
use sqlite_salvage_format::page::{BtreePage, FreelistTrunk, ptrmap_entry};
use sqlite_salvage_format::record::{Record, ValueRef, text_is_valid};
use sqlite_salvage_format::shm::ShmHeader;
use sqlite_salvage_format::wal::{
    FRAME_HEADER_SIZE, FrameHeader, WAL_HEADER_SIZE, WalHeader, frame_checksum,
};

/// `header`: the raw and the checked header, and what is derived from it.
pub fn header(data: &[u8]) {
    if let Ok(raw) = RawHeader::parse(data) {
        if let Ok(h) = DbHeader::from_raw(raw) {
            let _ = (h.database_size(), h.auto_vacuum(), h.lock_byte_page());
        }
    }
    let _ = DbHeader::parse(data);
}

/// `page`: the first byte picks page 1 or not (its low bit) and the
/// reserved bytes (the rest of it); then the page, read as a b-tree page
/// (every cell, freeblocks, children, consistency), a freelist trunk and a
/// pointer-map page.
pub fn page(data: &[u8]) {
    let Some((&sel, page)) = data.split_first() else {
        return;
    };
    let pgno = if sel & 1 == 1 { 1 } else { 2 };
    let usable = (page.len() as u32).saturating_sub(u32::from(sel >> 1));
    if let Ok(p) = BtreePage::parse(page, pgno, usable) {
        for i in 0..p.cell_count {
            let _ = (p.cell_offset(i), p.cell_size(i));
            if let Ok(c) = p.cell(i) {
                let _ = (c.payload().map(|pl| pl.spills()), c.left_child());
            }
        }
        let _ = (p.freeblocks(), p.children(), p.is_consistent());
    }
    let _ = FreelistTrunk::parse(page, usable);
    for pgno in [3, 4, 2 + usable / 5, u32::MAX] {
        let _ = ptrmap_entry(page, 2, pgno);
    }
}

/// `record`: the whole record (every value, in every encoding) and the
/// record as far as it goes.
pub fn record(data: &[u8]) {
    let encodings = [
        TextEncoding::Utf8,
        TextEncoding::Utf16le,
        TextEncoding::Utf16be,
    ];
    let mut r = Record::new();
    if r.parse(data).is_ok() {
        for i in 0..=r.len() {
            let v = r.value(data, i);
            let _ = r.serial_type(i);
            for enc in encodings {
                let _ = v.to_owned(enc);
                if let ValueRef::Text(t) = v {
                    let _ = text_is_valid(t, enc);
                }
            }
        }
        let _ = r.end();
    }
    if let Ok(Some(cut)) = r.parse_partial(data) {
        for i in 0..cut {
            let _ = r.value(data, i).to_owned(TextEncoding::Utf8);
        }
    }
}

/// `shm`: the `-shm` index header and its salts against a WAL header
/// taken from the input's end.
pub fn shm(data: &[u8]) {
    if let Some(h) = ShmHeader::parse(data) {
        let wal = data
            .get(data.len().saturating_sub(32)..)
            .and_then(|w| WalHeader::parse_raw(w).ok());
        let _ = (h.backfilled, wal.map(|w| h.index.salts_match(&w)));
    }
}

/// `wal_frames`: a WAL file's header and every whole frame after it, each
/// frame header decoded and its checksum chained from the previous one, as
/// SQLite validates them (the page size from the header, when it is one).
pub fn wal_frames(data: &[u8]) {
    let Ok(h) = WalHeader::parse_raw(data) else {
        return;
    };
    let _ = WalHeader::parse(data);
    let ps = h.page_size as usize;
    if !(512..=65536).contains(&ps) || !ps.is_power_of_two() {
        return;
    }
    let mut sum = (h.checksum1, h.checksum2);
    let mut at = WAL_HEADER_SIZE;
    while let Some(frame) = data.get(at..at + FRAME_HEADER_SIZE + ps) {
        let (head, page) = frame.split_at(FRAME_HEADER_SIZE);
        if let Ok(f) = FrameHeader::parse(head) {
            let _ = f.is_commit();
        }
        sum = frame_checksum(head, page, h.big_endian(), sum);
        at += FRAME_HEADER_SIZE + ps;
    }
}
