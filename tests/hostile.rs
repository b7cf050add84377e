//! Damaged and hostile inputs: every entry point returns a result or an
//! error, never panics, never hangs.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sqlite_salvage::dump::{DumpOptions, Format, dump};
use sqlite_salvage::info::info;
use sqlite_salvage::{Database, WalChoice};

use crate::common::*;

/// Runs every reader entry point over the files at `db` (+ `-wal`), and
/// `recover`, whose output must pass SQLite's integrity check.
fn exercise(db: &Path) {
    let out = db.with_extension("recovered");
    let _ = std::fs::remove_file(&out);
    let opts = sqlite_salvage::recover::RecoverOptions {
        no_sync: true,
        history: true,
        ..Default::default()
    };
    if sqlite_salvage::recover::recover(db, &out, &opts).is_ok() {
        let ic: String = Connection::open(&out)
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ic, "ok");
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
}

fn cases(db: &[u8], wal: &[u8]) -> Vec<Case> {
    let ps = 512usize;
    let mut out = Vec::new();
    let mut add = |name: String, d: Vec<u8>, w: Vec<u8>| {
        out.push(Case {
            name,
            db: d,
            wal: w,
        })
    };
    for p in 0..db.len() / ps {
        let mut d = db.to_vec();
        d[p * ps..(p + 1) * ps].fill(0);
        add(format!("db page {} zeroed", p + 1), d, wal.to_vec());
        let mut d = db.to_vec();
        d[p * ps..(p + 1) * ps].fill(0xff);
        add(format!("db page {} all ones", p + 1), d, wal.to_vec());
    }
    for off in (0..db.len()).step_by(23) {
        let mut d = db.to_vec();
        d[off] ^= 1 << (off % 8);
        add(format!("db bit flip at {off}"), d, wal.to_vec());
    }
    for cut in (0..db.len()).step_by(ps / 2) {
        add(
            format!("db truncated to {cut}"),
            db[..cut].to_vec(),
            wal.to_vec(),
        );
    }
    for off in (0..wal.len()).step_by(61) {
        let mut w = wal.to_vec();
        w[off] ^= 0x10;
        add(format!("wal byte flip at {off}"), db.to_vec(), w);
    }
    for cut in (0..wal.len()).step_by(ps / 2 + 24) {
        add(
            format!("wal truncated to {cut}"),
            db.to_vec(),
            wal[..cut].to_vec(),
        );
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
        );
    }
    out
}

#[test]
fn mutated_databases_and_wals_never_panic_or_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, wal) = build(tmp.path());
    let all = cases(&db, &wal);
    assert!(all.len() > 500, "{} cases", all.len());
    let path = tmp.path().join("case.db");
    let mut slowest = (Duration::ZERO, String::new());
    for c in &all {
        std::fs::write(&path, &c.db).unwrap();
        std::fs::write(side(&path, "-wal"), &c.wal).unwrap();
        let start = Instant::now();
        let r = std::panic::catch_unwind(|| exercise(&path));
        assert!(r.is_ok(), "panic on case: {}", c.name);
        let t = start.elapsed();
        if t > slowest.0 {
            slowest = (t, c.name.clone());
        }
    }
    assert!(
        slowest.0 < Duration::from_secs(5),
        "slowest case {:?}: {}",
        slowest.0,
        slowest.1
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
