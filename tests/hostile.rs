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

/// Runs every reader entry point over the files at `db` (+ `-wal`), and
/// `recover`, whose output must pass SQLite's integrity check; returns the
/// rows recovered (as [`keys`]), None when recover refused.
fn exercise(db: &Path) -> Option<HashSet<String>> {
    let out = db.with_extension("recovered");
    let _ = std::fs::remove_file(&out);
    let opts = sqlite_salvage::recover::RecoverOptions {
        no_sync: true,
        history: true,
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

fn build(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let p = dir.join("seed.db");
    let c = wal_conn(&p, 512);
    c.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b BLOB);
         CREATE INDEX t_a ON t(a);
         CREATE TABLE w(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 40)
         INSERT INTO t SELECT i, 'row ' || i, randomblob(i * 30) FROM n;
         INSERT INTO w SELECT a, id FROM t;
         PRAGMA wal_checkpoint(TRUNCATE);
         UPDATE t SET b = randomblob(900) WHERE id % 5 = 0;
         DELETE FROM w WHERE v % 3 = 0;
         INSERT INTO t(a, b) VALUES('late', randomblob(2000));",
    )
    .unwrap();
    let db = std::fs::read(&p).unwrap();
    let wal = std::fs::read(side(&p, "-wal")).unwrap();
    drop(c);
    (db, wal)
}

struct Case {
    name: String,
    db: Vec<u8>,
    wal: Vec<u8>,
    /// Database-file pages the mutation changed, when it changed only the
    /// database file's pages (the rows on other pages must all come back).
    touched: Option<Vec<u32>>,
}

fn cases(db: &[u8], wal: &[u8]) -> Vec<Case> {
    use sqlite_salvage::format::page::BtreePage;
    let ps = 512usize;
    let pages = db.len() / ps;
    let page_of = |off: usize| (off / ps) as u32 + 1;
    let mut out = Vec::new();
    let mut add = |name: String, d: Vec<u8>, w: Vec<u8>, touched: Option<Vec<u32>>| {
        out.push(Case {
            name,
            db: d,
            wal: w,
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
    for off in (0..db.len()).step_by(23) {
        let mut d = db.to_vec();
        d[off] ^= 1 << (off % 8);
        add(
            format!("db bit flip at {off}"),
            d,
            wal.to_vec(),
            Some(vec![page_of(off)]),
        );
    }
    for off in (0..db.len()).step_by(97) {
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
    for p in 2..=pages as u32 {
        let at = (p as usize - 1) * ps;
        let Ok(page) = BtreePage::parse(&db[at..at + ps], p, ps as u32) else {
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
            for target in [p, 1, pages as u32 + 5, 1 << 31] {
                let mut d = db.to_vec();
                d[at + slot..at + slot + 4].copy_from_slice(&target.to_be_bytes());
                add(
                    format!("db page {p}: pointer at {slot} set to {target}"),
                    d,
                    wal.to_vec(),
                    Some(vec![p]),
                );
            }
        }
    }
    for off in (0..wal.len()).step_by(61) {
        let mut w = wal.to_vec();
        w[off] ^= 0x10;
        add(format!("wal byte flip at {off}"), db.to_vec(), w, None);
    }
    for cut in (0..wal.len()).step_by(ps / 2 + 24) {
        add(
            format!("wal truncated to {cut}"),
            db.to_vec(),
            wal[..cut].to_vec(),
            None,
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
            None,
        );
        let mut w = wal.to_vec();
        let (a, b) = w.split_at_mut(at(i + 1));
        a[at(i)..].swap_with_slice(&mut b[..frame]);
        add(
            format!("wal frames {i} and {} swapped", i + 1),
            db.to_vec(),
            w,
            None,
        );
        let mut w = wal.to_vec();
        w[at(i) + 8] ^= 0x01;
        add(format!("wal frame {i} salt changed"), db.to_vec(), w, None);
    }
    // Header fields set to extremes.
    let fields: &[(usize, &[u8])] = &[
        (16, &[0, 1]),
        (16, &[0xff, 0xff]),
        (16, &[0, 0]),
        (20, &[255]),
        (28, &[0xff, 0xff, 0xff, 0xff]),
        (28, &[0, 0, 0, 0]),
        (28, &[0x80, 0, 0, 0]),
        (32, &[0x7f, 0xff, 0xff, 0xff]),
        (36, &[0xff, 0xff, 0xff, 0xff]),
        (56, &[0, 0, 0, 9]),
        (52, &[0, 0, 0, 1]),
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

/// The sweep runs in a process of its own (this test binary, filtered to
/// the ignored test below) so that its peak memory is its own.
#[test]
fn mutated_databases_and_wals_never_panic_or_hang() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "hostile::mutation_sweep",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // libtest prints its own "test ... " before the line.
    let line = stdout
        .lines()
        .find_map(|l| l.find("sweep:").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("no summary in {stdout}"));
    println!("{line}");
}

#[test]
#[ignore = "run in its own process by mutated_databases_and_wals_never_panic_or_hang"]
fn mutation_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, wal) = build(tmp.path());
    let seed = tmp.path().join("seed-copy.db");
    std::fs::write(&seed, &db).unwrap();
    std::fs::write(side(&seed, "-wal"), &wal).unwrap();
    let located = locate(&seed);
    let truth = keys(&sqlite_view(&seed));
    let latest = Database::open(&seed).unwrap().latest().unwrap();
    let all = cases(&db, &wal);
    assert!(all.len() > 1500, "{} cases", all.len());
    let path = tmp.path().join("case.db");
    let (baseline, _) = rss_kib();
    let mut slowest = (Duration::ZERO, String::new());
    let mut checked = 0;
    let mut failures = Vec::new();
    for c in &all {
        std::fs::write(&path, &c.db).unwrap();
        std::fs::write(side(&path, "-wal"), &c.wal).unwrap();
        let start = Instant::now();
        let r = std::panic::catch_unwind(|| exercise(&path));
        let t = start.elapsed();
        let Ok(got) = r else {
            panic!("panic on case: {}", c.name)
        };
        if t > slowest.0 {
            slowest = (t, c.name.clone());
        }
        // Rows on pages the mutation did not touch (or whose newest
        // version is in the WAL) all come back.
        if let Some(touched) = &c.touched {
            let got = got.unwrap_or_else(|| panic!("{}: recover refused", c.name));
            let hit = |pages: &Vec<u32>| {
                pages
                    .iter()
                    .any(|p| touched.contains(p) && latest.wal_offset(*p).is_none())
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
        "{} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let (_, peak) = rss_kib();
    println!(
        "sweep: {} cases ({checked} with every untouched row checked), slowest {:?} ({}), peak RSS {} MiB over a baseline of {} MiB",
        all.len(),
        slowest.0,
        slowest.1,
        peak.saturating_sub(baseline) / 1024,
        baseline / 1024
    );
    assert!(
        slowest.0 < Duration::from_secs(5),
        "slowest case {:?}: {}",
        slowest.0,
        slowest.1
    );
    assert!(
        peak.saturating_sub(baseline) < 64 * 1024,
        "peak RSS {peak} KiB, baseline {baseline} KiB"
    );
}

#[test]
fn the_unmutated_seed_reads_like_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, wal) = build(tmp.path());
    let p = tmp.path().join("seed-copy.db");
    std::fs::write(&p, &db).unwrap();
    std::fs::write(side(&p, "-wal"), &wal).unwrap();
    assert_same_state(&our_view(&p), &sqlite_view(&p), "seed");
    let _ = Connection::open_in_memory();
}

#[test]
fn wal_claiming_four_billion_pages_allocates_nothing_by_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, wal) = build(tmp.path());
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

/// Runs one fuzz target's entry points on `data` (the same calls as
/// `fuzz/fuzz_targets/*.rs`).
fn fuzz_entry(target: &str, data: &[u8], dir: &Path) {
    use sqlite_salvage::format::header::{DbHeader, RawHeader, TextEncoding};
    use sqlite_salvage::format::page::{BtreePage, FreelistTrunk};
    use sqlite_salvage::format::record::Record;
    match target {
        "header" => {
            if let Ok(raw) = RawHeader::parse(data) {
                let _ = DbHeader::from_raw(raw);
            }
            let _ = DbHeader::parse(data);
        }
        "page" => {
            let Some((&sel, page)) = data.split_first() else {
                return;
            };
            let pgno = if sel & 1 == 1 { 1 } else { 2 };
            let usable = (page.len() as u32).saturating_sub(u32::from(sel >> 1));
            if let Ok(p) = BtreePage::parse(page, pgno, usable) {
                for i in 0..p.cell_count {
                    let _ = (p.cell(i), p.cell_size(i));
                }
                let _ = (p.freeblocks(), p.children(), p.is_consistent());
            }
            let _ = FreelistTrunk::parse(page, usable);
        }
        "record" => {
            let mut r = Record::new();
            if r.parse(data).is_ok() {
                for i in 0..=r.len() {
                    let _ = r.value(data, i).to_owned(TextEncoding::Utf16le);
                }
            }
            let _ = r.parse_partial(data);
        }
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
        "database" => {
            let Some((&sel, rest)) = data.split_first() else {
                return;
            };
            let db = dir.join("f.db");
            let _ = std::fs::remove_file(side(&db, "-wal"));
            let split = if sel & 1 == 1 {
                (usize::from(sel) * 97).min(rest.len())
            } else {
                rest.len()
            };
            std::fs::write(&db, &rest[..split]).unwrap();
            if split < rest.len() {
                std::fs::write(side(&db, "-wal"), &rest[split..]).unwrap();
            }
            exercise(&db);
        }
        other => panic!("unknown fuzz target {other}"),
    }
}

#[test]
fn fuzz_seeds_and_regressions_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let tmp = tempfile::tempdir().unwrap();
    let mut n = 0;
    for kind in ["seeds", "regressions"] {
        let Ok(targets) = std::fs::read_dir(root.join(kind)) else {
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
    assert!(n >= 10, "{n} inputs replayed");
}
