//! The backup module's own tests: the pinned snapshot, the copies, the pacer.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::copy::{BLOCK, CopyHow, copy_with_crc};
use super::pace::Pacer;
use super::source::{Source, begin_read, check_source, writers_committing};

use super::*;

/// A `-shm` whose WAL-index change counter is `change`.
fn write_shm(path: &Path, change: u32) {
    let mut b = vec![0u8; 136];
    b[8..12].copy_from_slice(&change.to_ne_bytes());
    std::fs::write(path, b).unwrap();
}

/// Whether a TRUNCATE checkpoint by another connection was kept from
/// finishing (SQLite reports busy while a reader pins the WAL). In one
/// process SQLite also keeps the locks in memory, so this cannot see a
/// lost POSIX lock: tests/backup.rs checks that from another process.
fn truncate_is_busy(other: &Connection) -> bool {
    other
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
        == 1
}

#[test]
fn the_pinned_snapshot_survives_the_copy_reads() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let writer = Connection::open(&db).unwrap();
    writer
        .execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
             CREATE TABLE t(x); INSERT INTO t VALUES(1);",
        )
        .unwrap();
    // A checkpoint that must wait says busy at once.
    writer.busy_timeout(Duration::ZERO).unwrap();
    assert!(check_source(&db).unwrap().is_wal_mode());
    let source = Source::open(&db).unwrap();
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let pin = begin_read(&conn, &source, true).unwrap().unwrap();
    assert!(pin.max_frame > 0);
    writer.execute("INSERT INTO t VALUES(2)", []).unwrap();
    // The later commit is published, and not part of the snapshot.
    assert!(source.index_header().unwrap().max_frame > pin.max_frame);
    assert!(
        truncate_is_busy(&writer),
        "the read transaction pins the WAL"
    );
    // Everything the copy reads, through the kept descriptors.
    let mut pacer = Pacer::new(source.shm.clone());
    copy_with_crc(
        &source.db,
        &db,
        &dir.path().join("copy.db"),
        CopyHow::default(),
        &mut pacer,
    )
    .unwrap();
    // The writer is idle now.
    assert!(!writers_committing(&source));
    drop(pacer);
    assert!(truncate_is_busy(&writer), "still pinned after the copy");
}

/// A second pass over an earlier copy leaves exactly the source, as it
/// is now, whether it changed inside, grew or shrank; a limit copies a
/// prefix.
#[test]
fn a_refresh_pass_leaves_exactly_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = (dir.path().join("src"), dir.path().join("out"));
    let mut bytes: Vec<u8> = (0..(7u32 << 19)).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &bytes).unwrap();
    let copy = |how: CopyHow| {
        let f = File::open(&src).unwrap();
        copy_with_crc(&f, &src, &out, how, &mut Pacer::new(None)).unwrap()
    };
    copy(CopyHow::default());
    let refresh = CopyHow {
        refresh: true,
        ..CopyHow::default()
    };
    bytes[(3 << 19) + 5] ^= 0xff;
    bytes.extend_from_slice(b"grown");
    std::fs::write(&src, &bytes).unwrap();
    let e = copy(refresh);
    assert_eq!(std::fs::read(&out).unwrap(), bytes, "changed and grown");
    assert_eq!(
        (e.size, e.crc32),
        (bytes.len() as u64, crc32fast::hash(&bytes))
    );
    bytes.truncate((1 << 20) + 7);
    std::fs::write(&src, &bytes).unwrap();
    let e = copy(refresh);
    assert_eq!(std::fs::read(&out).unwrap(), bytes, "shrunk");
    assert_eq!(e.crc32, crc32fast::hash(&bytes));
    let e = copy(CopyHow {
        limit: Some(1000),
        ..CopyHow::default()
    });
    assert_eq!(std::fs::read(&out).unwrap(), &bytes[..1000], "a prefix");
    assert_eq!((e.size, e.crc32), (1000, crc32fast::hash(&bytes[..1000])));
}

#[test]
fn both_ways_of_copying_give_the_same_file_and_sum() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let shm = dir.path().join("db-shm");
    write_shm(&shm, 1);
    for len in [
        0usize,
        1,
        BLOCK - 1,
        BLOCK,
        3 * BLOCK + 12_345,
        40 * BLOCK + 3,
    ] {
        let bytes: Vec<u8> = (0..len)
            .map(|i| (i % 253) as u8 ^ (i >> 20) as u8)
            .collect();
        std::fs::write(&src, &bytes).unwrap();
        for limit in [None, Some(BLOCK as u64 + 17), Some(5)] {
            let want = &bytes[..limit.map_or(len, |l| (l as usize).min(len))];
            for sync in [false, true] {
                // The second core is taken only by a copy that never
                // yields: the last way runs on two threads.
                let ways = [
                    (false, Pacer::new(None)),
                    (true, Pacer::new(File::open(&shm).ok().map(Arc::new))),
                    (true, Pacer::new(None)),
                ];
                for (k, (second_core, mut pacer)) in ways.into_iter().enumerate() {
                    let how = CopyHow {
                        sync,
                        limit,
                        second_core,
                        ..CopyHow::default()
                    };
                    let out = dir.path().join(format!("out{k}"));
                    let f = File::open(&src).unwrap();
                    let e = copy_with_crc(&f, &src, &out, how, &mut pacer).unwrap();
                    let got = std::fs::read(&out).unwrap();
                    assert!(got == want, "{len} bytes, limit {limit:?}, way {k}");
                    assert_eq!(
                        (e.size, e.crc32),
                        (want.len() as u64, crc32fast::hash(want))
                    );
                }
            }
        }
    }
    // A write that fails is an error, on one thread or two.
    let f = File::open(&src).unwrap();
    for (second_core, mut pacer) in [
        (false, Pacer::new(None)),
        (true, Pacer::new(File::open(&shm).ok().map(Arc::new))),
        (true, Pacer::new(None)),
    ] {
        let full = Path::new("/dev/full");
        if full.exists() {
            let how = CopyHow {
                second_core,
                ..CopyHow::default()
            };
            let e = copy_with_crc(&f, &src, full, how, &mut pacer);
            assert!(matches!(e, Err(Error::Output { .. })), "{e:?}");
        }
    }
}

#[test]
fn the_pacer_yields_only_while_commits_are_seen() {
    let dir = tempfile::tempdir().unwrap();
    let shm = dir.path().join("db-shm");
    write_shm(&shm, 1);
    let mut p = Pacer::new(File::open(&shm).ok().map(Arc::new));
    // Nothing moved yet: full speed.
    assert!(!p.writers_active());
    assert!(!p.writers_active());
    write_shm(&shm, 2);
    assert!(p.writers_active());
    // 5 ms of work, then nine times as long waiting.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(5) {}
    p.pace(start);
    assert!(start.elapsed() >= Duration::from_millis(50));
    // Quiet for longer than QUIET: full speed again.
    std::thread::sleep(Pacer::QUIET + Duration::from_millis(20));
    assert!(!p.writers_active());
    write_shm(&shm, 3);
    assert!(p.writers_active());
    // No -shm, or told not to yield: never waits.
    let mut never = Pacer::new(None);
    assert!(!never.writers_active());
    let mut missing = Pacer::new(File::open(dir.path().join("none-shm")).ok().map(Arc::new));
    assert!(!missing.writers_active());
}
