//! A hot rollback journal beside a database: the pages an interrupted
//! transaction changed, as they were before it.
//!
//! Takes the journal's path and the page size; gives [`JournalInfo`]: which
//! pages it restores and where their original bytes lie in it; or, for a
//! journal that is not hot, [`BeforeImages`]: the pages as they were before
//! a transaction that committed (evidence for `--deleted`).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::io::{open_input, read_full_at};

/// A hot rollback journal beside a database: the original content of the
/// pages an interrupted transaction changed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JournalInfo {
    /// The journal file.
    pub path: PathBuf,
    /// Its first segment header.
    pub header: sqlite_salvage_format::journal::JournalHeader,
    /// Page records whose checksum is valid (up to the first bad one).
    pub records: usize,
    /// Distinct pages they restore.
    pub pages: usize,
    #[serde(skip)]
    pub(super) offsets: HashMap<u32, u64>,
}

impl JournalInfo {
    /// Reads a journal; None when it is missing, empty, or has no valid
    /// header (a journal whose header was zeroed is not hot).
    pub fn scan(path: &Path, page_size: u32) -> Option<JournalInfo> {
        use sqlite_salvage_format::journal::{JournalHeader, page_checksum};
        let (file, size) = open_input(path).ok()?;
        let mut head = [0u8; 28];
        read_full_at(&file, &mut head, 0).ok()?;
        let first = JournalHeader::parse(&head).ok()?;
        if first.page_size != page_size {
            return None;
        }
        let ps = u64::from(page_size);
        let mut offsets = HashMap::new();
        let mut records = 0usize;
        let mut seg = 0u64;
        let mut page = vec![0u8; page_size as usize];
        'segments: while seg + 28 <= size {
            read_full_at(&file, &mut head, seg).ok()?;
            let Ok(h) = JournalHeader::parse(&head) else {
                break;
            };
            let start = seg + u64::from(h.sector_size);
            let n = match h.records {
                Some(n) => u64::from(n),
                None => size.saturating_sub(start) / (ps + 8),
            };
            for i in 0..n {
                let at = start + i * (ps + 8);
                if at + ps + 8 > size {
                    break 'segments;
                }
                let mut b4 = [0u8; 4];
                read_full_at(&file, &mut b4, at).ok()?;
                let pgno = u32::from_be_bytes(b4);
                read_full_at(&file, &mut page, at + 4).ok()?;
                read_full_at(&file, &mut b4, at + 4 + ps).ok()?;
                if u32::from_be_bytes(b4) != page_checksum(&page, h.nonce) {
                    // SQLite stops playing back at the first bad record.
                    break 'segments;
                }
                records += 1;
                if pgno != 0 && pgno <= h.initial_size {
                    // The first record of a page holds its original.
                    offsets.entry(pgno).or_insert(at + 4);
                }
            }
            if h.records.is_none() || n == 0 {
                break;
            }
            let end = start + n * (ps + 8);
            let sector = u64::from(h.sector_size);
            seg = end.div_ceil(sector) * sector;
        }
        Some(JournalInfo {
            path: path.to_path_buf(),
            header: first,
            records,
            pages: offsets.len(),
            offsets,
        })
    }
}

/// The page records of a rollback journal that is not hot: one kept by
/// `journal_mode=PERSIST` (its header zeroed at commit), or one whose
/// header is lost. Each holds a page as it was before a transaction that
/// committed since: evidence of rows that transaction deleted, never the
/// database's content.
#[derive(Debug, Clone)]
pub struct BeforeImages {
    file: Arc<File>,
    /// Page number and journal offset of each record's page bytes, in
    /// journal order.
    pub images: Vec<(u32, u64)>,
}

impl BeforeImages {
    /// Finds the records of a journal beside a database of `max_page`
    /// pages. The header (and with it the sector size the records start
    /// at) may be zeroed: each power of two from 512 to 65536 is tried as
    /// the start, and the one whose records most often name a page of the
    /// database is taken (a wrong start reads page bytes as page numbers).
    /// None when the file is missing, or no record names such a page.
    pub fn scan(path: &Path, page_size: u32, max_page: u32) -> Option<BeforeImages> {
        let (file, size) = open_input(path).ok()?;
        let stride = u64::from(page_size) + 8;
        // At most this many records are looked at, whatever the file's size.
        let cap = 1u64 << 22;
        let mut best: Vec<(u32, u64)> = Vec::new();
        for start in (9..=16).map(|k| 1u64 << k) {
            let mut found = Vec::new();
            let mut at = start;
            let mut b4 = [0u8; 4];
            while at.saturating_add(stride) <= size && (found.len() as u64) < cap {
                if read_full_at(&file, &mut b4, at).is_err() {
                    break;
                }
                let pgno = u32::from_be_bytes(b4);
                if (1..=max_page).contains(&pgno) {
                    found.push((pgno, at + 4));
                }
                at += stride;
            }
            if found.len() > best.len() {
                best = found;
            }
        }
        (!best.is_empty()).then(|| BeforeImages {
            file: Arc::new(file),
            images: best,
        })
    }

    /// Reads the page bytes of a record at `offset` (from
    /// [`BeforeImages::images`]).
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        read_full_at(&self.file, buf, offset)
    }
}
