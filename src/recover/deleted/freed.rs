//! Freed pages for the deleted-rows stage: freelist leaves and pages no
//! table owns now, read as the table whose records fit them alone; freed
//! non-leaf pages (trunk pages, interior pages) by the table whose records
//! fill them; freed leaves no table fits, into tables named by their shape
//! ([`crate::recover::dropped::shape_table`]).
//!
//! Takes the stage's [`Writer`] and a page; gives the rows found to
//! [`Writer::offer`].

use super::{Origin, Writer};
use crate::error::Result;
use crate::recover::carve::{cells_by_pointer, fits};
use crate::recover::dropped::{MAX_SHAPE_COLUMNS, MAX_SHAPES, Shape, shape_table};
use crate::recover::freespace::{FreeCell, free_cells, headless_free_cells, leaf_kind};
use crate::schema::Table;
use sqlite_salvage_format::page::{BtreePage, PageKind};
use sqlite_salvage_format::record::{Record, ValueRef};

impl Writer<'_> {
    /// A freelist page that reads as a table leaf: its cells and the cells
    /// in its free space are a table's when their records fit that table
    /// alone (as wide as its stored columns).
    pub(super) fn freelist_page(
        &mut self,
        pgno: u32,
        raw: &[u8],
        usable_table: &dyn Fn(&Table) -> bool,
    ) -> Result<()> {
        self.unowned_leaf(pgno, raw, usable_table, Origin::Freelist)
    }

    /// A page no table owns now (freed, or an older version of a page now
    /// another's): its cells and free space, a table's when their records
    /// fit that table alone; a freed leaf no table fits, by its shape. A
    /// freelist page that does not read as a leaf is read once the freed
    /// leaves are ([`Writer::freed_non_leaves`]).
    pub(super) fn unowned_leaf(
        &mut self,
        pgno: u32,
        raw: &[u8],
        usable_table: &dyn Fn(&Table) -> bool,
        from: Origin,
    ) -> Result<()> {
        let usable = self.salvage.snapshot.usable_size();
        let enc = self.salvage.snapshot.header().encoding;
        let page = BtreePage::parse(raw, pgno, usable)
            .ok()
            .filter(|p| p.kind.is_leaf());
        let Some(page) = page else {
            if from == Origin::Freelist {
                // Once the freed leaves are read ([`Writer::freed_non_leaves`]).
                self.deferred.push(pgno);
            }
            return Ok(());
        };
        let cells: Vec<FreeCell> = cells_by_pointer(&page)
            .0
            .into_iter()
            .map(FreeCell::pointed)
            .collect();
        let mut rec = Record::new();
        let mut fitting: Vec<(usize, Vec<FreeCell>)> = Vec::new();
        for (ti, t) in self.tables.iter().enumerate().take(self.known) {
            if !usable_table(t)
                || t.name.to_ascii_lowercase().starts_with("sqlite_")
                || leaf_kind(t) != page.kind
            {
                continue;
            }
            let width = t.stored_columns();
            let fit = |rec: &mut Record, c: &FreeCell| {
                let ok = if c.overflow == 0 {
                    rec.parse(&c.payload).is_ok()
                } else {
                    rec.parse_partial(&c.payload).is_ok()
                };
                ok && rec.len() == width && fits(t, rec, &c.payload)
            };
            if !cells.iter().all(|c| fit(&mut rec, c)) {
                continue;
            }
            let free: Vec<FreeCell> = free_cells(raw, &page, usable, t, enc)
                .into_iter()
                .filter(|c| fit(&mut rec, c))
                .collect();
            if !cells.is_empty() || !free.is_empty() {
                fitting.push((ti, free));
            }
        }
        if fitting.is_empty() && from == Origin::Freelist && page.kind == PageKind::TableLeaf {
            return self.by_shape(pgno, raw, &page, &cells);
        }
        let [(ti, _)] = fitting[..] else {
            return Ok(());
        };
        if page.kind == PageKind::IndexLeaf && self.index_shaped(&cells) {
            // A freed page of an index reads as a WITHOUT ROWID table's too.
            return Ok(());
        }
        let Some((_, free)) = fitting.pop() else {
            return Ok(());
        };
        for c in cells.iter().chain(&free) {
            self.offer(ti, pgno, c, from)?;
        }
        Ok(())
    }

    /// A freed table leaf whose records fit no table: its cells and free
    /// space go to the shape-named table of their width, when every cell's
    /// record has the same number of values.
    pub(super) fn by_shape(
        &mut self,
        pgno: u32,
        raw: &[u8],
        page: &BtreePage<'_>,
        cells: &[FreeCell],
    ) -> Result<()> {
        let rec = &mut self.rec;
        let mut width = None;
        for c in cells {
            let n = if c.overflow == 0 {
                rec.parse(&c.payload).map(|_| rec.len())
            } else {
                rec.parse_partial(&c.payload).map(|_| rec.len())
            };
            match (n, width) {
                (Ok(n), None) if (1..=MAX_SHAPE_COLUMNS).contains(&n) => width = Some(n),
                (Ok(n), Some(w)) if n == w => {}
                _ => return Ok(()),
            }
        }
        let Some(width) = width else {
            return Ok(());
        };
        if !self.shapes.contains_key(&width) {
            if self.shapes.len() >= MAX_SHAPES {
                return Ok(());
            }
            let enc = self.salvage.snapshot.header().encoding;
            let k = self.shapes.len() + 1;
            let Some(t) = shape_table(self.schema, k, width, enc)? else {
                return Ok(());
            };
            self.tables.push(t);
            let shape = Shape::new(self.tables.len() - 1, width);
            self.shapes.insert(width, shape);
        }
        let Some(shape) = self.shapes.get_mut(&width) else {
            return Ok(());
        };
        for c in cells {
            if self.rec.parse_partial(&c.payload).is_ok() {
                shape.observe(&self.rec, &c.payload);
            }
        }
        let ti = shape.table;
        let snap = &self.salvage.snapshot;
        let (usable, enc) = (snap.usable_size(), snap.header().encoding);
        let free = free_cells(raw, page, usable, &self.tables[ti], enc);
        for c in cells.iter().chain(&free) {
            self.offer(ti, pgno, c, Origin::Shape)?;
        }
        Ok(())
    }

    /// A freed leaf known to be table `ti`'s: its cells and free space.
    pub(super) fn leaf_of(&mut self, ti: usize, pgno: u32, raw: &[u8], from: Origin) -> Result<()> {
        let usable = self.salvage.snapshot.usable_size();
        let Ok(page) = BtreePage::parse(raw, pgno, usable) else {
            return Ok(());
        };
        for c in cells_by_pointer(&page).0 {
            self.offer(ti, pgno, &FreeCell::pointed(c), from)?;
        }
        let t = &self.tables[ti];
        let enc = self.salvage.snapshot.header().encoding;
        for c in free_cells(raw, &page, usable, t, enc) {
            self.offer(ti, pgno, &c, from)?;
        }
        Ok(())
    }

    /// A page of dropped table `ti`'s tree that became a freelist trunk
    /// page: the cells still in its content ([`Writer::trunk_cells`]).
    pub(super) fn headless_of(&mut self, ti: usize, pgno: u32, raw: &[u8]) -> Result<()> {
        let all = |_: &Table| true;
        let found = self.trunk_cells((pgno, raw), &all, ti..ti + 1);
        for c in found.into_iter().flat_map(|(_, cells)| cells) {
            self.offer(ti, pgno, &c, Origin::Dropped)?;
        }
        Ok(())
    }

    /// A freelist page that does not read as a leaf (a trunk page, its
    /// first bytes rewritten with the list; a freed interior page, whose
    /// free space can hold a split root leaf's cells): the cells still in
    /// its content (in runs that read as freeblocks) that fit each of
    /// `tables` (positions in `self.tables`; for a shape-named one, of the
    /// classes it was seen with), most first.
    pub(super) fn trunk_cells(
        &mut self,
        (pgno, raw): (u32, &[u8]),
        usable_table: &dyn Fn(&Table) -> bool,
        tables: std::ops::Range<usize>,
    ) -> Vec<(usize, Vec<FreeCell>)> {
        let snap = &self.salvage.snapshot;
        let (usable, enc) = (snap.usable_size(), snap.header().encoding);
        let first = match BtreePage::parse(raw, pgno, usable) {
            Ok(p) if p.kind == PageKind::TableInterior => p.cell_pointers_end(),
            _ => {
                // Past the trunk's list of leaf pages.
                let listed = raw
                    .get(4..8)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
                8usize.saturating_add(listed.saturating_mul(4))
            }
        };
        let mut fitting: Vec<(usize, Vec<FreeCell>)> = Vec::new();
        for ti in tables {
            let Some(t) = self.tables.get(ti) else {
                continue;
            };
            if !usable_table(t) || t.name.to_ascii_lowercase().starts_with("sqlite_") {
                continue;
            }
            let mut found = headless_free_cells(raw, first, usable, t, enc);
            if let Some(shape) = self.shape_of(ti) {
                let mut rec = Record::new();
                found.retain(|c| {
                    rec.parse_partial(&c.payload).is_ok() && shape.admits(&rec, &c.payload)
                });
            }
            if !found.is_empty() {
                fitting.push((ti, found));
            }
        }
        fitting.sort_by_key(|(_, f)| std::cmp::Reverse(f.len()));
        fitting
    }

    /// The shape-named table `ti`'s shape (None for a known table).
    fn shape_of(&self, ti: usize) -> Option<&Shape> {
        self.shapes.values().find(|s| s.table == ti)
    }

    /// Whether the record just parsed (`self.rec`, of `payload`) has
    /// values of the classes the shape-named table `ti` was seen with.
    pub(super) fn shape_admits(&self, ti: usize, payload: &[u8]) -> bool {
        self.shape_of(ti)
            .is_some_and(|s| s.admits(&self.rec, payload))
    }

    /// The freelist pages that are not leaves ([`Writer::trunk_cells`]),
    /// once the freed leaves have made the shape-named tables: each goes to
    /// the known table whose records fill it (ten to one over any other),
    /// unless a shape-named table's fill it more; else to the shape-named
    /// table whose records fill it ten to one over any other table's.
    pub(super) fn freed_non_leaves(
        &mut self,
        buf: &mut [u8],
        usable_table: &dyn Fn(&Table) -> bool,
    ) -> Result<()> {
        for pgno in std::mem::take(&mut self.deferred) {
            if self.salvage.snapshot.read_page(pgno, buf).is_err() {
                continue;
            }
            let raw = buf.to_vec();
            let known = 0..self.known;
            let shapes = self.known..self.tables.len();
            let (k, s) = (
                self.trunk_cells((pgno, &raw), usable_table, known),
                self.trunk_cells((pgno, &raw), usable_table, shapes),
            );
            let best = |f: &[(usize, Vec<FreeCell>)]| f.first().map_or(0, |x| x.1.len());
            let take = match (dominant(&k), dominant(&s)) {
                (Some(t), _) if best(&s) <= best(&k) => Some((t, Origin::Freelist)),
                (_, Some(t)) if best(&k).saturating_mul(10) < best(&s) => Some((t, Origin::Shape)),
                _ => None,
            };
            let Some((ti, from)) = take else {
                continue;
            };
            let found = [k, s].into_iter().flatten().find(|x| x.0 == ti);
            for c in found.map(|x| x.1).unwrap_or_default() {
                self.offer(ti, pgno, &c, from)?;
            }
        }
        Ok(())
    }

    /// Whether every cell's record reads as an entry of one of the
    /// schema's indexes: a value per key column, then an integer rowid.
    pub(super) fn index_shaped(&mut self, cells: &[FreeCell]) -> bool {
        let rec = &mut self.rec;
        !cells.is_empty()
            && self.schema.indexes.iter().any(|ix| {
                let width = ix.columns.len() + 1;
                cells.iter().all(|c| {
                    rec.parse_partial(&c.payload).is_ok()
                        && rec.len() == width
                        && matches!(rec.value(&c.payload, width - 1), ValueRef::Integer(_))
                })
            })
    }
}

/// The first of `fitting` (most cells first) when it has ten times the
/// cells of the next: a stray few bytes that read as another table's
/// record do not take a page from the table whose records fill it.
fn dominant(fitting: &[(usize, Vec<FreeCell>)]) -> Option<usize> {
    let runner_up = fitting.get(1).map_or(0, |(_, f)| f.len());
    let (ti, found) = fitting.first()?;
    (runner_up.saturating_mul(10) < found.len()).then_some(*ti)
}
