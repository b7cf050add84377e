//! Torn pages: which cells of a leaf whose space does not add up stand on
//! their own.
//!
//! Takes a parsed leaf page (and, for an index leaf, a function giving a
//! record's key as bytes in the tree's order); gives, per cell, whether
//! its bytes lie within one 512-byte sector, overlap no other cell's, and
//! its key lies on the longest increasing run of keys through the page. A
//! torn write tears at sector boundaries, so such a cell is all of one
//! version: its record alone can then vouch for it.

use sqlite_salvage_format::cell::Cell;
use sqlite_salvage_format::page::{BtreePage, PageKind};
use sqlite_salvage_format::record::Record;

/// The unit a torn write tears at: the smallest sector SQLite assumes.
const SECTOR: usize = 512;

/// A record's key as bytes whose order is the tree's key order; `None`
/// when the record has no such key (it cannot be placed).
pub type KeyBytes<'a> = dyn Fn(&[u8]) -> Option<Vec<u8>> + 'a;

/// For each cell of a leaf whose space does not add up (torn, or
/// damaged): whether it stands on its own: its bytes inside the content
/// area and within one 512-byte sector, overlapping no other cell's, and
/// its key above the one of the cell before it and below the one after it
/// (by the pointer array, among the cells that parse). A table leaf's key
/// is its rowid; an index leaf's is `key_of` of its record, which must be
/// whole on the page and fill its cell. Every cell of an index leaf
/// without `key_of`, and of interior pages: false.
pub(crate) fn sound_cells(page: &BtreePage<'_>, key_of: Option<&KeyBytes<'_>>) -> Vec<bool> {
    let n = page.cell_count;
    let mut sound = match (page.kind, key_of) {
        (PageKind::TableLeaf, _) | (PageKind::IndexLeaf, Some(_)) => apart(page, &extents(page)),
        _ => return vec![false; usize::from(n)],
    };
    // In order: on the longest run of strictly increasing keys through the
    // cells whose bytes are where they should be (a cell misread from
    // another version's bytes is off it, and does not push the others off).
    let keep = match key_of {
        Some(key_of) if page.kind == PageKind::IndexLeaf => {
            let keys: Vec<Option<Vec<u8>>> = (0..n)
                .map(|i| whole_record(page, i).and_then(key_of))
                .collect();
            on_run(&sound, &keys)
        }
        _ => {
            let rowids: Vec<Option<i64>> = (0..n)
                .map(|i| match page.cell(i) {
                    Ok(Cell::TableLeaf { rowid, .. }) => Some(rowid),
                    _ => None,
                })
                .collect();
            on_run(&sound, &rowids)
        }
    };
    for (s, k) in sound.iter_mut().zip(keep) {
        *s &= k;
    }
    sound
}

/// Which cells, among the `sound` ones with a key, are on the longest
/// strictly increasing run of keys.
fn on_run<K: Ord + Clone>(sound: &[bool], keys: &[Option<K>]) -> Vec<bool> {
    let placed: Vec<usize> = (0..keys.len())
        .filter(|&i| sound.get(i) == Some(&true) && keys.get(i).is_some_and(Option::is_some))
        .collect();
    let ks: Vec<K> = placed
        .iter()
        .filter_map(|&i| keys.get(i)?.clone())
        .collect();
    let on = longest_increasing(&ks);
    let mut out = vec![false; keys.len()];
    for (k, &i) in placed.iter().enumerate() {
        if on.get(k).copied().unwrap_or(false) {
            set(&mut out, i);
        }
    }
    out
}

/// Per cell of a leaf: whether its bytes lie inside the content area and
/// within one 512-byte sector. A torn write tears at sector boundaries: such
/// a cell is all of one version.
pub(crate) fn one_sector_cells(page: &BtreePage<'_>) -> Vec<bool> {
    extents(page).iter().map(Option::is_some).collect()
}

/// Each cell's extent on the page, when inside the content area and
/// within one sector.
fn extents(page: &BtreePage<'_>) -> Vec<Option<(usize, usize)>> {
    let content = page.cell_pointers_end()..page.usable() as usize;
    let one_sector = |start: usize, end: usize| start / SECTOR == (end - 1) / SECTOR;
    let extent = |i: u16| {
        let start = page.cell_offset(i).ok()?;
        let end = start.checked_add(page.cell_size(i).ok()?)?;
        (content.start <= start && end <= content.end && start < end && one_sector(start, end))
            .then_some((start, end))
    };
    (0..page.cell_count).map(extent).collect()
}

/// Per cell: its bytes inside the content area and within one sector
/// (`extents`), and overlapping no other cell's. Of two that overlap, one
/// whose record fills it exactly is kept over one whose record does not
/// (bytes misread from another version); two alike are both given up.
fn apart(page: &BtreePage<'_>, extents: &[Option<(usize, usize)>]) -> Vec<bool> {
    let n = page.cell_count;
    let mut sound: Vec<bool> = extents.iter().map(Option::is_some).collect();
    // Overlaps: by start, each cell against the furthest end before it.
    let mut by_start: Vec<(usize, usize, usize)> = extents
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.map(|(s, t)| (s, t, i)))
        .collect();
    by_start.sort_unstable();
    let fills: Vec<bool> = (0..n).map(|i| record_fills(page, i)).collect();
    let fill = |i: usize| fills.get(i).copied().unwrap_or(false);
    let mut reach: Option<(usize, usize)> = None;
    for &(start, end, i) in &by_start {
        if let Some((far, j)) = reach {
            // Two pointers to the same cell (a torn pointer array) are
            // one cell: the key order keeps it once.
            let same = extents.get(j).copied().flatten() == Some((start, end));
            if start < far && !same {
                if fill(i) == fill(j) || !fill(i) {
                    unset(&mut sound, i);
                }
                if fill(i) == fill(j) || !fill(j) {
                    unset(&mut sound, j);
                }
            }
        }
        if reach.is_none_or(|(far, _)| end > far) {
            reach = Some((end, i));
        }
    }
    sound
}

/// Cell `i`'s payload when all of it is on the page.
fn whole_record<'p>(page: &'p BtreePage<'_>, i: u16) -> Option<&'p [u8]> {
    let cell = page.cell(i).ok()?;
    let p = cell.payload()?;
    (!p.spills()).then_some(p.local)
}

/// Whether cell `i` holds all of its payload and that payload is a record
/// that fills it exactly.
fn record_fills(page: &BtreePage<'_>, i: u16) -> bool {
    let Some(p) = whole_record(page, i) else {
        return false;
    };
    let mut rec = Record::new();
    rec.parse(p).is_ok() && rec.end() == p.len()
}

/// Which of `keys` are on a longest strictly increasing subsequence
/// (patience sorting, O(n log n)).
fn longest_increasing<K: Ord>(keys: &[K]) -> Vec<bool> {
    // tails[l]: index of the smallest last key of an increasing run of
    // length l + 1; prev[i]: the index before i on its run.
    let mut tails: Vec<usize> = Vec::new();
    let mut prev: Vec<Option<usize>> = vec![None; keys.len()];
    for (i, k) in keys.iter().enumerate() {
        let l = tails.partition_point(|&t| keys.get(t).is_some_and(|x| x < k));
        if let Some(p) = prev.get_mut(i) {
            *p = l.checked_sub(1).and_then(|j| tails.get(j).copied());
        }
        if l == tails.len() {
            tails.push(i);
        } else if let Some(t) = tails.get_mut(l) {
            *t = i;
        }
    }
    let mut on = vec![false; keys.len()];
    let mut at = tails.last().copied();
    while let Some(i) = at {
        set(&mut on, i);
        at = prev.get(i).copied().flatten();
    }
    on
}

fn set(flags: &mut [bool], i: usize) {
    if let Some(b) = flags.get_mut(i) {
        *b = true;
    }
}

fn unset(flags: &mut [bool], i: usize) {
    if let Some(b) = flags.get_mut(i) {
        *b = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_increasing_run_is_marked_once() {
        let keys = [1, 50, 2, 3, 3, 9, 4, 5];
        let on = longest_increasing(&keys);
        let run: Vec<i64> = keys
            .iter()
            .zip(&on)
            .filter(|p| *p.1)
            .map(|p| *p.0)
            .collect();
        assert_eq!(run, vec![1, 2, 3, 4, 5]);
        assert!(longest_increasing::<i64>(&[]).is_empty());
        assert_eq!(
            longest_increasing(&[7, 7]).iter().filter(|b| **b).count(),
            1
        );
        let bytes: Vec<&[u8]> = vec![b"b", b"a", b"ab", b"c"];
        let on = longest_increasing(&bytes);
        assert_eq!(on, vec![false, true, true, true]);
    }
}
