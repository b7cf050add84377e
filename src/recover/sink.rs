//! The fresh output database.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, Value as SqlValue};

use crate::dump::write_sql_value;
use crate::error::Result;
use crate::schema::{Affinity, Column, Schema, Table, quote_ident};
use sqlite_salvage_format::header::TextEncoding;
use sqlite_salvage_format::record::{ValueRef, decode_text};

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

impl Source {}

pub(crate) struct Sink {
    pub conn: Connection,
    path: std::path::PathBuf,
    enc: TextEncoding,
    /// Per table: how its rows are inserted.
    plans: Vec<Plan>,
    index: HashMap<String, usize>,
    /// Stand-ins written, per table (each is a row of the flags table).
    pub stand_ins: HashMap<String, u64>,
    /// The table every stand-in is listed in (`salvage_flags`, or
    /// `salvage_flags_N` when the schema has one), once one is written.
    pub flags_table: Option<String>,
    /// Names the schema uses (the flags table must not be one).
    taken: Vec<String>,
}

/// What became of a row given to [`Sink::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Insert {
    /// It is in its table.
    Written,
    /// A row with its key came first (from a more trusted source).
    Duplicate,
    /// It breaks a UNIQUE constraint with another row (another key): it
    /// cannot be in its table, and must be kept elsewhere.
    Conflict,
    /// A STRICT table refuses a value's type: it must be kept elsewhere.
    WrongType,
}

/// What stands in for a NULL in NOT NULL column `c` (a value that could
/// not be read: the row's record was cut short, or the value was lost), so
/// that the output's constraint does not drop the row: the column's
/// DEFAULT, else the empty value of its type (0, 0.0, '' or x'').
fn stand_in(c: &Column, enc: TextEncoding) -> SqlValue {
    match c.default.as_ref() {
        ValueRef::Null => match c.affinity {
            Affinity::Integer | Affinity::Numeric => SqlValue::Integer(0),
            Affinity::Real => SqlValue::Real(0.0),
            Affinity::Text => SqlValue::Text(String::new()),
            Affinity::Blob => SqlValue::Blob(Vec::new()),
        },
        v => to_sql(v, enc),
    }
}

/// How a stand-in reads in the flags table: as an SQL literal.
fn describe(v: &SqlValue) -> String {
    let v = match v {
        SqlValue::Null => ValueRef::Null,
        SqlValue::Integer(i) => ValueRef::Integer(*i),
        SqlValue::Real(f) => ValueRef::Real(*f),
        SqlValue::Text(t) => ValueRef::Text(t.as_bytes()),
        SqlValue::Blob(b) => ValueRef::Blob(b),
    };
    let mut out = Vec::new();
    // Writing to memory cannot fail.
    let _ = write_sql_value(&mut out, v, TextEncoding::Utf8);
    String::from_utf8_lossy(&out).into_owned()
}

/// How rows of one table are inserted.
struct Plan {
    sql: String,
    with_rowid: bool,
    cols: Vec<usize>,
}

/// An owned SQLite value, text decoded from the database encoding.
pub(super) fn to_sql(v: ValueRef<'_>, enc: TextEncoding) -> SqlValue {
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
            "PRAGMA page_size={page_size}; PRAGMA encoding='{}';",
            enc.name()
        ))?;
        Self::configure(&conn)?;
        Ok(Sink {
            conn,
            path: path.to_path_buf(),
            enc,
            plans: Vec::new(),
            index: HashMap::new(),
            stand_ins: HashMap::new(),
            flags_table: None,
            taken: Vec::new(),
        })
    }

    /// Settings for a database only this process sees until it is renamed
    /// into place: no journal (a failed recovery is started over).
    fn configure(conn: &Connection) -> Result<()> {
        // One sorter thread and an 8 MB cache: memory that does not grow
        // with the output (each sorter thread holds a cache-sized buffer),
        // and no slower on two cores.
        conn.execute_batch(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA foreign_keys=OFF;
             PRAGMA ignore_check_constraints=ON; PRAGMA temp_store=FILE;
             PRAGMA cache_size=-8192; PRAGMA threads=1;",
        )?;
        Ok(())
    }

    /// The output file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the connection so that pages can be written to the file
    /// directly (see `bulk`); [`Sink::reopen`] opens it again.
    pub fn close(&mut self) -> Result<()> {
        let old = std::mem::replace(&mut self.conn, Connection::open_in_memory()?);
        old.close().map_err(|(_, e)| e)?;
        Ok(())
    }

    /// Opens the file again after [`Sink::close`].
    pub fn reopen(&mut self) -> Result<()> {
        let conn = Connection::open(&self.path)?;
        Self::configure(&conn)?;
        self.conn = conn;
        Ok(())
    }

    /// Creates every table of the schema that can be created; returns the
    /// names that could not be, with SQLite's reason.
    pub fn create_tables(&mut self, schema: &Schema) -> Vec<(String, String)> {
        self.taken = schema.entries.iter().map(|e| e.name.clone()).collect();
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

    fn plan(&mut self, t: &Table) -> usize {
        if let Some(&i) = self.index.get(&t.name) {
            return i;
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
        self.plans.push(Plan {
            sql,
            with_rowid,
            cols,
        });
        self.index.insert(t.name.clone(), self.plans.len() - 1);
        self.plans.len() - 1
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

    /// Inserts one row (values by declared column), unless a row with the
    /// same key is already there ([`Insert::Duplicate`]) or another row
    /// holds one of its UNIQUE values ([`Insert::Conflict`]).
    pub fn insert<'v>(
        &mut self,
        t: &Table,
        rowid: Option<i64>,
        value: &dyn Fn(usize) -> ValueRef<'v>,
    ) -> Result<Insert> {
        let p = self.plan(t);
        let plan = &self.plans[p];
        let enc = self.enc;
        // Values are bound borrowed; only UTF-16 text is converted.
        let mut params: Vec<ToSqlOutput<'_>> = Vec::with_capacity(plan.cols.len() + 1);
        if plan.with_rowid {
            params.push(ToSqlOutput::Owned(
                rowid.map_or(SqlValue::Null, SqlValue::Integer),
            ));
        }
        let mut stood_in = Vec::new();
        for &c in &plan.cols {
            params.push(match value(c) {
                ValueRef::Null if t.columns[c].notnull => {
                    let v = stand_in(&t.columns[c], enc);
                    stood_in.push((c, describe(&v)));
                    ToSqlOutput::Owned(v)
                }
                ValueRef::Null => ToSqlOutput::Owned(SqlValue::Null),
                ValueRef::Integer(i) => ToSqlOutput::Owned(SqlValue::Integer(i)),
                ValueRef::Real(f) => ToSqlOutput::Owned(SqlValue::Real(f)),
                ValueRef::Text(b)
                    if enc == TextEncoding::Utf8 && std::str::from_utf8(b).is_ok() =>
                {
                    ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Text(b))
                }
                v @ ValueRef::Text(_) => ToSqlOutput::Owned(to_sql(v, enc)),
                ValueRef::Blob(b) => ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Blob(b)),
            });
        }
        let mut st = self.conn.prepare_cached(&plan.sql)?;
        let n = match st.execute(rusqlite::params_from_iter(params.iter())) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_DATATYPE =>
            {
                return Ok(Insert::WrongType);
            }
            n => n?,
        };
        drop(st);
        if n == 1 && !stood_in.is_empty() {
            let rowid = if t.without_rowid { None } else { rowid };
            for (c, value) in stood_in {
                self.flag_value(
                    t,
                    rowid,
                    &t.columns[c].name,
                    &format!("stand-in {value} for a value that could not be read (NOT NULL)"),
                )?;
            }
            *self.stand_ins.entry(t.name.clone()).or_default() += 1;
        }
        if n == 1 {
            return Ok(Insert::Written);
        }
        self.refusal(t, rowid)
    }

    /// Why a row was refused: a row with its rowid is there (a duplicate),
    /// or none is and a UNIQUE value clashed. A WITHOUT ROWID table's rows
    /// are refused by their primary key: duplicates.
    fn refusal(&mut self, t: &Table, rowid: Option<i64>) -> Result<Insert> {
        let (Some(r), Some(name), false) = (rowid, t.rowid_name(), t.without_rowid) else {
            return Ok(Insert::Duplicate);
        };
        let there: i64 = self
            .conn
            .prepare_cached(&format!(
                "SELECT count(*) FROM {} WHERE {name} = ?1",
                quote_ident(&t.name)
            ))?
            .query_row([r], |row| row.get(0))?;
        Ok(if there > 0 {
            Insert::Duplicate
        } else {
            Insert::Conflict
        })
    }

    /// Column `col` of the row of `t` with `rowid`, as written so far;
    /// `None` when there is no such row.
    pub fn value_of(&self, t: &Table, rowid: i64, col: usize) -> Result<Option<SqlValue>> {
        let (Some(r), Some(c)) = (t.rowid_name(), t.columns.get(col)) else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {} FROM {} WHERE {r} = ?1",
            quote_ident(&c.name),
            quote_ident(&t.name)
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let mut rows = st.query([rowid])?;
        Ok(match rows.next()? {
            Some(row) => Some(row.get::<_, SqlValue>(0)?),
            None => None,
        })
    }

    /// Whether a written value and a value read from the file are the same
    /// (numbers compared as numbers, text decoded from the database's
    /// encoding).
    pub fn same(&self, written: &SqlValue, read: ValueRef<'_>) -> bool {
        match (written, to_sql(read, self.enc)) {
            (SqlValue::Integer(a), SqlValue::Real(b)) => *a as f64 == b,
            (SqlValue::Real(a), SqlValue::Integer(b)) => *a == b as f64,
            (a, b) => *a == b,
        }
    }

    /// Lists a value of a written row in the flags table (made on first
    /// use): the table, the row's rowid, the column and what is wrong.
    pub fn flag_value(
        &mut self,
        t: &Table,
        rowid: Option<i64>,
        column: &str,
        what: &str,
    ) -> Result<()> {
        let name = match &self.flags_table {
            Some(n) => n.clone(),
            None => {
                let mut name = "salvage_flags".to_string();
                let mut k = 0;
                while self.taken.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
                    k += 1;
                    name = format!("salvage_flags_{k}");
                }
                self.conn.execute_batch(&format!(
                    "CREATE TABLE {}(tbl TEXT, row INTEGER, col TEXT, what TEXT)",
                    quote_ident(&name)
                ))?;
                self.flags_table = Some(name.clone());
                name
            }
        };
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO {} VALUES(?1, ?2, ?3, ?4)",
                quote_ident(&name)
            ))?
            .execute(rusqlite::params![t.name, rowid, column, what])?;
        Ok(())
    }
}
