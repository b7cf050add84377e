//! Pages as of one commit: [`Snapshot`], and the positioned reads behind
//! it (the database file, overlaid by WAL frames and by a hot journal's
//! original pages).
//!
//! Takes open files and a page -> offset overlay; gives pages by number,
//! and the whole image written out as a single-file database.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::Exactness;
use crate::error::{Error, Result};
use crate::io::read_full_at;
use sqlite_salvage_format::header::DbHeader;

/// Positioned reads of pages from the database file or the WAL.
#[derive(Debug, Clone)]
pub(crate) struct PageReader {
    pub(super) db_path: PathBuf,
    pub(super) db_file: Arc<File>,
    pub(super) wal_file: Option<Arc<File>>,
    pub(super) page_size: u32,
    pub(super) overlay: HashMap<u32, u64>,
    /// Original pages from a hot rollback journal: (journal, page -> offset).
    pub(super) journal: Option<(Arc<File>, HashMap<u32, u64>)>,
    /// Database-file pages read ahead (shared by clones: one snapshot).
    pub(super) ahead: Arc<Mutex<ReadAhead>>,
}

/// Pages of the database file read ahead of the reader: a walk that goes
/// forward through the file gets them from one read of
/// [`ReadAhead::BYTES`], not one read each.
#[derive(Debug, Default)]
pub(crate) struct ReadAhead {
    /// The first page held, and how many.
    first: u32,
    count: u32,
    bytes: Vec<u8>,
    /// The page asked for last.
    last: u32,
}

impl ReadAhead {
    const BYTES: usize = 64 * 1024;

    /// Pages read at once: none ahead when a page is 64 KiB.
    fn pages(page_size: usize) -> u32 {
        u32::try_from(Self::BYTES / page_size.max(1))
            .unwrap_or(1)
            .max(1)
    }

    /// Page `pgno` when it is held.
    fn get(&self, pgno: u32, page_size: usize) -> Option<&[u8]> {
        let k = pgno.checked_sub(self.first).filter(|&k| k < self.count)?;
        let at = k as usize * page_size;
        self.bytes.get(at..at + page_size)
    }
}

impl PageReader {
    /// The highest page number that can be read: the file's last page, or
    /// a WAL page past it (a truncated file under newer WAL pages; the pages
    /// in between read as zeros). Every page of a valid database exists; a
    /// size claiming more is damage. A gap far larger than what exists is
    /// not a truncation but a wild page number, and counts for what exists
    /// only, so that nothing is sized by it.
    pub(super) fn present_pages(&self, file_pages: u32) -> u32 {
        let wal_only = self.overlay.keys().filter(|&&p| p > file_pages).count();
        let present = file_pages.saturating_add(u32::try_from(wal_only).unwrap_or(u32::MAX));
        let highest = self
            .overlay
            .keys()
            .copied()
            .max()
            .unwrap_or(0)
            .max(file_pages);
        if highest.saturating_sub(present) <= present.saturating_mul(3).saturating_add(1024) {
            highest
        } else {
            present
        }
    }

    pub(super) fn read(&self, pgno: u32, buf: &mut [u8]) -> Result<()> {
        let buf = buf
            .get_mut(..self.page_size as usize)
            .ok_or_else(|| Error::corrupt(pgno, "page buffer too small"))?;
        if let Some((jf, pages)) = &self.journal {
            if let Some(off) = pages.get(&pgno) {
                return read_full_at(jf, buf, *off).map_err(|e| Error::io(&self.db_path, e));
            }
        }
        if let (Some(off), Some(wal)) = (self.overlay.get(&pgno), &self.wal_file) {
            return read_full_at(wal, buf, *off).map_err(|e| Error::io(&self.db_path, e));
        }
        let off = u64::from(pgno.saturating_sub(1)) * u64::from(self.page_size);
        let Ok(mut ahead) = self.ahead.lock() else {
            return read_full_at(&self.db_file, buf, off).map_err(|e| Error::io(&self.db_path, e));
        };
        let ps = self.page_size as usize;
        if let Some(held) = ahead.get(pgno, ps) {
            buf.copy_from_slice(held);
            ahead.last = pgno;
            return Ok(());
        }
        // Going forward (the next page, or one a few pages on): read ahead.
        let forward = pgno > ahead.last && pgno - ahead.last <= 4;
        ahead.last = pgno;
        let pages = ReadAhead::pages(ps);
        if !forward || pages == 1 {
            return read_full_at(&self.db_file, buf, off).map_err(|e| Error::io(&self.db_path, e));
        }
        let ahead = &mut *ahead;
        ahead.bytes.resize(pages as usize * ps, 0);
        ahead.count = 0;
        read_full_at(&self.db_file, &mut ahead.bytes, off)
            .map_err(|e| Error::io(&self.db_path, e))?;
        (ahead.first, ahead.count) = (pgno, pages);
        if let Some(first) = ahead.bytes.get(..ps) {
            buf.copy_from_slice(first);
        }
        Ok(())
    }
}

/// Pages of a database as of one commit.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub(super) src: PageReader,
    pub(super) page_count: u32,
    pub(super) claimed_page_count: u32,
    pub(super) header: DbHeader,
    pub(super) commit: u32,
    pub(super) exactness: Exactness,
}

impl Snapshot {
    /// The header on page 1 of this snapshot.
    pub fn header(&self) -> &DbHeader {
        &self.header
    }

    /// Page size in bytes.
    pub fn page_size(&self) -> u32 {
        self.src.page_size
    }

    /// Usable bytes per page.
    pub fn usable_size(&self) -> u32 {
        self.header.usable_size
    }

    /// Number of pages in the database at this commit.
    pub fn page_count(&self) -> u32 {
        self.page_count
    }

    /// The database size the header or commit frame claims, which may
    /// exceed [`Snapshot::page_count`] when pages are missing.
    pub fn claimed_page_count(&self) -> u32 {
        self.claimed_page_count
    }

    /// The commit this snapshot shows (0 for the database file alone).
    pub fn commit(&self) -> u32 {
        self.commit
    }

    /// Whether this is exactly the state at the commit.
    pub fn exactness(&self) -> Exactness {
        self.exactness
    }

    /// Pages taken from the WAL rather than the database file.
    pub fn wal_pages(&self) -> usize {
        self.src.overlay.len()
    }

    /// Where page `pgno` comes from: the WAL offset of its newest committed
    /// frame, or `None` for the database file.
    pub fn wal_offset(&self, pgno: u32) -> Option<u64> {
        self.src.overlay.get(&pgno).copied()
    }

    /// Reads page `pgno` (1-based) into `buf`, which must be at least one
    /// page long. Pages past the end of the database file read as zeros.
    pub fn read_page(&self, pgno: u32, buf: &mut [u8]) -> Result<()> {
        if pgno == 0 || pgno > self.page_count {
            return Err(Error::corrupt(pgno, "page number out of range"));
        }
        self.src.read(pgno, buf)
    }
}

impl Snapshot {
    /// Writes the database image (every page, 1 to [`Snapshot::page_count`])
    /// to `out`, a new empty file, as a single-file database: page 1's
    /// header is marked for rollback-journal mode (bytes 18-19 set to 1, so
    /// no WAL is needed to open it) and its in-header size set to the page
    /// count. The database file's part is copied in one kernel-side copy
    /// (as `cp` does), then the WAL's pages are written over it by page
    /// number. Returns the bytes written.
    pub fn write_image(&self, out: &mut File) -> Result<u64> {
        use std::io::{Read, Seek, SeekFrom};
        let ps = u64::from(self.src.page_size);
        let total = u64::from(self.page_count) * ps;
        let out_err = |e| Error::output("<output>", e);
        let db_len = self
            .src
            .db_file
            .metadata()
            .map_err(|e| Error::io(&self.src.db_path, e))?
            .len();
        let from_file = (db_len / ps * ps).min(total);
        let mut src: &File = &self.src.db_file;
        src.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io(&self.src.db_path, e))?;
        let copied = std::io::copy(&mut src.take(from_file), out).map_err(out_err)?;
        if copied != from_file {
            return Err(Error::io(
                &self.src.db_path,
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "database file shrank while being read",
                ),
            ));
        }
        // Pages past the end of the file read as zeros.
        out.set_len(total).map_err(out_err)?;
        let mut wal_pages: Vec<(u32, u64)> = self
            .src
            .overlay
            .iter()
            .filter(|(p, _)| **p <= self.page_count)
            .map(|(p, o)| (*p, *o))
            .collect();
        wal_pages.sort_unstable();
        let mut page = vec![0u8; self.src.page_size as usize];
        if let Some(wal) = &self.src.wal_file {
            for (pgno, off) in wal_pages {
                read_full_at(wal, &mut page, off).map_err(|e| Error::io(&self.src.db_path, e))?;
                out.write_all_at(&page, u64::from(pgno - 1) * ps)
                    .map_err(out_err)?;
            }
        }
        // Page 1, with its header adjusted.
        self.src.read(1, &mut page)?;
        page[18] = 1;
        page[19] = 1;
        page[28..32].copy_from_slice(&self.page_count.to_be_bytes());
        let counter = [page[24], page[25], page[26], page[27]];
        page[92..96].copy_from_slice(&counter);
        out.write_all_at(&page, 0).map_err(out_err)?;
        Ok(total)
    }
}
