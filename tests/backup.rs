//! Backups of a live WAL database under concurrent writers and
//! checkpoints; verification; kills at random points; restore.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::Connection;
use sqlite_salvage::backup::{BackupOptions, Mode, backup, restore, verify};

use crate::common::*;

fn live_db(dir: &Path) -> PathBuf {
    let p = dir.join("live.db");
    let c = Connection::open(&p).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=20;
         CREATE TABLE log(seq INTEGER PRIMARY KEY, note TEXT, pad BLOB);
         CREATE TABLE total(id INTEGER PRIMARY KEY, v INTEGER);
         INSERT INTO total VALUES(1, 0);",
    )
    .unwrap();
    p
}

/// Checks that a database holds exactly one committed state: sequence
/// numbers 1..n without a gap and the running total equal to their sum.
fn assert_consistent(db: &Path, what: &str) -> i64 {
    let tmp = tempfile::tempdir().unwrap();
    let copy = copy_set(db, tmp.path(), "check.db");
    let c = Connection::open(&copy).unwrap();
    let ic = integrity(&c);
    assert_eq!(ic, "ok", "{what}");
    let (n, max, sum): (i64, Option<i64>, Option<i64>) = c
        .query_row("SELECT count(*), max(seq), sum(seq) FROM log", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    let total: i64 = c
        .query_row("SELECT v FROM total", [], |r| r.get(0))
        .unwrap();
    assert_eq!(max.unwrap_or(0), n, "{what}: gap in the sequence");
    assert_eq!(sum.unwrap_or(0), total, "{what}: total does not match");
    assert_eq!(n * (n + 1) / 2, total, "{what}");
    n
}

#[test]
fn backups_under_writers_and_checkpoints_are_consistent() {
    let tmp = tempfile::tempdir().unwrap();
    let src = live_db(tmp.path());
    // 4 MB the copies take a while over, so checkpoints meet them.
    Connection::open(&src)
        .unwrap()
        .execute_batch(
            "CREATE TABLE filler(b BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 1000)
             INSERT INTO filler SELECT randomblob(4000) FROM n;",
        )
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    {
        let (stop, commits, src) = (stop.clone(), commits.clone(), src.clone());
        threads.push(std::thread::spawn(move || {
            let c = Connection::open(&src).unwrap();
            c.busy_timeout(Duration::from_secs(10)).unwrap();
            let mut seq: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let pad = vec![seq as u8; (seq % 700) as usize];
                c.execute_batch("BEGIN IMMEDIATE").unwrap();
                c.execute(
                    "INSERT INTO log VALUES(?1, ?2, ?3)",
                    rusqlite::params![seq, format!("entry {seq}"), pad],
                )
                .unwrap();
                c.execute("UPDATE total SET v = v + ?1", [seq]).unwrap();
                c.execute_batch("COMMIT").unwrap();
                commits.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_micros(200));
            }
        }));
    }
    {
        let (stop, src) = (stop.clone(), src.clone());
        threads.push(std::thread::spawn(move || {
            let c = Connection::open(&src).unwrap();
            c.busy_timeout(Duration::from_millis(200)).unwrap();
            let modes = ["PASSIVE", "FULL", "RESTART", "TRUNCATE"];
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let _ = c.query_row(
                    &format!("PRAGMA wal_checkpoint({})", modes[i % 4]),
                    [],
                    |_| Ok(()),
                );
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        }));
    }
    while commits.load(Ordering::Relaxed) < 50 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut seen = Vec::new();
    for i in 0..200 {
        let mode = if i % 2 == 0 {
            Mode::Compact
        } else {
            Mode::Files
        };
        let dest = tmp.path().join(match mode {
            Mode::Compact => format!("b{i}.db"),
            Mode::Files => format!("b{i}"),
        });
        let done_before = commits.load(Ordering::SeqCst) as i64;
        // Each kind, in this process or another, at full speed or yielding
        // to the writer (the default).
        let how = (i / 2) % 4;
        if how < 2 {
            let opts = BackupOptions {
                full_speed: how == 0,
                ..unsynced(mode)
            };
            let m = backup(&src, &dest, &opts).unwrap_or_else(|e| panic!("backup {i}: {e}"));
            assert_eq!(m.mode, mode);
        } else {
            // From another process, where SQLite's locks are POSIX locks
            // only: the writer and the checkpoints here must not get past
            // the backup's snapshot while it copies.
            let mut cmd = std::process::Command::new(bin());
            cmd.arg("backup").arg("--no-sync").arg(&src).arg(&dest);
            if mode == Mode::Files {
                cmd.arg("--files");
            }
            if how == 2 {
                cmd.arg("--full-speed");
            }
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "backup {i}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let done_after = commits.load(Ordering::SeqCst) as i64;
        let v = verify(&dest).unwrap_or_else(|e| panic!("verify {i}: {e}"));
        let n = assert_consistent(&v.database, &format!("backup {i} ({mode:?})"));
        // The newest state when the backup started: every commit that had
        // returned by then, and none past the one (at most) that was
        // published but not yet returned when it ended.
        assert!(
            done_before <= n && n <= done_after + 1,
            "backup {i} ({mode:?}) holds {n} commits; {done_before} had returned before it, {done_after} after"
        );
        seen.push(n);
        if mode == Mode::Files {
            assert!(!dest.join("live.db-shm").exists());
        } else {
            assert!(
                !side(&dest, "-wal").exists(),
                "a compact backup needs no WAL"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "backups go forward in time: {seen:?}"
    );
    assert!(
        seen.last().unwrap() > seen.first().unwrap(),
        "writers kept writing: {seen:?}"
    );
}

/// Options for a backup of `mode` that skips fsync (tests need no
/// durability).
fn unsynced(mode: Mode) -> BackupOptions {
    BackupOptions {
        mode,
        no_sync: true,
        ..Default::default()
    }
}

/// One transaction of the test's writer: the next sequence number and the
/// running total, together.
fn commit_next(c: &Connection, seq: i64) {
    c.execute_batch("BEGIN IMMEDIATE").unwrap();
    c.execute("INSERT INTO log VALUES(?1, 'x', NULL)", [seq])
        .unwrap();
    c.execute("UPDATE total SET v = v + ?1", [seq]).unwrap();
    c.execute_batch("COMMIT").unwrap();
}

/// A writer's commit frame can be in the WAL file while it still syncs,
/// before SQLite publishes the commit in the WAL index: readers do not see
/// it yet, and a file-set backup must not hold it either (a compact backup
/// taken just after would be older).
#[test]
fn a_commit_not_yet_published_stays_out_of_a_file_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let src = live_db(tmp.path());
    let live = Connection::open(&src).unwrap();
    live.execute_batch("PRAGMA wal_autocheckpoint=0").unwrap();
    for seq in 1..=10 {
        commit_next(&live, seq);
    }
    let published = std::fs::read(side(&src, "-wal")).unwrap();
    // The same WAL with one more commit frame on it, made on a copy.
    let other = tempfile::tempdir().unwrap();
    let ahead = copy_set(&src, other.path(), "ahead.db");
    std::fs::remove_file(side(&ahead, "-shm")).unwrap();
    let writer = Connection::open(&ahead).unwrap();
    writer.execute_batch("PRAGMA wal_autocheckpoint=0").unwrap();
    commit_next(&writer, 11);
    let written = std::fs::read(side(&ahead, "-wal")).unwrap();
    drop(writer);
    assert!(written.len() > published.len());
    assert_eq!(
        written[..published.len()],
        published[..],
        "same WAL, longer"
    );
    std::fs::write(side(&src, "-wal"), &written).unwrap();
    // The WAL file holds commit 11; readers of the live database see 10.
    let idx = sqlite_salvage::wal::WalIndex::scan(&side(&src, "-wal"))
        .unwrap()
        .unwrap();
    let reader = Connection::open(&src).unwrap();
    let visible: i64 = reader
        .query_row("SELECT count(*) FROM log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(visible, 10);
    let commits_in_file = idx.commits.len();
    for (mode, name) in [(Mode::Files, "files"), (Mode::Compact, "compact.db")] {
        let dest = tmp.path().join(name);
        let m = backup(&src, &dest, &unsynced(mode)).unwrap();
        let v = verify(&dest).unwrap();
        assert_eq!(assert_consistent(&v.database, name), 10, "{mode:?}");
        if mode == Mode::Files {
            let w = m.wal.expect("the WAL is part of the backup");
            assert_eq!(w.commits as usize, commits_in_file - 1);
        }
    }
    // Published, it is in the next backup.
    drop(reader);
    drop(live);
    let dest = tmp.path().join("after");
    let live = Connection::open(&src).unwrap();
    commit_next(&live, 11);
    backup(&src, &dest, &unsynced(Mode::Files)).unwrap();
    assert_eq!(
        assert_consistent(&verify(&dest).unwrap().database, "after"),
        11
    );
}

#[test]
fn a_killed_backup_is_never_taken_for_a_whole_one() {
    let tmp = tempfile::tempdir().unwrap();
    let src = live_db(tmp.path());
    let c = Connection::open(&src).unwrap();
    c.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 20000)
         INSERT INTO log SELECT i, 'row ' || i, randomblob(500) FROM n;
         UPDATE total SET v = (SELECT sum(seq) FROM log);",
    )
    .unwrap();
    let mut rng = Rng(7);
    let mut whole = 0;
    for i in 0..24 {
        let files = i % 2 == 1;
        let dest = tmp
            .path()
            .join(format!("k{i}{}", if files { "" } else { ".db" }));
        let mut cmd = std::process::Command::new(bin());
        cmd.arg("backup").arg(&src).arg(&dest);
        if files {
            cmd.arg("--files");
        }
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(60_000)));
        let _ = child.kill();
        let _ = child.wait();
        match verify(&dest) {
            Ok(v) => {
                whole += 1;
                assert_consistent(&v.database, &format!("kill {i}"));
            }
            Err(_) => {
                // Nothing that verifies was left; whatever is there is
                // recognizably not a whole backup.
            }
        }
    }
    assert!(whole < 24, "some backups were cut short");
}

#[test]
fn restore_round_trips_and_moves_stale_files_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let src = live_db(tmp.path());
    let c = Connection::open(&src).unwrap();
    for seq in 1..=100i64 {
        commit_next(&c, seq);
    }
    let want = sqlite_state(&c);
    for mode in [Mode::Compact, Mode::Files] {
        let dest = tmp.path().join(format!("{mode:?}"));
        backup(
            &src,
            &dest,
            &BackupOptions {
                mode,
                ..Default::default()
            },
        )
        .unwrap();
        // A target with a stale WAL of an older database beside it.
        let target = tmp.path().join(format!("target-{mode:?}.db"));
        let old = Connection::open(&target).unwrap();
        old.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE log(seq); INSERT INTO log VALUES(-1);",
        )
        .unwrap();
        // In use: refused.
        let err = restore(&dest, &target, false, true).unwrap_err();
        assert!(matches!(err, sqlite_salvage::Error::InUse(_)), "{err}");
        let stale_wal = std::fs::read(side(&target, "-wal")).unwrap();
        std::mem::forget(old); // the crashed application: files left as they are
        let stale = tmp.path().join(format!("stale-{mode:?}.db"));
        std::fs::copy(&target, &stale).unwrap();
        drop(stale);
        // Reopen scenario: nobody has it open any more (a new process).
        let target2 = tmp.path().join(format!("target2-{mode:?}.db"));
        std::fs::copy(&target, &target2).unwrap();
        std::fs::write(side(&target2, "-wal"), &stale_wal).unwrap();
        let r = restore(&dest, &target2, false, true).unwrap();
        assert_eq!(r.moved_aside.len(), 1, "{:?}", r.moved_aside);
        assert!(!side(&target2, "-wal").exists());
        let got = sqlite_state(&Connection::open(&target2).unwrap());
        assert_same_state(&got, &want, "restored");
    }
}

#[test]
fn backup_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let src = live_db(tmp.path());
    let p = |x: &Path| x.to_str().unwrap().to_string();
    let missing = tmp.path().join("missing.db");
    let text = tmp.path().join("text.db");
    std::fs::write(&text, vec![b'x'; 4096]).unwrap();
    let dest = tmp.path().join("b.db");
    for (args, want) in [
        (vec!["backup".to_string(), p(&missing), p(&dest)], 3),
        (vec!["backup".into(), p(&text), p(&dest)], 4),
        (vec!["backup".into(), p(tmp.path()), p(&dest)], 3),
        (vec!["verify".into(), p(&dest)], 3),
    ] {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = run(&a);
        assert_eq!(code, want, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // The source itself, a symlink to it or an existing directory is
    // refused as the destination.
    let link = tmp.path().join("link.db");
    std::os::unix::fs::symlink(&src, &link).unwrap();
    let dir = tmp.path().join("a-dir");
    std::fs::create_dir(&dir).unwrap();
    for bad in [&src, &link, &dir] {
        let (code, _, err) = run(&["backup", &p(&src), &p(bad)]);
        assert_eq!(code, 6, "{}: {err}", bad.display());
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    for bad in [&src, &link] {
        let (code, _, err) = run(&["backup", &p(&src), &p(bad), "--force"]);
        assert_eq!(code, 6, "{}: {err}", bad.display());
    }
    // A backup with one byte altered does not verify.
    let (code, _, err) = run(&["backup", &p(&src), &p(&dest)]);
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = run(&["backup", &p(&src), &p(&dest)]);
    assert_eq!(code, 6, "refuses to overwrite");
    assert_eq!(run(&["verify", &p(&dest)]).0, 0);
    let mut b = std::fs::read(&dest).unwrap();
    b[5000] ^= 1;
    std::fs::write(&dest, &b).unwrap();
    let (code, _, err) = run(&["verify", &p(&dest)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("CRC-32"), "{err}");
    // A hot rollback journal beside a source: refused, source untouched.
    let rb = tmp.path().join("rb.db");
    let c = Connection::open(&rb).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=DELETE; PRAGMA cache_size=2; CREATE TABLE t(x);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000)
         INSERT INTO t SELECT randomblob(100) FROM n;
         BEGIN; UPDATE t SET x = randomblob(100);",
    )
    .unwrap();
    let crashed = tmp.path().join("crashed");
    std::fs::create_dir(&crashed).unwrap();
    let cdb = crashed.join("rb.db");
    std::fs::copy(&rb, &cdb).unwrap();
    std::fs::copy(side(&rb, "-journal"), side(&cdb, "-journal")).unwrap();
    let before = dir_hashes(&crashed);
    let (code, _, err) = run(&["backup", &p(&cdb), &p(&tmp.path().join("rb-backup.db"))]);
    assert_eq!(code, 8, "{err}");
    assert_eq!(dir_hashes(&crashed), before);
}

/// An application holding a WAL database in exclusive locking mode keeps
/// the WAL index in its own memory: there is no `-shm`, as for a closed
/// database, but its lock is there, and it may checkpoint under a copy.
#[test]
fn a_database_held_in_exclusive_locking_mode_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = live_db(tmp.path());
    {
        let c = Connection::open(&src).unwrap();
        for seq in 1..=5i64 {
            commit_next(&c, seq);
        }
    }
    let app = Connection::open(&src).unwrap();
    app.execute_batch("PRAGMA locking_mode=EXCLUSIVE; PRAGMA wal_autocheckpoint=0;")
        .unwrap();
    commit_next(&app, 6);
    assert!(side(&src, "-wal").exists(), "the commit is in the WAL");
    assert!(!side(&src, "-shm").exists(), "no -shm in exclusive mode");
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for mode in [Mode::Compact, Mode::Files] {
        let dest = out.join(format!("{mode:?}"));
        let e = backup(&src, &dest, &unsynced(mode)).unwrap_err();
        assert!(
            matches!(e, sqlite_salvage::Error::HeldExclusively(_)),
            "{mode:?}: {e}"
        );
        assert!(!dest.exists(), "{mode:?}: nothing left at DEST");
    }
    let dest = out.join("cli.db");
    let (code, _, err) = run(&["backup", src.to_str().unwrap(), dest.to_str().unwrap()]);
    assert_eq!(code, 9, "{err}");
    assert!(err.contains("exclusive locking mode"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // Once the application is gone, the same database backs up.
    drop(app);
    for mode in [Mode::Compact, Mode::Files] {
        let dest = out.join(format!("after-{mode:?}"));
        backup(&src, &dest, &unsynced(mode)).unwrap();
        let v = verify(&dest).unwrap();
        assert_eq!(assert_consistent(&v.database, "after"), 6, "{mode:?}");
    }
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with(".salvage")),
        "no temporary left: {names:?}"
    );
}

#[test]
fn a_closed_database_gets_nothing_written_beside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let src = live_db(tmp.path());
    let c = Connection::open(&src).unwrap();
    c.execute_batch("PRAGMA wal_autocheckpoint=0;").unwrap();
    for seq in 1..=50i64 {
        commit_next(&c, seq);
    }
    // The files as a stopped application left them: db and WAL, no -shm.
    let dir = tmp.path().join("closed");
    std::fs::create_dir(&dir).unwrap();
    let db = dir.join("app.db");
    std::fs::copy(&src, &db).unwrap();
    std::fs::copy(side(&src, "-wal"), side(&db, "-wal")).unwrap();
    let before = dir_hashes(&dir);
    for mode in [Mode::Compact, Mode::Files] {
        let dest = tmp.path().join(format!("closed-{mode:?}"));
        backup(
            &db,
            &dest,
            &BackupOptions {
                mode,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            dir_hashes(&dir),
            before,
            "{mode:?}: nothing written beside the source"
        );
        let v = verify(&dest).unwrap();
        assert_eq!(assert_consistent(&v.database, "closed"), 50);
    }
}

/// A backup's manifest is input too: it may name only the backup's own
/// files, it is read only as far as a manifest can be long, and nothing
/// written beside the backup since it was taken is verified or restored.
#[test]
fn hostile_manifests_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = live_db(tmp.path());
    let c = Connection::open(&src).unwrap();
    for seq in 1..=50 {
        commit_next(&c, seq);
    }
    // A database outside the backup, with sizes and CRCs that match.
    let outside = tmp.path().join("outside.db");
    Connection::open(&outside)
        .unwrap()
        .execute_batch("CREATE TABLE other(x); INSERT INTO other VALUES('not the backup');")
        .unwrap();
    let set = tmp.path().join("set");
    backup(&src, &set, &unsynced(Mode::Files)).unwrap();
    let one = tmp.path().join("one.db");
    backup(&src, &one, &unsynced(Mode::Compact)).unwrap();
    verify(&set).unwrap();
    verify(&one).unwrap();
    let entry = |p: &Path, name: &str| {
        let b = std::fs::read(p).unwrap();
        serde_json::json!({"name": name, "size": b.len(), "crc32": crc32fast::hash(&b)})
    };
    std::fs::copy(&outside, set.join("outside.db")).unwrap();
    let mpath = set.join("manifest.json");
    let good = std::fs::read_to_string(&mpath).unwrap();
    let v: serde_json::Value = serde_json::from_str(&good).unwrap();
    let db = v["files"][0].clone();
    let name = db["name"].as_str().unwrap().to_string();
    let wal = v["files"][1].clone();
    assert_eq!(wal["name"], format!("{name}-wal"), "the set has a WAL");
    let abs = outside.to_str().unwrap().to_string();
    let cases = [
        (vec![entry(&outside, "../outside.db")], "not a file name"),
        (vec![entry(&outside, &abs)], "not a file name"),
        (
            vec![entry(&outside, "set/../../outside.db")],
            "not a file name",
        ),
        (vec![entry(&outside, "")], "not a file name"),
        (vec![entry(&outside, ".")], "not a file name"),
        (vec![entry(&outside, "..")], "not a file name"),
        (
            vec![db.clone(), entry(&outside, "outside.db")],
            "not its -wal",
        ),
        (vec![db.clone(), wal.clone(), wal.clone()], "at most 2"),
        (vec![], "lists no files"),
    ];
    for (files, want) in cases {
        let mut m = v.clone();
        m["files"] = serde_json::Value::Array(files.clone());
        std::fs::write(&mpath, m.to_string()).unwrap();
        let err = verify(&set).unwrap_err();
        assert!(
            matches!(err, sqlite_salvage::Error::BadBackup { .. })
                && err.to_string().contains(want),
            "{files:?}: {err}"
        );
        let target = tmp.path().join("restored.db");
        assert!(restore(&set, &target, false, true).is_err());
        assert!(!target.exists());
    }
    // Too long to be a manifest: refused without reading it all.
    let mut long = good.clone();
    long.push_str(&" ".repeat(2 << 20));
    std::fs::write(&mpath, &long).unwrap();
    let err = verify(&set).unwrap_err();
    assert!(err.to_string().contains("not a manifest"), "{err}");
    // A FIFO in its place: refused, not waited on.
    std::fs::remove_file(&mpath).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&mpath)
        .status()
        .unwrap();
    assert!(status.success());
    let (tx, rx) = std::sync::mpsc::channel();
    let s2 = set.clone();
    std::thread::spawn(move || tx.send(verify(&s2).map(|_| ()).map_err(|e| e.to_string())));
    let got = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("verify waited on a FIFO");
    assert!(got.unwrap_err().contains("not a regular file"));
    std::fs::remove_file(&mpath).unwrap();
    std::fs::write(&mpath, &good).unwrap();
    verify(&set).unwrap();
    // A WAL or journal written beside a compact backup since: refused, and
    // gone, the backup verifies again.
    for suffix in ["-wal", "-journal"] {
        let stray = side(&one, suffix);
        std::fs::write(&stray, vec![7u8; 4096]).unwrap();
        let err = verify(&one).unwrap_err();
        assert!(err.to_string().contains("not in its manifest"), "{err}");
        std::fs::remove_file(&stray).unwrap();
        verify(&one).unwrap();
    }
}
