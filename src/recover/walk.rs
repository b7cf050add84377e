//! Stage: the tree walk, every table from its root.
//!
//! Takes the schema, the load plan and the loader; gives the rows each
//! table's tree yields to the loader (counted in the tally), the holes and
//! damage of each tree, its pages marked in the page map, and what needs
//! more evidence: rows of pages whose space does not add up
//! ([`Suspect`]s, for the confirmation stage) and the pages read only in
//! part (for the candidate stage to carve).

use std::collections::HashSet;

use super::candidates::{Buffers, DecodedCell, read_leaf};
use super::carve::{fits, texts_valid};
use super::context::{Attempt, Ctx};
use super::index_build::primary_key_bytes;
use super::index_copy::{KeyOrder, pk_columns};
use super::loader::{Loader, TreeWriter, stored_values};
use super::pagemap::{Owner, PageMap};
use super::plan::LoadPlan;
use super::report::{Evidence, TableReport};
use super::sink::{Sink, Source};
use super::splice::{Feed, KeyRef, orphaned_leaves, worth_a_survey};
use super::tally::{Lost, Placed, RecordRead, Tally};
use crate::error::Result;
use crate::schema::{StoredValue, Table};
use crate::tree::{Damage, Entry, Hole, TreeCursor};
use sqlite_salvage_format::header::TextEncoding;
use sqlite_salvage_format::record::{Record, Value, ValueRef, decode_text};

/// A row read from a page that cannot vouch for it: kept only if the
/// confirmation stage finds an index entry that agrees.
pub(crate) struct Suspect {
    pub table: usize,
    pub rowid: Option<i64>,
    /// Values by declared column, text in the database encoding.
    pub values: Vec<StoredValue>,
    /// The record's values, for lost_and_found.
    pub raw: Vec<Value>,
    pub page: u32,
    pub cell: Option<u16>,
    pub offset: Option<usize>,
    pub source: Source,
    /// Its cell is all of one version (its page's space adds up, or the
    /// cell lies within one 512-byte sector) and its record, whole, fills
    /// it with valid text: an index entry with its key and rowid then
    /// shows that version is live, though the index covers not every
    /// column.
    pub alone: bool,
}

impl Suspect {
    /// `rec` (parsed from `payload`) as a suspect row of table `ti`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ti: usize,
        t: &Table,
        rec: &Record,
        payload: &[u8],
        rowid: Option<i64>,
        at: (u32, Option<u16>, Option<usize>),
        source: Source,
        enc: TextEncoding,
    ) -> Suspect {
        Suspect {
            table: ti,
            rowid,
            values: stored_values(t, rec, payload, rowid),
            raw: Lost::values_of(rec, payload, enc),
            page: at.0,
            cell: at.1,
            offset: at.2,
            source,
            alone: false,
        }
    }
}

impl Suspect {
    /// The row as bound for lost_and_found.
    pub fn into_lost(self) -> Lost {
        Lost {
            page: self.page,
            cell: self.cell,
            offset: self.offset,
            source: self.source,
            rowid: self.rowid,
            values: self.raw,
        }
    }
}

/// What the walk hands over besides the rows it wrote.
#[derive(Default)]
pub(crate) struct Walked {
    pub suspects: Vec<Suspect>,
    /// Tree pages read in part: carved for what their pointers miss.
    pub partly_read: HashSet<u32>,
    /// Orphaned leaves joined to their table's load, with the table.
    pub joined_pages: Vec<(u32, u32)>,
}

/// Walks every table: the bulk-loaded ones first, then the loader hands
/// the file to SQLite (which may ask for a retry), then the rest. A first
/// run whose bulk-loaded tables' interior pages show many orphaned leaves
/// writes nothing: it surveys ([`super::splice`]).
pub(crate) fn walk_tables(
    cx: &Ctx<'_>,
    plan: &LoadPlan,
    loader: &mut Loader,
    tally: &mut Tally,
    map: &mut PageMap,
) -> Result<Result<Walked, Attempt>> {
    let mut walked = Walked::default();
    if plan.may_survey() {
        // Many leaves orphaned: survey first, so that they join the load.
        let roots = plan
            .bulk_tables()
            .into_iter()
            .map(|ti| cx.schema.tables[ti].root);
        let estimate: u64 = roots.map(|r| orphaned_leaves(cx.snap, r)).sum();
        if worth_a_survey(estimate, cx.page_count) {
            loader.survey();
        }
    }
    for ti in plan.bulk_tables() {
        walk_table(cx, plan, ti, loader, tally, map, &mut walked)?;
    }
    if let Some(retry) = loader.end_bulk(
        cx.schema,
        plan,
        tally,
        !cx.opts.no_sync,
        cx.opts.progress.as_ref(),
    )? {
        return Ok(Err(retry));
    }
    for ti in plan.sql_tables() {
        walk_table(cx, plan, ti, loader, tally, map, &mut walked)?;
    }
    Ok(Ok(walked))
}

/// Walks table `ti` from its root: every row to the loader, or to the
/// suspects, or (a table not created) to lost_and_found.
fn walk_table(
    cx: &Ctx<'_>,
    plan: &LoadPlan,
    ti: usize,
    loader: &mut Loader,
    tally: &mut Tally,
    map: &mut PageMap,
    walked: &mut Walked,
) -> Result<()> {
    let t = &cx.schema.tables[ti];
    if t.root == 0 || t.root > cx.page_count {
        unknown_root(&mut tally.tables[ti], t.root);
        return Ok(());
    }
    let progress = cx.opts.progress.as_ref();
    let marks = map.marks(Owner::Table(ti), Owner::TableDamaged(ti), progress);
    let mut cursor = TreeCursor::with_visitor(cx.snap, t.root, marks)
        .lenient(true)
        .keep_partial(true)
        .verify_pages(true)
        .pages_only(loader.surveying());
    if KeyOrder::known(t) {
        // A torn leaf's cells can then stand on their own by their keys.
        let k = pk_columns(t);
        cursor = cursor.key_order(Box::new(move |p: &[u8]| primary_key_bytes(k, p)));
    }
    let mut tree = loader.tree_writer(plan, cx.snap, cx.schema, ti)?;
    let internal = t.name.to_ascii_lowercase().starts_with("sqlite_");
    let not_created = plan.not_created(&t.name);
    let feed = plan
        .splices()
        .filter(|_| plan.is_bulk(ti))
        .and_then(|s| s.feed(ti, t));
    let mut join = Join::new(feed, cx.snap.page_size());
    let mut rec = Record::new();
    while let Some(e) = cursor.next()? {
        let parsed = parse_entry(&mut rec, &e, t);
        let key = match (e.rowid, &parsed) {
            (Some(r), _) if !t.without_rowid => Some(KeyRef::Rowid(r)),
            (_, Some((None, RecordRead::Whole))) if t.without_rowid => {
                Some(KeyRef::Record(&rec, e.payload))
            }
            _ => None,
        };
        if let Some(key) = key {
            join.before(cx, (ti, t, tree.as_mut()), Some(key), loader, tally)?;
        }
        let Some((truncated_col, record)) = parsed else {
            tally.cell_lost(ti);
            loader.not_written(e.rowid);
            continue;
        };
        if internal || not_created {
            if t.name.eq_ignore_ascii_case("sqlite_sequence") {
                restore_sequence(&loader.sink, &rec, e.payload, cx.enc)?;
            } else if !internal {
                tally.lose(Lost {
                    page: e.at.page,
                    cell: Some(e.at.cell),
                    offset: None,
                    source: Source::Tree,
                    rowid: e.rowid,
                    values: Lost::values_of(&rec, e.payload, cx.enc),
                });
            }
            continue;
        }
        let source = if cx.snap.wal_offset(e.at.page).is_some() {
            Source::Wal
        } else {
            Source::Tree
        };
        if e.suspect && record == RecordRead::HeaderLost {
            // Neither the page nor the record vouches for it.
            tally.cell_lost(ti);
            loader.not_written(e.rowid);
            continue;
        }
        let vouched = e.suspect && vouches_for_itself(&e, &rec, (record, truncated_col), t, cx);
        if e.suspect && !vouched {
            // The page's space does not add up (torn?) and the cell does not
            // stand on its own: keep the row only if an index confirms it.
            let at = (e.at.page, Some(e.at.cell), None);
            let mut s = Suspect::new(ti, t, &rec, e.payload, e.rowid, at, source, cx.enc);
            s.alone = e.one_version && whole_and_fitting(&e, &rec, (record, truncated_col), t, cx);
            walked.suspects.push(s);
            loader.not_written(e.rowid);
            continue;
        }
        let placed = Placed {
            table: ti,
            rowid: e.rowid,
            page: e.at.page,
            cell: e.at.cell,
            source,
            truncated_col,
            record,
            zeroed: e.zeroed_overflow,
            evidence: if vouched {
                Evidence::OwnCell
            } else {
                Evidence::Tree
            },
        };
        loader.tree_row(t, tree.as_mut(), placed, &rec, e.payload, tally)?;
    }
    join.before(cx, (ti, t, tree.as_mut()), None, loader, tally)?;
    if join
        .feed
        .as_ref()
        .is_some_and(|f| f.backward && f.joined > 0)
    {
        // A tree row out of key order may share a key with a joined row:
        // only a run without joining keeps the tree's.
        loader.refuse(format!(
            "a row of {}'s tree came out of key order after orphaned leaves were joined",
            t.name
        ));
    }
    let rep = &mut tally.tables[ti];
    (rep.holes, rep.damage) = cursor.take_holes_and_damage();
    // In key order (a walk's holes are disjoint ranges): the scan finds
    // the one a rowid falls in by binary search.
    rep.holes.sort_by_key(|h| h.after);
    // A page of this tree whose cells could not all be read through its
    // pointers (a damaged cell count or pointer array), or whose space does
    // not add up, is carved too, for the cells the pointers miss.
    let partly: Vec<u32> = rep
        .damage
        .iter()
        .filter(|d| d.cell.is_some())
        .map(|d| d.page)
        .chain(cursor.suspect_pages().iter().copied())
        .collect();
    drop(cursor);
    join.claim(map, walked, ti);
    for pgno in partly {
        if map.get(pgno) == Some(Owner::Table(ti)) {
            map.set(pgno, Owner::TableDamaged(ti));
            walked.partly_read.insert(pgno);
        }
    }
    let holes = &tally.tables[ti].holes;
    let joined = |r: i64| join.feed.as_ref().is_some_and(|f| f.covers(r));
    loader.finish_tree(tree, cx.snap, (cx.schema, t), (holes, &joined))
}

/// A table whose root page is unknown: every rowid is in the hole.
fn unknown_root(rep: &mut TableReport, root: u32) {
    rep.holes.push(Hole {
        page: root,
        after: None,
        up_to: None,
    });
    let what = "root page unknown or out of range".into();
    rep.damage.push(Damage {
        page: root,
        cell: None,
        what,
    });
}

/// Orphaned leaves joining a table's load, and what joining them keeps.
struct Join<'s> {
    feed: Option<Feed<'s>>,
    buf: Buffers,
    rec: Record,
    /// The overflow pages of the joined leaves' cells: claimed once the
    /// walk is over.
    overflow: Vec<u32>,
}

impl<'s> Join<'s> {
    fn new(feed: Option<Feed<'s>>, page_size: u32) -> Join<'s> {
        Join {
            feed,
            buf: Buffers::new(page_size),
            rec: Record::new(),
            overflow: Vec::new(),
        }
    }

    /// Writes the leaves due before the tree row with key `key` (`None`:
    /// after the last), and passes the key.
    fn before(
        &mut self,
        cx: &Ctx<'_>,
        (ti, t, mut tree): (usize, &Table, Option<&mut TreeWriter>),
        key: Option<KeyRef<'_>>,
        loader: &mut Loader,
        tally: &mut Tally,
    ) -> Result<()> {
        let Some(mut f) = self.feed.take() else {
            return Ok(());
        };
        let mut done = Ok(());
        while let Some(leaf) = f.next_before(key) {
            done = join_leaf(
                cx,
                (ti, t, tree.as_deref_mut()),
                leaf,
                &mut f,
                self,
                loader,
                tally,
            );
            if done.is_err() {
                break;
            }
        }
        if let Some(key) = key {
            f.passed(key);
        }
        self.feed = Some(f);
        done
    }

    /// Claims the joined leaves and their overflow pages in the map, and
    /// lists the leaves for the report.
    fn claim(&self, map: &mut PageMap, walked: &mut Walked, ti: usize) {
        for pgno in self.feed.iter().flat_map(Feed::joined_pages) {
            map.set(pgno, Owner::Orphan);
            walked.joined_pages.push((pgno, ti as u32));
        }
        for &pgno in &self.overflow {
            map.claim(pgno, Owner::Overflow);
        }
    }
}

/// Reads orphaned leaf `pgno` again and writes its rows into the load of
/// table `ti`, when it reads as the survey found it (else it stays an
/// orphan for the candidate stage).
fn join_leaf(
    cx: &Ctx<'_>,
    (ti, t, mut tree): (usize, &Table, Option<&mut TreeWriter>),
    (pgno, cells, evidence): (u32, u16, Evidence),
    f: &mut Feed<'_>,
    j: &mut Join<'_>,
    loader: &mut Loader,
    tally: &mut Tally,
) -> Result<()> {
    let Some((cells, chain)) = read_leaf(cx, pgno, cells, &mut j.buf, &mut j.rec) else {
        return Ok(());
    };
    let (Some(head), Some(tail)) = (cells.first(), cells.last()) else {
        return Ok(());
    };
    let same = if t.without_rowid {
        let (mut a, mut b) = (Record::new(), Record::new());
        a.parse(&head.bytes).is_ok()
            && b.parse(&tail.bytes).is_ok()
            && f.same_keys(
                KeyRef::Record(&a, &head.bytes),
                KeyRef::Record(&b, &tail.bytes),
            )
    } else {
        match (head.cell.rowid, tail.cell.rowid) {
            (Some(x), Some(y)) => f.same_keys(KeyRef::Rowid(x), KeyRef::Rowid(y)),
            _ => false,
        }
    };
    if !same {
        return Ok(());
    }
    for c in &cells {
        write_joined(
            t,
            (ti, evidence),
            pgno,
            c,
            tree.as_deref_mut(),
            &mut j.rec,
            loader,
            tally,
        )?;
    }
    f.joined();
    j.overflow.extend(chain);
    Ok(())
}

/// Writes one row of a joined leaf, as a tree row from an orphaned page.
#[allow(clippy::too_many_arguments)]
fn write_joined(
    t: &Table,
    (ti, evidence): (usize, Evidence),
    pgno: u32,
    c: &DecodedCell,
    tree: Option<&mut TreeWriter>,
    rec: &mut Record,
    loader: &mut Loader,
    tally: &mut Tally,
) -> Result<()> {
    if rec.parse(&c.bytes).is_err() {
        // `read_leaf` parsed every cell whole: not reached; counted, never
        // dropped unseen.
        tally.cell_lost(ti);
        return Ok(());
    }
    let placed = Placed {
        table: ti,
        rowid: c.cell.rowid,
        page: pgno,
        cell: c.cell.index.unwrap_or(0),
        source: Source::Orphan,
        truncated_col: None,
        record: RecordRead::Whole,
        zeroed: false,
        evidence,
    };
    loader.tree_row(t, tree, placed, rec, &c.bytes, tally)
}

/// Whether a row of a page whose space does not add up (torn, or
/// damaged) vouches for itself: its cell stands on its own
/// ([`Entry::sound`]: in the content area, overlapping no other, its key
/// inside the page's bounds and between its neighbours'), and its record,
/// whole, fills the cell exactly, with values that fit their columns
/// (declared types, NOT NULL) and text valid in the database's encoding.
fn vouches_for_itself(
    e: &Entry<'_>,
    rec: &Record,
    (record, truncated_col): (RecordRead, Option<usize>),
    t: &Table,
    cx: &Ctx<'_>,
) -> bool {
    e.sound && whole_and_fitting(e, rec, (record, truncated_col), t, cx)
}

/// Whether an entry's record, whole, fills its cell exactly, with values
/// that fit their columns (declared types, NOT NULL) and text valid in the
/// database's encoding.
fn whole_and_fitting(
    e: &Entry<'_>,
    rec: &Record,
    (record, truncated_col): (RecordRead, Option<usize>),
    t: &Table,
    cx: &Ctx<'_>,
) -> bool {
    !e.truncated
        && truncated_col.is_none()
        && record == RecordRead::Whole
        && rec.end() == e.payload.len()
        && fits(t, rec, e.payload)
        && texts_valid(rec, e.payload, cx.enc)
}

/// Parses an entry's record into `rec`: `(None, _)` when whole, `(Some(c),
/// _)` when read only up to column `c`, and how. The cell is in the tree
/// (in its page's key range, on a page whose space adds up, unless
/// suspect), so the row is real: a payload cut short by a broken overflow
/// chain is read as far as it goes; so is a whole payload whose record's
/// values run past it. A header whose length is wrong is refit to its
/// values when exactly one length fits; a header that cannot be read at
/// all leaves a row of `t`'s rowid and NULLs, as SQLite's own recovery
/// keeps it. `None` only for a WITHOUT ROWID row (its key is its record)
/// or a record wider than its table.
fn parse_entry(rec: &mut Record, e: &Entry<'_>, t: &Table) -> Option<(Option<usize>, RecordRead)> {
    if !e.truncated && rec.parse(e.payload).is_ok() {
        return Some((None, RecordRead::Whole));
    }
    if let Ok(cut) = rec.parse_partial(e.payload) {
        let how = if e.truncated {
            RecordRead::Whole
        } else {
            RecordRead::ValuesRunPast
        };
        return Some((cut.or(Some(rec.len())), how));
    }
    let fits = |rec: &Record| !t.parsed || rec.len() <= t.columns.len();
    if !e.truncated && rec.parse_refit(e.payload).is_ok() && fits(rec) {
        return Some((None, RecordRead::HeaderRefit));
    }
    if e.rowid.is_none() || t.without_rowid || !t.parsed {
        return None;
    }
    rec.set_nulls(t.columns.len());
    Some((Some(0), RecordRead::HeaderLost))
}

/// Puts a row of the old `sqlite_sequence` into the new one (the larger
/// sequence wins), when the new database has one.
fn restore_sequence(sink: &Sink, rec: &Record, payload: &[u8], enc: TextEncoding) -> Result<()> {
    let name = match rec.value(payload, 0) {
        ValueRef::Text(t) => decode_text(t, enc).into_owned(),
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
