//! Stage: attribution, the evidence that puts a found page's rows in a
//! table. Every evidence rule is here, one function each.
//!
//! Takes a [`FoundPage`], the page map and the tree walks' holes; gives an
//! [`Attribution`] for the page (which table, on what evidence), then a
//! [`Verdict`] for each of its cells: written to its table, held for the
//! confirmation stage, or lost to `lost_and_found`.

use super::candidates::{DecodedCell, FoundPage};
use super::carve::{fits, value_fits};
use super::context::Ctx;
use super::index_copy::plain_indexes;
use super::lookup::{Probe, index_lists};
use super::pagemap::{Owner, PageMap, UnreachedLinks};
use super::report::{Evidence, TableReport};
use super::sink::{Sink, Source};
use crate::error::Result;
use crate::schema::{Index, Table};
use crate::snapshot::HeaderSource;
use crate::tree::Hole;
use sqlite_salvage_format::kind::PageKind;
use sqlite_salvage_format::record::{Record, ValueRef};

/// Which table a found page's rows belong to, and on what evidence.
#[derive(Default)]
pub(crate) struct Attribution {
    /// The table and the evidence; `None`: not sure (lost_and_found).
    pub table: Option<(usize, Evidence)>,
    /// Taken although nothing links to the page and the freelist is lost
    /// with page 1: its rows may be stale.
    pub unlinked: bool,
    /// The page is an index's by its pointer-map parents: its entries are
    /// rebuilt from the tables, not data.
    pub index_page: bool,
    /// Its records fit a WITHOUT ROWID table and an index of a rowid table
    /// alike: neither can be told, so its rows go to lost_and_found.
    pub ambiguous: bool,
    /// Placed by the table's holes: whether a hole with no page to say
    /// what it held (an unknown root, a child pointer of 0) counts.
    pub any_hole: bool,
}

/// Attributes a found page by the first rule that gives a table: the
/// table whose walk reached it; its pointer-map parents; for an orphan
/// (never carved residue), its records' shape and the trees' holes.
pub(crate) fn attribute_page(
    cx: &Ctx<'_>,
    map: &PageMap,
    links: &UnreachedLinks,
    reports: &[TableReport],
    page: &FoundPage,
    rec: &mut Record,
    sink: Option<&Sink>,
) -> Result<Attribution> {
    let found = |t, ev| Attribution {
        table: Some((t, ev)),
        ..Default::default()
    };
    if let Some(t) = page.owner {
        return Ok(found(t, Evidence::TreePage));
    }
    match map.ptrmap_tree(cx.snap, page.pgno) {
        Some(Owner::Table(t) | Owner::TableDamaged(t)) => {
            return Ok(found(t, Evidence::PointerMap));
        }
        Some(Owner::Index | Owner::IndexDamaged | Owner::Schema) => {
            return Ok(Attribution {
                index_page: true,
                ..Default::default()
            });
        }
        _ => {}
    }
    if page.source == Source::Carved {
        // Residue on a page no table owns (a freelist trunk, an old page):
        // never guessed into a table.
        return Ok(Attribution::default());
    }
    // A leaf nothing points at is a table's root leaf or a freed page.
    // With the freelist walked whole it is not a freed page (that would be
    // on it). With page 1 lost the freelist is unknown too: it is taken,
    // and its rows flagged as possibly stale.
    let freelist_lost = cx.salvage.header_from != HeaderSource::Page1;
    let linked = links.linked(page.pgno) || (links.freelist_sound && !freelist_lost);
    let any_hole = linked || freelist_lost;
    let table = by_shape_and_holes(cx, reports, page, rec, any_hole);
    if table.is_some() && page.kind == PageKind::IndexLeaf {
        match index_entries(cx, page, rec, sink)? {
            IndexEvidence::Agree => {
                return Ok(Attribution {
                    index_page: true,
                    ..Default::default()
                });
            }
            IndexEvidence::NoneFits => {}
            IndexEvidence::Unknown => {
                return Ok(Attribution {
                    ambiguous: true,
                    ..Default::default()
                });
            }
        }
    }
    Ok(Attribution {
        unlinked: table.is_some() && !linked,
        table,
        any_hole,
        ..Default::default()
    })
}

/// What the rows already recovered say of an index-kind page's records
/// read as entries of an index of a rowid table.
enum IndexEvidence {
    /// They are one index's entries: the rows with their rowids hold
    /// their first key value (at least four times as many as do not).
    Agree,
    /// They are no index's: none fits one's shape, or every index whose
    /// shape they fit is contradicted (at least two rows with such rowids
    /// hold other values, and none the entries').
    NoneFits,
    /// Some index's shape fits and the recovered rows cannot tell.
    Unknown,
}

/// Most entries of a page looked up in the recovered rows.
const ENTRIES_CHECKED: usize = 16;

/// Reads an index-kind page's records as entries of each index of a
/// rowid table whose shape they fit (a value per key column, each fitting
/// its column's type, then an integer rowid), and looks the first entries
/// up in the rows recovered so far: the row with the entry's rowid must
/// hold the entry's first key value.
fn index_entries(
    cx: &Ctx<'_>,
    page: &FoundPage,
    rec: &mut Record,
    sink: Option<&Sink>,
) -> Result<IndexEvidence> {
    let mut unknown = false;
    for index in &cx.schema.indexes {
        let Some(t) = cx.schema.table(&index.table) else {
            continue;
        };
        if !page.cells.iter().all(|c| fits_index(t, index, c, rec)) {
            continue;
        }
        // Without the rows recovered (a survey) nothing can be told.
        let (Some(Some(col)), Some(sink)) = (index.columns.first().copied(), sink) else {
            unknown = true;
            continue;
        };
        let (mut agree, mut disagree) = (0, 0);
        for c in page.cells.iter().take(ENTRIES_CHECKED) {
            if !parse_cell(rec, &c.bytes, c.truncated) {
                continue;
            }
            let ValueRef::Integer(rowid) = rec.value(&c.bytes, index.columns.len()) else {
                continue;
            };
            match sink.value_of(t, rowid, col)? {
                None => {}
                Some(v) if sink.same(&v, rec.value(&c.bytes, 0)) => agree += 1,
                Some(_) => disagree += 1,
            }
        }
        // A recovered row can itself be stale or damaged: one entry either
        // way is not enough, and agreement must outweigh disagreement.
        if agree >= 1 && agree >= 4 * disagree {
            return Ok(IndexEvidence::Agree);
        }
        if !(agree == 0 && disagree >= 2) {
            unknown = true;
        }
    }
    Ok(if unknown {
        IndexEvidence::Unknown
    } else {
        IndexEvidence::NoneFits
    })
}

/// Whether cell `c` could be an entry of `index` on `t`.
fn fits_index(t: &Table, index: &Index, c: &DecodedCell, rec: &mut Record) -> bool {
    parse_cell(rec, &c.bytes, c.truncated)
        && rec.len() == index.columns.len() + 1
        && matches!(
            rec.value(&c.bytes, index.columns.len()),
            ValueRef::Integer(_)
        )
        && index.columns.iter().enumerate().all(|(k, col)| match col {
            Some(col) => t
                .columns
                .get(*col)
                .is_some_and(|col| value_fits(col, rec.value(&c.bytes, k))),
            None => true,
        })
}

/// Picks the table an orphaned page belongs to by the shape of its
/// records and the holes in the tables' trees; `None` when not sure.
fn by_shape_and_holes(
    cx: &Ctx<'_>,
    reports: &[TableReport],
    page: &FoundPage,
    rec: &mut Record,
    linked: bool,
) -> Option<(usize, Evidence)> {
    let cells = &page.cells;
    let schema = cx.schema;
    let mut candidates: Vec<usize> = Vec::new();
    for (ti, t) in schema.tables.iter().enumerate() {
        if t.without_rowid != (page.kind == PageKind::IndexLeaf)
            || t.name.to_ascii_lowercase().starts_with("sqlite_")
        {
            continue;
        }
        if decoded_all(cells, rec, |rec, c| fits(t, rec, &c.bytes)) {
            candidates.push(ti);
        }
    }
    // Only a table whose tree is damaged can have lost pages.
    let mut damaged: Vec<usize> = candidates
        .into_iter()
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
            decoded_all(cells, rec, |rec, _| rec.len() == width)
        })
        .collect();
    if !exact.is_empty() {
        damaged = exact;
    }
    if page.kind == PageKind::TableLeaf {
        // Every row in a hole of one table; else most of them in a hole of
        // one: a leaf a bad key or two does not take from its table (those
        // rows are judged one by one).
        let inside = |t: usize| {
            let n = cells.iter().filter(|c| in_a_hole(&reports[t], c, linked));
            n.count()
        };
        let counts: Vec<(usize, usize)> = damaged.iter().map(|&t| (t, inside(t))).collect();
        let all: Vec<usize> = counts
            .iter()
            .filter(|c| c.1 == cells.len())
            .map(|c| c.0)
            .collect();
        let most: Vec<usize> = counts
            .iter()
            .filter(|c| c.1 * 2 > cells.len())
            .map(|c| c.0)
            .collect();
        return match (all.as_slice(), most.as_slice()) {
            ([t], _) | ([], [t]) => Some((*t, Evidence::TreeHole)),
            // No one table's holes tell: the tables' indexes may.
            _ => by_index_entries(cx, &damaged, page, rec),
        };
    }
    match damaged.as_slice() {
        [t] if linked || !has_unlinked_hole(&reports[*t]) => Some((*t, Evidence::Shape)),
        _ => None,
    }
}

/// Most rows of a page looked up in each candidate table's indexes.
const ROWS_LOOKED_UP: usize = 16;

/// The one table among `candidates` whose plain indexes in the input list
/// every row of the page looked up (at least one; its key values and
/// rowid, by [`index_lists`]), while no other candidate's index lists any.
fn by_index_entries(
    cx: &Ctx<'_>,
    candidates: &[usize],
    page: &FoundPage,
    rec: &mut Record,
) -> Option<(usize, Evidence)> {
    let mut owner = None;
    for &ti in candidates {
        let t = &cx.schema.tables[ti];
        let mut listed = (0usize, 0usize);
        for p in plain_indexes(cx.schema, t, cx.page_count, |_| Some(0)) {
            let root = cx.schema.indexes.get(p.index).map_or(0, |ix| ix.root);
            for c in page.cells.iter().take(ROWS_LOOKED_UP) {
                let Some(rowid) = c.cell.rowid else { continue };
                if c.truncated || rec.parse(&c.bytes).is_err() {
                    continue;
                }
                let Some(probe) = Probe::new(t, &p.cols, (rec, &c.bytes), rowid) else {
                    continue;
                };
                match index_lists(cx.snap, root, &probe) {
                    Some(true) => listed.0 += 1,
                    Some(false) => listed.1 += 1,
                    None => {}
                }
            }
        }
        match listed {
            (0, _) => {}
            (_, 0) if owner.is_none() => owner = Some(ti),
            _ => return None,
        }
    }
    owner.map(|t| (t, Evidence::IndexEntry))
}

/// Whether the cell's rowid lies in one of the table's holes. A hole left
/// by an unknown root covers every rowid; a leaf nothing points at is then
/// as likely a freed page.
fn in_a_hole(rep: &TableReport, c: &DecodedCell, linked: bool) -> bool {
    c.cell
        .rowid
        .is_some_and(|r| Hole::find(&rep.holes, r).is_some_and(|h| h.page != 0 || linked))
}

/// Whether a hole of the table's is where a child pointer was 0 or the
/// root unknown (no page to say what it held). Holes number in the tens of
/// thousands in a large damaged tree: this is asked once per page.
fn has_unlinked_hole(rep: &TableReport) -> bool {
    rep.holes.iter().any(|h| h.page == 0)
}

/// What becomes of one cell of an attributed page.
pub(crate) enum Verdict {
    /// Written to table `t`, on the page's evidence.
    Keep(usize, Evidence),
    /// Table `t`'s, if an index confirms it: the page cannot vouch for it.
    Confirm(usize),
    /// To lost_and_found.
    Lost,
}

/// Judges a cell whose record is parsed into `rec`: it must fit the
/// attributed table (which must exist in the output); and a page whose
/// space does not add up, a carved cell over a zeroed sector, or a page
/// placed by the table's holes for a row whose rowid is in none of them,
/// cannot vouch for it.
pub(crate) fn judge_cell(
    cx: &Ctx<'_>,
    (not_created, reports): (&std::collections::HashSet<String>, &[TableReport]),
    page: &FoundPage,
    attribution: &Attribution,
    cell: &DecodedCell,
    rec: &Record,
) -> Verdict {
    let Some((ti, ev)) = attribution.table else {
        return Verdict::Lost;
    };
    let t = &cx.schema.tables[ti];
    if !fits(t, rec, &cell.bytes) || not_created.contains(&t.name) {
        return Verdict::Lost;
    }
    let outside_holes = ev == Evidence::TreeHole
        && reports
            .get(ti)
            .is_none_or(|r| !in_a_hole(r, cell, attribution.any_hole));
    if !page.consistent || cell.near_zero_sector || outside_holes {
        return Verdict::Confirm(ti);
    }
    Verdict::Keep(ti, ev)
}

/// Whether the records of a page's cells that decode all satisfy `pred`,
/// and at least half of them do decode: a cell damaged inside (judged on
/// its own later) does not take the page's other rows' evidence away.
fn decoded_all(
    cells: &[DecodedCell],
    rec: &mut Record,
    pred: impl Fn(&Record, &DecodedCell) -> bool,
) -> bool {
    let mut decoded = 0;
    for c in cells {
        if parse_cell(rec, &c.bytes, c.truncated) {
            if !pred(rec, c) {
                return false;
            }
            decoded += 1;
        }
    }
    decoded >= 1 && decoded * 2 >= cells.len()
}

/// Parses a cell's record into `rec`; a payload cut short by a broken
/// overflow chain is parsed as far as its header allows.
pub(crate) fn parse_cell(rec: &mut Record, bytes: &[u8], truncated: bool) -> bool {
    if truncated {
        rec.parse_partial(bytes).is_ok()
    } else {
        rec.parse(bytes).is_ok()
    }
}

/// Whether index-leaf records look like entries of an index on a rowid
/// table: at least two values, the last an integer (the rowid).
pub(crate) fn looks_like_index(cells: &[DecodedCell], rec: &mut Record) -> bool {
    cells.iter().all(|c| {
        rec.parse(&c.bytes).is_ok()
            && rec.len() >= 2
            && matches!(rec.value(&c.bytes, rec.len() - 1), ValueRef::Integer(_))
    })
}
