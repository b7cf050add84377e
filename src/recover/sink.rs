//! The fresh output database.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, Value as SqlValue};

use crate::error::Result;
use crate::format::header::TextEncoding;
use crate::format::record::{ValueRef, decode_text};
use crate::schema::{Schema, Table, quote_ident};

/// Where a recovered row came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// A page of the database file reached from the table's root.
    Tree,
    /// A page version from the WAL reached from the table's root.
    Wal,
    /// A leaf page nothing reachable points at any more.
    Orphan,
    /// A cell carved from a page whose header or cell pointers are damaged.
    Carved,
}

impl Source {
    /// Insertion priority: lower wins a key conflict.
    pub fn rank(self) -> i64 {
        match self {
            Source::Tree | Source::Wal => 0,
            Source::Orphan => 1,
            Source::Carved => 2,
        }
    }
}

pub(crate) struct Sink {
    pub conn: Connection,
    enc: TextEncoding,
    /// Per table: INSERT statement text, and whether it binds the rowid.
    inserts: HashMap<String, (String, bool, Vec<usize>)>,
}

fn to_sql(v: ValueRef<'_>, enc: TextEncoding) -> SqlValue {
    match v {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(i) => SqlValue::Integer(i),
        ValueRef::Real(f) => SqlValue::Real(f),
        ValueRef::Text(t) => SqlValue::Text(decode_text(t, enc).into_owned()),
        ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
    }
}

impl Sink {
    pub fn create(path: &Path, enc: TextEncoding, page_size: u32) -> Result<Sink> {
        let conn = Connection::open(path)?;
        conn.execute_batch(&format!(
            "PRAGMA page_size={page_size}; PRAGMA encoding='{}'; PRAGMA journal_mode=OFF;
             PRAGMA synchronous=OFF; PRAGMA foreign_keys=OFF; PRAGMA ignore_check_constraints=ON;
             PRAGMA temp_store=FILE; PRAGMA cache_size=-16384;",
            enc.name()
        ))?;
        conn.execute_batch(
            "CREATE TEMP TABLE salvage_rank(tbl TEXT, rid INTEGER, rank INTEGER, PRIMARY KEY(tbl, rid)) WITHOUT ROWID",
        )?;
        Ok(Sink {
            conn,
            enc,
            inserts: HashMap::new(),
        })
    }

    /// Creates every table of the schema that can be created; returns the
    /// names that could not be, with SQLite's reason.
    pub fn create_tables(&mut self, schema: &Schema) -> Vec<(String, String)> {
        let mut failed = Vec::new();
        for e in schema.of_kind("table") {
            let Some(sql) = &e.sql else { continue };
            let lower = e.name.to_ascii_lowercase();
            if lower.starts_with("sqlite_")
                || sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL")
            {
                continue;
            }
            if let Err(err) = self.conn.execute_batch(sql) {
                failed.push((e.name.clone(), err.to_string()));
            }
        }
        failed
    }

    fn insert_for(&mut self, t: &Table) -> (String, bool, Vec<usize>) {
        if let Some(x) = self.inserts.get(&t.name) {
            return x.clone();
        }
        let cols: Vec<usize> = (0..t.columns.len())
            .filter(|&i| !t.columns[i].generated)
            .collect();
        let with_rowid = !t.without_rowid && t.rowid_alias.is_none() && t.rowid_name().is_some();
        let mut names: Vec<String> = Vec::new();
        if with_rowid {
            names.extend(t.rowid_name().map(String::from));
        }
        names.extend(cols.iter().map(|&i| quote_ident(&t.columns[i].name)));
        let marks = vec!["?"; names.len()].join(",");
        let sql = format!(
            "INSERT OR IGNORE INTO {}({}) VALUES({marks})",
            quote_ident(&t.name),
            names.join(",")
        );
        let x = (sql, with_rowid, cols);
        self.inserts.insert(t.name.clone(), x.clone());
        x
    }

    /// Deletes the row with `rowid` from `t` (to replace a partial copy).
    pub fn delete_rowid(&mut self, t: &Table, rowid: i64) -> Result<()> {
        if let Some(r) = t.rowid_name() {
            self.conn
                .prepare_cached(&format!(
                    "DELETE FROM {} WHERE {r} = ?1",
                    quote_ident(&t.name)
                ))?
                .execute([rowid])?;
        }
        Ok(())
    }

    /// Inserts one row (values by declared column); false when a row with
    /// the same key (or another unique value) is already there.
    pub fn insert<'v>(
        &mut self,
        t: &Table,
        rowid: Option<i64>,
        value: &dyn Fn(usize) -> ValueRef<'v>,
        source: Source,
    ) -> Result<bool> {
        let (sql, with_rowid, cols) = self.insert_for(t);
        let mut params: Vec<SqlValue> = Vec::with_capacity(cols.len() + 1);
        if with_rowid {
            params.push(rowid.map_or(SqlValue::Null, SqlValue::Integer));
        }
        for &c in &cols {
            params.push(to_sql(value(c), self.enc));
        }
        let mut st = self.conn.prepare_cached(&sql)?;
        let n = st.execute(rusqlite::params_from_iter(params.iter().map(|v| {
            ToSqlOutput::Borrowed(match v {
                SqlValue::Null => rusqlite::types::ValueRef::Null,
                SqlValue::Integer(i) => rusqlite::types::ValueRef::Integer(*i),
                SqlValue::Real(f) => rusqlite::types::ValueRef::Real(*f),
                SqlValue::Text(s) => rusqlite::types::ValueRef::Text(s.as_bytes()),
                SqlValue::Blob(b) => rusqlite::types::ValueRef::Blob(b),
            })
        })))?;
        if n == 1 && source.rank() > 0 && !t.without_rowid {
            let rid = self.conn.last_insert_rowid();
            self.conn
                .prepare_cached("INSERT OR REPLACE INTO temp.salvage_rank VALUES(?1, ?2, ?3)")?
                .execute(rusqlite::params![t.name, rid, source.rank()])?;
        }
        Ok(n == 1)
    }
}
