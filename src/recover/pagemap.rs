//! Stage: the page map, who owns every page of the snapshot.
//!
//! Takes the tree walks (each marks the pages it reaches) and then the
//! index trees, the schema, the freelist, the pointer-map and lock-byte
//! pages; gives a [`PageMap`]: an [`Owner`] per page. What stays
//! [`Owner::Unclaimed`], or a table page read only in part, is what the
//! candidate stage reads again.

use super::options::ProgressFn;
use crate::error::Result;
use crate::schema::Schema;
use crate::snapshot::Snapshot;
use crate::tree::{Damage, PageVisitor, TreeCursor};
use sqlite_salvage_format::header::AutoVacuum;
use sqlite_salvage_format::kind::PageKind;
use sqlite_salvage_format::page::{
    BtreePage, FreelistTrunk, PtrmapKind, is_ptrmap_page, ptrmap_entry, ptrmap_page_for,
};

/// What a page is, as far as recovery knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// Nothing has claimed it (yet).
    Unclaimed,
    /// A page of table `t`'s tree (by index into the schema's tables).
    Table(usize),
    /// A page of table `t`'s tree that could not be read whole: unusable,
    /// or read in part; carved for what its pointers miss.
    TableDamaged(usize),
    /// A page of an index's tree.
    Index,
    /// An unusable page of an index's or the schema's tree.
    IndexDamaged,
    /// A page of `sqlite_schema`'s tree, or one its rows were found on.
    Schema,
    /// An orphaned page whose cells were read.
    Orphan,
    /// An overflow page of a value read.
    Overflow,
    /// A freelist trunk or leaf page.
    Free,
    /// A pointer-map page, or the lock-byte page.
    Ptrmap,
}

impl Owner {
    /// The owner in 4 bytes (a map of a 4 GB database at 4 KiB pages is
    /// then 4 MB, not 16): the unit variants below 16, a table's pages as
    /// 16 + 2t (+1 when damaged). A table number too large for that (more
    /// tables than a u32 can count in half) is left unclaimed, so its pages
    /// are read again as orphans: slower, never a row lost.
    fn pack(self) -> u32 {
        let table = |t: usize, d: u32| {
            u32::try_from(t)
                .ok()
                .and_then(|t| t.checked_mul(2))
                .and_then(|t| t.checked_add(16 + d))
                .unwrap_or(0)
        };
        match self {
            Owner::Unclaimed => 0,
            Owner::Index => 1,
            Owner::IndexDamaged => 2,
            Owner::Schema => 3,
            Owner::Orphan => 4,
            Owner::Overflow => 5,
            Owner::Free => 6,
            Owner::Ptrmap => 7,
            Owner::Table(t) => table(t, 0),
            Owner::TableDamaged(t) => table(t, 1),
        }
    }

    fn unpack(v: u32) -> Owner {
        match v {
            1 => Owner::Index,
            2 => Owner::IndexDamaged,
            3 => Owner::Schema,
            4 => Owner::Orphan,
            5 => Owner::Overflow,
            6 => Owner::Free,
            7 => Owner::Ptrmap,
            16.. if v % 2 == 0 => Owner::Table(((v - 16) / 2) as usize),
            16.. => Owner::TableDamaged(((v - 17) / 2) as usize),
            _ => Owner::Unclaimed,
        }
    }
}

/// The owner of every page, 1 to the snapshot's page count.
pub(crate) struct PageMap {
    /// Each page's [`Owner`], packed ([`Owner::pack`]).
    owners: Vec<u32>,
    /// Pages the walks have counted, for progress.
    done: u64,
    /// Whether the freelist was walked to its end without damage: then a
    /// freed page is on it, and a page on no tree and off the freelist is
    /// not a freed one.
    freelist_sound: bool,
}

impl PageMap {
    /// Every page unclaimed.
    pub fn new(page_count: u32) -> PageMap {
        PageMap {
            owners: vec![0; page_count as usize + 1],
            done: 0,
            freelist_sound: false,
        }
    }

    /// The owner of `pgno` (`None` past the end).
    pub fn get(&self, pgno: u32) -> Option<Owner> {
        self.owners.get(pgno as usize).map(|&o| Owner::unpack(o))
    }

    /// Sets the owner of `pgno`, if it is a page of the map.
    pub fn set(&mut self, pgno: u32, owner: Owner) {
        if let Some(o) = self.owners.get_mut(pgno as usize) {
            *o = owner.pack();
        }
    }

    /// Claims `pgno` for `owner` if nothing has; whether it did.
    pub fn claim(&mut self, pgno: u32, owner: Owner) -> bool {
        match self.owners.get_mut(pgno as usize) {
            Some(o) if *o == 0 => {
                *o = owner.pack();
                true
            }
            _ => false,
        }
    }

    /// The table whose tree reached `pgno`, whole or in part.
    pub fn table_of(&self, pgno: u32) -> Option<usize> {
        match self.get(pgno)? {
            Owner::Table(t) | Owner::TableDamaged(t) => Some(t),
            _ => None,
        }
    }

    /// A visitor that marks the pages a walk reaches as `tree`'s, and those
    /// it cannot use as `damaged`.
    pub fn marks<'m>(
        &'m mut self,
        tree: Owner,
        damaged: Owner,
        progress: Option<&'m ProgressFn>,
    ) -> Marks<'m> {
        Marks {
            map: self,
            tree,
            damaged,
            progress,
        }
    }

    /// After the tables' walks: the index trees and `sqlite_schema`'s
    /// (walked only to claim their pages), the pages the schema was found
    /// on, the freelist, the pointer-map pages and the lock-byte page.
    pub fn claim_the_rest(
        &mut self,
        snap: &Snapshot,
        schema: &Schema,
        schema_pages: &[u32],
        damage: &mut Vec<Damage>,
        progress: Option<&ProgressFn>,
    ) -> Result<()> {
        let page_count = snap.page_count();
        let index_roots = schema
            .of_kind("index")
            .map(|e| e.rootpage)
            .filter(|&r| r != 0 && r <= page_count)
            .map(|r| (r, Owner::Index));
        for (root, owner) in index_roots.chain(std::iter::once((1, Owner::Schema))) {
            if owner == Owner::Schema {
                self.claim(1, Owner::Schema);
            }
            let marks = self.marks(owner, Owner::IndexDamaged, progress);
            let mut cursor = TreeCursor::with_visitor(snap, root, marks).lenient(true);
            while cursor.next()?.is_some() {}
        }
        for &p in schema_pages {
            self.claim(p, Owner::Schema);
        }
        self.claim_freelist(snap, damage)?;
        let h = snap.header();
        if h.auto_vacuum() != AutoVacuum::None {
            for p in 2..=page_count {
                if is_ptrmap_page(p, snap.usable_size(), snap.page_size()) {
                    self.set(p, Owner::Ptrmap);
                }
            }
        }
        let lock = h.lock_byte_page();
        if lock <= page_count {
            self.set(lock, Owner::Ptrmap);
        }
        Ok(())
    }

    /// Claims the freelist's trunk and leaf pages; a trunk something else
    /// owns or seen twice ends the walk, as does one that does not parse.
    fn claim_freelist(&mut self, snap: &Snapshot, damage: &mut Vec<Damage>) -> Result<()> {
        let mut trunk = snap.header().raw.freelist_trunk;
        let mut buf = vec![0u8; snap.page_size() as usize];
        let mut n = 0u32;
        self.freelist_sound = false;
        while trunk != 0 && trunk <= snap.page_count() && n < snap.page_count() {
            n += 1;
            if !self.claim(trunk, Owner::Free) {
                damage.push(Damage {
                    page: trunk,
                    cell: None,
                    what: "freelist trunk reused or looping".into(),
                });
                return Ok(());
            }
            snap.read_page(trunk, &mut buf)?;
            match FreelistTrunk::parse(&buf, snap.usable_size()) {
                Ok(t) => {
                    for l in t.leaves {
                        self.claim(l, Owner::Free);
                    }
                    trunk = t.next;
                }
                Err(m) => {
                    damage.push(Damage {
                        page: trunk,
                        cell: None,
                        what: format!("freelist: {m}"),
                    });
                    return Ok(());
                }
            }
        }
        self.freelist_sound = trunk == 0;
        Ok(())
    }

    /// The tree a page belongs to by its pointer-map parents: followed up
    /// (at most 64 steps) to a page a table's, an index's or the schema's
    /// walk reached; that page's owner. Only a database in auto-vacuum mode
    /// has pointer maps: elsewhere the pages where they would be are
    /// b-tree pages, whose bytes say nothing of a page's parent.
    pub fn ptrmap_tree(&self, snap: &Snapshot, pgno: u32) -> Option<Owner> {
        if snap.header().auto_vacuum() == AutoVacuum::None {
            return None;
        }
        let (usable, ps) = (snap.usable_size(), snap.page_size());
        let mut p = pgno;
        let mut map = vec![0u8; ps as usize];
        for _ in 0..64 {
            let mp = ptrmap_page_for(p, usable, ps)?;
            if self.get(mp) != Some(Owner::Ptrmap) {
                return None;
            }
            snap.read_page(mp, &mut map).ok()?;
            let e = ptrmap_entry(map.get(..usable as usize)?, mp, p).ok()?;
            if e.kind != PtrmapKind::Btree {
                return None;
            }
            p = e.parent;
            if let Some(
                o @ (Owner::Table(_)
                | Owner::TableDamaged(_)
                | Owner::Index
                | Owner::IndexDamaged
                | Owner::Schema),
            ) = self.get(p)
            {
                return Some(o);
            }
        }
        None
    }

    /// Children of interior pages no walk reached: a leaf one of them
    /// points at belongs to a cut-off subtree, a leaf nothing points at may
    /// be a freed page.
    pub fn unreached_links(&self, snap: &Snapshot) -> UnreachedLinks {
        let mut links = UnreachedLinks {
            freelist_sound: self.freelist_sound,
            ..Default::default()
        };
        let mut buf = vec![0u8; snap.page_size() as usize];
        for pgno in 2..=snap.page_count() {
            if self.get(pgno) != Some(Owner::Unclaimed) || snap.read_page(pgno, &mut buf).is_err() {
                continue;
            }
            if let Ok(p) = BtreePage::parse(&buf, pgno, snap.usable_size()) {
                if let (false, Ok(children)) = (p.kind.is_leaf(), p.children()) {
                    links.any_interior = true;
                    links.children.extend(children);
                }
            }
        }
        links
    }
}

/// What the interior pages no walk reached point at.
#[derive(Default)]
pub(crate) struct UnreachedLinks {
    /// Their children.
    pub children: std::collections::HashSet<u32>,
    /// Whether there is any such interior page.
    pub any_interior: bool,
    /// Whether the freelist was walked whole (see `PageMap`).
    pub freelist_sound: bool,
}

impl UnreachedLinks {
    /// Whether a leaf at `pgno` is linked from somewhere: pointed at by an
    /// unreached interior page, or there is none that could.
    pub fn linked(&self, pgno: u32) -> bool {
        self.children.contains(&pgno) || !self.any_interior
    }
}

/// A [`PageVisitor`] that marks a walk's pages in the map.
pub(crate) struct Marks<'m> {
    map: &'m mut PageMap,
    tree: Owner,
    damaged: Owner,
    progress: Option<&'m ProgressFn>,
}

impl Marks<'_> {
    fn count(&mut self) {
        self.map.done += 1;
        if self.map.done % 1024 == 0 {
            let total = self.map.owners.len() as u64;
            let phase = match self.tree {
                Owner::Table(_) => "reading tables",
                _ => "reading indexes",
            };
            ProgressFn::tick(self.progress, phase, self.map.done, total);
        }
    }
}

impl PageVisitor for Marks<'_> {
    fn btree_page(&mut self, pgno: u32, _kind: PageKind, _depth: usize) {
        self.count();
        self.map.set(pgno, self.tree);
    }
    fn overflow_page(&mut self, pgno: u32) {
        self.count();
        self.map.set(pgno, Owner::Overflow);
    }
    fn unusable_page(&mut self, pgno: u32) {
        self.map.claim(pgno, self.damaged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_pack_into_four_bytes_and_back() {
        let all = [
            Owner::Unclaimed,
            Owner::Index,
            Owner::IndexDamaged,
            Owner::Schema,
            Owner::Orphan,
            Owner::Overflow,
            Owner::Free,
            Owner::Ptrmap,
            Owner::Table(0),
            Owner::TableDamaged(0),
            Owner::Table(12345),
            Owner::TableDamaged(12345),
            Owner::Table((u32::MAX / 2 - 8) as usize),
        ];
        for o in all {
            assert_eq!(Owner::unpack(o.pack()), o);
        }
        // Too large to pack: unclaimed, read again later.
        assert_eq!(
            Owner::unpack(Owner::Table(usize::MAX).pack()),
            Owner::Unclaimed
        );
        let mut map = PageMap::new(3);
        assert!(map.claim(2, Owner::TableDamaged(7)));
        assert!(!map.claim(2, Owner::Orphan));
        assert_eq!(map.get(2), Some(Owner::TableDamaged(7)));
        assert_eq!(map.table_of(2), Some(7));
        assert_eq!(map.get(4), None);
    }
}
