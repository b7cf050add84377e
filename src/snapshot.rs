//! Opening a database with its WAL, and reading its pages as of a commit.
//!
//! A [`Snapshot`] is the database file overlaid with the committed WAL
//! frames up to one commit: for each page number, the newest frame at or
//! before that commit, else the page in the database file. Files are opened
//! read-only and read with positioned reads; nothing is created or locked
//! beside them.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::header::{DbHeader, HEADER_SIZE, RawHeader};
use crate::wal::{FrameStatus, ShmInfo, WalIndex};

/// Which WAL to read with the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WalChoice {
    /// The `-wal` file beside the database, when it exists.
    #[default]
    Auto,
    /// No WAL: the database file alone.
    Ignore,
    /// This WAL file.
    Path(PathBuf),
}

/// A database file, its WAL and what the `-shm` says, opened read-only.
#[derive(Debug)]
pub struct Database {
    path: PathBuf,
    file: Arc<File>,
    file_size: u64,
    header: Option<DbHeader>,
    page_size: u32,
    wal: Option<WalIndex>,
    wal_file: Option<Arc<File>>,
    shm: Option<ShmInfo>,
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Opens `path` read-only, refusing directories and other non-files.
pub(crate) fn open_input(path: &Path) -> Result<(File, u64)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    Ok((file, meta.len()))
}

/// Reads `buf.len()` bytes at `offset`, zero-filling past the end of file
/// (as SQLite does for short reads).
pub(crate) fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                buf[done..].fill(0);
                return Ok(());
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Database {
    /// Opens a database and the `-wal` beside it, if any.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, WalChoice::Auto)
    }

    /// Opens a database with the given WAL choice.
    pub fn open_with(path: impl AsRef<Path>, wal: WalChoice) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let (file, file_size) = open_input(&path)?;
        let not_db = |reason: &str| Error::NotADatabase {
            path: path.clone(),
            reason: reason.to_string(),
        };
        let header = if file_size == 0 {
            None
        } else {
            if file_size < HEADER_SIZE as u64 {
                return Err(not_db("file is shorter than the 100-byte header"));
            }
            let mut b = [0u8; HEADER_SIZE];
            read_full_at(&file, &mut b, 0).map_err(|e| Error::io(&path, e))?;
            Some(DbHeader::parse(&b).map_err(|m| not_db(m.0))?)
        };
        let wal_path = match wal {
            WalChoice::Auto => {
                let p = sibling(&path, "-wal");
                p.is_file().then_some(p)
            }
            WalChoice::Ignore => None,
            WalChoice::Path(p) => Some(p),
        };
        let (wal, wal_file) = match wal_path {
            Some(p) => {
                let (f, _) = open_input(&p)?;
                match WalIndex::scan(&p)? {
                    Some(idx) => (Some(idx), Some(Arc::new(f))),
                    None => (None, None),
                }
            }
            None => (None, None),
        };
        let page_size = match (&header, &wal) {
            (Some(h), Some(w)) if w.header.page_size != h.page_size => {
                return Err(Error::BadWal {
                    path: w.path.clone(),
                    reason: format!(
                        "its page size {} differs from the database's {}",
                        w.header.page_size, h.page_size
                    ),
                });
            }
            (Some(h), _) => h.page_size,
            (None, Some(w)) => w.header.page_size,
            (None, None) => return Err(not_db("file is empty and has no WAL")),
        };
        // The -shm sits beside the database: "<db>-shm".
        let shm = wal
            .as_ref()
            .and_then(|w| ShmInfo::read(&sibling(&path, "-shm"), Some(&w.header)));
        let db = Database {
            path,
            file: Arc::new(file),
            file_size,
            header,
            page_size,
            wal,
            wal_file,
            shm,
        };
        db.check_wal_belongs()?;
        Ok(db)
    }

    /// Rejects a WAL whose committed page 1 describes a different layout
    /// (text encoding, reserved bytes) than the database file: it belongs to
    /// another database. SQLite itself cannot tell a WAL of another
    /// database with the same layout apart.
    fn check_wal_belongs(&self) -> Result<()> {
        let (Some(h), Some(w), Some(wf)) = (&self.header, &self.wal, &self.wal_file) else {
            return Ok(());
        };
        let Some(f) = w
            .frames
            .iter()
            .rev()
            .find(|f| f.pgno == 1 && f.status == FrameStatus::Committed)
        else {
            return Ok(());
        };
        let mut b = [0u8; HEADER_SIZE];
        read_full_at(wf, &mut b, f.page_offset(self.page_size))
            .map_err(|e| Error::io(&w.path, e))?;
        let bad = |reason: String| Error::BadWal {
            path: w.path.clone(),
            reason,
        };
        let raw = RawHeader::parse(&b).map_err(|m| bad(m.0.to_string()))?;
        if raw.magic != h.raw.magic {
            return Err(bad("its page 1 is not a database header".into()));
        }
        if raw.reserved != h.raw.reserved || raw.page_size != h.raw.page_size {
            return Err(bad("its page 1 describes a different page layout".into()));
        }
        if raw.text_encoding != h.raw.text_encoding && h.raw.text_encoding != 0 {
            return Err(bad("its page 1 has a different text encoding".into()));
        }
        Ok(())
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the database file in bytes.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// The database file's own header (None for an empty file).
    pub fn file_header(&self) -> Option<&DbHeader> {
        self.header.as_ref()
    }

    /// Page size shared by the file and its WAL.
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// The WAL, when one was read.
    pub fn wal(&self) -> Option<&WalIndex> {
        self.wal.as_ref()
    }

    /// What the `-shm` says, when present and readable.
    pub fn shm(&self) -> Option<&ShmInfo> {
        self.shm.as_ref()
    }

    /// Number of commits in the WAL (0 without one).
    pub fn commit_count(&self) -> u32 {
        self.wal.as_ref().map_or(0, |w| w.commits.len() as u32)
    }

    /// Pages in the database file (rounded up, as SQLite counts them).
    pub fn file_pages(&self) -> u64 {
        self.file_size.div_ceil(u64::from(self.page_size))
    }

    /// A snapshot as of the last commit.
    pub fn latest(&self) -> Result<Snapshot> {
        self.snapshot(None)
    }

    /// A snapshot as of commit `at` (1-based, in WAL order; 0 is the
    /// database file alone; `None` the last commit).
    pub fn snapshot(&self, at: Option<u32>) -> Result<Snapshot> {
        let commits = self.commit_count();
        let commit = at.unwrap_or(commits);
        if commit > commits {
            return Err(Error::NoSuchCommit {
                requested: commit,
                available: commits,
            });
        }
        let mut overlay = HashMap::new();
        let mut page_count = None;
        let mut last_frame = 0;
        if let (Some(w), true) = (&self.wal, commit > 0) {
            let c = &w.commits[commit as usize - 1];
            last_frame = c.last_frame;
            for f in &w.frames[..c.last_frame as usize] {
                overlay.insert(f.pgno, f.page_offset(self.page_size));
            }
            page_count = Some(c.db_size);
        }
        let mut p1 = vec![0u8; self.page_size as usize];
        let src = PageReader {
            db_path: self.path.clone(),
            db_file: Arc::clone(&self.file),
            wal_file: self.wal_file.clone(),
            page_size: self.page_size,
            overlay,
        };
        src.read(1, &mut p1)?;
        let header = DbHeader::parse(&p1).map_err(|m| Error::NotADatabase {
            path: self.path.clone(),
            reason: format!("page 1 as of commit {commit}: {}", m.0),
        })?;
        if header.page_size != self.page_size {
            return Err(Error::NotADatabase {
                path: self.path.clone(),
                reason: format!("page 1 as of commit {commit} has a different page size"),
            });
        }
        let file_pages = self.file_pages().min(u64::from(u32::MAX)) as u32;
        let claimed = match page_count {
            Some(n) => n,
            None => header.database_size().unwrap_or(file_pages),
        };
        // Every page of a valid database is in the file or the WAL; a size
        // claiming more is damage, and is capped so that nothing is sized by
        // it.
        let wal_only = src.overlay.keys().filter(|&&p| p > file_pages).count();
        let present = file_pages.saturating_add(u32::try_from(wal_only).unwrap_or(u32::MAX));
        let page_count = claimed.min(present);
        Ok(Snapshot {
            src,
            page_count,
            claimed_page_count: claimed,
            header,
            commit,
            exactness: self.exactness(commit, last_frame),
        })
    }

    fn exactness(&self, commit: u32, last_frame: u32) -> Exactness {
        let Some(w) = &self.wal else {
            return Exactness::Exact;
        };
        if commit == self.commit_count() {
            return Exactness::Exact;
        }
        match &self.shm {
            Some(s) if s.salts_match => {
                if s.backfilled > last_frame {
                    Exactness::Inexact {
                        backfilled: s.backfilled,
                    }
                } else {
                    Exactness::Exact
                }
            }
            _ if w.commits.is_empty() => Exactness::Exact,
            _ => Exactness::Unknown,
        }
    }
}

/// Whether a snapshot equals the database exactly as it was at its commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum Exactness {
    /// Exactly that state.
    Exact,
    /// The database file already holds pages checkpointed from frames after
    /// this commit (up to frame `backfilled`), so pages not rewritten in the
    /// WAL up to the commit may show later content.
    Inexact {
        /// Frames copied back into the database file.
        backfilled: u32,
    },
    /// No `-shm` says how far the WAL was checkpointed; if it was past this
    /// commit, the result may mix in later content.
    Unknown,
}

/// Positioned reads of pages from the database file or the WAL.
#[derive(Debug, Clone)]
struct PageReader {
    db_path: PathBuf,
    db_file: Arc<File>,
    wal_file: Option<Arc<File>>,
    page_size: u32,
    overlay: HashMap<u32, u64>,
}

impl PageReader {
    fn read(&self, pgno: u32, buf: &mut [u8]) -> Result<()> {
        let buf = buf
            .get_mut(..self.page_size as usize)
            .ok_or_else(|| Error::corrupt(pgno, "page buffer too small"))?;
        if let (Some(off), Some(wal)) = (self.overlay.get(&pgno), &self.wal_file) {
            return read_full_at(wal, buf, *off).map_err(|e| Error::io(&self.db_path, e));
        }
        let off = u64::from(pgno.saturating_sub(1)) * u64::from(self.page_size);
        read_full_at(&self.db_file, buf, off).map_err(|e| Error::io(&self.db_path, e))
    }
}

/// Pages of a database as of one commit.
#[derive(Debug, Clone)]
pub struct Snapshot {
    src: PageReader,
    page_count: u32,
    claimed_page_count: u32,
    header: DbHeader,
    commit: u32,
    exactness: Exactness,
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

    /// Reads consecutive pages starting at `first` into `buf` (a whole
    /// number of pages), with one read for the database file's part.
    pub fn read_pages(&self, first: u32, buf: &mut [u8]) -> Result<()> {
        let ps = self.src.page_size as usize;
        let count = (buf.len() / ps) as u64;
        if first == 0 || count == 0 || u64::from(first) + count - 1 > u64::from(self.page_count) {
            return Err(Error::corrupt(first, "page range out of range"));
        }
        let off = u64::from(first - 1) * u64::from(self.src.page_size);
        read_full_at(&self.src.db_file, buf, off).map_err(|e| Error::io(&self.src.db_path, e))?;
        if let Some(wal) = &self.src.wal_file {
            for (i, chunk) in buf.chunks_exact_mut(ps).enumerate() {
                if let Some(off) = self.src.overlay.get(&(first + i as u32)) {
                    read_full_at(wal, chunk, *off).map_err(|e| Error::io(&self.src.db_path, e))?;
                }
            }
        }
        Ok(())
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
