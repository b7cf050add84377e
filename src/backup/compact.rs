//! The compact backup: one database file, written by SQLite's
//! `VACUUM INTO`, straight from the source, from a private copy of its
//! file set while writers commit (yielding and syncing as it goes), or from
//! a private image of a database no process has open.
//!
//! Takes the source (and SQLite's read connection to it, if any); gives
//! the compacted database at `out`.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::Connection;

use super::copy::SYNC_EVERY;
use super::fileset::{SetHow, copy_file_set};
use super::pace::Pacer;
use super::source::Source;
use crate::error::{Error, Result};
use crate::snapshot::Database;
use sqlite_salvage_format::header::DbHeader;

/// How the compact copy is taken.
pub(super) enum CompactFrom<'c> {
    /// SQLite's connection to the source, while its writers commit: the
    /// copy yields to them.
    Yielding(&'c Connection),
    /// SQLite's connection to the source, at full speed.
    Direct(&'c Connection),
    /// No process has the source open: it is read without SQLite.
    Closed,
}

/// What a compact copy is made of and where it goes.
pub(super) struct CompactJob<'j> {
    pub source: &'j Source,
    /// The source's path, and its checked header.
    pub src: &'j Path,
    pub header: &'j DbHeader,
    /// A private directory beside the backup.
    pub work: &'j Path,
    /// The source's file name.
    pub name: &'j str,
    /// The compacted database.
    pub out: &'j Path,
    /// Sync as it is written.
    pub sync: bool,
}

/// Writes the compact copy of `job.src` to `job.out`.
pub(super) fn write_compact(from: CompactFrom<'_>, job: &CompactJob<'_>) -> Result<()> {
    let out = job.out;
    match from {
        CompactFrom::Yielding(c) => yielding(c, job),
        CompactFrom::Direct(c) => {
            c.execute("VACUUM INTO ?1", [out.to_string_lossy()])?;
            Ok(())
        }
        CompactFrom::Closed => {
            // The latest commit as a private image, compacted from there.
            let image = job.work.join("image.db");
            let snap = Database::open(job.src)?.latest()?;
            let mut f = File::create(&image).map_err(|e| Error::output(&image, e))?;
            snap.write_image(&mut f)?;
            drop(f);
            Connection::open(&image)?.execute("VACUUM INTO ?1", [out.to_string_lossy()])?;
            let _ = std::fs::remove_file(&image);
            Ok(())
        }
    }
}

/// The snapshot is copied as a file set, yielding to the writers, and
/// compacted from that private copy, also yielding: the live database's
/// snapshot is held only while its files are copied.
fn yielding(c: &Connection, job: &CompactJob<'_>) -> Result<()> {
    let CompactJob {
        source,
        src,
        header,
        work,
        name,
        out,
        sync,
    } = *job;
    let image = work.join("image");
    std::fs::create_dir(&image).map_err(|e| Error::output(&image, e))?;
    let how = SetHow {
        sync: false,
        two_pass: true,
        second_core: false,
    };
    copy_file_set(Some(c), source, src, header, &image.join(name), how)?;
    let mut private = Connection::open(image.join(name))?;
    // VACUUM INTO syncs its output as the connection's database would be
    // synced, all at once at its end: a flush that the writers' own syncs
    // would queue behind. Instead, what it has written so far is synced
    // here every 16 MiB, as a piece of the paced work.
    private.execute_batch("PRAGMA synchronous=OFF")?;
    let failed = Arc::new(Mutex::new(None::<std::io::Error>));
    let step = paced_step(Pacer::new(source.shm.clone()), out, sync, failed.clone());
    // SQLite calls back every few thousand steps of the copy: the pacer's
    // pieces of work.
    private.progress_handler(20_000, Some(step))?;
    private.execute("VACUUM INTO ?1", [out.to_string_lossy()])?;
    drop(private);
    let _ = std::fs::remove_dir_all(&image);
    if let Some(e) = failed.lock().ok().and_then(|mut slot| slot.take()) {
        return Err(Error::output(out, e));
    }
    Ok(())
}

/// The progress handler of a yielding `VACUUM INTO`: syncs what it wrote
/// every [`SYNC_EVERY`] bytes (a failure is kept in `failed`, reported once
/// it ends), then paces.
fn paced_step(
    mut pacer: Pacer,
    out: &Path,
    sync: bool,
    failed: Arc<Mutex<Option<std::io::Error>>>,
) -> impl FnMut() -> bool + Send + 'static {
    let out = out.to_path_buf();
    let mut start = Instant::now();
    let (mut written, mut synced_at) = (None::<File>, 0u64);
    move || {
        if sync {
            if written.is_none() {
                written = File::open(&out).ok();
            }
            if let Some(f) = &written {
                let len = f.metadata().map_or(0, |m| m.len());
                if len >= synced_at.saturating_add(SYNC_EVERY) {
                    if let Err(e) = f.sync_data() {
                        if let Ok(mut slot) = failed.lock() {
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
    }
}
