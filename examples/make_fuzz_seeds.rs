//! Writes the generated fuzz seeds in fuzz/seeds/ and, for the format
//! crate's targets, crates/format/fuzz/seeds/ (run from the project root):
//!
//!     cargo run --example make_fuzz_seeds
//!
//! One small database per kind the differential tests make: page sizes 512
//! to 65536; UTF-8, UTF-16le and UTF-16be; auto-vacuum none, full (pointer
//! maps) and incremental; reserved bytes. Each has a rowid table with an
//! index, an overflowing row, a WITHOUT ROWID table with a spilled key,
//! values of every serial type and a freelist, checkpointed, then three
//! commits only in the WAL. From each come the seeds of every target: the
//! database alone and the database + WAL pair (`database`), the WAL
//! (`wal`), the header (`header`), pages (`page`) and records (`record`),
//! the WAL's first frames (`wal_frames`) and the `-shm` (`shm`),
//! in the framing each target reads (see fuzz/entries.rs); and, from a
//! rollback-journal database of the same kind caught mid-transaction, the
//! database + hot journal pair (`journal`).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};
use sqlite_salvage::format::page::BtreePage;

struct Kind {
    name: &'static str,
    page_size: u32,
    encoding: &'static str,
    auto_vacuum: &'static str,
    reserved: u8,
}

const KINDS: &[Kind] = &[
    Kind {
        name: "p512-utf8",
        page_size: 512,
        encoding: "UTF-8",
        auto_vacuum: "NONE",
        reserved: 0,
    },
    Kind {
        name: "p1024-utf8-incremental",
        page_size: 1024,
        encoding: "UTF-8",
        auto_vacuum: "INCREMENTAL",
        reserved: 0,
    },
    Kind {
        name: "p1024-utf16le-full-r32",
        page_size: 1024,
        encoding: "UTF-16le",
        auto_vacuum: "FULL",
        reserved: 32,
    },
    Kind {
        name: "p2048-utf16le-r8",
        page_size: 2048,
        encoding: "UTF-16le",
        auto_vacuum: "NONE",
        reserved: 8,
    },
    Kind {
        name: "p4096-utf16be-incremental",
        page_size: 4096,
        encoding: "UTF-16be",
        auto_vacuum: "INCREMENTAL",
        reserved: 0,
    },
    Kind {
        name: "p65536-utf8",
        page_size: 65536,
        encoding: "UTF-8",
        auto_vacuum: "NONE",
        reserved: 0,
    },
];

fn side(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Deterministic bytes (xorshift).
fn bytes(state: &mut u64, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            *state as u8
        })
        .collect()
}

/// A new, empty database of kind `k` at `p` (page size, auto-vacuum and
/// reserved bytes set; the journal mode and encoding are the caller's).
fn empty(p: &Path, k: &Kind) -> Connection {
    for s in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(side(p, s));
    }
    Connection::open(p)
        .unwrap()
        .execute_batch(&format!(
            "PRAGMA page_size={}; PRAGMA auto_vacuum={}; VACUUM;",
            k.page_size, k.auto_vacuum
        ))
        .unwrap();
    if k.reserved > 0 {
        // Reserved bytes are set on the still-empty database: the header
        // byte and page 1's cell-content start (the usable size).
        let mut b = std::fs::read(p).unwrap();
        b[20] = k.reserved;
        let usable = k.page_size - u32::from(k.reserved);
        b[105..107].copy_from_slice(&(usable as u16).to_be_bytes());
        std::fs::write(p, b).unwrap();
    }
    Connection::open(p).unwrap()
}

/// Builds `k` in `dir`; returns the database file after the checkpoint, the
/// WAL with the three later commits, and the database with those
/// checkpointed too.
fn build(dir: &Path, k: &Kind) -> Built {
    let p = dir.join(format!("{}.db", k.name));
    let c = empty(&p, k);
    c.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; PRAGMA encoding='{}';",
        k.encoding
    ))
    .unwrap();
    let ps = k.page_size as usize;
    let mut rng = u64::from(k.page_size) * 31 + u64::from(k.reserved) + 1;
    if ps == 65536 {
        // Every table costs a 64 KiB page: one table, every serial type.
        c.execute_batch(
            "CREATE TABLE v(x, y REAL, z);
             INSERT INTO v VALUES(NULL, 0, 1), (-1, 1.5, 'text'), (2147483648, -0.0, x'00ff');
             DELETE FROM v WHERE x = -1;",
        )
        .unwrap();
    } else {
        c.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b BLOB);
             CREATE INDEX t_a ON t(a);
             CREATE TABLE w(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
             CREATE TABLE v(x, y REAL, z);
             BEGIN;",
        )
        .unwrap();
        for i in 1..=30i64 {
            c.execute(
                "INSERT INTO t VALUES(?1, ?2, ?3)",
                params![i, format!("row {i}"), bytes(&mut rng, ps / 16)],
            )
            .unwrap();
        }
        c.execute(
            "INSERT INTO t VALUES(31, 'spills', ?1)",
            [bytes(&mut rng, 3 * ps)],
        )
        .unwrap();
        let key: String = bytes(&mut rng, ps / 2)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        c.execute("INSERT INTO w VALUES(?1, 'spilled key')", [key])
            .unwrap();
        c.execute_batch(
            "INSERT INTO w SELECT a, id FROM t WHERE id <= 20;
             INSERT INTO v VALUES(NULL, 0, 1), (-1, 1.5, 'text'), (127, 2.0, x''),
                 (32767, -0.0, 'é'), (8388607, 1e300, x'00ff'),
                 (2147483647, 0.1, ''), (140737488355327, -1e-300, 'z'),
                 (-9223372036854775808, 3.0, 9223372036854775807);
             COMMIT;
             DELETE FROM t WHERE id BETWEEN 10 AND 14;",
        )
        .unwrap();
    }
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let db = std::fs::read(&p).unwrap();
    if ps == 65536 {
        c.execute_batch(
            "INSERT INTO v VALUES(3, 4.5, 'wal');
             UPDATE v SET z = 'changed' WHERE x IS NULL;
             DELETE FROM v WHERE x = 3;",
        )
        .unwrap();
    } else {
        c.execute_batch(
            "INSERT INTO t(a, b) VALUES('in the wal', zeroblob(40));
             UPDATE w SET v = -v WHERE v % 2 = 0;
             DELETE FROM t WHERE id = 31;",
        )
        .unwrap();
    }
    let wal = std::fs::read(side(&p, "-wal")).unwrap();
    let shm = std::fs::read(side(&p, "-shm")).unwrap();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let whole = std::fs::read(&p).unwrap();
    Built {
        db,
        wal,
        shm,
        whole,
    }
}

/// A rollback-journal database of kind `k` caught mid-transaction: the
/// database file with changed pages already written, and its hot journal.
fn hot_journal(dir: &Path, k: &Kind) -> (Vec<u8>, Vec<u8>) {
    let p = dir.join(format!("{}-journal.db", k.name));
    let c = empty(&p, k);
    let ps = k.page_size as usize;
    let mut rng = u64::from(k.page_size) * 17 + 3;
    c.execute_batch(&format!(
        "PRAGMA journal_mode=DELETE; PRAGMA cache_size=2; PRAGMA encoding='{}';
         CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB); BEGIN;",
        k.encoding
    ))
    .unwrap();
    for i in 1..=60i64 {
        c.execute(
            "INSERT INTO t VALUES(?1, ?2)",
            params![i, bytes(&mut rng, ps / 8)],
        )
        .unwrap();
    }
    // The transaction spills its changed pages into the file (the cache
    // holds two pages); the journal keeps their originals.
    c.execute_batch(
        "COMMIT; BEGIN; UPDATE t SET b = zeroblob(length(b)); DELETE FROM t WHERE id > 40;",
    )
    .unwrap();
    let db = std::fs::read(&p).unwrap();
    let journal = std::fs::read(side(&p, "-journal")).unwrap();
    c.execute_batch("ROLLBACK").unwrap();
    (db, journal)
}

/// What [`build`] made of one kind: the database file before the WAL's
/// commits, the WAL, the `-shm` beside it, and the database file after a
/// checkpoint.
struct Built {
    db: Vec<u8>,
    wal: Vec<u8>,
    shm: Vec<u8>,
    whole: Vec<u8>,
}

/// The targets of the format crate's own fuzz project.
const FORMAT_TARGETS: &[&str] = &["header", "page", "record", "shm", "wal_frames"];

fn write(target: &str, name: &str, parts: &[&[u8]]) {
    let root = if FORMAT_TARGETS.contains(&target) {
        "crates/format/fuzz/seeds"
    } else {
        "fuzz/seeds"
    };
    let dir = Path::new(root).join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), parts.concat()).unwrap();
}

fn main() {
    let tmp = std::env::temp_dir().join("salvage-fuzz-seeds");
    std::fs::create_dir_all(&tmp).unwrap();
    for k in KINDS {
        let Built {
            db,
            wal,
            shm,
            whole,
        } = build(&tmp, k);
        let ps = k.page_size as usize;
        // `database`: an even first byte, then the whole file.
        write("database", k.name, &[&[0], &whole]);
        // A pair: the first byte is twice the database's page count plus
        // one; then the database, then the WAL.
        if let Ok(pages) = u8::try_from(db.len() / ps) {
            if pages < 128 {
                let sel = pages * 2 + 1;
                write(
                    "database",
                    &format!("{}-pair", k.name),
                    &[&[sel], &db, &wal],
                );
            }
        }
        write("wal", k.name, &[&wal]);
        // `wal_frames`: the WAL's header and first two frames; `shm`: the
        // -shm's index header, then the WAL header it belongs to.
        write(
            "wal_frames",
            k.name,
            &[&wal[..(32 + 2 * (24 + ps)).min(wal.len())]],
        );
        write("shm", k.name, &[&shm[..136.min(shm.len())], &wal[..32]]);
        write("header", k.name, &[&whole[..100]]);
        // `page`: the first byte is twice the reserved bytes, plus one for
        // page 1; then the page. `record`: some records held whole on their
        // leaf.
        let usable = k.page_size - u32::from(k.reserved);
        let mut records = 0;
        for (i, page) in whole.chunks_exact(ps).enumerate().take(12) {
            let pgno = i as u32 + 1;
            let sel = k.reserved * 2 + u8::from(pgno == 1);
            write("page", &format!("{}-{pgno}", k.name), &[&[sel], page]);
            let Ok(p) = BtreePage::parse(page, pgno, usable) else {
                continue;
            };
            for c in (0..p.cell_count).step_by(7) {
                let Some(pl) = p.cell(c).ok().and_then(|c| c.payload().copied()) else {
                    continue;
                };
                if !pl.spills() && records < 8 {
                    write("record", &format!("{}-{records}", k.name), &[pl.local]);
                    records += 1;
                }
            }
        }
        // `journal`: as a pair, with the rollback journal after the
        // database.
        if ps <= 4096 {
            let (db, journal) = hot_journal(&tmp, k);
            let pages = u8::try_from(db.len() / ps).unwrap();
            write("journal", k.name, &[&[pages * 2 + 1], &db, &journal]);
        }
        println!(
            "{}: database {} B, WAL {} B, {} records",
            k.name,
            whole.len(),
            wal.len(),
            records
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
