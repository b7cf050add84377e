//! Stage helper: the plain indexes of a bulk-loaded table that could not
//! be copied from the input, built from the rows written.
//!
//! Takes each row the bulk writer puts in a table's tree; gives, once the
//! tree is written, each of the table's plain indexes (those
//! [`super::index_copy::qualifies`] names: table columns only, BINARY
//! order, rowid tables) written page by page from those rows, sorted here.
//! Without it SQLite's REINDEX or CREATE INDEX reads the whole table again
//! for every index and sorts it: on a damaged store, whose input indexes
//! do not match the rows written, that was a third of the recovery.
//!
//! Each entry is kept as a sort key whose byte order is SQLite's order of
//! the entries (the key values under BINARY collation, integers and reals
//! compared exactly, then the rowid), and decoded back into the entry's
//! record when written. Entries are sorted in memory up to a budget, then
//! in sorted runs in unnamed temporary files (nothing is left behind if the
//! process dies) merged as they are written. A UNIQUE index whose key
//! repeats without a NULL is refused ([`Built::Refused`]): the load starts
//! over row by row, as when SQLite's REINDEX refuses it. Rows that go in
//! through SQL later are added by SQLite, the index being there.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::bulk::{BulkFile, IndexTree};
use super::index_copy::plain_indexes;
use crate::error::{Error, Result};
use crate::rows::column_value;
use crate::schema::{Schema, Table};
use sqlite_salvage_format::record::{Record, ValueRef};
use sqlite_salvage_format::varint::write_varint;

/// Memory for the entries of one table's indexes before they go to runs.
const BUDGET: usize = 8 << 20;
/// The bytes of one entry of a [`Sorter`]'s key list.
const KEY_ENTRY: usize = std::mem::size_of::<(u64, u32, u32)>();

/// One index being built.
pub(crate) struct IndexBuild {
    /// Position in `Schema::indexes`.
    pub index: usize,
    cols: Vec<usize>,
    unique: bool,
    out_root: u32,
    sorter: Sorter,
    /// A value no sort key can order (a NaN): SQLite rebuilds it.
    unusable: bool,
    /// The sort key being made, and its reals' flags (reused row to row).
    key: Vec<u8>,
    reals: Vec<u8>,
}

/// What building gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Built {
    /// Written: SQLite need not rebuild it.
    Written,
    /// Not written (a value no key orders, or a temporary file failed):
    /// SQLite rebuilds it.
    Skipped,
    /// Written, but two rows share a key of this UNIQUE index.
    Refused(String),
}

/// The indexes of table `t` to build: of those that may be copied, the
/// ones `wanted` names (by position in `Schema::indexes`), with their roots
/// in the output (`root_of` gives an index's, by name); runs spill to
/// unnamed files in `dir`.
pub(crate) fn builds_for(
    schema: &Schema,
    t: &Table,
    page_count: u32,
    dir: &Path,
    root_of: impl Fn(&str) -> Option<u32>,
    wanted: impl Fn(usize) -> bool,
) -> Vec<IndexBuild> {
    let mut out = Vec::new();
    for p in plain_indexes(schema, t, page_count, root_of) {
        if !wanted(p.index) {
            continue;
        }
        out.push(IndexBuild {
            index: p.index,
            cols: p.cols,
            unique: p.unique,
            out_root: p.out_root,
            sorter: Sorter::new(dir.to_path_buf()),
            unusable: false,
            key: Vec::new(),
            reals: Vec::new(),
        });
    }
    let share = BUDGET / out.len().max(1);
    for b in &mut out {
        b.sorter.limit = share;
    }
    out
}

impl IndexBuild {
    /// A row written into the table's tree page by page.
    pub fn add_row(&mut self, t: &Table, rec: &Record, payload: &[u8], rowid: i64) {
        if self.unusable {
            return;
        }
        self.key.clear();
        self.reals.clear();
        for &c in &self.cols {
            let v = column_value(t, rec, payload, Some(rowid), c);
            match push_key(&mut self.key, v) {
                Some(real) => self.reals.push(u8::from(real)),
                None => {
                    self.unusable = true;
                    return;
                }
            }
        }
        self.key.extend_from_slice(&biased(rowid));
        // Which numbers were reals: after the rowid, so never part of the
        // order (an entry's key and rowid are unique).
        self.key.extend_from_slice(&self.reals);
        if self.sorter.push(&self.key).is_err() {
            self.unusable = true;
        }
    }

    /// Writes the index, its entries in order, into the output.
    pub fn build(self, f: &mut BulkFile, name: &str) -> Result<Built> {
        if self.unusable {
            return Ok(Built::Skipped);
        }
        let k = self.cols.len();
        let dir = self.sorter.dir.clone();
        let Ok(mut entries) = self.sorter.into_sorted() else {
            return Ok(Built::Skipped);
        };
        let mut tree = IndexTree::new(self.out_root);
        let (mut entry, mut prev, mut record) = (Vec::new(), Vec::new(), Vec::new());
        let mut scratch = Scratch::default();
        let mut refused = None;
        while entries
            .next_entry(&mut entry)
            .map_err(|e| Error::output(&dir, e))?
        {
            let Some((key_len, null)) = entry_record(&entry, k, &mut record, &mut scratch) else {
                let e =
                    std::io::Error::other(format!("a sort key of index {name} does not decode"));
                return Err(Error::output(&dir, e));
            };
            let key = entry.get(..key_len).unwrap_or_default();
            if self.unique && refused.is_none() && key == prev.as_slice() && !null {
                refused = Some(format!("UNIQUE constraint failed: index {name}"));
            }
            prev.clear();
            prev.extend_from_slice(key);
            tree.push(f, &record)?;
        }
        tree.finish(f)?;
        Ok(refused.map_or(Built::Written, Built::Refused))
    }
}

/// An integer as 8 bytes whose unsigned order is its signed order.
fn biased(i: i64) -> [u8; 8] {
    ((i as u64) ^ (1 << 63)).to_be_bytes()
}

/// A double as 8 bytes whose unsigned order is its numeric order.
fn ordered_bits(f: f64) -> [u8; 8] {
    let b = f.to_bits();
    (if b >> 63 == 1 { !b } else { b | (1 << 63) }).to_be_bytes()
}

fn from_ordered_bits(b: u64) -> f64 {
    f64::from_bits(if b >> 63 == 1 { b & !(1 << 63) } else { !b })
}

const NULL: u8 = 0x00;
const NUMBER: u8 = 0x10;
const TEXT: u8 = 0x20;
const BLOB: u8 = 0x30;
/// 2^63 as a double: integers lie in [-2^63, 2^63).
const TWO63: f64 = 9_223_372_036_854_775_808.0;

/// Appends `v`'s sort key: a class byte (NULL < numbers < text < blobs, as
/// SQLite orders them); a number as (region, floor, fraction) so that
/// integers and reals order exactly together; text and blobs with zero
/// bytes escaped and a two-byte end, so that a prefix sorts first. Whether
/// a number is a real (`Some(true)`), or `None` for a NaN.
fn push_key(out: &mut Vec<u8>, v: ValueRef<'_>) -> Option<bool> {
    match v {
        ValueRef::Null => out.push(NULL),
        ValueRef::Integer(i) => {
            out.extend_from_slice(&[NUMBER, 1]);
            out.extend_from_slice(&biased(i));
            out.extend_from_slice(&[0; 8]);
        }
        ValueRef::Real(r) if r.is_nan() => return None,
        ValueRef::Real(r) => {
            if !(-TWO63..TWO63).contains(&r) {
                out.extend_from_slice(&[NUMBER, if r < 0.0 { 0 } else { 2 }]);
                out.extend_from_slice(&ordered_bits(r));
                out.extend_from_slice(&[0; 8]);
            } else {
                let floor = r.floor();
                out.extend_from_slice(&[NUMBER, 1]);
                out.extend_from_slice(&biased(floor as i64));
                // Exact, and in [0, 1): its bits order as it does, and an
                // integral real's are an integer's zeros.
                out.extend_from_slice(&(r - floor).to_bits().to_be_bytes());
            }
            return Some(true);
        }
        ValueRef::Text(b) | ValueRef::Blob(b) => {
            out.push(if matches!(v, ValueRef::Text(_)) {
                TEXT
            } else {
                BLOB
            });
            for &byte in b {
                out.push(byte);
                if byte == 0 {
                    out.push(0xff);
                }
            }
            out.extend_from_slice(&[0, 0]);
        }
    }
    Some(false)
}

/// A WITHOUT ROWID record's primary key (its first `k` values) as bytes
/// whose order is the table's BINARY ascending key order; `None` when a
/// key value is missing, NULL or NaN (such a record cannot be placed).
pub(crate) fn primary_key_bytes(k: usize, payload: &[u8]) -> Option<Vec<u8>> {
    let mut rec = Record::new();
    rec.parse(payload).ok()?;
    if rec.len() < k {
        return None;
    }
    let mut out = Vec::new();
    for c in 0..k {
        let v = rec.value(payload, c);
        if v == ValueRef::Null {
            return None;
        }
        push_key(&mut out, v)?;
    }
    Some(out)
}

/// Decodes the value of a sort key at `at` into its record form: appends
/// its bytes to `body`; gives its serial type and where the next value
/// starts.
fn decode_one(key: &[u8], at: usize, real: bool, body: &mut Vec<u8>) -> Option<(u64, usize)> {
    let class = *key.get(at)?;
    match class {
        NULL => Some((0, at + 1)),
        NUMBER => {
            let region = *key.get(at + 1)?;
            let a = u64::from_be_bytes(key.get(at + 2..at + 10)?.try_into().ok()?);
            let b = u64::from_be_bytes(key.get(at + 10..at + 18)?.try_into().ok()?);
            let serial = match (region, real) {
                (1, false) => int_serial((a ^ (1 << 63)) as i64, body),
                (1, true) => {
                    let r = ((a ^ (1 << 63)) as i64) as f64 + f64::from_bits(b);
                    body.extend_from_slice(&r.to_bits().to_be_bytes());
                    7
                }
                _ => {
                    body.extend_from_slice(&from_ordered_bits(a).to_bits().to_be_bytes());
                    7
                }
            };
            Some((serial, at + 18))
        }
        TEXT | BLOB => {
            let start = body.len();
            let mut i = at + 1;
            loop {
                let byte = *key.get(i)?;
                if byte == 0 {
                    if *key.get(i + 1)? == 0 {
                        break;
                    }
                    body.push(0);
                    i += 2;
                } else {
                    body.push(byte);
                    i += 1;
                }
            }
            let n = (body.len() - start) as u64;
            Some((n * 2 + if class == TEXT { 13 } else { 12 }, i + 2))
        }
        _ => None,
    }
}

/// Buffers reused from entry to entry.
#[derive(Default)]
struct Scratch {
    header: Vec<u8>,
    body: Vec<u8>,
}

fn push_varint(v: u64, out: &mut Vec<u8>) {
    let mut v9 = [0u8; 9];
    let n = write_varint(v, &mut v9);
    out.extend_from_slice(&v9[..n]);
}

/// The index record of a sort key with `k` key values into `out` (the key
/// values, then the rowid); gives the length of the key values' part of
/// the sort key (what a UNIQUE index compares) and whether one of them is
/// NULL (then it clashes with nothing).
fn entry_record(
    entry: &[u8],
    k: usize,
    out: &mut Vec<u8>,
    scratch: &mut Scratch,
) -> Option<(usize, bool)> {
    // The reals' flags are the last k bytes; the rowid the 8 before.
    let flags_at = entry.len().checked_sub(k)?;
    let rowid_at = flags_at.checked_sub(8)?;
    let flags = entry.get(flags_at..)?;
    let Scratch { header, body } = scratch;
    header.clear();
    body.clear();
    let (mut at, mut null) = (0, false);
    for &real in flags {
        let (serial, next) = decode_one(entry, at, real == 1, body)?;
        null |= serial == 0;
        push_varint(serial, header);
        at = next;
    }
    if at != rowid_at {
        return None;
    }
    let rowid = u64::from_be_bytes(entry.get(rowid_at..flags_at)?.try_into().ok()?) ^ (1 << 63);
    let serial = int_serial(rowid as i64, body);
    push_varint(serial, header);
    // The header's size counts its own varint.
    let mut v9 = [0u8; 9];
    let mut size = header.len() + 1;
    loop {
        let n = write_varint(size as u64, &mut v9);
        if header.len() + n == size {
            break;
        }
        size = header.len() + n;
    }
    out.clear();
    push_varint(size as u64, out);
    out.extend_from_slice(header);
    out.extend_from_slice(body);
    Some((rowid_at, null))
}

/// The smallest serial type for an integer, its bytes appended to `body`.
fn int_serial(i: i64, body: &mut Vec<u8>) -> u64 {
    let (serial, len) = match i {
        0 => (8, 0),
        1 => (9, 0),
        -128..=127 => (1, 1),
        -32768..=32767 => (2, 2),
        -8_388_608..=8_388_607 => (3, 3),
        -2_147_483_648..=2_147_483_647 => (4, 4),
        -140_737_488_355_328..=140_737_488_355_327 => (5, 6),
        _ => (6, 8),
    };
    body.extend_from_slice(&i.to_be_bytes()[8 - len..]);
    serial
}

/// Sort keys, in memory up to a limit, then in sorted runs on disk.
struct Sorter {
    dir: PathBuf,
    limit: usize,
    arena: Vec<u8>,
    /// Each key's first eight bytes (big-endian, zero-padded: they order
    /// as the key's bytes do, and most comparisons end there), and its
    /// (start, length) in the arena.
    keys: Vec<(u64, u32, u32)>,
    runs: Vec<File>,
}

/// The first eight bytes of `key` as a number that orders as they do.
fn prefix(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    for (d, s) in b.iter_mut().zip(key) {
        *d = *s;
    }
    u64::from_be_bytes(b)
}

impl Sorter {
    fn new(dir: PathBuf) -> Sorter {
        Sorter {
            dir,
            limit: BUDGET,
            arena: Vec::new(),
            keys: Vec::new(),
            runs: Vec::new(),
        }
    }

    fn push(&mut self, key: &[u8]) -> std::io::Result<()> {
        // The arena and the key list take half the limit each, reserved
        // once: they never grow past it (a doubling Vec would hold up to
        // twice its contents, and three times while it moves them). Only a
        // key longer than the arena is held alone, in a larger one.
        if self.keys.capacity() == 0 {
            self.arena.reserve_exact(self.limit / 2);
            self.keys.reserve_exact((self.limit / 2 / KEY_ENTRY).max(1));
        }
        let full = self.arena.len() + key.len() > self.arena.capacity()
            || self.keys.len() == self.keys.capacity();
        if full && !self.keys.is_empty() {
            self.spill()?;
        }
        let (Ok(start), Ok(len)) = (u32::try_from(self.arena.len()), u32::try_from(key.len()))
        else {
            return Err(std::io::Error::other("sort run too large"));
        };
        self.arena.extend_from_slice(key);
        self.keys.push((prefix(key), start, len));
        Ok(())
    }

    fn sort(&mut self) {
        let arena = &self.arena;
        let at = |&(_, s, l): &(u64, u32, u32)| {
            arena.get(s as usize..(s + l) as usize).unwrap_or_default()
        };
        self.keys
            .sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| at(a).cmp(at(b))));
    }

    /// Writes the keys held, sorted, as a run.
    fn spill(&mut self) -> std::io::Result<()> {
        self.sort();
        let mut w = BufWriter::new(tempfile::tempfile_in(&self.dir)?);
        for &(_, s, l) in &self.keys {
            let key = self
                .arena
                .get(s as usize..(s + l) as usize)
                .unwrap_or_default();
            w.write_all(&l.to_le_bytes())?;
            w.write_all(key)?;
        }
        let mut f = w.into_inner().map_err(|e| e.into_error())?;
        std::io::Seek::rewind(&mut f)?;
        self.runs.push(f);
        self.arena.clear();
        self.keys.clear();
        Ok(())
    }

    /// Every key, in order.
    fn into_sorted(mut self) -> std::io::Result<Sorted> {
        if !self.runs.is_empty() && !self.keys.is_empty() {
            self.spill()?;
        }
        if self.runs.is_empty() {
            self.sort();
            let keys = std::mem::take(&mut self.keys);
            return Ok(Sorted::Memory(self.arena, keys.into_iter()));
        }
        let mut readers: Vec<BufReader<File>> = self.runs.into_iter().map(BufReader::new).collect();
        let mut heap = BinaryHeap::new();
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some(k) = read_key(r)? {
                heap.push(Reverse((k, i)));
            }
        }
        Ok(Sorted::Merge(readers, heap))
    }
}

fn read_key(r: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut key = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut key)?;
    Ok(Some(key))
}

/// Sorted keys: from memory, or merged from runs.
enum Sorted {
    Memory(Vec<u8>, std::vec::IntoIter<(u64, u32, u32)>),
    Merge(Vec<BufReader<File>>, BinaryHeap<Reverse<(Vec<u8>, usize)>>),
}

impl Sorted {
    /// The next key into `out`; false at the end.
    fn next_entry(&mut self, out: &mut Vec<u8>) -> std::io::Result<bool> {
        match self {
            Sorted::Memory(arena, keys) => {
                let Some((_, s, l)) = keys.next() else {
                    return Ok(false);
                };
                out.clear();
                out.extend_from_slice(arena.get(s as usize..(s + l) as usize).unwrap_or_default());
                Ok(true)
            }
            Sorted::Merge(readers, heap) => {
                let Some(Reverse((key, i))) = heap.pop() else {
                    return Ok(false);
                };
                *out = key;
                if let Some(r) = readers.get_mut(i) {
                    if let Some(k) = read_key(r)? {
                        heap.push(Reverse((k, i)));
                    }
                }
                Ok(true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ValueRef::*;

    fn key(v: ValueRef<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        push_key(&mut out, v).unwrap();
        out
    }

    #[test]
    fn sort_keys_order_as_sqlite_orders_values() {
        let ordered = [
            Null,
            Real(-1e300),
            Integer(i64::MIN),
            Real(-1.5),
            Integer(-1),
            Real(-0.5),
            Integer(0),
            Real(0.5),
            Integer(1),
            Real(1.5),
            Real(9.223372036854775e18),
            Integer(i64::MAX - 1),
            Integer(i64::MAX),
            Real(1e19),
            Text(b""),
            Text(b"a"),
            Text(b"a\x00"),
            Text(b"a\x00b"),
            Text(b"a\x01"),
            Text(b"ab"),
            Text(b"b"),
            Blob(b""),
            Blob(b"\x00"),
            Blob(b"\x01"),
        ];
        for (i, a) in ordered.iter().enumerate() {
            for (j, b) in ordered.iter().enumerate() {
                assert_eq!(key(*a).cmp(&key(*b)), i.cmp(&j), "{a:?} vs {b:?}");
            }
        }
        assert_eq!(key(Integer(2)), key(Real(2.0)));
        assert!(push_key(&mut Vec::new(), Real(f64::NAN)).is_none());
    }

    #[test]
    fn sort_keys_decode_into_the_index_record() {
        let values = [
            Integer(-300),
            Real(2.25),
            Real(-7.0),
            Text(b"x\x00y"),
            Null,
            Blob(b""),
        ];
        let mut scratch = Scratch::default();
        // All six values (a NULL among them), then the first four (none).
        for (n, null) in [(6, true), (4, false)] {
            let mut entry = Vec::new();
            let mut reals = Vec::new();
            for v in &values[..n] {
                reals.push(u8::from(push_key(&mut entry, *v).unwrap()));
            }
            let key_len = entry.len();
            entry.extend_from_slice(&biased(42));
            entry.extend_from_slice(&reals);
            let mut out = Vec::new();
            let got = entry_record(&entry, n, &mut out, &mut scratch);
            assert_eq!(got, Some((key_len, null)));
            let mut rec = Record::new();
            rec.parse(&out).unwrap();
            assert_eq!(rec.end(), out.len());
            for (i, v) in values[..n].iter().enumerate() {
                assert_eq!(rec.value(&out, i), *v, "value {i}");
            }
            assert_eq!(rec.value(&out, n), Integer(42));
        }
    }

    #[test]
    fn runs_merge_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sorter::new(dir.path().to_path_buf());
        s.limit = 64;
        let mut want = Vec::new();
        for i in 0..500u32 {
            let k = ((i * 7919) % 500).to_be_bytes().to_vec();
            s.push(&k).unwrap();
            want.push(k);
        }
        want.sort();
        assert!(!s.runs.is_empty());
        let mut sorted = s.into_sorted().unwrap();
        let (mut got, mut k) = (Vec::new(), Vec::new());
        while sorted.next_entry(&mut k).unwrap() {
            got.push(k.clone());
        }
        assert_eq!(got, want);
        // Unnamed: nothing in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
