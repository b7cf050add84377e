//! Consistent hot backups of a live database, their verification, and
//! restoring them.
//!
//! ```text
//! compact (default)   DEST                 one database file, no WAL needed,
//!                     DEST.manifest.json   equal to one committed state
//! --files             DEST/NAME            the database file and its WAL up to
//!                     DEST/NAME-wal        a commit frame, as SQLite needs them
//!                     DEST/manifest.json   (no -shm: SQLite rebuilds it)
//! ```
//!
//! A backup is written under a temporary name beside DEST, synced, and
//! renamed into place; the manifest records the size and CRC-32 of every
//! file, so a backup cut short is never taken for a whole one.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::format::header::DbHeader;
use crate::io::open_regular;
use crate::snapshot::{Database, JournalInfo};
use crate::wal::{IndexHeader, WalIndex};

/// What kind of backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One compact database file.
    #[default]
    Compact,
    /// The database file and its WAL, in a directory.
    Files,
}

/// Options for [`backup`].
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Compact file or file set.
    pub mode: Mode,
    /// Replace an existing backup at DEST.
    pub force: bool,
    /// Skip fsync (faster; a crash soon after may lose the backup).
    pub no_sync: bool,
    /// Copy at full speed even while the source's writers commit (by
    /// default the backup yields to them: see [`backup`]).
    pub full_speed: bool,
}

/// The source's database file and `-shm`, through descriptors that are
/// never closed ([`kept_open`]).
///
/// SQLite's locks on Unix are POSIX record locks, which belong to the
/// process, not to a descriptor: closing *any* descriptor of the database
/// file or the `-shm` drops every lock this process holds on it, the read
/// transaction's among them, after which a checkpoint may write past the
/// snapshot and the WAL may be restarted under the copy. So every read of
/// those two files goes through these descriptors.
struct Source {
    db: Arc<File>,
    shm: Option<Arc<File>>,
}

/// A descriptor of the file at `path` that stays open for the life of the
/// process, one per file: other SQLite connections of this process (a
/// program that links the library) hold POSIX locks on a live database's
/// files too, and closing any descriptor of them would drop those.
fn kept_open(path: &Path) -> std::io::Result<Arc<File>> {
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
    fn open(src: &Path) -> Result<Source> {
        Ok(Source {
            db: kept_open(src).map_err(|e| Error::io(src, e))?,
            shm: kept_open(&sibling(src, "-shm")).ok(),
        })
    }

    /// Whether the WAL database at `src` is open nowhere: it has no `-shm`
    /// and no process holds a lock on it. Locked without a `-shm` for
    /// 200 ms (not a connection between its lock and its `-shm`): held in
    /// exclusive locking mode, an error.
    fn wal_closed(&self, src: &Path) -> Result<bool> {
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
    fn stamp(&self, src: &Path) -> Vec<i64> {
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
    fn index_header(&self) -> Option<IndexHeader> {
        self.shm
            .as_deref()
            .and_then(crate::wal::read_index_header_from)
    }
}

/// Spreads a backup's work out while the source's writers commit, so that
/// their commits, each synced, keep most of the machine and the disk: after
/// each piece of work the backup waits [`Pacer::YIELD`] times as long as
/// the piece took, for as long as the WAL index (`-shm`) showed a commit
/// within the last [`Pacer::QUIET`]. With no writer it runs at full speed.
struct Pacer {
    /// The source's `-shm` (from [`Source`]), when the backup yields.
    shm: Option<Arc<File>>,
    /// The WAL index's change counter when last read.
    change: Option<[u8; 4]>,
    /// When it was last seen to change.
    changed: Option<Instant>,
}

impl Pacer {
    /// Waits per unit of work while writers are active: the copy runs a
    /// tenth of the time.
    const YIELD: u32 = 9;
    /// How long after the last commit seen writers count as active.
    const QUIET: Duration = Duration::from_millis(250);

    /// Yields to the writers of the WAL database whose `-shm` is open as
    /// `shm` (`None`: never yields).
    fn new(shm: Option<Arc<File>>) -> Pacer {
        Pacer {
            shm,
            change: None,
            changed: None,
        }
    }

    /// Whether a writer committed lately. The change counter (bytes 8..12
    /// of the WAL-index header) moves with every commit and WAL restart.
    fn writers_active(&mut self) -> bool {
        use std::os::unix::fs::FileExt;
        let Some(f) = self.shm.as_deref() else {
            return false;
        };
        let mut b = [0u8; 12];
        if f.read_exact_at(&mut b, 0).is_ok() {
            let now = [b[8], b[9], b[10], b[11]];
            if self.change.is_some_and(|c| c != now) {
                self.changed = Some(Instant::now());
            }
            self.change = Some(now);
        }
        self.changed.is_some_and(|t| t.elapsed() < Self::QUIET)
    }

    /// Called after a piece of work that began at `start`.
    fn pace(&mut self, start: Instant) {
        let worked = start.elapsed();
        if self.writers_active() {
            std::thread::sleep(worked.saturating_mul(Self::YIELD));
        }
    }
}

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileEntry {
    /// File name (in the backup directory, or beside the manifest).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// CRC-32 of the content.
    pub crc32: u32,
}

/// The WAL state a file-set backup captured.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WalCapture {
    /// WAL salts.
    pub salt1: u32,
    /// WAL salts.
    pub salt2: u32,
    /// Frames kept (up to the last commit frame).
    pub frames: u32,
    /// Commits in them.
    pub commits: u32,
}

/// The manifest written beside every backup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// Manifest format version.
    pub format: u32,
    /// Backup kind.
    pub mode: Mode,
    /// The source database.
    pub source: String,
    /// When the backup was taken (seconds since the Unix epoch).
    pub created_unix: u64,
    /// Page size.
    pub page_size: u32,
    /// Pages in the backed-up database.
    pub page_count: u32,
    /// The WAL captured (file sets of WAL databases).
    pub wal: Option<WalCapture>,
    /// Every file, with size and CRC-32.
    pub files: Vec<FileEntry>,
}

/// Whether any process, this one included, holds a lock on `file`: Linux
/// lists every POSIX, OFD and flock lock in `/proc/locks`, by device and
/// inode. `None` where that list cannot be read.
fn locked(file: &File) -> Option<bool> {
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

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The manifest path of a backup at `dest`.
pub fn manifest_path(dest: &Path) -> PathBuf {
    if dest.is_dir() {
        dest.join("manifest.json")
    } else {
        sibling(dest, ".manifest.json")
    }
}

/// How [`copy_with_crc`] writes.
#[derive(Debug, Clone, Copy, Default)]
struct CopyHow {
    /// Sync every 16 MiB written, so the page cache never holds much of the
    /// backup dirty and the writers' own syncs do not queue behind one
    /// large flush.
    sync: bool,
    /// Copy no more than this many bytes.
    limit: Option<u64>,
    /// `to` holds an earlier copy of the same file: only the blocks that
    /// differ are written, and its length is set to the source's.
    refresh: bool,
    /// No writer was seen committing: a copy that does not yield may take
    /// a second core.
    second_core: bool,
}

/// Copies `src` (open on `from`) to `to` with the CRC-32 of the bytes
/// copied.
///
/// Read, summed and written in 1 MiB blocks. With [`CopyHow::second_core`]
/// (and neither yielding nor refreshing), this thread reads and sums while
/// a second one writes, which takes the copy from about 1.5x to about the
/// time of a kernel-side copy (`cp`); otherwise it runs on this thread
/// alone, leaving the other cores to the database's own writers (a second
/// thread at full speed halved a committing writer's rate in the bench).
fn copy_with_crc(
    src: &File,
    from: &Path,
    to: &Path,
    how: CopyHow,
    pacer: &mut Pacer,
) -> Result<FileEntry> {
    let dst = if how.refresh {
        File::options().read(true).write(true).open(to)
    } else {
        File::create(to)
    }
    .map_err(|e| Error::output(to, e))?;
    let (size, crc32) = if how.second_core && !how.refresh && pacer.shm.is_none() {
        copy_two_threads(src, from, &dst, to, how)?
    } else {
        copy_paced(src, from, &dst, to, how, pacer)?
    };
    if how.refresh {
        dst.set_len(size).map_err(|e| Error::output(to, e))?;
    }
    Ok(FileEntry {
        name: to
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        size,
        crc32,
    })
}

/// The block [`copy_with_crc`] reads and writes.
const BLOCK: usize = 1 << 20;
/// How much a synced copy writes between two syncs.
const SYNC_EVERY: u64 = 16 << 20;

/// Reads the block at `offset` of `src` (up to `limit`) into `buf`, again
/// when interrupted; 0 at its end.
fn read_block(src: &File, from: &Path, buf: &mut [u8], offset: u64, limit: u64) -> Result<usize> {
    // Positional reads: the descriptor may be shared (see `kept_open`).
    use std::os::unix::fs::FileExt;
    let want =
        usize::try_from(limit.saturating_sub(offset)).map_or(buf.len(), |left| left.min(buf.len()));
    loop {
        match src.read_at(&mut buf[..want], offset) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(from, e)),
        }
    }
}

/// [`copy_with_crc`] on this thread, pacing each block. Returns the size
/// and CRC-32 of what was copied.
fn copy_paced(
    src: &File,
    from: &Path,
    dst: &File,
    to: &Path,
    how: CopyHow,
    pacer: &mut Pacer,
) -> Result<(u64, u32)> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; BLOCK];
    let mut old = if how.refresh {
        vec![0u8; BLOCK]
    } else {
        Vec::new()
    };
    let limit = how.limit.unwrap_or(u64::MAX);
    let mut h = crc32fast::Hasher::new();
    let (mut size, mut written) = (0u64, 0u64);
    while size < limit {
        let start = Instant::now();
        let n = read_block(src, from, &mut buf, size, limit)?;
        if n == 0 {
            break;
        }
        let block = &buf[..n];
        h.update(block);
        let unchanged =
            how.refresh && dst.read_exact_at(&mut old[..n], size).is_ok() && old[..n] == *block;
        if !unchanged {
            dst.write_all_at(block, size)
                .map_err(|e| Error::output(to, e))?;
            let before = written;
            written += n as u64;
            if how.sync && before / SYNC_EVERY != written / SYNC_EVERY {
                dst.sync_data().map_err(|e| Error::output(to, e))?;
            }
        }
        size += n as u64;
        pacer.pace(start);
    }
    Ok((size, h.finalize()))
}

/// [`copy_with_crc`] on two threads: this one reads and sums each block,
/// a second one writes it. Returns the size and CRC-32 of what was copied.
fn copy_two_threads(
    src: &File,
    from: &Path,
    dst: &File,
    to: &Path,
    how: CopyHow,
) -> Result<(u64, u32)> {
    use std::os::unix::fs::FileExt;
    use std::sync::mpsc::sync_channel;
    // Three blocks go round: one being read, one being written, one
    // waiting between.
    const BLOCKS: usize = 3;
    let limit = how.limit.unwrap_or(u64::MAX);
    let (full_tx, full_rx) = sync_channel::<(Vec<u8>, usize, u64)>(BLOCKS);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(BLOCKS);
    for _ in 0..BLOCKS {
        // The receiver is alive here: the send cannot fail.
        let _ = empty_tx.send(vec![0u8; BLOCK]);
    }
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> Result<()> {
            let mut written = 0u64;
            for (buf, n, offset) in full_rx {
                dst.write_all_at(&buf[..n], offset)
                    .map_err(|e| Error::output(to, e))?;
                let before = written;
                written += n as u64;
                if how.sync && before / SYNC_EVERY != written / SYNC_EVERY {
                    dst.sync_data().map_err(|e| Error::output(to, e))?;
                }
                // The reader may have stopped: then nothing more is read.
                let _ = empty_tx.send(buf);
            }
            Ok(())
        });
        let mut h = crc32fast::Hasher::new();
        let mut size = 0u64;
        let read = (|| -> Result<()> {
            while size < limit {
                // No block comes back once the writer stopped: its error
                // is the one returned.
                let Ok(mut buf) = empty_rx.recv() else {
                    return Ok(());
                };
                let n = read_block(src, from, &mut buf, size, limit)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                if full_tx.send((buf, n, size)).is_err() {
                    return Ok(());
                }
                size += n as u64;
            }
            Ok(())
        })();
        drop(full_tx);
        let wrote = writer.join().unwrap_or_else(|_| {
            Err(Error::output(
                to,
                std::io::Error::other("the writing thread failed"),
            ))
        });
        read?;
        wrote?;
        Ok((size, h.finalize()))
    })
}

fn file_entry(path: &Path) -> Result<FileEntry> {
    let mut f = open_regular(path).map_err(|e| Error::io(path, e))?;
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok(FileEntry {
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        size,
        crc32: h.finalize(),
    })
}

/// Syncs a file or directory to disk.
fn sync_path(p: &Path) -> Result<()> {
    File::open(p)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::output(p, e))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Refuses a source with a hot rollback journal (SQLite would roll it back,
/// writing to the source).
fn check_source(src: &Path) -> Result<DbHeader> {
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

/// Takes a consistent backup of `src` at `dest`.
///
/// Compact: SQLite's `VACUUM INTO` from a read transaction (one committed
/// state: the newest when it starts; WAL readers and writers go on, in
/// rollback-journal mode writers wait for the copy), switched to
/// rollback-journal mode so no WAL is needed. Files: under a read
/// transaction that pins the snapshot (a checkpoint cannot copy frames past
/// it into the database file, nor can the WAL be restarted), the database
/// file is copied, then the WAL up to the snapshot's last commit.
///
/// A WAL database no process has open (no `-shm`, no lock) is read without
/// SQLite, so nothing is written beside it, and copied again if it was
/// opened meanwhile; one held by another process in exclusive locking mode
/// is refused ([`Error::HeldExclusively`]).
///
/// While the source's writers commit (the `-shm`'s change counter moved
/// within the last 250 ms), a WAL database's backup yields to them unless
/// `full_speed`: it works a tenth of the time and waits the rest, and holds
/// its snapshot only briefly, since a snapshot held long costs the writers
/// too (the WAL grows past it). The database file is copied first with no
/// snapshot held; under the read transaction it is read again at full speed
/// and only the blocks that changed are written, then the WAL is copied up
/// to the snapshot. A compact backup copies that file set into a private
/// directory beside DEST and compacts it from there, also yielding, syncing
/// the backup every 16 MiB as it is written. With no writer committing,
/// both run at full speed from the start (a compact one is `VACUUM INTO`
/// straight from the source) and file copies take a second thread; while
/// writers commit, they take one.
pub fn backup(src: &Path, dest: &Path, opts: &BackupOptions) -> Result<Manifest> {
    backup_inner(src, dest, opts, 0)
}

/// `attempt`: how many copies of a closed database were taken before and
/// found opened meanwhile; from the third on, SQLite reads the source.
fn backup_inner(src: &Path, dest: &Path, opts: &BackupOptions, attempt: u32) -> Result<Manifest> {
    let header = check_source(src)?;
    let source = Source::open(src)?;
    // A WAL database without a -shm and without a lock on it is open
    // nowhere (SQLite makes the -shm when it opens one, in every locking
    // mode but exclusive): it is read here without SQLite, which would
    // create a -shm beside it.
    let shm = sibling(src, "-shm");
    let closed = attempt < 2 && header.is_wal_mode() && source.wal_closed(src)?;
    // Whether a closed source was opened while it was copied (its -shm or
    // a lock appeared, or a checkpoint changed its files): then the backup
    // is taken again.
    let stamp = closed.then(|| source.stamp(src));
    let opened = || {
        closed
            && (shm.exists()
                || locked(&source.db) == Some(true)
                || stamp != Some(source.stamp(src)))
    };
    crate::io::check_output(dest, &[src], opts.force).or_else(|e| match e {
        // A file-set backup replaces a directory.
        Error::Output { .. } if opts.force && dest.is_dir() => Ok(()),
        e => Err(e),
    })?;
    let dir = parent_dir(dest);
    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "database.db".into());
    let tmp = tempfile::Builder::new()
        .prefix(".salvage-backup-")
        .tempdir_in(&dir)
        .map_err(|e| Error::output(&dir, e))?;
    let conn = if closed {
        None
    } else {
        let c = Connection::open_with_flags(
            src,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.busy_timeout(Duration::from_secs(30))?;
        Some(c)
    };
    // In rollback-journal mode writers wait for the copy: it never yields
    // to them.
    let yields = conn.is_some() && header.is_wal_mode() && !opts.full_speed;
    // Whether writers commit (the database is open somewhere): the backup
    // then yields to them, or at full speed, leaves them the other cores.
    // A compact backup at full speed is SQLite's single-threaded `VACUUM
    // INTO` either way: it is not asked.
    let writers = conn.is_some()
        && header.is_wal_mode()
        && (yields || opts.mode == Mode::Files)
        && writers_committing(&source);
    let mut manifest = Manifest {
        format: 1,
        mode: opts.mode,
        source: src.display().to_string(),
        created_unix: now(),
        page_size: header.page_size,
        page_count: 0,
        wal: None,
        files: Vec::new(),
    };
    match opts.mode {
        Mode::Compact => {
            let out = tmp.path().join("backup.db");
            match &conn {
                Some(c) if yields && writers => {
                    // The snapshot is copied as a file set, yielding to the
                    // writers, and compacted from that private copy, also
                    // yielding: the live database's snapshot is held only
                    // while its files are copied.
                    let image = tmp.path().join("image");
                    std::fs::create_dir(&image).map_err(|e| Error::output(&image, e))?;
                    copy_file_set(
                        Some(c),
                        &source,
                        src,
                        &header,
                        &image.join(&name),
                        SetHow {
                            sync: false,
                            two_pass: true,
                            second_core: false,
                        },
                    )?;
                    let mut private = Connection::open(image.join(&name))?;
                    // VACUUM INTO syncs its output as the connection's
                    // database would be synced, all at once at its end: a
                    // flush that the writers' own syncs would queue behind.
                    // Instead, what it has written so far is synced here
                    // every 16 MiB, as a piece of the paced work.
                    private.execute_batch("PRAGMA synchronous=OFF")?;
                    let mut pacer = Pacer::new(source.shm.clone());
                    let mut start = Instant::now();
                    let (sync, out_path) = (!opts.no_sync, out.clone());
                    let (mut written, mut synced_at) = (None::<File>, 0u64);
                    let failed = Arc::new(std::sync::Mutex::new(None::<std::io::Error>));
                    let failed_in = failed.clone();
                    // SQLite calls back every few thousand steps of the copy:
                    // the pacer's pieces of work.
                    private.progress_handler(
                        20_000,
                        Some(move || {
                            if sync {
                                if written.is_none() {
                                    written = File::open(&out_path).ok();
                                }
                                if let Some(f) = &written {
                                    let len = f.metadata().map_or(0, |m| m.len());
                                    if len >= synced_at.saturating_add(SYNC_EVERY) {
                                        if let Err(e) = f.sync_data() {
                                            // Reported once VACUUM INTO ends.
                                            if let Ok(mut slot) = failed_in.lock() {
                                                slot.get_or_insert(e);
                                            }
                                        }
                                        synced_at = len;
                                    }
                                }
                            }
                            pacer.pace(start);
                            start = Instant::now();
                            false
                        }),
                    )?;
                    private.execute("VACUUM INTO ?1", [out.to_string_lossy()])?;
                    drop(private);
                    let _ = std::fs::remove_dir_all(&image);
                    if let Some(e) = failed.lock().ok().and_then(|mut slot| slot.take()) {
                        return Err(Error::output(&out, e));
                    }
                }
                Some(c) => {
                    c.execute("VACUUM INTO ?1", [out.to_string_lossy()])?;
                }
                None => {
                    // The latest commit as a private image, compacted from there.
                    let image = tmp.path().join("image.db");
                    let snap = Database::open(src)?.latest()?;
                    let mut f = File::create(&image).map_err(|e| Error::output(&image, e))?;
                    snap.write_image(&mut f)?;
                    drop(f);
                    Connection::open(&image)?.execute("VACUUM INTO ?1", [out.to_string_lossy()])?;
                    let _ = std::fs::remove_file(&image);
                }
            }
            drop(conn);
            if opened() {
                return backup_inner(src, dest, opts, attempt + 1);
            }
            {
                let c = Connection::open(&out)?;
                c.query_row("PRAGMA journal_mode=DELETE", [], |_| Ok(()))?;
                manifest.page_count = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            }
            let mut entry = file_entry(&out)?;
            entry.name = dest
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            manifest.files.push(entry);
            let mpath = tmp.path().join("manifest.json");
            write_json(&mpath, &manifest)?;
            if !opts.no_sync {
                sync_path(&out)?;
                sync_path(&mpath)?;
            }
            // The database first, its manifest last: a backup without its
            // manifest does not verify.
            let final_manifest = manifest_path_for_file(dest);
            let _ = std::fs::remove_file(&final_manifest);
            std::fs::rename(&out, dest).map_err(|e| Error::output(dest, e))?;
            std::fs::rename(&mpath, &final_manifest).map_err(|e| Error::output(dest, e))?;
        }
        Mode::Files => {
            let set = copy_file_set(
                conn.as_ref(),
                &source,
                src,
                &header,
                &tmp.path().join(&name),
                SetHow {
                    sync: !opts.no_sync,
                    two_pass: yields && writers,
                    second_core: !writers,
                },
            )?;
            manifest.page_count = set.page_count;
            manifest.wal = set.wal;
            let files = set.files;
            drop(conn);
            if opened() {
                return backup_inner(src, dest, opts, attempt + 1);
            }
            manifest.files = files;
            let mpath = tmp.path().join("manifest.json");
            write_json(&mpath, &manifest)?;
            if !opts.no_sync {
                for f in std::fs::read_dir(tmp.path()).map_err(|e| Error::io(tmp.path(), e))? {
                    let f = f.map_err(|e| Error::io(tmp.path(), e))?;
                    sync_path(&f.path())?;
                }
                sync_path(tmp.path())?;
            }
            let staged = tmp.keep();
            if dest.exists() {
                let old = dir.join(format!(".salvage-old-{}-{}", now(), std::process::id()));
                std::fs::rename(dest, &old).map_err(|e| Error::output(dest, e))?;
                std::fs::rename(&staged, dest).map_err(|e| Error::output(dest, e))?;
                let _ = std::fs::remove_dir_all(&old);
            } else {
                std::fs::rename(&staged, dest).map_err(|e| Error::output(dest, e))?;
            }
        }
    }
    if !opts.no_sync {
        sync_path(&dir)?;
    }
    Ok(manifest)
}

/// How [`copy_file_set`] copies.
#[derive(Debug, Clone, Copy)]
struct SetHow {
    /// Sync as it writes ([`CopyHow::sync`]).
    sync: bool,
    /// Copy the database file first with no snapshot held, yielding.
    two_pass: bool,
    /// [`CopyHow::second_core`].
    second_core: bool,
}

/// What [`copy_file_set`] copied.
struct FileSet {
    /// The database file, then the WAL if it holds a commit.
    files: Vec<FileEntry>,
    /// Pages of the database as of the snapshot.
    page_count: u32,
    /// The WAL's part of the snapshot.
    wal: Option<WalCapture>,
}

/// Copies the database file of `src` to `db_out` and its WAL up to the
/// snapshot's last commit beside it, under a read transaction on `conn`
/// that pins the snapshot (none for a database no one has open), and ends
/// the transaction. With `two_pass` (writers commit and the backup yields
/// to them), the database file is copied first with no snapshot held,
/// yielding, and under the read transaction only refreshed. With
/// `second_core` (no writer commits), copies at full speed take two threads.
fn copy_file_set(
    conn: Option<&Connection>,
    source: &Source,
    src: &Path,
    header: &DbHeader,
    db_out: &Path,
    how: SetHow,
) -> Result<FileSet> {
    let SetHow {
        sync,
        two_pass,
        second_core,
    } = how;
    if two_pass {
        // A first pass with no snapshot held, yielding to the writers: the
        // pass under the read transaction then reads the file again at full
        // speed but writes only the blocks that changed since, so the
        // snapshot is held briefly (held long, it costs the writers: the
        // WAL grows past it).
        let mut pacer = Pacer::new(source.shm.clone());
        let first = CopyHow {
            sync,
            ..CopyHow::default()
        };
        copy_with_crc(&source.db, src, db_out, first, &mut pacer)?;
    }
    let pinned = match conn {
        Some(c) => begin_read(c, source, header.is_wal_mode())?,
        None => None,
    };
    let mut full_speed = Pacer::new(None);
    let pass = CopyHow {
        sync,
        refresh: two_pass,
        second_core,
        ..CopyHow::default()
    };
    let db_entry = copy_with_crc(&source.db, src, db_out, pass, &mut full_speed)?;
    let wal_path = sibling(src, "-wal");
    let file_pages = (db_entry.size / u64::from(header.page_size)) as u32;
    let mut set = FileSet {
        page_count: match DbHeader::parse(&read_head(db_out)?) {
            Ok(h) => h.database_size().unwrap_or(file_pages),
            Err(_) => file_pages,
        },
        files: vec![db_entry],
        wal: None,
    };
    if header.is_wal_mode() && wal_path.is_file() {
        // The WAL's bytes as they are now, then validated where they
        // landed: the frames kept are exactly the ones checked. Under the
        // read transaction the WAL cannot be restarted while the snapshot
        // needs a frame of it.
        let wal_out = sibling(db_out, "-wal");
        // SQLite takes no lock on the WAL file itself.
        let wal_file = open_regular(&wal_path).map_err(|e| Error::io(&wal_path, e))?;
        // Up to the snapshot's last frame: later frames are not kept.
        let wal_how = CopyHow {
            limit: pinned
                .as_ref()
                .map(|p| crate::wal::frame_offset(p.max_frame.saturating_add(1), header.page_size)),
            second_core,
            ..CopyHow::default()
        };
        let copied = copy_with_crc(&wal_file, &wal_path, &wal_out, wal_how, &mut full_speed)?;
        let mut scanned = WalIndex::scan(&wal_out)?;
        if let (Some(idx), Some(pin)) = (&mut scanned, &pinned) {
            // Only the snapshot's commits: later ones (and a commit
            // frame a writer is still syncing, which no reader sees
            // yet) stay out. A WAL restarted since holds none of
            // them: the snapshot needed no frame, and the database
            // file, which no checkpoint could then write, is it.
            let last = if pin.salts_match(&idx.header) {
                pin.max_frame
            } else {
                0
            };
            idx.commits.retain(|c| c.last_frame <= last);
        }
        match scanned {
            Some(idx) if idx.last_valid_frame() > 0 => {
                let frames = idx.last_valid_frame();
                let keep = crate::wal::frame_offset(frames + 1, idx.header.page_size);
                if keep == copied.size {
                    set.files.push(copied);
                } else {
                    // A transaction was being written or not yet published:
                    // its frames go.
                    File::options()
                        .write(true)
                        .open(&wal_out)
                        .and_then(|f| f.set_len(keep))
                        .map_err(|e| Error::output(&wal_out, e))?;
                    set.files.push(file_entry(&wal_out)?);
                }
                if let Some(c) = idx.commits.last() {
                    set.page_count = c.db_size;
                }
                set.wal = Some(WalCapture {
                    salt1: idx.header.salt1,
                    salt2: idx.header.salt2,
                    frames,
                    commits: idx.commits.len() as u32,
                });
            }
            _ => {
                let _ = std::fs::remove_file(&wal_out);
            }
        }
    }
    if let Some(c) = conn {
        c.execute_batch("COMMIT")?;
    }
    Ok(set)
}

/// Whether the WAL database has writers committing: its `-shm`'s change
/// counter moves within 10 ms.
fn writers_committing(source: &Source) -> bool {
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
fn begin_read(c: &Connection, source: &Source, wal_mode: bool) -> Result<Option<IndexHeader>> {
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

fn read_head(p: &Path) -> Result<[u8; 100]> {
    let mut b = [0u8; 100];
    open_regular(p)
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Error::io(p, e))?;
    Ok(b)
}

fn manifest_path_for_file(dest: &Path) -> PathBuf {
    sibling(dest, ".manifest.json")
}

fn write_json(path: &Path, m: &Manifest) -> Result<()> {
    let text = serde_json::to_string_pretty(m)
        .map_err(|e| Error::output(path, std::io::Error::other(e)))?;
    let mut f = File::create(path).map_err(|e| Error::output(path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .map_err(|e| Error::output(path, e))
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    /// The manifest.
    pub manifest: Manifest,
    /// The database file of the backup.
    pub database: PathBuf,
    /// Rows per table, as SQLite reads them.
    pub tables: Vec<(String, u64)>,
}

/// Largest manifest read: a real one is well under a kilobyte.
const MAX_MANIFEST: u64 = 1 << 20;

/// Reads and parses a manifest (at most [`MAX_MANIFEST`] bytes, from a
/// regular file); the reason it cannot be used otherwise.
fn read_manifest(path: &Path) -> std::result::Result<Manifest, String> {
    let why = |e: &dyn std::fmt::Display| format!("manifest {}: {e}", path.display());
    let f = open_regular(path).map_err(|e| why(&e))?;
    let mut text = String::new();
    f.take(MAX_MANIFEST + 1)
        .read_to_string(&mut text)
        .map_err(|e| why(&e))?;
    if text.len() as u64 > MAX_MANIFEST {
        return Err(why(&format!("over {MAX_MANIFEST} bytes, not a manifest")));
    }
    serde_json::from_str(&text).map_err(|e| why(&format!("unreadable: {e}")))
}

/// A manifest lists what a backup writes: the database under a plain file
/// name (no directory part, so nothing outside the backup is read), then
/// at most its `-wal`.
fn check_file_names(files: &[FileEntry]) -> std::result::Result<(), String> {
    let Some((db, rest)) = files.split_first() else {
        return Err("the manifest lists no files".into());
    };
    let n = &db.name;
    if n.is_empty() || n == "." || n == ".." || n.contains(['/', '\0']) {
        return Err(format!("the manifest names {n:?}, not a file name"));
    }
    match rest {
        [] => Ok(()),
        [w] if w.name == format!("{n}-wal") => Ok(()),
        [w] => Err(format!(
            "the manifest lists {:?} beside {n:?}, not its -wal",
            w.name
        )),
        _ => Err(format!(
            "the manifest lists {} files; a backup has at most 2",
            files.len()
        )),
    }
}

/// Checks a backup: every file's size and CRC-32 against the manifest, our
/// structural check, and SQLite's `integrity_check` (on a private copy).
pub fn verify(dest: &Path) -> Result<Verified> {
    let bad = |what: String| Error::BadBackup {
        path: dest.to_path_buf(),
        what,
    };
    if !dest.exists() {
        return Err(Error::io(
            dest,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no backup here"),
        ));
    }
    let manifest = read_manifest(&manifest_path(dest)).map_err(bad)?;
    check_file_names(&manifest.files).map_err(bad)?;
    let base = if dest.is_dir() {
        dest.to_path_buf()
    } else {
        parent_dir(dest)
    };
    for f in &manifest.files {
        let p = base.join(&f.name);
        let got = file_entry(&p).map_err(|e| bad(format!("{}: {e}", f.name)))?;
        if got.size != f.size {
            return Err(bad(format!(
                "{}: {} bytes, the manifest says {}",
                f.name, got.size, f.size
            )));
        }
        if got.crc32 != f.crc32 {
            return Err(bad(format!(
                "{}: CRC-32 differs from the manifest's",
                f.name
            )));
        }
    }
    let database = match manifest.files.first() {
        Some(f) => base.join(&f.name),
        None => return Err(bad("the manifest lists no files".into())),
    };
    // What is verified (and restored) is what the manifest lists: a WAL or
    // journal written beside the backup since would change what SQLite and
    // our reader see.
    let wal_listed = manifest.files.len() == 2;
    for (suffix, listed) in [("-wal", wal_listed), ("-journal", false)] {
        let p = sibling(&database, suffix);
        if !listed && std::fs::metadata(&p).is_ok_and(|m| m.len() > 0) {
            return Err(bad(format!(
                "{} is beside the backup but not in its manifest: the backup was \
                 opened and written since it was taken (move that file away to use \
                 the backup as taken)",
                p.display()
            )));
        }
    }
    // Our reader: the structure of every page.
    let db = Database::open(&database).map_err(|e| bad(e.to_string()))?;
    let snap = db.latest().map_err(|e| bad(e.to_string()))?;
    if snap.page_count() != manifest.page_count {
        return Err(bad(format!(
            "{} pages, the manifest says {}",
            snap.page_count(),
            manifest.page_count
        )));
    }
    let report = crate::check::check(&snap).map_err(|e| bad(e.to_string()))?;
    if let Some(d) = report.damage.first() {
        return Err(bad(format!("page {}: {}", d.page, d.what)));
    }
    // SQLite, on a private copy (opening a WAL database writes beside it).
    let tmp = tempfile::tempdir().map_err(|e| Error::output(std::env::temp_dir(), e))?;
    let copy = tmp.path().join("verify.db");
    std::fs::copy(&database, &copy).map_err(|e| Error::io(&database, e))?;
    let wal = sibling(&database, "-wal");
    if wal_listed {
        std::fs::copy(&wal, sibling(&copy, "-wal")).map_err(|e| Error::io(&wal, e))?;
    }
    let conn = Connection::open(&copy)?;
    let ic: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if ic != "ok" {
        return Err(bad(format!("SQLite's integrity_check: {ic}")));
    }
    let mut tables = Vec::new();
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    for n in names {
        let c: i64 = conn.query_row(
            &format!("SELECT count(*) FROM {}", crate::schema::quote_ident(&n)),
            [],
            |r| r.get(0),
        )?;
        tables.push((n, c as u64));
    }
    Ok(Verified {
        manifest,
        database,
        tables,
    })
}

/// What [`restore`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Restored {
    /// The restored database.
    pub target: PathBuf,
    /// Files of the old database moved aside (a stale -wal, -shm or
    /// -journal must never be applied to the restored database).
    pub moved_aside: Vec<PathBuf>,
}

/// Whether another connection has `target` open: SQLite cannot take an
/// exclusive lock on it (WAL-mode connections always hold a shared lock;
/// a rollback-journal connection only while it reads or writes).
fn in_use(target: &Path) -> Result<bool> {
    let conn = Connection::open_with_flags(
        target,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // Closing must not checkpoint a stale WAL into the old file.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    conn.busy_timeout(std::time::Duration::ZERO)?;
    let r = conn
        .execute_batch("PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE; COMMIT;")
        .map(|_| false)
        .or_else(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Ok(true)
            }
            _ => Err(e),
        })?;
    Ok(r)
}

/// Verifies the backup at `dest`, then puts its database in place at
/// `target` atomically (a single file: a file-set backup is replayed).
/// Refuses when `target` is in use unless `even_if_in_use`.
pub fn restore(
    dest: &Path,
    target: &Path,
    even_if_in_use: bool,
    no_sync: bool,
) -> Result<Restored> {
    let v = verify(dest)?;
    if target.is_dir() {
        return Err(Error::output(
            target,
            std::io::Error::new(std::io::ErrorKind::IsADirectory, "target is a directory"),
        ));
    }
    const SIDE: [&str; 3] = ["-wal", "-shm", "-journal"];
    let existed: Vec<bool> = SIDE.iter().map(|s| sibling(target, s).exists()).collect();
    if target.exists() && !even_if_in_use && in_use(target)? {
        return Err(Error::InUse(target.to_path_buf()));
    }
    let db = Database::open(&v.database)?;
    let snap = db.latest()?;
    crate::io::write_atomically(target, !no_sync, |f| snap.write_image(f))?;
    let mut moved_aside = Vec::new();
    for (suffix, was_there) in SIDE.iter().zip(existed) {
        let p = sibling(target, suffix);
        if !p.exists() {
            continue;
        }
        if was_there {
            let aside = sibling(&p, &format!(".replaced-{}", now()));
            std::fs::rename(&p, &aside).map_err(|e| Error::output(&p, e))?;
            moved_aside.push(aside);
        } else {
            // Made by the in-use check's own connection.
            let _ = std::fs::remove_file(&p);
        }
    }
    Ok(Restored {
        target: target.to_path_buf(),
        moved_aside,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `-shm` whose WAL-index change counter is `change`.
    fn write_shm(path: &Path, change: u32) {
        let mut b = vec![0u8; 136];
        b[8..12].copy_from_slice(&change.to_ne_bytes());
        std::fs::write(path, b).unwrap();
    }

    /// Whether a TRUNCATE checkpoint by another connection was kept from
    /// finishing (SQLite reports busy while a reader pins the WAL). In one
    /// process SQLite also keeps the locks in memory, so this cannot see a
    /// lost POSIX lock: tests/backup.rs checks that from another process.
    fn truncate_is_busy(other: &Connection) -> bool {
        other
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
            == 1
    }

    #[test]
    fn the_pinned_snapshot_survives_the_copy_reads() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("live.db");
        let writer = Connection::open(&db).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
                 CREATE TABLE t(x); INSERT INTO t VALUES(1);",
            )
            .unwrap();
        // A checkpoint that must wait says busy at once.
        writer.busy_timeout(Duration::ZERO).unwrap();
        assert!(check_source(&db).unwrap().is_wal_mode());
        let source = Source::open(&db).unwrap();
        let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let pin = begin_read(&conn, &source, true).unwrap().unwrap();
        assert!(pin.max_frame > 0);
        writer.execute("INSERT INTO t VALUES(2)", []).unwrap();
        // The later commit is published, and not part of the snapshot.
        assert!(source.index_header().unwrap().max_frame > pin.max_frame);
        assert!(
            truncate_is_busy(&writer),
            "the read transaction pins the WAL"
        );
        // Everything the copy reads, through the kept descriptors.
        let mut pacer = Pacer::new(source.shm.clone());
        copy_with_crc(
            &source.db,
            &db,
            &dir.path().join("copy.db"),
            CopyHow::default(),
            &mut pacer,
        )
        .unwrap();
        // The writer is idle now.
        assert!(!writers_committing(&source));
        drop(pacer);
        assert!(truncate_is_busy(&writer), "still pinned after the copy");
    }

    /// A second pass over an earlier copy leaves exactly the source, as it
    /// is now, whether it changed inside, grew or shrank; a limit copies a
    /// prefix.
    #[test]
    fn a_refresh_pass_leaves_exactly_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let (src, out) = (dir.path().join("src"), dir.path().join("out"));
        let mut bytes: Vec<u8> = (0..(7u32 << 19)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &bytes).unwrap();
        let copy = |how: CopyHow| {
            let f = File::open(&src).unwrap();
            copy_with_crc(&f, &src, &out, how, &mut Pacer::new(None)).unwrap()
        };
        copy(CopyHow::default());
        let refresh = CopyHow {
            refresh: true,
            ..CopyHow::default()
        };
        bytes[(3 << 19) + 5] ^= 0xff;
        bytes.extend_from_slice(b"grown");
        std::fs::write(&src, &bytes).unwrap();
        let e = copy(refresh);
        assert_eq!(std::fs::read(&out).unwrap(), bytes, "changed and grown");
        assert_eq!(
            (e.size, e.crc32),
            (bytes.len() as u64, crc32fast::hash(&bytes))
        );
        bytes.truncate((1 << 20) + 7);
        std::fs::write(&src, &bytes).unwrap();
        let e = copy(refresh);
        assert_eq!(std::fs::read(&out).unwrap(), bytes, "shrunk");
        assert_eq!(e.crc32, crc32fast::hash(&bytes));
        let e = copy(CopyHow {
            limit: Some(1000),
            ..CopyHow::default()
        });
        assert_eq!(std::fs::read(&out).unwrap(), &bytes[..1000], "a prefix");
        assert_eq!((e.size, e.crc32), (1000, crc32fast::hash(&bytes[..1000])));
    }

    #[test]
    fn both_ways_of_copying_give_the_same_file_and_sum() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let shm = dir.path().join("db-shm");
        write_shm(&shm, 1);
        for len in [
            0usize,
            1,
            BLOCK - 1,
            BLOCK,
            3 * BLOCK + 12_345,
            40 * BLOCK + 3,
        ] {
            let bytes: Vec<u8> = (0..len)
                .map(|i| (i % 253) as u8 ^ (i >> 20) as u8)
                .collect();
            std::fs::write(&src, &bytes).unwrap();
            for limit in [None, Some(BLOCK as u64 + 17), Some(5)] {
                let want = &bytes[..limit.map_or(len, |l| (l as usize).min(len))];
                for sync in [false, true] {
                    // The second core is taken only by a copy that never
                    // yields: the last way runs on two threads.
                    let ways = [
                        (false, Pacer::new(None)),
                        (true, Pacer::new(File::open(&shm).ok().map(Arc::new))),
                        (true, Pacer::new(None)),
                    ];
                    for (k, (second_core, mut pacer)) in ways.into_iter().enumerate() {
                        let how = CopyHow {
                            sync,
                            limit,
                            second_core,
                            ..CopyHow::default()
                        };
                        let out = dir.path().join(format!("out{k}"));
                        let f = File::open(&src).unwrap();
                        let e = copy_with_crc(&f, &src, &out, how, &mut pacer).unwrap();
                        let got = std::fs::read(&out).unwrap();
                        assert!(got == want, "{len} bytes, limit {limit:?}, way {k}");
                        assert_eq!(
                            (e.size, e.crc32),
                            (want.len() as u64, crc32fast::hash(want))
                        );
                    }
                }
            }
        }
        // A write that fails is an error, on one thread or two.
        let f = File::open(&src).unwrap();
        for (second_core, mut pacer) in [
            (false, Pacer::new(None)),
            (true, Pacer::new(File::open(&shm).ok().map(Arc::new))),
            (true, Pacer::new(None)),
        ] {
            let full = Path::new("/dev/full");
            if full.exists() {
                let how = CopyHow {
                    second_core,
                    ..CopyHow::default()
                };
                let e = copy_with_crc(&f, &src, full, how, &mut pacer);
                assert!(matches!(e, Err(Error::Output { .. })), "{e:?}");
            }
        }
    }

    #[test]
    fn the_pacer_yields_only_while_commits_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let shm = dir.path().join("db-shm");
        write_shm(&shm, 1);
        let mut p = Pacer::new(File::open(&shm).ok().map(Arc::new));
        // Nothing moved yet: full speed.
        assert!(!p.writers_active());
        assert!(!p.writers_active());
        write_shm(&shm, 2);
        assert!(p.writers_active());
        // 5 ms of work, then nine times as long waiting.
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(5) {}
        p.pace(start);
        assert!(start.elapsed() >= Duration::from_millis(50));
        // Quiet for longer than QUIET: full speed again.
        std::thread::sleep(Pacer::QUIET + Duration::from_millis(20));
        assert!(!p.writers_active());
        write_shm(&shm, 3);
        assert!(p.writers_active());
        // No -shm, or told not to yield: never waits.
        let mut never = Pacer::new(None);
        assert!(!never.writers_active());
        let mut missing = Pacer::new(File::open(dir.path().join("none-shm")).ok().map(Arc::new));
        assert!(!missing.writers_active());
    }
}
