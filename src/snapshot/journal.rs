//! A hot rollback journal beside a database: the pages an interrupted
//! transaction changed, as they were before it.
//!
//! Takes the journal's path and the page size; gives [`JournalInfo`]: which
//! pages it restores and where their original bytes lie in it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

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
