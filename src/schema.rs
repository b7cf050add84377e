//! The schema, read from `sqlite_schema` on page 1, and each table's
//! columns as SQLite itself parses its CREATE statement.
//!
//! Column names, declared types, defaults, the INTEGER PRIMARY KEY rowid
//! alias and the storage order of WITHOUT ROWID tables come from SQLite's
//! own parser: each CREATE TABLE is run in a private in-memory database and
//! described with `PRAGMA table_xinfo` / `index_xinfo`. That handles every
//! quirk (`INTEGER PRIMARY KEY DESC` is not an alias, generated columns,
//! quoted names) exactly as SQLite does.

use std::path::Path;

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::snapshot::{Database, Snapshot, WalChoice};
use crate::tree::{Damage, TreeCursor};
use sqlite_salvage_format::header::TextEncoding;
use sqlite_salvage_format::record::{Record, ValueRef, decode_text};

/// One row of `sqlite_schema`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SchemaEntry {
    /// "table", "index", "view" or "trigger".
    #[serde(rename = "type")]
    pub kind: String,
    /// Object name.
    pub name: String,
    /// Table the object belongs to.
    pub tbl_name: String,
    /// Root page (0 for views, triggers and virtual tables).
    pub rootpage: u32,
    /// The CREATE statement (None for automatic indexes).
    pub sql: Option<String>,
}

/// Column type affinity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Affinity {
    /// No conversion.
    Blob,
    /// Text.
    Text,
    /// Numeric.
    Numeric,
    /// Integer.
    Integer,
    /// Real: integral values may be stored as integers and read as reals.
    Real,
}

impl Affinity {
    /// SQLite's rules for the affinity of a declared type.
    pub fn of_declared_type(decl: &str) -> Affinity {
        let t = decl.to_ascii_uppercase();
        if t.contains("INT") {
            Affinity::Integer
        } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
            Affinity::Text
        } else if t.contains("BLOB") || t.trim().is_empty() {
            Affinity::Blob
        } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
            Affinity::Real
        } else {
            Affinity::Numeric
        }
    }
}

/// A value kept by the schema (a column default), with text stored in the
/// database encoding so it can be handed out as a [`ValueRef`].
#[derive(Debug, Clone, PartialEq)]
pub enum StoredValue {
    /// NULL.
    Null,
    /// Integer.
    Integer(i64),
    /// Real.
    Real(f64),
    /// Text, encoded as the database encodes text.
    Text(Vec<u8>),
    /// Blob.
    Blob(Vec<u8>),
}

impl StoredValue {
    /// An owned copy of a value, text kept in the database encoding.
    pub fn from_ref(v: ValueRef<'_>) -> Self {
        match v {
            ValueRef::Null => StoredValue::Null,
            ValueRef::Integer(i) => StoredValue::Integer(i),
            ValueRef::Real(f) => StoredValue::Real(f),
            ValueRef::Text(t) => StoredValue::Text(t.to_vec()),
            ValueRef::Blob(b) => StoredValue::Blob(b.to_vec()),
        }
    }

    /// A borrowed view.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            StoredValue::Null => ValueRef::Null,
            StoredValue::Integer(i) => ValueRef::Integer(*i),
            StoredValue::Real(f) => ValueRef::Real(*f),
            StoredValue::Text(t) => ValueRef::Text(t),
            StoredValue::Blob(b) => ValueRef::Blob(b),
        }
    }
}

pub use sqlite_salvage_format::record::encode_text;

/// One column of a table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Declared type, as written.
    pub decl_type: String,
    /// Affinity derived from the declared type.
    pub affinity: Affinity,
    /// Value read for rows stored before the column was added
    /// (`ALTER TABLE ADD COLUMN ... DEFAULT`), with affinity applied.
    #[serde(skip)]
    pub default: StoredValue,
    /// Position in the stored record, or None when not stored (VIRTUAL
    /// generated columns).
    pub slot: Option<usize>,
    /// Whether the column is generated (its value is computed).
    pub generated: bool,
    /// Position in the primary key (1-based), 0 when not part of it.
    pub pk: u32,
    /// Declared NOT NULL.
    pub notnull: bool,
}

/// A table with a b-tree.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Table {
    /// Name.
    pub name: String,
    /// Root page.
    pub root: u32,
    /// Columns in declared order.
    pub columns: Vec<Column>,
    /// Declared index of the INTEGER PRIMARY KEY column, the rowid alias.
    pub rowid_alias: Option<usize>,
    /// Whether the table is WITHOUT ROWID (stored as an index b-tree).
    pub without_rowid: bool,
    /// The CREATE TABLE statement.
    pub sql: String,
    /// Whether the column layout came from SQLite's parser (false when the
    /// statement could not be parsed and columns are numbered from the
    /// records instead).
    pub parsed: bool,
}

impl Table {
    /// Number of values a stored record of this table has.
    pub fn stored_columns(&self) -> usize {
        self.columns.iter().filter(|c| c.slot.is_some()).count()
    }

    /// Column names in declared order.
    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    /// The name to address the rowid by in SQL (rowid, _rowid_ or oid,
    /// whichever no column uses), if any.
    pub fn rowid_name(&self) -> Option<&'static str> {
        ["rowid", "_rowid_", "oid"]
            .into_iter()
            .find(|n| !self.columns.iter().any(|c| c.name.eq_ignore_ascii_case(n)))
    }
}

/// An index with a b-tree.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Index {
    /// Name.
    pub name: String,
    /// The table it indexes.
    pub table: String,
    /// Root page.
    pub root: u32,
    /// For each key column: the table column it holds (declared index), or
    /// None for an expression.
    pub columns: Vec<Option<usize>>,
    /// A partial index (WHERE clause): a row may be absent from it.
    pub partial: bool,
}

/// The schema of a snapshot.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Schema {
    /// Every row of `sqlite_schema`, in stored order.
    pub entries: Vec<SchemaEntry>,
    /// Tables with b-trees, in schema order (including internal ones such
    /// as `sqlite_sequence`, excluding `sqlite_schema` itself).
    pub tables: Vec<Table>,
    /// Indexes of rowid tables with b-trees, as SQLite parses them.
    pub indexes: Vec<Index>,
}

impl Schema {
    /// The table called `name` (case-insensitive, as SQL names are).
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// Like [`Schema::table`], with an error naming the table.
    pub fn require(&self, name: &str) -> Result<&Table> {
        self.table(name)
            .ok_or_else(|| Error::NoSuchTable(name.to_string()))
    }

    /// Entries of one kind ("index", "view", "trigger", "table").
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a SchemaEntry> + 'a {
        self.entries.iter().filter(move |e| e.kind == kind)
    }

    /// Reads the schema of `snap`.
    pub fn read(snap: &Snapshot) -> Result<Schema> {
        let (entries, _) = read_entries(snap, false)?;
        Self::from_entries(entries, snap.header().encoding)
    }

    /// Reads what can be read of the schema of a damaged `snap`, with the
    /// damage met on the way.
    pub fn read_lenient(snap: &Snapshot) -> Result<(Schema, Vec<Damage>)> {
        let (entries, damage) = read_entries(snap, true)?;
        Ok((Self::from_entries(entries, snap.header().encoding)?, damage))
    }

    /// Builds the schema from `sqlite_schema` rows.
    pub fn from_entries(entries: Vec<SchemaEntry>, enc: TextEncoding) -> Result<Schema> {
        let conn = Connection::open_in_memory()?;
        let mut tables = Vec::new();
        for e in &entries {
            if e.kind != "table" || e.rootpage == 0 {
                continue;
            }
            let Some(sql) = &e.sql else { continue };
            tables.push(describe_table(&conn, &e.name, e.rootpage, sql, enc));
        }
        let indexes = describe_indexes(&entries, &tables);
        Ok(Schema {
            entries,
            tables,
            indexes,
        })
    }

    /// Builds a schema from an application's own CREATE statements, for a
    /// database whose `sqlite_schema` is lost. Root pages are unknown (0).
    pub fn from_sql(sql: &str, enc: TextEncoding) -> Result<Schema> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(sql)?;
        let mut entries = Vec::new();
        let mut st = conn.prepare(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY rowid",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            entries.push(SchemaEntry {
                kind: r.get(0)?,
                name: r.get(1)?,
                tbl_name: r.get(2)?,
                rootpage: 0,
                sql: r.get(3)?,
            });
        }
        drop(rows);
        drop(st);
        let probe = Connection::open_in_memory()?;
        let mut tables = Vec::new();
        for e in &entries {
            if e.kind != "table" || e.name.starts_with("sqlite_") {
                continue;
            }
            if let Some(sql) = &e.sql {
                if !sql.to_ascii_uppercase().contains("VIRTUAL") {
                    tables.push(describe_table(&probe, &e.name, 0, sql, enc));
                }
            }
        }
        Ok(Schema {
            entries,
            tables,
            indexes: Vec::new(),
        })
    }
}

/// The table `sqlite_schema` itself.
pub fn schema_table() -> Table {
    let col = |name: &str, decl: &str, slot| Column {
        name: name.into(),
        decl_type: decl.into(),
        affinity: Affinity::of_declared_type(decl),
        default: StoredValue::Null,
        slot: Some(slot),
        generated: false,
        pk: 0,
        notnull: false,
    };
    Table {
        name: "sqlite_schema".into(),
        root: 1,
        columns: vec![
            col("type", "text", 0),
            col("name", "text", 1),
            col("tbl_name", "text", 2),
            col("rootpage", "int", 3),
            col("sql", "text", 4),
        ],
        rowid_alias: None,
        without_rowid: false,
        sql: "CREATE TABLE sqlite_schema(type text,name text,tbl_name text,rootpage int,sql text)"
            .into(),
        parsed: true,
    }
}

fn read_entries(snap: &Snapshot, lenient: bool) -> Result<(Vec<SchemaEntry>, Vec<Damage>)> {
    let enc = snap.header().encoding;
    let mut cursor = TreeCursor::new(snap, 1).lenient(lenient);
    let mut rec = Record::new();
    let mut out = Vec::new();
    let mut damage = Vec::new();
    while let Some(e) = cursor.next()? {
        if e.rowid.is_none() {
            return Err(Error::corrupt(1, "sqlite_schema is not a table b-tree"));
        }
        if let Err(m) = rec.parse(e.payload) {
            if lenient {
                damage.push(Damage {
                    page: e.at.page,
                    cell: Some(e.at.cell),
                    what: format!("sqlite_schema record: {m}"),
                });
                continue;
            }
            return Err(Error::corrupt(
                e.at.page,
                format!("sqlite_schema cell {}: {m}", e.at.cell),
            ));
        }
        let text = |i: usize| match rec.value(e.payload, i) {
            ValueRef::Text(t) => Some(decode_text(t, enc).into_owned()),
            _ => None,
        };
        let rootpage = match rec.value(e.payload, 3) {
            ValueRef::Integer(i) => u32::try_from(i).unwrap_or(0),
            _ => 0,
        };
        out.push(SchemaEntry {
            kind: text(0).unwrap_or_default(),
            name: text(1).unwrap_or_default(),
            tbl_name: text(2).unwrap_or_default(),
            rootpage,
            sql: text(4),
        });
    }
    damage.extend(cursor.damage().iter().cloned());
    Ok((out, damage))
}

/// Quotes an identifier for SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Describes one table with SQLite's parser; falls back to an unparsed
/// description (columns named from the records) when SQLite refuses it.
fn describe_table(conn: &Connection, name: &str, root: u32, sql: &str, enc: TextEncoding) -> Table {
    match try_describe(conn, name, sql, enc) {
        Ok((columns, rowid_alias, without_rowid)) => Table {
            name: name.to_string(),
            root,
            columns,
            rowid_alias,
            without_rowid,
            sql: sql.to_string(),
            parsed: true,
        },
        Err(_) => Table {
            name: name.to_string(),
            root,
            columns: Vec::new(),
            rowid_alias: None,
            without_rowid: sql.to_ascii_uppercase().contains("WITHOUT ROWID"),
            sql: sql.to_string(),
            parsed: false,
        },
    }
}

type Described = (Vec<Column>, Option<usize>, bool);

fn try_describe(conn: &Connection, name: &str, sql: &str, enc: TextEncoding) -> Result<Described> {
    // Internal tables (sqlite_sequence, sqlite_stat1, ...) cannot be created
    // under their own names; create them under a stand-in.
    let (probe, create) = if name.to_ascii_lowercase().starts_with("sqlite_") {
        let probe = "salvage_internal_probe";
        let pos = sql
            .find(name)
            .ok_or_else(|| Error::corrupt(1, "internal table name not in its SQL"))?;
        let mut s = sql.to_string();
        s.replace_range(pos..pos + name.len(), probe);
        (probe.to_string(), s)
    } else {
        (name.to_string(), sql.to_string())
    };
    let q = quote_ident(&probe);
    conn.execute_batch(&format!("DROP TABLE IF EXISTS {q}"))?;
    conn.execute_batch(&create)?;
    let result = describe_created(conn, &probe, enc);
    conn.execute_batch(&format!("DROP TABLE IF EXISTS {q}"))?;
    result
}

fn describe_created(conn: &Connection, probe: &str, enc: TextEncoding) -> Result<Described> {
    let q = quote_ident(probe);
    let without_rowid: bool = conn
        .prepare("SELECT wr FROM pragma_table_list WHERE schema='main' AND name=?1")?
        .query_row([probe], |r| r.get::<_, i64>(0))
        .map(|wr| wr != 0)?;
    struct Info {
        name: String,
        decl: String,
        dflt: Option<String>,
        pk: u32,
        hidden: i64,
        notnull: bool,
    }
    let mut infos = Vec::new();
    {
        let mut st = conn.prepare(&format!("PRAGMA table_xinfo({q})"))?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            infos.push(Info {
                name: r.get(1)?,
                decl: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                dflt: r.get(4)?,
                pk: u32::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
                hidden: r.get(6)?,
                notnull: r.get::<_, i64>(3)? != 0,
            });
        }
    }
    // The index SQLite made for the PRIMARY KEY, if any.
    let pk_index: Option<String> = {
        let mut st = conn.prepare(&format!("PRAGMA index_list({q})"))?;
        let mut rows = st.query([])?;
        let mut found = None;
        while let Some(r) = rows.next()? {
            if r.get::<_, String>(3)? == "pk" {
                found = Some(r.get(1)?);
            }
        }
        found
    };
    let pk_cols: Vec<usize> = (0..infos.len()).filter(|&i| infos[i].pk > 0).collect();
    let rowid_alias = if !without_rowid && pk_cols.len() == 1 && pk_index.is_none() {
        Some(pk_cols[0])
    } else {
        None
    };
    // Storage order: declared order less VIRTUAL columns for rowid tables;
    // the primary-key index's column order for WITHOUT ROWID tables.
    let mut slots: Vec<Option<usize>> = vec![None; infos.len()];
    if without_rowid {
        let idx = pk_index.ok_or_else(|| Error::corrupt(1, "WITHOUT ROWID table has no key"))?;
        let mut st = conn.prepare(&format!("PRAGMA index_xinfo({})", quote_ident(&idx)))?;
        let mut rows = st.query([])?;
        let mut slot = 0;
        while let Some(r) = rows.next()? {
            let cid: i64 = r.get(1)?;
            if let Some(s) = usize::try_from(cid).ok().and_then(|c| slots.get_mut(c)) {
                *s = Some(slot);
                slot += 1;
            }
        }
    } else {
        let mut slot = 0;
        for (i, info) in infos.iter().enumerate() {
            if info.hidden != 2 {
                slots[i] = Some(slot);
                slot += 1;
            }
        }
    }
    let mut columns = Vec::with_capacity(infos.len());
    for (i, info) in infos.into_iter().enumerate() {
        let affinity = Affinity::of_declared_type(&info.decl);
        let default = match &info.dflt {
            Some(expr) if info.hidden == 0 => eval_default(conn, expr, &info.decl, enc)?,
            _ => StoredValue::Null,
        };
        columns.push(Column {
            name: info.name,
            decl_type: info.decl,
            affinity,
            default,
            slot: slots[i],
            generated: info.hidden == 2 || info.hidden == 3,
            pk: info.pk,
            notnull: info.notnull,
        });
    }
    Ok((columns, rowid_alias, without_rowid))
}

/// The value SQLite reads for a column added later with this default:
/// the expression evaluated and given the column's affinity.
fn eval_default(
    conn: &Connection,
    expr: &str,
    decl: &str,
    enc: TextEncoding,
) -> Result<StoredValue> {
    conn.execute_batch(&format!(
        "DROP TABLE IF EXISTS temp.salvage_default; CREATE TEMP TABLE salvage_default(v {decl});"
    ))
    .or_else(|_| conn.execute_batch("CREATE TEMP TABLE salvage_default(v)"))?;
    let res = conn
        .execute_batch(&format!(
            "INSERT INTO temp.salvage_default VALUES(({expr}))"
        ))
        .and_then(|_| {
            conn.query_row("SELECT v FROM temp.salvage_default", [], |r| {
                Ok(match r.get_ref(0)? {
                    rusqlite::types::ValueRef::Null => StoredValue::Null,
                    rusqlite::types::ValueRef::Integer(i) => StoredValue::Integer(i),
                    rusqlite::types::ValueRef::Real(f) => StoredValue::Real(f),
                    rusqlite::types::ValueRef::Text(t) => {
                        StoredValue::Text(encode_text(&String::from_utf8_lossy(t), enc))
                    }
                    rusqlite::types::ValueRef::Blob(b) => StoredValue::Blob(b.to_vec()),
                })
            })
        });
    conn.execute_batch("DROP TABLE IF EXISTS temp.salvage_default")?;
    // A default SQLite cannot evaluate here (it could not have stored one
    // either) reads as NULL.
    Ok(res.unwrap_or(StoredValue::Null))
}

/// Describes the indexes of rowid tables: which table column each key
/// column holds. Indexes SQLite cannot create here are left out.
fn describe_indexes(entries: &[SchemaEntry], tables: &[Table]) -> Vec<Index> {
    let Ok(conn) = Connection::open_in_memory() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tables
        .iter()
        .filter(|t| t.parsed && !t.without_rowid && !t.name.starts_with("sqlite_"))
    {
        if conn.execute_batch(&t.sql).is_err() {
            continue;
        }
        for e in entries.iter().filter(|e| {
            e.kind == "index" && e.rootpage > 0 && e.tbl_name.eq_ignore_ascii_case(&t.name)
        }) {
            // Automatic indexes (UNIQUE, PRIMARY KEY) have no SQL: creating
            // the table made them under the same name.
            if let Some(sql) = &e.sql {
                if conn.execute_batch(sql).is_err() {
                    continue;
                }
            }
            let cols: Result<Vec<Option<usize>>> = (|| {
                let mut st =
                    conn.prepare(&format!("PRAGMA index_xinfo({})", quote_ident(&e.name)))?;
                let mut rows = st.query([])?;
                let mut cols = Vec::new();
                while let Some(r) = rows.next()? {
                    if r.get::<_, i64>(5)? == 1 {
                        cols.push(usize::try_from(r.get::<_, i64>(1)?).ok());
                    }
                }
                Ok(cols)
            })();
            if let Ok(columns) = cols {
                out.push(Index {
                    name: e.name.clone(),
                    table: t.name.clone(),
                    root: e.rootpage,
                    columns,
                    partial: e
                        .sql
                        .as_deref()
                        .is_some_and(|sql| sql.to_ascii_uppercase().contains(" WHERE ")),
                });
            }
        }
    }
    out
}
/// Opening for salvage, which needs the schema reader.
impl Database {
    /// Opens a possibly damaged database for salvage: a header that does
    /// not parse (page 1 zeroed or torn) is tolerated, the page size then
    /// coming from the WAL or from the shape of the file's pages; a WAL that
    /// does not belong to the database (by its layout, or by a schema with
    /// none of the file's tables) is set aside (see
    /// [`Database::wal_rejected`]) instead of failing the open.
    pub fn open_salvage(path: impl AsRef<Path>, wal: WalChoice) -> Result<Self> {
        let mut db = Database::open_lenient(path.as_ref(), wal)?;
        if db.wal_rejected().is_none() {
            if let Err(e) = db.check_schema_continuity() {
                db.set_wal_aside(e.to_string());
            }
        }
        Ok(db)
    }

    /// Rejects a WAL after which none of the database file's tables exist
    /// any more and whose schema cookie did not move forward: a WAL of
    /// another database. (A migration that drops every table and creates
    /// new ones in the WAL bumps the cookie and is kept.)
    fn check_schema_continuity(&self) -> Result<()> {
        if self.wal().is_none() || self.file_header().is_none() {
            return Ok(());
        }
        let user = |s: &Schema| -> Vec<String> {
            s.tables
                .iter()
                .filter(|t| !t.name.to_ascii_lowercase().starts_with("sqlite_"))
                .map(|t| t.name.to_ascii_lowercase())
                .collect()
        };
        let Ok(s0) = self.snapshot(Some(0)) else {
            return Ok(());
        };
        let Ok(before) = Schema::read(&s0) else {
            return Ok(());
        };
        let Ok(sn) = self.snapshot(None) else {
            return Ok(());
        };
        let Ok((after, _)) = Schema::read_lenient(&sn) else {
            return Ok(());
        };
        let cookie_forward = sn.header().raw.schema_cookie > s0.header().raw.schema_cookie;
        let (b, a) = (user(&before), user(&after));
        if !cookie_forward && !b.is_empty() && !a.is_empty() && !b.iter().any(|n| a.contains(n)) {
            return Err(Error::BadWal {
                path: self.wal().map(|w| w.path.clone()).unwrap_or_default(),
                reason: "after it, none of the database's tables exist: it is another database's"
                    .into(),
            });
        }
        Ok(())
    }
}
