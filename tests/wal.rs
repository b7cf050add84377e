//! Snapshots at every commit of a WAL, against SQLite's state after each,
//! and the WAL cases where SQLite stops reading.

use std::path::PathBuf;

use rusqlite::{Connection, params};
use sqlite_salvage::format::wal::FRAME_HEADER_SIZE;
use sqlite_salvage::replay::replay;
use sqlite_salvage::wal::{FrameStatus, WalIndex};
use sqlite_salvage::{Database, Error, Exactness, WalChoice};

use crate::common::*;

/// A live WAL database with `commits` commits after a truncating
/// checkpoint, and SQLite's state after each (index 0: the file alone).
struct History {
    _dir: tempfile::TempDir,
    live: Connection,
    live_path: PathBuf,
    states: Vec<State>,
    dir: PathBuf,
}

fn history(page_size: u32, commits: usize) -> History {
    let dir = tempfile::tempdir().unwrap();
    let live_path = dir.path().join("live.db");
    let c = wal_conn(&live_path, page_size);
    c.execute_batch(
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body BLOB, score REAL);
         CREATE INDEX notes_title ON notes(title);
         CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 50)
         INSERT INTO notes(title, body, score) SELECT 'initial ' || i, randomblob(i * 10), i / 4.0 FROM n;
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
    let mut states = vec![sqlite_state(&c)];
    let mut rng = Rng(99);
    for k in 1..=commits {
        c.execute_batch("BEGIN").unwrap();
        match k {
            20 => c
                .execute_batch("CREATE TABLE later(id INTEGER PRIMARY KEY AUTOINCREMENT, x)")
                .unwrap(),
            35 => c
                .execute_batch("ALTER TABLE notes ADD COLUMN tag TEXT DEFAULT 'untagged'")
                .unwrap(),
            50 => c.execute_batch("DROP INDEX notes_title").unwrap(),
            _ => {}
        }
        match rng.below(5) {
            0 => {
                let id = 1 + rng.below(50 + k as u64);
                c.execute("DELETE FROM notes WHERE id = ?1", params![id as i64])
                    .unwrap();
                c.execute(
                    "INSERT INTO notes(title, body, score) VALUES(?1, ?2, ?3)",
                    params![format!("deleted {id}"), vec![1u8; 3], k as f64],
                )
                .unwrap();
            }
            1 => {
                c.execute(
                    "UPDATE notes SET score = score + 1, body = ?1 WHERE id % 7 = ?2",
                    params![rng.blob(3000), (k % 7) as i64],
                )
                .unwrap();
            }
            2 => {
                c.execute(
                    "INSERT INTO kv VALUES(?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
                    params![format!("key{}", rng.below(40)), rng.blob(5000)],
                )
                .unwrap();
            }
            _ => {
                for _ in 0..1 + rng.below(20) {
                    c.execute(
                        "INSERT INTO notes(title, body, score) VALUES(?1, ?2, ?3)",
                        params![
                            format!("note {k} {}", rng.below(1000)),
                            rng.blob(2 * page_size as u64),
                            rng.below(100) as f64 / 8.0
                        ],
                    )
                    .unwrap();
                }
            }
        }
        if k > 20 {
            c.execute("INSERT INTO later(x) VALUES(?1)", params![k as i64])
                .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
        states.push(sqlite_state(&c));
    }
    History {
        dir: dir.path().to_path_buf(),
        _dir: dir,
        live: c,
        live_path,
        states,
    }
}

#[test]
fn snapshot_at_every_commit_equals_sqlite() {
    for ps in [1024u32, 4096] {
        let h = history(ps, 80);
        let copy = copy_set(&h.live_path, &h.dir, "copy.db");
        let db = Database::open(&copy).unwrap();
        assert_eq!(db.commit_count(), 80, "page size {ps}");
        for (k, state) in h.states.iter().enumerate() {
            let snap = db.snapshot(Some(k as u32)).unwrap();
            assert_eq!(snap.exactness(), Exactness::Exact, "commit {k}");
            assert_same_state(
                &our_state(&snap),
                state,
                &format!("page size {ps} commit {k}"),
            );
        }
        assert!(matches!(
            db.snapshot(Some(81)),
            Err(Error::NoSuchCommit {
                requested: 81,
                available: 80
            })
        ));
        // SQLite reading the same copy agrees with the last commit.
        assert_same_state(&sqlite_view(&copy), &h.states[80], "sqlite view");

        // Replay writes a database equal to each state, that passes
        // SQLite's integrity check and opens without a WAL.
        for k in [0u32, 1, 19, 20, 35, 36, 79, 80] {
            let out = h.dir.join(format!("replay-{k}.db"));
            let stats = replay(&db.snapshot(Some(k)).unwrap(), &out).unwrap();
            assert_eq!(stats.commit, k);
            let conn =
                Connection::open_with_flags(&out, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                    .unwrap();
            let ic = integrity(&conn);
            assert_eq!(ic, "ok", "replay at {k}");
            let mode: String = conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_ne!(mode, "wal");
            assert_same_state(
                &sqlite_state(&conn),
                &h.states[k as usize],
                &format!("replay {k}"),
            );
            assert!(!side(&out, "-wal").exists());
        }
    }
}

#[test]
fn checkpointed_file_makes_earlier_commits_inexact() {
    let h = history(1024, 12);
    h.live
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        .unwrap();
    let copy = copy_set(&h.live_path, &h.dir, "ckpt.db");
    assert!(side(&copy, "-shm").exists());
    let db = Database::open(&copy).unwrap();
    let shm = db.shm().expect("shm read");
    assert!(shm.salts_match);
    assert_eq!(shm.backfilled, db.wal().unwrap().last_valid_frame());
    assert!(matches!(
        db.snapshot(Some(3)).unwrap().exactness(),
        Exactness::Inexact { .. }
    ));
    let latest = db.latest().unwrap();
    assert_eq!(latest.exactness(), Exactness::Exact);
    assert_same_state(
        &our_state(&latest),
        &h.states[12],
        "latest after checkpoint",
    );
    // Without the -shm nothing says how far the checkpoint went.
    std::fs::remove_file(side(&copy, "-shm")).unwrap();
    let db = Database::open(&copy).unwrap();
    assert_eq!(
        db.snapshot(Some(3)).unwrap().exactness(),
        Exactness::Unknown
    );
}

#[test]
fn uncommitted_tail_is_ignored_as_sqlite_does() {
    let h = history(1024, 10);
    let copy = copy_set(&h.live_path, &h.dir, "tail.db");
    std::fs::remove_file(side(&copy, "-shm")).ok();
    let wal = side(&copy, "-wal");
    let idx = WalIndex::scan(&wal).unwrap().unwrap();
    let last = idx.commits.last().unwrap().last_frame;
    rewrite_frame(&wal, last, 4, 0); // no longer a commit frame
    let db = Database::open(&copy).unwrap();
    assert_eq!(db.commit_count(), 9);
    let w = db.wal().unwrap();
    assert!(w.count(FrameStatus::Uncommitted) >= 1);
    assert_same_state(&our_state(&db.latest().unwrap()), &h.states[9], "tail");
    assert_same_state(&sqlite_view(&copy), &h.states[9], "sqlite on tail");
}

#[test]
fn damaged_frame_ends_the_wal_where_sqlite_stops() {
    let h = history(1024, 30);
    let copy = copy_set(&h.live_path, &h.dir, "damaged.db");
    std::fs::remove_file(side(&copy, "-shm")).ok();
    let wal = side(&copy, "-wal");
    let idx = WalIndex::scan(&wal).unwrap().unwrap();
    let c = idx.commits[14];
    // Flip one byte in the page data of commit 15's first frame.
    let mut b = std::fs::read(&wal).unwrap();
    let off =
        sqlite_salvage::wal::frame_offset(c.first_frame, 1024) as usize + FRAME_HEADER_SIZE + 100;
    b[off] ^= 0x40;
    std::fs::write(&wal, &b).unwrap();
    let db = Database::open(&copy).unwrap();
    assert_eq!(db.commit_count(), 14);
    let w = db.wal().unwrap();
    let f = &w.frames[c.first_frame as usize - 1];
    assert_eq!(f.status, FrameStatus::BadChecksum);
    assert!(!f.checksum_ok);
    // Later frames are intact evidence: their checksums still agree with
    // their predecessors' stored checksums.
    assert!(
        w.frames[c.first_frame as usize..]
            .iter()
            .all(|f| f.status == FrameStatus::AfterBreak)
    );
    assert!(
        w.frames[c.first_frame as usize + 1..]
            .iter()
            .all(|f| f.checksum_ok)
    );
    assert_same_state(&our_state(&db.latest().unwrap()), &h.states[14], "damaged");
    assert_same_state(&sqlite_view(&copy), &h.states[14], "sqlite on damaged");
}

/// A frame for page 0 is invalid even with a checksum that continues the
/// chain: SQLite's recovery stops there, and so does the scan.
#[test]
fn frame_for_page_zero_ends_the_wal_where_sqlite_stops() {
    let h = history(1024, 12);
    let copy = copy_set(&h.live_path, &h.dir, "page0.db");
    std::fs::remove_file(side(&copy, "-shm")).ok();
    let wal = side(&copy, "-wal");
    let idx = WalIndex::scan(&wal).unwrap().unwrap();
    let c = idx.commits[6];
    rewrite_frame(&wal, c.first_frame, 0, 0);
    let db = Database::open(&copy).unwrap();
    assert_eq!(db.commit_count(), 6);
    let w = db.wal().unwrap();
    let f = &w.frames[c.first_frame as usize - 1];
    assert_eq!(f.status, FrameStatus::BadPageNumber);
    assert!(f.checksum_ok);
    assert!(
        w.frames[c.first_frame as usize..]
            .iter()
            .all(|f| f.status == FrameStatus::AfterBreak)
    );
    assert_same_state(&our_state(&db.latest().unwrap()), &h.states[6], "page 0");
    assert_same_state(&sqlite_view(&copy), &h.states[6], "sqlite on page 0");
}

#[test]
fn restarted_wal_with_stale_frames() {
    let h = history(1024, 25);
    h.live
        .query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
        .unwrap();
    let after_ckpt = sqlite_state(&h.live);
    for i in 0..3 {
        h.live
            .execute(
                "INSERT INTO kv VALUES(?1, ?2)",
                params![format!("restart{i}"), i],
            )
            .unwrap();
    }
    let final_state = sqlite_state(&h.live);
    let copy = copy_set(&h.live_path, &h.dir, "restart.db");
    let db = Database::open(&copy).unwrap();
    assert_eq!(db.commit_count(), 3);
    let w = db.wal().unwrap();
    assert!(
        w.count(FrameStatus::BadSalt) == 1,
        "one stale frame ends the log"
    );
    assert!(
        w.frames.len() > 10,
        "stale frames remain after the new ones"
    );
    assert_same_state(
        &our_state(&db.latest().unwrap()),
        &final_state,
        "restart latest",
    );
    assert_same_state(
        &our_state(&db.snapshot(Some(0)).unwrap()),
        &after_ckpt,
        "restart commit 0",
    );
    assert_same_state(&sqlite_view(&copy), &final_state, "sqlite on restart");
}

#[test]
fn wal_of_another_database_is_refused() {
    let h = history(1024, 3);
    let other = h.dir.join("other.db");
    let c = wal_conn(&other, 4096);
    c.execute_batch("CREATE TABLE x(y); INSERT INTO x VALUES(1);")
        .unwrap();
    let copy = copy_set(&h.live_path, &h.dir, "mixed.db");
    // A WAL with another page size.
    std::fs::copy(side(&other, "-wal"), side(&copy, "-wal")).unwrap();
    assert!(matches!(Database::open(&copy), Err(Error::BadWal { .. })));
    // With --no-wal the file alone still reads.
    let db = Database::open_with(&copy, WalChoice::Ignore).unwrap();
    assert_same_state(&our_state(&db.latest().unwrap()), &h.states[0], "no wal");
    // A WAL whose page 1 has another text encoding.
    let o16 = h.dir.join("o16.db");
    let c16 = wal_conn(&o16, 1024);
    c16.execute_batch("PRAGMA encoding='UTF-16le'; CREATE TABLE x(y); INSERT INTO x VALUES('a');")
        .unwrap();
    std::fs::copy(side(&o16, "-wal"), side(&copy, "-wal")).unwrap();
    assert!(matches!(Database::open(&copy), Err(Error::BadWal { .. })));
}

/// The -shm is read for one thing: how far a checkpoint went. Whatever its
/// bytes (bits flipped in one or both copies of the index header, cut
/// short, extreme counts, a directory in its place), the database opens,
/// the latest commit reads as SQLite's, and only a well-formed index of
/// this WAL can call an earlier commit exact or inexact.
#[test]
fn any_shm_bytes_change_only_exactness() {
    let h = history(1024, 8);
    h.live
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        .unwrap();
    let copy = copy_set(&h.live_path, &h.dir, "shm.db");
    let shm_path = side(&copy, "-shm");
    let good = std::fs::read(&shm_path).unwrap();
    let db = Database::open(&copy).unwrap();
    let base = *db.shm().expect("shm read");
    let n = db.commit_count();
    assert_eq!(n, 8);
    let last_frames: Vec<u32> = std::iter::once(0)
        .chain(db.wal().unwrap().commits.iter().map(|c| c.last_frame))
        .collect();
    drop(db);
    let u32_at = |b: &[u8], o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().unwrap());
    let check = |bytes: Option<&[u8]>, what: &str| -> Option<sqlite_salvage::wal::ShmInfo> {
        let _ = std::fs::remove_file(&shm_path);
        let _ = std::fs::remove_dir(&shm_path);
        match bytes {
            Some(b) => std::fs::write(&shm_path, b).unwrap(),
            None => std::fs::create_dir(&shm_path).unwrap(),
        }
        let db = Database::open(&copy).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(db.commit_count(), n, "{what}");
        let shm = db.shm().copied();
        for k in 0..=n {
            let snap = db.snapshot(Some(k)).unwrap();
            let want = match shm {
                _ if k == n => Exactness::Exact,
                Some(s) if s.salts_match && s.backfilled > last_frames[k as usize] => {
                    Exactness::Inexact {
                        backfilled: s.backfilled,
                    }
                }
                Some(s) if s.salts_match => Exactness::Exact,
                _ => Exactness::Unknown,
            };
            assert_eq!(snap.exactness(), want, "{what}: commit {k}");
            if k == n {
                assert_same_state(&our_state(&snap), &h.states[k as usize], what);
            }
        }
        let snap = db.latest().unwrap();
        let _ = sqlite_salvage::info::info(&db, &snap);
        shm
    };
    // Unchanged, it says the whole WAL was copied back.
    assert_eq!(check(Some(&good), "unchanged"), Some(base));
    assert!(base.salts_match);
    assert_eq!(base.backfilled, *last_frames.last().unwrap());
    let mut cases = 0;
    for off in 0..136 {
        for bit in 0..8 {
            // One copy of the index header changed: caught mid-update, unread.
            let mut b = good.clone();
            b[off] ^= 1 << bit;
            let what = format!("byte {off} bit {bit}");
            let got = check(Some(&b), &what);
            match off {
                0..96 => assert_eq!(got, None, "{what}"),
                96..100 => assert_eq!(
                    got,
                    Some(sqlite_salvage::wal::ShmInfo {
                        backfilled: u32_at(&b, 96),
                        ..base
                    }),
                    "{what}"
                ),
                _ => assert_eq!(got, Some(base), "{what}"),
            }
            // Both copies changed alike: read as what they now say.
            if off < 48 {
                b[off + 48] ^= 1 << bit;
                let what = format!("both copies, byte {off} bit {bit}");
                let got = check(Some(&b), &what);
                match off {
                    0..4 => assert_eq!(got, None, "{what}"),
                    12 if b[12] == 0 => assert_eq!(got, None, "{what}"),
                    16..20 => assert_eq!(got.map(|s| s.max_frame), Some(u32_at(&b, 16))),
                    32..40 => assert!(!got.unwrap().salts_match, "{what}"),
                    _ => assert_eq!(got, Some(base), "{what}"),
                }
                cases += 1;
            }
            cases += 1;
        }
    }
    for len in [0, 1, 47, 48, 95, 96, 99, 100, 135] {
        assert_eq!(check(Some(&good[..len]), &format!("cut to {len}")), None);
        cases += 1;
    }
    assert_eq!(check(Some(&good[..136]), "cut to 136"), Some(base));
    assert_eq!(check(None, "a directory"), None);
    for (backfilled, max_frame) in [(u32::MAX, u32::MAX), (0, 0), (1, u32::MAX)] {
        let mut b = good.clone();
        b[96..100].copy_from_slice(&backfilled.to_ne_bytes());
        for copy in [16, 16 + 48] {
            b[copy..copy + 4].copy_from_slice(&max_frame.to_ne_bytes());
        }
        let got = check(
            Some(&b),
            &format!("backfilled {backfilled}, max frame {max_frame}"),
        );
        assert_eq!(
            got,
            Some(sqlite_salvage::wal::ShmInfo {
                backfilled,
                max_frame,
                ..base
            })
        );
        cases += 1;
    }
    assert!(cases > 1400, "{cases}");
}
