//! Stage: the schema sources, the CREATE statements recovery works from.
//!
//! Takes the salvage snapshot and the options; gives a [`FoundSchema`]:
//! the first source that reads, in order: page 1 (when the header is its
//! own), older versions of page 1 (superseded WAL frames, then the database
//! file's), `sqlite_schema` rows found on any page, `--schema`; else an
//! empty schema and the damage that says so.

use std::collections::BTreeMap;

use super::options::RecoverOptions;
use crate::schema::{Schema, SchemaEntry};
use crate::snapshot::{Database, HeaderSource, Salvage, Snapshot};
use crate::tree::Damage;
use sqlite_salvage_format::kind::PageKind;
use sqlite_salvage_format::page::BtreePage;
use sqlite_salvage_format::record::{Record, ValueRef, decode_text};

/// The schema recovery works from.
pub(crate) struct FoundSchema {
    pub schema: Schema,
    /// Where it came from, for the report.
    pub from: String,
    /// Damage met reading it.
    pub damage: Vec<Damage>,
    /// Pages of `sqlite_schema` found outside its tree (page 1 lost).
    pub pages: Vec<u32>,
}

impl FoundSchema {
    fn new(schema: Schema, from: impl Into<String>, damage: Vec<Damage>) -> Self {
        FoundSchema {
            schema,
            from: from.into(),
            damage,
            pages: Vec::new(),
        }
    }
}

/// The schema, from the first source that reads (see the module doc);
/// `--schema` also fills in the tables a partial on-disk schema lacks.
pub(crate) fn read_schema(db: &Database, salvage: &Salvage, opts: &RecoverOptions) -> FoundSchema {
    let mut found = on_disk_schema(db, salvage).unwrap_or_else(|| {
        let empty = Schema {
            entries: Vec::new(),
            tables: Vec::new(),
            indexes: Vec::new(),
        };
        let damage = vec![Damage {
            page: 1,
            cell: None,
            what: "schema unreadable".into(),
        }];
        FoundSchema::new(empty, "none: no schema could be read", damage)
    });
    let enc = salvage.snapshot.header().encoding;
    let Some(given) = opts
        .schema_sql
        .as_deref()
        .and_then(|q| Schema::from_sql(q, enc).ok())
    else {
        return found;
    };
    if found.schema.entries.is_empty() {
        return FoundSchema::new(given, "--schema", Vec::new());
    }
    let added = fill_in(&mut found.schema, given);
    if !added.is_empty() {
        found.from = format!("{}; --schema for {}", found.from, added.join(", "));
    }
    found
}

/// The schema as the files hold it: page 1's own tree (whatever the
/// header's source: its cells after byte 100 may be intact when the header
/// is not), older versions of page 1, the database file's page 1, schema
/// rows on other pages. A page 1 read only in part, or read under a header
/// not its own, gives way to an older intact version.
fn on_disk_schema(db: &Database, salvage: &Salvage) -> Option<FoundSchema> {
    let snap = &salvage.snapshot;
    let page1 = Schema::read_lenient(snap)
        .ok()
        .filter(|(s, _)| !s.entries.is_empty());
    let own_header = salvage.header_from == HeaderSource::Page1;
    if page1
        .as_ref()
        .is_some_and(|(_, d)| own_header || d.is_empty())
    {
        let (s, damage) = page1?;
        return Some(FoundSchema::new(s, "page 1", damage));
    }
    // Older versions of page 1: superseded WAL frames, then the file's own.
    let mut buf = vec![0u8; snap.page_size() as usize];
    for off in salvage.older_versions(1).iter().rev() {
        if salvage.read_version(*off, &mut buf).is_ok() {
            if let Some(s) = schema_from_page1(snap, &buf) {
                let from = format!("an older version of page 1 (WAL offset {off})");
                return Some(FoundSchema::new(s, from, Vec::new()));
            }
        }
    }
    if snap.wal_offset(1).is_some() {
        if let Some(s) = db
            .snapshot(Some(0))
            .ok()
            .and_then(|s0| Schema::read(&s0).ok())
        {
            if !s.entries.is_empty() {
                return Some(FoundSchema::new(
                    s,
                    "the database file's page 1",
                    Vec::new(),
                ));
            }
        }
    }
    if let Some((s, damage)) = page1 {
        return Some(FoundSchema::new(s, "page 1", damage));
    }
    let (s, pages) = schema_from_orphans(snap)?;
    let from = format!("sqlite_schema rows found on pages {pages:?}");
    Some(FoundSchema {
        pages,
        ..FoundSchema::new(s, from, Vec::new())
    })
}

/// Adds to `schema` the tables of `given` (the `--schema` statements) it
/// does not name, with their indexes, views and triggers; their root pages
/// are unknown, so their rows come back on evidence (orphaned pages whose
/// records fit only them). Returns the tables added.
fn fill_in(schema: &mut Schema, given: Schema) -> Vec<String> {
    let known =
        |name: &str, s: &Schema| s.entries.iter().any(|e| e.name.eq_ignore_ascii_case(name));
    let mut added = Vec::new();
    for t in given.tables {
        if known(&t.name, schema) {
            continue;
        }
        added.push(t.name.clone());
        schema.tables.push(t);
    }
    for e in given.entries {
        let of_added = added.iter().any(|a| a.eq_ignore_ascii_case(&e.tbl_name));
        if of_added && !known(&e.name, schema) {
            schema.entries.push(e);
        }
    }
    added
}

/// Collects `sqlite_schema` rows from every table leaf page: records of
/// five values shaped like (type, name, tbl_name, rootpage, sql) with a
/// known type and a CREATE statement. When page 1 is lost, the rest of a
/// multi-page schema still names every root page.
fn schema_from_orphans(snap: &Snapshot) -> Option<(Schema, Vec<u32>)> {
    let enc = snap.header().encoding;
    let usable = snap.usable_size();
    let mut buf = vec![0u8; snap.page_size() as usize];
    let mut rec = Record::new();
    let mut entries: BTreeMap<i64, SchemaEntry> = BTreeMap::new();
    let mut pages: Vec<u32> = Vec::new();
    let text = |v: ValueRef<'_>| match v {
        ValueRef::Text(t) => Some(decode_text(t, enc).into_owned()),
        _ => None,
    };
    for pgno in 2..=snap.page_count() {
        if snap.read_page(pgno, &mut buf).is_err() {
            continue;
        }
        let Ok(p) = BtreePage::parse(&buf, pgno, usable) else {
            continue;
        };
        if p.kind != PageKind::TableLeaf {
            continue;
        }
        for i in 0..p.cell_count {
            let Ok(sqlite_salvage_format::cell::Cell::TableLeaf { rowid, payload }) = p.cell(i)
            else {
                continue;
            };
            if payload.spills() || rec.parse(payload.local).is_err() || rec.len() != 5 {
                continue;
            }
            let (Some(kind), Some(name), Some(tbl)) = (
                text(rec.value(payload.local, 0)),
                text(rec.value(payload.local, 1)),
                text(rec.value(payload.local, 2)),
            ) else {
                continue;
            };
            let sql = text(rec.value(payload.local, 4));
            let known = matches!(kind.as_str(), "table" | "index" | "view" | "trigger");
            let create = sql
                .as_deref()
                .is_none_or(|q| q.get(..6).is_some_and(|h| h.eq_ignore_ascii_case("CREATE")));
            let ValueRef::Integer(root) = rec.value(payload.local, 3) else {
                continue;
            };
            if !known || !create || root < 0 || root > i64::from(snap.page_count()) {
                continue;
            }
            if pages.last() != Some(&pgno) {
                pages.push(pgno);
            }
            entries.insert(
                rowid,
                SchemaEntry {
                    kind,
                    name,
                    tbl_name: tbl,
                    rootpage: root as u32,
                    sql,
                },
            );
        }
    }
    if !entries.values().any(|e| e.kind == "table") {
        return None;
    }
    let schema = Schema::from_entries(entries.into_values().collect(), enc).ok()?;
    Some((schema, pages))
}

/// Reads sqlite_schema from a page-1 image when it is a single leaf page.
fn schema_from_page1(snap: &Snapshot, page: &[u8]) -> Option<Schema> {
    let enc = snap.header().encoding;
    let p = BtreePage::parse(page, 1, snap.usable_size()).ok()?;
    if p.kind != PageKind::TableLeaf {
        return None;
    }
    let mut rec = Record::new();
    let mut entries = Vec::new();
    for i in 0..p.cell_count {
        let c = p.cell(i).ok()?;
        let pl = c.payload()?;
        if pl.spills() {
            continue;
        }
        rec.parse(pl.local).ok()?;
        let text = |k: usize| match rec.value(pl.local, k) {
            ValueRef::Text(t) => Some(decode_text(t, enc).into_owned()),
            _ => None,
        };
        entries.push(SchemaEntry {
            kind: text(0)?,
            name: text(1)?,
            tbl_name: text(2)?,
            rootpage: match rec.value(pl.local, 3) {
                ValueRef::Integer(r) => u32::try_from(r).unwrap_or(0),
                _ => 0,
            },
            sql: text(4),
        });
    }
    if entries.is_empty() {
        return None;
    }
    Schema::from_entries(entries, enc).ok()
}

impl FoundSchema {
    /// Whether the schema is page 1's own, read from its tree.
    pub fn is_page1(&self) -> bool {
        self.from == "page 1"
    }
}
