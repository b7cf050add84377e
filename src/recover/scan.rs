//! The candidate and attribution stages run over every page no tree
//! accounted for, and the pages trees read only in part.
//!
//! Takes the page map, the walk's hand-over and the loader; gives each
//! found page's rows to their table (through the loader, counted and
//! flagged in the tally), to the confirmation stage, or to
//! `lost_and_found`, and the pages' own counts in a [`Scan`]. A survey
//! ([`survey_pages`]) reads the orphaned pages only, and gives the leaves
//! that can join their tables' loads ([`Splices`]).

use std::cmp::Ordering;
use std::collections::HashSet;

use super::attribute::{
    Attribution, Verdict, attribute_page, judge_cell, looks_like_index, parse_cell,
};
use super::candidates::{Buffers, DecodedCell, FoundPage, Pass, Scan, find_page, whole_row};
use super::carve::texts_valid;
use super::context::Ctx;
use super::index_copy::{KeyOrder, key_cmp, key_usable, pk_columns};
use super::loader::{Loader, flag_columns};
use super::options::ProgressFn;
use super::pagemap::PageMap;
use super::plan::LoadPlan;
use super::report::{Evidence, TableReport};
use super::sink::{Insert, Source};
use super::splice::{LeafKeys, Splices};
use super::tally::{Lost, ORPHAN_FLAG, Tally};
use super::walk::{Suspect, Walked};
use crate::error::Result;
use crate::schema::Table;
use sqlite_salvage_format::kind::PageKind;
use sqlite_salvage_format::record::Record;

/// Reads every unclaimed or partly read page, in two passes (orphaned
/// leaves, then carving), and places the rows found.
pub(crate) fn scan_pages(
    cx: &Ctx<'_>,
    plan: &LoadPlan,
    map: &mut PageMap,
    walked: &mut Walked,
    loader: &mut Loader,
    tally: &mut Tally,
) -> Result<Scan> {
    let links = map.unreached_links(cx.snap);
    let mut scan = Scan::default();
    let mut buf = Buffers::new(cx.snap.page_size());
    let mut rec = Record::new();
    for pass in [Pass::Orphans, Pass::Carving] {
        let phase = match pass {
            Pass::Orphans => "reading orphaned pages",
            Pass::Carving => "carving damaged pages",
        };
        for pgno in 2..=cx.page_count {
            if pgno % 1024 == 0 {
                let progress = cx.opts.progress.as_ref();
                ProgressFn::tick(progress, phase, u64::from(pgno), u64::from(cx.page_count));
            }
            let found = find_page(
                cx,
                map,
                pgno,
                pass,
                &walked.partly_read,
                &mut buf,
                &mut scan,
            );
            let Some(page) = found else {
                continue;
            };
            let a = attribute_page(
                cx,
                map,
                &links,
                &tally.tables,
                &page,
                &mut rec,
                Some(&loader.sink),
            )?;
            let index_entries = a.table.is_none()
                && !a.ambiguous
                && page.kind == PageKind::IndexLeaf
                && looks_like_index(&page.cells, &mut rec);
            if a.index_page || index_entries {
                // Entries of an index: rebuilt from the tables, not data.
                scan.index_pages_skipped += 1;
                continue;
            }
            if page.source == Source::Orphan {
                let table = a.table.and_then(|(t, _)| u32::try_from(t).ok());
                scan.orphan_pages.push((pgno, table));
            }
            for cell in &page.cells {
                // A header whose length is wrong is refit to its values
                // (the one length at which they fill the cell exactly); the
                // cell is then judged like any other.
                let refit = if parse_cell(&mut rec, &cell.bytes, cell.truncated) {
                    false
                } else if !cell.truncated && rec.parse_refit(&cell.bytes).is_ok() {
                    true
                } else {
                    continue;
                };
                let judged = (plan.not_created_set(), &tally.tables[..]);
                match judge_cell(cx, judged, &page, &a, cell, &rec) {
                    Verdict::Keep(ti, ev) => {
                        let how = (ti, ev, refit);
                        keep(cx, loader, tally, &page, &a, cell, &rec, how)?;
                    }
                    Verdict::Confirm(ti) => {
                        let t = &cx.schema.tables[ti];
                        let c = &cell.cell;
                        let at = (pgno, c.index, Some(c.offset));
                        let mut s = Suspect::new(
                            ti,
                            t,
                            &rec,
                            &cell.bytes,
                            c.rowid,
                            at,
                            page.source,
                            cx.enc,
                        );
                        s.alone = stands_alone(cx, &page, cell, &rec);
                        walked.suspects.push(s);
                    }
                    Verdict::Lost => tally.lose(Lost {
                        page: pgno,
                        cell: cell.cell.index,
                        offset: Some(cell.cell.offset),
                        source: page.source,
                        rowid: cell.cell.rowid,
                        values: Lost::values_of(&rec, &cell.bytes, cx.enc),
                    }),
                }
            }
        }
    }
    Ok(scan)
}

/// The survey: reads every unclaimed page as the first pass does, and
/// offers each orphaned leaf to [`Splices`]; nothing is written.
pub(crate) fn survey_pages(
    cx: &Ctx<'_>,
    plan: &LoadPlan,
    map: &mut PageMap,
    walked: &Walked,
    tally: &Tally,
) -> Result<Splices> {
    let links = map.unreached_links(cx.snap);
    let mut scan = Scan::default();
    let mut buf = Buffers::new(cx.snap.page_size());
    let mut rec = Record::new();
    let mut splices = Splices::default();
    for pgno in 2..=cx.page_count {
        if pgno % 1024 == 0 {
            let progress = cx.opts.progress.as_ref();
            let phase = "surveying orphaned pages";
            ProgressFn::tick(progress, phase, u64::from(pgno), u64::from(cx.page_count));
        }
        let part = &walked.partly_read;
        let pass = Pass::Orphans;
        let Some(page) = find_page(cx, map, pgno, pass, part, &mut buf, &mut scan) else {
            continue;
        };
        let a = attribute_page(cx, map, &links, &tally.tables, &page, &mut rec, None)?;
        let judged = (plan.not_created_set(), &tally.tables[..]);
        offer_leaf(
            &mut splices,
            cx,
            judged,
            plan,
            (&page, &buf.page, &a),
            &mut rec,
        );
    }
    splices.sort(&cx.schema.tables);
    Ok(splices)
}

/// Offers orphaned page `page` (read from `raw`, attributed `a`) to
/// `splices` for joining: taken when it is a leaf, every cell a whole row that
/// `judge_cell` keeps for the same bulk-loaded table on evidence, with
/// keys in strictly increasing order. Returns whether it was taken (the
/// caller then leaves its rows alone).
fn offer_leaf(
    splices: &mut Splices,
    cx: &Ctx<'_>,
    judged: (&HashSet<String>, &[TableReport]),
    plan: &LoadPlan,
    (page, raw, a): (&FoundPage, &[u8], &Attribution),
    rec: &mut Record,
) -> bool {
    let Some((ti, ev)) = a.table else {
        return false;
    };
    let t = &cx.schema.tables[ti];
    let leaf = match raw.first() {
        Some(&0x0d) => !t.without_rowid,
        Some(&0x0a) => t.without_rowid,
        _ => false,
    };
    let ordered_keys = !t.without_rowid || KeyOrder::known(t);
    if page.source != Source::Orphan
        || a.unlinked
        || a.ambiguous
        || !leaf
        || !ordered_keys
        || !plan.is_bulk(ti)
        || page.cells.is_empty()
    {
        return false;
    }
    let Ok(cells) = u16::try_from(page.cells.len()) else {
        return false;
    };
    let k = pk_columns(t);
    let mut prev = Record::new();
    for (i, c) in page.cells.iter().enumerate() {
        if !whole_row(rec, c) {
            return false;
        }
        let keep = judge_cell(cx, judged, page, a, c, rec);
        if !matches!(keep, Verdict::Keep(x, _) if x == ti) {
            return false;
        }
        let before = i.checked_sub(1).and_then(|j| page.cells.get(j));
        let in_order = match (t.without_rowid, before) {
            (_, None) => !t.without_rowid || key_usable(k, rec, &c.bytes),
            (false, Some(b)) => b.cell.rowid < c.cell.rowid,
            (true, Some(b)) => {
                key_usable(k, rec, &c.bytes)
                    && key_cmp(k, (&prev, &b.bytes), (rec, &c.bytes)) == Ordering::Less
            }
        };
        if !in_order {
            return false;
        }
        prev.clone_from(rec);
    }
    let (Some(head), Some(tail)) = (page.cells.first(), page.cells.last()) else {
        return false;
    };
    let keys = if t.without_rowid {
        LeafKeys::Records(&head.bytes, &tail.bytes)
    } else {
        match (head.cell.rowid, tail.cell.rowid) {
            (Some(f), Some(l)) => LeafKeys::Rowids(f, l),
            _ => return false,
        }
    };
    splices.take(ti, (page.pgno, cells, ev), keys)
}

/// Writes a cell kept on its page's evidence, counts and flags it. A
/// complete copy of a row replaces one read only in part from another page.
#[allow(clippy::too_many_arguments)]
fn keep(
    cx: &Ctx<'_>,
    loader: &mut Loader,
    tally: &mut Tally,
    page: &FoundPage,
    a: &Attribution,
    cell: &DecodedCell,
    rec: &Record,
    (ti, ev, refit): (usize, Evidence, bool),
) -> Result<()> {
    let t = &cx.schema.tables[ti];
    let rowid = cell.cell.rowid;
    if let (false, Some(r), false) = (cell.truncated, rowid, t.without_rowid) {
        if tally.replace_partial(ti, r) {
            loader.sink.delete_rowid(t, r)?;
        }
    }
    if let (true, Some(r)) = (cell.truncated, rowid) {
        tally.partial_written(ti, r);
    }
    let how = loader.insert_record(t, rowid, rec, &cell.bytes)?;
    if how != Insert::Written {
        tally.refused(ti, how, || Lost {
            page: page.pgno,
            cell: cell.cell.index,
            offset: Some(cell.cell.offset),
            source: page.source,
            rowid,
            values: Lost::values_of(rec, &cell.bytes, cx.enc),
        });
        return Ok(());
    }
    tally.evidence_row(ti, page.source, ev, cell.truncated);
    if cell.truncated {
        flag_lost_values(loader, t, rowid, cell)?;
    }
    let from = if page.source == Source::Carved {
        "carved from a damaged page"
    } else if a.unlinked {
        "possibly stale: the freelist is lost with page 1; from an unreferenced page"
    } else {
        ORPHAN_FLAG
    };
    let part = if cell.truncated {
        "; a value read only in part"
    } else if refit {
        "; its record header's length was wrong, refit to its values"
    } else {
        ""
    };
    tally.flag(ti, rowid, page.pgno, || format!("{from}{part}"));
    Ok(())
}

/// Lists in the output's flags table the values of a row written from a
/// cell whose payload is cut short (from the first value its broken chain
/// took) or whose overflow read as zeros (every value that reaches into
/// its overflow pages).
fn flag_lost_values(
    loader: &mut Loader,
    t: &Table,
    rowid: Option<i64>,
    cell: &DecodedCell,
) -> Result<()> {
    let mut r = Record::new();
    let cut = match r.parse_partial(&cell.bytes) {
        Ok(Some(cut)) => cut,
        Ok(None) if r.len() < t.stored_columns() => r.len(),
        Ok(None) => {
            let local = cell.cell.local.len() as u64;
            let what = "an overflow page of the value is all zeros: the value may have been zeroed";
            let past = |slot: usize| r.span(slot).is_some_and(|s| s.end > local);
            return flag_columns(&mut loader.sink, t, rowid, past, what);
        }
        Err(_) => 0,
    };
    let what = "read only in part: the overflow chain is broken";
    flag_columns(&mut loader.sink, t, rowid, |slot| slot >= cut, what)
}

/// Whether a cell held for confirmation is all of one version, its record
/// whole and filling it, its text valid ([`Suspect::alone`]).
fn stands_alone(cx: &Ctx<'_>, page: &FoundPage, cell: &DecodedCell, rec: &Record) -> bool {
    let c = &cell.cell;
    let one_sector = c.size > 0 && c.offset / 512 == (c.offset + c.size - 1) / 512;
    let one_version = page.consistent || (c.overflow == 0 && !cell.near_zero_sector && one_sector);
    one_version
        && !cell.truncated
        && rec.end() == cell.bytes.len()
        && texts_valid(rec, &cell.bytes, cx.enc)
}
