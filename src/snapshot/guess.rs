//! Guesses for a database whose header is gone: its page size from the
//! shape of its pages, its text encoding from the text on its leaves.
//!
//! Takes the open file (or its page reader); gives a page size or an
//! encoding, never an error: a guess that finds nothing says so with `None`
//! or falls back to UTF-8.

use std::fs::File;

use super::reader::PageReader;
use crate::io::read_full_at;
use sqlite_salvage_format::header::TextEncoding;

/// Guesses the text encoding of a database whose header is gone from the
/// text values on its leaf pages: UTF-16 text of mostly ASCII characters
/// has a zero in every other byte.
pub(super) fn guess_encoding(src: &PageReader, pages: u32, page_size: u32) -> TextEncoding {
    use sqlite_salvage_format::page::BtreePage;
    use sqlite_salvage_format::record::{Record, ValueRef};
    let (mut le, mut be, mut u8s) = (0u32, 0u32, 0u32);
    let mut buf = vec![0u8; page_size as usize];
    let mut rec = Record::new();
    for pgno in 2..=pages {
        if src.read(pgno, &mut buf).is_err() {
            continue;
        }
        let Ok(p) = BtreePage::parse(&buf, pgno, page_size) else {
            continue;
        };
        if !p.kind.is_leaf() {
            continue;
        }
        for i in 0..p.cell_count {
            let Some(pl) = p.cell(i).ok().and_then(|c| c.payload().copied()) else {
                continue;
            };
            if pl.spills() || rec.parse(pl.local).is_err() {
                continue;
            }
            for k in 0..rec.len() {
                if let ValueRef::Text(t) = rec.value(pl.local, k) {
                    if t.len() < 4 {
                        continue;
                    }
                    let zeros_even = t.iter().step_by(2).filter(|&&b| b == 0).count();
                    let zeros_odd = t.iter().skip(1).step_by(2).filter(|&&b| b == 0).count();
                    let half = t.len() / 2;
                    if t.len() % 2 == 0 && zeros_odd * 4 >= half * 3 {
                        le += 1;
                    } else if t.len() % 2 == 0 && zeros_even * 4 >= half * 3 {
                        be += 1;
                    } else {
                        u8s += 1;
                    }
                }
            }
        }
        if le + be + u8s > 2000 {
            break;
        }
    }
    if le > u8s && le >= be {
        TextEncoding::Utf16le
    } else if be > u8s {
        TextEncoding::Utf16be
    } else {
        TextEncoding::Utf8
    }
}

/// Guesses the page size of a file whose header is gone: the size at which
/// the most bytes of the file are b-tree pages whose space adds up exactly
/// ([`sqlite_salvage_format::page::BtreePage::is_consistent`]). At a wrong size a
/// page's cells point past its end or leave its content area short.
pub(super) fn guess_page_size(file: &File, file_size: u64) -> Option<u32> {
    use sqlite_salvage_format::page::BtreePage;
    let mut best: Option<(u64, u32)> = None;
    let mut size = 512u32;
    while size <= 65536 {
        let pages = (file_size / u64::from(size)).min(8192);
        let mut buf = vec![0u8; size as usize];
        let mut good = 0u64;
        for i in 1..pages {
            if read_full_at(file, &mut buf, i * u64::from(size)).is_ok()
                && BtreePage::parse(&buf, 2, size).is_ok_and(|p| p.is_consistent())
            {
                good += 1;
            }
        }
        let score = good * u64::from(size);
        if score > 0 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, size));
        }
        size *= 2;
    }
    best.map(|b| b.1)
}
