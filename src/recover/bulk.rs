//! Tables' b-trees written page by page into the output file.
//!
//! The rows a table's own tree yields come in key order, complete, and
//! already encoded as records in the output's text encoding, so they need
//! none of SQLite's per-row work: they are packed into leaf pages as they
//! arrive, with interior pages built bottom-up above them, the way a sorted
//! bulk load fills a b-tree. SQLite creates the file and the schema first
//! (each table gets its empty root page) and is closed while the pages are
//! appended; the top of each tree is written over its root page, and the
//! header's page count is set last. The indexes not copied or built from
//! the rows (`index_copy`, `index_build`) SQLite rebuilds from the table
//! pages (`REINDEX` by name); the key order of a WITHOUT ROWID table is
//! checked as its rows are written, or else by SQLite's `integrity_check`
//! of the table. Each b-tree page is read back with the input's page reader
//! as it is written ([`BulkFile::unsound`]).
//!
//! Rowid tables ([`TableTree`]) refuse a row whose rowid does not follow the
//! previous one; WITHOUT ROWID tables ([`IndexTree`], an index b-tree whose
//! entries also serve as separators) take entries as they come and leave the
//! order to SQLite's check. A row refused here, or whose record is not
//! complete, goes through SQL instead.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use sqlite_salvage_format::cell::local_size;
use sqlite_salvage_format::header::lock_byte_page;
use sqlite_salvage_format::page::{BtreePage, PageKind};
use sqlite_salvage_format::varint::write_varint;

/// Table leaf and interior page-type bytes.
const TABLE_LEAF: u8 = 0x0d;
const TABLE_INTERIOR: u8 = 0x05;
/// SQLite never stores a cell in fewer than four bytes.
const MIN_CELL: usize = 4;

/// Appended pages go to the file from a thread of their own, in blocks, so
/// that reading the input and writing the output overlap. A block written
/// comes back to be filled again: memory already mapped, not a fresh
/// allocation whose every page faults in (at 4 GB, most of the cost of
/// filling the blocks).
struct Appender {
    buf: Vec<u8>,
    /// File offset of `buf`'s first byte.
    offset: u64,
    tx: Option<SyncSender<(u64, Vec<u8>)>>,
    /// Blocks written, emptied, to fill again.
    spare: Receiver<Vec<u8>>,
    worker: Option<JoinHandle<std::io::Result<()>>>,
}

impl Appender {
    const BLOCK: usize = 1 << 20;
    /// Blocks queued for the writer at most.
    const IN_FLIGHT: usize = 4;

    fn new(file: File, offset: u64) -> Appender {
        let (tx, rx) = sync_channel::<(u64, Vec<u8>)>(Self::IN_FLIGHT);
        // Never more blocks exist than are in flight and being filled, so
        // every one written finds room to come back.
        let (back, spare) = sync_channel::<Vec<u8>>(Self::IN_FLIGHT + 2);
        let worker = std::thread::spawn(move || {
            for (at, mut block) in rx {
                file.write_all_at(&block, at)?;
                block.clear();
                let _ = back.try_send(block);
            }
            Ok(())
        });
        Appender {
            buf: Vec::with_capacity(Self::BLOCK),
            offset,
            tx: Some(tx),
            spare,
            worker: Some(worker),
        }
    }

    fn push(&mut self, page: &[u8]) -> std::io::Result<()> {
        self.buf.extend_from_slice(page);
        if self.buf.len() >= Self::BLOCK {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> std::io::Result<()> {
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(Self::BLOCK));
        let block = std::mem::replace(&mut self.buf, next);
        let len = block.len() as u64;
        let sent = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send((self.offset, block)).is_ok());
        self.offset += len;
        if sent { Ok(()) } else { self.finish() }
    }

    /// Writes what is left and waits for the writes; the first error.
    fn finish(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let block = std::mem::take(&mut self.buf);
            if let Some(tx) = &self.tx {
                let _ = tx.send((self.offset, block));
            }
        }
        self.tx = None;
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other("output writer thread failed")),
            None => Err(std::io::Error::other("output writer stopped")),
        }
    }
}

impl Drop for Appender {
    /// An appender dropped before [`Appender::finish`] (a load given up)
    /// waits for the writes in flight: none lands after it is gone.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// The output file while pages are appended to it.
pub(super) struct BulkFile {
    file: File,
    out: Appender,
    path: std::path::PathBuf,
    page_size: usize,
    usable: u32,
    /// The next page number to hand out; pages are written in this order.
    next: u32,
    /// Pages from here on are new (appended); those before are SQLite's.
    first_new: u32,
    /// A zeroed page-sized buffer reused for every page.
    page: Vec<u8>,
    /// The first b-tree page written that did not read back as sound.
    unsound: Option<u32>,
}

fn out_err(path: &Path, e: std::io::Error) -> Error {
    Error::output(path, e)
}

impl BulkFile {
    /// Opens a database file SQLite has just written and closed.
    pub fn open(path: &Path) -> Result<BulkFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| out_err(path, e))?;
        let mut hdr = [0u8; 100];
        file.read_exact_at(&mut hdr, 0)
            .map_err(|e| out_err(path, e))?;
        let page_size = match u16::from_be_bytes([hdr[16], hdr[17]]) {
            1 => 65536usize,
            n => usize::from(n),
        };
        let reserved = u32::from(hdr[20]);
        let count = u32::from_be_bytes([hdr[28], hdr[29], hdr[30], hdr[31]]);
        let len = file.metadata().map_err(|e| out_err(path, e))?.len();
        if page_size < 512
            || !page_size.is_power_of_two()
            || len != u64::from(count) * page_size as u64
            || hdr[24..28] != hdr[92..96]
        {
            return Err(Error::corrupt(
                0,
                "the new output database is not in the state SQLite left it in",
            ));
        }
        let next = count
            .checked_add(1)
            .ok_or_else(|| Error::corrupt(0, "output database has 2^32 pages"))?;
        let w = file.try_clone().map_err(|e| out_err(path, e))?;
        Ok(BulkFile {
            file,
            out: Appender::new(w, len),
            path: path.to_path_buf(),
            page_size,
            usable: page_size as u32 - reserved,
            next,
            first_new: next,
            page: vec![0; page_size],
            unsound: None,
        })
    }

    /// Hands out the next page number; the page must be appended next.
    /// The lock-byte page (the one holding file offset 2^30), which SQLite
    /// never uses, is passed over: it is appended zeroed.
    fn alloc(&mut self) -> Result<u32> {
        if self.next == lock_byte_page(self.page_size as u32) {
            let p = self.step()?;
            self.write(p, &vec![0; self.page_size])?;
        }
        self.step()
    }

    /// The page [`BulkFile::alloc`] will hand out next.
    fn peek(&self) -> u32 {
        let lock = lock_byte_page(self.page_size as u32);
        if self.next == lock {
            lock.saturating_add(1)
        } else {
            self.next
        }
    }

    fn step(&mut self) -> Result<u32> {
        let p = self.next;
        self.next = p
            .checked_add(1)
            .filter(|&n| n < u32::MAX)
            .ok_or_else(|| Error::corrupt(0, "output database would exceed 2^32 pages"))?;
        Ok(p)
    }

    /// Writes `page` (page-size bytes) as page `pgno`: appended when it is
    /// a new page (the one just handed out), else in place (a root page).
    fn write(&mut self, pgno: u32, page: &[u8]) -> Result<()> {
        if pgno >= self.first_new {
            self.out.push(page)
        } else {
            self.file
                .write_all_at(page, u64::from(pgno - 1) * self.page_size as u64)
        }
        .map_err(|e| out_err(&self.path, e))
    }

    /// Writes b-tree page `pgno` once it reads back as sound with the
    /// input's own page reader ([`BtreePage::is_consistent`]: every cell
    /// parses inside the content area, none overlap, the space adds up,
    /// rowids increase). One that does not is still written, and the first
    /// such page is kept ([`BulkFile::unsound`]): the load is given up.
    fn write_tree_page(&mut self, pgno: u32, page: &[u8]) -> Result<()> {
        let sound = BtreePage::parse(page, pgno, self.usable).is_ok_and(|p| p.is_consistent());
        if !sound && self.unsound.is_none() {
            self.unsound = Some(pgno);
        }
        self.write(pgno, page)
    }

    /// The first b-tree page written that did not read back as sound.
    pub fn unsound(&self) -> Option<u32> {
        self.unsound
    }

    /// Flushes the appended pages and records the new page count; returns
    /// the file (to sync).
    pub fn finish(mut self) -> Result<File> {
        self.out.finish().map_err(|e| out_err(&self.path, e))?;
        let count = self.next - 1;
        self.file
            .write_all_at(&count.to_be_bytes(), 28)
            .map_err(|e| out_err(&self.path, e))?;
        Ok(self.file)
    }

    /// Writes a payload's overflow chain; returns its first page.
    fn overflow(&mut self, rest: &[u8]) -> Result<u32> {
        let per = self.usable as usize - 4;
        let first = self.peek();
        let mut chunks = rest.chunks(per).peekable();
        while let Some(chunk) = chunks.next() {
            let pgno = self.alloc()?;
            let next = if chunks.peek().is_some() {
                self.peek()
            } else {
                0
            };
            let mut page = std::mem::take(&mut self.page);
            page.fill(0);
            page[..4].copy_from_slice(&next.to_be_bytes());
            page[4..4 + chunk.len()].copy_from_slice(chunk);
            let r = self.write(pgno, &page);
            self.page = page;
            r?;
        }
        Ok(first)
    }
}

/// One rowid table's b-tree under construction.
pub(super) struct TableTree {
    root: u32,
    /// The leaf being filled: cells from the end, pointers after the header.
    leaf: Vec<u8>,
    cells: usize,
    content: usize,
    /// Interior levels above the leaves, lowest first.
    levels: Vec<Level>,
    last: Option<i64>,
    rows: u64,
}

/// One interior level: the node being filled and the full one before it
/// (kept back so the last node of the level never ends with a lone child).
#[derive(Default)]
struct Level {
    prev: Vec<(u32, i64)>,
    cur: Vec<(u32, i64)>,
    /// Bytes the cells of `cur` take (every child but the last has a cell).
    bytes: usize,
}

fn varint_len(v: u64) -> usize {
    write_varint(v, &mut [0; 9])
}

/// Size of the interior cell pointing at a child whose largest key is `key`.
fn interior_cell_len(key: i64) -> usize {
    4 + varint_len(key as u64)
}

impl TableTree {
    /// A tree whose top page goes to `root` (a page SQLite allocated).
    pub fn new(f: &BulkFile, root: u32) -> TableTree {
        TableTree {
            root,
            leaf: vec![0; f.page_size],
            cells: 0,
            content: f.usable as usize,
            levels: Vec::new(),
            last: None,
            rows: 0,
        }
    }

    /// Adds a row; false (nothing written) when its rowid does not follow
    /// the previous row's.
    pub fn push(&mut self, f: &mut BulkFile, rowid: i64, payload: &[u8]) -> Result<bool> {
        if self.last.is_some_and(|l| rowid <= l) {
            return Ok(false);
        }
        let total = payload.len() as u64;
        let local = local_size(total, f.usable, PageKind::TableLeaf) as usize;
        let (body, tail) = payload.split_at(local.min(payload.len()));
        let (mut size, mut key) = ([0u8; 9], [0u8; 9]);
        let size_len = write_varint(total, &mut size);
        let key_len = write_varint(rowid as u64, &mut key);
        let (size, key) = (&size[..size_len], &key[..key_len]);
        let spills = !tail.is_empty();
        let used = size.len() + key.len() + body.len() + if spills { 4 } else { 0 };
        let len = used.max(MIN_CELL);
        if 8 + 2 * (self.cells + 1) + (f.usable as usize - self.content) + len > f.usable as usize {
            self.flush_leaf(f)?;
        }
        let first = if spills { f.overflow(tail)? } else { 0 };
        // The cell goes straight into the leaf: size, rowid, the local
        // part of the payload, the first overflow page, zeros up to the
        // smallest cell SQLite stores.
        self.content -= len;
        let mut at = self.content;
        for part in [size, key, body] {
            self.leaf[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        if spills {
            self.leaf[at..at + 4].copy_from_slice(&first.to_be_bytes());
        }
        self.leaf[self.content + used..self.content + len].fill(0);
        let ptr = 8 + 2 * self.cells;
        self.leaf[ptr..ptr + 2].copy_from_slice(&(self.content as u16).to_be_bytes());
        self.cells += 1;
        self.last = Some(rowid);
        self.rows += 1;
        Ok(true)
    }

    /// Writes the leaf's header and zeros the space between its cell
    /// pointers and its cells (bytes of the leaf before it).
    fn leaf_header(&mut self) {
        let gap = 8 + 2 * self.cells;
        self.leaf[gap..self.content].fill(0);
        self.leaf[0] = TABLE_LEAF;
        self.leaf[1..3].fill(0);
        self.leaf[3..5].copy_from_slice(&(self.cells as u16).to_be_bytes());
        // 65536 is stored as 0.
        self.leaf[5..7].copy_from_slice(&(self.content as u16).to_be_bytes());
        self.leaf[7] = 0;
    }

    /// Writes the full leaf to a new page and hands it to its parent level.
    fn flush_leaf(&mut self, f: &mut BulkFile) -> Result<()> {
        self.leaf_header();
        let pgno = f.alloc()?;
        f.write_tree_page(pgno, &self.leaf)?;
        let key = self.last.unwrap_or_default();
        self.cells = 0;
        self.content = f.usable as usize;
        self.add_child(f, 0, pgno, key)
    }

    /// Adds a child page (largest key `key`) to interior level `level`.
    fn add_child(&mut self, f: &mut BulkFile, level: usize, pgno: u32, key: i64) -> Result<()> {
        if self.levels.len() <= level {
            self.levels.push(Level::default());
        }
        let usable = f.usable as usize;
        let lv = &mut self.levels[level];
        // The current last child gets a cell once another follows it.
        let grow = lv.cur.last().map_or(0, |&(_, k)| interior_cell_len(k) + 2);
        if !lv.cur.is_empty() && 12 + lv.bytes + grow > usable {
            let full = std::mem::take(&mut lv.cur);
            let older = std::mem::replace(&mut lv.prev, full);
            lv.bytes = 0;
            lv.cur.push((pgno, key));
            if !older.is_empty() {
                self.write_interior(f, level, &older, None)?;
            }
            return Ok(());
        }
        lv.bytes += grow;
        lv.cur.push((pgno, key));
        Ok(())
    }

    /// Writes an interior node (to `at`, else a new page) and hands it to
    /// the level above.
    fn write_interior(
        &mut self,
        f: &mut BulkFile,
        level: usize,
        children: &[(u32, i64)],
        at: Option<u32>,
    ) -> Result<()> {
        let Some((&(right, key), cells)) = children.split_last() else {
            return Ok(());
        };
        let mut page = std::mem::take(&mut f.page);
        page.fill(0);
        let mut content = f.usable as usize;
        let mut v = [0u8; 9];
        for (i, &(child, k)) in cells.iter().enumerate() {
            let n = write_varint(k as u64, &mut v);
            content -= 4 + n;
            page[content..content + 4].copy_from_slice(&child.to_be_bytes());
            page[content + 4..content + 4 + n].copy_from_slice(&v[..n]);
            let ptr = 12 + 2 * i;
            page[ptr..ptr + 2].copy_from_slice(&(content as u16).to_be_bytes());
        }
        page[0] = TABLE_INTERIOR;
        page[3..5].copy_from_slice(&(cells.len() as u16).to_be_bytes());
        page[5..7].copy_from_slice(&(content as u16).to_be_bytes());
        page[8..12].copy_from_slice(&right.to_be_bytes());
        let pgno = match at {
            Some(p) => p,
            None => f.alloc()?,
        };
        let written = f.write_tree_page(pgno, &page);
        f.page = page;
        written?;
        if at.is_none() {
            self.add_child(f, level + 1, pgno, key)?;
        }
        Ok(())
    }

    /// Writes what is still pending, the top node over the root page.
    pub fn finish(mut self, f: &mut BulkFile) -> Result<()> {
        if self.rows == 0 {
            // SQLite's empty root leaf stays as it is.
            return Ok(());
        }
        if self.levels.is_empty() {
            self.leaf_header();
            return f.write_tree_page(self.root, &self.leaf);
        }
        self.flush_leaf(f)?;
        let mut level = 0;
        while level < self.levels.len() {
            let mut lv = std::mem::take(&mut self.levels[level]);
            if lv.cur.len() == 1 && lv.prev.len() > 2 {
                // Never a node with a lone child: take one from the node before.
                if let Some(c) = lv.prev.pop() {
                    lv.cur.insert(0, c);
                }
            }
            if !lv.prev.is_empty() {
                self.write_interior(f, level, &lv.prev, None)?;
            }
            let top = level + 1 == self.levels.len();
            self.write_interior(f, level, &lv.cur, top.then_some(self.root))?;
            level += 1;
        }
        Ok(())
    }
}

/// Index-page types.
const INDEX_LEAF: u8 = 0x0a;
const INDEX_INTERIOR: u8 = 0x02;

/// Writes one index page (leaf when `right` is None) with `cells` (each a
/// cell's bytes; interior cells start with their left child).
fn write_index_page(
    f: &mut BulkFile,
    pgno: u32,
    cells: &[Vec<u8>],
    right: Option<u32>,
) -> Result<()> {
    let mut page = std::mem::take(&mut f.page);
    page.fill(0);
    let header = if right.is_some() { 12 } else { 8 };
    let mut content = f.usable as usize;
    for (i, c) in cells.iter().enumerate() {
        let len = c.len().max(MIN_CELL);
        content -= len;
        page[content..content + c.len()].copy_from_slice(c);
        let ptr = header + 2 * i;
        page[ptr..ptr + 2].copy_from_slice(&(content as u16).to_be_bytes());
    }
    page[0] = if right.is_some() {
        INDEX_INTERIOR
    } else {
        INDEX_LEAF
    };
    page[3..5].copy_from_slice(&(cells.len() as u16).to_be_bytes());
    page[5..7].copy_from_slice(&(content as u16).to_be_bytes());
    if let Some(r) = right {
        page[8..12].copy_from_slice(&r.to_be_bytes());
    }
    let written = f.write_tree_page(pgno, &page);
    f.page = page;
    written
}

/// One level of an index b-tree under construction: the node being filled,
/// and a full node kept back with the entry that follows it (in an index
/// b-tree that entry moves up as the separator, and must have something to
/// its right).
#[derive(Default)]
struct IndexLevel {
    cells: Vec<Vec<u8>>,
    bytes: usize,
    /// A full node (its cells, and its right child on interior levels).
    closed: Option<(Vec<Vec<u8>>, Option<u32>)>,
    /// The entry after `closed`.
    pending: Option<Vec<u8>>,
}

/// A WITHOUT ROWID table's b-tree (an index b-tree) under construction.
/// Entries must arrive in key order; this is not checked here (SQLite's
/// `integrity_check` of the table is, after the load).
pub(super) struct IndexTree {
    root: u32,
    /// Level 0 holds leaf cells; level k > 0 interior cells.
    levels: Vec<IndexLevel>,
    rows: u64,
}

impl IndexTree {
    /// A tree whose top page goes to `root` (a page SQLite allocated).
    pub fn new(root: u32) -> IndexTree {
        IndexTree {
            root,
            levels: vec![IndexLevel::default()],
            rows: 0,
        }
    }

    /// Adds an entry (a record).
    pub fn push(&mut self, f: &mut BulkFile, payload: &[u8]) -> Result<()> {
        let total = payload.len() as u64;
        let local = local_size(total, f.usable, PageKind::IndexLeaf) as usize;
        let mut v = [0u8; 9];
        let n = write_varint(total, &mut v);
        let mut cell = Vec::with_capacity(n + local + 4);
        cell.extend_from_slice(&v[..n]);
        cell.extend_from_slice(&payload[..local]);
        if local < payload.len() {
            // The same split holds on interior pages, should it move up.
            let first = f.overflow(&payload[local..])?;
            cell.extend_from_slice(&first.to_be_bytes());
        }
        self.rows += 1;
        self.add(f, 0, cell)
    }

    /// Adds a cell to `level` (interior cells carry their left child).
    fn add(&mut self, f: &mut BulkFile, level: usize, cell: Vec<u8>) -> Result<()> {
        if self.levels.len() <= level {
            self.levels.push(IndexLevel::default());
        }
        // The kept-back node has its right neighbour now: out it goes, and
        // the entry between them goes up.
        if let Some((cells, right)) = self.levels[level].closed.take() {
            let sep = self.levels[level].pending.take().unwrap_or_default();
            let pgno = f.alloc()?;
            write_index_page(f, pgno, &cells, right)?;
            self.add(f, level + 1, with_child(pgno, &sep))?;
        }
        let header = if level == 0 { 8 } else { 12 };
        let usable = f.usable as usize;
        let lv = &mut self.levels[level];
        let need = cell.len().max(MIN_CELL) + 2;
        if header + lv.bytes + need <= usable {
            lv.bytes += need;
            lv.cells.push(cell);
            return Ok(());
        }
        // Full: this entry separates the node from the next one.
        let cells = std::mem::take(&mut lv.cells);
        lv.bytes = 0;
        if level == 0 {
            lv.closed = Some((cells, None));
            lv.pending = Some(cell);
        } else {
            // An interior cell's child becomes the full node's right child.
            let (child, sep) = split_child(&cell);
            lv.closed = Some((cells, Some(child)));
            lv.pending = Some(sep.to_vec());
        }
        Ok(())
    }

    /// Writes what is pending, the top node over the root page.
    pub fn finish(mut self, f: &mut BulkFile) -> Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        // The right child the level below leaves over for this level.
        let mut right: Option<u32> = None;
        let mut level = 0;
        while level < self.levels.len() {
            let mut lv = std::mem::take(&mut self.levels[level]);
            if let (Some((mut cells, closed_right)), Some(sep)) =
                (lv.closed.take(), lv.pending.take())
            {
                // The last node would be empty: the kept-back node gives its
                // last entry up as the separator, and the pending one
                // starts the last node.
                let last = cells
                    .pop()
                    .ok_or_else(|| Error::corrupt(0, "index page too small for the bulk load"))?;
                if cells.is_empty() {
                    return Err(Error::corrupt(0, "index page too small for the bulk load"));
                }
                let (node_right, up) = match closed_right {
                    None => (None, last),
                    Some(_) => {
                        let (child, s) = split_child(&last);
                        (Some(child), s.to_vec())
                    }
                };
                let pgno = f.alloc()?;
                write_index_page(f, pgno, &cells, node_right)?;
                self.add(f, level + 1, with_child(pgno, &up))?;
                lv.cells = vec![match closed_right {
                    None => sep,
                    Some(r) => with_child(r, &sep),
                }];
            }
            let top = level + 1 == self.levels.len();
            let pgno = if top { self.root } else { f.alloc()? };
            write_index_page(f, pgno, &lv.cells, right)?;
            if top {
                return Ok(());
            }
            right = Some(pgno);
            level += 1;
        }
        Ok(())
    }
}

/// An interior cell: `child` followed by the entry's cell bytes.
fn with_child(child: u32, cell: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(4 + cell.len());
    c.extend_from_slice(&child.to_be_bytes());
    c.extend_from_slice(cell);
    c
}

/// An interior cell's child and the entry's cell bytes.
fn split_child(cell: &[u8]) -> (u32, &[u8]) {
    match cell.split_first_chunk::<4>() {
        Some((c, rest)) => (u32::from_be_bytes(*c), rest),
        None => (0, cell),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    /// A record of one blob column of `len` bytes.
    fn record(len: usize, fill: u8) -> Vec<u8> {
        let mut v = [0u8; 9];
        let n = write_varint((len as u64) * 2 + 12, &mut v);
        let mut r = vec![(1 + n) as u8];
        r.extend_from_slice(&v[..n]);
        r.resize(r.len() + len, fill);
        r
    }

    /// Writes `rows` rows into table `t` of a fresh database and returns
    /// SQLite's verdict and what it reads back: (count, sum of lengths,
    /// largest rowid).
    fn load(dir: &Path, page_size: u32, rows: &[(i64, usize)]) -> (String, i64, i64, i64) {
        let path = dir.join(format!("bulk-{page_size}-{}.db", rows.len()));
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(&format!(
                "PRAGMA page_size={page_size}; CREATE TABLE first(x); CREATE TABLE t(b BLOB);"
            ))
            .unwrap();
        }
        let mut f = BulkFile::open(&path).unwrap();
        let mut tree = TableTree::new(&f, 3);
        for &(rowid, len) in rows {
            assert!(tree.push(&mut f, rowid, &record(len, rowid as u8)).unwrap());
        }
        if !rows.is_empty() {
            // Out of order: refused.
            assert!(!tree.push(&mut f, rows[0].0, &record(1, 0)).unwrap());
        }
        tree.finish(&mut f).unwrap();
        // Every page read back as sound as it was written.
        assert_eq!(f.unsound(), None);
        f.finish().unwrap();
        let c = Connection::open(&path).unwrap();
        let ic: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        let (n, len, ids) = c
            .query_row(
                "SELECT count(*), coalesce(sum(length(b)), 0), coalesce(max(rowid), 0) FROM t",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        // SQLite can go on writing to it.
        c.execute("INSERT INTO t VALUES (x'00')", []).unwrap();
        (ic, n, len, ids)
    }

    #[test]
    fn trees_of_every_shape_pass_integrity_check() {
        let dir = tempfile::tempdir().unwrap();
        // Counts around the points where a leaf, then an interior page,
        // then a second interior level fill up (512-byte pages, small rows).
        let mut counts: Vec<usize> = vec![0, 1, 2, 3, 40];
        counts.extend((500..6000).step_by(11));
        counts.extend([60_000, 130_001]);
        for &n in &counts {
            let rows: Vec<(i64, usize)> = (0..n as i64)
                .map(|i| (i * 3 - 1000, (i as usize * 7) % 11))
                .collect();
            let (ic, count, len, ids) = load(dir.path(), 512, &rows);
            assert_eq!(ic, "ok", "{n} rows");
            assert_eq!(count as usize, n);
            assert_eq!(len as usize, rows.iter().map(|r| r.1).sum::<usize>());
            assert_eq!(ids, rows.last().map_or(0, |r| r.0));
        }
    }

    #[test]
    fn overflowing_rows_and_extreme_rowids() {
        let dir = tempfile::tempdir().unwrap();
        for page_size in [512u32, 4096, 65536] {
            let big = page_size as usize * 3;
            let rows: Vec<(i64, usize)> = [i64::MIN, -5, 0, 1, 1 << 40, i64::MAX - 1, i64::MAX]
                .iter()
                .enumerate()
                .map(|(i, &r)| (r, [0, 1, big, page_size as usize - 40, 5, big * 7, 100][i]))
                .collect();
            let (ic, count, len, max) = load(dir.path(), page_size, &rows);
            assert_eq!(max, i64::MAX);
            assert_eq!(ic, "ok", "page size {page_size}");
            assert_eq!(count, 7);
            assert_eq!(len as usize, rows.iter().map(|r| r.1).sum::<usize>());
        }
    }

    /// A record of one blob key of `len` bytes (first bytes: `key` big-endian,
    /// so keys sort as numbers) and one integer.
    fn keyed(key: u32, len: usize) -> Vec<u8> {
        let len = len.max(4);
        let mut v = [0u8; 9];
        let n = write_varint((len as u64) * 2 + 12, &mut v);
        let mut r = vec![(2 + n) as u8];
        r.extend_from_slice(&v[..n]);
        r.push(1);
        let mut blob = key.to_be_bytes().to_vec();
        blob.resize(len, 0x5a);
        r.extend_from_slice(&blob);
        r.push((key % 100) as u8);
        r
    }

    /// Loads `entries` into a WITHOUT ROWID table; SQLite's verdict on the
    /// table, and its row count.
    fn load_index(dir: &Path, page_size: u32, entries: &[Vec<u8>]) -> (String, i64) {
        let path = dir.join(format!("wr-{page_size}-{}.db", entries.len()));
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(&format!(
                "PRAGMA page_size={page_size}; CREATE TABLE t(k BLOB PRIMARY KEY, v INT) WITHOUT ROWID;"
            ))
            .unwrap();
        }
        let mut f = BulkFile::open(&path).unwrap();
        let mut tree = IndexTree::new(2);
        for e in entries {
            tree.push(&mut f, e).unwrap();
        }
        tree.finish(&mut f).unwrap();
        f.finish().unwrap();
        let c = Connection::open(&path).unwrap();
        // The whole file, then the table alone (as recover asks).
        let check = |sql: &str| -> String { c.query_row(sql, [], |r| r.get(0)).unwrap() };
        let whole = check("PRAGMA integrity_check");
        let table = check("PRAGMA integrity_check(t)");
        assert_eq!(whole == "ok", table == "ok", "{whole} / {table}");
        let ic = whole;
        let n = c
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        if ic == "ok" {
            c.execute("INSERT INTO t VALUES (x'00', 1)", []).unwrap();
        }
        (ic, n)
    }

    #[test]
    fn index_trees_of_every_shape_pass_integrity_check() {
        let dir = tempfile::tempdir().unwrap();
        let mut counts: Vec<u32> = vec![0, 1, 2, 3, 9, 40];
        counts.extend((300..2400).step_by(7));
        counts.extend([30_000, 90_001]);
        for &n in &counts {
            let entries: Vec<Vec<u8>> = (0..n)
                .map(|i| keyed(i + 1, (i as usize * 5) % 23))
                .collect();
            let (ic, count) = load_index(dir.path(), 512, &entries);
            assert_eq!(ic, "ok", "{n} entries");
            assert_eq!(count, i64::from(n));
        }
        // Keys that spill to overflow pages, on leaves and interior pages.
        for ps in [512u32, 4096, 65536] {
            let entries: Vec<Vec<u8>> = (0..400u32)
                .map(|i| keyed(i + 1, (i as usize * 131) % (ps as usize * 2)))
                .collect();
            let (ic, count) = load_index(dir.path(), ps, &entries);
            assert_eq!(ic, "ok", "page size {ps}");
            assert_eq!(count, 400);
        }
    }

    #[test]
    fn a_page_that_does_not_read_back_as_sound_is_caught_as_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unsound.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA page_size=512; CREATE TABLE t(b BLOB);")
            .unwrap();
        let mut f = BulkFile::open(&path).unwrap();
        let mut tree = TableTree::new(&f, 2);
        for rowid in 1..=3 {
            assert!(tree.push(&mut f, rowid, &record(20, 1)).unwrap());
        }
        // The leaf as the writer made it, then with its second cell
        // pointer aimed into the first cell: the cells overlap.
        tree.leaf_header();
        let mut page = tree.leaf.clone();
        let first = u16::from_be_bytes([page[8], page[9]]);
        page[10..12].copy_from_slice(&(first + 1).to_be_bytes());
        let sound = f.alloc().unwrap();
        f.write_tree_page(sound, &tree.leaf).unwrap();
        assert_eq!(f.unsound(), None);
        let broken = f.alloc().unwrap();
        f.write_tree_page(broken, &page).unwrap();
        assert_eq!(f.unsound(), Some(broken));
    }

    #[test]
    fn entries_out_of_order_or_repeated_are_caught_by_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let mut swapped: Vec<Vec<u8>> = (0..500u32).map(|i| keyed(i + 1, 8)).collect();
        swapped.swap(100, 101);
        assert_ne!(load_index(dir.path(), 512, &swapped).0, "ok");
        let mut repeated: Vec<Vec<u8>> = (0..501u32).map(|i| keyed(i + 1, 8)).collect();
        repeated[250] = repeated[249].clone();
        assert_ne!(load_index(dir.path(), 512, &repeated).0, "ok");
    }
}
