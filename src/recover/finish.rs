//! Stage: finish, what the output needs once every row is in.
//!
//! Takes the loader and the tally's lost rows; gives the output with its
//! `lost_and_found` table (or, with no schema at all, rows grouped by
//! shape into `recovered_rows_<n>` / `recovered_keys_<n>` tables), the
//! remaining indexes (built by sorting, after the load), views and
//! triggers. SQLite's `quick_check` checks the bulk-written tables whose
//! rules only SQLite applies ([`super::rules`]), or with `check_output`
//! the whole file; a check that fails asks for a run without bulk loading.

use std::collections::BTreeMap;

use super::carve::values_fit;
use super::context::Attempt;
use super::loader::{Loader, create_objects};
use super::options::ProgressFn;
use super::sink::Sink;
use super::tally::Lost;
use crate::error::Result;
use crate::schema::{Schema, quote_ident};
use sqlite_salvage_format::record::Value;

/// What the finish stage made.
pub(crate) struct Finished {
    /// The lost-and-found table's name, when rows went there.
    pub lost_table: Option<String>,
    /// With no schema: the shape-named tables and their row counts.
    pub inferred: Vec<(String, u64)>,
    /// Indexes, views and triggers SQLite refused, with its reason.
    pub objects_not_created: Vec<(String, String)>,
}

/// Writes the lost rows, commits, creates the other indexes, views and
/// triggers, and has SQLite check what it must ([`super::rules`]; all of
/// it with `check_output`). With no schema, the lost rows go into
/// tables named by their shape; with a schema known to be partial
/// (`schema_partial`: part of `sqlite_schema` was unreadable), so do those
/// that fit none of its tables (their table's CREATE statement was lost),
/// the rest to lost_and_found.
pub(crate) fn finish(
    loader: &mut Loader,
    schema: &Schema,
    lost: &[Lost],
    (schema_partial, check_output): (bool, bool),
    mut objects_not_created: Vec<(String, String)>,
    progress: Option<&ProgressFn>,
) -> Result<std::result::Result<Finished, Attempt>> {
    let sink = &loader.sink;
    let (fit, unfit): (Vec<&Lost>, Vec<&Lost>) = if schema.tables.is_empty() {
        (Vec::new(), lost.iter().collect())
    } else if schema_partial {
        lost.iter()
            .partition(|l| schema.tables.iter().any(|t| values_fit(t, &l.values)))
    } else {
        (lost.iter().collect(), Vec::new())
    };
    let tick = |phase: &str, done: u64| ProgressFn::tick(progress, phase, done, 3);
    tick("finishing the output", 0);
    let lost_table = write_lost(sink, schema, &fit)?;
    let inferred = write_inferred(sink, &unfit)?;
    sink.conn.execute_batch("COMMIT")?;
    objects_not_created.extend(create_virtual_tables(sink, schema)?);
    tick("finishing the output", 1);
    let made = &loader.made_early;
    objects_not_created.extend(create_objects(sink, schema, &["index"], Some(false), made));
    let none = &Default::default();
    objects_not_created.extend(create_objects(
        sink,
        schema,
        &["view", "trigger"],
        None,
        none,
    ));
    tick("finishing the output", 2);
    let checks: Vec<String> = if check_output {
        vec!["PRAGMA quick_check".to_string()]
    } else {
        let judged = loader.judged_by_sqlite.iter();
        judged
            .map(|t| format!("PRAGMA quick_check({})", quote_ident(t)))
            .collect()
    };
    for check in checks {
        let ic: String = sink.conn.query_row(&check, [], |r| r.get(0))?;
        if ic != "ok" {
            return Ok(Err(Attempt::Retry(ic)));
        }
    }
    tick("finishing the output", 3);
    loader.join_early_sync();
    Ok(Ok(Finished {
        lost_table,
        inferred,
        objects_not_created,
    }))
}

/// Recreates the virtual tables (FTS, R-tree, ...) over their recovered
/// shadow tables, as SQLite's own recovery does: each one's row goes into
/// `sqlite_schema` as it was (root page 0), and stays only when a fresh
/// connection reads the schema and the table with it; one SQLite refuses is
/// taken out again and returned with its reason, never the end of the
/// recovery.
fn create_virtual_tables(sink: &Sink, schema: &Schema) -> Result<Vec<(String, String)>> {
    let mut refused = Vec::new();
    let mut made = 0;
    for e in schema.of_kind("table") {
        let Some(sql) = &e.sql else { continue };
        let head: String = sql.trim_start().chars().take(22).collect();
        if !head.to_ascii_uppercase().starts_with("CREATE VIRTUAL") {
            continue;
        }
        let edit = |q: &str| -> Result<()> {
            sink.conn.execute_batch("PRAGMA writable_schema=ON")?;
            let r = sink
                .conn
                .execute(q, rusqlite::params![e.name, e.tbl_name, sql]);
            sink.conn.execute_batch("PRAGMA writable_schema=OFF")?;
            r.map(|_| ()).map_err(Into::into)
        };
        edit(
            "INSERT INTO sqlite_schema(type, name, tbl_name, rootpage, sql) VALUES('table', ?1, ?2, 0, ?3)",
        )?;
        let check = rusqlite::Connection::open(sink.path()).and_then(|c| {
            c.query_row(
                &format!("SELECT count(*) FROM {}", quote_ident(&e.name)),
                [],
                |r| r.get::<_, i64>(0),
            )
        });
        match check {
            Ok(_) => made += 1,
            Err(why) => {
                edit(
                    "DELETE FROM sqlite_schema WHERE type = 'table' AND name = ?1 AND tbl_name = ?2 AND rootpage = 0 AND sql = ?3",
                )?;
                refused.push((e.name.clone(), why.to_string()));
            }
        }
    }
    if made > 0 {
        // This connection read the schema before: it reads it again.
        let v: i64 = sink
            .conn
            .query_row("PRAGMA schema_version", [], |r| r.get(0))?;
        sink.conn
            .execute_batch(&format!("PRAGMA schema_version = {}", v + 1))?;
    }
    Ok(refused)
}

/// With no schema: rows grouped by shape (table rows or index keys, and
/// the number of values) into `recovered_rows_<n>` / `recovered_keys_<n>`
/// tables: where each row was found, its rowid, then its values c0...
pub(crate) fn write_inferred(sink: &Sink, lost: &[&Lost]) -> Result<Vec<(String, u64)>> {
    let mut groups: BTreeMap<(bool, usize), Vec<&Lost>> = BTreeMap::new();
    for &l in lost {
        groups
            .entry((l.rowid.is_some(), l.values.len().min(MAX_KEPT_VALUES)))
            .or_default()
            .push(l);
    }
    let mut out = Vec::new();
    for ((rows, width), members) in groups {
        let name = format!("recovered_{}_{width}", if rows { "rows" } else { "keys" });
        let extra = value_columns(width);
        sink.conn.execute_batch(&format!(
            "CREATE TABLE {}(salvage_page INTEGER, salvage_cell INTEGER, salvage_rowid INTEGER{extra})",
            quote_ident(&name)
        ))?;
        let marks = vec!["?"; 3 + width].join(",");
        let mut st = sink.conn.prepare(&format!(
            "INSERT INTO {} VALUES({marks})",
            quote_ident(&name)
        ))?;
        for l in &members {
            let mut params: Vec<rusqlite::types::Value> = vec![
                rusqlite::types::Value::Integer(i64::from(l.page)),
                l.cell.map_or(rusqlite::types::Value::Null, |c| {
                    rusqlite::types::Value::Integer(i64::from(c))
                }),
                l.rowid.map_or(
                    rusqlite::types::Value::Null,
                    rusqlite::types::Value::Integer,
                ),
            ];
            params.extend(l.values.iter().take(width).map(sql_value));
            st.execute(rusqlite::params_from_iter(params))?;
        }
        out.push((name, members.len() as u64));
    }
    Ok(out)
}

/// Most values kept per row of lost_and_found and the shape tables: SQLite
/// allows 2000 columns, a few of which are the provenance columns.
const MAX_KEPT_VALUES: usize = 1990;

/// `, c0, c1, ...` for `width` value columns.
fn value_columns(width: usize) -> String {
    (0..width).map(|i| format!(", c{i}")).collect()
}

fn sql_value(v: &Value) -> rusqlite::types::Value {
    match v {
        Value::Null => rusqlite::types::Value::Null,
        Value::Integer(i) => rusqlite::types::Value::Integer(*i),
        Value::Real(f) => rusqlite::types::Value::Real(*f),
        Value::Text(t) => rusqlite::types::Value::Text(t.clone()),
        Value::Blob(b) => rusqlite::types::Value::Blob(b.clone()),
    }
}

pub(crate) fn write_lost(sink: &Sink, schema: &Schema, lost: &[&Lost]) -> Result<Option<String>> {
    if lost.is_empty() {
        return Ok(None);
    }
    let mut name = "lost_and_found".to_string();
    let mut k = 0;
    while schema.table(&name).is_some() {
        k += 1;
        name = format!("lost_and_found_{k}");
    }
    let width = lost
        .iter()
        .map(|l| l.values.len())
        .max()
        .unwrap_or(0)
        .min(MAX_KEPT_VALUES);
    let extra = value_columns(width);
    sink.conn.execute_batch(&format!(
        "CREATE TABLE {}(id INTEGER PRIMARY KEY, page INTEGER, cell INTEGER, offset INTEGER, source TEXT, rowid_found INTEGER, nfield INTEGER{extra})",
        quote_ident(&name)
    ))?;
    let marks = vec!["?"; 6 + width].join(",");
    let sql = format!(
        "INSERT INTO {}(page, cell, offset, source, rowid_found, nfield{extra}) VALUES({marks})",
        quote_ident(&name)
    );
    let mut st = sink.conn.prepare(&sql)?;
    for l in lost {
        let mut params: Vec<rusqlite::types::Value> = vec![
            rusqlite::types::Value::Integer(i64::from(l.page)),
            l.cell.map_or(rusqlite::types::Value::Null, |c| {
                rusqlite::types::Value::Integer(i64::from(c))
            }),
            l.offset.map_or(rusqlite::types::Value::Null, |o| {
                rusqlite::types::Value::Integer(o as i64)
            }),
            rusqlite::types::Value::Text(format!("{:?}", l.source).to_ascii_lowercase()),
            l.rowid.map_or(
                rusqlite::types::Value::Null,
                rusqlite::types::Value::Integer,
            ),
            rusqlite::types::Value::Integer(l.values.len() as i64),
        ];
        for i in 0..width {
            params.push(
                l.values
                    .get(i)
                    .map_or(rusqlite::types::Value::Null, sql_value),
            );
        }
        st.execute(rusqlite::params_from_iter(params))?;
    }
    Ok(Some(name))
}
