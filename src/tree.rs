//! A bounded, cycle-safe walk of one b-tree, yielding its entries in key
//! order with their provenance.
//!
//! ```text
//!            interior: [c0 | c1 | ... | right]      table trees: keys only
//!             /        /                  \        index trees: c_i carries a
//!       leaf ...   leaf ...             leaf ...     record, visited between
//!                                                    its left child and c_i+1
//! ```
//!
//! Every page is read at most once per walk (a page reached twice, from two
//! parents or from itself, is damage), the depth is bounded, every pointer
//! is checked against the page count, and overflow chains are followed with
//! validation: in range, not seen before in the chain, and exactly as long
//! as the payload size says.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::snapshot::Snapshot;
use crate::torn::{KeyBytes, one_sector_cells, sound_cells};
use sqlite_salvage_format::Malformed;
use sqlite_salvage_format::be32;
use sqlite_salvage_format::cell::{Cell, Payload};
use sqlite_salvage_format::page::{BtreePage, PageKind, is_zeroed};

/// Deepest b-tree walked. SQLite refuses trees deeper than 20 levels.
pub const MAX_DEPTH: usize = 32;
/// Largest payload accepted (SQLite's hard limit on a value or row).
pub const MAX_PAYLOAD: u64 = i32::MAX as u64;

/// Where an entry was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Provenance {
    /// Page number of the cell.
    pub page: u32,
    /// Cell index on that page.
    pub cell: u16,
}

/// One entry of a b-tree.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'c> {
    /// The rowid, for table b-trees.
    pub rowid: Option<i64>,
    /// The whole payload (local bytes plus overflow).
    pub payload: &'c [u8],
    /// Where the cell is.
    pub at: Provenance,
    /// The overflow chain broke: `payload` is the local bytes and the valid
    /// prefix of the chain, shorter than the cell claims (only with
    /// [`TreeCursor::keep_partial`]).
    pub truncated: bool,
    /// A page of the overflow chain is all zeros: legal (`zeroblob()`), but
    /// also what a zeroed page looks like.
    pub zeroed_overflow: bool,
    /// The entry's page failed the space accounting, or an entry's key is
    /// outside the bounds its parents give (only with
    /// [`TreeCursor::verify_pages`]): its bytes may be from another version.
    pub suspect: bool,
    /// A suspect entry of a leaf whose key is inside its bounds and whose
    /// cell stands on its own (within one sector, overlapping no other
    /// cell, its key on the page's increasing run; see [`crate::torn`]):
    /// its record alone can vouch for it. Index leaves' cells only with
    /// [`TreeCursor::key_order`].
    pub sound: bool,
    /// The entry's bytes are all of one version: its page's space adds
    /// up, or (with [`TreeCursor::verify_pages`]) its cell lies within one
    /// 512-byte sector of a page whose space does not.
    pub one_version: bool,
}

/// A part of a table b-tree that could not be read: the rowids in
/// (`after`, `up_to`] (open-ended where None) were under `page`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Hole {
    /// The unusable child page.
    pub page: u32,
    /// Exclusive lower bound on the rowids it held.
    pub after: Option<i64>,
    /// Inclusive upper bound on the rowids it held.
    pub up_to: Option<i64>,
}

impl Hole {
    /// Whether `rowid` falls in this hole.
    pub fn contains(&self, rowid: i64) -> bool {
        self.after.is_none_or(|a| rowid > a) && self.up_to.is_none_or(|u| rowid <= u)
    }

    /// The hole of `holes` (disjoint, sorted by their lower bound, as a
    /// walk's are once sorted) that `rowid` falls in: only the last one
    /// starting below it can hold it.
    pub fn find(holes: &[Hole], rowid: i64) -> Option<&Hole> {
        let k = holes.partition_point(|h| h.after.is_none_or(|a| a < rowid));
        k.checked_sub(1)
            .and_then(|i| holes.get(i))
            .filter(|h| h.contains(rowid))
    }
}

/// Whether a table page (whose space adds up) has keys outside the range
/// `(after, up_to]` its parent gives it: two or more, or every one. Such a
/// page is not where its parent's pointer says (a pointer into another
/// tree, or to another version of the page); one key out of range on a
/// page of many is damage to that cell, judged by the cell.
fn misplaced(page: &BtreePage<'_>, (after, up_to): (Option<i64>, Option<i64>)) -> bool {
    if (after.is_none() && up_to.is_none()) || !page.kind.is_table() {
        return false;
    }
    let mut out = 0u32;
    for i in 0..page.cell_count {
        let key = match page.cell(i) {
            Ok(Cell::TableLeaf { rowid, .. } | Cell::TableInterior { rowid, .. }) => rowid,
            _ => continue,
        };
        if after.is_some_and(|a| key <= a) || up_to.is_some_and(|u| key > u) {
            out += 1;
        }
    }
    out >= 2 || (out >= 1 && out == u32::from(page.cell_count))
}

/// A set of page numbers, one bit per page up to the highest added: a
/// walk of a tree that spans a large file keeps an eighth of a byte per
/// page, not a hash entry.
#[derive(Default)]
pub struct PageSet {
    words: Vec<u64>,
}

impl PageSet {
    /// Adds `pgno`; false when it was there already.
    pub fn insert(&mut self, pgno: u32) -> bool {
        let (w, bit) = ((pgno / 64) as usize, 1u64 << (pgno % 64));
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        match self.words.get_mut(w) {
            Some(word) if *word & bit == 0 => {
                *word |= bit;
                true
            }
            _ => false,
        }
    }
}

/// One piece of damage found while walking leniently.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Damage {
    /// The page at fault.
    pub page: u32,
    /// The cell, when the damage is in one cell.
    pub cell: Option<u16>,
    /// What is wrong.
    pub what: String,
}

struct Level {
    pgno: u32,
    buf: Vec<u8>,
    /// Key bounds of this subtree (table trees).
    after: Option<i64>,
    up_to: Option<i64>,
    /// The page failed the space accounting (with `verify_pages`).
    suspect: bool,
    /// On such a page, the cells that stand on their own ([`sound_cells`]).
    sound: Vec<bool>,
    /// On such a page, the cells within one sector ([`one_sector_cells`]).
    one_sector: Vec<bool>,
    /// Next step: table interior pages take one step per child; index
    /// interior pages two per cell (child, then the cell's own record);
    /// leaves one per cell.
    step: u32,
}

/// Pages a walk read, by role (for callers that account for every page).
pub trait PageVisitor {
    /// A b-tree page of the walked tree.
    fn btree_page(&mut self, _pgno: u32, _kind: PageKind, _depth: usize) {}
    /// An overflow page of one of its cells.
    fn overflow_page(&mut self, _pgno: u32) {}
    /// A page the tree points at that could not be used as a b-tree page
    /// of this tree (unreadable, not a b-tree page, wrong kind or depth).
    fn unusable_page(&mut self, _pgno: u32) {}
    /// A page the tree points at whose keys lie outside the range its
    /// parent gives it (with [`TreeCursor::verify_pages`]): a page of
    /// another tree, or of another version, not read as this tree's.
    fn misplaced_page(&mut self, _pgno: u32) {}
}

/// A visitor that records nothing.
pub struct NoVisitor;
impl PageVisitor for NoVisitor {}

/// A cursor over the entries of one b-tree.
pub struct TreeCursor<'s, V: PageVisitor = NoVisitor> {
    snap: &'s Snapshot,
    root: u32,
    stack: Vec<Level>,
    pool: Vec<Vec<u8>>,
    visited: PageSet,
    chain_seen: HashSet<u32>,
    payload: Vec<u8>,
    scratch: Vec<u8>,
    table: Option<bool>,
    lenient: bool,
    damage: Vec<Damage>,
    started: bool,
    leaf_depth: Option<usize>,
    keep_partial: bool,
    verify: bool,
    truncated: bool,
    zeroed: bool,
    holes: Vec<Hole>,
    suspect_pages: Vec<u32>,
    bounds: (Option<i64>, Option<i64>),
    key_of: Option<Box<KeyBytes<'s>>>,
    pages_only: bool,
    /// What the walk read, for callers that keep account.
    pub visitor: V,
}

impl<'s> TreeCursor<'s, NoVisitor> {
    /// A cursor over the b-tree rooted at `root`.
    pub fn new(snap: &'s Snapshot, root: u32) -> Self {
        Self::with_visitor(snap, root, NoVisitor)
    }
}

impl<'s, V: PageVisitor> TreeCursor<'s, V> {
    /// A cursor that reports every page it reads to `visitor`.
    pub fn with_visitor(snap: &'s Snapshot, root: u32, visitor: V) -> Self {
        TreeCursor {
            snap,
            root,
            stack: Vec::new(),
            pool: Vec::new(),
            visited: PageSet::default(),
            chain_seen: HashSet::new(),
            payload: Vec::new(),
            scratch: Vec::new(),
            table: None,
            lenient: false,
            damage: Vec::new(),
            started: false,
            leaf_depth: None,
            keep_partial: false,
            verify: false,
            truncated: false,
            zeroed: false,
            holes: Vec::new(),
            suspect_pages: Vec::new(),
            bounds: (None, None),
            key_of: None,
            pages_only: false,
            visitor,
        }
    }

    /// Keep going past damage: skip what cannot be read and record it in
    /// [`TreeCursor::damage`] instead of returning an error.
    pub fn lenient(mut self, yes: bool) -> Self {
        self.lenient = yes;
        self
    }

    /// Yield entries whose overflow chain broke, with the bytes that could
    /// be read, marked [`Entry::truncated`], instead of skipping them.
    pub fn keep_partial(mut self, yes: bool) -> Self {
        self.keep_partial = yes;
        self
    }

    /// Check each page's space accounting ([`BtreePage::is_consistent`])
    /// and mark entries from pages that fail it [`Entry::suspect`] (and, in
    /// lenient walks, record each such page as damage).
    pub fn verify_pages(mut self, yes: bool) -> Self {
        self.verify = yes;
        self
    }

    /// How an index tree's keys order, as bytes (`key_of` of a record): with
    /// it, the cells of a suspect index leaf can stand on their own
    /// ([`Entry::sound`]) as a table leaf's can by their rowids.
    pub fn key_order(mut self, key_of: Box<KeyBytes<'s>>) -> Self {
        self.key_of = Some(key_of);
        self
    }

    /// Read the tree's pages only: every b-tree page is read, checked and
    /// shown to the visitor, and the holes and damage recorded, but no cell
    /// is read and no entry given ([`TreeCursor::next`] gives `None` once
    /// the walk is over). Overflow pages are not visited.
    pub fn pages_only(mut self, yes: bool) -> Self {
        self.pages_only = yes;
        self
    }

    /// Parts of a table b-tree that could not be read (lenient walks).
    pub fn holes(&self) -> &[Hole] {
        &self.holes
    }

    /// Damage seen so far (lenient walks).
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// Takes the holes and the damage seen so far out of the cursor
    /// (leaving none), without copying them.
    pub fn take_holes_and_damage(&mut self) -> (Vec<Hole>, Vec<Damage>) {
        (
            std::mem::take(&mut self.holes),
            std::mem::take(&mut self.damage),
        )
    }

    /// Pages whose space accounting failed (with [`TreeCursor::verify_pages`]).
    pub fn suspect_pages(&self) -> &[u32] {
        &self.suspect_pages
    }

    /// Whether the tree is a table (rowid) b-tree; known once the root was read.
    pub fn is_table(&self) -> Option<bool> {
        self.table
    }

    fn fail(&mut self, page: u32, cell: Option<u16>, what: impl Into<String>) -> Result<()> {
        let what = what.into();
        if self.lenient {
            self.damage.push(Damage { page, cell, what });
            Ok(())
        } else {
            Err(match cell {
                Some(c) => Error::corrupt(page, format!("cell {c}: {what}")),
                None => Error::corrupt(page, what),
            })
        }
    }

    /// Reads page `pgno` and pushes it, after the checks that make the walk
    /// safe. Returns false (after recording damage) when it cannot be used.
    fn push(&mut self, pgno: u32, parent: Option<u32>) -> Result<bool> {
        let pushed = self.push_inner(pgno, parent)?;
        // An unusable root leaves the whole key range unknown.
        if !pushed && self.table != Some(false) {
            self.holes.push(Hole {
                page: pgno,
                after: self.bounds.0,
                up_to: self.bounds.1,
            });
        }
        Ok(pushed)
    }

    fn push_inner(&mut self, pgno: u32, parent: Option<u32>) -> Result<bool> {
        let ctx = |m: &str| match parent {
            Some(p) => format!("{m} (child of page {p})"),
            None => m.to_string(),
        };
        if pgno == 0 || pgno > self.snap.page_count() {
            let at = parent.unwrap_or(pgno);
            self.fail(at, None, format!("child page {pgno} out of range"))?;
            return Ok(false);
        }
        if self.stack.len() >= MAX_DEPTH {
            self.fail(pgno, None, ctx("b-tree deeper than any valid one"))?;
            return Ok(false);
        }
        if !self.visited.insert(pgno) {
            self.fail(pgno, None, ctx("page reached twice in one b-tree"))?;
            return Ok(false);
        }
        let mut buf = self
            .pool
            .pop()
            .unwrap_or_else(|| vec![0u8; self.snap.page_size() as usize]);
        if let Err(e) = self.snap.read_page(pgno, &mut buf) {
            self.pool.push(buf);
            self.visitor.unusable_page(pgno);
            if self.lenient {
                self.fail(pgno, None, e.to_string())?;
                return Ok(false);
            }
            return Err(e);
        }
        let kind = match BtreePage::parse(&buf, pgno, self.snap.usable_size()) {
            Ok(p) => p.kind,
            Err(m) => {
                self.pool.push(buf);
                self.visitor.unusable_page(pgno);
                self.fail(pgno, None, ctx(m.0))?;
                return Ok(false);
            }
        };
        match self.table {
            None => self.table = Some(kind.is_table()),
            Some(t) if t != kind.is_table() => {
                self.pool.push(buf);
                self.visitor.unusable_page(pgno);
                self.fail(
                    pgno,
                    None,
                    ctx("index page in a table b-tree or the reverse"),
                )?;
                return Ok(false);
            }
            Some(_) => {}
        }
        let depth = self.stack.len();
        if kind.is_leaf() {
            match self.leaf_depth {
                None => self.leaf_depth = Some(depth),
                Some(d) if d != depth => {
                    self.pool.push(buf);
                    self.visitor.unusable_page(pgno);
                    self.fail(pgno, None, ctx("leaf at a different depth than the others"))?;
                    return Ok(false);
                }
                Some(_) => {}
            }
        }
        let parsed = BtreePage::parse(&buf, pgno, self.snap.usable_size());
        let suspect = self.verify && parsed.is_ok_and(|p| !p.is_consistent());
        if self.verify && !suspect && parsed.is_ok_and(|p| misplaced(&p, self.bounds)) {
            self.pool.push(buf);
            self.visitor.misplaced_page(pgno);
            let what = "its keys lie outside the range its parent gives it \
                (a page of another tree or version)";
            self.fail(pgno, None, ctx(what))?;
            return Ok(false);
        }
        self.visitor.btree_page(pgno, kind, depth);
        let (sound, one_sector) = match parsed {
            Ok(p) if suspect => (
                sound_cells(&p, self.key_of.as_deref()),
                one_sector_cells(&p),
            ),
            _ => (Vec::new(), Vec::new()),
        };
        if suspect {
            self.suspect_pages.push(pgno);
            if self.lenient {
                self.damage.push(Damage {
                    page: pgno,
                    cell: None,
                    what: "cells, freeblocks and free space do not add up (torn or damaged)".into(),
                });
            }
        }
        self.stack.push(Level {
            pgno,
            buf,
            after: self.bounds.0,
            up_to: self.bounds.1,
            suspect,
            sound,
            one_sector,
            step: 0,
        });
        Ok(true)
    }

    fn pop(&mut self) {
        if let Some(l) = self.stack.pop() {
            self.pool.push(l.buf);
        }
    }

    /// The next entry in key order, or `None` at the end.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Entry<'_>>> {
        if !self.started {
            self.started = true;
            self.push(self.root, None)?;
        }
        let usable = self.snap.usable_size();
        loop {
            let Some(top) = self.stack.last_mut() else {
                return Ok(None);
            };
            let pgno = top.pgno;
            let page = match BtreePage::parse(&top.buf, pgno, usable) {
                Ok(p) => p,
                Err(m) => {
                    // The header parsed when the page was pushed; kept for safety.
                    self.pop();
                    self.fail(pgno, None, m.0)?;
                    continue;
                }
            };
            let step = top.step;
            top.step += 1;
            let n = u32::from(page.cell_count);
            match page.kind {
                PageKind::TableInterior => {
                    let key = |i: u32| match page.cell(i as u16) {
                        Ok(Cell::TableInterior { rowid, .. }) => Some(rowid),
                        _ => None,
                    };
                    let (lvl_after, lvl_up_to) = (top.after, top.up_to);
                    let after = if step == 0 {
                        lvl_after
                    } else {
                        key(step - 1).or(lvl_after)
                    };
                    let child = if step < n {
                        match page.cell(step as u16) {
                            Ok(c) => {
                                self.bounds = (after, key(step).or(lvl_up_to));
                                c.left_child()
                            }
                            Err(m) => {
                                self.fail(pgno, Some(step as u16), m.0)?;
                                continue;
                            }
                        }
                    } else if step == n {
                        self.bounds = (after, lvl_up_to);
                        page.right_child
                    } else {
                        self.pop();
                        continue;
                    };
                    if let Some(child) = child {
                        self.push(child, Some(pgno))?;
                    }
                }
                PageKind::IndexInterior => {
                    if step > 2 * n {
                        self.pop();
                        continue;
                    }
                    if step == 2 * n {
                        if let Some(r) = page.right_child {
                            self.push(r, Some(pgno))?;
                        }
                        continue;
                    }
                    let i = (step / 2) as u16;
                    let cell = match page.cell(i) {
                        Ok(c) => c,
                        Err(m) => {
                            self.fail(pgno, Some(i), m.0)?;
                            // Skip the cell's record step as well.
                            if let Some(t) = self.stack.last_mut() {
                                t.step = t.step.max(2 * u32::from(i) + 2);
                            }
                            continue;
                        }
                    };
                    if step % 2 == 0 || self.pages_only {
                        if step % 2 == 0 {
                            if let Some(left) = cell.left_child() {
                                self.push(left, Some(pgno))?;
                            }
                        }
                        continue;
                    }
                    if let Some(loc) = self.load_payload(pgno, i)? {
                        return Ok(Some(self.entry(None, pgno, i, loc)));
                    }
                }
                PageKind::TableLeaf | PageKind::IndexLeaf => {
                    if step >= n || self.pages_only {
                        self.pop();
                        continue;
                    }
                    let i = step as u16;
                    let rowid = match page.cell(i) {
                        Ok(Cell::TableLeaf { rowid, .. }) => Some(rowid),
                        Ok(_) => None,
                        Err(m) => {
                            self.fail(pgno, Some(i), m.0)?;
                            continue;
                        }
                    };
                    if let Some(loc) = self.load_payload(pgno, i)? {
                        return Ok(Some(self.entry(rowid, pgno, i, loc)));
                    }
                }
            }
        }
    }

    fn entry(&self, rowid: Option<i64>, page: u32, cell: u16, loc: PayloadLoc) -> Entry<'_> {
        let payload = match &loc {
            PayloadLoc::Page { start, len } => self
                .stack
                .last()
                .and_then(|l| l.buf.get(*start..*start + *len))
                .unwrap_or(&[]),
            PayloadLoc::Assembled => &self.payload,
        };
        let (suspect, out_of_bounds, sound, one_sector) = match self.stack.last() {
            Some(l) => (
                l.suspect,
                rowid.is_some_and(|r| {
                    l.after.is_some_and(|a| r <= a) || l.up_to.is_some_and(|u| r > u)
                }),
                l.sound.get(usize::from(cell)).copied().unwrap_or(false),
                l.one_sector
                    .get(usize::from(cell))
                    .copied()
                    .unwrap_or(false),
            ),
            None => (false, false, false, false),
        };
        Entry {
            rowid,
            payload,
            at: Provenance { page, cell },
            truncated: matches!(loc, PayloadLoc::Assembled) && self.truncated,
            zeroed_overflow: matches!(loc, PayloadLoc::Assembled) && !self.truncated && self.zeroed,
            suspect: self.verify && (suspect || out_of_bounds),
            sound: self.verify && suspect && !out_of_bounds && sound,
            one_version: !suspect || one_sector,
        }
    }

    /// Locates cell `i`'s payload on the top page, assembling it from the
    /// overflow chain when it spills. `None` when it is damaged (lenient).
    fn load_payload(&mut self, pgno: u32, i: u16) -> Result<Option<PayloadLoc>> {
        let usable = self.snap.usable_size();
        let Some(top) = self.stack.last() else {
            return Ok(None);
        };
        let page =
            BtreePage::parse(&top.buf, pgno, usable).map_err(|m| Error::corrupt(pgno, m.0))?;
        let cell = page.cell(i).map_err(|m| Error::corrupt(pgno, m.0))?;
        let Some(p) = cell.payload().copied() else {
            return Ok(None);
        };
        if !p.spills() {
            let start = p.local.as_ptr() as usize - top.buf.as_ptr() as usize;
            return Ok(Some(PayloadLoc::Page {
                start,
                len: p.local.len(),
            }));
        }
        let res = assemble(
            self.snap,
            &p,
            &mut self.payload,
            &mut self.scratch,
            &mut self.chain_seen,
            &mut self.visitor,
        );
        match res {
            Ok(zeros) => {
                self.truncated = false;
                self.zeroed = zeros;
                Ok(Some(PayloadLoc::Assembled))
            }
            Err(m) => {
                self.fail(pgno, Some(i), m)?;
                if self.keep_partial {
                    self.truncated = true;
                    Ok(Some(PayloadLoc::Assembled))
                } else {
                    Ok(None)
                }
            }
        }
    }
}

enum PayloadLoc {
    Page { start: usize, len: usize },
    Assembled,
}

/// Collects a spilled payload: local bytes, then the overflow chain, with
/// validation. On error `out` holds the valid prefix that was read. Returns
/// whether a page of the chain was all zeros (legal, as for `zeroblob()`,
/// but also what a zeroed page looks like).
pub fn assemble<V: PageVisitor>(
    snap: &Snapshot,
    p: &Payload<'_>,
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    seen: &mut HashSet<u32>,
    visitor: &mut V,
) -> std::result::Result<bool, String> {
    out.clear();
    seen.clear();
    let mut zero_pages = false;
    if p.total > MAX_PAYLOAD {
        return Err(format!("payload size {} exceeds SQLite's limit", p.total));
    }
    let per_page = u64::from(snap.usable_size()) - 4;
    let rest = p.total - p.local.len() as u64;
    let pages_needed = rest.div_ceil(per_page);
    if pages_needed > u64::from(snap.page_count()) {
        return Err(format!(
            "payload of {} bytes needs more overflow pages than the database has",
            p.total
        ));
    }
    out.extend_from_slice(p.local);
    scratch.resize(snap.page_size() as usize, 0);
    let mut next = p.overflow;
    let mut remaining = rest;
    while remaining > 0 {
        if next == 0 {
            return Err(format!(
                "overflow chain ends {remaining} bytes short of the payload size"
            ));
        }
        if next > snap.page_count() {
            return Err(format!("overflow page {next} out of range"));
        }
        if !seen.insert(next) {
            return Err(format!("overflow chain loops at page {next}"));
        }
        snap.read_page(next, scratch).map_err(|e| e.to_string())?;
        if is_zeroed(scratch) {
            zero_pages = true;
        }
        // A chain that runs into a well-formed b-tree page has been cut and
        // the page reused (an overflow page starts with a page number, whose
        // first byte is a b-tree kind only in databases of 2^24+ pages).
        if BtreePage::parse(scratch, next, snap.usable_size())
            .is_ok_and(|p| p.is_consistent() && p.cell_count > 0)
        {
            return Err(format!("overflow chain runs into b-tree page {next}"));
        }
        visitor.overflow_page(next);
        let take = remaining.min(per_page) as usize;
        let link = be32(scratch, 0).ok_or_else(|| Malformed("overflow page").to_string())?;
        let data = scratch
            .get(4..4 + take)
            .ok_or_else(|| "overflow page shorter than its content".to_string())?;
        out.extend_from_slice(data);
        remaining -= take as u64;
        next = link;
    }
    if next != 0 {
        return Err(format!(
            "overflow chain continues to page {next} past the payload size"
        ));
    }
    Ok(zero_pages)
}
