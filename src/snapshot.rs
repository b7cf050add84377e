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
use crate::format::header::{DbHeader, HEADER_SIZE, RawHeader, TextEncoding};
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
    wal_rejected: Option<String>,
}

/// Guesses the text encoding of a database whose header is gone from the
/// text values on its leaf pages: UTF-16 text of mostly ASCII characters
/// has a zero in every other byte.
fn guess_encoding(src: &PageReader, pages: u32, page_size: u32) -> TextEncoding {
    use crate::format::page::BtreePage;
    use crate::format::record::{Record, ValueRef};
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
/// ([`crate::format::page::BtreePage::is_consistent`]). At a wrong size a
/// page's cells point past its end or leave its content area short.
fn guess_page_size(file: &File, file_size: u64) -> Option<u32> {
    use crate::format::page::BtreePage;
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

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Opens `path` read-only if it is a regular file; directories, FIFOs,
/// sockets and devices are refused (`InvalidInput`).
///
/// The open itself does not wait: opening a FIFO for reading would block
/// until a writer appears, so it is opened non-blocking and then refused.
/// (The flag changes nothing for regular files.)
pub(crate) fn open_regular(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// [`open_regular`], with the file's size.
pub(crate) fn open_input(path: &Path) -> Result<(File, u64)> {
    let file = open_regular(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    Ok((file, size))
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
        Self::open_inner(path.as_ref(), wal, false)
    }

    /// Opens a possibly damaged database for salvage: a header that does
    /// not parse (page 1 zeroed or torn) is tolerated, the page size then
    /// coming from the WAL or from the shape of the file's pages; a WAL that
    /// does not belong to the database is set aside (see
    /// [`Database::wal_rejected`]) instead of failing the open.
    pub fn open_salvage(path: impl AsRef<Path>, wal: WalChoice) -> Result<Self> {
        Self::open_inner(path.as_ref(), wal, true)
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
            (None, None) if lenient && file_size > 0 => guess_page_size(&file, file_size)
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
        // too); the schema check only when salvaging, where a wrong WAL
        // would be carved into the output.
        let belongs = db.check_wal_belongs().and_then(|_| {
            if lenient {
                db.check_schema_continuity()
            } else {
                Ok(())
            }
        });
        if let Err(e) = belongs {
            if !lenient {
                return Err(e);
            }
            db.wal_rejected = Some(e.to_string());
            db.wal = None;
            db.wal_file = None;
            db.shm = None;
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
        let names = |p: &[u8]| crate::schema::table_names_on_page1(p, h.usable_size, h.encoding);
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

    /// Rejects a WAL after which none of the database file's tables exist
    /// any more and whose schema cookie did not move forward: a WAL of
    /// another database. (A migration that drops every table and creates
    /// new ones in the WAL bumps the cookie and is kept.)
    fn check_schema_continuity(&self) -> Result<()> {
        if self.wal.is_none() || self.header.is_none() {
            return Ok(());
        }
        let user = |s: &crate::schema::Schema| -> Vec<String> {
            s.tables
                .iter()
                .filter(|t| !t.name.to_ascii_lowercase().starts_with("sqlite_"))
                .map(|t| t.name.to_ascii_lowercase())
                .collect()
        };
        let Ok(s0) = self.snapshot(Some(0)) else {
            return Ok(());
        };
        let Ok(before) = crate::schema::Schema::read(&s0) else {
            return Ok(());
        };
        let Ok(sn) = self.snapshot(None) else {
            return Ok(());
        };
        let Ok((after, _)) = crate::schema::Schema::read_lenient(&sn) else {
            return Ok(());
        };
        let cookie_forward = sn.header().raw.schema_cookie > s0.header().raw.schema_cookie;
        let (b, a) = (user(&before), user(&after));
        if !cookie_forward && !b.is_empty() && !a.is_empty() && !b.iter().any(|n| a.contains(n)) {
            return Err(Error::BadWal {
                path: self
                    .wal
                    .as_ref()
                    .map(|w| w.path.clone())
                    .unwrap_or_default(),
                reason: "after it, none of the database's tables exist: it is another database's"
                    .into(),
            });
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

    /// Reads the database for salvage as of salvage commit `at` (default:
    /// the last one). Unlike [`Database::snapshot`], a damaged frame does
    /// not end the WAL: every frame is checked against its predecessor's
    /// stored checksum, so commits after a damaged frame stay usable; a page
    /// whose newest version is damaged keeps its previous good version and
    /// is listed in [`SalvageWal::fallback_pages`]. Frames after the last
    /// intact commit frame (never committed) and frames of an older WAL
    /// generation (other salts) are not applied. A page 1 that does not
    /// parse is replaced, for its header fields only, by the database
    /// file's, an older intact version's, or a stand-in.
    pub fn salvage(&self, at: Option<u32>) -> Result<Salvage> {
        let mut overlay: HashMap<u32, u64> = HashMap::new();
        let mut page_count = None;
        let mut info = None;
        let mut older: HashMap<u32, Vec<u64>> = HashMap::new();
        if let Some(w) = &self.wal {
            let ps = self.page_size;
            let mut commits = Vec::new();
            let mut damaged = Vec::new();
            let mut stale = 0usize;
            let mut pending: Vec<(u32, u64, bool)> = Vec::new();
            let mut fallback: std::collections::BTreeSet<u32> = Default::default();
            let mut first = 1u32;
            let target = at;
            let mut done = false;
            for f in &w.frames {
                let intact = f.salt_ok && f.checksum_ok && f.pgno != 0;
                if !f.salt_ok {
                    // A frame of an earlier WAL generation (or one whose
                    // salt is damaged): an older page version, kept as
                    // evidence only.
                    stale += 1;
                    if f.pgno != 0 {
                        older.entry(f.pgno).or_default().push(f.page_offset(ps));
                    }
                    continue;
                }
                if done {
                    continue;
                }
                if !intact {
                    damaged.push(f.index);
                }
                pending.push((f.pgno, f.page_offset(ps), intact));
                if intact && f.commit_size != 0 {
                    for (pgno, off, ok) in pending.drain(..) {
                        if ok {
                            if let Some(prev) = overlay.insert(pgno, off) {
                                older.entry(pgno).or_default().push(prev);
                            }
                            fallback.remove(&pgno);
                        } else if pgno != 0 {
                            fallback.insert(pgno);
                        }
                    }
                    commits.push(crate::wal::Commit {
                        number: commits.len() as u32 + 1,
                        first_frame: first,
                        last_frame: f.index,
                        db_size: f.commit_size,
                    });
                    first = f.index + 1;
                    page_count = Some(f.commit_size);
                    if target == Some(commits.len() as u32) {
                        done = true;
                    }
                }
            }
            if let Some(n) = target {
                if n > commits.len() as u32 {
                    return Err(Error::NoSuchCommit {
                        requested: n,
                        available: commits.len() as u32,
                    });
                }
                if n == 0 {
                    overlay.clear();
                    page_count = None;
                    fallback.clear();
                }
            }
            info = Some(SalvageWal {
                sqlite_commits: w.commits.len() as u32,
                uncommitted_frames: pending.len(),
                commit: commits.len().min(at.map_or(usize::MAX, |a| a as usize)) as u32,
                commits,
                damaged_frames: damaged,
                stale_frames: stale,
                fallback_pages: fallback.into_iter().collect(),
            });
        } else if let Some(n) = at.filter(|&n| n > 0) {
            return Err(Error::NoSuchCommit {
                requested: n,
                available: 0,
            });
        }
        // A hot rollback journal (rollback-journal databases only) puts back
        // the pages of the interrupted transaction: the last committed state.
        let journal = match (&self.wal, self.header.as_ref().map(|h| h.is_wal_mode())) {
            (None, Some(false) | None) => {
                JournalInfo::scan(&sibling(&self.path, "-journal"), self.page_size)
            }
            _ => None,
        };
        if let Some(j) = &journal {
            page_count = Some(j.header.initial_size);
        }
        let journal_pages = match (&journal, open_input(&sibling(&self.path, "-journal"))) {
            (Some(j), Ok((f, _))) => Some((Arc::new(f), j.offsets.clone())),
            _ => None,
        };
        let src = self.page_reader(overlay, journal_pages);
        let mut p1 = vec![0u8; self.page_size as usize];
        src.read(1, &mut p1)?;
        let (header, header_from) = match DbHeader::parse(&p1) {
            Ok(h) if h.page_size == self.page_size => (h, HeaderSource::Page1),
            _ => {
                let from_older = older.get(&1).and_then(|v| {
                    v.iter().rev().find_map(|off| {
                        let mut b = vec![0u8; HEADER_SIZE];
                        let wf = self.wal_file.as_ref()?;
                        read_full_at(wf, &mut b, *off).ok()?;
                        DbHeader::parse(&b)
                            .ok()
                            .filter(|h| h.page_size == self.page_size)
                    })
                });
                match (&self.header, from_older) {
                    (Some(h), _) if h.page_size == self.page_size => {
                        (h.clone(), HeaderSource::DatabaseFile)
                    }
                    (_, Some(h)) => (h, HeaderSource::OlderVersion),
                    _ => {
                        let mut h = DbHeader::synthetic(self.page_size);
                        h.encoding = guess_encoding(
                            &src,
                            self.file_pages().min(2048) as u32,
                            self.page_size,
                        );
                        h.raw.text_encoding = match h.encoding {
                            TextEncoding::Utf8 => 1,
                            TextEncoding::Utf16le => 2,
                            TextEncoding::Utf16be => 3,
                        };
                        (h, HeaderSource::StandIn)
                    }
                }
            }
        };
        let file_pages = self.file_pages().min(u64::from(u32::MAX)) as u32;
        let claimed = match page_count {
            Some(n) => n,
            None => match header_from {
                HeaderSource::Page1 => header.database_size().unwrap_or(file_pages),
                _ => file_pages,
            },
        };
        let present = src.present_pages(file_pages);
        let commit = info.as_ref().map_or(0, |i| i.commit);
        Ok(Salvage {
            snapshot: Snapshot {
                src,
                page_count: claimed.min(present).max(1),
                claimed_page_count: claimed,
                header,
                commit,
                exactness: Exactness::Exact,
            },
            wal: info,
            journal,
            header_from,
            older,
            file_pages,
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

/// Where a salvage snapshot's header fields came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeaderSource {
    /// Page 1 of the snapshot itself.
    Page1,
    /// The database file's page 1 (the snapshot's page 1 is damaged).
    DatabaseFile,
    /// An older intact version of page 1 in the WAL.
    OlderVersion,
    /// Nothing readable: page size from the WAL or the file's shape,
    /// UTF-8, no reserved bytes.
    StandIn,
}

/// How salvage read the WAL.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SalvageWal {
    /// Commits SQLite itself would apply.
    pub sqlite_commits: u32,
    /// Commits salvage found (intact commit frames, also after damage).
    pub commits: Vec<crate::wal::Commit>,
    /// The commit applied.
    pub commit: u32,
    /// Frames of the current WAL generation that are damaged.
    pub damaged_frames: Vec<u32>,
    /// Frames of an earlier generation (other salts), not applied.
    pub stale_frames: usize,
    /// Frames after the last intact commit frame, never committed.
    pub uncommitted_frames: usize,
    /// Pages whose newest committed version is damaged; their previous
    /// good version is used and the rows on them may be stale.
    pub fallback_pages: Vec<u32>,
}

/// A salvage reading of a database: its snapshot, how the WAL was read,
/// and older versions of pages kept as evidence.
#[derive(Debug, Clone)]
pub struct Salvage {
    /// The pages as of the chosen commit.
    pub snapshot: Snapshot,
    /// How the WAL was read, when there is one.
    pub wal: Option<SalvageWal>,
    /// The hot rollback journal applied, when there is one.
    pub journal: Option<JournalInfo>,
    /// Where the header fields came from.
    pub header_from: HeaderSource,
    older: HashMap<u32, Vec<u64>>,
    file_pages: u32,
}

impl Salvage {
    /// WAL offsets of older intact versions of page `pgno` (oldest first):
    /// superseded committed frames and frames of earlier WAL generations.
    pub fn older_versions(&self, pgno: u32) -> &[u64] {
        self.older.get(&pgno).map_or(&[], |v| v.as_slice())
    }

    /// Pages that have an older version somewhere: superseded or stale WAL
    /// frames, or the database file's own copy of a page the WAL replaced.
    pub fn pages_with_older_versions(&self) -> Vec<u32> {
        let file_pages = self.snapshot.page_count.min(self.file_pages);
        let mut v: Vec<u32> = self
            .older
            .keys()
            .copied()
            .chain(
                self.snapshot
                    .src
                    .overlay
                    .keys()
                    .copied()
                    .filter(|&p| p <= file_pages),
            )
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Reads the database file's own copy of page `pgno`.
    pub fn read_file_page(&self, pgno: u32, buf: &mut [u8]) -> Result<()> {
        let ps = u64::from(self.snapshot.src.page_size);
        let buf = buf
            .get_mut(..ps as usize)
            .ok_or_else(|| Error::corrupt(pgno, "page buffer too small"))?;
        read_full_at(
            &self.snapshot.src.db_file,
            buf,
            u64::from(pgno.saturating_sub(1)) * ps,
        )
        .map_err(|e| Error::io(&self.snapshot.src.db_path, e))
    }

    /// Reads a page version at a WAL offset returned by
    /// [`Salvage::older_versions`].
    pub fn read_version(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let ps = self.snapshot.src.page_size as usize;
        let buf = buf
            .get_mut(..ps)
            .ok_or_else(|| Error::corrupt(0, "page buffer too small"))?;
        match &self.snapshot.src.wal_file {
            Some(w) => {
                read_full_at(w, buf, offset).map_err(|e| Error::io(&self.snapshot.src.db_path, e))
            }
            None => Err(Error::corrupt(0, "no WAL")),
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
    /// Original pages from a hot rollback journal: (journal, page -> offset).
    journal: Option<(Arc<File>, HashMap<u32, u64>)>,
}

impl PageReader {
    /// The highest page number that can be read: the file's last page, or
    /// a WAL page past it (a truncated file under newer WAL pages; the pages
    /// in between read as zeros). Every page of a valid database exists; a
    /// size claiming more is damage. A gap far larger than what exists is
    /// not a truncation but a wild page number, and counts for what exists
    /// only, so that nothing is sized by it.
    fn present_pages(&self, file_pages: u32) -> u32 {
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

    fn read(&self, pgno: u32, buf: &mut [u8]) -> Result<()> {
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
        read_full_at(&self.db_file, buf, off).map_err(|e| Error::io(&self.db_path, e))
    }
}

/// A hot rollback journal beside a database: the original content of the
/// pages an interrupted transaction changed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JournalInfo {
    /// The journal file.
    pub path: PathBuf,
    /// Its first segment header.
    pub header: crate::format::journal::JournalHeader,
    /// Page records whose checksum is valid (up to the first bad one).
    pub records: usize,
    /// Distinct pages they restore.
    pub pages: usize,
    #[serde(skip)]
    offsets: HashMap<u32, u64>,
}

impl JournalInfo {
    /// Reads a journal; None when it is missing, empty, or has no valid
    /// header (a journal whose header was zeroed is not hot).
    pub fn scan(path: &Path, page_size: u32) -> Option<JournalInfo> {
        use crate::format::journal::{JournalHeader, page_checksum};
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
