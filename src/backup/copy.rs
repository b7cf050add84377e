//! Copying one file with its CRC-32: paced on one thread, or at full
//! speed on two; a refresh pass that writes only the blocks that changed.
//!
//! Takes an open source file and a destination path; gives the copy and
//! its [`FileEntry`] (name, size, CRC-32).

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use super::FileEntry;
use super::pace::Pacer;
use crate::error::{Error, Result};
use crate::io::open_regular;

/// How [`copy_with_crc`] writes.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CopyHow {
    /// Sync every 16 MiB written, so the page cache never holds much of the
    /// backup dirty and the writers' own syncs do not queue behind one
    /// large flush.
    pub(super) sync: bool,
    /// Copy no more than this many bytes.
    pub(super) limit: Option<u64>,
    /// `to` holds an earlier copy of the same file: only the blocks that
    /// differ are written, and its length is set to the source's.
    pub(super) refresh: bool,
    /// No writer was seen committing: a copy that does not yield may take
    /// a second core.
    pub(super) second_core: bool,
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
pub(super) fn copy_with_crc(
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
pub(super) const BLOCK: usize = 1 << 20;
/// How much a synced copy writes between two syncs.
pub(super) const SYNC_EVERY: u64 = 16 << 20;

/// Reads the block at `offset` of `src` (up to `limit`) into `buf`, again
/// when interrupted; 0 at its end.
pub(super) fn read_block(
    src: &File,
    from: &Path,
    buf: &mut [u8],
    offset: u64,
    limit: u64,
) -> Result<usize> {
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
pub(super) fn copy_paced(
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
pub(super) fn copy_two_threads(
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

pub(super) fn file_entry(path: &Path) -> Result<FileEntry> {
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
