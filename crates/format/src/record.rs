//! Records: a header of serial types followed by the values.
//!
//! ```text
//! varint header-size (counts itself) | varint serial type ... | value bytes ...
//!
//! serial type  meaning                     bytes
//!          0   NULL                        0
//!        1-4   big-endian int, 1/2/3/4 B   1,2,3,4
//!          5   big-endian int, 6 bytes     6
//!          6   big-endian int, 8 bytes     8
//!          7   IEEE 754 float, big-endian  8
//!        8,9   the integers 0 and 1        0
//!      10,11   reserved; read as NULL, as SQLite does  0
//!   N>=12 even BLOB of (N-12)/2 bytes
//!   N>=13 odd  TEXT of (N-13)/2 bytes, in the database encoding
//! ```

use std::borrow::Cow;

use super::Malformed;
use super::header::TextEncoding;
use super::varint::read_varint;

/// A borrowed value, as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// SQL NULL.
    Null,
    /// A 64-bit signed integer.
    Integer(i64),
    /// A 64-bit float.
    Real(f64),
    /// Text in the database's encoding.
    Text(&'a [u8]),
    /// A blob.
    Blob(&'a [u8]),
}

/// An owned value, with text decoded to UTF-8.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit signed integer.
    Integer(i64),
    /// A 64-bit float.
    Real(f64),
    /// Text.
    Text(String),
    /// A blob.
    Blob(Vec<u8>),
}

impl ValueRef<'_> {
    /// Converts to an owned value, decoding text from `enc`. Text that is
    /// not valid in its encoding is decoded with replacement characters.
    pub fn to_owned(&self, enc: TextEncoding) -> Value {
        match *self {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(t) => Value::Text(decode_text(t, enc).into_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        }
    }
}

/// Decodes stored text to UTF-8. Invalid sequences become U+FFFD; use
/// [`text_is_valid`] to tell whether that happened.
pub fn decode_text(bytes: &[u8], enc: TextEncoding) -> Cow<'_, str> {
    match enc {
        TextEncoding::Utf8 => String::from_utf8_lossy(bytes),
        TextEncoding::Utf16le | TextEncoding::Utf16be => {
            let units = bytes.chunks_exact(2).map(|c| {
                if enc == TextEncoding::Utf16le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            });
            let mut s: String = char::decode_utf16(units)
                .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect();
            if bytes.len() % 2 == 1 {
                s.push(char::REPLACEMENT_CHARACTER);
            }
            Cow::Owned(s)
        }
    }
}

/// Whether stored text is valid in its encoding.
pub fn text_is_valid(bytes: &[u8], enc: TextEncoding) -> bool {
    match enc {
        TextEncoding::Utf8 => std::str::from_utf8(bytes).is_ok(),
        TextEncoding::Utf16le | TextEncoding::Utf16be => {
            bytes.len() % 2 == 0
                && char::decode_utf16(bytes.chunks_exact(2).map(|c| {
                    if enc == TextEncoding::Utf16le {
                        u16::from_le_bytes([c[0], c[1]])
                    } else {
                        u16::from_be_bytes([c[0], c[1]])
                    }
                }))
                .all(|r| r.is_ok())
        }
    }
}

/// Number of value bytes for a serial type. The reserved types 10 and 11
/// take none and read as NULL, as in SQLite (whose `integrity_check`
/// accepts them).
#[inline]
pub fn serial_len(serial: u64) -> u64 {
    match serial {
        0 | 8 | 9 | 10 | 11 => 0,
        1 => 1,
        2 => 2,
        3 => 3,
        4 => 4,
        5 => 6,
        6 | 7 => 8,
        n => (n - 12) / 2,
    }
}

/// A parsed record header, reusable across records without reallocating.
///
/// Holds (serial type, offset) for each column; values are read from the
/// payload on demand with [`Record::value`].
#[derive(Debug, Default, Clone)]
pub struct Record {
    columns: Vec<(u64, usize)>,
    body_len: usize,
}

/// Most columns a record can have (SQLite's hard limit is 32767).
pub const MAX_COLUMNS: usize = 32767;

impl Record {
    /// An empty record header.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the header of `payload`, checking that every value lies
    /// within it. On error the record is left empty.
    pub fn parse(&mut self, payload: &[u8]) -> Result<(), Malformed> {
        self.columns.clear();
        self.body_len = 0;
        let r = self.parse_inner(payload, false);
        if r.is_err() {
            self.columns.clear();
        }
        r
    }

    /// Parses a record whose payload may be cut short (a broken overflow
    /// chain): the header must be whole, values may run past the end.
    /// Returns the first column not wholly present, if any; such a text or
    /// blob reads as the prefix that is there, a number as NULL.
    pub fn parse_partial(&mut self, payload: &[u8]) -> Result<Option<usize>, Malformed> {
        self.columns.clear();
        self.body_len = 0;
        if let Err(m) = self.parse_inner(payload, true) {
            self.columns.clear();
            return Err(m);
        }
        Ok(self
            .columns
            .iter()
            .position(|&(serial, off)| off as u64 + serial_len(serial) > payload.len() as u64))
    }

    /// Parses a record whose header-size varint is wrong (out of range, or
    /// ending inside a serial type): reads serial types from just after it
    /// up to the one end at which they describe values that fill `payload`
    /// to its last byte, and takes that as the header's end. At most one
    /// end can do so (each serial type moves the end of the header by at
    /// least a byte, and the values' end never back), so a fit is the
    /// record's own evidence, not a guess. Errors when no end fits; on
    /// error the record is left empty.
    pub fn parse_refit(&mut self, payload: &[u8]) -> Result<(), Malformed> {
        self.columns.clear();
        self.body_len = 0;
        let (_, mut pos) = read_varint(payload).ok_or(Malformed("record header truncated"))?;
        let mut types = Vec::new();
        let mut body: u64 = 0;
        while pos < payload.len() && types.len() < MAX_COLUMNS {
            let Some((serial, n)) = payload.get(pos..).and_then(read_varint) else {
                break;
            };
            pos += n;
            body = body.saturating_add(serial_len(serial));
            types.push(serial);
            if pos as u64 + body == payload.len() as u64 {
                let mut off = pos;
                for serial in types {
                    self.columns.push((serial, off));
                    off += serial_len(serial) as usize;
                }
                self.body_len = payload.len();
                return Ok(());
            }
            if pos as u64 + body > payload.len() as u64 {
                // The header's end and the values' length only grow: no
                // later end fits.
                break;
            }
        }
        Err(Malformed("no header length fits the record's values"))
    }

    /// A record of `n` NULLs: the values of a row whose record cannot be
    /// read, kept for the key its cell gives.
    pub fn set_nulls(&mut self, n: usize) {
        self.columns.clear();
        self.columns.resize(n.min(MAX_COLUMNS), (0, 0));
        self.body_len = 0;
    }

    fn parse_inner(&mut self, payload: &[u8], partial: bool) -> Result<(), Malformed> {
        let (hdr_len, mut pos) =
            read_varint(payload).ok_or(Malformed("record header truncated"))?;
        let hdr_len = usize::try_from(hdr_len).map_err(|_| Malformed("record header size"))?;
        if hdr_len < pos || hdr_len > payload.len() {
            return Err(Malformed("record header size out of range"));
        }
        let mut body = hdr_len;
        while pos < hdr_len {
            let (serial, n) = payload
                .get(pos..hdr_len)
                .and_then(read_varint)
                .ok_or(Malformed("serial type runs past the record header"))?;
            pos += n;
            let len = usize::try_from(serial_len(serial)).map_err(|_| Malformed("value size"))?;
            if self.columns.len() >= MAX_COLUMNS {
                return Err(Malformed("too many columns"));
            }
            self.columns.push((serial, body));
            body = body
                .checked_add(len)
                .filter(|&e| partial || e <= payload.len())
                .ok_or(Malformed("value runs past the record"))?;
        }
        if pos != hdr_len {
            return Err(Malformed("serial type runs past the record header"));
        }
        self.body_len = body;
        Ok(())
    }

    /// Number of columns.
    #[inline]
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// Whether the record has no columns.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Bytes the header and values take (at most the payload length).
    #[inline]
    pub fn end(&self) -> usize {
        self.body_len
    }

    /// Whether a column has serial type 10 or 11: reserved, read as NULL,
    /// never written by SQLite (so a record found without its page's
    /// structure that uses one is no evidence of a row).
    pub fn uses_reserved_types(&self) -> bool {
        self.columns.iter().any(|&(s, _)| s == 10 || s == 11)
    }

    /// Whether the record's values take no bytes (every one NULL, 0, 1 or
    /// empty): a run of one repeated byte decodes as such a record.
    pub fn body_is_empty(&self) -> bool {
        self.columns
            .first()
            .is_none_or(|&(_, off)| off >= self.body_len)
    }

    /// Serial type of column `i`.
    #[inline]
    pub fn serial_type(&self, i: usize) -> Option<u64> {
        self.columns.get(i).map(|c| c.0)
    }

    /// Where column `i`'s value lies in the payload, as a byte range
    /// (possibly past its end, for a record parsed in part).
    pub fn span(&self, i: usize) -> Option<std::ops::Range<u64>> {
        let &(serial, off) = self.columns.get(i)?;
        let start = off as u64;
        Some(start..start.saturating_add(serial_len(serial)))
    }

    /// Value of column `i` read from `payload` (the same bytes given to
    /// [`Record::parse`]). Out-of-range columns read as NULL.
    #[inline]
    pub fn value<'a>(&self, payload: &'a [u8], i: usize) -> ValueRef<'a> {
        let Some(&(serial, off)) = self.columns.get(i) else {
            return ValueRef::Null;
        };
        decode_value(payload, serial, off).unwrap_or(ValueRef::Null)
    }
}

#[inline]
fn int_be(bytes: &[u8]) -> i64 {
    // Sign-extend from the first byte.
    let mut v: i64 = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        -1
    } else {
        0
    };
    for &b in bytes {
        v = (v << 8) | i64::from(b);
    }
    v
}

#[inline]
fn decode_value(payload: &[u8], serial: u64, off: usize) -> Option<ValueRef<'_>> {
    let len = usize::try_from(serial_len(serial)).ok()?;
    let end = off.checked_add(len)?;
    let bytes = match payload.get(off..end) {
        Some(b) => b,
        // A value cut short (partial records): text and blobs keep the
        // bytes that are there.
        None if serial >= 12 => payload.get(off..)?,
        None => return None,
    };
    Some(match serial {
        0 | 10 | 11 => ValueRef::Null,
        1..=6 => ValueRef::Integer(int_be(bytes)),
        7 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(bytes);
            let f = f64::from_be_bytes(a);
            // SQLite reads a stored NaN as NULL.
            if f.is_nan() {
                ValueRef::Null
            } else {
                ValueRef::Real(f)
            }
        }
        8 => ValueRef::Integer(0),
        9 => ValueRef::Integer(1),
        n if n % 2 == 0 => ValueRef::Blob(bytes),
        _ => ValueRef::Text(bytes),
    })
}

/// Encodes UTF-8 text as the database stores it.
pub fn encode_text(s: &str, enc: TextEncoding) -> Vec<u8> {
    match enc {
        TextEncoding::Utf8 => s.as_bytes().to_vec(),
        TextEncoding::Utf16le => s.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        TextEncoding::Utf16be => s.encode_utf16().flat_map(u16::to_be_bytes).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_serial_type() {
        // header: size 9, types 0,1,2,3,4,5,6,8,9 ; then values
        let mut p = vec![10u8, 0, 1, 2, 3, 4, 5, 6, 8, 9];
        p.push(0xff); // -1
        p.extend_from_slice(&[0x80, 0x00]); // -32768
        p.extend_from_slice(&[0x7f, 0xff, 0xff]);
        p.extend_from_slice(&[0x80, 0, 0, 0]);
        p.extend_from_slice(&[0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&i64::MIN.to_be_bytes());
        let mut r = Record::new();
        r.parse(&p).unwrap();
        assert_eq!(r.len(), 9);
        let vals: Vec<_> = (0..9).map(|i| r.value(&p, i)).collect();
        assert_eq!(
            vals,
            vec![
                ValueRef::Null,
                ValueRef::Integer(-1),
                ValueRef::Integer(-32768),
                ValueRef::Integer(0x7fffff),
                ValueRef::Integer(i64::from(i32::MIN)),
                ValueRef::Integer(1),
                ValueRef::Integer(i64::MIN),
                ValueRef::Integer(0),
                ValueRef::Integer(1),
            ]
        );
    }

    #[test]
    fn rejects_values_past_the_end() {
        let p = [2u8, 0x81, 0x00]; // text of 57 bytes, none present
        assert!(Record::new().parse(&p).is_err());
        assert!(Record::new().parse(&[5u8, 1]).is_err());
    }

    #[test]
    fn a_wrong_header_length_is_refit_to_the_values() {
        // Header says 9 bytes; its serial types (int8, text of 2) end at 3
        // and their values fill the rest exactly.
        let p = [9u8, 1, 17, 42, b'h', b'i'];
        let mut r = Record::new();
        assert!(r.parse(&p).is_err());
        assert!(r.parse_partial(&p).is_err());
        r.parse_refit(&p).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.value(&p, 0), ValueRef::Integer(42));
        assert_eq!(r.value(&p, 1), ValueRef::Text(b"hi"));
        assert_eq!(r.end(), p.len());
        // Nothing fits: one byte short.
        assert!(r.parse_refit(&p[..5]).is_err());
        assert!(r.is_empty());
        r.set_nulls(3);
        assert_eq!(r.len(), 3);
        assert_eq!(r.value(&p, 2), ValueRef::Null);
    }

    #[test]
    fn reserved_serial_types_read_as_null() {
        for serial in [10u8, 11] {
            let mut r = Record::new();
            r.parse(&[3u8, serial, 1, 7]).unwrap();
            assert_eq!(r.len(), 2);
            assert_eq!(r.value(&[3u8, serial, 1, 7], 0), ValueRef::Null);
            assert_eq!(r.value(&[3u8, serial, 1, 7], 1), ValueRef::Integer(7));
            assert_eq!(r.end(), 4);
        }
    }
}
