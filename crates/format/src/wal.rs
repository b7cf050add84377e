//! WAL file headers, frame headers and the checksum.
//!
//! ```text
//! WAL header (32 bytes, big-endian)      frame header (24 bytes, big-endian)
//!  0 magic 0x377f0682 or 0x377f0683       0 page number
//!  4 format version 3007000               4 db size in pages after commit (0 = not a commit)
//!  8 page size                            8 salt-1 (copy of the header's)
//! 12 checkpoint sequence                 12 salt-2
//! 16 salt-1                              16 checksum-1 over frame header[0..8] + page,
//! 20 salt-2                              20 checksum-2   chained from the previous frame
//! 24 checksum-1 over header[0..24]
//! 28 checksum-2
//! ```
//!
//! The checksum treats its input as pairs of 32-bit words, big-endian when
//! the magic's low bit is set and little-endian otherwise:
//! `s0 += x0 + s1; s1 += x1 + s0`, wrapping.

use binrw::BinRead;
use std::io::Cursor;

use super::Malformed;

/// WAL magic with little-endian checksums.
pub const MAGIC_LE: u32 = 0x377f_0682;
/// WAL magic with big-endian checksums.
pub const MAGIC_BE: u32 = 0x377f_0683;
/// The only WAL format version.
pub const VERSION: u32 = 3_007_000;
/// WAL header size.
pub const WAL_HEADER_SIZE: usize = 32;
/// Frame header size.
pub const FRAME_HEADER_SIZE: usize = 24;

/// The WAL file header.
#[derive(BinRead, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[br(big)]
pub struct WalHeader {
    /// Magic number.
    pub magic: u32,
    /// Format version.
    pub version: u32,
    /// Page size.
    pub page_size: u32,
    /// Checkpoint sequence number.
    pub checkpoint_seq: u32,
    /// Salt-1.
    pub salt1: u32,
    /// Salt-2.
    pub salt2: u32,
    /// First checksum word.
    pub checksum1: u32,
    /// Second checksum word.
    pub checksum2: u32,
}

impl WalHeader {
    /// Reads the raw header fields from the first 32 bytes of `buf`.
    pub fn parse_raw(buf: &[u8]) -> Result<Self, Malformed> {
        let bytes = buf
            .get(..WAL_HEADER_SIZE)
            .ok_or(Malformed("WAL shorter than its 32-byte header"))?;
        WalHeader::read(&mut Cursor::new(bytes)).map_err(|_| Malformed("unreadable WAL header"))
    }

    /// Reads and validates the header as SQLite does: magic, version, page
    /// size, and the header checksum.
    pub fn parse(buf: &[u8]) -> Result<Self, Malformed> {
        let h = Self::parse_raw(buf)?;
        if h.magic != MAGIC_LE && h.magic != MAGIC_BE {
            return Err(Malformed("bad WAL magic"));
        }
        if h.version != VERSION {
            return Err(Malformed("unsupported WAL format version"));
        }
        if super::header::decode_page_size(h.page_size).is_none() || h.page_size == 1 {
            return Err(Malformed("invalid WAL page size"));
        }
        let (c1, c2) = checksum(&buf[..24], h.big_endian(), (0, 0));
        if (c1, c2) != (h.checksum1, h.checksum2) {
            return Err(Malformed("WAL header checksum mismatch"));
        }
        Ok(h)
    }

    /// Whether checksums use big-endian words.
    #[inline]
    pub fn big_endian(&self) -> bool {
        self.magic & 1 == 1
    }

    /// Bytes per frame: header plus one page.
    #[inline]
    pub fn frame_size(&self) -> u64 {
        FRAME_HEADER_SIZE as u64 + u64::from(self.page_size)
    }
}

/// A frame header.
#[derive(BinRead, Debug, Clone, Copy, PartialEq, Eq)]
#[br(big)]
pub struct FrameHeader {
    /// Page number this frame holds.
    pub pgno: u32,
    /// Database size in pages for a commit frame, else 0.
    pub commit_size: u32,
    /// Salt-1, must equal the WAL header's.
    pub salt1: u32,
    /// Salt-2, must equal the WAL header's.
    pub salt2: u32,
    /// First checksum word.
    pub checksum1: u32,
    /// Second checksum word.
    pub checksum2: u32,
}

impl FrameHeader {
    /// Reads a frame header from the first 24 bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self, Malformed> {
        let bytes = buf
            .get(..FRAME_HEADER_SIZE)
            .ok_or(Malformed("frame header truncated"))?;
        FrameHeader::read(&mut Cursor::new(bytes)).map_err(|_| Malformed("unreadable frame header"))
    }

    /// Whether this frame ends a transaction.
    #[inline]
    pub fn is_commit(&self) -> bool {
        self.commit_size != 0
    }
}

/// SQLite's WAL checksum over `data` (a multiple of 8 bytes; a trailing
/// partial word pair is ignored), continuing from `init`.
#[inline]
pub fn checksum(data: &[u8], big_endian: bool, init: (u32, u32)) -> (u32, u32) {
    let (mut s0, mut s1) = init;
    if big_endian {
        for c in data.chunks_exact(8) {
            let x0 = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            let x1 = u32::from_be_bytes([c[4], c[5], c[6], c[7]]);
            s0 = s0.wrapping_add(x0).wrapping_add(s1);
            s1 = s1.wrapping_add(x1).wrapping_add(s0);
        }
    } else {
        for c in data.chunks_exact(8) {
            let x0 = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            let x1 = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
            s0 = s0.wrapping_add(x0).wrapping_add(s1);
            s1 = s1.wrapping_add(x1).wrapping_add(s0);
        }
    }
    (s0, s1)
}

/// Checksum of one frame: its header's first 8 bytes, then the page.
#[inline]
pub fn frame_checksum(
    frame_header: &[u8],
    page: &[u8],
    big_endian: bool,
    prev: (u32, u32),
) -> (u32, u32) {
    let head = frame_header.get(..8).unwrap_or(&[]);
    let s = checksum(head, big_endian, prev);
    checksum(page, big_endian, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_orders_differ_and_chain() {
        let data: Vec<u8> = (0u8..64).collect();
        let le = checksum(&data, false, (0, 0));
        let be = checksum(&data, true, (0, 0));
        assert_ne!(le, be);
        let half = checksum(&data[..32], true, (0, 0));
        assert_eq!(checksum(&data[32..], true, half), be);
    }

    #[test]
    fn header_round_trip() {
        let mut h = vec![0u8; 32];
        h[0..4].copy_from_slice(&MAGIC_BE.to_be_bytes());
        h[4..8].copy_from_slice(&VERSION.to_be_bytes());
        h[8..12].copy_from_slice(&4096u32.to_be_bytes());
        h[16..20].copy_from_slice(&7u32.to_be_bytes());
        let (a, b) = checksum(&h[..24], true, (0, 0));
        h[24..28].copy_from_slice(&a.to_be_bytes());
        h[28..32].copy_from_slice(&b.to_be_bytes());
        let p = WalHeader::parse(&h).unwrap();
        assert_eq!(p.salt1, 7);
        h[9] ^= 1;
        assert!(WalHeader::parse(&h).is_err());
    }
}
