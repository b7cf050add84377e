//! Damaged and hostile inputs: every entry point returns a result or an
//! error, never panics, never hangs.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sqlite_salvage::dump::{DumpOptions, Format, dump};
use sqlite_salvage::info::info;
use sqlite_salvage::{Database, WalChoice};

use crate::common::*;

#[path = "../fuzz/entries.rs"]
mod entries;
#[path = "../crates/format/fuzz/entries.rs"]
mod format_entries;

/// Runs every reader entry point over the files at `db` (+ `-wal`), and
/// `recover`, whose output must pass SQLite's integrity check; returns the
/// rows recovered (as [`keys`]), None when recover refused.
fn exercise(db: &Path) -> Option<HashSet<String>> {
    let out = db.with_extension("recovered");
    let _ = std::fs::remove_file(&out);
    let opts = sqlite_salvage::recover::RecoverOptions {
        no_sync: true,
        history: true,
        deleted: true,
        ..Default::default()
    };
    let mut recovered = None;
    if sqlite_salvage::recover::recover(db, &out, &opts).is_ok() {
        let c = Connection::open(&out).unwrap();
        let ic = integrity(&c);
        assert_eq!(ic, "ok");
        recovered = Some(keys(&sqlite_state(&c)));
    }
    let _ = std::fs::remove_file(&out);
    for choice in [WalChoice::Auto, WalChoice::Ignore] {
        let Ok(d) = Database::open_with(db, choice) else {
            continue;
        };
        for at in [None, Some(0)] {
            let Ok(snap) = d.snapshot(at) else { continue };
            // info runs the structural check too.
            let _ = info(&d, &snap);
            if let Ok(schema) = snap.schema() {
                for t in &schema.tables {
                    let mut rows = snap.rows(t);
                    while let Ok(Some(r)) = rows.next_row() {
                        let _ = r.to_row(snap.header().encoding);
                    }
                }
                for format in [Format::Sql, Format::Jsonl] {
                    let opts = DumpOptions {
                        format,
                        table: None,
                    };
                    let _ = dump(&snap, &schema, &opts, &mut std::io::sink());
                }
            }
            let out = db.with_extension("replayed");
            let _ = sqlite_salvage::replay::replay_with(&snap, &out, false);
            let _ = std::fs::remove_file(&out);
        }
    }
    recovered
}

/// One of the sweep's generated databases: every one has an index, a
/// WITHOUT ROWID table with a spilled key, overflow chains, and a WAL with
/// commits after a checkpoint.
struct Seed {
    page_size: u32,
    encoding: &'static str,
    auto_vacuum: &'static str,
    reserved: u8,
}

const SEEDS: &[Seed] = &[
    // Small pages, deep chains, a freelist.
    Seed {
        page_size: 512,
        encoding: "UTF-8",
        auto_vacuum: "NONE",
        reserved: 0,
    },
    // Pointer-map pages, reserved bytes at each page's end, UTF-16.
    Seed {
        page_size: 1024,
        encoding: "UTF-16le",
        auto_vacuum: "FULL",
        reserved: 32,
    },
    // Common page size, big-endian UTF-16, free pages kept for an
    // incremental vacuum.
    Seed {
        page_size: 4096,
        encoding: "UTF-16be",
        auto_vacuum: "INCREMENTAL",
        reserved: 0,
    },
];

impl std::fmt::Display for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} B pages, {}, auto_vacuum {}, {} reserved",
            self.page_size, self.encoding, self.auto_vacuum, self.reserved
        )
    }
}

/// Builds `s` (byte for byte the same on every run but for the WAL's
/// salts, which are then fixed too); returns the database and WAL bytes.
fn build(dir: &Path, s: &Seed) -> (Vec<u8>, Vec<u8>) {
    let p = dir.join(format!("seed-{}.db", s.page_size));
    {
        let c = Connection::open(&p).unwrap();
        c.execute_batch(&format!(
            "PRAGMA page_size={}; PRAGMA auto_vacuum={}; VACUUM;",
            s.page_size, s.auto_vacuum
        ))
        .unwrap();
    }
    if s.reserved > 0 {
        set_reserved(&p, s.page_size, s.reserved);
    }
    let c = wal_conn(&p, s.page_size);
    let ps = s.page_size as usize;
    let mut rng = Rng(u64::from(s.page_size) * 7919 + 1);
    c.execute_batch(&format!(
        "PRAGMA encoding='{}';
         CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b BLOB);
         CREATE INDEX t_a ON t(a);
         CREATE TABLE w(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
         BEGIN;",
        s.encoding
    ))
    .unwrap();
    for i in 1..=40 {
        c.execute(
            "INSERT INTO t VALUES(?1, ?2, ?3)",
            rusqlite::params![i as i64, format!("row {i}"), rng.bytes(i * ps / 16)],
        )
        .unwrap();
    }
    let long_key: String = rng.bytes(ps).iter().map(|b| format!("{b:02x}")).collect();
    c.execute("INSERT INTO w VALUES(?1, 'spilled key')", [long_key])
        .unwrap();
    c.execute_batch(
        "INSERT INTO w SELECT a, id FROM t;
         COMMIT;
         DELETE FROM t WHERE id BETWEEN 20 AND 23;
         PRAGMA wal_checkpoint(TRUNCATE);
         BEGIN;",
    )
    .unwrap();
    for id in (5..=40).step_by(5) {
        c.execute(
            "UPDATE t SET b = ?1 WHERE id = ?2",
            rusqlite::params![rng.bytes(2 * ps - 124), id],
        )
        .unwrap();
    }
    c.execute_batch("COMMIT; DELETE FROM w WHERE v % 3 = 0;")
        .unwrap();
    c.execute(
        "INSERT INTO t(a, b) VALUES('late', ?1)",
        [rng.bytes(4 * ps)],
    )
    .unwrap();
    let db = std::fs::read(&p).unwrap();
    let mut wal = std::fs::read(side(&p, "-wal")).unwrap();
    drop(c);
    fix_salts(&mut wal, ps);
    (db, wal)
}

/// Sets a WAL's salts to fixed values and re-chains every checksum, so
/// that the sweep's cases are the same on every run.
fn fix_salts(wal: &mut [u8], ps: usize) {
    use sqlite_salvage::format::wal::{checksum, frame_checksum};
    let big = wal[3] & 1 == 1;
    let salts = [0x5a17_0001u32.to_be_bytes(), 0x5a17_0002u32.to_be_bytes()].concat();
    wal[16..24].copy_from_slice(&salts);
    let (c1, c2) = checksum(&wal[..24], big, (0, 0));
    wal[24..28].copy_from_slice(&c1.to_be_bytes());
    wal[28..32].copy_from_slice(&c2.to_be_bytes());
    let mut prev = (c1, c2);
    let frame = ps + 24;
    let mut at = 32;
    while at + frame <= wal.len() {
        wal[at + 8..at + 16].copy_from_slice(&salts);
        let (h, rest) = wal[at..at + frame].split_at(24);
        prev = frame_checksum(h, rest, big, prev);
        wal[at + 16..at + 20].copy_from_slice(&prev.0.to_be_bytes());
        wal[at + 20..at + 24].copy_from_slice(&prev.1.to_be_bytes());
        at += frame;
    }
}

struct Case {
    name: String,
    db: Diff,
    wal: Diff,
    /// Database-file pages the mutation changed, unless it changed the
    /// header's fields: every row on other pages (and, when the WAL is
    /// changed, not in the WAL) must come back.
    touched: Option<Vec<u32>>,
}

/// A mutated file as its changes to the unmutated one (thousands of whole
/// copies would be the sweep's largest use of memory).
struct Diff {
    len: usize,
    runs: Vec<(usize, Vec<u8>)>,
}

impl Diff {
    fn of(base: &[u8], new: &[u8]) -> Diff {
        assert!(new.len() <= base.len());
        let mut runs: Vec<(usize, Vec<u8>)> = Vec::new();
        for (i, (&a, &b)) in base.iter().zip(new).enumerate() {
            if a == b {
                continue;
            }
            match runs.last_mut() {
                Some((at, run)) if *at + run.len() == i => run.push(b),
                _ => runs.push((i, vec![b])),
            }
        }
        Diff {
            len: new.len(),
            runs,
        }
    }

    fn apply(&self, base: &[u8]) -> Vec<u8> {
        let mut out = base[..self.len].to_vec();
        for (at, run) in &self.runs {
            out[*at..*at + run.len()].copy_from_slice(run);
        }
        out
    }
}

/// Every overflow page of the database file alone, with the first page of
/// its chain, as SQLite's dbstat lists them.
fn overflow_pages(dir: &Path, db: &[u8]) -> Vec<(u32, u32)> {
    let p = dir.join("overflow-list.db");
    std::fs::write(&p, db).unwrap();
    let c = Connection::open(&p).unwrap();
    let rows: Vec<(String, i64)> = c
        .prepare("SELECT path, pageno FROM dbstat WHERE pagetype = 'overflow' ORDER BY path")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    // A path is "<cell's path>+<index in the chain>".
    let split = |path: &str| {
        let (head, i) = path.rsplit_once('+').unwrap();
        (head.to_string(), i.parse::<u32>().unwrap())
    };
    let first = |path: &str| -> u32 {
        let head = split(path).0;
        let p = rows.iter().find(|(q, _)| split(q) == (head.clone(), 0));
        p.unwrap().1 as u32
    };
    rows.iter()
        .map(|(path, pg)| (*pg as u32, first(path)))
        .collect()
}

/// The freelist's trunk pages, in chain order.
fn freelist_trunks(db: &[u8], ps: usize) -> Vec<u32> {
    let mut out = Vec::new();
    let mut next = be32_at(db, 32);
    while next != 0 && out.len() < 64 {
        out.push(next);
        next = be32_at(db, (next as usize - 1) * ps);
    }
    out
}

/// The first odd step at least `min` that visits `len` bytes in about
/// `count` steps.
fn step(len: usize, min: usize, count: usize) -> usize {
    (len / count).max(min) | 1
}

fn cases(dir: &Path, db: &[u8], wal: &[u8], ps: usize) -> Vec<Case> {
    use sqlite_salvage::format::page::BtreePage;
    let pages = db.len() / ps;
    let page_of = |off: usize| (off / ps) as u32 + 1;
    let mut out = Vec::new();
    let mut add = |name: String, d: Vec<u8>, w: Vec<u8>, touched: Option<Vec<u32>>| {
        out.push(Case {
            name,
            db: Diff::of(db, &d),
            wal: Diff::of(wal, &w),
            touched,
        })
    };
    for p in 0..pages {
        let mut d = db.to_vec();
        d[p * ps..(p + 1) * ps].fill(0);
        add(
            format!("db page {} zeroed", p + 1),
            d,
            wal.to_vec(),
            Some(vec![p as u32 + 1]),
        );
        let mut d = db.to_vec();
        d[p * ps..(p + 1) * ps].fill(0xff);
        add(
            format!("db page {} all ones", p + 1),
            d,
            wal.to_vec(),
            Some(vec![p as u32 + 1]),
        );
        // Pages swapped: with the next one, and with one far away.
        for q in [p + 1, pages - 1 - p] {
            if q > p && q < pages {
                let mut d = db.to_vec();
                let (a, b) = d.split_at_mut(q * ps);
                a[p * ps..(p + 1) * ps].swap_with_slice(&mut b[..ps]);
                let t = vec![p as u32 + 1, q as u32 + 1];
                add(
                    format!("db pages {} and {} swapped", p + 1, q + 1),
                    d,
                    wal.to_vec(),
                    Some(t),
                );
            }
        }
    }
    for off in (0..db.len()).step_by(step(db.len(), 23, 1400)) {
        let mut d = db.to_vec();
        d[off] ^= 1 << (off % 8);
        add(
            format!("db bit flip at {off}"),
            d,
            wal.to_vec(),
            Some(vec![page_of(off)]),
        );
    }
    for off in (0..db.len()).step_by(step(db.len(), 97, 340)) {
        let mut d = db.to_vec();
        let end = (off + 8).min(db.len());
        d[off..end].fill(0xa5);
        let t = vec![page_of(off), page_of(end - 1)];
        add(format!("db byte run at {off}"), d, wal.to_vec(), Some(t));
    }
    for cut in (0..db.len()).step_by(ps / 2) {
        let t = (page_of(cut)..=pages as u32).collect();
        add(
            format!("db truncated to {cut}"),
            db[..cut].to_vec(),
            wal.to_vec(),
            Some(t),
        );
    }
    // Page numbers (children, overflow pointers) pointed at the page itself,
    // at page 1, past the end, at 2^31.
    let targets = |p: u32| [p, 1, pages as u32 + 5, 1 << 31];
    // The database with the 4-byte number at `off` set to `v`.
    let with_u32 = |off: usize, v: u32| {
        let mut d = db.to_vec();
        d[off..off + 4].copy_from_slice(&v.to_be_bytes());
        d
    };
    let usable = ps as u32 - u32::from(db[20]);
    for p in 2..=pages as u32 {
        let at = (p as usize - 1) * ps;
        let Ok(page) = BtreePage::parse(&db[at..at + ps], p, usable) else {
            continue;
        };
        let mut slots = Vec::new();
        if page.right_child.is_some() {
            slots.push(page.header_offset() + 8);
        }
        for i in 0..page.cell_count {
            let (Ok(off), Ok(cell), Ok(size)) =
                (page.cell_offset(i), page.cell(i), page.cell_size(i))
            else {
                continue;
            };
            if cell.left_child().is_some() {
                slots.push(off);
            }
            if cell.payload().is_some_and(|pl| pl.spills()) {
                slots.push(off + size - 4);
            }
        }
        for slot in slots.into_iter().take(6) {
            for target in targets(p) {
                add(
                    format!("db page {p}: pointer at {slot} set to {target}"),
                    with_u32(at + slot, target),
                    wal.to_vec(),
                    Some(vec![p]),
                );
            }
        }
    }
    // Overflow chains that loop (to the page itself, to the chain's first
    // page) or lead to page 1, past the end, to 2^31.
    for (p, first) in overflow_pages(dir, db) {
        let at = (p as usize - 1) * ps;
        let mut to: Vec<u32> = targets(p).to_vec();
        if first != p {
            to.push(first);
        }
        for target in to {
            add(
                format!("overflow page {p} (chain from {first}): next set to {target}"),
                with_u32(at, target),
                wal.to_vec(),
                Some(vec![p]),
            );
        }
    }
    // A freelist that loops or leads astray, and trunks claiming more
    // leaves than fit (no row is on a free page: every row must come back).
    let trunks = freelist_trunks(db, ps);
    for &p in &trunks {
        let at = (p as usize - 1) * ps;
        let mut to = targets(p).to_vec();
        to.push(trunks[0]);
        for target in to {
            add(
                format!("freelist trunk {p}: next set to {target}"),
                with_u32(at, target),
                wal.to_vec(),
                Some(vec![p]),
            );
        }
        for count in [u32::MAX, (ps / 4) as u32, (ps / 4 - 2) as u32] {
            add(
                format!("freelist trunk {p}: leaf count set to {count}"),
                with_u32(at + 4, count),
                wal.to_vec(),
                Some(vec![p]),
            );
        }
        if be32_at(db, at + 4) > 0 {
            for target in targets(p) {
                add(
                    format!("freelist trunk {p}: first leaf set to {target}"),
                    with_u32(at + 8, target),
                    wal.to_vec(),
                    Some(vec![p]),
                );
            }
        }
    }
    for off in (0..wal.len()).step_by(step(wal.len(), 61, 500)) {
        let mut w = wal.to_vec();
        w[off] ^= 0x10;
        add(
            format!("wal byte flip at {off}"),
            db.to_vec(),
            w,
            Some(Vec::new()),
        );
    }
    for cut in (0..wal.len()).step_by(ps / 2 + 24) {
        add(
            format!("wal truncated to {cut}"),
            db.to_vec(),
            wal[..cut].to_vec(),
            Some(Vec::new()),
        );
    }
    // WAL frames duplicated, swapped, with the wrong salts.
    let frame = ps + 24;
    let frames = wal.len().saturating_sub(32) / frame;
    let at = |i: usize| 32 + i * frame;
    for i in 0..frames.saturating_sub(1) {
        let mut w = wal.to_vec();
        w.copy_within(at(i)..at(i + 1), at(i + 1));
        add(
            format!("wal frame {i} duplicated over the next"),
            db.to_vec(),
            w,
            Some(Vec::new()),
        );
        let mut w = wal.to_vec();
        let (a, b) = w.split_at_mut(at(i + 1));
        a[at(i)..].swap_with_slice(&mut b[..frame]);
        add(
            format!("wal frames {i} and {} swapped", i + 1),
            db.to_vec(),
            w,
            Some(Vec::new()),
        );
        let mut w = wal.to_vec();
        w[at(i) + 8] ^= 0x01;
        add(
            format!("wal frame {i} salt changed"),
            db.to_vec(),
            w,
            Some(Vec::new()),
        );
    }
    // Header fields set to extremes: page size 65536 (1), 65535, 0, 2 and
    // a valid but wrong one; versions; reserved bytes leaving less than a
    // minimum page; payload fractions; database sizes 0, 2^31 and 2^32-1;
    // freelist, schema format, encoding, root page, vacuum fields.
    let wrong_size: &[u8] = if ps == 4096 { &[2, 0] } else { &[0x10, 0] };
    let fields: &[(usize, &[u8])] = &[
        (16, &[0, 1]),
        (16, &[0xff, 0xff]),
        (16, &[0, 0]),
        (16, &[0, 2]),
        (16, wrong_size),
        (18, &[0xff, 0xff]),
        (20, &[255]),
        (21, &[0, 0, 0]),
        (21, &[255, 255, 255]),
        (28, &[0xff, 0xff, 0xff, 0xff]),
        (28, &[0, 0, 0, 0]),
        (28, &[0x80, 0, 0, 0]),
        (32, &[0x7f, 0xff, 0xff, 0xff]),
        (32, &[0, 0, 0, 1]),
        (36, &[0xff, 0xff, 0xff, 0xff]),
        (44, &[0, 0, 0, 0]),
        (44, &[0xff, 0xff, 0xff, 0xff]),
        (52, &[0, 0, 0, 1]),
        (52, &[0xff, 0xff, 0xff, 0xff]),
        (56, &[0, 0, 0, 9]),
        (56, &[0, 0, 0, 0]),
        (64, &[0, 0, 0, 7]),
        (92, &[0, 0, 0, 0]),
    ];
    for (off, bytes) in fields {
        let mut d = db.to_vec();
        d[*off..*off + bytes.len()].copy_from_slice(bytes);
        add(
            format!("header bytes at {off} set to {bytes:?}"),
            d,
            wal.to_vec(),
            None,
        );
    }
    out
}

/// This process's resident set now and at its peak, in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The sweep runs one process per seed (this test binary, filtered to the
/// ignored test below, told its seed by `SALVAGE_SWEEP_SEED`), side by
/// side, so that each one's peak memory is its own.
#[test]
fn mutated_databases_and_wals_never_panic_or_hang() {
    let children: Vec<_> = (0..SEEDS.len())
        .map(|i| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "hostile::mutation_sweep",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("SALVAGE_SWEEP_SEED", i.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // libtest prints its own "test ... " before the line.
        let line = stdout
            .lines()
            .find_map(|l| l.find("sweep ").map(|at| &l[at..]))
            .unwrap_or_else(|| panic!("no summary in {stdout}"));
        println!("{line}");
    }
}

#[test]
#[ignore = "run in processes of its own by mutated_databases_and_wals_never_panic_or_hang"]
fn mutation_sweep() {
    let chosen: Vec<&Seed> = match std::env::var("SALVAGE_SWEEP_SEED") {
        Ok(i) => vec![&SEEDS[i.parse::<usize>().unwrap()]],
        Err(_) => SEEDS.iter().collect(),
    };
    for s in chosen {
        sweep(s);
    }
}

/// Every case of `s`: no panic, within the time budget, every row on an
/// untouched page recovered, memory bounded.
fn sweep(s: &Seed) {
    let tmp = tempfile::tempdir().unwrap();
    let ps = s.page_size as usize;
    let (db, wal) = build(tmp.path(), s);
    if s.auto_vacuum != "FULL" {
        assert!(!freelist_trunks(&db, ps).is_empty(), "{s}: no freelist");
    }
    let seed = tmp.path().join("seed-copy.db");
    std::fs::write(&seed, &db).unwrap();
    std::fs::write(side(&seed, "-wal"), &wal).unwrap();
    let located = locate(&seed);
    let truth = keys(&sqlite_view(&seed));
    let latest = Database::open(&seed).unwrap().latest().unwrap();
    let all = cases(tmp.path(), &db, &wal, ps);
    assert!(all.len() > 1500, "{s}: {} cases", all.len());
    let path = tmp.path().join("case.db");
    let (baseline, _) = rss_kib();
    let mut slowest = (Duration::ZERO, String::new());
    let mut checked = 0;
    let mut failures = Vec::new();
    let start_all = Instant::now();
    for c in &all {
        std::fs::write(&path, c.db.apply(&db)).unwrap();
        std::fs::write(side(&path, "-wal"), c.wal.apply(&wal)).unwrap();
        let start = Instant::now();
        let r = std::panic::catch_unwind(|| exercise(&path));
        let t = start.elapsed();
        let Ok(got) = r else {
            panic!("{s}: panic on case: {}", c.name)
        };
        if t > slowest.0 {
            slowest = (t, c.name.clone());
        }
        // Rows on pages the mutation did not touch all come back: the
        // database file's pages it did not change (whose newest version is
        // not in the WAL), and the WAL's pages unless it changed the WAL.
        if let Some(touched) = &c.touched {
            let got = got.unwrap_or_else(|| panic!("{s}: {}: recover refused", c.name));
            let wal_changed = c.wal.len != wal.len() || !c.wal.runs.is_empty();
            let hit = |pages: &Vec<u32>| {
                pages.iter().any(|p| match latest.wal_offset(*p) {
                    None => touched.contains(p),
                    Some(_) => wal_changed,
                })
            };
            let missing = truth
                .iter()
                .filter(|k| !located.get(*k).is_some_and(hit))
                .filter(|k| !got.contains(*k))
                .count();
            if missing > 0 {
                failures.push(format!(
                    "{}: lost {missing} rows from untouched pages",
                    c.name
                ));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{s}: {} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let (_, peak) = rss_kib();
    println!(
        "sweep of {s}: {} cases in {:.1} s ({checked} with every untouched row checked), slowest {:?} ({}), peak RSS {} MiB over a baseline of {} MiB",
        all.len(),
        start_all.elapsed().as_secs_f64(),
        slowest.0,
        slowest.1,
        peak.saturating_sub(baseline) / 1024,
        baseline / 1024
    );
    assert!(
        slowest.0 < Duration::from_secs(5),
        "{s}: slowest case {:?}: {}",
        slowest.0,
        slowest.1
    );
    assert!(
        peak.saturating_sub(baseline) < 64 * 1024,
        "{s}: peak RSS {peak} KiB, baseline {baseline} KiB"
    );
}

#[test]
fn the_unmutated_seeds_read_like_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    for s in SEEDS {
        let (db, wal) = build(tmp.path(), s);
        let p = tmp.path().join("seed-copy.db");
        std::fs::write(&p, &db).unwrap();
        std::fs::write(side(&p, "-wal"), &wal).unwrap();
        assert_same_state(&our_view(&p), &sqlite_view(&p), &s.to_string());
        // Built the same way twice, a seed is the same bytes.
        let again = tempfile::tempdir().unwrap();
        assert!(
            build(again.path(), s) == (db, wal),
            "{s}: not deterministic"
        );
    }
}

#[test]
fn wal_claiming_four_billion_pages_allocates_nothing_by_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, wal) = build(tmp.path(), &SEEDS[0]);
    let p = tmp.path().join("huge.db");
    std::fs::write(&p, &db).unwrap();
    let w = side(&p, "-wal");
    std::fs::write(&w, &wal).unwrap();
    let idx = sqlite_salvage::wal::WalIndex::scan(&w).unwrap().unwrap();
    let last = idx.commits.last().unwrap().last_frame;
    // The last commit frame now holds page 2^32-1 and claims 2^32-1 pages,
    // with checksums that SQLite would accept.
    rewrite_frame(&w, last, 0, u32::MAX);
    rewrite_frame(&w, last, 4, u32::MAX);
    let d = Database::open(&p).unwrap();
    let snap = d.latest().unwrap();
    assert_eq!(snap.claimed_page_count(), u32::MAX);
    assert!(snap.page_count() < 1000, "{}", snap.page_count());
    let report = sqlite_salvage::check::check(&snap).unwrap();
    assert!(
        report.damage.iter().any(|x| x.what.contains("exceeds")),
        "{:?}",
        report.damage
    );
    exercise(&p);
}

/// A small database with a two-level table and a long overflow chain;
/// returns (bytes, page size, root page of `t`, first overflow page).
fn shaped(dir: &Path) -> (Vec<u8>, usize, u32, u32) {
    let p = dir.join("shaped.db");
    let c = Connection::open(&p).unwrap();
    c.execute_batch(
        "PRAGMA page_size=1024;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 900)
         INSERT INTO t SELECT i, printf('value %d %.40c', i, 'x') FROM n;
         CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB);
         INSERT INTO big VALUES(1, randomblob(20000));",
    )
    .unwrap();
    let root: i64 = c
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name='t'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let ovf: i64 = c
        .query_row(
            "SELECT min(pageno) FROM dbstat WHERE name='big' AND pagetype='overflow'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(c);
    (std::fs::read(&p).unwrap(), 1024, root as u32, ovf as u32)
}

fn be32_at(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(b[off..off + 4].try_into().unwrap())
}

/// Runs check, dump and recover on `bytes`; returns the damage `check` names.
fn hostile(dir: &Path, name: &str, bytes: &[u8]) -> Vec<String> {
    let p = dir.join(format!("{name}.db"));
    std::fs::write(&p, bytes).unwrap();
    let start = Instant::now();
    let r = std::panic::catch_unwind(|| exercise(&p));
    assert!(r.is_ok(), "{name}: panic");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{name}: too slow"
    );
    let d = Database::open(&p).unwrap();
    let snap = d.latest().unwrap();
    sqlite_salvage::check::check(&snap)
        .unwrap()
        .damage
        .iter()
        .map(|x| x.what.clone())
        .collect()
}

#[test]
fn hostile_shapes_are_named_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, ps, root, ovf) = shaped(tmp.path());
    let at = |pg: u32| (pg as usize - 1) * ps;
    // The root interior page's right-most pointer at itself.
    let mut b = db.clone();
    b[at(root) + 8..at(root) + 12].copy_from_slice(&root.to_be_bytes());
    let d = hostile(tmp.path(), "self", &b);
    assert!(d.iter().any(|w| w.contains("reached twice")), "{d:?}");
    // Two cells of the root pointing at the same child.
    let mut b = db.clone();
    let cell0 = usize::from(u16::from_be_bytes([b[at(root) + 12], b[at(root) + 13]]));
    let cell1 = usize::from(u16::from_be_bytes([b[at(root) + 14], b[at(root) + 15]]));
    let child0 = be32_at(&b, at(root) + cell0);
    b[at(root) + cell1..at(root) + cell1 + 4].copy_from_slice(&child0.to_be_bytes());
    let d = hostile(tmp.path(), "two-parents", &b);
    assert!(d.iter().any(|w| w.contains("reached twice")), "{d:?}");
    // An overflow chain that loops back to its first page.
    let mut b = db.clone();
    b[at(ovf)..at(ovf) + 4].copy_from_slice(&ovf.to_be_bytes());
    let d = hostile(tmp.path(), "overflow-loop", &b);
    assert!(d.iter().any(|w| w.contains("loops")), "{d:?}");
    // A leaf cell claiming a payload of 2^40 bytes.
    let mut b = db.clone();
    let leaf = be32_at(&b, at(root) + cell0);
    let c0 = usize::from(u16::from_be_bytes([b[at(leaf) + 8], b[at(leaf) + 9]]));
    // 2^40 as a 6-byte varint would shift the cell; overwrite the size
    // varint and rowid bytes with a 9-byte one instead.
    let mut v = [0u8; 9];
    let n = sqlite_salvage::format::varint::write_varint(1 << 40, &mut v);
    b[at(leaf) + c0..at(leaf) + c0 + n].copy_from_slice(&v[..n]);
    let d = hostile(tmp.path(), "huge-payload", &b);
    assert!(!d.is_empty(), "{d:?}");
    // A cell count larger than the page can hold.
    let mut b = db.clone();
    b[at(leaf) + 3..at(leaf) + 5].copy_from_slice(&u16::MAX.to_be_bytes());
    let d = hostile(tmp.path(), "cell-count", &b);
    assert!(d.iter().any(|w| w.contains("cell count")), "{d:?}");
    // A tree deeper than any real one: a chain of interior pages, each the
    // only child of the one before, made out of the leaves of `t`.
    let mut b = db.clone();
    let mut chain = Vec::new();
    let cells = u16::from_be_bytes([b[at(root) + 3], b[at(root) + 4]]);
    for i in 0..cells {
        let off = usize::from(u16::from_be_bytes([
            b[at(root) + 12 + 2 * usize::from(i)],
            b[at(root) + 13 + 2 * usize::from(i)],
        ]));
        chain.push(be32_at(&b, at(root) + off));
    }
    assert!(chain.len() > 35, "{} leaves", chain.len());
    for w in chain.windows(2) {
        let (p, next) = (w[0], w[1]);
        let h = at(p);
        b[h] = 5; // table interior, no cells, right-most child = next
        b[h + 1..h + 8].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0]);
        b[h + 5..h + 7].copy_from_slice(&(ps as u16).to_be_bytes());
        b[h + 8..h + 12].copy_from_slice(&next.to_be_bytes());
    }
    let first = chain[0];
    b[at(root)] = 5;
    b[at(root) + 3..at(root) + 5].copy_from_slice(&0u16.to_be_bytes());
    b[at(root) + 8..at(root) + 12].copy_from_slice(&first.to_be_bytes());
    let d = hostile(tmp.path(), "deep", &b);
    assert!(d.iter().any(|w| w.contains("deeper")), "{d:?}");
    // A header claiming 2^31 pages (and trusted: version-valid-for kept).
    let mut b = db.clone();
    b[28..32].copy_from_slice(&0x8000_0000u32.to_be_bytes());
    let d = hostile(tmp.path(), "claims-2^31", &b);
    assert!(d.iter().any(|w| w.contains("exceeds")), "{d:?}");
}

/// Runs one fuzz target's entry points on `data`: the targets' own calls
/// (`fuzz/entries.rs`, and the format crate's `crates/format/fuzz/
/// entries.rs`); for wal, database and journal, then [`exercise`]
/// too (every entry point, more than the targets call).
fn fuzz_entry(target: &str, data: &[u8], dir: &Path) {
    match target {
        "header" => format_entries::header(data),
        "page" => format_entries::page(data),
        "record" => format_entries::record(data),
        "shm" => format_entries::shm(data),
        "wal_frames" => format_entries::wal_frames(data),
        "wal" => {
            let _ =
                sqlite_salvage::wal::WalIndex::scan_reader(data, data.len() as u64, Path::new("w"));
            // Replayed onto an empty database of the WAL's page size.
            let ps = data
                .get(8..12)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .filter(|p| p.is_power_of_two() && (512..=65536).contains(p))
                .unwrap_or(4096);
            let db = dir.join("w.db");
            std::fs::write(&db, sqlite_salvage::format::header::empty_database(ps)).unwrap();
            std::fs::write(side(&db, "-wal"), data).unwrap();
            exercise(&db);
        }
        "database" | "journal" => {
            let beside = if target == "database" {
                "-wal"
            } else {
                "-journal"
            };
            for s in ["-wal", "-journal"] {
                let _ = std::fs::remove_file(side(&dir.join("f.db"), s));
            }
            entries::files(data, beside);
            if let Some(db) = entries::write_split(dir, data, beside) {
                exercise(&db);
            }
        }
        other => panic!("unknown fuzz target {other}"),
    }
}

#[test]
fn fuzz_seeds_and_regressions_replay() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let mut n = 0;
    let dirs = [here.join("fuzz"), here.join("crates/format/fuzz")]
        .into_iter()
        .flat_map(|root| ["seeds", "regressions"].map(|kind| root.join(kind)));
    for dir in dirs {
        let Ok(targets) = std::fs::read_dir(dir) else {
            continue;
        };
        for t in targets.flatten().filter(|t| t.path().is_dir()) {
            let target = t.file_name().to_string_lossy().into_owned();
            for f in std::fs::read_dir(t.path()).unwrap().flatten() {
                let data = std::fs::read(f.path()).unwrap();
                let r = std::panic::catch_unwind(|| fuzz_entry(&target, &data, tmp.path()));
                assert!(r.is_ok(), "{}: panic", f.path().display());
                n += 1;
            }
        }
    }
    assert!(n >= 100, "{n} inputs replayed");
}
