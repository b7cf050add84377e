//! Recovery: every committed row that survives on disk, from the b-trees,
//! from orphaned pages and from the WAL, into a fresh database.
//!
//! Takes a database path (its `-wal` and `-journal` beside it) and an
//! output path; gives the output, written under a temporary name and
//! renamed into place, and a [`Report`]. A run is a list of stages, each a
//! module, each handing a typed value to the next:
//!
//! ```text
//! db + WAL ──salvage──▶ snapshot (damaged frames skipped, older good versions stand in)
//!   schema_src   schema sources: page 1, older page 1s, schema rows anywhere, --schema
//!   plan         load plan: which tables bulk-load their own tree's rows
//!   loader       the output: tables and UNIQUE indexes; bulk pages or SQL inserts
//!   walk         tree walk: each table from its root ──▶ rows, holes, suspects
//!   splice       orphaned leaves (surveyed by an earlier run) joined to the walk
//!   pagemap      page map: the Owner of every page (tables, indexes, freelist, ...)
//!   candidates   orphaned leaves and carved cells: FoundPage, DecodedCell
//!   attribute    evidence ──▶ table, and a Verdict per cell      (scan runs both)
//!   confirm      suspects confirmed by an index entry, or lost
//!   crosscheck   rows of cross-linked trees back to the table whose index lists them
//!   history      older row versions, on request
//!   deleted      deleted rows (free space, freelist, older versions), on request
//!                (deleted_lines: the same rows as JSON lines, for `dump --deleted`)
//!   tally        counts, flags and lost rows, in one place
//!   rules        SQLite's rules for a row written page by page (NOT NULL, types)
//!   finish       lost_and_found, indexes, views, triggers, SQLite's checks
//!   report       the Report, and its outcome
//! ```
//!
//! A walk that estimates many orphaned leaves stops writing and surveys
//! them (`Attempt::Survey`): the next run joins those that fit to their
//! tables' bulk loads. A bulk attempt SQLite refuses (a UNIQUE constraint
//! two rows break, a WITHOUT ROWID table's key order, a page or a table
//! that fails its check) is an
//! `Attempt::Retry`: the recovery starts over without the leaves joined,
//! then with every row through SQL (`Step`).
//!
//! # Checks
//!
//! What SQLite writes (rows through SQL, indexes it builds) is SQLite's
//! own work. What is written page by page is checked as it is written:
//! each b-tree page is read back with the input's page reader before it
//! goes out (cells in the content area, no overlap, the space adds up,
//! rowids increasing), trees are built bottom-up from keys that were seen
//! to increase, and each row meets SQLite's NOT NULL and type rules or goes
//! through SQL instead (module `rules`). Tables with rules only SQLite applies
//! (generated columns, STRICT) are checked by SQLite's
//! `quick_check` of the table, and WITHOUT ROWID tables whose key order was
//! not seen to hold by its `integrity_check`. With
//! [`RecoverOptions::check_output`], SQLite's `quick_check` reads the whole
//! output back as well.

mod attribute;
mod bulk;
mod candidates;
mod carve;
mod confirm;
mod context;
mod crosscheck;
mod deleted;
mod deleted_lines;
mod dropped;
mod finish;
mod freespace;
mod history;
mod index_build;
mod index_copy;
mod live;
mod loader;
mod lookup;
mod options;
mod pagemap;
mod plan;
mod report;
mod rules;
mod scan;
mod schema_src;
mod sink;
mod splice;
mod tally;
mod walk;

use std::collections::HashSet;
use std::path::Path;

pub use deleted_lines::write_deleted_lines;
pub use options::{ProgressCallback, ProgressFn, RecoverOptions};
pub use report::{Confidence, DeletedTable, Evidence, FlaggedRow, Outcome, Report, TableReport};
pub use sink::Source;

use crate::error::{Error, Result};
use crate::io::{TempOut, check_output};
use crate::snapshot::{Database, HeaderSource, Salvage};
use crate::tree::Damage;
use candidates::Scan;
use context::{Attempt, Ctx};
use finish::Finished;
use loader::Loader;
use pagemap::PageMap;
use plan::{LoadMode, LoadPlan, Orphans};
use tally::Tally;

/// Recovers `input` into a fresh database at `output`.
pub fn recover(input: &Path, output: &Path, opts: &RecoverOptions) -> Result<Report> {
    let db = Database::open_salvage(input, opts.wal.clone())?;
    let mut inputs: Vec<&Path> = vec![input];
    if let Some(w) = db.wal() {
        inputs.push(w.path.as_path());
    }
    check_output(output, &inputs, opts.force)?;
    let salvage = db.salvage(opts.at_commit)?;
    let tmp = TempOut::beside(output)?;
    let start_over = || -> Result<()> {
        std::fs::File::create(tmp.path()).map_err(|e| Error::output(output, e))?;
        Ok(())
    };
    let mut step = Step::First;
    let mut report = loop {
        let (how, suffix, sql_why) = match step {
            Step::First => ((LoadMode::Bulk, Orphans::MaySurvey), None, None),
            Step::Joined(s) => (
                (LoadMode::Bulk, Orphans::Join(s)),
                Some("with orphaned pages joined"),
                None,
            ),
            Step::NotJoined => (
                (LoadMode::Bulk, Orphans::Insert),
                Some("without orphaned pages joined"),
                None,
            ),
            Step::RowByRow(why) => (
                (LoadMode::Sql, Orphans::Insert),
                Some("row by row"),
                Some(why),
            ),
        };
        let surveys = matches!(how.1, Orphans::MaySurvey);
        let joins = matches!(how.1, Orphans::Join(_));
        let renamed = suffix.map(|s| renamed(opts, s));
        step = match run(
            &db,
            &salvage,
            tmp.path(),
            renamed.as_ref().unwrap_or(opts),
            how,
        )? {
            Attempt::Done(mut r) => {
                if let Some(why) = sql_why {
                    // What SQLite refused (rows that break a UNIQUE
                    // constraint or the key order) is the input's damage.
                    r.restarted = Some(first_lines(&why, 3));
                    if r.outcome == Outcome::Complete {
                        r.outcome = Outcome::Partial;
                    }
                }
                break r;
            }
            Attempt::Survey(s) if surveys => Step::Joined(s),
            // SQLite refused a load with orphaned leaves joined: without.
            Attempt::Retry(_) if joins => Step::NotJoined,
            Attempt::Retry(why) if sql_why.is_none() => Step::RowByRow(why),
            Attempt::Retry(ic) => {
                let what = format!("recovered database failed SQLite's quick_check: {ic}");
                return Err(Error::corrupt(0, what));
            }
            Attempt::Survey(_) => {
                let what = "a recovery run surveyed its input out of turn".to_string();
                return Err(Error::corrupt(0, what));
            }
        };
        start_over()?;
    };
    tmp.publish(output, !opts.no_sync)?;
    report.input = input.display().to_string();
    report.output = output.display().to_string();
    Ok(*report)
}

/// The runs a recovery may take, in turn: bulk loading (which may stop to
/// survey orphaned leaves), bulk loading with the leaves surveyed joined,
/// bulk loading without them, and every row through SQL (with the reason
/// the bulk load was refused).
enum Step {
    First,
    Joined(splice::Splices),
    NotJoined,
    RowByRow(String),
}

/// `opts` with each progress phase's name followed by `suffix`: a run
/// after the first names its phases anew (no bar goes backwards).
fn renamed(opts: &RecoverOptions, suffix: &'static str) -> RecoverOptions {
    RecoverOptions {
        progress: opts.progress.clone().map(|p| {
            ProgressFn(std::sync::Arc::new(move |phase: &str, done, total| {
                (p.0)(&format!("{phase}, {suffix}"), done, total)
            }))
        }),
        ..opts.clone()
    }
}

/// The first `n` lines of SQLite's message (an integrity check can list
/// thousands), and how many more there were.
fn first_lines(msg: &str, n: usize) -> String {
    let lines: Vec<&str> = msg
        .lines()
        .filter(|l| !l.starts_with("*** in database"))
        .collect();
    let mut s = lines.iter().take(n).copied().collect::<Vec<_>>().join("; ");
    if lines.len() > n {
        s.push_str(&format!("; and {} more", lines.len() - n));
    }
    s
}

/// One recovery into `out`: the stages, in order.
fn run(
    db: &Database,
    salvage: &Salvage,
    out: &Path,
    opts: &RecoverOptions,
    (mode, orphans): (LoadMode, Orphans),
) -> Result<Attempt> {
    let snap = &salvage.snapshot;
    let found = schema_src::read_schema(db, salvage, opts);
    let cx = Ctx {
        salvage,
        snap,
        schema: &found.schema,
        opts,
        enc: snap.header().encoding,
        page_count: snap.page_count(),
    };
    let mut damage = found.damage.clone();
    let mut plan = LoadPlan::new(mode, orphans, cx.page_count);
    let (mut loader, unique_not_created) =
        Loader::create(out, cx.schema, cx.enc, snap.page_size(), &mut plan)?;
    let fallback: HashSet<u32> = salvage
        .wal
        .as_ref()
        .map(|w| w.fallback_pages.iter().copied().collect())
        .unwrap_or_default();
    let mut tally = Tally::new(cx.schema, fallback);
    let mut map = PageMap::new(cx.page_count);
    let mut walked = match walk::walk_tables(&cx, &plan, &mut loader, &mut tally, &mut map)? {
        Ok(w) => w,
        Err(retry) => return Ok(retry),
    };
    if loader.surveying() {
        let progress = opts.progress.as_ref();
        map.claim_the_rest(snap, cx.schema, &found.pages, &mut damage, progress)?;
        let splices = scan::survey_pages(&cx, &plan, &mut map, &walked, &tally)?;
        return Ok(Attempt::Survey(splices));
    }
    let mut scanned = candidates::Scan::default();
    let scan = needs_scan(&cx, &found, &walked, &tally, &damage);
    if scan || opts.deleted {
        let progress = opts.progress.as_ref();
        map.claim_the_rest(snap, cx.schema, &found.pages, &mut damage, progress)?;
    }
    if scan {
        scanned = scan::scan_pages(&cx, &plan, &mut map, &mut walked, &mut loader, &mut tally)?;
    }
    // The orphaned leaves joined to their tables' loads, in page order
    // with the others.
    let joined = std::mem::take(&mut walked.joined_pages);
    scanned
        .orphan_pages
        .extend(joined.into_iter().map(|(pgno, t)| (pgno, Some(t))));
    scanned.orphan_pages.sort_by_key(|p| p.0);
    let history = if opts.history {
        let not_created = plan.not_created_set();
        history::write_history(salvage, cx.schema, &map, &loader.sink, not_created)?
    } else {
        Vec::new()
    };
    confirm::place_suspects(snap, cx.schema, walked.suspects, &mut loader, &mut tally)?;
    crosscheck::cross_check(snap, cx.schema, &mut loader, &mut tally)?;
    let deleted = if opts.deleted {
        let not_created = plan.not_created_set();
        deleted::write_deleted(salvage, cx.schema, &map, &loader.sink, not_created)?
    } else {
        Vec::new()
    };
    let finished = match finish::finish(
        &mut loader,
        cx.schema,
        &tally.lost,
        (!found.damage.is_empty(), opts.check_output),
        unique_not_created,
        opts.progress.as_ref(),
    )? {
        Ok(f) => f,
        Err(retry) => return Ok(retry),
    };
    let stand_ins = std::mem::take(&mut loader.sink.stand_ins);
    let flags_table = loader.sink.flags_table.take();
    drop(loader);
    for t in &mut tally.tables {
        t.stand_ins = stand_ins.get(&t.name).copied().unwrap_or(0);
        let rows: u64 = t.by_source.values().sum();
        t.exact = rows.saturating_sub(t.partial);
    }
    let parts = Parts {
        db,
        salvage,
        schema_from: found.from,
        damage,
        tally,
        scan: scanned,
        history,
        deleted,
        tables_not_created: plan.tables_not_created,
        finished,
        flags_table,
    };
    Ok(Attempt::Done(Box::new(report_of(parts))))
}

/// Pages the trees did not reach matter only when something is damaged:
/// in a database whose trees, schema and WAL read cleanly every page is in
/// a tree, on the freelist or a pointer map.
fn needs_scan(
    cx: &Ctx<'_>,
    found: &schema_src::FoundSchema,
    walked: &walk::Walked,
    tally: &Tally,
    damage: &[Damage],
) -> bool {
    !walked.suspects.is_empty()
        || tally
            .tables
            .iter()
            .any(|r| !r.holes.is_empty() || !r.damage.is_empty() || r.cells_lost > 0)
        || cx.salvage.header_from != HeaderSource::Page1
        || !found.is_page1()
        || !damage.is_empty()
        || cx
            .salvage
            .wal
            .as_ref()
            .is_some_and(|w| !w.damaged_frames.is_empty() || !w.fallback_pages.is_empty())
}

/// What the stages hand to the report.
struct Parts<'a> {
    pub db: &'a Database,
    pub salvage: &'a Salvage,
    pub schema_from: String,
    /// Damage met outside the tables' trees.
    pub damage: Vec<Damage>,
    pub tally: Tally,
    pub scan: Scan,
    pub history: Vec<(String, u64)>,
    pub deleted: Vec<DeletedTable>,
    pub tables_not_created: Vec<(String, String)>,
    pub finished: Finished,
    /// The table listing every stood-in value, when one was written.
    pub flags_table: Option<String>,
}

/// Stage: the report of a finished recovery (input and output paths are
/// the caller's to fill in), and its outcome.
fn report_of(p: Parts<'_>) -> Report {
    let salvage = p.salvage;
    let snap = &salvage.snapshot;
    let tally = p.tally;
    let any_damage = !p.damage.is_empty()
        || tally.tables.iter().any(|r| {
            !r.damage.is_empty()
                || r.cells_lost > 0
                || r.possibly_stale > 0
                || r.partial > 0
                || r.stand_ins > 0
                || r.cross_linked > 0
        })
        || !p.scan.orphan_pages.is_empty()
        || !p.scan.unreadable_pages.is_empty()
        || !p.scan.loose_overflow_pages.is_empty()
        || !tally.lost.is_empty()
        || salvage
            .wal
            .as_ref()
            .is_some_and(|w| !w.damaged_frames.is_empty())
        || salvage.header_from != HeaderSource::Page1;
    let orphan_pages = p
        .scan
        .orphan_pages
        .into_iter()
        .map(|(pgno, t)| {
            let table = t.and_then(|t| tally.tables.get(t as usize));
            let name = table.map_or("lost_and_found", |r| r.name.as_str());
            (pgno, name.to_string())
        })
        .collect();
    let mut report = Report {
        input: String::new(),
        output: String::new(),
        outcome: Outcome::Complete,
        page_size: snap.page_size(),
        page_count: snap.page_count(),
        header_from: salvage.header_from,
        schema_from: p.schema_from,
        wal: salvage.wal.clone(),
        wal_rejected: p.db.wal_rejected().map(String::from),
        journal: salvage.journal.clone(),
        tables: tally.tables,
        lost_and_found: tally.lost.len() as u64,
        history: p.history,
        deleted: p.deleted,
        lost_and_found_table: p.finished.lost_table,
        flags_table: p.flags_table,
        inferred_tables: p.finished.inferred,
        orphan_pages,
        unreadable_pages: p.scan.unreadable_pages,
        loose_overflow_pages: p.scan.loose_overflow_pages,
        index_pages_skipped: p.scan.index_pages_skipped,
        tables_not_created: p.tables_not_created,
        objects_not_created: p.finished.objects_not_created,
        flagged: tally.flagged,
        damage: p.damage,
        restarted: None,
    };
    report.outcome = if report.rows() == 0 && report.lost_and_found == 0 {
        Outcome::Nothing
    } else if any_damage {
        Outcome::Partial
    } else {
        Outcome::Complete
    };
    report
}
