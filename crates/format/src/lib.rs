//! The SQLite file format as pure decoding of byte slices.
//!
//! Nothing here does I/O, allocates by a number read from the input, or
//! panics: every offset and length is checked against the slice it indexes,
//! and every failure is a [`Malformed`] naming the check that failed.
//!
//! ```text
//! database file                      page (b-tree)
//! +-----------+  page 1              +---------------------------+
//! | header    |  100 bytes           | [100-byte db header, p.1] |
//! | b-tree    |                      | page header (8 or 12)     |
//! +-----------+  page 2              | cell pointer array  --->  |
//! |   ...     |                      | unallocated space         |
//! +-----------+  page N              | cell content area   <---  |
//!                                    | [reserved bytes]          |
//!                                    +---------------------------+
//! ```
//!
//! ```
//! use sqlite_salvage_format::header::{DbHeader, empty_database};
//! use sqlite_salvage_format::page::BtreePage;
//!
//! let file = empty_database(4096);
//! let h = DbHeader::parse(&file).unwrap();
//! let page1 = BtreePage::parse(&file[..h.page_size as usize], 1, h.usable_size).unwrap();
//! assert_eq!(page1.cell_count, 0);
//! ```
//!
//! Modules: [`header`] (the database header), [`varint`], [`kind`] (the
//! four b-tree page kinds), [`page`] (page headers, pointers, freeblocks,
//! freelist trunks, pointer maps), [`cell`] (cells and the spill rule),
//! [`record`] (records and values), [`wal`] (WAL and frame headers,
//! checksums), [`journal`] (rollback journals), [`shm`] (the `-shm` index
//! header), [`schema_page`] (page 1's `sqlite_schema` rows).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cell;
pub mod header;
pub mod journal;
pub mod kind;
pub mod page;
pub mod record;
pub mod schema_page;
pub mod shm;
pub mod varint;
pub mod wal;

/// A structural check failed; the text says which one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Malformed {}

/// Reads a big-endian u16 at `off`, if in bounds.
#[inline]
pub fn be16(buf: &[u8], off: usize) -> Option<u16> {
    let b = buf.get(off..off.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// Reads a big-endian u32 at `off`, if in bounds.
#[inline]
pub fn be32(buf: &[u8], off: usize) -> Option<u32> {
    let b = buf.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}
