//! Restoring a backup: verified, then its database put in place at the
//! target atomically, the old target's stale side files moved aside.
//!
//! Takes a backup and a target path; gives [`Restored`].

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::now;
use super::verify::verify;
use crate::error::{Error, Result};
use crate::io::{TempOut, sibling};
use crate::snapshot::Database;

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
    let mut tmp = TempOut::beside(target)?;
    snap.write_image(tmp.file_mut()).map_err(|e| match e {
        Error::Output { source, .. } => Error::output(target, source),
        e => e,
    })?;
    // The old side files go aside just before the new database takes the
    // name (a stale -wal must never be applied to it), under the same
    // hold on a stop: the target is the old database with its side files
    // or the new one without them.
    let moved = tmp.publish_with(
        target,
        !no_sync,
        || move_aside(target, &SIDE, &existed),
        |moved| {
            for (from, to) in moved {
                let _ = std::fs::rename(to, from);
            }
        },
    )?;
    let moved_aside = moved.into_iter().map(|(_, to)| to).collect();
    Ok(Restored {
        target: target.to_path_buf(),
        moved_aside,
    })
}

/// Moves the target's side files that were there before aside (and removes
/// those the in-use check's own connection made); returns (from, to).
fn move_aside(target: &Path, side: &[&str], existed: &[bool]) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut moved = Vec::new();
    for (suffix, &was_there) in side.iter().zip(existed) {
        let p = sibling(target, suffix);
        if !p.exists() {
            continue;
        }
        if was_there {
            let aside = sibling(&p, &format!(".replaced-{}", now()));
            if let Err(e) = std::fs::rename(&p, &aside) {
                for (from, to) in moved {
                    let _ = std::fs::rename(to, from);
                }
                return Err(Error::output(&p, e));
            }
            moved.push((p, aside));
        } else {
            let _ = std::fs::remove_file(&p);
        }
    }
    Ok(moved)
}
