//! The file set: the database file and its WAL up to the snapshot's last
//! commit, copied under the read transaction that pins the snapshot, the
//! WAL trimmed to the frames validated.
//!
//! Takes the source and where its copy goes; gives the copied files, the
//! page count and the WAL's part of the snapshot ([`FileSet`]).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use rusqlite::Connection;

use super::copy::{CopyHow, copy_with_crc, file_entry};
use super::pace::Pacer;
use super::source::{Source, begin_read};
use super::{FileEntry, WalCapture};
use crate::error::{Error, Result};
use crate::io::{open_regular, sibling};
use crate::wal::WalIndex;
use sqlite_salvage_format::header::DbHeader;

/// How [`copy_file_set`] copies.
#[derive(Debug, Clone, Copy)]
pub(super) struct SetHow {
    /// Sync as it writes ([`CopyHow::sync`]).
    pub(super) sync: bool,
    /// Copy the database file first with no snapshot held, yielding.
    pub(super) two_pass: bool,
    /// [`CopyHow::second_core`].
    pub(super) second_core: bool,
}

/// What [`copy_file_set`] copied.
pub(super) struct FileSet {
    /// The database file, then the WAL if it holds a commit.
    pub(super) files: Vec<FileEntry>,
    /// Pages of the database as of the snapshot.
    pub(super) page_count: u32,
    /// The WAL's part of the snapshot.
    pub(super) wal: Option<WalCapture>,
}

/// Copies the database file of `src` to `db_out` and its WAL up to the
/// snapshot's last commit beside it, under a read transaction on `conn`
/// that pins the snapshot (none for a database no one has open), and ends
/// the transaction. With `two_pass` (writers commit and the backup yields
/// to them), the database file is copied first with no snapshot held,
/// yielding, and under the read transaction only refreshed. With
/// `second_core` (no writer commits), copies at full speed take two threads.
pub(super) fn copy_file_set(
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

pub(super) fn read_head(p: &Path) -> Result<[u8; 100]> {
    let mut b = [0u8; 100];
    open_regular(p)
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Error::io(p, e))?;
    Ok(b)
}
