//! Rollback journals (`-journal`): the original content of the pages a
//! transaction changed, written before the database file is touched.
//!
//! ```text
//! header (one sector, big-endian)        page record
//!  0  8 magic d9 d5 05 f9 20 a1 63 d7     0  4 page number
//!  8  4 records in this segment           4  P original page content
//!       (0xffffffff: count from size)   4+P  4 checksum: nonce + every 200th
//! 12  4 checksum nonce                          byte of the page, from the end
//! 16  4 database size before the transaction
//! 20  4 sector size
//! 24  4 page size
//! ```
//!
//! A journal may hold several segments, each starting with a header at a
//! sector boundary.

use super::{Malformed, be32};

/// The journal magic.
pub const MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];

/// A journal segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct JournalHeader {
    /// Records in the segment (None: count them from the file size).
    pub records: Option<u32>,
    /// Checksum nonce.
    pub nonce: u32,
    /// Database size in pages before the transaction.
    pub initial_size: u32,
    /// Sector size (header size).
    pub sector_size: u32,
    /// Page size.
    pub page_size: u32,
}

impl JournalHeader {
    /// Parses a segment header at the start of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self, Malformed> {
        if buf.get(..8) != Some(&MAGIC[..]) {
            return Err(Malformed("no journal magic"));
        }
        let n = be32(buf, 8).ok_or(Malformed("journal header truncated"))?;
        let nonce = be32(buf, 12).ok_or(Malformed("journal header truncated"))?;
        let initial_size = be32(buf, 16).ok_or(Malformed("journal header truncated"))?;
        let sector_size = be32(buf, 20).ok_or(Malformed("journal header truncated"))?;
        let page_size = be32(buf, 24).ok_or(Malformed("journal header truncated"))?;
        if super::header::decode_page_size(page_size).is_none() || page_size == 1 {
            return Err(Malformed("invalid journal page size"));
        }
        if !(32..=65536).contains(&sector_size) || !sector_size.is_power_of_two() {
            return Err(Malformed("invalid journal sector size"));
        }
        Ok(JournalHeader {
            records: (n != u32::MAX).then_some(n),
            nonce,
            initial_size,
            sector_size,
            page_size,
        })
    }
}

/// The checksum SQLite stores after each journal page record.
pub fn page_checksum(page: &[u8], nonce: u32) -> u32 {
    let mut sum = nonce;
    let mut i = page.len().saturating_sub(200);
    while i > 0 {
        sum = sum.wrapping_add(u32::from(page.get(i).copied().unwrap_or(0)));
        i = i.saturating_sub(200);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_checksum() {
        let mut h = vec![0u8; 512];
        h[..8].copy_from_slice(&MAGIC);
        h[8..12].copy_from_slice(&3u32.to_be_bytes());
        h[20..24].copy_from_slice(&512u32.to_be_bytes());
        h[24..28].copy_from_slice(&4096u32.to_be_bytes());
        let p = JournalHeader::parse(&h).unwrap();
        assert_eq!((p.records, p.page_size), (Some(3), 4096));
        h[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(JournalHeader::parse(&h).unwrap().records, None);
        h[26] = 0x11;
        assert!(JournalHeader::parse(&h).is_err());
        let page: Vec<u8> = (0..1024u32).map(|i| i as u8).collect();
        // bytes 824, 624, 424, 224, 24
        let want = 7u32
            + [824u32, 624, 424, 224, 24]
                .iter()
                .map(|&i| i % 256)
                .sum::<u32>();
        assert_eq!(page_checksum(&page, 7), want);
    }
}
