//! What a recovery reports: per table, what came back from where and what
//! was lost; the pages read and not; the outcome. Built at the end of the
//! pipeline (see `recover::report_of`) from every stage's hand-over.

use std::collections::BTreeMap;

use super::sink::Source;
use crate::snapshot::{HeaderSource, JournalInfo, SalvageWal};
use crate::tree::{Damage, Hole};

/// How sure the attribution of a row to its table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confidence {
    /// Reached from the table's root page.
    Root,
    /// Given back by evidence: a pointer-map entry, or the rowid range of
    /// an unreadable part of the table's tree, and a record shape that fits.
    Evidence,
    /// Not attributed: kept in the lost-and-found table.
    Unattributed,
}

/// The evidence that put a row in its table, finer than [`Confidence`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Evidence {
    /// Read through the table's tree, from a page whose space adds up.
    Tree,
    /// Read through the table's tree from a page whose space does not add
    /// up (torn?): its cell and record stood on their own (confidence
    /// root).
    OwnCell,
    /// From a damaged page; an index entry with its rowid and values
    /// confirmed it.
    IndexEntry,
    /// Carved from a page of the table's own tree whose pointers are
    /// damaged.
    TreePage,
    /// Its page's pointer-map parents lead into the table's tree.
    PointerMap,
    /// Its rowids lie in an unreadable part of the table's tree, and its
    /// records fit this table alone.
    TreeHole,
    /// Its records fit this table alone (a WITHOUT ROWID table's leaf,
    /// whose tree is damaged).
    Shape,
    /// Found in another table's tree; this table's index lists it.
    CrossLinked,
}

impl Evidence {
    /// How sure a row placed on this evidence is.
    pub fn confidence(self) -> Confidence {
        match self {
            Evidence::Tree | Evidence::OwnCell => Confidence::Root,
            _ => Confidence::Evidence,
        }
    }
}

/// Outcome of a recovery, for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// No damage met: everything was read.
    Complete,
    /// Damage met: some rows or values may be missing or flagged.
    Partial,
    /// No row could be recovered.
    Nothing,
}

/// A value that could not be read whole.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FlaggedRow {
    /// Table.
    pub table: String,
    /// Rowid, when the table has one.
    pub rowid: Option<i64>,
    /// Page the row was read from.
    pub page: u32,
    /// Why it is flagged.
    pub flag: String,
}

/// Per-table figures.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TableReport {
    /// Table name.
    pub name: String,
    /// Rows written, by source.
    pub by_source: BTreeMap<Source, u64>,
    /// Rows written, by confidence.
    pub by_confidence: BTreeMap<Confidence, u64>,
    /// Rows written, by the evidence that placed them in this table.
    pub by_evidence: BTreeMap<Evidence, u64>,
    /// Rows written with every value read whole.
    pub exact: u64,
    /// Rows not written because a row with the same key came first from a
    /// more trusted source.
    pub duplicates_skipped: u64,
    /// Rows that break a UNIQUE constraint with another row of the table
    /// (another key): kept in lost_and_found instead.
    pub conflicts: u64,
    /// Rows with a value of a type their STRICT table refuses: kept in
    /// lost_and_found instead.
    pub wrong_type: u64,
    /// Rows written with a value read only in part or lost (a broken
    /// overflow chain, a record damaged inside its cell); each such value
    /// is in the report's flags, and where a stand-in took its place, in
    /// the output's flags table.
    pub partial: u64,
    /// Rows read from a page version older than the newest committed one
    /// (whose newest version is damaged): possibly stale.
    pub possibly_stale: u64,
    /// Cells that could not be decoded at all.
    pub cells_lost: u64,
    /// Rows of this table's damaged pages that neither stood on their own
    /// nor had an index confirm them: kept in lost_and_found.
    pub unconfirmed: u64,
    /// Rows written with a stand-in for a value that could not be read,
    /// where the column is NOT NULL (each value listed in the flags table).
    pub stand_ins: u64,
    /// Rows another table's tree held that this table's index lists (the
    /// trees are cross-linked): moved here.
    pub cross_linked: u64,
    /// Unreadable parts of the tree and the rowid ranges they held.
    pub holes: Vec<Hole>,
    /// Damage met while walking the tree.
    pub damage: Vec<Damage>,
}

/// Deleted rows found for one table (with `--deleted`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DeletedTable {
    /// The table.
    pub table: String,
    /// The table in the output that holds them: `<table>__deleted`.
    pub name: String,
    /// Rows in it.
    pub rows: u64,
    /// Rows by where they were found: `unallocated`, `freeblock`,
    /// `freeblock-rebuilt`, `freelist`, `older-version`, `rollback-journal`,
    /// `dropped-table`.
    pub by_source: BTreeMap<String, u64>,
}

/// What a recovery did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Input database.
    pub input: String,
    /// Output database.
    pub output: String,
    /// Outcome.
    pub outcome: Outcome,
    /// Page size used.
    pub page_size: u32,
    /// Pages examined.
    pub page_count: u32,
    /// Where the header fields came from.
    pub header_from: HeaderSource,
    /// Where the schema came from.
    pub schema_from: String,
    /// How the WAL was read.
    pub wal: Option<SalvageWal>,
    /// Why a WAL beside the input was not used.
    pub wal_rejected: Option<String>,
    /// The hot rollback journal rolled back, when there was one.
    pub journal: Option<JournalInfo>,
    /// Per table.
    pub tables: Vec<TableReport>,
    /// Rows that could not be attributed to a table of the schema: in the
    /// lost-and-found table, or (those that fit no known table, with no
    /// schema or a partial one) in the tables named by their shape.
    pub lost_and_found: u64,
    /// With history: older row versions kept, per history table.
    pub history: Vec<(String, u64)>,
    /// With `--deleted`: the deleted rows found, per table (never counted
    /// among the rows recovered).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<DeletedTable>,
    /// Name of the lost-and-found table, when created.
    pub lost_and_found_table: Option<String>,
    /// The table in the output that lists every stood-in value (table,
    /// row, column, what), when there is one.
    pub flags_table: Option<String>,
    /// With no schema, or a partial one: the tables made from the shapes of
    /// the rows found that fit no known table, and their row counts.
    pub inferred_tables: Vec<(String, u64)>,
    /// Leaf pages no tree reaches, and where their rows went.
    pub orphan_pages: Vec<(u32, String)>,
    /// Pages that are neither usable b-tree pages nor anything else known.
    pub unreadable_pages: Vec<u32>,
    /// Pages no tree reaches and no row was found on that read as overflow
    /// pages: the rest of values whose cells, or the chain page before
    /// them, are lost. Readable, but part of no row that survives.
    pub loose_overflow_pages: Vec<u32>,
    /// Orphaned index pages left out (indexes are rebuilt from the tables).
    pub index_pages_skipped: u64,
    /// Tables in the schema that could not be created in the output.
    pub tables_not_created: Vec<(String, String)>,
    /// Indexes, views and triggers that could not be created, and why.
    pub objects_not_created: Vec<(String, String)>,
    /// Rows with flagged values (first 10000).
    pub flagged: Vec<FlaggedRow>,
    /// Damage met outside the tables' trees (schema, freelist).
    pub damage: Vec<Damage>,
    /// Why the page-by-page load was given up and every row went in
    /// through SQL instead, when it was (SQLite refused what was written).
    pub restarted: Option<String>,
}

impl Report {
    /// Total rows written to the recovered tables.
    pub fn rows(&self) -> u64 {
        self.tables
            .iter()
            .map(|t| t.by_source.values().sum::<u64>())
            .sum()
    }
}
