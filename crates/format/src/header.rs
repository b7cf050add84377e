//! The 100-byte database header at the start of page 1.
//!
//! ```text
//! offset size field
//!      0   16 "SQLite format 3\0"
//!     16    2 page size (1 means 65536)
//!     18    1 file format write version (1 legacy, 2 WAL)
//!     19    1 file format read version  (1 legacy, 2 WAL)
//!     20    1 reserved bytes at the end of each page
//!     21    3 payload fractions (64, 32, 32)
//!     24    4 file change counter
//!     28    4 database size in pages (valid when 92..96 equals 24..28)
//!     32    4 first freelist trunk page
//!     36    4 number of freelist pages
//!     40    4 schema cookie
//!     44    4 schema format number (1-4)
//!     48    4 default page cache size
//!     52    4 largest root page (non-zero in auto-vacuum databases)
//!     56    4 text encoding (1 UTF-8, 2 UTF-16le, 3 UTF-16be)
//!     60    4 user version
//!     64    4 incremental vacuum flag
//!     68    4 application id
//!     72   20 reserved, zero
//!     92    4 version-valid-for number
//!     96    4 SQLITE_VERSION_NUMBER of the last writer
//! ```

use binrw::BinRead;
use std::io::Cursor;

use super::Malformed;

/// Size of the database header.
pub const HEADER_SIZE: usize = 100;
/// The magic string every database starts with.
pub const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// The header fields exactly as stored, big-endian, without any validation.
#[derive(BinRead, Debug, Clone, PartialEq, Eq)]
#[br(big)]
pub struct RawHeader {
    /// Bytes 0..16, normally [`MAGIC`].
    pub magic: [u8; 16],
    /// Page size as stored (1 encodes 65536).
    pub page_size: u16,
    /// File format write version.
    pub write_version: u8,
    /// File format read version.
    pub read_version: u8,
    /// Unused bytes at the end of each page.
    pub reserved: u8,
    /// Maximum embedded payload fraction (must be 64).
    pub max_payload_fraction: u8,
    /// Minimum embedded payload fraction (must be 32).
    pub min_payload_fraction: u8,
    /// Leaf payload fraction (must be 32).
    pub leaf_payload_fraction: u8,
    /// File change counter.
    pub change_counter: u32,
    /// Database size in pages.
    pub database_size: u32,
    /// First freelist trunk page.
    pub freelist_trunk: u32,
    /// Total freelist pages.
    pub freelist_count: u32,
    /// Schema cookie.
    pub schema_cookie: u32,
    /// Schema format number.
    pub schema_format: u32,
    /// Default page cache size.
    pub default_cache_size: u32,
    /// Largest root b-tree page (auto-vacuum) or zero.
    pub largest_root_page: u32,
    /// Text encoding code.
    pub text_encoding: u32,
    /// User version.
    pub user_version: u32,
    /// Incremental vacuum flag.
    pub incremental_vacuum: u32,
    /// Application id.
    pub application_id: u32,
    /// Reserved for expansion.
    pub reserved_expansion: [u8; 20],
    /// Version-valid-for number.
    pub version_valid_for: u32,
    /// SQLite version number of the last writer.
    pub sqlite_version: u32,
}

impl RawHeader {
    /// Reads the raw fields from the first 100 bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self, Malformed> {
        let bytes = buf
            .get(..HEADER_SIZE)
            .ok_or(Malformed("file is shorter than the 100-byte header"))?;
        RawHeader::read(&mut Cursor::new(bytes)).map_err(|_| Malformed("unreadable header"))
    }
}

/// Text encoding of a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum TextEncoding {
    /// UTF-8 (code 1).
    #[serde(rename = "UTF-8")]
    Utf8,
    /// UTF-16 little-endian (code 2).
    #[serde(rename = "UTF-16le")]
    Utf16le,
    /// UTF-16 big-endian (code 3).
    #[serde(rename = "UTF-16be")]
    Utf16be,
}

impl TextEncoding {
    /// The encoding for a header code, if valid.
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(TextEncoding::Utf8),
            2 => Some(TextEncoding::Utf16le),
            3 => Some(TextEncoding::Utf16be),
            _ => None,
        }
    }

    /// The name SQLite uses in `PRAGMA encoding`.
    pub fn name(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "UTF-8",
            TextEncoding::Utf16le => "UTF-16le",
            TextEncoding::Utf16be => "UTF-16be",
        }
    }
}

/// Auto-vacuum mode, from bytes 52 and 64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoVacuum {
    /// No pointer-map pages.
    None,
    /// Pointer-map pages, vacuumed at each commit.
    Full,
    /// Pointer-map pages, vacuumed on request.
    Incremental,
}

/// A validated database header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbHeader {
    /// The fields as stored.
    pub raw: RawHeader,
    /// Page size in bytes (512 to 65536, a power of two).
    pub page_size: u32,
    /// Usable bytes per page: page size minus reserved bytes.
    pub usable_size: u32,
    /// Text encoding (UTF-8 when the stored code is 0, as in a new database).
    pub encoding: TextEncoding,
}

/// Converts the stored page-size field to bytes, if valid.
pub fn decode_page_size(stored: u32) -> Option<u32> {
    let size = if stored == 1 { 65536 } else { stored };
    (512..=65536)
        .contains(&size)
        .then_some(size)
        .filter(|s| s.is_power_of_two())
}

impl DbHeader {
    /// Parses and validates the header as SQLite does when it opens a file.
    pub fn parse(buf: &[u8]) -> Result<Self, Malformed> {
        let raw = RawHeader::parse(buf)?;
        if &raw.magic != MAGIC {
            return Err(Malformed("bad magic string"));
        }
        Self::from_raw(raw)
    }

    /// Validates raw fields, ignoring the magic string (a salvage path for
    /// files whose first bytes are damaged).
    pub fn from_raw(raw: RawHeader) -> Result<Self, Malformed> {
        let page_size =
            decode_page_size(u32::from(raw.page_size)).ok_or(Malformed("invalid page size"))?;
        let usable_size = page_size - u32::from(raw.reserved);
        // SQLite requires at least 480 usable bytes.
        if usable_size < 480 {
            return Err(Malformed(
                "reserved bytes leave fewer than 480 usable bytes",
            ));
        }
        if raw.max_payload_fraction != 64
            || raw.min_payload_fraction != 32
            || raw.leaf_payload_fraction != 32
        {
            return Err(Malformed("invalid payload fractions"));
        }
        if raw.read_version > 2 {
            return Err(Malformed("unsupported file format read version"));
        }
        let encoding = match raw.text_encoding {
            0 => TextEncoding::Utf8,
            c => TextEncoding::from_code(c).ok_or(Malformed("invalid text encoding"))?,
        };
        Ok(DbHeader {
            raw,
            page_size,
            usable_size,
            encoding,
        })
    }

    /// A stand-in header for a database whose page 1 is lost: the given
    /// page size, no reserved bytes, UTF-8, no auto-vacuum.
    pub fn synthetic(page_size: u32) -> Self {
        let raw = RawHeader {
            magic: *MAGIC,
            page_size: if page_size == 65536 {
                1
            } else {
                page_size as u16
            },
            write_version: 1,
            read_version: 1,
            reserved: 0,
            max_payload_fraction: 64,
            min_payload_fraction: 32,
            leaf_payload_fraction: 32,
            change_counter: 0,
            database_size: 0,
            freelist_trunk: 0,
            freelist_count: 0,
            schema_cookie: 0,
            schema_format: 4,
            default_cache_size: 0,
            largest_root_page: 0,
            text_encoding: 1,
            user_version: 0,
            incremental_vacuum: 0,
            application_id: 0,
            reserved_expansion: [0; 20],
            version_valid_for: 0,
            sqlite_version: 0,
        };
        DbHeader {
            raw,
            page_size,
            usable_size: page_size,
            encoding: TextEncoding::Utf8,
        }
    }

    /// The in-header database size, when SQLite would trust it: non-zero and
    /// written by a version that keeps it (version-valid-for equals the
    /// change counter).
    pub fn database_size(&self) -> Option<u32> {
        (self.raw.database_size != 0 && self.raw.version_valid_for == self.raw.change_counter)
            .then_some(self.raw.database_size)
    }

    /// Whether the file is marked for WAL mode (bytes 18 and 19 equal 2).
    pub fn is_wal_mode(&self) -> bool {
        self.raw.write_version == 2 || self.raw.read_version == 2
    }

    /// Auto-vacuum mode.
    pub fn auto_vacuum(&self) -> AutoVacuum {
        if self.raw.largest_root_page == 0 {
            AutoVacuum::None
        } else if self.raw.incremental_vacuum != 0 {
            AutoVacuum::Incremental
        } else {
            AutoVacuum::Full
        }
    }

    /// The lock-byte page: the page holding file offset 2^30, if the file
    /// reaches it. SQLite never stores anything there.
    pub fn lock_byte_page(&self) -> u32 {
        lock_byte_page(self.page_size)
    }
}

/// Page 1 of an empty database of `page_size` bytes (a power of two from
/// 512 to 65536): the header (WAL mode, UTF-8, one page) and an empty
/// `sqlite_schema` leaf. A base on which a WAL can be replayed.
pub fn empty_database(page_size: u32) -> Vec<u8> {
    let size = page_size.clamp(512, 65536).next_power_of_two().min(65536);
    let mut p = vec![0u8; size as usize];
    p[..16].copy_from_slice(MAGIC);
    // 65536 is stored as 1 (page size) and as 0 (cell content start).
    let stored = if size == 65536 { 1 } else { size as u16 };
    p[16..18].copy_from_slice(&stored.to_be_bytes());
    p[18] = 2;
    p[19] = 2;
    p[21] = 64;
    p[22] = 32;
    p[23] = 32;
    p[24..28].copy_from_slice(&1u32.to_be_bytes());
    p[28..32].copy_from_slice(&1u32.to_be_bytes());
    p[44..48].copy_from_slice(&4u32.to_be_bytes());
    p[56..60].copy_from_slice(&1u32.to_be_bytes());
    p[92..96].copy_from_slice(&1u32.to_be_bytes());
    p[100] = 0x0d;
    p[105..107].copy_from_slice(&(size as u16).to_be_bytes());
    p
}

/// Page number of the lock-byte page for a page size.
pub fn lock_byte_page(page_size: u32) -> u32 {
    (0x4000_0000 / page_size.max(1)) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(page_size: u16, reserved: u8) -> Vec<u8> {
        let mut b = vec![0u8; 100];
        b[..16].copy_from_slice(MAGIC);
        b[16..18].copy_from_slice(&page_size.to_be_bytes());
        b[18] = 1;
        b[19] = 1;
        b[20] = reserved;
        b[21] = 64;
        b[22] = 32;
        b[23] = 32;
        b[56..60].copy_from_slice(&1u32.to_be_bytes());
        b
    }

    #[test]
    fn page_size_encoding() {
        assert_eq!(DbHeader::parse(&sample(1, 0)).unwrap().page_size, 65536);
        assert_eq!(DbHeader::parse(&sample(4096, 0)).unwrap().page_size, 4096);
        assert!(DbHeader::parse(&sample(4095, 0)).is_err());
        assert!(DbHeader::parse(&sample(256, 0)).is_err());
        assert_eq!(DbHeader::parse(&sample(1024, 32)).unwrap().usable_size, 992);
        assert!(DbHeader::parse(&sample(512, 40)).is_err());
        assert!(DbHeader::parse(&sample(512, 0)[..99]).is_err());
    }

    #[test]
    fn the_empty_database_is_one_sqlite_accepts() {
        let dir = tempfile::tempdir().unwrap();
        for ps in [512u32, 4096, 65536] {
            let path = dir.path().join(format!("e{ps}.db"));
            std::fs::write(&path, empty_database(ps)).unwrap();
            let h = DbHeader::parse(&empty_database(ps)).unwrap();
            assert_eq!((h.page_size, h.database_size()), (ps, Some(1)));
            let c = rusqlite::Connection::open(&path).unwrap();
            let ic: String = c
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(ic, "ok");
            let got: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
            assert_eq!(got, i64::from(ps));
            c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
                .unwrap();
        }
    }
}
