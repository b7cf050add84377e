//! A structural check of a snapshot that keeps going past damage and names
//! the page and the kind of every problem it finds.
//!
//! It walks every b-tree in the schema (and `sqlite_schema` itself), every
//! overflow chain, the freelist and the pointer map, and accounts for every
//! page: a page used twice or never used is damage, as in SQLite's
//! `PRAGMA integrity_check`.

use std::collections::HashMap;

use crate::error::Result;
use crate::schema::Schema;
use crate::snapshot::Snapshot;
use crate::tree::{Damage, PageVisitor, TreeCursor};
use sqlite_salvage_format::header::AutoVacuum;
use sqlite_salvage_format::page::{
    FreelistTrunk, PageKind, PtrmapKind, is_ptrmap_page, ptrmap_entry, ptrmap_page_for,
};
use sqlite_salvage_format::record::Record;

/// What a page is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Not reached by anything.
    Unused,
    /// Table b-tree interior page.
    TableInterior,
    /// Table b-tree leaf page.
    TableLeaf,
    /// Index (or WITHOUT ROWID) b-tree interior page.
    IndexInterior,
    /// Index (or WITHOUT ROWID) b-tree leaf page.
    IndexLeaf,
    /// Overflow page.
    Overflow,
    /// Freelist trunk page.
    FreelistTrunk,
    /// Freelist leaf page.
    FreelistLeaf,
    /// Pointer-map page (auto-vacuum).
    PointerMap,
    /// The lock-byte page of files over 1 GiB.
    LockByte,
    /// Referenced by a b-tree but not usable as one of its pages.
    Damaged,
}

impl Role {
    fn from_kind(k: PageKind) -> Role {
        match k {
            PageKind::TableInterior => Role::TableInterior,
            PageKind::TableLeaf => Role::TableLeaf,
            PageKind::IndexInterior => Role::IndexInterior,
            PageKind::IndexLeaf => Role::IndexLeaf,
        }
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    /// Pages in the database.
    pub page_count: u32,
    /// Pages by role.
    pub pages: HashMap<Role, u64>,
    /// Rows or entries per b-tree, by schema name.
    pub entries: Vec<(String, u64)>,
    /// Every problem found, in the order found.
    pub damage: Vec<Damage>,
    /// Whether the damage list was cut short.
    pub truncated: bool,
}

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.damage.is_empty()
    }
}

/// Most problems listed (SQLite's integrity_check stops at 100).
pub const MAX_DAMAGE: usize = 10_000;

struct PageMap {
    roles: Vec<Role>,
    damage: Vec<Damage>,
    root_of: HashMap<u32, u32>,
}

impl PageMap {
    fn mark(&mut self, pgno: u32, role: Role) -> bool {
        let Some(slot) = self.roles.get_mut(pgno as usize) else {
            return false;
        };
        if *slot != Role::Unused {
            let prev = *slot;
            self.damage.push(Damage {
                page: pgno,
                cell: None,
                what: format!("page used twice: as {prev:?} and as {role:?}"),
            });
            return false;
        }
        *slot = role;
        true
    }
}

struct Marker<'m> {
    map: &'m mut PageMap,
}

impl PageVisitor for Marker<'_> {
    fn btree_page(&mut self, pgno: u32, kind: PageKind, _depth: usize) {
        self.map.mark(pgno, Role::from_kind(kind));
    }
    fn overflow_page(&mut self, pgno: u32) {
        self.map.mark(pgno, Role::Overflow);
    }
    fn unusable_page(&mut self, pgno: u32) {
        // Already reported by the walk; only keep it from also being
        // reported as never used.
        if let Some(r) = self.map.roles.get_mut(pgno as usize) {
            if *r == Role::Unused {
                *r = Role::Damaged;
            }
        }
    }
    fn misplaced_page(&mut self, pgno: u32) {
        self.unusable_page(pgno);
    }
}

/// Checks `snap`. Only I/O errors end the check early; damage is reported.
pub fn check(snap: &Snapshot) -> Result<CheckReport> {
    let page_count = snap.page_count();
    let mut map = PageMap {
        // One byte per page: the page count is capped by what the files
        // can hold before anything is allocated.
        roles: Vec::new(),
        damage: Vec::new(),
        root_of: HashMap::new(),
    };
    let h = snap.header();
    let lock_page = h.lock_byte_page();
    let capacity = page_count as usize + 1;
    map.roles = vec![Role::Unused; capacity];
    if let Some(r) = map.roles.get_mut(0) {
        *r = Role::LockByte; // page 0 does not exist; never reported
    }
    if lock_page <= page_count {
        map.mark(lock_page, Role::LockByte);
    }
    let usable = snap.usable_size();
    let av = h.auto_vacuum() != AutoVacuum::None;
    if av {
        let mut p = 2u32;
        while p <= page_count {
            if is_ptrmap_page(p, usable, snap.page_size()) {
                map.mark(p, Role::PointerMap);
            }
            p = match p.checked_add(usable / 5 + 1) {
                Some(n) => n,
                None => break,
            };
            if p == lock_page {
                p += 1;
            }
        }
    }

    let mut entries = Vec::new();
    // sqlite_schema, then every b-tree it names.
    let schema = match Schema::read(snap) {
        Ok(s) => Some(s),
        Err(e) => {
            map.damage.push(Damage {
                page: 1,
                cell: None,
                what: format!("schema unreadable: {e}"),
            });
            None
        }
    };
    let mut roots: Vec<(String, u32, bool)> = vec![("sqlite_schema".into(), 1, true)];
    if let Some(s) = &schema {
        for e in &s.entries {
            if e.rootpage > 0 && (e.kind == "table" || e.kind == "index") {
                let rowid_table =
                    e.kind == "table" && !s.table(&e.name).is_some_and(|t| t.without_rowid);
                roots.push((e.name.clone(), e.rootpage, rowid_table));
            }
        }
    }
    let mut counts: HashMap<String, u64> = HashMap::new();
    for (name, root, is_table) in &roots {
        if *root > page_count {
            map.damage.push(Damage {
                page: *root,
                cell: None,
                what: format!("root page of {name:?} is past the end of the database"),
            });
            continue;
        }
        map.root_of.insert(*root, *root);
        let n = walk_tree(snap, &mut map, name, *root, *is_table)?;
        counts.insert(name.clone(), n);
        entries.push((name.clone(), n));
    }
    if let Some(s) = &schema {
        check_index_counts(s, &counts, &mut map.damage);
    }
    check_freelist(snap, &mut map)?;
    if av {
        check_ptrmap(snap, &mut map)?;
    }
    if snap.claimed_page_count() > page_count {
        map.damage.push(Damage {
            page: 1,
            cell: None,
            what: format!(
                "database size {} exceeds the {page_count} pages present",
                snap.claimed_page_count()
            ),
        });
    }
    // Pages nothing reached.
    let mut p = 1u32;
    while p <= page_count {
        if map.roles[p as usize] == Role::Unused {
            let start = p;
            while p <= page_count && map.roles[p as usize] == Role::Unused {
                p += 1;
            }
            let what = if p - start == 1 {
                "page never used".to_string()
            } else {
                format!("pages {start}-{} never used", p - 1)
            };
            map.damage.push(Damage {
                page: start,
                cell: None,
                what,
            });
        } else {
            p += 1;
        }
    }
    let mut pages: HashMap<Role, u64> = HashMap::new();
    for r in map.roles.iter().skip(1) {
        *pages.entry(*r).or_default() += 1;
    }
    let truncated = map.damage.len() > MAX_DAMAGE;
    map.damage.truncate(MAX_DAMAGE);
    Ok(CheckReport {
        page_count,
        pages,
        entries,
        damage: map.damage,
        truncated,
    })
}

fn walk_tree(
    snap: &Snapshot,
    map: &mut PageMap,
    name: &str,
    root: u32,
    is_table: bool,
) -> Result<u64> {
    let mut cursor = TreeCursor::with_visitor(snap, root, Marker { map: &mut *map })
        .lenient(true)
        .verify_pages(true);
    let mut rec = Record::new();
    let mut n = 0u64;
    let mut last_rowid: Option<i64> = None;
    let mut extra = Vec::new();
    while let Some(e) = cursor.next()? {
        n += 1;
        if let Err(m) = rec.parse(e.payload) {
            extra.push(Damage {
                page: e.at.page,
                cell: Some(e.at.cell),
                what: format!("record of {name:?}: {m}"),
            });
        }
        if let Some(r) = e.rowid {
            if last_rowid.is_some_and(|l| r <= l) {
                extra.push(Damage {
                    page: e.at.page,
                    cell: Some(e.at.cell),
                    what: format!("rowid {r} out of order in {name:?}"),
                });
            }
            last_rowid = Some(r);
        }
    }
    if cursor.is_table().is_some_and(|t| t != is_table) {
        extra.push(Damage {
            page: root,
            cell: None,
            what: format!(
                "root page of {name:?} is an {} page",
                if is_table { "index" } else { "table" }
            ),
        });
    }
    let damage: Vec<Damage> = cursor
        .damage()
        .iter()
        .map(|d| Damage {
            page: d.page,
            cell: d.cell,
            what: format!("{}: {}", name, d.what),
        })
        .collect();
    drop(cursor);
    map.damage.extend(damage);
    map.damage.extend(extra);
    Ok(n)
}

fn check_index_counts(schema: &Schema, counts: &HashMap<String, u64>, damage: &mut Vec<Damage>) {
    for e in schema.of_kind("index") {
        if e.rootpage == 0 {
            continue;
        }
        let partial = e
            .sql
            .as_deref()
            .is_some_and(|s| s.to_ascii_uppercase().contains(" WHERE "));
        if partial {
            continue;
        }
        if let (Some(i), Some(t)) = (counts.get(&e.name), counts.get(&e.tbl_name)) {
            if i != t {
                damage.push(Damage {
                    page: e.rootpage,
                    cell: None,
                    what: format!(
                        "index {:?} has {i} entries, table {:?} has {t} rows",
                        e.name, e.tbl_name
                    ),
                });
            }
        }
    }
}

fn check_freelist(snap: &Snapshot, map: &mut PageMap) -> Result<()> {
    let h = snap.header();
    let expected = h.raw.freelist_count;
    let page_count = snap.page_count();
    let mut trunk = h.raw.freelist_trunk;
    let mut seen: u64 = 0;
    let mut buf = vec![0u8; snap.page_size() as usize];
    let mut trunks = 0u32;
    while trunk != 0 {
        if trunk > page_count {
            map.damage.push(Damage {
                page: trunk,
                cell: None,
                what: "freelist trunk page out of range".into(),
            });
            break;
        }
        trunks += 1;
        if trunks > page_count || !map.mark(trunk, Role::FreelistTrunk) {
            map.damage.push(Damage {
                page: trunk,
                cell: None,
                what: "freelist loops or reuses a page".into(),
            });
            break;
        }
        seen += 1;
        snap.read_page(trunk, &mut buf)?;
        match FreelistTrunk::parse(&buf, snap.usable_size()) {
            Ok(t) => {
                for leaf in t.leaves {
                    seen += 1;
                    if leaf == 0 || leaf > page_count {
                        map.damage.push(Damage {
                            page: trunk,
                            cell: None,
                            what: format!("freelist leaf page {leaf} out of range"),
                        });
                    } else {
                        map.mark(leaf, Role::FreelistLeaf);
                    }
                }
                trunk = t.next;
            }
            Err(m) => {
                map.damage.push(Damage {
                    page: trunk,
                    cell: None,
                    what: m.0.to_string(),
                });
                break;
            }
        }
    }
    if seen != u64::from(expected) {
        map.damage.push(Damage {
            page: 1,
            cell: None,
            what: format!("freelist has {seen} pages, the header says {expected}"),
        });
    }
    Ok(())
}

fn check_ptrmap(snap: &Snapshot, map: &mut PageMap) -> Result<()> {
    let usable = snap.usable_size();
    let ps = snap.page_size();
    let mut buf = vec![0u8; ps as usize];
    let mut loaded = 0u32;
    for pgno in 2..=snap.page_count() {
        let role = map.roles[pgno as usize];
        let expect = match role {
            Role::PointerMap | Role::LockByte | Role::Unused | Role::Damaged => continue,
            Role::FreelistTrunk | Role::FreelistLeaf => &[PtrmapKind::FreePage][..],
            Role::Overflow => &[PtrmapKind::Overflow1, PtrmapKind::Overflow2][..],
            _ if map.root_of.contains_key(&pgno) => &[PtrmapKind::RootPage][..],
            _ => &[PtrmapKind::Btree][..],
        };
        let Some(mp) = ptrmap_page_for(pgno, usable, ps) else {
            continue;
        };
        if mp != loaded {
            snap.read_page(mp, &mut buf)?;
            loaded = mp;
        }
        match ptrmap_entry(&buf[..usable as usize], mp, pgno) {
            Ok(e) if expect.contains(&e.kind) => {}
            Ok(e) => map.damage.push(Damage {
                page: mp,
                cell: None,
                what: format!(
                    "pointer-map entry for page {pgno} says {:?}, page is {role:?}",
                    e.kind
                ),
            }),
            Err(m) => map.damage.push(Damage {
                page: mp,
                cell: None,
                what: format!("pointer-map entry for page {pgno}: {m}"),
            }),
        }
    }
    Ok(())
}
