//! Recovery: every committed row that survives on disk, from the b-trees,
//! from orphaned pages and from the WAL, into a fresh database.
//!
//! ```text
//! db + WAL ──salvage──▶ snapshot (damaged frames skipped, older good versions stand in)
//!    │
//!    ├─ schema (page 1; older page-1 versions; --schema SQL)
//!    ├─ walk each table from its root ──▶ rows (source tree / wal), holes
//!    ├─ classify every other page: freelist, pointer map, overflow, orphan leaf, damaged
//!    ├─ orphan leaves and carved cells ──attribute──▶ table (by evidence) or lost_and_found
//!    ▼
//! fresh database: tables, rows (tree first, then evidence; a key conflict keeps
//! the first), indexes, views, triggers, sqlite_sequence ── quick_check ── rename
//! ```
//!
//! The complete rows of tables' own trees are written page by page
//! (`bulk`); everything else goes through SQL inserts into the same file.

mod bulk;
mod carve;
mod history;
mod report;
mod sink;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

pub use report::{Confidence, FlaggedRow, Outcome, Report, TableReport};
pub use sink::Source;

use crate::error::{Error, Result};
use crate::format::page::{
    BtreePage, FreelistTrunk, PageKind, PtrmapKind, is_ptrmap_page, ptrmap_entry, ptrmap_page_for,
};
use crate::format::record::{Record, ValueRef};
use crate::io::check_output;
use crate::rows::column_value;
use crate::schema::{Index, Schema, StoredValue, Table, quote_ident};
use crate::snapshot::{Database, HeaderSource, Salvage, WalChoice};
use crate::tree::{Damage, Hole, PageVisitor, TreeCursor, assemble};
use bulk::{BulkFile, IndexTree, TableTree};
use carve::{FoundCell, cells_by_pointer, fits, scan_page, scan_unpointed};
use sink::Sink;

/// What to recover and how.
#[derive(Debug, Clone, Default)]
pub struct RecoverOptions {
    /// Which WAL to read.
    pub wal: WalChoice,
    /// Recover as of this salvage commit (default: the last).
    pub at_commit: Option<u32>,
    /// The application's CREATE statements, used when the schema on disk
    /// is unreadable.
    pub schema_sql: Option<String>,
    /// Overwrite the output.
    pub force: bool,
    /// Skip fsync of the output.
    pub no_sync: bool,
    /// Also keep older versions of rows (from superseded WAL frames and the
    /// database file's copies of pages the WAL replaced) in a side table
    /// `<table>__history` per table.
    pub history: bool,
    /// Called as recovery proceeds.
    pub progress: Option<ProgressFn>,
}

/// The function behind a [`ProgressFn`]: (phase, pages done, pages in all).
pub type ProgressCallback = dyn Fn(&str, u64, u64) + Send + Sync;

/// A progress callback.
#[derive(Clone)]
pub struct ProgressFn(pub std::sync::Arc<ProgressCallback>);

impl std::fmt::Debug for ProgressFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressFn")
    }
}

impl ProgressFn {
    fn tick(p: Option<&ProgressFn>, phase: &str, done: u64, total: u64) {
        if let Some(p) = p {
            (p.0)(phase, done, total);
        }
    }
}

const MAX_FLAGGED: usize = 10_000;
const ZEROED_FLAG: &str =
    "an overflow page of a value is all zeros: the value may have been zeroed (or is a zeroblob)";

/// Page roles during recovery.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    No,
    Tree(u32),
    Overflow,
    Free,
    Ptrmap,
    Damaged(u32),
}

struct Marks<'m> {
    seen: &'m mut Vec<Seen>,
    table: u32,
    done: &'m mut u64,
    progress: Option<&'m ProgressFn>,
}

impl Marks<'_> {
    fn count(&mut self) {
        *self.done += 1;
        if *self.done % 1024 == 0 {
            let total = self.seen.len() as u64;
            ProgressFn::tick(self.progress, "reading tables", *self.done, total);
        }
    }
}

impl PageVisitor for Marks<'_> {
    fn btree_page(&mut self, pgno: u32, _kind: PageKind, _depth: usize) {
        self.count();
        if let Some(s) = self.seen.get_mut(pgno as usize) {
            *s = Seen::Tree(self.table);
        }
    }
    fn overflow_page(&mut self, pgno: u32) {
        self.count();
        if let Some(s) = self.seen.get_mut(pgno as usize) {
            *s = Seen::Overflow;
        }
    }
    fn unusable_page(&mut self, pgno: u32) {
        if let Some(s) = self.seen.get_mut(pgno as usize) {
            if *s == Seen::No {
                *s = Seen::Damaged(self.table);
            }
        }
    }
}

/// A row read from a page that cannot vouch for it.
struct Suspect {
    table: usize,
    rowid: Option<i64>,
    /// Values by declared column, text in the database encoding.
    values: Vec<StoredValue>,
    /// The record's values, for lost_and_found.
    raw: Vec<crate::format::record::Value>,
    page: u32,
    cell: Option<u16>,
    offset: Option<usize>,
    source: Source,
}

/// A table's b-tree being written page by page.
enum Tree {
    /// A rowid table.
    Table(TableTree),
    /// A WITHOUT ROWID table.
    Index(IndexTree),
}

/// Where a row from a table's own tree came from, for the report.
struct Placed {
    table: usize,
    rowid: Option<i64>,
    page: u32,
    source: Source,
    /// The first column read only in part (broken overflow chain).
    truncated_col: Option<usize>,
    /// Overflow bytes that read as zeros.
    zeroed: bool,
}

impl Placed {
    /// Counts the written row in its table's report, and flags it.
    fn account(
        &self,
        rep: &mut TableReport,
        flagged: &mut Vec<FlaggedRow>,
        name: &str,
        fallback: &HashSet<u32>,
    ) {
        *rep.by_source.entry(self.source).or_default() += 1;
        *rep.by_confidence.entry(Confidence::Root).or_default() += 1;
        let stale = fallback.contains(&self.page);
        if stale {
            rep.possibly_stale += 1;
        }
        if self.truncated_col.is_some() || self.zeroed {
            rep.truncated_values += 1;
        }
        if (stale || self.truncated_col.is_some() || self.zeroed) && flagged.len() < MAX_FLAGGED {
            flagged.push(FlaggedRow {
                table: name.to_string(),
                rowid: self.rowid,
                page: self.page,
                flag: match self.truncated_col {
                    Some(c) => format!(
                        "value of column {c} onwards read only in part (overflow chain broken)"
                    ),
                    None if self.zeroed => ZEROED_FLAG.into(),
                    None => "read from an older page version: the newest is damaged".into(),
                },
            });
        }
    }
}

/// A row's values by declared column, owned (text in the database encoding).
fn stored_values(t: &Table, rec: &Record, payload: &[u8], rowid: Option<i64>) -> Vec<StoredValue> {
    (0..t.columns.len())
        .map(|c| StoredValue::from_ref(column_value(t, rec, payload, rowid, c)))
        .collect()
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

/// Whether a cell at `off` spanning about `len` bytes overlaps a 512-byte
/// sector that is all zeros (a partly zeroed page): its bytes may be cut.
fn touches_zero_sector(page: &[u8], off: usize, len: usize) -> bool {
    let end = (off + len).min(page.len());
    let mut sector = off / 512;
    while sector * 512 < end {
        let s = &page[sector * 512..((sector + 1) * 512).min(page.len())];
        if s.iter().all(|&b| b == 0) {
            return true;
        }
        sector += 1;
    }
    false
}

/// Whether each suspect row is confirmed: some index of its table holds an
/// entry with its rowid and the same values in the indexed columns.
fn confirm(
    snap: &crate::snapshot::Snapshot,
    schema: &Schema,
    suspects: &[Suspect],
) -> Result<Vec<bool>> {
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
                            .is_some_and(|c| c.affinity == crate::schema::Affinity::Real);
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

/// Collects the overflow pages an assembly read.
struct Collect(Vec<u32>);

impl PageVisitor for Collect {
    fn overflow_page(&mut self, pgno: u32) {
        self.0.push(pgno);
    }
}

/// A row bound for lost_and_found.
struct Lost {
    page: u32,
    cell: Option<u16>,
    offset: Option<usize>,
    source: Source,
    rowid: Option<i64>,
    values: Vec<crate::format::record::Value>,
}

/// Recovers `input` into a fresh database at `output`.
pub fn recover(input: &Path, output: &Path, opts: &RecoverOptions) -> Result<Report> {
    let db = Database::open_salvage(input, opts.wal.clone())?;
    let mut inputs: Vec<&Path> = vec![input];
    if let Some(w) = db.wal() {
        inputs.push(w.path.as_path());
    }
    check_output(output, &inputs, opts.force)?;
    let salvage = db.salvage(opts.at_commit)?;
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".salvage-")
        .suffix(".tmp")
        // An ordinary file once renamed (the umask still applies).
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(&dir)
        .map_err(|e| Error::output(&dir, e))?
        .into_temp_path();
    let mut report = match run(&db, &salvage, &tmp, opts, true)? {
        Ok(r) => r,
        Err(_) => {
            // Start over, every row through SQL.
            std::fs::File::create(&tmp).map_err(|e| Error::output(output, e))?;
            run(&db, &salvage, &tmp, opts, false)?.map_err(|ic| {
                Error::corrupt(
                    0,
                    format!("recovered database failed SQLite's quick_check: {ic}"),
                )
            })?
        }
    };
    if !opts.no_sync {
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::output(output, e))?;
    }
    tmp.persist(output)
        .map_err(|e| Error::output(output, e.error))?;
    if !opts.no_sync {
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
    }
    report.input = input.display().to_string();
    report.output = output.display().to_string();
    Ok(report)
}

/// The schema recovery works from.
struct FoundSchema {
    schema: Schema,
    /// Where it came from, for the report.
    from: String,
    /// Damage met reading it.
    damage: Vec<Damage>,
    /// Pages of `sqlite_schema` found outside its tree (page 1 lost).
    pages: Vec<u32>,
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

fn read_schema(db: &Database, salvage: &Salvage, opts: &RecoverOptions) -> FoundSchema {
    let snap = &salvage.snapshot;
    let enc = snap.header().encoding;
    if salvage.header_from == HeaderSource::Page1 {
        if let Ok((s, damage)) = Schema::read_lenient(snap) {
            if !s.entries.is_empty() {
                return FoundSchema::new(s, "page 1", damage);
            }
        }
    }
    // Older versions of page 1: superseded WAL frames, then the file's own.
    let mut buf = vec![0u8; snap.page_size() as usize];
    for off in salvage.older_versions(1).iter().rev() {
        if salvage.read_version(*off, &mut buf).is_ok() {
            if let Some(s) = schema_from_page1(snap, &buf) {
                let from = format!("an older version of page 1 (WAL offset {off})");
                return FoundSchema::new(s, from, Vec::new());
            }
        }
    }
    if snap.wal_offset(1).is_some() {
        if let Ok(s0) = db.snapshot(Some(0)) {
            if let Ok(s) = Schema::read(&s0) {
                if !s.entries.is_empty() {
                    return FoundSchema::new(s, "the database file's page 1", Vec::new());
                }
            }
        }
    }
    if let Some((s, pages)) = schema_from_orphans(snap) {
        let from = format!("sqlite_schema rows found on pages {pages:?}");
        return FoundSchema {
            pages,
            ..FoundSchema::new(s, from, Vec::new())
        };
    }
    if let Some(sql) = &opts.schema_sql {
        if let Ok(s) = Schema::from_sql(sql, enc) {
            return FoundSchema::new(s, "--schema", Vec::new());
        }
    }
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
}

/// Collects `sqlite_schema` rows from every table leaf page: records of
/// five values shaped like (type, name, tbl_name, rootpage, sql) with a
/// known type and a CREATE statement. When page 1 is lost, the rest of a
/// multi-page schema still names every root page.
fn schema_from_orphans(snap: &crate::snapshot::Snapshot) -> Option<(Schema, Vec<u32>)> {
    let enc = snap.header().encoding;
    let usable = snap.usable_size();
    let mut buf = vec![0u8; snap.page_size() as usize];
    let mut rec = Record::new();
    let mut entries: BTreeMap<i64, crate::schema::SchemaEntry> = BTreeMap::new();
    let mut pages: Vec<u32> = Vec::new();
    let text = |v: ValueRef<'_>| match v {
        ValueRef::Text(t) => Some(crate::format::record::decode_text(t, enc).into_owned()),
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
            let Ok(crate::format::cell::Cell::TableLeaf { rowid, payload }) = p.cell(i) else {
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
                crate::schema::SchemaEntry {
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
fn schema_from_page1(snap: &crate::snapshot::Snapshot, page: &[u8]) -> Option<Schema> {
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
            ValueRef::Text(t) => Some(crate::format::record::decode_text(t, enc).into_owned()),
            _ => None,
        };
        entries.push(crate::schema::SchemaEntry {
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

/// One recovery into `out`. With `bulk`, complete rows of tables' own trees
/// are written page by page; the inner error asks for a run without it (tree
/// rows that break a UNIQUE constraint or key order, or a file SQLite does
/// not accept).
fn run(
    db: &Database,
    salvage: &Salvage,
    out: &Path,
    opts: &RecoverOptions,
    bulk: bool,
) -> Result<std::result::Result<Report, String>> {
    let snap = &salvage.snapshot;
    let enc = snap.header().encoding;
    let usable = snap.usable_size();
    let page_count = snap.page_count();
    let FoundSchema {
        schema,
        from: schema_from,
        mut damage,
        pages: schema_pages,
    } = read_schema(db, salvage, opts);
    let mut sink = Sink::create(out, enc, snap.page_size())?;
    let tables_not_created = sink.create_tables(&schema);
    // UNIQUE indexes before the rows: rows arrive most trusted first (the
    // trees, then orphaned and carved pages), so a row that would break one
    // is from a less trusted source and is skipped and counted, like a row
    // whose key is already there. Other indexes are built after the load,
    // by sorting, which is faster than keeping them up to date row by row.
    let mut objects_not_created = create_objects(&sink, &schema, &["index"], Some(true));
    let not_created: HashSet<String> = tables_not_created.iter().map(|t| t.0.clone()).collect();
    let fallback: HashSet<u32> = salvage
        .wal
        .as_ref()
        .map(|w| w.fallback_pages.iter().copied().collect())
        .unwrap_or_default();
    let mut seen = vec![Seen::No; page_count as usize + 1];
    let mut pages_done = 0u64;
    let mut reports: Vec<TableReport> = schema
        .tables
        .iter()
        .map(|t| TableReport {
            name: t.name.clone(),
            ..Default::default()
        })
        .collect();
    let mut flagged: Vec<FlaggedRow> = Vec::new();
    let mut lost: Vec<Lost> = Vec::new();
    let mut suspects: Vec<Suspect> = Vec::new();
    let mut partial_rows: HashSet<(usize, i64)> = HashSet::new();
    // Tree pages read in part: carved for what their pointers miss.
    let mut partly_read: HashSet<u32> = HashSet::new();

    // 1. Every table from its root, and index trees only to mark their pages.
    // Tables first, written page by page while SQLite has the file closed
    // (see `bulk`); rows that cannot be written so wait in `deferred`.
    let bulk_tables: Vec<bool> = schema
        .tables
        .iter()
        .map(|t| {
            bulk && !t.name.to_ascii_lowercase().starts_with("sqlite_")
                && !not_created.contains(&t.name)
                && t.root > 1
                && t.root <= page_count
        })
        .collect();
    let order: Vec<usize> = (0..schema.tables.len())
        .filter(|&i| bulk_tables[i])
        .chain((0..schema.tables.len()).filter(|&i| !bulk_tables[i]))
        .collect();
    // Root pages in the new file, by table name.
    let mut roots: HashMap<String, u32> = HashMap::new();
    let mut file = if bulk_tables.contains(&true) {
        let mut st = sink
            .conn
            .prepare("SELECT name, rootpage FROM sqlite_schema WHERE type = 'table'")?;
        for r in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))? {
            let (name, root) = r?;
            roots.insert(name, root);
        }
        drop(st);
        sink.close()?;
        Some(BulkFile::open(out)?)
    } else {
        sink.conn.execute_batch("BEGIN")?;
        None
    };
    let mut deferred: Vec<(Placed, Vec<StoredValue>)> = Vec::new();
    let mut early_sync = None;
    let mut rec = Record::new();
    for &ti in order.iter().chain(std::iter::once(&usize::MAX)) {
        if !bulk_tables.get(ti).copied().unwrap_or(false) {
            if let Some(f) = file.take() {
                // The bulk-written tables are complete: SQLite takes over,
                // while their pages are written back in the background (the
                // sync at the end then has little left to do).
                let written = f.finish()?;
                if !opts.no_sync {
                    early_sync = Some(std::thread::spawn(move || written.sync_data()));
                }
                sink.reopen()?;
                // The indexes that exist so far (UNIQUE ones, and those of
                // constraints), from the written rows.
                for (i, t) in schema.tables.iter().enumerate() {
                    if !bulk_tables[i] {
                        continue;
                    }
                    if let Err(e) = sink
                        .conn
                        .execute_batch(&format!("REINDEX {}", quote_ident(&t.name)))
                    {
                        // Two tree rows break a UNIQUE constraint: only a
                        // row-by-row load can keep the first and skip the rest.
                        return Ok(Err(e.to_string()));
                    }
                    if t.without_rowid {
                        // Its entries went in in the order the tree gave them:
                        // SQLite checks the key order (and uniqueness).
                        let ic: String = sink.conn.query_row(
                            &format!("PRAGMA integrity_check({})", quote_ident(&t.name)),
                            [],
                            |r| r.get(0),
                        )?;
                        if ic != "ok" {
                            return Ok(Err(ic));
                        }
                    }
                }
                sink.conn.execute_batch("BEGIN")?;
                for (p, values) in deferred.drain(..) {
                    let t = &schema.tables[p.table];
                    if sink.insert(t, p.rowid, &|c| {
                        values.get(c).map_or(ValueRef::Null, |v| v.as_ref())
                    })? {
                        p.account(&mut reports[p.table], &mut flagged, &t.name, &fallback);
                    } else {
                        reports[p.table].duplicates_skipped += 1;
                    }
                }
            }
        }
        let Some(t) = schema.tables.get(ti) else {
            break;
        };
        if t.root == 0 || t.root > page_count {
            // The whole tree is unknown: every rowid is in the hole.
            reports[ti].holes.push(Hole {
                page: t.root,
                after: None,
                up_to: None,
            });
            reports[ti].damage.push(Damage {
                page: t.root,
                cell: None,
                what: "root page unknown or out of range".into(),
            });
            continue;
        }
        let internal = t.name.to_ascii_lowercase().starts_with("sqlite_");
        let mut cursor = TreeCursor::with_visitor(
            snap,
            t.root,
            Marks {
                seen: &mut seen,
                table: ti as u32,
                done: &mut pages_done,
                progress: opts.progress.as_ref(),
            },
        )
        .lenient(true)
        .keep_partial(true)
        .verify_pages(true);
        let mut tree = match (&file, roots.get(&t.name)) {
            (Some(_), Some(&root)) if bulk_tables[ti] && root > 1 && t.without_rowid => {
                Some(Tree::Index(IndexTree::new(root)))
            }
            (Some(f), Some(&root)) if bulk_tables[ti] && root > 1 => {
                Some(Tree::Table(TableTree::new(f, root)))
            }
            _ => None,
        };
        let rep = &mut reports[ti];
        while let Some(e) = cursor.next()? {
            let truncated_col = if e.truncated {
                match rec.parse_partial(e.payload) {
                    Ok(c) => c.or(Some(rec.len())),
                    Err(_) => {
                        rep.cells_lost += 1;
                        continue;
                    }
                }
            } else {
                if rec.parse(e.payload).is_err() {
                    rep.cells_lost += 1;
                    continue;
                }
                None
            };
            if internal || not_created.contains(&t.name) {
                if t.name.eq_ignore_ascii_case("sqlite_sequence") {
                    restore_sequence(&sink, &rec, e.payload, enc)?;
                } else if !internal {
                    lost.push(Lost {
                        page: e.at.page,
                        cell: Some(e.at.cell),
                        offset: None,
                        source: Source::Tree,
                        rowid: e.rowid,
                        values: (0..rec.len())
                            .map(|i| rec.value(e.payload, i).to_owned(enc))
                            .collect(),
                    });
                }
                continue;
            }
            let source = if snap.wal_offset(e.at.page).is_some() {
                Source::Wal
            } else {
                Source::Tree
            };
            let payload = e.payload;
            let rowid = e.rowid;
            if e.suspect {
                // The page's space does not add up (torn?): keep the row
                // only if an index confirms it.
                suspects.push(Suspect {
                    table: ti,
                    rowid,
                    values: stored_values(t, &rec, payload, rowid),
                    raw: (0..rec.len())
                        .map(|i| rec.value(payload, i).to_owned(enc))
                        .collect(),
                    page: e.at.page,
                    cell: Some(e.at.cell),
                    offset: None,
                    source,
                });
                continue;
            }
            let placed = Placed {
                table: ti,
                rowid,
                page: e.at.page,
                source,
                truncated_col,
                zeroed: e.zeroed_overflow,
            };
            if let Some(f) = file.as_mut() {
                // Complete records that use exactly their payload, in key
                // order, are written as they are; the rest wait until SQLite
                // has the file again (and go in as their values).
                let whole = truncated_col.is_none() && !placed.zeroed && rec.end() == payload.len();
                let written = match (tree.as_mut(), rowid) {
                    (Some(Tree::Table(tree)), Some(r)) if whole => tree.push(f, r, payload)?,
                    (Some(Tree::Index(tree)), _) if whole => {
                        tree.push(f, payload)?;
                        true
                    }
                    _ => false,
                };
                if written {
                    placed.account(rep, &mut flagged, &t.name, &fallback);
                    continue;
                }
                deferred.push((placed, stored_values(t, &rec, payload, rowid)));
                continue;
            }
            if sink.insert(t, rowid, &|c| column_value(t, &rec, payload, rowid, c))? {
                placed.account(rep, &mut flagged, &t.name, &fallback);
            } else {
                rep.duplicates_skipped += 1;
            }
        }
        rep.holes = cursor.holes().to_vec();
        rep.damage = cursor.damage().to_vec();
        // A page of this tree whose cells could not all be read through its
        // pointers (a damaged cell count or pointer array), or whose space
        // does not add up, is carved too, for the cells the pointers miss.
        let partly: Vec<u32> = rep
            .damage
            .iter()
            .filter(|d| d.cell.is_some())
            .map(|d| d.page)
            .chain(cursor.suspect_pages().iter().copied())
            .collect();
        drop(cursor);
        for pgno in partly {
            if let Some(s) = seen.get_mut(pgno as usize) {
                if *s == Seen::Tree(ti as u32) {
                    *s = Seen::Damaged(ti as u32);
                    partly_read.insert(pgno);
                }
            }
        }
        match (tree, file.as_mut()) {
            (Some(Tree::Table(tree)), Some(f)) => tree.finish(f)?,
            (Some(Tree::Index(tree)), Some(f)) => tree.finish(f)?,
            _ => {}
        }
    }
    // Pages the trees did not reach matter only when something is damaged:
    // in a database whose trees, schema and WAL read cleanly every page is
    // in a tree, on the freelist or a pointer map.
    let need_scan = !suspects.is_empty()
        || reports
            .iter()
            .any(|r| !r.holes.is_empty() || !r.damage.is_empty() || r.cells_lost > 0)
        || salvage.header_from != HeaderSource::Page1
        || schema_from != "page 1"
        || !damage.is_empty()
        || salvage
            .wal
            .as_ref()
            .is_some_and(|w| !w.damaged_frames.is_empty() || !w.fallback_pages.is_empty());
    let mut orphan_pages = Vec::new();
    let mut unreadable_pages = Vec::new();
    let mut index_pages_skipped = 0u64;
    if need_scan {
        // Index b-trees, then sqlite_schema's: only to account for their pages.
        let roots = schema
            .of_kind("index")
            .map(|e| e.rootpage)
            .filter(|&r| r != 0 && r <= page_count)
            .map(|r| (r, false))
            .chain(std::iter::once((1, true)));
        for (root, schema_tree) in roots {
            if schema_tree {
                if let Some(s @ Seen::No) = seen.get_mut(1) {
                    *s = Seen::Tree(u32::MAX);
                }
            }
            let mut cursor = TreeCursor::with_visitor(
                snap,
                root,
                Marks {
                    seen: &mut seen,
                    table: u32::MAX,
                    done: &mut pages_done,
                    progress: opts.progress.as_ref(),
                },
            )
            .lenient(true);
            while cursor.next()?.is_some() {}
        }
        // Pages the schema was found on are the schema's own.
        for p in &schema_pages {
            if let Some(s @ Seen::No) = seen.get_mut(*p as usize) {
                *s = Seen::Tree(u32::MAX);
            }
        }
        mark_freelist(snap, &mut seen, &mut damage)?;
        let h = snap.header();
        if h.auto_vacuum() != crate::format::header::AutoVacuum::None {
            for p in 2..=page_count {
                if is_ptrmap_page(p, usable, snap.page_size()) {
                    seen[p as usize] = Seen::Ptrmap;
                }
            }
        }
        let lock = h.lock_byte_page();
        if lock <= page_count {
            seen[lock as usize] = Seen::Ptrmap;
        }

        // 2. Every page nothing accounted for, and damaged tree pages.
        let mut buf = vec![0u8; snap.page_size() as usize];
        let mut scratch = Vec::new();
        let mut chain_seen = HashSet::new();
        let mut payload_buf = Vec::new();
        let ptrmap_root = |pgno: u32, seen: &Vec<Seen>| -> Option<u32> {
            // Follow pointer-map parents up to a page a table's walk reached.
            let mut p = pgno;
            let mut map = vec![0u8; snap.page_size() as usize];
            for _ in 0..64 {
                let mp = ptrmap_page_for(p, usable, snap.page_size())?;
                snap.read_page(mp, &mut map).ok()?;
                let e = ptrmap_entry(map.get(..usable as usize)?, mp, p).ok()?;
                match e.kind {
                    PtrmapKind::Btree => {
                        p = e.parent;
                        if let Some(Seen::Tree(t) | Seen::Damaged(t)) = seen.get(p as usize) {
                            if *t != u32::MAX {
                                return Some(*t);
                            }
                        }
                    }
                    PtrmapKind::RootPage => return None,
                    _ => return None,
                }
            }
            None
        };
        // Children of interior pages no walk reached: a leaf one of them
        // points at belongs to a cut-off subtree, a leaf nothing points at may
        // be a freed page.
        let mut unreached_children: HashSet<u32> = HashSet::new();
        let mut unreached_interiors = false;
        for pgno in 2..=page_count {
            if seen[pgno as usize] != Seen::No || snap.read_page(pgno, &mut buf).is_err() {
                continue;
            }
            if let Ok(p) = BtreePage::parse(&buf, pgno, usable) {
                if let (false, Ok(children)) = (p.kind.is_leaf(), p.children()) {
                    unreached_interiors = true;
                    unreached_children.extend(children);
                }
            }
        }
        // Two passes: orphan leaf pages first (which also claims their
        // overflow pages), then carving what is still unaccounted for.
        for carving in [false, true] {
            for pgno in 2..=page_count {
                if pgno % 1024 == 0 {
                    let phase = if carving {
                        "carving damaged pages"
                    } else {
                        "reading orphaned pages"
                    };
                    ProgressFn::tick(
                        opts.progress.as_ref(),
                        phase,
                        u64::from(pgno),
                        u64::from(page_count),
                    );
                }
                let owner = match seen[pgno as usize] {
                    Seen::No => None,
                    Seen::Damaged(t) if t != u32::MAX => Some(t),
                    _ => continue,
                };
                if !carving && owner.is_some() {
                    continue;
                }
                if snap.read_page(pgno, &mut buf).is_err() {
                    unreadable_pages.push(pgno);
                    continue;
                }
                if buf.iter().all(|&b| b == 0) {
                    if owner.is_some() && carving {
                        unreadable_pages.push(pgno);
                    }
                    continue;
                }
                // Cells: through the pointer array when the header is usable,
                // else carved from the content.
                let (cells, kind, source, consistent) = match BtreePage::parse(&buf, pgno, usable) {
                    Ok(p) if p.kind.is_leaf() && owner.is_none() => {
                        if carving {
                            continue;
                        }
                        let (c, _bad) = cells_by_pointer(&p);
                        seen[pgno as usize] = Seen::Tree(u32::MAX);
                        (c, p.kind, Source::Orphan, p.is_consistent())
                    }
                    Ok(p) if p.kind == PageKind::IndexInterior && owner.is_none() => {
                        // Index interior cells carry records too (WITHOUT ROWID
                        // rows); its children are orphans handled on their own.
                        if carving {
                            continue;
                        }
                        let (c, _bad) = cells_by_pointer(&p);
                        seen[pgno as usize] = Seen::Tree(u32::MAX);
                        (c, PageKind::IndexLeaf, Source::Orphan, p.is_consistent())
                    }
                    Ok(p) if !p.kind.is_leaf() && owner.is_none() => {
                        // An orphan table interior page: no rows; its leaves are
                        // orphans too and are handled on their own.
                        continue;
                    }
                    _ if !carving => continue,
                    _ => {
                        // Which kind to carve for: the owner's, else table leaves.
                        let kind = match owner.and_then(|t| schema.tables.get(t as usize)) {
                            Some(t) if t.without_rowid => PageKind::IndexLeaf,
                            _ => PageKind::TableLeaf,
                        };
                        let page = &buf[..usable as usize];
                        if partly_read.contains(&pgno) {
                            // Rows from a page whose space does not add up
                            // need the same confirmation as those its
                            // pointers gave.
                            match BtreePage::parse(&buf, pgno, usable) {
                                Ok(p) if p.kind == kind => (
                                    scan_unpointed(&p, page, kind, usable),
                                    kind,
                                    Source::Carved,
                                    p.is_consistent(),
                                ),
                                // An interior page's cells hold no rows.
                                _ => continue,
                            }
                        } else {
                            (scan_page(page, kind, usable, 8), kind, Source::Carved, true)
                        }
                    }
                };
                if cells.is_empty() && partly_read.contains(&pgno) {
                    continue;
                }
                if cells.is_empty() {
                    if owner.is_some() || source == Source::Carved {
                        unreadable_pages.push(pgno);
                    }
                    continue;
                }
                // Decode every cell's record (assembling overflow).
                let mut decoded: Vec<(FoundCell, Vec<u8>, bool)> = Vec::new();
                for c in cells {
                    let p = c.payload();
                    let (bytes, truncated) = if p.spills() {
                        let mut ovf = Collect(Vec::new());
                        let r = assemble(
                            snap,
                            &p,
                            &mut payload_buf,
                            &mut scratch,
                            &mut chain_seen,
                            &mut ovf,
                        );
                        // A chain page something else already owns was reused:
                        // the value is good only up to it.
                        let per_page = usable as usize - 4;
                        let mut bad = r.is_err();
                        for (k, o) in ovf.0.iter().enumerate() {
                            match seen.get_mut(*o as usize) {
                                Some(s @ Seen::No) => *s = Seen::Overflow,
                                _ => {
                                    payload_buf.truncate(c.local.len() + k * per_page);
                                    bad = true;
                                    break;
                                }
                            }
                        }
                        (payload_buf.clone(), bad || r.is_ok_and(|zeros| zeros))
                    } else {
                        (c.local.clone(), false)
                    };
                    decoded.push((c, bytes, truncated));
                }
                // Attribute the page.
                let mut unlinked_page = false;
                let attributed: Option<(usize, Confidence)> = if let Some(t) = owner {
                    Some((t as usize, Confidence::Evidence))
                } else if let Some(t) = ptrmap_root(pgno, &seen) {
                    Some((t as usize, Confidence::Evidence))
                } else if source == Source::Carved {
                    // Residue on a page no table owns (a freelist trunk, an old
                    // page): never guessed into a table.
                    None
                } else {
                    let referenced = unreached_children.contains(&pgno);
                    // With page 1 lost the freelist is unknown too: a leaf nothing
                    // points at may be a table's root leaf or a freed page; it is
                    // taken, and its rows flagged as possibly stale.
                    let freelist_lost = salvage.header_from != HeaderSource::Page1;
                    let linked = referenced || !unreached_interiors;
                    let a = attribute(
                        &schema,
                        &reports,
                        &decoded,
                        kind,
                        &mut rec,
                        linked || freelist_lost,
                    );
                    if a.is_some() && !linked {
                        unlinked_page = true;
                    }
                    a
                };
                if attributed.is_none()
                    && kind == PageKind::IndexLeaf
                    && looks_like_index(&decoded, &mut rec)
                {
                    // Entries of an index: rebuilt from the tables, not data.
                    index_pages_skipped += 1;
                    continue;
                }
                let label = match attributed {
                    Some((t, _)) => schema.tables[t].name.clone(),
                    None => "lost_and_found".into(),
                };
                if source == Source::Orphan {
                    orphan_pages.push((pgno, label));
                }
                for (c, bytes, truncated) in &decoded {
                    if !parse_cell(&mut rec, bytes, *truncated) {
                        continue;
                    }
                    match attributed {
                        Some((ti, conf))
                            if fits(&schema.tables[ti], &rec, bytes)
                                && !not_created.contains(&schema.tables[ti].name) =>
                        {
                            let t = &schema.tables[ti];
                            let rowid = c.rowid;
                            if !consistent
                                || (source == Source::Carved
                                    && touches_zero_sector(&buf, c.offset, c.local.len() + 8))
                            {
                                suspects.push(Suspect {
                                    table: ti,
                                    rowid,
                                    values: stored_values(t, &rec, bytes, rowid),
                                    raw: (0..rec.len())
                                        .map(|i| rec.value(bytes, i).to_owned(enc))
                                        .collect(),
                                    page: pgno,
                                    cell: c.index,
                                    offset: Some(c.offset),
                                    source,
                                });
                                continue;
                            }
                            // A complete copy of a row beats one read only in
                            // part from another page.
                            if let (false, Some(r), false) = (*truncated, rowid, t.without_rowid) {
                                if partial_rows.remove(&(ti, r)) {
                                    sink.delete_rowid(t, r)?;
                                    reports[ti].truncated_values =
                                        reports[ti].truncated_values.saturating_sub(1);
                                }
                            }
                            if let (true, Some(r)) = (*truncated, rowid) {
                                partial_rows.insert((ti, r));
                            }
                            let inserted =
                                sink.insert(t, rowid, &|k| column_value(t, &rec, bytes, rowid, k))?;
                            let rep = &mut reports[ti];
                            if !inserted {
                                rep.duplicates_skipped += 1;
                                continue;
                            }
                            *rep.by_source.entry(source).or_default() += 1;
                            *rep.by_confidence.entry(conf).or_default() += 1;
                            if *truncated {
                                rep.truncated_values += 1;
                            }
                            if flagged.len() < MAX_FLAGGED {
                                flagged.push(FlaggedRow {
                                table: t.name.clone(),
                                rowid,
                                page: pgno,
                                flag: format!(
                                    "{} page{}",
                                    if source == Source::Carved {
                                        "carved from a damaged"
                                    } else if unlinked_page {
                                        "possibly stale: the freelist is lost with page 1; from an unreferenced"
                                    } else {
                                        "from an orphaned"
                                    },
                                    if *truncated {
                                        "; a value read only in part"
                                    } else {
                                        ""
                                    }
                                ),
                            });
                            }
                        }
                        _ => lost.push(Lost {
                            page: pgno,
                            cell: c.index,
                            offset: Some(c.offset),
                            source,
                            rowid: c.rowid,
                            values: (0..rec.len())
                                .map(|i| rec.value(bytes, i).to_owned(enc))
                                .collect(),
                        }),
                    }
                }
            }
        }
    }

    // Older versions of rows, on request.
    let history_rows = if opts.history {
        history::write_history(salvage, &schema, &seen, &sink, &not_created)?
    } else {
        Vec::new()
    };

    // 3. Rows from suspect pages: confirmed by an index, or lost_and_found.
    let confirmed = confirm(snap, &schema, &suspects)?;
    for (sus, ok) in suspects.into_iter().zip(confirmed) {
        let t = &schema.tables[sus.table];
        if ok {
            let inserted = sink.insert(t, sus.rowid, &|c| {
                sus.values.get(c).map_or(ValueRef::Null, |v| v.as_ref())
            })?;
            let rep = &mut reports[sus.table];
            if !inserted {
                rep.duplicates_skipped += 1;
                continue;
            }
            *rep.by_source.entry(sus.source).or_default() += 1;
            *rep.by_confidence.entry(Confidence::Evidence).or_default() += 1;
            if flagged.len() < MAX_FLAGGED {
                flagged.push(FlaggedRow {
                    table: t.name.clone(),
                    rowid: sus.rowid,
                    page: sus.page,
                    flag: "from a damaged page; confirmed by an index entry".into(),
                });
            }
        } else {
            lost.push(Lost {
                page: sus.page,
                cell: sus.cell,
                offset: sus.offset,
                source: sus.source,
                rowid: sus.rowid,
                values: sus.raw,
            });
        }
    }

    // 4. lost_and_found, indexes, views, triggers.
    let (lost_table, inferred) = if schema.tables.is_empty() {
        // No schema at all: the rows found, grouped by shape into tables
        // named after it, instead of one lost-and-found table.
        (None, write_inferred(&sink, &lost)?)
    } else {
        (write_lost(&sink, &schema, &lost)?, Vec::new())
    };
    sink.conn.execute_batch("COMMIT")?;
    objects_not_created.extend(create_objects(&sink, &schema, &["index"], Some(false)));
    objects_not_created.extend(create_objects(&sink, &schema, &["view", "trigger"], None));
    let ic: String = sink
        .conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if ic != "ok" && bulk {
        return Ok(Err(ic));
    }
    if ic != "ok" {
        return Err(Error::corrupt(
            0,
            format!("recovered database failed SQLite's quick_check: {ic}"),
        ));
    }
    drop(sink);
    // Its outcome is the final sync's to report.
    if let Some(t) = early_sync {
        let _ = t.join();
    }

    let any_damage = !damage.is_empty()
        || reports.iter().any(|r| {
            !r.damage.is_empty()
                || r.cells_lost > 0
                || r.possibly_stale > 0
                || r.truncated_values > 0
        })
        || !orphan_pages.is_empty()
        || !unreadable_pages.is_empty()
        || !lost.is_empty()
        || salvage
            .wal
            .as_ref()
            .is_some_and(|w| !w.damaged_frames.is_empty())
        || salvage.header_from != HeaderSource::Page1;
    let mut report = Report {
        input: String::new(),
        output: String::new(),
        outcome: Outcome::Complete,
        page_size: snap.page_size(),
        page_count,
        header_from: salvage.header_from,
        schema_from,
        wal: salvage.wal.clone(),
        wal_rejected: db.wal_rejected().map(String::from),
        journal: salvage.journal.clone(),
        tables: reports,
        lost_and_found: lost.len() as u64,
        history: history_rows,
        lost_and_found_table: lost_table,
        inferred_tables: inferred,
        orphan_pages,
        unreadable_pages,
        index_pages_skipped,
        tables_not_created,
        objects_not_created,
        flagged,
        damage,
    };
    report.outcome = if report.rows() == 0 && report.lost_and_found == 0 {
        Outcome::Nothing
    } else if any_damage {
        Outcome::Partial
    } else {
        Outcome::Complete
    };
    Ok(Ok(report))
}

/// Picks the table an orphan or carved page belongs to by the shape of its
/// records and the holes in the tables' trees; None when not sure.
fn attribute(
    schema: &Schema,
    reports: &[TableReport],
    cells: &[(FoundCell, Vec<u8>, bool)],
    kind: PageKind,
    rec: &mut Record,
    linked: bool,
) -> Option<(usize, Confidence)> {
    let mut candidates: Vec<usize> = Vec::new();
    for (ti, t) in schema.tables.iter().enumerate() {
        if t.without_rowid != (kind == PageKind::IndexLeaf)
            || t.name.to_ascii_lowercase().starts_with("sqlite_")
        {
            continue;
        }
        let all_fit = cells
            .iter()
            .all(|(_, bytes, truncated)| parse_cell(rec, bytes, *truncated) && fits(t, rec, bytes));
        if all_fit {
            candidates.push(ti);
        }
    }
    // Only a table whose tree is damaged can have lost pages.
    let mut damaged: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|&t| !reports[t].holes.is_empty() || !reports[t].damage.is_empty())
        .collect();
    // Records as wide as the table's stored columns are the rule; fewer
    // happen only for rows older than an ALTER TABLE ADD COLUMN. Prefer the
    // tables whose width every record matches exactly.
    let exact: Vec<usize> = damaged
        .iter()
        .copied()
        .filter(|&t| {
            let width = schema.tables[t].stored_columns();
            cells.iter().all(|(_, bytes, truncated)| {
                parse_cell(rec, bytes, *truncated) && rec.len() == width
            })
        })
        .collect();
    if !exact.is_empty() {
        damaged = exact;
    }
    if kind == PageKind::TableLeaf {
        let in_hole: Vec<usize> = damaged
            .iter()
            .copied()
            .filter(|&t| {
                cells.iter().all(|(c, _, _)| {
                    // A hole left by an unknown root covers every rowid; a
                    // leaf nothing points at is then as likely a freed page.
                    c.rowid.is_some_and(|r| {
                        reports[t]
                            .holes
                            .iter()
                            .any(|h| h.contains(r) && (h.page != 0 || linked))
                    })
                })
            })
            .collect();
        if let [t] = in_hole.as_slice() {
            return Some((*t, Confidence::Evidence));
        }
        return None;
    }
    match damaged.as_slice() {
        [t] if linked || reports[*t].holes.iter().all(|h| h.page != 0) => {
            Some((*t, Confidence::Evidence))
        }
        _ => None,
    }
}

/// Parses a cell's record into `rec`; a payload cut short by a broken
/// overflow chain is parsed as far as its header allows.
fn parse_cell(rec: &mut Record, bytes: &[u8], truncated: bool) -> bool {
    if truncated {
        rec.parse_partial(bytes).is_ok()
    } else {
        rec.parse(bytes).is_ok()
    }
}

/// Whether index-leaf records look like entries of an index on a rowid
/// table: at least two values, the last an integer (the rowid).
fn looks_like_index(cells: &[(FoundCell, Vec<u8>, bool)], rec: &mut Record) -> bool {
    cells.iter().all(|(_, bytes, _)| {
        rec.parse(bytes).is_ok()
            && rec.len() >= 2
            && matches!(rec.value(bytes, rec.len() - 1), ValueRef::Integer(_))
    })
}

fn mark_freelist(
    snap: &crate::snapshot::Snapshot,
    seen: &mut [Seen],
    damage: &mut Vec<Damage>,
) -> Result<()> {
    let h = snap.header();
    let mut trunk = h.raw.freelist_trunk;
    let mut buf = vec![0u8; snap.page_size() as usize];
    let mut n = 0u32;
    while trunk != 0 && trunk <= snap.page_count() && n < snap.page_count() {
        n += 1;
        if seen.get(trunk as usize) != Some(&Seen::No) {
            damage.push(Damage {
                page: trunk,
                cell: None,
                what: "freelist trunk reused or looping".into(),
            });
            break;
        }
        seen[trunk as usize] = Seen::Free;
        snap.read_page(trunk, &mut buf)?;
        match FreelistTrunk::parse(&buf, snap.usable_size()) {
            Ok(t) => {
                for l in t.leaves {
                    if let Some(s) = seen.get_mut(l as usize) {
                        if *s == Seen::No {
                            *s = Seen::Free;
                        }
                    }
                }
                trunk = t.next;
            }
            Err(m) => {
                damage.push(Damage {
                    page: trunk,
                    cell: None,
                    what: format!("freelist: {m}"),
                });
                break;
            }
        }
    }
    Ok(())
}

fn restore_sequence(
    sink: &Sink,
    rec: &Record,
    payload: &[u8],
    enc: crate::format::header::TextEncoding,
) -> Result<()> {
    let name = match rec.value(payload, 0) {
        ValueRef::Text(t) => crate::format::record::decode_text(t, enc).into_owned(),
        _ => return Ok(()),
    };
    let ValueRef::Integer(seq) = rec.value(payload, 1) else {
        return Ok(());
    };
    let exists: bool = sink.conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE name='sqlite_sequence'",
        [],
        |r| r.get::<_, i64>(0),
    )? > 0;
    if !exists {
        return Ok(());
    }
    let updated = sink.conn.execute(
        "UPDATE sqlite_sequence SET seq = max(seq, ?2) WHERE name = ?1",
        rusqlite::params![name, seq],
    )?;
    if updated == 0 {
        sink.conn.execute(
            "INSERT INTO sqlite_sequence(name, seq) VALUES(?1, ?2)",
            rusqlite::params![name, seq],
        )?;
    }
    Ok(())
}

/// With no schema: rows grouped by shape (table rows or index keys, and
/// the number of values) into `recovered_rows_<n>` / `recovered_keys_<n>`
/// tables: where each row was found, its rowid, then its values c0...
fn write_inferred(sink: &Sink, lost: &[Lost]) -> Result<Vec<(String, u64)>> {
    let mut groups: BTreeMap<(bool, usize), Vec<&Lost>> = BTreeMap::new();
    for l in lost {
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

fn sql_value(v: &crate::format::record::Value) -> rusqlite::types::Value {
    use crate::format::record::Value;
    match v {
        Value::Null => rusqlite::types::Value::Null,
        Value::Integer(i) => rusqlite::types::Value::Integer(*i),
        Value::Real(f) => rusqlite::types::Value::Real(*f),
        Value::Text(t) => rusqlite::types::Value::Text(t.clone()),
        Value::Blob(b) => rusqlite::types::Value::Blob(b.clone()),
    }
}

fn write_lost(sink: &Sink, schema: &Schema, lost: &[Lost]) -> Result<Option<String>> {
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

/// Creates the schema objects of `kinds` ("index", "view", "trigger"),
/// only the UNIQUE or only the other indexes when `unique` says so; returns
/// those SQLite refused, with its reason.
fn create_objects(
    sink: &Sink,
    schema: &Schema,
    kinds: &[&str],
    unique: Option<bool>,
) -> Vec<(String, String)> {
    let mut failed = Vec::new();
    for kind in kinds {
        for e in schema.of_kind(kind) {
            let Some(sql) = &e.sql else { continue };
            let is_unique = sql
                .get(..20)
                .is_some_and(|h| h.to_ascii_uppercase().contains("UNIQUE"));
            if unique.is_some_and(|u| u != is_unique) {
                continue;
            }
            if let Err(err) = sink.conn.execute_batch(sql) {
                failed.push((e.name.clone(), err.to_string()));
            }
        }
    }
    failed
}
