//! Older versions of rows, kept on request in `<table>__history` tables.

use std::collections::{BTreeMap, HashSet};

use super::carve::fits;
use super::pagemap::PageMap;
use super::sink::{Sink, to_sql};
use crate::error::Result;
use crate::rows::column_value;
use crate::schema::{Schema, Table, quote_ident};
use crate::snapshot::Salvage;
use sqlite_salvage_format::page::{BtreePage, PageKind};
use sqlite_salvage_format::record::Record;

/// Writes older versions of rows into `<table>__history` tables: rows on
/// older versions of pages the table owns now, unless identical to the
/// recovered row. Returns (history table, rows kept).
pub(super) fn write_history(
    salvage: &Salvage,
    schema: &Schema,
    map: &PageMap,
    sink: &Sink,
    not_created: &HashSet<String>,
) -> Result<Vec<(String, u64)>> {
    let snap = &salvage.snapshot;
    let enc = snap.header().encoding;
    let usable = snap.usable_size();
    let mut buf = vec![0u8; snap.page_size() as usize];
    let mut rec = Record::new();
    // Per table: its history table, insert statement and value columns.
    let mut made: BTreeMap<usize, (String, String, Vec<usize>)> = BTreeMap::new();
    for pgno in salvage.pages_with_older_versions() {
        // A table's page, read whole or (damaged) in part.
        let Some(ti) = map.table_of(pgno) else {
            continue;
        };
        let Some(t) = schema.tables.get(ti) else {
            continue;
        };
        if t.without_rowid || !t.parsed || not_created.contains(&t.name) {
            continue;
        }
        let mut versions: Vec<(String, bool, u64)> = Vec::new();
        if snap.wal_offset(pgno).is_some() {
            versions.push(("database file".into(), true, 0));
        }
        for off in salvage.older_versions(pgno) {
            versions.push((format!("WAL offset {off}"), false, *off));
        }
        for (label, from_file, off) in versions {
            let ok = if from_file {
                salvage.read_file_page(pgno, &mut buf).is_ok()
            } else {
                salvage.read_version(off, &mut buf).is_ok()
            };
            if !ok {
                continue;
            }
            let Ok(p) = BtreePage::parse(&buf, pgno, usable) else {
                continue;
            };
            if p.kind != PageKind::TableLeaf || !p.is_consistent() {
                continue;
            }
            for i in 0..p.cell_count {
                let Ok(sqlite_salvage_format::cell::Cell::TableLeaf { rowid, payload }) = p.cell(i)
                else {
                    continue;
                };
                // Older chains may be reused since: whole local records only.
                if payload.spills()
                    || rec.parse(payload.local).is_err()
                    || !fits(t, &rec, payload.local)
                {
                    continue;
                }
                let (_, sql, cols) = match made.entry(ti) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(history_insert(sink, schema, t)?)
                    }
                };
                let mut params: Vec<rusqlite::types::Value> = vec![
                    rusqlite::types::Value::Integer(rowid),
                    rusqlite::types::Value::Text(label.clone()),
                    rusqlite::types::Value::Integer(i64::from(pgno)),
                ];
                params.extend(
                    cols.iter().map(|&c| {
                        to_sql(column_value(t, &rec, payload.local, Some(rowid), c), enc)
                    }),
                );
                sink.conn
                    .prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(params))?;
            }
        }
    }
    // Keep only versions that differ from the recovered row, once each.
    let mut out = Vec::new();
    for (ti, (name, _, _)) in made {
        let t = &schema.tables[ti];
        let Some(rid) = t.rowid_name() else { continue };
        let cols: Vec<String> = t
            .columns
            .iter()
            .filter(|c| !c.generated)
            .map(|c| quote_ident(&c.name))
            .collect();
        let same = cols
            .iter()
            .map(|c| format!("h.{c} IS t.{c}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let h = quote_ident(&name);
        sink.conn.execute_batch(&format!(
            "DELETE FROM {h} AS h WHERE EXISTS (SELECT 1 FROM {t} AS t WHERE t.{rid} = h.salvage_rowid AND {same});
             DELETE FROM {h} WHERE rowid NOT IN (SELECT min(rowid) FROM {h} GROUP BY salvage_rowid, {all});",
            t = quote_ident(&t.name),
            all = cols.join(", ")
        ))?;
        let n: i64 = sink
            .conn
            .query_row(&format!("SELECT count(*) FROM {h}"), [], |r| r.get(0))?;
        if n == 0 {
            sink.conn.execute_batch(&format!("DROP TABLE {h}"))?;
        } else {
            out.push((name, n as u64));
        }
    }
    Ok(out)
}

/// Creates `<table>__history`: the table's columns (declared types, no
/// constraints) after the rowid, source and page of each older version.
/// Returns its name, the statement inserting a version, and the table's
/// columns that statement takes.
fn history_insert(sink: &Sink, schema: &Schema, t: &Table) -> Result<(String, String, Vec<usize>)> {
    let mut name = format!("{}__history", t.name);
    let mut k = 0;
    while schema.table(&name).is_some() {
        k += 1;
        name = format!("{}__history{k}", t.name);
    }
    let cols: Vec<usize> = (0..t.columns.len())
        .filter(|&c| !t.columns[c].generated)
        .collect();
    let decls: Vec<String> = cols
        .iter()
        .map(|&c| {
            format!(
                "{} {}",
                quote_ident(&t.columns[c].name),
                t.columns[c].decl_type
            )
        })
        .collect();
    let names: Vec<String> = cols
        .iter()
        .map(|&c| quote_ident(&t.columns[c].name))
        .collect();
    sink.conn.execute_batch(&format!(
        "CREATE TABLE {}(salvage_rowid INTEGER, salvage_source TEXT, salvage_page INTEGER, {})",
        quote_ident(&name),
        decls.join(", ")
    ))?;
    let sql = format!(
        "INSERT INTO {}(salvage_rowid, salvage_source, salvage_page, {}) VALUES({})",
        quote_ident(&name),
        names.join(","),
        vec!["?"; cols.len() + 3].join(",")
    );
    Ok((name, sql, cols))
}
