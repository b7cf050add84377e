//! A bulk-loaded table's indexes copied from the input's own index trees,
//! instead of rebuilt by sorting once the table is in, when they prove to
//! hold exactly the rows written.
//!
//! Takes the schema, a table loaded page by page and its rows as they are
//! written; gives, per index, whether it was copied. An index qualifies when
//! it is a plain one (table columns only, no WHERE, no COLLATE, no DESC: the
//! order is SQLite's BINARY order, which this module checks itself) of a
//! rowid table. Its input tree is read before the table's rows are
//! written, to check its form (every entry a record of the key columns and
//! a rowid, in strictly increasing order, no two equal keys in a UNIQUE
//! index; one that fails is built from the rows instead,
//! [`super::index_build`]); then, once they are written, to check that the
//! multiset of its entries equals the multiset of (key columns, rowid) of
//! the rows written, by a sum of keyed hashes, leaving out the entries of
//! rows in the tree's holes and of rows that go in through SQL (SQLite adds
//! the entries of those that do); then to append those entries. Any doubt
//! leaves the index to SQLite's REINDEX. The pages written here are read
//! back as they are written, as the tables' are (`bulk`).

use std::cmp::Ordering;
use std::hash::{BuildHasher, Hasher, RandomState};

/// Two keys no input can know in advance (std's per-process random seed).
pub(crate) fn random_keys() -> (u64, u64) {
    let s = RandomState::new();
    (s.hash_one(1u8) | 1, s.hash_one(2u8) | 1)
}

use super::bulk::{BulkFile, IndexTree};
use crate::error::Result;
use crate::rows::column_value;
use crate::schema::{Index, Schema, Table};
use crate::snapshot::Snapshot;
use crate::tree::TreeCursor;
use sqlite_salvage_format::record::{Record, ValueRef};

/// One index of the table being loaded, and what the rows written add up to.
pub(crate) struct IndexCopy {
    /// Position in `Schema::indexes`.
    pub index: usize,
    /// The table columns of the key, in order.
    cols: Vec<usize>,
    unique: bool,
    /// The output's root page for it.
    out_root: u32,
    keys: (u64, u64),
    /// Sum of both hashes of the rows' entries, and how many.
    sum: (u64, u64),
    rows: u64,
    /// A row of the table did not go in page by page: the index cannot be
    /// copied.
    spoilt: bool,
    /// The input index's entries (both hash sums, and how many), when its
    /// tree reads whole, in strict order and unique where it must be.
    input: Option<((u64, u64), u64)>,
}

/// Whether `sql` has `word` as a token of its own (case-insensitive).
fn has_word(sql: &str, word: &str) -> bool {
    sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| w.eq_ignore_ascii_case(word))
}

/// The key columns of index `ix` of table `t` when it qualifies for
/// copying: a plain index of a rowid table, in BINARY order.
pub(crate) fn qualifies(
    schema: &Schema,
    t: &Table,
    ix: &Index,
    page_count: u32,
) -> Option<Vec<usize>> {
    if t.without_rowid || !t.parsed || has_word(&t.sql, "COLLATE") || has_word(&t.sql, "DESC") {
        return None;
    }
    if !ix.table.eq_ignore_ascii_case(&t.name) || ix.partial || !(1..=page_count).contains(&ix.root)
    {
        return None;
    }
    let entry = schema
        .entries
        .iter()
        .find(|e| e.kind == "index" && e.name == ix.name)?;
    let sql = entry.sql.as_deref().unwrap_or("");
    if has_word(sql, "COLLATE") || has_word(sql, "DESC") {
        return None;
    }
    let cols: Vec<usize> = ix.columns.iter().copied().collect::<Option<_>>()?;
    let real = |c: &usize| t.columns.get(*c).is_some_and(|c| !c.generated);
    (!cols.is_empty() && cols.iter().all(real)).then_some(cols)
}

/// Whether index `ix` is UNIQUE (a PRIMARY KEY or UNIQUE constraint's, or
/// CREATE UNIQUE INDEX).
pub(crate) fn is_unique(schema: &Schema, ix: &Index) -> bool {
    ix.name.starts_with("sqlite_autoindex_")
        || schema
            .entries
            .iter()
            .find(|e| e.kind == "index" && e.name == ix.name)
            .and_then(|e| e.sql.as_deref())
            .is_some_and(|sql| has_word(sql.get(..20).unwrap_or(sql), "UNIQUE"))
}

/// A plain index of a table, as [`qualifies`] finds it.
pub(crate) struct Plain {
    /// Position in `Schema::indexes`.
    pub index: usize,
    /// The table columns of its key.
    pub cols: Vec<usize>,
    pub unique: bool,
    /// Its root page in the output.
    pub out_root: u32,
}

/// The plain indexes of table `t` that have a root in the output
/// (`root_of` gives an index's, by name).
pub(crate) fn plain_indexes(
    schema: &Schema,
    t: &Table,
    page_count: u32,
    root_of: impl Fn(&str) -> Option<u32>,
) -> Vec<Plain> {
    let mut out = Vec::new();
    for (index, ix) in schema.indexes.iter().enumerate() {
        if let (Some(cols), Some(out_root)) =
            (qualifies(schema, t, ix, page_count), root_of(&ix.name))
        {
            let unique = is_unique(schema, ix);
            out.push(Plain {
                index,
                cols,
                unique,
                out_root,
            });
        }
    }
    out
}

/// The indexes of table `t` that qualify for copying, with their roots in
/// the output (`root_of` gives an index's, by name).
pub(crate) fn copies_for(
    schema: &Schema,
    t: &Table,
    page_count: u32,
    root_of: impl Fn(&str) -> Option<u32>,
) -> Vec<IndexCopy> {
    let mut out = Vec::new();
    for p in plain_indexes(schema, t, page_count, root_of) {
        out.push(IndexCopy {
            index: p.index,
            cols: p.cols,
            unique: p.unique,
            out_root: p.out_root,
            keys: random_keys(),
            sum: (0, 0),
            rows: 0,
            spoilt: false,
            input: None,
        });
    }
    out
}

/// Whether the rows of a WITHOUT ROWID table arrive in strictly increasing
/// order of their primary key under BINARY order (no key twice), checked
/// as they are written; only for a table without COLLATE or DESC, whose
/// key order this module knows. Else (or when it does not hold) SQLite's
/// `integrity_check` of the table checks the order.
pub(crate) struct KeyOrder {
    /// Primary key columns: the record's first values.
    k: usize,
    prev: Vec<u8>,
    prev_rec: Record,
    seen: bool,
    holds: bool,
}

impl KeyOrder {
    pub fn for_table(t: &Table) -> KeyOrder {
        KeyOrder {
            k: pk_columns(t),
            prev: Vec::new(),
            prev_rec: Record::new(),
            seen: false,
            holds: KeyOrder::known(t),
        }
    }

    /// Whether this module knows the key order of table `t`: a WITHOUT
    /// ROWID table with a primary key, without COLLATE or DESC.
    pub fn known(t: &Table) -> bool {
        pk_columns(t) > 0
            && t.parsed
            && t.without_rowid
            && !has_word(&t.sql, "COLLATE")
            && !has_word(&t.sql, "DESC")
    }

    /// The next row written, its record parsed from `payload`.
    pub fn add(&mut self, rec: &Record, payload: &[u8]) {
        if !self.holds {
            return;
        }
        if !key_usable(self.k, rec, payload) {
            self.holds = false;
            return;
        }
        if self.seen {
            let order = key_cmp(self.k, (&self.prev_rec, &self.prev), (rec, payload));
            if order != Ordering::Less {
                self.holds = false;
                return;
            }
        }
        self.seen = true;
        self.prev.clear();
        self.prev.extend_from_slice(payload);
        self.prev_rec.clone_from(rec);
    }

    /// Every row so far came in strictly increasing key order.
    pub fn holds(&self) -> bool {
        self.holds
    }
}

/// The number of primary-key columns of a WITHOUT ROWID table (the first
/// values of its records).
pub(crate) fn pk_columns(t: &Table) -> usize {
    t.columns.iter().filter(|c| c.pk > 0).count()
}

/// Whether a record has its first `k` values, none of them NULL: a key
/// [`key_cmp`] can order.
pub(crate) fn key_usable(k: usize, rec: &Record, payload: &[u8]) -> bool {
    rec.len() >= k && (0..k).all(|c| rec.value(payload, c) != ValueRef::Null)
}

/// The order of two records by their first `k` values, ascending and
/// BINARY, as SQLite orders a WITHOUT ROWID table's keys (for records
/// [`key_usable`] accepts).
pub(crate) fn key_cmp(k: usize, a: (&Record, &[u8]), b: (&Record, &[u8])) -> Ordering {
    (0..k)
        .map(|c| compare(a.0.value(a.1, c), b.0.value(b.1, c)))
        .find(|o| *o != Ordering::Equal)
        .unwrap_or(Ordering::Equal)
}

/// A keyed multiply-and-rotate hash: cheap per byte; the random key keeps
/// an input from choosing collisions.
pub(crate) struct Mix {
    h: u64,
    key: u64,
}

impl Mix {
    pub(crate) fn new(key: u64) -> Mix {
        Mix { h: key, key }
    }

    fn word(&mut self, w: u64) {
        self.h = (self.h ^ w)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29)
            ^ self.key;
    }
}

impl Hasher for Mix {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.word(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        self.word(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
    }

    fn write_u8(&mut self, i: u8) {
        self.word(u64::from(i) | 0x100);
    }

    fn write_u64(&mut self, i: u64) {
        self.word(i);
    }

    fn write_i64(&mut self, i: i64) {
        self.word(i as u64);
    }

    fn write_usize(&mut self, i: usize) {
        self.word(i as u64);
    }

    fn finish(&self) -> u64 {
        let mut z = self.h ^ (self.h >> 31);
        z = z.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z ^ (z >> 27)
    }
}

/// Feeds a value into a hash, numbers by value (an integral real and the
/// integer hash alike: a REAL column may store either).
pub(crate) fn hash_value(h: &mut impl Hasher, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => h.write_u8(0),
        ValueRef::Integer(i) => {
            h.write_u8(1);
            h.write_i64(i);
        }
        ValueRef::Real(f) if f.fract() == 0.0 && (-9.2e18..=9.2e18).contains(&f) => {
            h.write_u8(1);
            h.write_i64(f as i64);
        }
        ValueRef::Real(f) => {
            h.write_u8(2);
            h.write_u64(f.to_bits());
        }
        ValueRef::Text(b) => {
            h.write_u8(3);
            h.write_usize(b.len());
            h.write(b);
        }
        ValueRef::Blob(b) => {
            h.write_u8(4);
            h.write_usize(b.len());
            h.write(b);
        }
    }
}

/// SQLite's order of two values under BINARY collation.
pub(crate) fn compare(a: ValueRef<'_>, b: ValueRef<'_>) -> Ordering {
    use ValueRef::*;
    let class = |v: &ValueRef<'_>| match v {
        Null => 0,
        Integer(_) | Real(_) => 1,
        Text(_) => 2,
        Blob(_) => 3,
    };
    match (a, b) {
        (Integer(x), Integer(y)) => x.cmp(&y),
        (Real(x), Real(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (Integer(i), Real(r)) => int_real(i, r),
        (Real(r), Integer(i)) => int_real(i, r).reverse(),
        (Text(x), Text(y)) | (Blob(x), Blob(y)) => x.cmp(y),
        (x, y) => class(&x).cmp(&class(&y)),
    }
}

/// An integer against a real, exactly.
fn int_real(i: i64, r: f64) -> Ordering {
    if r.is_nan() || r < -9_223_372_036_854_775_808.0 {
        return Ordering::Greater;
    }
    if r >= 9_223_372_036_854_775_808.0 {
        return Ordering::Less;
    }
    let t = r.trunc();
    match i.cmp(&(t as i64)) {
        Ordering::Equal => t.partial_cmp(&r).unwrap_or(Ordering::Equal),
        o => o,
    }
}

impl IndexCopy {
    fn entry_hash<'v>(&self, values: impl Iterator<Item = ValueRef<'v>>) -> (u64, u64) {
        let mut a = Mix::new(self.keys.0);
        let mut b = Mix::new(self.keys.1);
        for v in values {
            hash_value(&mut a, v);
            hash_value(&mut b, v);
        }
        (a.finish(), b.finish())
    }

    /// A row of the table written page by page.
    pub fn add_row(&mut self, t: &Table, rec: &Record, payload: &[u8], rowid: i64) {
        let vals = self
            .cols
            .iter()
            .map(|&c| column_value(t, rec, payload, Some(rowid), c))
            .chain(std::iter::once(ValueRef::Integer(rowid)));
        let (a, b) = self.entry_hash(vals);
        self.sum = (self.sum.0.wrapping_add(a), self.sum.1.wrapping_add(b));
        self.rows += 1;
    }

    /// A row of the table that did not go in page by page.
    pub fn spoil(&mut self) {
        self.spoilt = true;
    }

    /// Reads the input's index tree before the table's rows are written:
    /// whether it reads whole, in strict order and unique where it must be
    /// (else it cannot be copied, and is built from the rows instead).
    pub fn precheck(&mut self, snap: &Snapshot, ix: &Index) -> Result<bool> {
        self.input = self.check(snap, ix.root, &|_| false)?;
        Ok(self.input.is_some())
    }

    /// Appends the input's index tree as the output's index when its
    /// entries, but for those of the rowids `later` names (rows in the
    /// tree's holes, or that go in through SQL, which SQLite adds to the
    /// index itself), are exactly the rows written; false (nothing written)
    /// when they are not. `none_later`: `later` names no rowid (the
    /// entries read before the load are compared, not read again).
    pub fn copy(
        &self,
        snap: &Snapshot,
        ix: &Index,
        f: &mut BulkFile,
        (later, none_later): (&dyn Fn(i64) -> bool, bool),
    ) -> Result<bool> {
        if self.spoilt || self.input.is_none() {
            return Ok(false);
        }
        let entries = if none_later {
            self.input
        } else {
            self.check(snap, ix.root, later)?
        };
        if entries != Some((self.sum, self.rows)) {
            return Ok(false);
        }
        let k = self.cols.len();
        let mut tree = IndexTree::new(self.out_root);
        let mut cursor = TreeCursor::new(snap, ix.root);
        let mut rec = Record::new();
        while let Some(e) = cursor.next()? {
            if !none_later {
                rec.parse(e.payload)
                    .map_err(|m| crate::error::Error::corrupt(e.at.page, m.0))?;
                if matches!(rec.value(e.payload, k), ValueRef::Integer(r) if later(r)) {
                    continue;
                }
            }
            tree.push(f, e.payload)?;
        }
        tree.finish(f)?;
        Ok(true)
    }

    /// The first read: order, uniqueness and the multiset of entries.
    /// The sums and count are of the entries whose rowid `skip` does not
    /// name; order and uniqueness are of every entry.
    fn check(
        &self,
        snap: &Snapshot,
        root: u32,
        skip: &dyn Fn(i64) -> bool,
    ) -> Result<Option<((u64, u64), u64)>> {
        let k = self.cols.len();
        let mut cursor = TreeCursor::new(snap, root);
        let (mut prev, mut rec) = (Vec::<u8>::new(), Record::new());
        let mut prev_rec = Record::new();
        let (mut sum, mut n, mut kept) = ((0u64, 0u64), 0u64, 0u64);
        loop {
            let e = match cursor.next() {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(_) => return Ok(None),
            };
            if e.truncated || e.zeroed_overflow || e.suspect || rec.parse(e.payload).is_err() {
                return Ok(None);
            }
            if rec.len() != k + 1
                || rec.end() != e.payload.len()
                || !matches!(rec.value(e.payload, k), ValueRef::Integer(_))
            {
                return Ok(None);
            }
            if n > 0 {
                let mut key_equal = true;
                let mut order = Ordering::Equal;
                for c in 0..=k {
                    let o = compare(prev_rec.value(&prev, c), rec.value(e.payload, c));
                    if c < k && o != Ordering::Equal {
                        key_equal = false;
                    }
                    if o != Ordering::Equal {
                        order = o;
                        break;
                    }
                }
                let has_null = (0..k).any(|c| matches!(rec.value(e.payload, c), ValueRef::Null));
                if order != Ordering::Less || (self.unique && key_equal && !has_null) {
                    return Ok(None);
                }
            }
            let skipped = matches!(rec.value(e.payload, k), ValueRef::Integer(r) if skip(r));
            if !skipped {
                let (a, b) = self.entry_hash((0..=k).map(|c| rec.value(e.payload, c)));
                sum = (sum.0.wrapping_add(a), sum.1.wrapping_add(b));
                kept += 1;
            }
            n += 1;
            prev.clear();
            prev.extend_from_slice(e.payload);
            std::mem::swap(&mut prev_rec, &mut rec);
        }
        Ok(cursor.damage().is_empty().then_some((sum, kept)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ValueRef::*;

    #[test]
    fn values_order_as_sqlite_orders_them() {
        let ordered = [
            Null,
            Integer(i64::MIN),
            Real(-1.5),
            Integer(-1),
            Real(-0.5),
            Integer(0),
            Real(0.5),
            Integer(1),
            Real(1.5),
            Integer(i64::MAX),
            Real(1e19),
            Text(b""),
            Text(b"a"),
            Text(b"ab"),
            Text(b"b"),
            Blob(b""),
            Blob(b"\x00"),
        ];
        for (i, a) in ordered.iter().enumerate() {
            for (j, b) in ordered.iter().enumerate() {
                assert_eq!(compare(*a, *b), i.cmp(&j), "{a:?} vs {b:?}");
            }
        }
        assert_eq!(compare(Integer(2), Real(2.0)), Ordering::Equal);
        assert_eq!(
            compare(Integer(i64::MAX), Real(9.223372036854775e18)),
            Ordering::Greater
        );
    }

    #[test]
    fn a_word_is_found_only_as_a_word() {
        assert!(has_word("CREATE INDEX i ON t(a collate nocase)", "COLLATE"));
        assert!(!has_word("CREATE TABLE t(description TEXT)", "DESC"));
        assert!(has_word("CREATE INDEX i ON t(a DESC)", "DESC"));
    }
}
