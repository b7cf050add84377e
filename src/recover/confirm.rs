//! Stage: confirmation, rows from pages that cannot vouch for them.
//!
//! Takes the [`Suspect`]s of the walk and the scan; gives each to its
//! table when an index of the table holds an entry with its rowid and the
//! same values in the indexed columns (an index covering every column
//! confirms the whole row), else to `lost_and_found`.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::index_copy::plain_indexes;
use super::loader::Loader;
use super::lookup::{Probe, index_lists};
use super::report::Evidence;
use super::sink::Insert;
use super::tally::Tally;
use super::walk::Suspect;
use crate::error::Result;
use crate::schema::{Affinity, Index, Schema, StoredValue, Table};
use crate::snapshot::Snapshot;
use crate::tree::TreeCursor;
use sqlite_salvage_format::record::{Record, ValueRef};

/// Writes the confirmed suspects to their tables, the rest to lost_and_found.
pub(crate) fn place_suspects(
    snap: &Snapshot,
    schema: &Schema,
    suspects: Vec<Suspect>,
    loader: &mut Loader,
    tally: &mut Tally,
) -> Result<()> {
    let mut confirmed = confirm(snap, schema, &suspects)?;
    let listed: Vec<bool> = suspects
        .iter()
        .zip(&confirmed)
        .map(|(s, &ok)| !ok && s.alone && listed_by_an_index(snap, schema, s))
        .collect();
    for (c, l) in confirmed.iter_mut().zip(&listed) {
        *c |= *l;
    }
    for ((sus, ok), by_key) in suspects.into_iter().zip(confirmed).zip(listed) {
        if !ok {
            tally.unconfirmed(sus.table, sus.into_lost());
            continue;
        }
        let t = &schema.tables[sus.table];
        let how = loader.insert_values(t, sus.rowid, &sus.values)?;
        let (table, rowid, page, source) = (sus.table, sus.rowid, sus.page, sus.source);
        if how != Insert::Written {
            tally.refused(table, how, || sus.into_lost());
            continue;
        }
        tally.evidence_row(table, source, Evidence::IndexEntry, false);
        let flag = || {
            if by_key {
                "from a damaged page; its cell stands on its own and an index lists its key and rowid"
            } else {
                "from a damaged page; confirmed by an index entry"
            }
            .to_string()
        };
        tally.flag(table, rowid, page, flag);
    }
    Ok(())
}

/// Whether a plain index of the suspect's (rowid) table lists its key
/// values and rowid in the input.
fn listed_by_an_index(snap: &Snapshot, schema: &Schema, s: &Suspect) -> bool {
    let (Some(t), Some(rowid)) = (schema.tables.get(s.table), s.rowid) else {
        return false;
    };
    if t.without_rowid {
        return false;
    }
    plain_indexes(schema, t, snap.page_count(), |_| Some(0))
        .iter()
        .any(|p| {
            let root = schema.indexes.get(p.index).map_or(0, |ix| ix.root);
            let key = p
                .cols
                .iter()
                .map(|&c| s.values.get(c).map_or(ValueRef::Null, StoredValue::as_ref));
            index_lists(snap, root, &Probe::of_values(key, rowid)) == Some(true)
        })
}

/// Indexes that can confirm whole rows of `t`: not partial, on plain
/// columns, covering every stored column (the rowid alias is the rowid).
fn confirming_indexes<'s>(schema: &'s Schema, t: &Table) -> Vec<&'s Index> {
    schema
        .indexes
        .iter()
        .filter(|i| {
            i.table == t.name
                && !i.partial
                && !i.columns.is_empty()
                && i.columns.iter().all(Option::is_some)
                && t.columns.iter().enumerate().all(|(c, col)| {
                    col.slot.is_none()
                        || col.generated
                        || t.rowid_alias == Some(c)
                        || i.columns.contains(&Some(c))
                })
        })
        .collect()
}

/// Whether each suspect row is confirmed: some index of its table holds an
/// entry with its rowid and the same values in the indexed columns.
fn confirm(snap: &Snapshot, schema: &Schema, suspects: &[Suspect]) -> Result<Vec<bool>> {
    let mut ok = vec![false; suspects.len()];
    let mut by_table: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, s) in suspects.iter().enumerate() {
        by_table.entry(s.table).or_default().push(i);
    }
    let mut rec = Record::new();
    for (ti, idxs) in by_table {
        let t = &schema.tables[ti];
        if t.without_rowid {
            continue;
        }
        let wanted: HashSet<i64> = idxs.iter().filter_map(|&i| suspects[i].rowid).collect();
        for index in confirming_indexes(schema, t) {
            if index.root == 0 || index.root > snap.page_count() {
                continue;
            }
            // rowid -> the index's key values for it.
            let mut found: HashMap<i64, Vec<Vec<StoredValue>>> = HashMap::new();
            let mut cur = TreeCursor::new(snap, index.root).lenient(true);
            while let Some(e) = cur.next()? {
                if rec.parse(e.payload).is_err() || rec.len() != index.columns.len() + 1 {
                    continue;
                }
                let ValueRef::Integer(rowid) = rec.value(e.payload, index.columns.len()) else {
                    continue;
                };
                if !wanted.contains(&rowid) {
                    continue;
                }
                let key = index
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(k, col)| {
                        let v = rec.value(e.payload, k);
                        let real = col
                            .and_then(|c| t.columns.get(c))
                            .is_some_and(|c| c.affinity == Affinity::Real);
                        match v {
                            ValueRef::Integer(x) if real => StoredValue::Real(x as f64),
                            v => StoredValue::from_ref(v),
                        }
                    })
                    .collect();
                found.entry(rowid).or_default().push(key);
            }
            for &i in &idxs {
                let s = &suspects[i];
                let Some(r) = s.rowid else { continue };
                let mine: Vec<StoredValue> = index
                    .columns
                    .iter()
                    .map(|c| {
                        c.and_then(|c| s.values.get(c).cloned())
                            .unwrap_or(StoredValue::Null)
                    })
                    .collect();
                if found.get(&r).is_some_and(|keys| keys.contains(&mine)) {
                    ok[i] = true;
                }
            }
        }
    }
    Ok(ok)
}
