//! The WAL-index header at the start of a `-shm` file.
//!
//! ```text
//! offset size (native byte order, as the writing machine stores it)
//!      0   48 first copy of the index header
//!              0  u32 version (3007000)     12  u8  initialized
//!             16  u32 max frame              32  u32 salt 1, 36 u32 salt 2
//!                                                (the WAL header's raw bytes)
//!     48   48 second copy (a writer updates it first, then the first)
//!     96    4 checkpoint info: frames backfilled into the database file
//! ```
//!
//! Two copies that differ mean a writer was caught mid-update: the header
//! is then not read at all.

use super::wal::WalHeader;

/// Bytes of the index header and checkpoint information read here.
pub const SHM_HEADER_SIZE: usize = 136;

/// The WAL-index header SQLite keeps at the start of the `-shm`: what a
/// reader that starts a transaction now takes as the newest commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexHeader {
    /// The header's bytes. SQLite changes them (its per-transaction change
    /// counter among them) whenever it publishes a commit or restarts the
    /// WAL, so two equal reads saw the same published state.
    pub raw: [u8; 48],
    /// The last frame of the newest published commit.
    pub max_frame: u32,
    /// The WAL header's salts this index belongs to.
    pub salt1: u32,
    /// Second salt.
    pub salt2: u32,
}

impl IndexHeader {
    /// Whether it describes the WAL that has this header.
    pub fn salts_match(&self, wal: &WalHeader) -> bool {
        self.salt1 == wal.salt1 && self.salt2 == wal.salt2
    }
}

/// The index header and the checkpoint's backfill count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmHeader {
    /// The WAL-index header.
    pub index: IndexHeader,
    /// Frames already copied back into the database file.
    pub backfilled: u32,
}

impl ShmHeader {
    /// Decodes the first [`SHM_HEADER_SIZE`] bytes of a `-shm`; `None` when
    /// they are short, uninitialized, of another version, or the two copies
    /// of the header disagree (a writer was mid-update).
    pub fn parse(b: &[u8]) -> Option<ShmHeader> {
        let b = b.get(..SHM_HEADER_SIZE)?;
        let (first, second) = b.split_at(48);
        if first != second.get(..48)? {
            return None;
        }
        let u32_at = |o: usize| {
            let w = b.get(o..o + 4)?;
            Some(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
        };
        // Salts are kept as the WAL header's raw (big-endian) bytes.
        let be_at = |o: usize| {
            let w = b.get(o..o + 4)?;
            Some(u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        };
        if u32_at(0)? != 3_007_000 || b.get(12).copied()? == 0 {
            return None;
        }
        let mut raw = [0u8; 48];
        raw.copy_from_slice(first);
        Some(ShmHeader {
            index: IndexHeader {
                raw,
                max_frame: u32_at(16)?,
                salt1: be_at(32)?,
                salt2: be_at(36)?,
            },
            backfilled: u32_at(96)?,
        })
    }
}
