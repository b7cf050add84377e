//! Stage: the tally, every count, flag and lost row in one place.
//!
//! Takes what each stage did with a row (written from a tree, written on
//! evidence, skipped as a duplicate, lost); gives the per-table reports,
//! the flagged rows (at most [`MAX_FLAGGED`]) and the rows bound for
//! `lost_and_found`, which the finish stage writes and the report counts.

use std::collections::HashSet;

use super::report::{Confidence, Evidence, FlaggedRow, TableReport};
use super::sink::{Insert, Source};
use crate::schema::Schema;
use crate::tree::Hole;
use sqlite_salvage_format::header::TextEncoding;
use sqlite_salvage_format::record::{Record, Value};

/// Most rows listed one by one in the report's flags.
pub(crate) const MAX_FLAGGED: usize = 10_000;

/// The flag of a row written from an orphaned page (as the candidate
/// stage words it for the rows it writes through SQL).
pub(crate) const ORPHAN_FLAG: &str = "from an orphaned page";

const VOUCHED_FLAG: &str = "on a page whose space does not add up (torn?): kept on its own \
    evidence (its cell overlaps none, its key is in order, its record fills the cell exactly \
    with values that fit their columns)";

const ZEROED_FLAG: &str =
    "an overflow page of a value is all zeros: the value may have been zeroed (or is a zeroblob)";

/// A row bound for `lost_and_found`: where it was found, and its values.
pub(crate) struct Lost {
    pub page: u32,
    pub cell: Option<u16>,
    pub offset: Option<usize>,
    pub source: Source,
    pub rowid: Option<i64>,
    pub values: Vec<Value>,
}

impl Lost {
    /// A tree row that could not be written, as a lost row.
    pub fn of_tree_row(p: &Placed, values: Vec<Value>) -> Lost {
        Lost {
            page: p.page,
            cell: Some(p.cell),
            offset: None,
            source: p.source,
            rowid: p.rowid,
            values,
        }
    }

    /// The record's values, text decoded from `enc`.
    pub fn values_of(rec: &Record, payload: &[u8], enc: TextEncoding) -> Vec<Value> {
        (0..rec.len())
            .map(|i| rec.value(payload, i).to_owned(enc))
            .collect()
    }
}

/// How the record of a row of a table's own tree was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordRead {
    /// As it is (its payload possibly cut short by its overflow chain).
    Whole,
    /// Its values run past its cell: read as far as they go.
    ValuesRunPast,
    /// Its header's length was wrong; the one length at which its serial
    /// types describe values filling the cell exactly was taken.
    HeaderRefit,
    /// Its header could not be read: the row is kept by its rowid, its
    /// values NULL (stand-ins where NOT NULL).
    HeaderLost,
}

/// Where a row from a table's own tree came from, for the report.
pub(crate) struct Placed {
    pub table: usize,
    pub rowid: Option<i64>,
    pub page: u32,
    pub cell: u16,
    pub source: Source,
    /// The first column read only in part (broken overflow chain, or a
    /// record whose values run past its cell, or whose header is lost).
    pub truncated_col: Option<usize>,
    /// How its record was read.
    pub record: RecordRead,
    /// Overflow bytes that read as zeros.
    pub zeroed: bool,
    /// What placed it: [`Evidence::Tree`]; [`Evidence::OwnCell`] from a
    /// page whose space does not add up, kept on the cell's own evidence;
    /// for a joined orphaned leaf, the evidence that attributed it.
    pub evidence: Evidence,
}

const TREE_SOURCES: &[Source] = &[Source::Tree, Source::Wal];
const EVIDENCE_SOURCES: &[Source] = &[Source::Orphan, Source::Carved];
const TREE_EVIDENCE: &[Evidence] = &[Evidence::Tree, Evidence::OwnCell, Evidence::IndexEntry];
const EVIDENCE_ONLY: &[Evidence] = &[
    Evidence::TreeHole,
    Evidence::PointerMap,
    Evidence::Shape,
    Evidence::TreePage,
    Evidence::CrossLinked,
];

/// Takes one from the first of `keys` counted in `counts`; which one.
fn uncount<'k, K: Ord + Copy + 'k>(
    counts: &mut std::collections::BTreeMap<K, u64>,
    keys: impl Iterator<Item = &'k K>,
) -> Option<K> {
    for k in keys {
        if let Some(n) = counts.get_mut(k).filter(|n| **n > 0) {
            *n -= 1;
            return Some(*k);
        }
    }
    None
}

/// Per-table reports, flags and lost rows, as the stages hand them over.
pub(crate) struct Tally {
    pub tables: Vec<TableReport>,
    pub flagged: Vec<FlaggedRow>,
    pub lost: Vec<Lost>,
    /// Pages whose newest WAL version is damaged (rows possibly stale).
    fallback: HashSet<u32>,
    /// Rows written from a copy read only in part: (table, rowid).
    partial_rows: HashSet<(usize, i64)>,
    /// Tables that rows went into on evidence, after their own tree's.
    on_evidence: HashSet<usize>,
}

impl Tally {
    /// An empty report for every table of `schema`.
    pub fn new(schema: &Schema, fallback: HashSet<u32>) -> Tally {
        Tally {
            tables: schema
                .tables
                .iter()
                .map(|t| TableReport {
                    name: t.name.clone(),
                    ..Default::default()
                })
                .collect(),
            flagged: Vec::new(),
            lost: Vec::new(),
            fallback,
            partial_rows: HashSet::new(),
            on_evidence: HashSet::new(),
        }
    }

    /// Flags a row, while there is room in the list (the text is made
    /// only then).
    pub fn flag(
        &mut self,
        table: usize,
        rowid: Option<i64>,
        page: u32,
        flag: impl FnOnce() -> String,
    ) {
        if self.flagged.len() < MAX_FLAGGED {
            self.flagged.push(FlaggedRow {
                table: self.tables[table].name.clone(),
                rowid,
                page,
                flag: flag(),
            });
        }
    }

    /// What became of a row given to the loader but not written: a
    /// duplicate is skipped; a row that conflicts with another on a UNIQUE
    /// value is kept in lost_and_found (`lost` makes it, only then).
    pub fn refused(&mut self, table: usize, how: Insert, lost: impl FnOnce() -> Lost) {
        match how {
            Insert::Written => {}
            Insert::Duplicate => self.tables[table].duplicates_skipped += 1,
            Insert::Conflict => {
                self.tables[table].conflicts += 1;
                self.lost.push(lost());
            }
            Insert::WrongType => {
                self.tables[table].wrong_type += 1;
                self.lost.push(lost());
            }
        }
    }

    /// A cell whose record did not decode.
    pub fn cell_lost(&mut self, table: usize) {
        self.tables[table].cells_lost += 1;
    }

    /// Counts a written row of a table's own tree, or of an orphaned leaf
    /// joined to it (on evidence), and flags it.
    pub fn tree_row(&mut self, p: &Placed) {
        let rep = &mut self.tables[p.table];
        *rep.by_source.entry(p.source).or_default() += 1;
        *rep.by_evidence.entry(p.evidence).or_default() += 1;
        *rep.by_confidence
            .entry(p.evidence.confidence())
            .or_default() += 1;
        if p.source == Source::Orphan {
            self.flag(p.table, p.rowid, p.page, || ORPHAN_FLAG.into());
            return;
        }
        let stale = self.fallback.contains(&p.page);
        if stale {
            rep.possibly_stale += 1;
        }
        if p.truncated_col.is_some() || p.zeroed {
            rep.partial += 1;
        }
        if p.evidence == Evidence::OwnCell {
            self.flag(p.table, p.rowid, p.page, || VOUCHED_FLAG.into());
        }
        let damaged = p.record != RecordRead::Whole;
        if stale || p.truncated_col.is_some() || p.zeroed || damaged {
            let flag = || match (p.truncated_col, p.record) {
                (_, RecordRead::HeaderRefit) => "record damaged: its header's length was wrong; \
                    read with the one length at which its values fill the cell exactly"
                    .into(),
                (_, RecordRead::HeaderLost) => {
                    "record damaged: its header cannot be read; its values are lost, its rowid kept"
                        .into()
                }
                (Some(c), RecordRead::ValuesRunPast) => format!(
                    "record damaged: its values run past its cell; column {c} onwards read only in part"
                ),
                (Some(c), _) => {
                    format!("value of column {c} onwards read only in part (overflow chain broken)")
                }
                (None, _) if p.zeroed => ZEROED_FLAG.into(),
                (None, _) => "read from an older page version: the newest is damaged".into(),
            };
            self.flag(p.table, p.rowid, p.page, flag);
        }
    }

    /// Counts a row written on evidence (an orphaned or carved page, or a
    /// damaged one an index confirmed).
    pub fn evidence_row(&mut self, table: usize, source: Source, ev: Evidence, partial: bool) {
        self.on_evidence.insert(table);
        let rep = &mut self.tables[table];
        *rep.by_source.entry(source).or_default() += 1;
        *rep.by_evidence.entry(ev).or_default() += 1;
        *rep.by_confidence.entry(ev.confidence()).or_default() += 1;
        if partial {
            rep.partial += 1;
        }
    }

    /// Whether rows went into `table` on evidence ([`Tally::evidence_row`]),
    /// after its tree's: an index copied whole no longer lists all of its
    /// rows.
    pub fn had_evidence_rows(&self, table: usize) -> bool {
        self.on_evidence.contains(&table)
    }

    /// A row of a damaged page that nothing confirmed: to lost_and_found.
    pub fn unconfirmed(&mut self, table: usize, lost: Lost) {
        if let Some(rep) = self.tables.get_mut(table) {
            rep.unconfirmed += 1;
        }
        self.lost.push(lost);
    }

    /// Row `rowid` of table `from`, which table `to`'s index lists (the
    /// trees are cross-linked): no longer counted in `from`; counted in
    /// `to` when it was written there. A rowid in one of `from`'s holes was
    /// placed there on evidence (no tree row lies in a hole); any other, by
    /// its tree.
    pub fn cross_linked(&mut self, (from, rowid): (usize, i64), to: usize, written: bool) {
        let rep = &mut self.tables[from];
        let by_tree = Hole::find(&rep.holes, rowid).is_none();
        let (sources, evidence) = if by_tree {
            (
                TREE_SOURCES.iter().chain(EVIDENCE_SOURCES),
                TREE_EVIDENCE.iter().chain(EVIDENCE_ONLY),
            )
        } else {
            (
                EVIDENCE_SOURCES.iter().chain(TREE_SOURCES),
                EVIDENCE_ONLY.iter().chain(TREE_EVIDENCE),
            )
        };
        let source = uncount(&mut rep.by_source, sources).unwrap_or(Source::Tree);
        if let Some(ev) = uncount(&mut rep.by_evidence, evidence) {
            if let Some(n) = rep.by_confidence.get_mut(&ev.confidence()) {
                *n = n.saturating_sub(1);
            }
        }
        if written {
            let rep = &mut self.tables[to];
            *rep.by_source.entry(source).or_default() += 1;
            *rep.by_evidence.entry(Evidence::CrossLinked).or_default() += 1;
            *rep.by_confidence.entry(Confidence::Evidence).or_default() += 1;
            rep.cross_linked += 1;
        }
    }

    /// Records that the row `rowid` of `table` was written from a copy
    /// read only in part.
    pub fn partial_written(&mut self, table: usize, rowid: i64) {
        self.partial_rows.insert((table, rowid));
    }

    /// Whether a partial copy of `rowid` was written, which a complete copy
    /// now replaces: it is forgotten, and no longer counted as truncated.
    pub fn replace_partial(&mut self, table: usize, rowid: i64) -> bool {
        if !self.partial_rows.remove(&(table, rowid)) {
            return false;
        }
        let rep = &mut self.tables[table];
        rep.partial = rep.partial.saturating_sub(1);
        true
    }

    /// A row bound for `lost_and_found`.
    pub fn lose(&mut self, lost: Lost) {
        self.lost.push(lost);
    }
}
