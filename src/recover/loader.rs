//! Stage: the loader, rows into the output, bulk pages and SQL inserts
//! behind one interface.
//!
//! Takes the schema, the [`LoadPlan`] and rows; gives the output file with
//! its tables created, the UNIQUE indexes first (so that a row from a less
//! trusted source that would break one is skipped and counted, like a row
//! whose key is already there). The tables the plan loads in bulk have their
//! own trees' complete rows written page by page ([`super::bulk`]) while
//! SQLite has the file closed, and their plain indexes copied from the
//! input where they check out ([`super::index_copy`]), else built from the
//! rows written ([`super::index_build`]; those indexes are made before the
//! load, with the UNIQUE ones); [`Loader::end_bulk`] hands the file back to
//! SQLite, which rebuilds the other indexes and checks what was written,
//! and every later row goes through SQL. A check that fails there asks for a run without bulk
//! loading: the answer is a value ([`Attempt::Retry`]), not an error.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::thread::JoinHandle;

use super::bulk::{BulkFile, IndexTree, TableTree};
use super::context::Attempt;
use super::index_build::{Built, IndexBuild, builds_for};
use super::index_copy::{IndexCopy, KeyOrder, copies_for, is_unique, qualifies};
use super::options::ProgressFn;
use super::plan::LoadPlan;
use super::rules::{meets_rules, sqlite_judges};
use super::sink::{Insert, Sink};
use super::tally::{Lost, Placed, RecordRead, Tally};
use crate::error::Result;
use crate::rows::column_value;
use crate::schema::{Schema, StoredValue, Table, quote_ident};
use crate::snapshot::Snapshot;
use crate::tree::Hole;
use sqlite_salvage_format::header::TextEncoding;
use sqlite_salvage_format::record::{Record, ValueRef};

/// A table's b-tree being written page by page.
pub(crate) enum TreeWriter {
    /// A rowid table.
    Table(TableTree),
    /// A WITHOUT ROWID table, its key order checked as rows arrive.
    Index(IndexTree, KeyOrder),
}

/// Rows being written in bulk, until [`Loader::end_bulk`].
struct Bulk {
    file: BulkFile,
    /// Root pages in the new file, by table or index name.
    roots: HashMap<String, u32>,
    /// The indexes of the table being written that may be copied from
    /// the input ([`super::index_copy`]).
    copies: Vec<IndexCopy>,
    /// The same indexes, built from the rows written where the copy fails
    /// ([`super::index_build`]).
    builds: Vec<IndexBuild>,
    /// Rowids of the table being written whose rows are not in its tree as
    /// written (deferred, held for confirmation, or lost): an index copied
    /// from the input leaves their entries out.
    not_written: HashSet<i64>,
    /// Whether the table being written is left to SQLite's check
    /// ([`super::rules::sqlite_judges`]); else each row meets the rules
    /// before it is written page by page.
    judged_by_sqlite: bool,
    /// Indexes copied or built: SQLite need not rebuild them.
    copied: HashSet<String>,
    /// Of those, the ones copied from the input.
    from_input: HashSet<String>,
    /// WITHOUT ROWID tables whose rows were seen to arrive in strictly
    /// increasing key order ([`KeyOrder`]).
    key_ordered: HashSet<String>,
    /// A UNIQUE index built over the tree rows found a key twice.
    refused: Option<String>,
    /// Rows of bulk tables that could not be written as they are: they go
    /// in through SQL, as their values, once SQLite has the file again.
    deferred: Vec<(Placed, Vec<StoredValue>)>,
}

/// The output database being filled.
pub(crate) struct Loader {
    pub sink: Sink,
    /// The database's text encoding.
    enc: TextEncoding,
    bulk: Option<Bulk>,
    /// Syncs the bulk-written pages in the background while SQL goes on.
    early_sync: Option<JoinHandle<std::io::Result<()>>>,
    /// Indexes other than UNIQUE ones made before the load (to be copied
    /// from the input): the finish stage does not make them again.
    pub made_early: HashSet<String>,
    /// Indexes copied whole from the input (they list exactly the rows of
    /// their table's tree that were written; not those built from the rows).
    pub copied: HashSet<String>,
    /// Bulk-written tables whose rows answer to rules only SQLite applies
    /// ([`super::rules::sqlite_judges`]): the finish stage has SQLite check
    /// each of them.
    pub judged_by_sqlite: Vec<String>,
    /// Nothing more is written: the walk only surveys the pages.
    surveying: bool,
}

impl Loader {
    /// Creates the output at `out` with the schema's tables and UNIQUE
    /// indexes; opens it for bulk writing when the plan has bulk tables,
    /// else starts the SQL transaction.
    pub fn create(
        out: &Path,
        schema: &Schema,
        enc: TextEncoding,
        page_size: u32,
        plan: &mut LoadPlan,
    ) -> Result<(Loader, Vec<(String, String)>)> {
        let mut sink = Sink::create(out, enc, page_size)?;
        plan.tables_not_created = sink.create_tables(schema);
        let objects_not_created =
            create_objects(&sink, schema, &["index"], Some(true), &HashSet::new());
        plan.settle(schema);
        let made_early = if plan.any_bulk() {
            make_copyable_indexes(&sink, schema, plan)
        } else {
            HashSet::new()
        };
        let bulk = if plan.any_bulk() {
            let mut roots = HashMap::new();
            let mut st = sink.conn.prepare(
                "SELECT name, rootpage FROM sqlite_schema WHERE type IN ('table', 'index')",
            )?;
            for r in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))? {
                let (name, root) = r?;
                roots.insert(name, root);
            }
            drop(st);
            sink.close()?;
            Some(Bulk {
                file: BulkFile::open(out)?,
                roots,
                copies: Vec::new(),
                builds: Vec::new(),
                not_written: HashSet::new(),
                judged_by_sqlite: false,
                copied: HashSet::new(),
                from_input: HashSet::new(),
                key_ordered: HashSet::new(),
                refused: None,
                deferred: Vec::new(),
            })
        } else {
            sink.conn.execute_batch("BEGIN")?;
            None
        };
        let loader = Loader {
            sink,
            enc,
            bulk,
            early_sync: None,
            made_early,
            copied: HashSet::new(),
            judged_by_sqlite: Vec::new(),
            surveying: false,
        };
        Ok((loader, objects_not_created))
    }

    /// A page-by-page writer for table `t`'s own tree, when it is loaded
    /// in bulk. Its plain indexes are read first: one whose tree reads
    /// whole and in order is copied once its rows match; the others are
    /// built from the rows as they are written.
    pub fn tree_writer(
        &mut self,
        plan: &LoadPlan,
        snap: &Snapshot,
        schema: &Schema,
        ti: usize,
    ) -> Result<Option<TreeWriter>> {
        let t = &schema.tables[ti];
        let Some(bulk) = self.bulk.as_mut() else {
            return Ok(None);
        };
        let Some(&root) = bulk.roots.get(&t.name) else {
            return Ok(None);
        };
        if !plan.is_bulk(ti) || root <= 1 {
            return Ok(None);
        }
        let page_count = snap.page_count();
        bulk.not_written.clear();
        bulk.judged_by_sqlite = sqlite_judges(t);
        if bulk.judged_by_sqlite {
            self.judged_by_sqlite.push(t.name.clone());
        }
        let roots = &bulk.roots;
        bulk.copies = copies_for(schema, t, page_count, |n| roots.get(n).copied());
        let mut to_build = HashSet::new();
        for c in &mut bulk.copies {
            let ok = c.precheck(snap, &schema.indexes[c.index])?;
            if !ok {
                to_build.insert(c.index);
            }
        }
        let dir = crate::io::parent_dir(self.sink.path());
        let root_of = |n: &str| roots.get(n).copied();
        bulk.builds = builds_for(schema, t, page_count, &dir, root_of, |i| {
            to_build.contains(&i)
        });
        Ok(Some(if t.without_rowid {
            TreeWriter::Index(IndexTree::new(root), KeyOrder::for_table(t))
        } else {
            TreeWriter::Table(TableTree::new(&bulk.file, root))
        }))
    }

    /// Writes a row of table `t`'s own tree: page by page when it is
    /// complete, uses exactly its payload and comes in key order; else, in
    /// a bulk load, deferred until SQLite has the file; else through SQL.
    /// The tally counts it (or the duplicate) once it is written.
    pub fn tree_row(
        &mut self,
        t: &Table,
        tree: Option<&mut TreeWriter>,
        placed: Placed,
        rec: &Record,
        payload: &[u8],
        tally: &mut Tally,
    ) -> Result<()> {
        if self.surveying {
            return Ok(());
        }
        let rowid = placed.rowid;
        let Some(bulk) = self.bulk.as_mut() else {
            let how = self
                .sink
                .insert(t, rowid, &|c| column_value(t, rec, payload, rowid, c))?;
            if how == Insert::Written {
                flag_partial(&mut self.sink, t, &placed)?;
                tally.tree_row(&placed);
            } else {
                let enc = self.enc;
                tally.refused(placed.table, how, || {
                    Lost::of_tree_row(&placed, Lost::values_of(rec, payload, enc))
                });
            }
            return Ok(());
        };
        // Its payload as it is, unless its record had to be read around
        // damage: then its values go in through SQL.
        let whole = placed.truncated_col.is_none()
            && !placed.zeroed
            && placed.record == RecordRead::Whole
            && rec.end() == payload.len()
            && (bulk.judged_by_sqlite || meets_rules(t, rec, payload, self.enc));
        let written = match (tree, rowid) {
            (Some(TreeWriter::Table(tree)), Some(r)) if whole => {
                tree.push(&mut bulk.file, r, payload)?
            }
            (Some(TreeWriter::Index(tree, order)), _) if whole => {
                tree.push(&mut bulk.file, payload)?;
                order.add(rec, payload);
                true
            }
            _ => false,
        };
        if written {
            tally.tree_row(&placed);
            for c in &mut bulk.copies {
                match rowid {
                    Some(r) => c.add_row(t, rec, payload, r),
                    None => c.spoil(),
                }
            }
            if let Some(r) = rowid {
                for b in &mut bulk.builds {
                    b.add_row(t, rec, payload, r);
                }
            }
        } else {
            match rowid {
                Some(r) => {
                    bulk.not_written.insert(r);
                }
                None => bulk.copies.iter_mut().for_each(IndexCopy::spoil),
            }
            let values = stored_values(t, rec, payload, rowid);
            bulk.deferred.push((placed, values));
        }
        Ok(())
    }

    /// Stops writing for good (what was written is given up): the walk
    /// goes on only to survey the pages ([`super::splice`]).
    pub fn survey(&mut self) {
        self.bulk = None;
        self.surveying = true;
    }

    /// Whether the loader stopped writing to survey.
    pub fn surveying(&self) -> bool {
        self.surveying
    }

    /// Asks for a run without what this one did differently: the bulk
    /// load ends in [`Attempt::Retry`] with `why`.
    pub fn refuse(&mut self, why: String) {
        if let Some(b) = self.bulk.as_mut() {
            b.refused.get_or_insert(why);
        }
    }

    /// A row of the table being written that is not in its tree as written
    /// (held for confirmation, or lost): through SQL, or not at all.
    pub fn not_written(&mut self, rowid: Option<i64>) {
        if let (Some(b), Some(r)) = (self.bulk.as_mut(), rowid) {
            b.not_written.insert(r);
        }
    }

    /// Completes a tree written page by page, then copies those of its
    /// table's indexes that check out against its rows (but for the rows in
    /// its `holes`, sorted, outside the rowid ranges of the orphaned leaves
    /// `joined` to it, and those not written, whose entries SQLite
    /// adds if they go in), and builds the others.
    pub fn finish_tree(
        &mut self,
        tree: Option<TreeWriter>,
        snap: &Snapshot,
        (schema, t): (&Schema, &Table),
        (holes, joined): (&[Hole], &dyn Fn(i64) -> bool),
    ) -> Result<()> {
        let Some(b) = self.bulk.as_mut() else {
            return Ok(());
        };
        match tree {
            Some(TreeWriter::Table(tree)) => tree.finish(&mut b.file)?,
            Some(TreeWriter::Index(tree, order)) => {
                tree.finish(&mut b.file)?;
                if order.holds() {
                    b.key_ordered.insert(t.name.clone());
                }
            }
            None => return Ok(()),
        }
        let not_written = std::mem::take(&mut b.not_written);
        let later =
            |r: i64| not_written.contains(&r) || (Hole::find(holes, r).is_some() && !joined(r));
        for c in std::mem::take(&mut b.copies) {
            let ix = &schema.indexes[c.index];
            let none_later = not_written.is_empty() && holes.is_empty();
            if c.copy(snap, ix, &mut b.file, (&later, none_later))? {
                b.copied.insert(ix.name.clone());
                b.from_input.insert(ix.name.clone());
            }
        }
        // The rows a deferred insert brings later are added by SQLite.
        for build in std::mem::take(&mut b.builds) {
            let ix = &schema.indexes[build.index];
            if b.copied.contains(&ix.name) {
                continue;
            }
            match build.build(&mut b.file, &ix.name)? {
                Built::Written => {
                    b.copied.insert(ix.name.clone());
                }
                Built::Refused(why) => {
                    b.copied.insert(ix.name.clone());
                    b.refused.get_or_insert(why);
                }
                Built::Skipped => {}
            }
        }
        Ok(())
    }

    /// Ends the bulk load: the bulk-written tables are complete, and SQLite
    /// takes over while their pages are written back in the background.
    /// SQLite rebuilds the indexes neither copied nor built from the
    /// written rows, and checks the key order of the WITHOUT ROWID tables
    /// whose order was not seen to hold as they were written; then the
    /// deferred rows go in. `Some(retry)` when SQLite refuses what was written.
    pub fn end_bulk(
        &mut self,
        schema: &Schema,
        plan: &LoadPlan,
        tally: &mut Tally,
        sync: bool,
        progress: Option<&ProgressFn>,
    ) -> Result<Option<Attempt>> {
        let Some(bulk) = self.bulk.take() else {
            return Ok(None);
        };
        if let Some(why) = bulk.refused {
            return Ok(Some(Attempt::Retry(why)));
        }
        if let Some(p) = bulk.file.unsound() {
            let why = format!("page {p} as written does not read back as a sound b-tree page");
            return Ok(Some(Attempt::Retry(why)));
        }
        let written = bulk.file.finish()?;
        if sync {
            self.early_sync = Some(std::thread::spawn(move || written.sync_data()));
        }
        self.sink.reopen()?;
        let n = schema.tables.len() as u64;
        for (i, t) in schema.tables.iter().enumerate() {
            ProgressFn::tick(progress, "indexing bulk tables", i as u64, n);
            if !plan.is_bulk(i) {
                continue;
            }
            // An index made early for copying that was not copied goes
            // again: the finish stage makes it once every row is in (one
            // sort, not an index kept up row by row through SQL).
            // Each index neither copied nor built is rebuilt by name (a
            // WITHOUT ROWID table's own tree, its primary key, is not one:
            // it was written in key order, checked below).
            let mut rebuild = Vec::new();
            for ix in schema.indexes.iter() {
                let of_t = ix.table.eq_ignore_ascii_case(&t.name);
                if !of_t || !bulk.roots.contains_key(&ix.name) || bulk.copied.contains(&ix.name) {
                    continue;
                }
                if self.made_early.remove(&ix.name) {
                    let drop = format!("DROP INDEX {}", quote_ident(&ix.name));
                    self.sink.conn.execute_batch(&drop)?;
                } else {
                    rebuild.push(&ix.name);
                }
            }
            for name in rebuild {
                let reindex = format!("REINDEX {}", quote_ident(name));
                if let Err(e) = self.sink.conn.execute_batch(&reindex) {
                    // Two tree rows break a UNIQUE constraint: only a
                    // row-by-row load can keep the first and skip the rest.
                    return Ok(Some(Attempt::Retry(e.to_string())));
                }
            }
            if t.without_rowid && !bulk.key_ordered.contains(&t.name) {
                // Its entries went in in the order the tree gave them:
                // SQLite checks the key order (and uniqueness).
                let ic: String = self.sink.conn.query_row(
                    &format!("PRAGMA integrity_check({})", quote_ident(&t.name)),
                    [],
                    |r| r.get(0),
                )?;
                if ic != "ok" {
                    return Ok(Some(Attempt::Retry(ic)));
                }
            }
        }
        ProgressFn::tick(progress, "indexing bulk tables", n, n);
        self.copied = bulk.from_input;
        self.sink.conn.execute_batch("BEGIN")?;
        for (p, values) in bulk.deferred {
            let t = &schema.tables[p.table];
            let how = self.insert_values(t, p.rowid, &values)?;
            if how == Insert::Written {
                flag_partial(&mut self.sink, t, &p)?;
                tally.tree_row(&p);
            } else {
                let enc = self.enc;
                tally.refused(p.table, how, || {
                    let owned = values.iter().map(|v| v.as_ref().to_owned(enc)).collect();
                    Lost::of_tree_row(&p, owned)
                });
            }
        }
        Ok(None)
    }

    /// Inserts a row through SQL from a record.
    pub fn insert_record(
        &mut self,
        t: &Table,
        rowid: Option<i64>,
        rec: &Record,
        payload: &[u8],
    ) -> Result<Insert> {
        self.sink
            .insert(t, rowid, &|k| column_value(t, rec, payload, rowid, k))
    }

    /// Inserts a row through SQL from its values.
    pub fn insert_values(
        &mut self,
        t: &Table,
        rowid: Option<i64>,
        values: &[StoredValue],
    ) -> Result<Insert> {
        self.sink.insert(t, rowid, &|c| {
            values.get(c).map_or(ValueRef::Null, |v| v.as_ref())
        })
    }

    /// Waits for the background sync of the bulk-written pages; its
    /// outcome is the final sync's to report.
    pub fn join_early_sync(&mut self) {
        if let Some(t) = self.early_sync.take() {
            let _ = t.join();
        }
    }
}

/// Lists in the output's flags table the values of a written tree row that
/// were read only in part or not at all: from the first column its record
/// gave only in part onwards (a NULL there stands for a value that was not
/// there to read).
fn flag_partial(sink: &mut Sink, t: &Table, p: &Placed) -> Result<()> {
    let Some(cut) = p.truncated_col else {
        return Ok(());
    };
    let what = match p.record {
        RecordRead::HeaderLost => "lost: the record's header cannot be read",
        RecordRead::ValuesRunPast => "read only in part: the record's values run past its cell",
        _ => "read only in part: the overflow chain is broken",
    };
    flag_columns(sink, t, p.rowid, |slot| slot >= cut, what)
}

/// Lists in the output's flags table, as `what`, the values of a written
/// row of `t` whose record column (slot) `flagged` picks.
pub(crate) fn flag_columns(
    sink: &mut Sink,
    t: &Table,
    rowid: Option<i64>,
    flagged: impl Fn(usize) -> bool,
    what: &str,
) -> Result<()> {
    let rowid = if t.without_rowid { None } else { rowid };
    for (i, c) in t.columns.iter().enumerate() {
        // The rowid alias comes from the cell's key, not the record.
        if t.rowid_alias != Some(i) && c.slot.is_some_and(&flagged) {
            sink.flag_value(t, rowid, &c.name, what)?;
        }
    }
    Ok(())
}

/// A row's values by declared column, owned (text in the database encoding).
pub(crate) fn stored_values(
    t: &Table,
    rec: &Record,
    payload: &[u8],
    rowid: Option<i64>,
) -> Vec<StoredValue> {
    (0..t.columns.len())
        .map(|c| StoredValue::from_ref(column_value(t, rec, payload, rowid, c)))
        .collect()
}

/// Makes, before a bulk load, the indexes other than UNIQUE ones of the
/// bulk tables that may be copied from the input; returns their names.
fn make_copyable_indexes(sink: &Sink, schema: &Schema, plan: &LoadPlan) -> HashSet<String> {
    let page_count = plan.page_count();
    let mut made = HashSet::new();
    for (ti, t) in schema.tables.iter().enumerate() {
        if !plan.is_bulk(ti) || plan.not_created(&t.name) {
            continue;
        }
        for ix in &schema.indexes {
            if is_unique(schema, ix) || qualifies(schema, t, ix, page_count).is_none() {
                continue;
            }
            let sql = schema
                .entries
                .iter()
                .find(|e| e.kind == "index" && e.name == ix.name)
                .and_then(|e| e.sql.as_deref());
            if let Some(sql) = sql {
                if sink.conn.execute_batch(sql).is_ok() {
                    made.insert(ix.name.clone());
                }
            }
        }
    }
    made
}

/// Creates the schema objects of `kinds` ("index", "view", "trigger"),
/// only the UNIQUE or only the other indexes when `unique` says so; returns
/// those SQLite refused, with its reason. Those in `made` exist already.
pub(crate) fn create_objects(
    sink: &Sink,
    schema: &Schema,
    kinds: &[&str],
    unique: Option<bool>,
    made: &HashSet<String>,
) -> Vec<(String, String)> {
    let mut failed = Vec::new();
    for kind in kinds {
        for e in schema.of_kind(kind) {
            let Some(sql) = &e.sql else { continue };
            if made.contains(&e.name) {
                continue;
            }
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
