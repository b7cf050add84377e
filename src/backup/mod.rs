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

mod compact;
mod copy;
mod fileset;
mod manifest;
mod pace;
mod publish;
mod restore;
mod source;
#[cfg(test)]
mod tests;
mod verify;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::io::{check_output, parent_dir, sibling, sync_path};
use compact::{CompactFrom, CompactJob, write_compact};
use copy::file_entry;
use fileset::{SetHow, copy_file_set};
pub use manifest::manifest_path;
pub use restore::{Restored, restore};
use source::{Source, check_source, locked, writers_committing};
pub use verify::{Verified, verify};

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
    // At most three attempts: from the third on, SQLite reads the source,
    // which cannot be opened under it unseen.
    let mut attempt = 0;
    loop {
        match take(src, dest, opts, attempt)? {
            Taken::Done(m) => return Ok(m),
            Taken::Reopened => attempt += 1,
        }
    }
}

/// How one attempt at a backup ended.
enum Taken {
    /// The backup is in place.
    Done(Manifest),
    /// A source no process had open was opened while it was copied: the
    /// copy may mix two states, and is taken again.
    Reopened,
}

/// One attempt. `attempt`: how many copies of a closed database were taken
/// before and found opened meanwhile; from the third on, SQLite reads the
/// source.
fn take(src: &Path, dest: &Path, opts: &BackupOptions, attempt: u32) -> Result<Taken> {
    let header = check_source(src)?;
    let source = Source::open(src)?;
    // A WAL database without a -shm and without a lock on it is open
    // nowhere (SQLite makes the -shm when it opens one, in every locking
    // mode but exclusive): it is read here without SQLite, which would
    // create a -shm beside it.
    let closed = attempt < 2 && header.is_wal_mode() && source.wal_closed(src)?;
    // Whether a closed source was opened while it was copied (its -shm or
    // a lock appeared, or a checkpoint changed its files).
    let stamp = closed.then(|| source.stamp(src));
    let opened = || {
        closed
            && (sibling(src, "-shm").exists()
                || locked(&source.db) == Some(true)
                || stamp != Some(source.stamp(src)))
    };
    check_output(dest, &[src], opts.force).or_else(|e| match e {
        // A file-set backup replaces a directory.
        Error::Output { .. } if opts.force && dest.is_dir() => Ok(()),
        e => Err(e),
    })?;
    let dir = parent_dir(dest);
    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "database.db".into());
    crate::cleanup::remove_stale(&dir, dest);
    let pending = crate::cleanup::Pending::for_output(&dir, dest);
    let tmp = tempfile::Builder::new()
        .prefix(pending.prefix())
        .suffix(".tmp")
        .tempdir_in(&dir)
        .map_err(|e| Error::output(&dir, e))?;
    let conn = if closed {
        None
    } else {
        Some(open_source(src)?)
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
    let sync = !opts.no_sync;
    match opts.mode {
        Mode::Compact => {
            let out = tmp.path().join("backup.db");
            let from = match &conn {
                Some(c) if yields && writers => CompactFrom::Yielding(c),
                Some(c) => CompactFrom::Direct(c),
                None => CompactFrom::Closed,
            };
            let job = CompactJob {
                source: &source,
                src,
                header: &header,
                work: tmp.path(),
                name: &name,
                out: &out,
                sync,
            };
            write_compact(from, &job)?;
            drop(conn);
            if opened() {
                return Ok(Taken::Reopened);
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
            publish::compact(&out, tmp.path(), dest, &manifest, sync)?;
        }
        Mode::Files => {
            let how = SetHow {
                sync,
                two_pass: yields && writers,
                second_core: !writers,
            };
            let set = copy_file_set(
                conn.as_ref(),
                &source,
                src,
                &header,
                &tmp.path().join(&name),
                how,
            )?;
            drop(conn);
            if opened() {
                return Ok(Taken::Reopened);
            }
            manifest.page_count = set.page_count;
            manifest.wal = set.wal;
            manifest.files = set.files;
            publish::file_set(tmp, pending.prefix(), dest, &manifest, sync)?;
        }
    }
    if sync {
        sync_path(&dir)?;
    }
    Ok(Taken::Done(manifest))
}

/// SQLite's read-only connection to a source that may be in use.
fn open_source(src: &Path) -> Result<Connection> {
    let c = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(Duration::from_secs(30))?;
    Ok(c)
}

/// Seconds since the Unix epoch.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
