//! Opening a database with its WAL, and reading its pages as of a commit.
//!
//! Takes a database path and a [`WalChoice`]; gives a [`Database`] (the
//! files opened read-only, the WAL scanned, the `-shm` read) and from it a
//! [`Snapshot`]: the database file overlaid with the committed WAL frames
//! up to one commit: for each page number, the newest frame at or before
//! that commit, else the page in the database file. Nothing is created or
//! locked beside the files.
//!
//! ```text
//! mod.rs      Database: open, check the WAL belongs, snapshot as of a commit
//! reader.rs   Snapshot and its positioned page reads; the image writer
//! salvage.rs  Database::salvage: the WAL read past damage, older versions
//! journal.rs  a hot rollback journal's original pages
//! guess.rs    page size and text encoding of a file whose header is gone
//! ```
//!
//! [`Database::open_salvage`] also checks that the WAL's schema continues
//! the file's, which needs the schema reader: it is defined beside it, in
//! [`crate::schema`].

mod guess;
mod journal;
mod reader;
mod salvage;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use journal::{BeforeImages, JournalInfo};
use reader::PageReader;
pub use reader::Snapshot;
pub use salvage::{HeaderSource, Salvage, SalvageWal};

use crate::error::{Error, Result};
use crate::io::{open_input, read_full_at, sibling};
use crate::wal::{FrameStatus, ShmInfo, WalIndex};
use sqlite_salvage_format::header::{DbHeader, HEADER_SIZE, RawHeader};
use sqlite_salvage_format::schema_page::table_names_on_page1;

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
    wal_rejected: Option<String>,
}

impl Database {
    /// Opens a database and the `-wal` beside it, if any.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, WalChoice::Auto)
    }

    /// Opens a database with the given WAL choice.
    pub fn open_with(path: impl AsRef<Path>, wal: WalChoice) -> Result<Self> {
        Self::open_inner(path.as_ref(), wal, false)
    }

    /// Opens a possibly damaged database: a header that does not parse is
    /// tolerated, and a WAL whose layout shows it belongs to another
    /// database is set aside. The first half of
    /// [`Database::open_salvage`].
    pub(crate) fn open_lenient(path: &Path, wal: WalChoice) -> Result<Self> {
        Self::open_inner(path, wal, true)
    }

    /// Sets the WAL (and the `-shm` with it) aside, saying why.
    pub(crate) fn set_wal_aside(&mut self, why: String) {
        self.wal_rejected = Some(why);
        self.wal = None;
        self.wal_file = None;
        self.shm = None;
    }

    fn open_inner(path: &Path, wal: WalChoice, lenient: bool) -> Result<Self> {
        let path = path.to_path_buf();
        let (file, file_size) = open_input(&path)?;
        let not_db = |reason: &str| Error::NotADatabase {
            path: path.clone(),
            reason: reason.to_string(),
        };
        let header = if file_size == 0 {
            None
        } else {
            if file_size < HEADER_SIZE as u64 && !lenient {
                return Err(not_db("file is shorter than the 100-byte header"));
            }
            let mut b = [0u8; HEADER_SIZE];
            read_full_at(&file, &mut b, 0).map_err(|e| Error::io(&path, e))?;
            match DbHeader::parse(&b) {
                Ok(h) => Some(h),
                Err(_) if lenient => None,
                Err(m) => return Err(not_db(m.0)),
            }
        };
        let wal_path = match wal {
            WalChoice::Auto => {
                let p = sibling(&path, "-wal");
                p.is_file().then_some(p)
            }
            WalChoice::Ignore => None,
            WalChoice::Path(p) => Some(p),
        };
        let mut wal_rejected = None;
        let (mut wal, mut wal_file) = match wal_path {
            Some(p) => {
                let (f, size) = open_input(&p)?;
                let reader = std::io::BufReader::with_capacity(1 << 20, &f);
                match WalIndex::scan_reader(reader, size, &p) {
                    Ok(Some(idx)) => (Some(idx), Some(Arc::new(f))),
                    Ok(None) => (None, None),
                    Err(e @ Error::BadWal { .. }) if lenient => {
                        wal_rejected = Some(e.to_string());
                        (None, None)
                    }
                    Err(e) => return Err(e),
                }
            }
            None => (None, None),
        };
        if let (Some(h), Some(w)) = (&header, &wal) {
            if w.header.page_size != h.page_size {
                let e = Error::BadWal {
                    path: w.path.clone(),
                    reason: format!(
                        "its page size {} differs from the database's {}",
                        w.header.page_size, h.page_size
                    ),
                };
                if !lenient {
                    return Err(e);
                }
                wal_rejected = Some(e.to_string());
                wal = None;
                wal_file = None;
            }
        }
        let page_size = match (&header, &wal) {
            (Some(h), _) => h.page_size,
            (None, Some(w)) => w.header.page_size,
            (None, None) if lenient && file_size > 0 => guess::guess_page_size(&file, file_size)
                .ok_or_else(|| not_db("no page size fits the file's pages"))?,
            (None, None) => return Err(not_db("file is empty and has no WAL")),
        };
        // The -shm sits beside the database: "<db>-shm".
        let shm = wal
            .as_ref()
            .and_then(|w| ShmInfo::read(&sibling(&path, "-shm"), Some(&w.header)));
        let mut db = Database {
            path,
            file: Arc::new(file),
            file_size,
            header,
            page_size,
            wal,
            wal_file,
            shm,
            wal_rejected,
        };
        // The layout checks always apply (SQLite would misread such a WAL
        // too); the schema check only when salvaging (`open_salvage`), where
        // a wrong WAL would be carved into the output.
        if let Err(e) = db.check_wal_belongs() {
            if !lenient {
                return Err(e);
            }
            db.set_wal_aside(e.to_string());
        }
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
        // The earliest page 1 in the WAL follows the file's schema closely:
        // a schema with no table in common is another database's.
        let Some(first) = w
            .frames
            .iter()
            .find(|f| f.pgno == 1 && f.salt_ok && f.checksum_ok)
        else {
            return Ok(());
        };
        let ps = self.page_size as usize;
        let (mut a, mut b) = (vec![0u8; ps], vec![0u8; ps]);
        read_full_at(&self.file, &mut a, 0).map_err(|e| Error::io(&self.path, e))?;
        read_full_at(wf, &mut b, first.page_offset(self.page_size))
            .map_err(|e| Error::io(&w.path, e))?;
        let names = |p: &[u8]| table_names_on_page1(p, h.usable_size, h.encoding);
        if let (Some(ours), Some(theirs)) = (names(&a), names(&b)) {
            if !ours.is_empty() && !theirs.is_empty() && !ours.iter().any(|n| theirs.contains(n)) {
                return Err(bad("its page 1 describes another schema".into()));
            }
        }
        Ok(())
    }

    /// Why the WAL was set aside by [`Database::open_salvage`], if it was.
    pub fn wal_rejected(&self) -> Option<&str> {
        self.wal_rejected.as_deref()
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
        let src = self.page_reader(overlay, None);
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
        let present = src.present_pages(file_pages);
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

    fn page_reader(
        &self,
        overlay: HashMap<u32, u64>,
        journal: Option<(Arc<File>, HashMap<u32, u64>)>,
    ) -> PageReader {
        PageReader {
            db_path: self.path.clone(),
            db_file: Arc::clone(&self.file),
            wal_file: self.wal_file.clone(),
            page_size: self.page_size,
            overlay,
            journal,
            ahead: Default::default(),
        }
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

/// The WAL file `path` names: `path` itself when it is one (by its magic
/// number), else the `-wal` beside the database at `path` (which must
/// open as a database).
pub fn locate_wal(path: &Path) -> Result<PathBuf> {
    if crate::wal::is_wal_file(path) {
        return Ok(path.to_path_buf());
    }
    Database::open_with(path, WalChoice::Ignore)?;
    let wal = sibling(path, "-wal");
    if !wal.exists() {
        return Err(Error::io(
            &wal,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no WAL file"),
        ));
    }
    Ok(wal)
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
