//! The live rows of a table, for telling a row found without its rowid
//! from them.
//!
//! Takes a table of the output (every live row in it); gives whether a row
//! (its values by declared column) is one of the live rows or an older
//! version of one: the same in every value but the rowid alias, or in all
//! of them but one, for a table of three value columns or more (an update
//! changes a column; a cell it moves leaves the older version behind).
//! Kept as sorted hashes: one list of whole rows and one per column left
//! out, 8 bytes a row each, up to [`MAX_HASHES`] in all (past that, and
//! for fewer columns, where one value matches too easily, only whole rows
//! are matched).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use rusqlite::types::Value as SqlValue;

use super::sink::Sink;
use crate::error::Result;
use crate::schema::{Table, quote_ident};

/// Most hashes kept for one table (128 MB).
const MAX_HASHES: usize = 16 << 20;

/// A table's live rows, hashed.
pub(crate) struct LiveRows {
    whole: Vec<u64>,
    /// Per value column: the rows hashed without it.
    but_one: Vec<Vec<u64>>,
}

impl LiveRows {
    /// Reads every row of `t` in the output.
    pub fn read(sink: &Sink, t: &Table) -> Result<LiveRows> {
        let cols: Vec<String> = t.columns.iter().map(|c| quote_ident(&c.name)).collect();
        let n: i64 = sink.conn.query_row(
            &format!("SELECT count(*) FROM {}", quote_ident(&t.name)),
            [],
            |r| r.get(0),
        )?;
        let kept = value_columns(t);
        let per_row = if kept.len() >= 3 { kept.len() + 1 } else { 1 };
        let by_column = (n.max(0) as usize).saturating_mul(per_row) <= MAX_HASHES;
        let mut live = LiveRows {
            whole: Vec::new(),
            but_one: if by_column && per_row > 1 {
                vec![Vec::new(); kept.len()]
            } else {
                Vec::new()
            },
        };
        let mut st = sink.conn.prepare(&format!(
            "SELECT {} FROM {}",
            cols.join(", "),
            quote_ident(&t.name)
        ))?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let values: Vec<SqlValue> = (0..cols.len())
                .map(|k| r.get::<_, SqlValue>(k))
                .collect::<rusqlite::Result<_>>()?;
            live.whole.push(hash(&values, &kept, None));
            for (k, list) in live.but_one.iter_mut().enumerate() {
                list.push(hash(&values, &kept, Some(k)));
            }
        }
        live.whole.sort_unstable();
        for list in &mut live.but_one {
            list.sort_unstable();
        }
        Ok(live)
    }

    /// Whether a live row has `values` (by declared column of `t`), or all
    /// of them but one.
    pub fn has_version_of(&self, t: &Table, values: &[SqlValue]) -> bool {
        let kept = value_columns(t);
        let has = |list: &[u64], h: u64| list.binary_search(&h).is_ok();
        has(&self.whole, hash(values, &kept, None))
            || self
                .but_one
                .iter()
                .enumerate()
                .any(|(k, list)| has(list, hash(values, &kept, Some(k))))
    }
}

/// The columns whose values tell rows apart: all but the rowid alias and
/// generated columns.
fn value_columns(t: &Table) -> Vec<usize> {
    (0..t.columns.len())
        .filter(|&c| t.rowid_alias != Some(c) && !t.columns[c].generated)
        .collect()
}

/// A hash of a row's values in columns `kept` (by position in `kept`, the
/// one at `skip` left out); numbers by their value (an integral real as the
/// integer).
fn hash(values: &[SqlValue], kept: &[usize], skip: Option<usize>) -> u64 {
    let mut h = DefaultHasher::new();
    for (k, &c) in kept.iter().enumerate() {
        if Some(k) == skip {
            continue;
        }
        match values.get(c).unwrap_or(&SqlValue::Null) {
            SqlValue::Null => 0u8.hash(&mut h),
            SqlValue::Integer(i) => (1u8, (*i as f64).to_bits()).hash(&mut h),
            SqlValue::Real(f) => (1u8, f.to_bits()).hash(&mut h),
            SqlValue::Text(s) => (2u8, s).hash(&mut h),
            SqlValue::Blob(b) => (3u8, b).hash(&mut h),
        }
    }
    h.finish()
}
