//! Orphaned leaves joined to their tables' bulk loads.
//!
//! When interior pages of a bulk-loaded table are lost, the leaves below
//! them are orphans: rows the candidate stage finds and, without this,
//! inserts one by one through SQL, each into the middle of a tree already
//! written. Before a first run's walk, the bulk-loaded tables' interior
//! pages are read ([`orphaned_leaves`]); when the leaves below the lost
//! ones are estimated at an eighth of the file or more
//! ([`worth_a_survey`]), the run writes nothing and surveys: the walk
//! claims the pages, the candidate stage reads the orphaned ones, and
//! every orphaned leaf page all of whose cells are whole rows kept for one
//! bulk-loaded table, in strictly increasing key order, is taken here
//! ([`Splices::take`], from `scan`) with its first and last key. The next
//! run's walk of that table takes the leaves in key order ([`Feed`]): a leaf that
//! falls strictly between two rows of the tree (and after the leaf before
//! it) is read again and written with the tree's rows, page by page; one
//! that does not stays an orphan for the candidate stage, and its rows go
//! in through SQL as before.
//!
//! Takes the input's interior pages (the estimate) and the leaves the
//! survey found; gives, per table, the leaves to join and a cursor over
//! them for the walk.

use std::cmp::Ordering;
use std::collections::HashSet;

use super::index_copy::{key_cmp, pk_columns};
use super::report::Evidence;
use crate::schema::Table;
use crate::snapshot::Snapshot;
use crate::tree::MAX_DEPTH;
use sqlite_salvage_format::kind::PageKind;
use sqlite_salvage_format::page::BtreePage;
use sqlite_salvage_format::record::Record;

/// A WITHOUT ROWID key longer than this is not kept for a leaf, nor any
/// once the keys kept reach `MAX_KEYS` bytes: those leaves' rows go in
/// through SQL (the memory kept does not follow what the pages claim).
const MAX_KEY: usize = 4096;
const MAX_KEYS: usize = 16 << 20;

/// Whether the leaves estimated to be orphaned ([`orphaned_leaves`]) are
/// worth a survey and a second run: when they are an eighth of the file or
/// more. Below that their rows cost less one by one through SQL than
/// reading the file again.
pub(crate) fn worth_a_survey(orphaned_leaves: u64, page_count: u32) -> bool {
    orphaned_leaves >= 2 && orphaned_leaves.saturating_mul(8) >= u64::from(page_count)
}

/// Estimates the leaves of the tree rooted at `root` that its walk will
/// not reach, reading its interior pages only (one child per level tells
/// whether the next level is the leaves'): each interior page that cannot
/// be used counts the product of the mean fan-outs of the levels from its
/// own down to the leaves ([`estimate`]). 0 when no leaf level is found (a
/// lost root: the tree's size is unknown). Each page is queued once, so
/// the work is bounded by the file's pages whatever the pages say.
pub(crate) fn orphaned_leaves(snap: &Snapshot, root: u32) -> u64 {
    let mut buf = vec![0u8; snap.page_size() as usize];
    let mut seen = HashSet::from([root]);
    let mut level = vec![root];
    // By depth: pages that could not be used, interior pages read, and
    // the children they list.
    let mut lost_at: Vec<u64> = Vec::new();
    let mut fanout_at: Vec<(u64, u64)> = Vec::new();
    let mut table = None;
    for _ in 0..MAX_DEPTH {
        let mut next = Vec::new();
        let (mut lost, mut read, mut listed) = (0u64, 0u64, 0u64);
        let mut leaves_below = None;
        for &pgno in &level {
            let children = interior_children(snap, pgno, &mut buf, &mut table);
            let Some(children) = children else {
                lost += 1;
                continue;
            };
            if children.is_empty() {
                continue;
            }
            read += 1;
            listed += children.len() as u64;
            if leaves_below.is_none() {
                leaves_below = children
                    .iter()
                    .find_map(|&c| page_kind(snap, c, &mut buf).map(|k| k.is_leaf()));
            }
            if leaves_below != Some(true) {
                next.extend(children.into_iter().filter(|&c| seen.insert(c)));
            }
        }
        lost_at.push(lost);
        fanout_at.push((read, listed));
        if leaves_below == Some(true) {
            return estimate(&lost_at, &fanout_at);
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    0
}

/// The leaves below the pages lost at each depth, the leaves one level
/// below the last: each counts the product of the mean fan-outs of the
/// levels from its own down (a level with no page read takes the mean of
/// all).
fn estimate(lost_at: &[u64], fanout_at: &[(u64, u64)]) -> u64 {
    let (read, listed) = fanout_at
        .iter()
        .fold((0u64, 0u64), |(r, l), &(a, b)| (r + a, l + b));
    let overall = listed.checked_div(read).unwrap_or(1).max(1);
    let fanout = |&(r, l): &(u64, u64)| l.checked_div(r).unwrap_or(overall).max(1);
    lost_at
        .iter()
        .enumerate()
        .map(|(d, &n)| {
            let below = fanout_at
                .get(d..)
                .unwrap_or(&[])
                .iter()
                .map(fanout)
                .fold(1u64, u64::saturating_mul);
            n.saturating_mul(below)
        })
        .fold(0, u64::saturating_add)
}

/// The kind of page `pgno` when it reads as a b-tree page.
fn page_kind(snap: &Snapshot, pgno: u32, buf: &mut [u8]) -> Option<PageKind> {
    if pgno == 0 || pgno > snap.page_count() {
        return None;
    }
    snap.read_page(pgno, buf).ok()?;
    BtreePage::parse(buf, pgno, snap.usable_size())
        .ok()
        .map(|p| p.kind)
}

/// The children of interior page `pgno` of a tree whose pages are of the
/// family `table` (set by the first page read); `None` when the page
/// cannot be used as one.
fn interior_children(
    snap: &Snapshot,
    pgno: u32,
    buf: &mut [u8],
    table: &mut Option<bool>,
) -> Option<Vec<u32>> {
    if pgno == 0 || pgno > snap.page_count() {
        return None;
    }
    snap.read_page(pgno, buf).ok()?;
    let p = BtreePage::parse(buf, pgno, snap.usable_size()).ok()?;
    if *table.get_or_insert(p.kind.is_table()) != p.kind.is_table() {
        return None;
    }
    if p.kind.is_leaf() {
        // A leaf where an interior page was expected orphans nothing.
        return Some(Vec::new());
    }
    p.children().ok()
}

/// An orphaned leaf to join to its table's load.
#[derive(Debug, Clone, Copy)]
struct Splice {
    /// First and last rowid; for a WITHOUT ROWID table, where the first
    /// and last record are in [`Splices::keys`] (offset << 32 | length).
    first: i64,
    last: i64,
    pgno: u32,
    cells: u16,
    /// What attributed the leaf to the table.
    evidence: Evidence,
}

/// The orphaned leaves a survey found, by table.
#[derive(Default)]
pub(crate) struct Splices {
    by_table: Vec<Vec<Splice>>,
    /// The first and last records of WITHOUT ROWID tables' leaves.
    keys: Vec<u8>,
}

/// The first and last keys of a leaf offered for joining.
pub(crate) enum LeafKeys<'a> {
    Rowids(i64, i64),
    Records(&'a [u8], &'a [u8]),
}

/// A table's key of one row: its rowid, or its record (WITHOUT ROWID).
#[derive(Clone, Copy)]
pub(crate) enum KeyRef<'a> {
    Rowid(i64),
    Record(&'a Record, &'a [u8]),
}

impl Splices {
    /// Takes orphaned leaf `pgno` of table `ti` (its `cells` in strictly
    /// increasing key order), attributed on `evidence`, for joining: rowid tables give their first
    /// and last rowid, WITHOUT ROWID tables their first and last record
    /// (false, not taken, when one is longer than [`MAX_KEY`] or the keys
    /// kept would pass [`MAX_KEYS`]).
    pub fn take(
        &mut self,
        ti: usize,
        (pgno, cells, evidence): (u32, u16, Evidence),
        keys: LeafKeys<'_>,
    ) -> bool {
        let (first, last) = match keys {
            LeafKeys::Rowids(f, l) => (f, l),
            LeafKeys::Records(f, l)
                if f.len() <= MAX_KEY
                    && l.len() <= MAX_KEY
                    && self.keys.len() + f.len() + l.len() <= MAX_KEYS =>
            {
                (self.keep_key(f), self.keep_key(l))
            }
            LeafKeys::Records(..) => return false,
        };
        if self.by_table.len() <= ti {
            self.by_table.resize_with(ti + 1, Vec::new);
        }
        let Some(list) = self.by_table.get_mut(ti) else {
            return false;
        };
        list.push(Splice {
            first,
            last,
            pgno,
            cells,
            evidence,
        });
        true
    }

    fn keep_key(&mut self, record: &[u8]) -> i64 {
        let at = self.keys.len() as i64;
        self.keys.extend_from_slice(record);
        (at << 32) | record.len() as i64
    }

    /// Puts each table's leaves in key order, once the survey is over.
    pub fn sort(&mut self, tables: &[Table]) {
        let keys: &[u8] = &self.keys;
        for (list, t) in self.by_table.iter_mut().zip(tables) {
            if t.without_rowid {
                let k = pk_columns(t);
                let (mut ra, mut rb) = (Record::new(), Record::new());
                list.sort_by(|x, y| {
                    let (bx, by) = (stored(keys, x.first), stored(keys, y.first));
                    if ra.parse(bx).is_err() || rb.parse(by).is_err() {
                        return Ordering::Equal;
                    }
                    key_cmp(k, (&ra, bx), (&rb, by))
                });
            } else {
                list.sort_by_key(|s| s.first);
            }
            list.shrink_to_fit();
        }
    }

    /// The leaves offered for table `ti` (of table `t`), in key order
    /// ([`Splices::sort`]), for its walk; `None` when there are none.
    pub fn feed<'s>(&'s self, ti: usize, t: &Table) -> Option<Feed<'s>> {
        let list = self.by_table.get(ti)?;
        if list.is_empty() {
            return None;
        }
        Some(Feed {
            list,
            next: 0,
            keys: &self.keys,
            k: pk_columns(t),
            rowid: !t.without_rowid,
            has_prev: false,
            prev_rowid: 0,
            prev: Vec::new(),
            prev_rec: Record::new(),
            joined: 0,
            joined_at: vec![false; list.len()],
            backward: false,
            scratch: Record::new(),
            scratch_holds: None,
        })
    }
}

/// A record kept in `keys` (offset << 32 | length).
fn stored(keys: &[u8], at: i64) -> &[u8] {
    let start = usize::try_from(at >> 32).unwrap_or(usize::MAX);
    let len = usize::try_from(at & 0xffff_ffff).unwrap_or(0);
    keys.get(start..start.saturating_add(len)).unwrap_or(&[])
}

/// The walk's cursor over a table's leaves to join, in key order.
pub(crate) struct Feed<'s> {
    list: &'s [Splice],
    next: usize,
    keys: &'s [u8],
    /// Primary-key columns (WITHOUT ROWID).
    k: usize,
    rowid: bool,
    /// The last key passed: a tree row's, or a joined leaf's last.
    has_prev: bool,
    prev_rowid: i64,
    prev: Vec<u8>,
    prev_rec: Record,
    /// Leaves joined so far, and which.
    pub joined: u32,
    joined_at: Vec<bool>,
    /// A tree row came with a key not above the one before it: no leaf is
    /// joined after that.
    pub backward: bool,
    /// A kept key parsed, and which.
    scratch: Record,
    scratch_holds: Option<i64>,
}

impl Feed<'_> {
    /// The order of kept key `at` against `key` (`Equal` when the kept
    /// record does not parse: never joined).
    fn cmp_kept(&mut self, at: i64, key: KeyRef<'_>) -> Ordering {
        match key {
            KeyRef::Rowid(r) => at.cmp(&r),
            KeyRef::Record(rec, p) => {
                let b = stored(self.keys, at);
                if !self.parse_kept(at) {
                    return Ordering::Equal;
                }
                key_cmp(self.k, (&self.scratch, b), (rec, p))
            }
        }
    }

    /// Parses kept key `at` into `scratch` (unless it is there already:
    /// the next leaf's first key is compared with every tree row before
    /// it); false when it does not parse.
    fn parse_kept(&mut self, at: i64) -> bool {
        if self.scratch_holds == Some(at) {
            return true;
        }
        self.scratch_holds = None;
        if self.scratch.parse(stored(self.keys, at)).is_err() {
            return false;
        }
        self.scratch_holds = Some(at);
        true
    }

    /// Whether the last key passed is strictly below kept key `at`.
    fn prev_below_kept(&mut self, at: i64) -> bool {
        if !self.has_prev {
            return true;
        }
        if self.rowid {
            return self.prev_rowid < at;
        }
        let b = stored(self.keys, at);
        if !self.parse_kept(at) {
            return false;
        }
        key_cmp(self.k, (&self.prev_rec, &self.prev), (&self.scratch, b)) == Ordering::Less
    }

    /// Whether the last key passed is strictly below `key`.
    fn prev_below(&self, key: KeyRef<'_>) -> bool {
        if !self.has_prev {
            return true;
        }
        match key {
            KeyRef::Rowid(r) => self.prev_rowid < r,
            KeyRef::Record(rec, p) => {
                key_cmp(self.k, (&self.prev_rec, &self.prev), (rec, p)) == Ordering::Less
            }
        }
    }

    /// The next leaf to join before the tree row with key `key` (or, with
    /// `None`, after the tree's last row): its page, cell count and the
    /// evidence that attributed it. Leaves
    /// that start before `key` but do not fit between the last key passed
    /// and it are passed over (they stay orphans).
    pub fn next_before(&mut self, key: Option<KeyRef<'_>>) -> Option<(u32, u16, Evidence)> {
        while let Some(s) = self.list.get(self.next).copied() {
            if let Some(k) = key {
                if self.cmp_kept(s.first, k) != Ordering::Less {
                    return None;
                }
            }
            self.next += 1;
            let below_key = key.is_none_or(|k| self.cmp_kept(s.last, k) == Ordering::Less);
            if !self.backward && below_key && self.prev_below_kept(s.first) {
                return Some((s.pgno, s.cells, s.evidence));
            }
        }
        None
    }

    /// The leaf [`Feed::next_before`] gave last.
    fn last_given(&self) -> Option<Splice> {
        self.next
            .checked_sub(1)
            .and_then(|i| self.list.get(i))
            .copied()
    }

    /// Whether the leaf [`Feed::next_before`] gave last reads again with
    /// the keys it was offered with.
    pub fn same_keys(&mut self, first: KeyRef<'_>, last: KeyRef<'_>) -> bool {
        let Some(s) = self.last_given() else {
            return false;
        };
        self.cmp_kept(s.first, first) == Ordering::Equal
            && self.cmp_kept(s.last, last) == Ordering::Equal
    }

    /// The leaf [`Feed::next_before`] gave last was joined: its last key is
    /// the last key passed.
    pub fn joined(&mut self) {
        let Some(s) = self.last_given() else {
            return;
        };
        self.joined += 1;
        if let Some(b) = self.joined_at.get_mut(self.next - 1) {
            *b = true;
        }
        self.has_prev = true;
        if self.rowid {
            self.prev_rowid = s.last;
            return;
        }
        let b = stored(self.keys, s.last);
        self.prev.clear();
        self.prev.extend_from_slice(b);
        if self.prev_rec.parse(b).is_err() {
            self.backward = true;
        }
    }

    /// The pages of the leaves joined.
    pub fn joined_pages(&self) -> impl Iterator<Item = u32> + '_ {
        self.list
            .iter()
            .zip(&self.joined_at)
            .filter(|(_, j)| **j)
            .map(|(s, _)| s.pgno)
    }

    /// Whether rowid `r` is in the range of a joined leaf (rowid tables).
    pub fn covers(&self, r: i64) -> bool {
        if !self.rowid {
            return false;
        }
        let k = self.list.partition_point(|s| s.first <= r);
        k.checked_sub(1).is_some_and(|i| {
            let joined = self.joined_at.get(i).copied().unwrap_or(false);
            joined && self.list.get(i).is_some_and(|s| r <= s.last)
        })
    }

    /// A tree row with key `key` was passed.
    pub fn passed(&mut self, key: KeyRef<'_>) {
        if !self.prev_below(key) {
            self.backward = true;
            return;
        }
        self.has_prev = true;
        match key {
            KeyRef::Rowid(r) => self.prev_rowid = r,
            KeyRef::Record(rec, p) => {
                self.prev.clear();
                self.prev.extend_from_slice(p);
                self.prev_rec.clone_from(rec);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_pages_count_the_fan_out_of_the_levels_below_them() {
        // Root (3 children), 3 pages at depth 1 with 10 children each: a
        // page lost at depth 1 stands for 10 leaves, the root for 30.
        assert_eq!(estimate(&[0, 1], &[(1, 3), (2, 20)]), 10);
        assert_eq!(estimate(&[1], &[(0, 0)]), 1);
        assert_eq!(estimate(&[0, 2, 0], &[(1, 4), (2, 8), (8, 80)]), 2 * 4 * 10);
        // No page read at a level: the mean of all.
        assert_eq!(estimate(&[0, 1], &[(1, 9), (0, 0)]), 9);
        assert_eq!(estimate(&[0, 0], &[(1, 3), (3, 30)]), 0);
    }

    #[test]
    fn a_survey_is_worth_it_from_an_eighth_of_the_file() {
        assert!(!worth_a_survey(12, 100));
        assert!(worth_a_survey(13, 100));
        assert!(!worth_a_survey(1, 1));
        assert!(worth_a_survey(u64::MAX, u32::MAX));
    }
}
