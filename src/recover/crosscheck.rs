//! Stage: the cross-check, rows put in a table by a tree that is not its
//! own.
//!
//! Takes the output once every row is in, the input's index trees and the
//! tables' reports; gives each table back the rows its tree walk found in
//! another table's tree. Two tables of one shape whose interior pages point
//! into each other (a known anti-forensic trick, or damage) put whole
//! leaves of rows in the wrong table, and nothing in those leaves tells:
//! the keys fall in range and the records fit. The tables' own indexes do:
//! an index lists each of its table's rows by key and rowid.
//!
//! A row of table T that T's index does not list, but exactly one other
//! table U's index lists (the same key values, the same rowid), is moved to
//! U and flagged in both reports' terms. A row no index lists stays where
//! its tree put it (an index entry lost to damage is no evidence against
//! it). A row that cannot go into U (a row with its rowid or UNIQUE key is
//! there) goes to lost_and_found with its values. Runs only when two rowid
//! tables of one shape have a plain index each, and only for a table whose
//! index was not copied from the input whole (a copied index matched the
//! rows written exactly) or that took rows on evidence after its tree's.

use std::collections::{HashMap, HashSet};
use std::hash::Hasher;

use rusqlite::types::{Value as SqlValue, ValueRef as SqlRef};

use super::index_copy::{Mix, hash_value, plain_indexes, random_keys};
use super::loader::Loader;
use super::sink::Source;
use super::tally::{Lost, Tally};
use crate::error::Result;
use crate::schema::{Schema, Table, quote_ident};
use crate::snapshot::Snapshot;
use crate::tree::TreeCursor;
use sqlite_salvage_format::header::TextEncoding;
use sqlite_salvage_format::record::{Record, Value, ValueRef};

/// A table that can be checked: its position, its index's key columns and
/// the input's entries of that index, hashed with their rowid.
struct Checked {
    table: usize,
    cols: Vec<usize>,
    root: u32,
    listed: Option<HashSet<u64>>,
}

/// Moves the rows that another table's index claims (see the module doc).
pub(crate) fn cross_check(
    snap: &Snapshot,
    schema: &Schema,
    loader: &mut Loader,
    tally: &mut Tally,
) -> Result<()> {
    let mut tables = checkable(schema, snap.page_count());
    if tables.len() < 2 {
        return Ok(());
    }
    let key = random_keys().0;
    let enc = snap.header().encoding;
    let mut moves: Vec<(usize, usize, i64)> = Vec::new();
    for i in 0..tables.len() {
        let t = &schema.tables[tables[i].table];
        let shape = (t.columns.len(), t.rowid_alias);
        let partners: Vec<usize> = (0..tables.len())
            .filter(|&j| j != i)
            .filter(|&j| {
                let u = &schema.tables[tables[j].table];
                (u.columns.len(), u.rowid_alias) == shape
            })
            .collect();
        let copied = all_copied(schema, loader, t) && !tally.had_evidence_rows(tables[i].table);
        if partners.is_empty() || copied {
            continue;
        }
        let unlisted = unlisted_rows(snap, loader, &mut tables[i], t, key, enc)?;
        for (rowid, values) in unlisted {
            let mut owners = Vec::new();
            for &j in &partners {
                if lists(snap, &mut tables[j], key, enc, rowid, &values)? {
                    owners.push(tables[j].table);
                }
            }
            if let [u] = owners[..] {
                moves.push((tables[i].table, u, rowid));
            }
        }
    }
    apply_moves(schema, loader, tally, &moves)
}

/// The rowid tables with a plain index (a UNIQUE one first).
fn checkable(schema: &Schema, page_count: u32) -> Vec<Checked> {
    let mut out = Vec::new();
    for (ti, t) in schema.tables.iter().enumerate() {
        if t.without_rowid || t.name.to_ascii_lowercase().starts_with("sqlite_") {
            continue;
        }
        // The input's root of each (the output's does not matter here).
        let mut plain = plain_indexes(schema, t, page_count, |_| Some(0));
        let best = match plain.iter().position(|p| p.unique) {
            Some(i) => Some(plain.swap_remove(i)),
            None => plain.into_iter().next(),
        };
        if let Some(p) = best {
            let root = schema.indexes.get(p.index).map_or(0, |ix| ix.root);
            out.push(Checked {
                table: ti,
                cols: p.cols,
                root,
                listed: None,
            });
        }
    }
    out
}

/// Whether every plain index of `t` was copied whole (then its rows are
/// exactly the ones its index lists).
fn all_copied(schema: &Schema, loader: &Loader, t: &Table) -> bool {
    let mut any = false;
    for ix in schema
        .indexes
        .iter()
        .filter(|ix| ix.table.eq_ignore_ascii_case(&t.name))
    {
        if !loader.copied.contains(&ix.name) {
            return false;
        }
        any = true;
    }
    any
}

/// Text as UTF-8 bytes, numbers and blobs as they are: the output's values
/// and the input's, hashed alike.
fn hash_entry<'v>(key: u64, values: impl Iterator<Item = ValueRef<'v>>, rowid: i64) -> u64 {
    let mut h = Mix::new(key);
    for v in values {
        hash_value(&mut h, v);
    }
    h.write_i64(rowid);
    h.finish()
}

/// Reads the input's index of `c` into hashes of (key, rowid), once.
fn load_listed<'c>(
    snap: &Snapshot,
    c: &'c mut Checked,
    key: u64,
    enc: TextEncoding,
) -> Result<&'c HashSet<u64>> {
    if c.listed.is_none() {
        let mut set = HashSet::new();
        let mut cursor = TreeCursor::new(snap, c.root).lenient(true);
        let mut rec = Record::new();
        while let Some(e) = cursor.next()? {
            if rec.parse(e.payload).is_err() || rec.len() != c.cols.len() + 1 {
                continue;
            }
            let ValueRef::Integer(rowid) = rec.value(e.payload, c.cols.len()) else {
                continue;
            };
            let texts: Vec<Value> = (0..c.cols.len())
                .map(|k| rec.value(e.payload, k).to_owned(enc))
                .collect();
            set.insert(hash_entry(key, texts.iter().map(as_ref), rowid));
        }
        c.listed = Some(set);
    }
    Ok(c.listed.get_or_insert_with(HashSet::new))
}

fn as_ref(v: &Value) -> ValueRef<'_> {
    match v {
        Value::Null => ValueRef::Null,
        Value::Integer(i) => ValueRef::Integer(*i),
        Value::Real(f) => ValueRef::Real(*f),
        Value::Text(s) => ValueRef::Text(s.as_bytes()),
        Value::Blob(b) => ValueRef::Blob(b),
    }
}

fn from_sql(v: SqlRef<'_>) -> Value {
    match v {
        SqlRef::Null => Value::Null,
        SqlRef::Integer(i) => Value::Integer(i),
        SqlRef::Real(f) => Value::Real(f),
        SqlRef::Text(b) => Value::Text(String::from_utf8_lossy(b).into_owned()),
        SqlRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// The rows of `t` in the output that its index in the input does not
/// list: rowid and every column's value.
fn unlisted_rows(
    snap: &Snapshot,
    loader: &Loader,
    c: &mut Checked,
    t: &Table,
    key: u64,
    enc: TextEncoding,
) -> Result<Vec<(i64, Vec<Value>)>> {
    let Some(rid) = t.rowid_name() else {
        return Ok(Vec::new());
    };
    let cols: Vec<String> = t.columns.iter().map(|k| quote_ident(&k.name)).collect();
    let sql = format!(
        "SELECT {rid}, {} FROM {}",
        cols.join(", "),
        quote_ident(&t.name)
    );
    let ix_cols = c.cols.clone();
    let listed = load_listed(snap, c, key, enc)?;
    let mut out = Vec::new();
    let mut st = loader.sink.conn.prepare(&sql)?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let rowid: i64 = r.get(0)?;
        let values: Vec<Value> = (0..cols.len())
            .map(|k| r.get_ref(k + 1).map(from_sql))
            .collect::<rusqlite::Result<_>>()?;
        let h = hash_entry(
            key,
            ix_cols
                .iter()
                .map(|&k| values.get(k).map_or(ValueRef::Null, as_ref)),
            rowid,
        );
        if !listed.contains(&h) {
            out.push((rowid, values));
        }
    }
    Ok(out)
}

/// Whether the index of `c` lists a row of these values (by column
/// position) and rowid.
fn lists(
    snap: &Snapshot,
    c: &mut Checked,
    key: u64,
    enc: TextEncoding,
    rowid: i64,
    values: &[Value],
) -> Result<bool> {
    load_listed(snap, c, key, enc)?;
    let h = hash_entry(
        key,
        c.cols
            .iter()
            .map(|&k| values.get(k).map_or(ValueRef::Null, as_ref)),
        rowid,
    );
    Ok(c.listed.as_ref().is_some_and(|l| l.contains(&h)))
}

/// Takes every row to move out of its table first (two tables' misplaced
/// rows may share rowids), then puts each in its owner, or in
/// lost_and_found when its owner refuses it.
fn apply_moves(
    schema: &Schema,
    loader: &mut Loader,
    tally: &mut Tally,
    moves: &[(usize, usize, i64)],
) -> Result<()> {
    let conn = &loader.sink.conn;
    let mut taken: HashMap<(usize, i64), Vec<SqlValue>> = HashMap::new();
    for &(from, _, rowid) in moves {
        let t = &schema.tables[from];
        let Some(rid) = t.rowid_name() else { continue };
        let cols: Vec<String> = t.columns.iter().map(|k| quote_ident(&k.name)).collect();
        let name = quote_ident(&t.name);
        let sel = format!("SELECT {} FROM {name} WHERE {rid} = ?1", cols.join(", "));
        let values: Vec<SqlValue> = conn.query_row(&sel, [rowid], |r| {
            (0..cols.len()).map(|k| r.get(k)).collect()
        })?;
        conn.execute(&format!("DELETE FROM {name} WHERE {rid} = ?1"), [rowid])?;
        taken.insert((from, rowid), values);
    }
    for &(from, to, rowid) in moves {
        let Some(values) = taken.remove(&(from, rowid)) else {
            continue;
        };
        let u = &schema.tables[to];
        let (Some(rid), cols) = (u.rowid_name(), &u.columns) else {
            continue;
        };
        let names: Vec<String> = cols.iter().map(|k| quote_ident(&k.name)).collect();
        let marks: Vec<String> = (2..=names.len() + 1).map(|k| format!("?{k}")).collect();
        let sql = format!(
            "INSERT OR IGNORE INTO {}({rid}, {}) VALUES(?1, {})",
            quote_ident(&u.name),
            names.join(", "),
            marks.join(", ")
        );
        let mut params: Vec<SqlValue> = vec![SqlValue::Integer(rowid)];
        params.extend(values.iter().cloned());
        let n = loader
            .sink
            .conn
            .execute(&sql, rusqlite::params_from_iter(params.iter()))?;
        tally.cross_linked((from, rowid), to, n == 1);
        let (tname, uname) = (&schema.tables[from].name, &u.name);
        if n == 1 {
            let flag = format!(
                "found in {tname}'s tree; {uname}'s index lists it (the trees are cross-linked)"
            );
            tally.flag(to, Some(rowid), 0, || flag);
        } else {
            tally.lose(Lost {
                page: 0,
                cell: None,
                offset: None,
                source: Source::Tree,
                rowid: Some(rowid),
                values: values.into_iter().map(owned).collect(),
            });
        }
    }
    Ok(())
}

/// One row fewer from the table's own tree (or, failing that, the WAL).
fn owned(v: SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::Integer(i),
        SqlValue::Real(f) => Value::Real(f),
        SqlValue::Text(s) => Value::Text(s),
        SqlValue::Blob(b) => Value::Blob(b),
    }
}
