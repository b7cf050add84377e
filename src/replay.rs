//! Point-in-time restore: a fresh single-file database equal to a snapshot.
//!
//! Takes a [`Snapshot`] and an output path; gives the file, written
//! atomically ([`crate::io::write_atomically`]), and what was written.

use std::path::Path;

use crate::error::Result;
use crate::io::{check_output, write_atomically};
use crate::snapshot::{Database, Exactness, Snapshot};

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

/// What [`replay_database`] wrote, as `replay --json` prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Replayed {
    /// The output file.
    pub output: String,
    /// Whether it is exactly the state at its commit.
    pub exactness: Exactness,
    /// What was written.
    pub stats: ReplayStats,
}

/// Writes `db` as of commit `at` (`None`: the last) to `out`, refusing an
/// `out` that is one of its inputs, or that exists unless `force`.
pub fn replay_database(
    db: &Database,
    at: Option<u32>,
    out: &Path,
    force: bool,
    sync: bool,
) -> Result<Replayed> {
    let mut inputs: Vec<&Path> = vec![db.path()];
    if let Some(w) = db.wal() {
        inputs.push(w.path.as_path());
    }
    check_output(out, &inputs, force)?;
    let snap = db.snapshot(at)?;
    let stats = replay_with(&snap, out, sync)?;
    Ok(Replayed {
        output: out.display().to_string(),
        exactness: snap.exactness(),
        stats,
    })
}
