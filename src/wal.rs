//! Scanning a WAL file into frames and commits, as SQLite validates them.
//!
//! SQLite accepts frames from the start of the WAL while each frame's salts
//! equal the header's and its checksum continues the chain; the first frame
//! that fails ends the log, and only frames up to the last commit frame
//! before that point are part of the database. [`WalIndex::scan`] records
//! that verdict for every frame, and also keeps what lies after the break
//! (whether each later frame's checksum agrees with its predecessor's stored
//! checksum) as separate evidence for recovery tools.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::open_input;
pub use sqlite_salvage_format::shm::IndexHeader;
use sqlite_salvage_format::shm::{SHM_HEADER_SIZE, ShmHeader};
use sqlite_salvage_format::wal::{
    FRAME_HEADER_SIZE, FrameHeader, MAGIC_BE, MAGIC_LE, WAL_HEADER_SIZE, WalHeader, frame_checksum,
};

/// How SQLite regards a frame. Named in output by [`FrameStatus::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus {
    /// Valid and part of a commit.
    Committed,
    /// Valid, but after the last commit frame: a transaction that never
    /// committed. Ignored.
    Uncommitted,
    /// Its salts differ from the header's (left from before a WAL restart).
    BadSalt,
    /// Its checksum does not continue the chain: damaged or torn.
    BadChecksum,
    /// Page number 0.
    BadPageNumber,
    /// After an earlier invalid frame; SQLite never reads it.
    AfterBreak,
}

impl FrameStatus {
    /// Its name in human and JSON output.
    pub fn name(self) -> &'static str {
        match self {
            FrameStatus::Committed => "committed",
            FrameStatus::Uncommitted => "uncommitted",
            FrameStatus::BadSalt => "bad-salt",
            FrameStatus::BadChecksum => "bad-checksum",
            FrameStatus::BadPageNumber => "bad-page-number",
            FrameStatus::AfterBreak => "after-break",
        }
    }
}

impl serde::Serialize for FrameStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// One frame of the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Frame {
    /// 1-based position in the WAL.
    pub index: u32,
    /// Page number held.
    pub pgno: u32,
    /// Database size after commit, for commit frames; else 0.
    pub commit_size: u32,
    /// Whether the salts equal the WAL header's.
    pub salt_ok: bool,
    /// Whether the stored checksum equals the one computed from the previous
    /// frame's stored checksum (or the header's, for frame 1). For frames
    /// after a break this still tells whether the frame itself is intact.
    pub checksum_ok: bool,
    /// SQLite's verdict.
    pub status: FrameStatus,
    /// The commit this frame belongs to (1-based), when committed.
    pub commit: Option<u32>,
}

impl Frame {
    /// File offset of the frame's page data.
    pub fn page_offset(&self, page_size: u32) -> u64 {
        frame_offset(self.index, page_size) + FRAME_HEADER_SIZE as u64
    }
}

/// File offset of frame `index` (1-based).
pub fn frame_offset(index: u32, page_size: u32) -> u64 {
    WAL_HEADER_SIZE as u64
        + u64::from(index.saturating_sub(1)) * (FRAME_HEADER_SIZE as u64 + u64::from(page_size))
}

/// One committed transaction in the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Commit {
    /// 1-based commit number in WAL order.
    pub number: u32,
    /// Index of its first frame.
    pub first_frame: u32,
    /// Index of its commit frame.
    pub last_frame: u32,
    /// Database size in pages after it.
    pub db_size: u32,
}

/// The validated contents of a WAL file.
#[derive(Debug, Clone)]
pub struct WalIndex {
    /// The WAL file.
    pub path: PathBuf,
    /// Its header.
    pub header: WalHeader,
    /// File size in bytes.
    pub file_size: u64,
    /// Every whole frame in the file.
    pub frames: Vec<Frame>,
    /// Commits, in order.
    pub commits: Vec<Commit>,
    /// Bytes at the end too short for a whole frame.
    pub trailing_bytes: u64,
}

/// Most frames scanned: a WAL holding more would be over 2^32 frames long.
const MAX_FRAMES: u64 = u32::MAX as u64 - 1;

impl WalIndex {
    /// Reads and validates the WAL at `path`. Errors when the file cannot
    /// be read or its header is not a valid WAL header; a WAL shorter than a
    /// header is an empty WAL (as SQLite treats it) and yields `Ok(None)`.
    pub fn scan(path: &Path) -> Result<Option<WalIndex>> {
        let (file, file_size) = open_input(path)?;
        Self::scan_reader(BufReader::with_capacity(1 << 20, file), file_size, path)
    }

    /// Scans a WAL of `file_size` bytes from `reader` (positioned at its
    /// start); `path` names it in errors.
    pub fn scan_reader(
        mut reader: impl Read,
        file_size: u64,
        path: &Path,
    ) -> Result<Option<WalIndex>> {
        if file_size < WAL_HEADER_SIZE as u64 {
            return Ok(None);
        }
        let mut head = [0u8; WAL_HEADER_SIZE];
        reader
            .read_exact(&mut head)
            .map_err(|e| Error::io(path, e))?;
        let header = WalHeader::parse(&head).map_err(|m| Error::BadWal {
            path: path.to_path_buf(),
            reason: m.0.to_string(),
        })?;
        let frame_size = header.frame_size();
        let body = file_size - WAL_HEADER_SIZE as u64;
        let nframes = (body / frame_size).min(MAX_FRAMES);
        let trailing_bytes = body - nframes * frame_size;
        let big = header.big_endian();
        let mut frames = Vec::with_capacity(nframes.min(1 << 20) as usize);
        let mut commits = Vec::new();
        let mut buf = vec![0u8; frame_size as usize];
        let mut chain = (header.checksum1, header.checksum2);
        let mut prev_stored = chain;
        let mut broken = false;
        let mut pending_start: usize = 0; // index into frames of first uncommitted valid frame
        for i in 0..nframes {
            reader
                .read_exact(&mut buf)
                .map_err(|e| Error::io(path, e))?;
            let fh = FrameHeader::parse(&buf).map_err(|m| Error::corrupt(0, m.0))?;
            let page = &buf[FRAME_HEADER_SIZE..];
            let salt_ok = fh.salt1 == header.salt1 && fh.salt2 == header.salt2;
            let stored = (fh.checksum1, fh.checksum2);
            let from_prev = frame_checksum(&buf[..FRAME_HEADER_SIZE], page, big, prev_stored);
            let checksum_ok = from_prev == stored;
            let status = if broken {
                FrameStatus::AfterBreak
            } else if !salt_ok {
                FrameStatus::BadSalt
            } else if frame_checksum(&buf[..FRAME_HEADER_SIZE], page, big, chain) != stored {
                FrameStatus::BadChecksum
            } else if fh.pgno == 0 {
                FrameStatus::BadPageNumber
            } else {
                FrameStatus::Uncommitted
            };
            if status == FrameStatus::Uncommitted {
                chain = stored;
            } else {
                broken = true;
            }
            prev_stored = stored;
            frames.push(Frame {
                index: (i + 1) as u32,
                pgno: fh.pgno,
                commit_size: fh.commit_size,
                salt_ok,
                checksum_ok,
                status,
                commit: None,
            });
            if status == FrameStatus::Uncommitted && fh.is_commit() {
                let number = commits.len() as u32 + 1;
                for f in &mut frames[pending_start..] {
                    f.status = FrameStatus::Committed;
                    f.commit = Some(number);
                }
                commits.push(Commit {
                    number,
                    first_frame: pending_start as u32 + 1,
                    last_frame: (i + 1) as u32,
                    db_size: fh.commit_size,
                });
                pending_start = frames.len();
            }
        }
        Ok(Some(WalIndex {
            path: path.to_path_buf(),
            header,
            file_size,
            frames,
            commits,
            trailing_bytes,
        }))
    }

    /// Index of the last frame SQLite would use (0 when none).
    pub fn last_valid_frame(&self) -> u32 {
        self.commits.last().map_or(0, |c| c.last_frame)
    }

    /// Counts of frames by status.
    pub fn count(&self, status: FrameStatus) -> usize {
        self.frames.iter().filter(|f| f.status == status).count()
    }
}

/// Whether `path` is a regular file that starts with a WAL magic number
/// (a FIFO or device is not opened: it is not one).
pub fn is_wal_file(path: &Path) -> bool {
    let mut b = [0u8; 4];
    open_input(path).is_ok_and(|(mut f, _)| f.read_exact(&mut b).is_ok())
        && matches!(u32::from_be_bytes(b), MAGIC_LE | MAGIC_BE)
}

/// A WAL's listing, as `wal --json` prints it: the file, its header, every
/// frame and commit, and the bytes after the last whole frame (all `None`
/// for a WAL too short for a header).
#[derive(Debug, Clone, serde::Serialize)]
pub struct WalListing<'w> {
    /// The WAL file.
    pub path: String,
    /// Its header.
    pub header: Option<WalHeader>,
    /// Every whole frame.
    pub frames: Option<&'w [Frame]>,
    /// Commits, in order.
    pub commits: Option<&'w [Commit]>,
    /// Bytes too short for a whole frame.
    pub trailing_bytes: Option<u64>,
}

impl<'w> WalListing<'w> {
    /// The listing of the WAL at `path`, scanned as `idx`.
    pub fn new(path: &Path, idx: Option<&'w WalIndex>) -> WalListing<'w> {
        WalListing {
            path: path.display().to_string(),
            header: idx.map(|w| w.header),
            frames: idx.map(|w| w.frames.as_slice()),
            commits: idx.map(|w| w.commits.as_slice()),
            trailing_bytes: idx.map(|w| w.trailing_bytes),
        }
    }
}

/// What the `-shm` file says about checkpoints, when it is present and
/// matches the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ShmInfo {
    /// Frames of the WAL last known to be in the WAL index.
    pub max_frame: u32,
    /// Frames already copied back into the database file.
    pub backfilled: u32,
    /// Whether the -shm's salts equal the WAL header's.
    pub salts_match: bool,
}

impl ShmInfo {
    /// Reads the WAL-index header from a `-shm` file (native byte order).
    /// Returns `None` when the file is missing, short, or its two header
    /// copies disagree (a writer was mid-update).
    pub fn read(path: &Path, wal: Option<&WalHeader>) -> Option<ShmInfo> {
        let h = read_shm(&mut open_input(path).ok()?.0)?;
        Some(ShmInfo {
            max_frame: h.index.max_frame,
            backfilled: h.backfilled,
            salts_match: wal.is_some_and(|w| h.index.salts_match(w)),
        })
    }
}

/// Reads the WAL-index header from the `-shm` at `path`; `None` when the
/// file is missing, short, uninitialized or caught mid-update.
///
/// This opens and closes the file. In a process that has the database
/// open with SQLite, closing any descriptor of the `-shm` drops the POSIX
/// locks SQLite holds on it (a read transaction's among them): there, read
/// through a descriptor that stays open as long as the connection, with
/// [`read_index_header_from`].
pub fn read_index_header(path: &Path) -> Option<IndexHeader> {
    read_shm(&mut open_input(path).ok()?.0).map(|h| h.index)
}

/// Reads the WAL-index header through `file`, open on a `-shm` (a
/// positional read: the descriptor may be shared).
pub fn read_index_header_from(file: &File) -> Option<IndexHeader> {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; SHM_HEADER_SIZE];
    file.read_exact_at(&mut b, 0).ok()?;
    ShmHeader::parse(&b).map(|h| h.index)
}

/// The `-shm`'s header, read from its start.
fn read_shm(f: &mut impl Read) -> Option<ShmHeader> {
    let mut b = [0u8; SHM_HEADER_SIZE];
    f.read_exact(&mut b).ok()?;
    ShmHeader::parse(&b)
}
