//! Deleted rows as JSON lines, without an output database (`dump
//! --deleted`).
//!
//! Takes an input database and recovery options; gives, for each table with
//! deleted rows found, one JSON object per row:
//! `{"table":..,"deleted":true,"rowid":..,"row":{column: value},"found":{"page":..,"offset":..,"source":..,"evidence":..}}`
//! (`rowid` only when it is known; values written as `dump --format jsonl`
//! writes them). The rows are exactly those `recover --deleted` writes into
//! `<table>__deleted`: the recovery runs into a temporary database in the
//! system's temporary directory (it takes about the space of the live
//! rows), removed when done and on a stop by signal.

use std::io::Write;
use std::path::Path;

use rusqlite::types::ValueRef as SqlRef;

use super::{RecoverOptions, Report, recover};
use crate::cleanup::Pending;
use crate::dump::write_json_value;
use crate::error::{Error, Result};
use crate::schema::quote_ident;
use sqlite_salvage_format::header::TextEncoding;
use sqlite_salvage_format::record::ValueRef;

/// The provenance columns every `__deleted` table ends with.
const FOUND: [&str; 5] = [
    "salvage_rowid",
    "salvage_page",
    "salvage_offset",
    "salvage_source",
    "salvage_evidence",
];

/// Writes the deleted rows of `input` (of `table` only, when given) to
/// `out` as JSON lines; gives the recovery's report and the lines written.
pub fn write_deleted_lines<W: Write>(
    input: &Path,
    opts: &RecoverOptions,
    table: Option<&str>,
    out: &mut W,
) -> Result<(Report, u64)> {
    let sys = std::env::temp_dir();
    let pending = Pending::for_output(&sys, Path::new("deleted"));
    let dir = tempfile::Builder::new()
        .prefix(pending.prefix())
        .suffix(".tmp")
        .tempdir_in(&sys)
        .map_err(|e| Error::output(&sys, e))?;
    let db = dir.path().join("deleted.db");
    let opts = RecoverOptions {
        deleted: true,
        no_sync: true,
        force: true,
        ..opts.clone()
    };
    let report = recover(input, &db, &opts)?;
    let conn = rusqlite::Connection::open_with_flags(
        &db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let mut lines = 0u64;
    let werr = |e: std::io::Error| Error::output("-", e);
    for d in &report.deleted {
        if table.is_some_and(|t| !t.eq_ignore_ascii_case(&d.table)) {
            continue;
        }
        let mut st = conn.prepare(&format!("SELECT * FROM {}", quote_ident(&d.name)))?;
        let names: Vec<String> = st.column_names().map(str::to_string).collect();
        let own = names.len().saturating_sub(FOUND.len());
        let labels: Vec<String> = names
            .iter()
            .map(|n| serde_json::to_string(n).unwrap_or_else(|_| "\"?\"".into()))
            .collect();
        let prefix = format!(
            "{{\"table\":{},\"deleted\":true",
            serde_json::to_string(&d.table).unwrap_or_else(|_| "\"?\"".into())
        );
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            out.write_all(prefix.as_bytes()).map_err(werr)?;
            if let SqlRef::Integer(rowid) = r.get_ref(own)? {
                write!(out, ",\"rowid\":{rowid}").map_err(werr)?;
            }
            out.write_all(b",\"row\":{").map_err(werr)?;
            for (i, label) in labels.iter().enumerate().take(own) {
                if i > 0 {
                    out.write_all(b",").map_err(werr)?;
                }
                write!(out, "{label}:").map_err(werr)?;
                write_value(out, r.get_ref(i)?).map_err(werr)?;
            }
            out.write_all(b"},\"found\":{").map_err(werr)?;
            for (k, name) in FOUND.iter().enumerate().skip(1) {
                if k > 1 {
                    out.write_all(b",").map_err(werr)?;
                }
                let key = name.trim_start_matches("salvage_");
                write!(out, "\"{key}\":").map_err(werr)?;
                write_value(out, r.get_ref(own + k)?).map_err(werr)?;
            }
            out.write_all(b"}}\n").map_err(werr)?;
            lines += 1;
        }
    }
    drop(conn);
    drop(dir);
    drop(pending);
    out.flush().map_err(werr)?;
    Ok((report, lines))
}

/// A value SQLite gave, written as `dump --format jsonl` writes one.
fn write_value<W: Write>(out: &mut W, v: SqlRef<'_>) -> std::io::Result<()> {
    let v = match v {
        SqlRef::Null => ValueRef::Null,
        SqlRef::Integer(i) => ValueRef::Integer(i),
        SqlRef::Real(f) => ValueRef::Real(f),
        SqlRef::Text(t) => ValueRef::Text(t),
        SqlRef::Blob(b) => ValueRef::Blob(b),
    };
    write_json_value(out, v, TextEncoding::Utf8)
}
