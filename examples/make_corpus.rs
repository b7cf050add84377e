//! Writes the samples in corpus/ (run from the project root):
//!
//!     cargo run --example make_corpus
//!
//! Each sample is a small "memory store" in WAL mode, copied while its
//! writer still had it open (so the WAL is kept), then damaged as its name
//! says. corpus/expected.json records what SQLite itself reports for each,
//! and the test suite checks our tools against it.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};

fn side(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Builds the live store and returns (its path, the connection kept open):
/// `base` rows per table checkpointed into the file, then 8 commits of 3
/// rows each only in the WAL.
fn live(dir: &Path, name: &str, base: u32) -> (PathBuf, Connection) {
    let p = dir.join(name);
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(side(&p, s));
    }
    let c = Connection::open(&p).unwrap();
    c.execute_batch(
        "PRAGMA page_size=1024; PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
         CREATE TABLE memories(id TEXT PRIMARY KEY, kind TEXT, meta TEXT, embedding BLOB);
         CREATE INDEX memories_kind ON memories(kind);
         CREATE TABLE events(id INTEGER PRIMARY KEY, memory TEXT, note TEXT);
         CREATE TABLE tags(tag TEXT, memory TEXT, PRIMARY KEY(tag, memory)) WITHOUT ROWID;",
    )
    .unwrap();
    let mut n = 0u32;
    let mut commit = |c: &Connection, rows: u32| {
        c.execute_batch("BEGIN").unwrap();
        for _ in 0..rows {
            n += 1;
            let id = format!("mem-{n:04}");
            let emb: Vec<u8> = (0..1200u32).map(|i| (i * 7 + n) as u8).collect();
            c.execute(
                "INSERT INTO memories VALUES(?1, ?2, ?3, ?4)",
                params![
                    id,
                    format!("kind{}", n % 3),
                    format!("{{\"n\":{n},\"src\":\"chat\"}}"),
                    emb
                ],
            )
            .unwrap();
            c.execute(
                "INSERT INTO events(memory, note) VALUES(?1, ?2)",
                params![id, format!("created {n}")],
            )
            .unwrap();
            c.execute(
                "INSERT INTO tags VALUES(?1, ?2)",
                params![format!("t{}", n % 5), id],
            )
            .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
    };
    commit(&c, base);
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    for _ in 0..8 {
        commit(&c, 3);
    }
    (p, c)
}

fn copy_to(src: &Path, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let db = dir.join("memory.db");
    std::fs::copy(src, &db).unwrap();
    std::fs::copy(side(src, "-wal"), side(&db, "-wal")).unwrap();
    db
}

fn main() {
    let root = PathBuf::from("corpus");
    let tmp = std::env::temp_dir().join("salvage-corpus");
    std::fs::create_dir_all(&tmp).unwrap();
    let (p, c) = live(&tmp, "live.db", 20);

    // 1. A healthy store whose newest commits are only in the WAL.
    copy_to(&p, &root.join("wal-commits"));

    // 2. The same, with one byte of a frame in the middle of the WAL
    //    flipped: SQLite stops reading the WAL there.
    let db = copy_to(&p, &root.join("damaged-frame"));
    let wal = side(&db, "-wal");
    let mut b = std::fs::read(&wal).unwrap();
    let frame_size = 24 + 1024;
    let frames = (b.len() - 32) / frame_size;
    let off = 32 + (frames / 2) * frame_size + 24 + 500;
    b[off] ^= 0x20;
    std::fs::write(&wal, b).unwrap();

    // 3. The database file alone (no WAL) with one table leaf page zeroed,
    //    as a torn write leaves it.
    let dir = root.join("zeroed-leaf");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("memory.db");
    let _ = std::fs::remove_file(&out);
    c.execute("VACUUM INTO ?1", params![out.to_str().unwrap()])
        .unwrap();
    let leaf: i64 = Connection::open(&out)
        .unwrap()
        .query_row(
            "SELECT pageno FROM dbstat WHERE name='events' AND pagetype='leaf' LIMIT 1 OFFSET 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut b = std::fs::read(&out).unwrap();
    let at = (leaf as usize - 1) * 1024;
    b[at..at + 1024].fill(0);
    std::fs::write(&out, b).unwrap();
    println!("zeroed-leaf: page {leaf} zeroed");
    drop(c);

    // 4. A bigger store, all checkpointed, with the root pages of
    //    `memories` and `events` (interior pages) zeroed: every leaf is
    //    cut off from its table.
    let (p2, c2) = live(&tmp, "live2.db", 150);
    c2.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let dir = root.join("zeroed-interior");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("memory.db");
    std::fs::copy(&p2, &out).unwrap();
    let mut b = std::fs::read(&out).unwrap();
    for t in ["memories", "events"] {
        let root: i64 = c2
            .query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
                [t],
                |r| r.get(0),
            )
            .unwrap();
        let at = (root as usize - 1) * 1024;
        b[at..at + 1024].fill(0);
        println!("zeroed-interior: {t} root page {root} zeroed");
    }
    std::fs::write(&out, b).unwrap();
    drop(c2);
    let _ = std::fs::remove_dir_all(&tmp);
}
