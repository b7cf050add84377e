//! Point-in-time restore: a fresh single-file database equal to a snapshot.
//!
//! Takes a [`Snapshot`] and an output path; gives the file, written
//! atomically ([`crate::io::write_atomically`]), and what was written.

use std::path::Path;

use crate::error::Result;
use crate::io::write_atomically;
use crate::snapshot::Snapshot;

/// What a replay wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ReplayStats {
    /// The commit written (0 for the database file alone).
    pub commit: u32,
    /// Pages written.
    pub pages: u32,
    /// Of those, pages taken from the WAL.
    pub wal_pages: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// Writes `snap` to `out` as a fresh single-file database (see
/// [`Snapshot::write_image`]), durably: the file and its directory are
/// synced before this returns.
pub fn replay(snap: &Snapshot, out: &Path) -> Result<ReplayStats> {
    replay_with(snap, out, true)
}

/// Like [`replay`]; `sync` false skips the fsync calls (faster, but a
/// crash soon after may lose the output).
pub fn replay_with(snap: &Snapshot, out: &Path, sync: bool) -> Result<ReplayStats> {
    let bytes = write_atomically(out, sync, |f| snap.write_image(f))?;
    Ok(ReplayStats {
        commit: snap.commit(),
        pages: snap.page_count(),
        wal_pages: snap.wal_pages(),
        bytes,
    })
}
