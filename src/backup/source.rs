//! The backup's source: its descriptors (kept open, see [`Source`]), the
//! locks other processes hold on it (`/proc/locks`), whether writers
//! commit, and the read transaction that pins the snapshot copied.
//!
//! Takes the source's path; gives an open [`Source`], its checked header,
//! and the WAL-index header a snapshot was taken from.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use super::pace::Pacer;
use crate::error::{Error, Result};
use crate::io::{open_regular, sibling};
use crate::snapshot::JournalInfo;
use crate::wal::IndexHeader;
use sqlite_salvage_format::header::DbHeader;

/// The source's database file and `-shm`, through descriptors that are
/// never closed ([`kept_open`]).
///
/// SQLite's locks on Unix are POSIX record locks, which belong to the
/// process, not to a descriptor: closing *any* descriptor of the database
/// file or the `-shm` drops every lock this process holds on it, the read
/// transaction's among them, after which a checkpoint may write past the
/// snapshot and the WAL may be restarted under the copy. So every read of
/// those two files goes through these descriptors.
pub(super) struct Source {
    pub(super) db: Arc<File>,
    pub(super) shm: Option<Arc<File>>,
}

/// A descriptor of the file at `path` that stays open for the life of the
/// process, one per file: other SQLite connections of this process (a
/// program that links the library) hold POSIX locks on a live database's
/// files too, and closing any descriptor of them would drop those.
pub(super) fn kept_open(path: &Path) -> std::io::Result<Arc<File>> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type ByFile = HashMap<(u64, u64), Arc<File>>;
    static OPEN: OnceLock<Mutex<ByFile>> = OnceLock::new();
    let key = |m: &std::fs::Metadata| {
        use std::os::unix::fs::MetadataExt;
        (m.dev(), m.ino())
    };
    let mut open = OPEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    // Looked up by what the path names now, without opening it.
    if let Some(f) = open.get(&key(&std::fs::metadata(path)?)) {
        return Ok(f.clone());
    }
    let f = Arc::new(open_regular(path)?);
    // Kept under the file it opened, even if the path changed since.
    let k = key(&f.metadata()?);
    Ok(open.entry(k).or_insert(f).clone())
}

impl Source {
    pub(super) fn open(src: &Path) -> Result<Source> {
        Ok(Source {
            db: kept_open(src).map_err(|e| Error::io(src, e))?,
            shm: kept_open(&sibling(src, "-shm")).ok(),
        })
    }

    /// Whether the WAL database at `src` is open nowhere: it has no `-shm`
    /// and no process holds a lock on it. Locked without a `-shm` for
    /// 200 ms (not a connection between its lock and its `-shm`): held in
    /// exclusive locking mode, an error.
    pub(super) fn wal_closed(&self, src: &Path) -> Result<bool> {
        let shm = sibling(src, "-shm");
        for _ in 0..20 {
            if shm.exists() {
                return Ok(false);
            }
            if locked(&self.db) != Some(true) {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(Error::HeldExclusively(src.to_path_buf()))
    }

    /// The database file's size and times, and the WAL's inode, size and
    /// times: what a connection in another process changes when it
    /// checkpoints, or ends, or restarts the WAL.
    pub(super) fn stamp(&self, src: &Path) -> Vec<i64> {
        use std::os::unix::fs::MetadataExt;
        let of = |m: std::io::Result<std::fs::Metadata>| match m {
            Ok(m) => vec![
                1,
                m.ino() as i64,
                m.size() as i64,
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
            ],
            Err(_) => vec![0],
        };
        let mut v = of(self.db.metadata());
        v.extend(of(std::fs::metadata(sibling(src, "-wal"))));
        v
    }

    /// The WAL-index header from the `-shm`, read through the descriptor
    /// kept open.
    pub(super) fn index_header(&self) -> Option<IndexHeader> {
        self.shm
            .as_deref()
            .and_then(crate::wal::read_index_header_from)
    }
}

/// Whether any process, this one included, holds a lock on `file`: Linux
/// lists every POSIX, OFD and flock lock in `/proc/locks`, by device and
/// inode. `None` where that list cannot be read.
pub(super) fn locked(file: &File) -> Option<bool> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata().ok()?;
    let dev = m.dev();
    // st_dev's major and minor numbers, as glibc's major() and minor().
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let id = format!("{major:02x}:{minor:02x}:{}", m.ino());
    // The list is made a page per read: a lock listed before ours that goes
    // away between two reads can make ours skipped. Read three times.
    let mut listed = false;
    for _ in 0..3 {
        let mut text = Vec::with_capacity(1 << 16);
        let read = File::open("/proc/locks").and_then(|mut f| f.read_to_end(&mut text));
        if read.is_err() {
            continue;
        }
        listed = true;
        let text = String::from_utf8_lossy(&text);
        if text.lines().any(|l| l.split_whitespace().any(|f| f == id)) {
            return Some(true);
        }
    }
    listed.then_some(false)
}

/// Refuses a source with a hot rollback journal (SQLite would roll it back,
/// writing to the source).
pub(super) fn check_source(src: &Path) -> Result<DbHeader> {
    let mut head = [0u8; 100];
    use std::os::unix::fs::FileExt;
    kept_open(src)
        .map_err(|e| Error::io(src, e))?
        .read_exact_at(&mut head, 0)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Error::NotADatabase {
                path: src.to_path_buf(),
                reason: "shorter than a database header".into(),
            },
            _ => Error::io(src, e),
        })?;
    let header = DbHeader::parse(&head).map_err(|e| Error::NotADatabase {
        path: src.to_path_buf(),
        reason: e.to_string(),
    })?;
    if !header.is_wal_mode()
        && JournalInfo::scan(&sibling(src, "-journal"), header.page_size).is_some()
    {
        return Err(Error::HotJournal(src.to_path_buf()));
    }
    Ok(header)
}

/// Whether the WAL database has writers committing: its `-shm`'s change
/// counter moves within 10 ms.
pub(super) fn writers_committing(source: &Source) -> bool {
    let mut p = Pacer::new(source.shm.clone());
    p.writers_active();
    std::thread::sleep(Duration::from_millis(10));
    p.writers_active()
}

/// Starts the read transaction that pins the backup's snapshot. For a WAL
/// database, returns the WAL-index header the snapshot was taken from: the
/// `-shm` header read just before and just after the transaction starts,
/// retried until both reads agree, so no commit was published in between.
/// Under a writer that never lets them agree, the header read just after
/// (its commits are at most the ones published while the transaction
/// started); `None` when the `-shm` cannot be read.
pub(super) fn begin_read(
    c: &Connection,
    source: &Source,
    wal_mode: bool,
) -> Result<Option<IndexHeader>> {
    let start = || -> Result<()> {
        c.execute_batch("BEGIN")?;
        c.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
        Ok(())
    };
    if !wal_mode {
        start()?;
        return Ok(None);
    }
    for _ in 0..200 {
        let before = source.index_header();
        start()?;
        let after = source.index_header();
        if before.is_some() && before == after {
            return Ok(after);
        }
        c.execute_batch("COMMIT")?;
        std::thread::sleep(Duration::from_micros(100));
    }
    start()?;
    // A read caught mid-update is read again.
    Ok((0..1000).find_map(|_| {
        let h = source.index_header();
        if h.is_none() {
            std::thread::sleep(Duration::from_micros(50));
        }
        h
    }))
}
