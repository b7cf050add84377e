//! Writing rows as SQL, JSON lines or CSV.

use std::io::{self, Write};

use crate::error::{Error, Result};
use crate::rows::RowView;
use crate::schema::{Schema, Table, quote_ident};
use crate::snapshot::Snapshot;
use sqlite_salvage_format::header::TextEncoding;
use sqlite_salvage_format::record::{ValueRef, decode_text, text_is_valid};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// SQL statements that rebuild the database (schema, rows with their
    /// rowids, indexes, views, triggers).
    #[default]
    Sql,
    /// One JSON object per row: `{"table":..,"rowid":..,"row":{col: value}}`;
    /// blobs as `{"hex": ".."}`, infinite reals as `{"real": "Infinity"}`.
    Jsonl,
    /// Comma-separated values of one table, header first; NULL is empty,
    /// blobs are `X'..'` hex literals.
    Csv,
}

/// What to dump.
#[derive(Debug, Clone, Default)]
pub struct DumpOptions {
    /// Output format.
    pub format: Format,
    /// Only this table (required for CSV when there are several).
    pub table: Option<String>,
}

/// What a dump wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DumpStats {
    /// Tables written.
    pub tables: usize,
    /// Rows written.
    pub rows: u64,
}

fn werr(e: io::Error) -> Error {
    Error::output("-", e)
}

/// Writes the rows of `snap` (all user tables, or `opts.table`) to `out`.
pub fn dump<W: Write>(
    snap: &Snapshot,
    schema: &Schema,
    opts: &DumpOptions,
    out: &mut W,
) -> Result<DumpStats> {
    let tables: Vec<&Table> = match &opts.table {
        Some(name) => vec![schema.require(name)?],
        None => schema.tables.iter().collect(),
    };
    let enc = snap.header().encoding;
    let mut stats = DumpStats::default();
    match opts.format {
        Format::Sql => dump_sql(
            snap,
            schema,
            &tables,
            opts.table.is_some(),
            enc,
            out,
            &mut stats,
        )?,
        Format::Jsonl => {
            for t in tables {
                dump_jsonl(snap, t, enc, out, &mut stats)?;
            }
        }
        Format::Csv => {
            let user: Vec<&Table> = tables
                .into_iter()
                .filter(|t| opts.table.is_some() || !is_internal(&t.name))
                .collect();
            let [t] = user.as_slice() else {
                return Err(Error::OneTableNeeded(user.len()));
            };
            dump_csv(snap, t, enc, out, &mut stats)?;
        }
    }
    out.flush().map_err(werr)?;
    Ok(stats)
}

fn is_internal(name: &str) -> bool {
    name.to_ascii_lowercase().starts_with("sqlite_")
}

/// Writes a value as an SQL literal.
pub fn write_sql_value<W: Write>(
    out: &mut W,
    v: ValueRef<'_>,
    enc: TextEncoding,
) -> io::Result<()> {
    match v {
        ValueRef::Null => out.write_all(b"NULL"),
        ValueRef::Integer(i) => write!(out, "{i}"),
        ValueRef::Real(f) => write_real(out, f),
        ValueRef::Text(t) => {
            if t.contains(&0) || !text_is_valid(t, enc) {
                // Keep the exact stored bytes: CAST reads them in the
                // database's encoding.
                out.write_all(b"CAST(")?;
                write_hex_literal(out, t)?;
                return out.write_all(b" AS TEXT)");
            }
            let s = decode_text(t, enc);
            out.write_all(b"'")?;
            let mut rest: &str = &s;
            while let Some(p) = rest.find('\'') {
                out.write_all(&rest.as_bytes()[..=p])?;
                out.write_all(b"'")?;
                rest = &rest[p + 1..];
            }
            out.write_all(rest.as_bytes())?;
            out.write_all(b"'")
        }
        ValueRef::Blob(b) => write_hex_literal(out, b),
    }
}

fn write_real<W: Write>(out: &mut W, f: f64) -> io::Result<()> {
    if f.is_infinite() {
        out.write_all(if f > 0.0 { b"1e999" } else { b"-1e999" })
    } else {
        // Debug prints the shortest text that reads back to the same bits,
        // always with a '.' or an exponent, so SQL reads it as REAL.
        write!(out, "{f:?}")
    }
}

fn write_hex<W: Write>(out: &mut W, bytes: &[u8]) -> io::Result<()> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 512];
    for chunk in bytes.chunks(256) {
        for (i, b) in chunk.iter().enumerate() {
            buf[2 * i] = HEX[usize::from(b >> 4)];
            buf[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        out.write_all(&buf[..2 * chunk.len()])?;
    }
    Ok(())
}

fn write_hex_literal<W: Write>(out: &mut W, bytes: &[u8]) -> io::Result<()> {
    out.write_all(b"X'")?;
    write_hex(out, bytes)?;
    out.write_all(b"'")
}

fn dump_sql<W: Write>(
    snap: &Snapshot,
    schema: &Schema,
    tables: &[&Table],
    only: bool,
    enc: TextEncoding,
    out: &mut W,
    stats: &mut DumpStats,
) -> Result<()> {
    out.write_all(b"PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n")
        .map_err(werr)?;
    let wanted = |name: &str| tables.iter().any(|t| t.name.eq_ignore_ascii_case(name));
    let mut writable_schema = false;
    for e in schema.of_kind("table") {
        // Virtual tables (root 0) go with a whole dump only.
        let include = wanted(&e.tbl_name) || (e.rootpage == 0 && !only);
        if !include {
            continue;
        }
        let Some(sql) = &e.sql else { continue };
        if e.rootpage == 0 {
            // Virtual table: recorded in the schema without creating its
            // shadow tables again, as SQLite's own .dump does.
            if !writable_schema {
                out.write_all(b"PRAGMA writable_schema=ON;\n")
                    .map_err(werr)?;
                writable_schema = true;
            }
            writeln!(
                out,
                "INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql) VALUES('table',{},{},0,{});",
                sql_str(&e.name),
                sql_str(&e.tbl_name),
                sql_str(sql)
            )
            .map_err(werr)?;
            continue;
        }
        let lower = e.name.to_ascii_lowercase();
        if lower == "sqlite_sequence" {
            out.write_all(b"DELETE FROM sqlite_sequence;\n")
                .map_err(werr)?;
        } else if lower == "sqlite_stat1" {
            out.write_all(b"ANALYZE sqlite_schema;\n").map_err(werr)?;
        } else if lower.starts_with("sqlite_") {
            continue;
        } else {
            writeln!(out, "{sql};").map_err(werr)?;
        }
        let Some(t) = schema.table(&e.name) else {
            continue;
        };
        write_inserts(snap, t, enc, out, stats)?;
    }
    if writable_schema {
        out.write_all(b"PRAGMA writable_schema=OFF;\n")
            .map_err(werr)?;
    }
    for kind in ["index", "view", "trigger"] {
        for e in schema.of_kind(kind) {
            if only && !wanted(&e.tbl_name) {
                continue;
            }
            if let Some(sql) = &e.sql {
                writeln!(out, "{sql};").map_err(werr)?;
            }
        }
    }
    out.write_all(b"COMMIT;\n").map_err(werr)?;
    Ok(())
}

fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn write_inserts<W: Write>(
    snap: &Snapshot,
    t: &Table,
    enc: TextEncoding,
    out: &mut W,
    stats: &mut DumpStats,
) -> Result<()> {
    stats.tables += 1;
    // Column list: the rowid first (rowid tables without an alias), then
    // every stored, non-generated column.
    let cols: Vec<usize> = if t.parsed {
        (0..t.columns.len())
            .filter(|&i| !t.columns[i].generated)
            .collect()
    } else {
        Vec::new()
    };
    let keep_rowid = !t.without_rowid && t.rowid_alias.is_none();
    let mut prefix = format!("INSERT INTO {}", quote_ident(&t.name));
    if t.parsed {
        let mut names: Vec<String> = Vec::new();
        if keep_rowid {
            if let Some(r) = t.rowid_name() {
                names.push(r.to_string());
            }
        }
        names.extend(cols.iter().map(|&i| quote_ident(&t.columns[i].name)));
        prefix.push('(');
        prefix.push_str(&names.join(","));
        prefix.push(')');
    }
    prefix.push_str(" VALUES(");
    let with_rowid = t.parsed && keep_rowid && t.rowid_name().is_some();
    let mut rows = snap.rows(t);
    while let Some(row) = rows.next_row()? {
        out.write_all(prefix.as_bytes()).map_err(werr)?;
        let mut first = true;
        if with_rowid {
            if let Some(r) = row.rowid {
                write!(out, "{r}").map_err(werr)?;
                first = false;
            }
        }
        let unparsed: Vec<usize>;
        let which: &[usize] = if t.parsed {
            &cols
        } else {
            unparsed = (0..row.len()).collect();
            &unparsed
        };
        for &col in which {
            if !first {
                out.write_all(b",").map_err(werr)?;
            }
            first = false;
            write_sql_value(out, row.value(col), enc).map_err(werr)?;
        }
        out.write_all(b");\n").map_err(werr)?;
        stats.rows += 1;
    }
    Ok(())
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn column_labels(t: &Table, row: &RowView<'_>) -> Vec<String> {
    if t.parsed {
        t.columns.iter().map(|c| json_string(&c.name)).collect()
    } else {
        (0..row.len())
            .map(|i| json_string(&format!("c{i}")))
            .collect()
    }
}

fn dump_jsonl<W: Write>(
    snap: &Snapshot,
    t: &Table,
    enc: TextEncoding,
    out: &mut W,
    stats: &mut DumpStats,
) -> Result<()> {
    stats.tables += 1;
    let table_prefix = format!("{{\"table\":{}", json_string(&t.name));
    let mut labels: Vec<String> = Vec::new();
    let mut rows = snap.rows(t);
    while let Some(row) = rows.next_row()? {
        if labels.len() < row.len() {
            labels = column_labels(t, &row);
        }
        out.write_all(table_prefix.as_bytes()).map_err(werr)?;
        if let Some(r) = row.rowid {
            write!(out, ",\"rowid\":{r}").map_err(werr)?;
        }
        out.write_all(b",\"row\":{").map_err(werr)?;
        for (i, v) in row.values().enumerate() {
            if i > 0 {
                out.write_all(b",").map_err(werr)?;
            }
            out.write_all(labels.get(i).map_or("\"?\"", |s| s.as_str()).as_bytes())
                .map_err(werr)?;
            out.write_all(b":").map_err(werr)?;
            write_json_value(out, v, enc).map_err(werr)?;
        }
        out.write_all(b"}}\n").map_err(werr)?;
        stats.rows += 1;
    }
    Ok(())
}

/// Writes a value as JSON: null, number, string, `{"hex": ".."}` for blobs,
/// and `{"real": "Infinity"}` / `{"real": "-Infinity"}` for the infinite
/// reals JSON numbers cannot hold.
pub fn write_json_value<W: Write>(
    out: &mut W,
    v: ValueRef<'_>,
    enc: TextEncoding,
) -> io::Result<()> {
    match v {
        ValueRef::Null => out.write_all(b"null"),
        ValueRef::Integer(i) => write!(out, "{i}"),
        ValueRef::Real(f) if f.is_infinite() => out.write_all(if f > 0.0 {
            b"{\"real\":\"Infinity\"}"
        } else {
            b"{\"real\":\"-Infinity\"}"
        }),
        ValueRef::Real(f) => write!(out, "{f:?}"),
        ValueRef::Text(t) => {
            serde_json::to_writer(&mut *out, &*decode_text(t, enc)).map_err(io::Error::other)
        }
        ValueRef::Blob(b) => {
            out.write_all(b"{\"hex\":\"")?;
            write_hex(out, b)?;
            out.write_all(b"\"}")
        }
    }
}

fn csv_field<W: Write>(out: &mut W, s: &str) -> io::Result<()> {
    if s.contains([',', '"', '\n', '\r']) {
        out.write_all(b"\"")?;
        out.write_all(s.replace('"', "\"\"").as_bytes())?;
        out.write_all(b"\"")
    } else {
        out.write_all(s.as_bytes())
    }
}

fn dump_csv<W: Write>(
    snap: &Snapshot,
    t: &Table,
    enc: TextEncoding,
    out: &mut W,
    stats: &mut DumpStats,
) -> Result<()> {
    stats.tables += 1;
    let with_rowid = !t.without_rowid && t.rowid_alias.is_none();
    let mut header_written = false;
    let mut rows = snap.rows(t);
    while let Some(row) = rows.next_row()? {
        if !header_written {
            let mut names: Vec<String> = Vec::new();
            if with_rowid {
                names.push(t.rowid_name().unwrap_or("rowid").to_string());
            }
            if t.parsed {
                names.extend(t.columns.iter().map(|c| c.name.clone()));
            } else {
                names.extend((0..row.len()).map(|i| format!("c{i}")));
            }
            for (i, n) in names.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",").map_err(werr)?;
                }
                csv_field(out, n).map_err(werr)?;
            }
            out.write_all(b"\n").map_err(werr)?;
            header_written = true;
        }
        let mut first = true;
        if with_rowid {
            write!(out, "{}", row.rowid.unwrap_or_default()).map_err(werr)?;
            first = false;
        }
        for v in row.values() {
            if !first {
                out.write_all(b",").map_err(werr)?;
            }
            first = false;
            match v {
                ValueRef::Null => Ok(()),
                ValueRef::Integer(i) => write!(out, "{i}"),
                ValueRef::Real(f) => write_real(out, f),
                ValueRef::Text(tx) => csv_field(out, &decode_text(tx, enc)),
                ValueRef::Blob(b) => write_hex_literal(out, b),
            }
            .map_err(werr)?;
        }
        out.write_all(b"\n").map_err(werr)?;
        stats.rows += 1;
    }
    if !header_written && t.parsed {
        let names: Vec<&str> = t.column_names().collect();
        writeln!(out, "{}", names.join(",")).map_err(werr)?;
    }
    Ok(())
}
