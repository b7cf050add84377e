//! Stage (with `--deleted`): rows that were deleted, into tables of their
//! own.
//!
//! Takes the input, the page map (which pages are whose) and the output
//! with every live row in it; gives, per rowid table, a `<table>__deleted`
//! table with the table's own columns under their own names, then where
//! each row was found (`salvage_rowid`, `salvage_page`, `salvage_offset`,
//! `salvage_source`, `salvage_evidence`), and the counts for the report.
//! Sources: the free space of the table's leaves (the gap below the cell
//! content, freeblocks: [`super::freespace`]); freelist pages that read as
//! leaves whose records fit the table alone; older versions of the table's
//! pages (superseded WAL frames, the database file's copies of pages the
//! WAL replaced, the before-images of a rollback journal that is not hot:
//! one `journal_mode=PERSIST` keeps). A dropped table whose `sqlite_schema` row survives in the
//! schema pages' free space ([`super::dropped`]) is looked for too: its
//! rows, on freed pages, are all deleted ones.
//!
//! A row is deleted only when no live row has its rowid (a row whose rowid
//! is live is the live row or an older version of it: an update, not a
//! delete) and, its rowid lost, when no live row has all its values but at
//! most one ([`super::live`]: b-tree rebalancing leaves copies of live
//! cells in free space, and an update that moves a cell leaves the older
//! version there). A deleted row is
//! never written into the live table, never counted among the recovered
//! rows.
//!
//! A freed leaf whose records fit no table (a dropped table whose schema
//! row is gone too) gives `recovered_deleted_rows_<k>`, one per record
//! width, with untyped columns `c0`, `c1`, ...; freed pages are read in
//! `freed.rs`.

mod freed;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use rusqlite::types::Value as SqlValue;

use super::carve::{cells_by_pointer, fits, texts_valid};
use super::dropped::{Shape, dropped_pages, dropped_tables};
use super::freespace::{FreeCell, Place, blob_in_typed, free_cells, texts_aligned, texts_plain};
use super::index_copy::pk_columns;
use super::live::LiveRows;
use super::pagemap::{Owner, PageMap};
use super::report::DeletedTable;
use super::sink::{Sink, to_sql};
use crate::error::Result;
use crate::rows::column_value;
use crate::schema::{Schema, Table, quote_ident};
use crate::snapshot::Salvage;
use crate::tree::{NoVisitor, assemble};
use sqlite_salvage_format::cell::Payload;
use sqlite_salvage_format::page::BtreePage;
use sqlite_salvage_format::record::Record;

/// Where a deleted row was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Origin {
    Unallocated,
    Freeblock,
    FreeblockRebuilt,
    Freelist,
    OlderVersion,
    Journal,
    Dropped,
    Shape,
}

impl Origin {
    fn name(self) -> &'static str {
        match self {
            Origin::Unallocated => "unallocated",
            Origin::Freeblock => "freeblock",
            Origin::FreeblockRebuilt => "freeblock-rebuilt",
            Origin::Freelist => "freelist",
            Origin::OlderVersion => "older-version",
            Origin::Journal => "rollback-journal",
            Origin::Shape => "freelist",
            Origin::Dropped => "dropped-table",
        }
    }

    fn evidence(self) -> &'static str {
        match self {
            Origin::Unallocated => "a whole cell in a leaf's unallocated space; its rowid not live",
            Origin::Freeblock => "a whole cell in a leaf's freeblock; its rowid not live",
            Origin::FreeblockRebuilt => {
                "a freeblock's head, its record rebuilt (payload size and rowid lost); \
                 no live row has its values (all, or all but one)"
            }
            Origin::Freelist => {
                "a cell of a freed leaf whose records fit this table alone; its rowid not live"
            }
            Origin::OlderVersion => {
                "a cell of an older version of the table's page; its rowid not live"
            }
            Origin::Journal => {
                "a cell of a page as it was before a transaction, in the rollback journal; \
                 its rowid not live"
            }
            Origin::Shape => {
                "a cell of a freed leaf whose records fit no table (a dropped table's, its \
                 schema row gone): named by its shape"
            }
            Origin::Dropped => {
                "a cell of a freed page of a dropped table, its tree walked from its old root \
                 (its schema row found in the schema's free space)"
            }
        }
    }
}

/// A table's `__deleted` table: its name, insert statement, and the
/// table's columns the statement takes.
struct Made {
    name: String,
    sql: String,
    cols: Vec<usize>,
}

/// What the stage keeps while it runs.
struct Writer<'a> {
    salvage: &'a Salvage,
    schema: &'a Schema,
    map: &'a PageMap,
    sink: &'a Sink,
    made: BTreeMap<usize, Made>,
    /// Per table: its live rows' values, hashed (made when first asked,
    /// for rows whose rowid is lost).
    live: HashMap<usize, LiveRows>,
    rec: Record,
    /// The schema's tables, then the dropped ones ([`super::dropped`]),
    /// which have no live rows, then the shape-named ones made as freed
    /// leaves need them.
    tables: Vec<Table>,
    /// How many of `tables` come before the shape-named ones: only those
    /// are tried for a page's records.
    known: usize,
    /// The shape-named tables, by their width.
    shapes: BTreeMap<usize, Shape>,
    /// Freelist pages that are not leaves, no known table took.
    deferred: Vec<u32>,
    /// The last page's cells as they are now ([`Writer::live_here`]).
    here: Option<(u32, Rc<LiveHere>)>,
}

/// Writes the deleted rows found (see the module doc); gives a report per
/// table with any.
pub(super) fn write_deleted(
    salvage: &Salvage,
    schema: &Schema,
    map: &PageMap,
    sink: &Sink,
    not_created: &HashSet<String>,
) -> Result<Vec<DeletedTable>> {
    let mut tables = schema.tables.clone();
    tables.extend(dropped_tables(salvage, schema, map)?);
    let known = tables.len();
    let mut w = Writer {
        salvage,
        schema,
        map,
        sink,
        made: BTreeMap::new(),
        live: HashMap::new(),
        rec: Record::new(),
        tables,
        known,
        shapes: BTreeMap::new(),
        deferred: Vec::new(),
        here: None,
    };
    let usable = |t: &Table| t.parsed && !not_created.contains(&t.name);
    let snap = &salvage.snapshot;
    let mut buf = vec![0u8; snap.page_size() as usize];
    // A dropped table's freed pages, by a walk from its old root: its own.
    let mut taken: HashSet<u32> = HashSet::new();
    for ti in schema.tables.len()..w.tables.len() {
        let pages = dropped_pages(salvage, map, w.tables[ti].root);
        for pgno in pages.leaves {
            if taken.insert(pgno) && snap.read_page(pgno, &mut buf).is_ok() {
                let raw = buf.clone();
                w.leaf_of(ti, pgno, &raw, Origin::Dropped)?;
            }
        }
        for pgno in pages.headless {
            if taken.insert(pgno) && snap.read_page(pgno, &mut buf).is_ok() {
                let raw = buf.clone();
                w.headless_of(ti, pgno, &raw)?;
            }
        }
    }
    for pgno in 2..=snap.page_count() {
        if taken.contains(&pgno) {
            continue;
        }
        let owner = map.get(pgno);
        let table = match owner {
            Some(Owner::Table(t) | Owner::TableDamaged(t)) => Some(t),
            Some(Owner::Free) => None,
            _ => continue,
        };
        if snap.read_page(pgno, &mut buf).is_err() {
            continue;
        }
        match table {
            Some(ti) if schema.tables.get(ti).is_some_and(usable) => {
                w.page_free_space(ti, pgno, &buf, Origin::Unallocated)?;
            }
            Some(_) => {}
            None => w.freelist_page(pgno, &buf, &usable)?,
        }
    }
    w.freed_non_leaves(&mut buf, &usable)?;
    for pgno in salvage.pages_with_older_versions() {
        let ti = map
            .table_of(pgno)
            .filter(|&t| schema.tables.get(t).is_some_and(usable));
        w.older_versions(ti, pgno, &mut buf, &usable)?;
    }
    // Pages as they were before a transaction, in a rollback journal that
    // is not hot (journal_mode=PERSIST keeps one).
    if let Some(j) = salvage.before_images() {
        for &(pgno, off) in &j.images {
            if j.read(off, &mut buf).is_ok() {
                let ti = map
                    .table_of(pgno)
                    .filter(|&t| schema.tables.get(t).is_some_and(usable));
                let raw = buf.clone();
                w.older_page(ti, pgno, &raw, &usable, Origin::Journal)?;
            }
        }
    }
    // The file's pages past the newest commit's end (a WAL that shrank the
    // database: a VACUUM, an auto-vacuum).
    for pgno in snap.page_count().saturating_add(1)..=salvage.file_page_count() {
        if salvage.read_file_page(pgno, &mut buf).is_ok() {
            let raw = buf.clone();
            w.unowned_leaf(pgno, &raw, &usable, Origin::OlderVersion)?;
        }
    }
    w.finish()
}

impl Writer<'_> {
    /// The cells in the free space of table `ti`'s page `pgno`.
    fn page_free_space(&mut self, ti: usize, pgno: u32, raw: &[u8], gap: Origin) -> Result<()> {
        let usable = self.salvage.snapshot.usable_size();
        let Ok(page) = BtreePage::parse(raw, pgno, usable) else {
            return Ok(());
        };
        // An interior page's free space holds leaf cells too: a root leaf
        // that split kept its bytes.
        let t = &self.tables[ti];
        if page.kind.is_table() == t.without_rowid {
            return Ok(());
        }
        let enc = self.salvage.snapshot.header().encoding;
        for c in free_cells(raw, &page, usable, t, enc) {
            let from = match (c.place, gap) {
                (_, Origin::OlderVersion | Origin::Journal) => gap,
                (Place::Gap | Place::Pointed, _) => Origin::Unallocated,
                (Place::Freeblock, _) => Origin::Freeblock,
                (Place::Rebuilt, _) => Origin::FreeblockRebuilt,
            };
            self.offer(ti, pgno, &c, from)?;
        }
        Ok(())
    }

    /// Older versions of page `pgno`, table `ti`'s now: their cells and
    /// free space. A page no table owns now (after a VACUUM, say) is read
    /// as an unowned leaf.
    fn older_versions(
        &mut self,
        ti: Option<usize>,
        pgno: u32,
        buf: &mut [u8],
        usable_table: &dyn Fn(&Table) -> bool,
    ) -> Result<()> {
        let salvage = self.salvage;
        let snap = &salvage.snapshot;
        let mut versions: Vec<Option<u64>> = Vec::new();
        if snap.wal_offset(pgno).is_some() {
            versions.push(None);
        }
        versions.extend(salvage.older_versions(pgno).iter().map(|&o| Some(o)));
        for v in versions {
            let ok = match v {
                None => salvage.read_file_page(pgno, buf).is_ok(),
                Some(off) => salvage.read_version(off, buf).is_ok(),
            };
            if ok {
                self.older_page(ti, pgno, buf, usable_table, Origin::OlderVersion)?;
            }
        }
        Ok(())
    }

    /// An older version `raw` of page `pgno` (table `ti`'s now, or no
    /// table's), read when it is a table leaf whose space adds up: its
    /// cells and free space.
    fn older_page(
        &mut self,
        ti: Option<usize>,
        pgno: u32,
        raw: &[u8],
        usable_table: &dyn Fn(&Table) -> bool,
        from: Origin,
    ) -> Result<()> {
        let usable = self.salvage.snapshot.usable_size();
        let Ok(page) = BtreePage::parse(raw, pgno, usable) else {
            return Ok(());
        };
        if !page.kind.is_leaf() || !page.is_consistent() {
            return Ok(());
        }
        let Some(ti) = ti else {
            return self.unowned_leaf(pgno, raw, usable_table, from);
        };
        let here = self.live_here(pgno);
        for c in cells_by_pointer(&page).0 {
            if here.has(c.rowid, &c.local) {
                continue;
            }
            // An older chain is read only through pages no live tree
            // owns ([`Writer::offer`]).
            self.offer(ti, pgno, &FreeCell::pointed(c), from)?;
        }
        self.page_free_space(ti, pgno, raw, from)
    }

    /// The cells of page `pgno` as it is now: a cell of an older version
    /// with one's rowid, or with one's bytes, is that live row (an update,
    /// or no change), whatever else a live-row lookup would say. Kept for
    /// the next call (the versions of one page come one after another).
    fn live_here(&mut self, pgno: u32) -> Rc<LiveHere> {
        if let Some((p, here)) = &self.here {
            if *p == pgno {
                return Rc::clone(here);
            }
        }
        let here = Rc::new(self.read_live_here(pgno));
        self.here = Some((pgno, Rc::clone(&here)));
        here
    }

    fn read_live_here(&self, pgno: u32) -> LiveHere {
        let snap = &self.salvage.snapshot;
        let mut buf = vec![0u8; snap.page_size() as usize];
        let mut here = LiveHere::default();
        if snap.read_page(pgno, &mut buf).is_err() {
            return here;
        }
        if let Ok(page) = BtreePage::parse(&buf, pgno, snap.usable_size()) {
            for c in cells_by_pointer(&page).0 {
                here.rowids.extend(c.rowid);
                here.cells.insert(cell_hash(c.rowid, &c.local));
            }
        }
        here
    }

    /// Writes cell `c` of page `pgno` as a deleted row of table `ti`, unless
    /// a live row says it is not deleted.
    fn offer(&mut self, ti: usize, pgno: u32, c: &FreeCell, from: Origin) -> Result<()> {
        let t = &self.tables[ti];
        let snap = &self.salvage.snapshot;
        let enc = snap.header().encoding;
        // The local bytes, or the whole payload its chain gives.
        let mut assembled = Vec::new();
        let mut whole = true;
        if c.overflow != 0 {
            // A freed cell's chain went to the freelist with it: read it
            // only through pages no live tree owns.
            let p = Payload {
                total: c.total,
                local: &c.payload,
                overflow: c.overflow,
            };
            let (mut out, mut scratch, mut seen) = (Vec::new(), Vec::new(), HashSet::new());
            let read = assemble(snap, &p, &mut out, &mut scratch, &mut seen, &mut NoVisitor);
            let free = seen
                .iter()
                .all(|&o| matches!(self.map.get(o), Some(Owner::Free | Owner::Unclaimed)));
            whole = read.is_ok_and(|zeros| !zeros) && free;
            if whole {
                assembled = out;
            }
        }
        if !whole && c.rowid.is_none() && !t.without_rowid {
            // A rebuilt head whose chain is not there whole: with its rowid
            // lost and values read in part, nothing tells it from an older
            // copy of a live row.
            return Ok(());
        }
        let payload: &[u8] = if assembled.is_empty() {
            &c.payload
        } else {
            &assembled
        };
        let parsed = if whole {
            self.rec.parse(payload).is_ok() && self.rec.end() == payload.len()
        } else {
            self.rec.parse_partial(payload).is_ok()
        };
        if !parsed
            || !fits(t, &self.rec, payload)
            || !texts_valid(&self.rec, payload, enc)
            || self.rec.body_is_empty()
            || blob_in_typed(t, &self.rec, payload)
            || (ti >= self.known && !self.shape_admits(ti, payload))
            || !texts_plain(&self.rec, payload, enc)
            || !texts_aligned(&self.rec, payload, enc)
        {
            return Ok(());
        }
        let values: Vec<SqlValue> = (0..t.columns.len())
            .map(|col| to_sql(column_value(t, &self.rec, payload, c.rowid, col), enc))
            .collect();
        if self.is_live(ti, c.rowid, &values)? {
            return Ok(());
        }
        self.insert(ti, (c.rowid, pgno, c.offset), &values, from, whole)
    }

    /// Whether a live row says the row is not deleted: one has its rowid;
    /// or, its rowid lost, one has all of its values (or all but one:
    /// [`LiveRows::has_version_of`]).
    fn is_live(&mut self, ti: usize, rowid: Option<i64>, values: &[SqlValue]) -> Result<bool> {
        if ti >= self.schema.tables.len() {
            // A dropped table: no row of it is live.
            return Ok(false);
        }
        let t = &self.tables[ti];
        if t.without_rowid {
            return self.key_is_live(t, values);
        }
        let Some(rid) = t.rowid_name() else {
            return Ok(true);
        };
        if let Some(r) = rowid {
            let q = format!(
                "SELECT count(*) FROM {} WHERE {rid} = ?1",
                quote_ident(&t.name)
            );
            let n: i64 = self
                .sink
                .conn
                .prepare_cached(&q)?
                .query_row([r], |row| row.get(0))?;
            return Ok(n > 0);
        }
        if !self.live.contains_key(&ti) {
            let rows = LiveRows::read(self.sink, t)?;
            self.live.insert(ti, rows);
        }
        Ok(self
            .live
            .get(&ti)
            .is_some_and(|l| l.has_version_of(t, values)))
    }

    /// Whether a live row of WITHOUT ROWID table `t` has the primary key
    /// of `values` (by declared column); a key not read whole counts live.
    fn key_is_live(&self, t: &Table, values: &[SqlValue]) -> Result<bool> {
        let mut key: Vec<(u32, &str, &SqlValue)> = Vec::new();
        for (c, col) in t.columns.iter().enumerate() {
            if col.pk > 0 {
                let v = values.get(c).unwrap_or(&SqlValue::Null);
                key.push((col.pk, col.name.as_str(), v));
            }
        }
        key.sort_by_key(|p| p.0);
        if key.is_empty()
            || key.len() != pk_columns(t)
            || key.iter().any(|p| *p.2 == SqlValue::Null)
        {
            return Ok(true);
        }
        let terms: Vec<String> = key
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{} = ?{}", quote_ident(p.1), i + 1))
            .collect();
        let q = format!(
            "SELECT count(*) FROM {} WHERE {}",
            quote_ident(&t.name),
            terms.join(" AND ")
        );
        let params = rusqlite::params_from_iter(key.iter().map(|p| p.2));
        let n: i64 = self
            .sink
            .conn
            .prepare_cached(&q)?
            .query_row(params, |row| row.get(0))?;
        Ok(n > 0)
    }

    fn insert(
        &mut self,
        ti: usize,
        (rowid, pgno, offset): (Option<i64>, u32, usize),
        values: &[SqlValue],
        from: Origin,
        whole: bool,
    ) -> Result<()> {
        let t = &self.tables[ti];
        if !self.made.contains_key(&ti) {
            let m = make_table(self.sink, self.schema, t, ti >= self.known)?;
            self.made.insert(ti, m);
        }
        let Some(m) = self.made.get(&ti) else {
            return Ok(());
        };
        let mut evidence = if whole {
            from.evidence().to_string()
        } else {
            format!(
                "{}; a value read only in part (its overflow chain reused or broken)",
                from.evidence()
            )
        };
        if t.without_rowid {
            evidence = evidence.replace("its rowid not live", "its primary key not live");
        }
        let mut params: Vec<SqlValue> = m.cols.iter().map(|&c| values[c].clone()).collect();
        params.extend([
            rowid.map_or(SqlValue::Null, SqlValue::Integer),
            SqlValue::Integer(i64::from(pgno)),
            SqlValue::Integer(offset as i64),
            SqlValue::Text(from.name().into()),
            SqlValue::Text(evidence),
        ]);
        self.sink
            .conn
            .prepare_cached(&m.sql)?
            .execute(rusqlite::params_from_iter(params))?;
        Ok(())
    }

    /// Keeps each deleted row once (the first place it was found; a row
    /// with its rowid over the same values without), and reports.
    fn finish(self) -> Result<Vec<DeletedTable>> {
        let mut out = Vec::new();
        for (ti, m) in &self.made {
            let t = &self.tables[*ti];
            let cols: Vec<String> = m
                .cols
                .iter()
                .map(|&c| quote_ident(&t.columns[c].name))
                .collect();
            // A row without its rowid is the same as one with it when every
            // value but the rowid alias is.
            let same = m
                .cols
                .iter()
                .filter(|&&c| t.rowid_alias != Some(c))
                .map(|&c| quote_ident(&t.columns[c].name))
                .map(|c| format!("d.{c} IS o.{c}"))
                .collect::<Vec<_>>()
                .join(" AND ");
            let h = quote_ident(&m.name);
            self.sink.conn.execute_batch(&format!(
                "DELETE FROM {h} WHERE rowid NOT IN (SELECT min(rowid) FROM {h} GROUP BY salvage_rowid, {all});
                 DELETE FROM {h} AS d WHERE d.salvage_rowid IS NULL AND EXISTS
                   (SELECT 1 FROM {h} AS o WHERE o.salvage_rowid IS NOT NULL AND {same});",
                all = cols.join(", ")
            ))?;
            let mut by_source = BTreeMap::new();
            let mut st = self.sink.conn.prepare(&format!(
                "SELECT salvage_source, count(*) FROM {h} GROUP BY 1"
            ))?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                by_source.insert(r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64);
            }
            let rows: u64 = by_source.values().sum();
            out.push(DeletedTable {
                table: t.name.clone(),
                name: m.name.clone(),
                rows,
                by_source,
            });
        }
        Ok(out)
    }
}

/// The cells of a page as it is now ([`Writer::live_here`]).
#[derive(Default)]
struct LiveHere {
    rowids: HashSet<i64>,
    cells: HashSet<u64>,
}

impl LiveHere {
    /// Whether a cell with this rowid and these local bytes is one of them.
    fn has(&self, rowid: Option<i64>, local: &[u8]) -> bool {
        rowid.is_some_and(|r| self.rowids.contains(&r))
            || self.cells.contains(&cell_hash(rowid, local))
    }
}

fn cell_hash(rowid: Option<i64>, local: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    rowid.hash(&mut h);
    local.hash(&mut h);
    h.finish()
}

/// Creates `<table>__deleted` (a free name; a shape-named table under its
/// own name): the table's columns (declared types, no constraints), then
/// the provenance columns.
fn make_table(sink: &Sink, schema: &Schema, t: &Table, shape: bool) -> Result<Made> {
    let mut name = format!("{}__deleted", t.name);
    if shape {
        // Named by its shape already, a name the schema does not use.
        name = t.name.clone();
    }
    let mut k = 0;
    while !shape && schema.table(&name).is_some() {
        k += 1;
        name = format!("{}__deleted{k}", t.name);
    }
    let cols: Vec<usize> = (0..t.columns.len())
        .filter(|&c| !t.columns[c].generated)
        .collect();
    let decl = |c: usize| {
        let col = &t.columns[c];
        format!("{} {}", quote_ident(&col.name), col.decl_type)
    };
    let decls: Vec<String> = cols.iter().map(|&c| decl(c)).collect();
    let names: Vec<String> = cols
        .iter()
        .map(|&c| quote_ident(&t.columns[c].name))
        .collect();
    sink.conn.execute_batch(&format!(
        "CREATE TABLE {}({}, salvage_rowid INTEGER, salvage_page INTEGER, salvage_offset INTEGER, \
         salvage_source TEXT, salvage_evidence TEXT)",
        quote_ident(&name),
        decls.join(", ")
    ))?;
    let sql = format!(
        "INSERT INTO {}({}, salvage_rowid, salvage_page, salvage_offset, salvage_source, \
         salvage_evidence) VALUES({})",
        quote_ident(&name),
        names.join(", "),
        vec!["?"; cols.len() + 5].join(",")
    );
    Ok(Made { name, sql, cols })
}
