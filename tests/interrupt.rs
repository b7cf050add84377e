//! Every writing command stopped by SIGINT, SIGTERM or SIGHUP at several
//! points leaves nothing but its inputs (exit code 128 + the signal), or,
//! if it finished first, its whole output; `restore` leaves the old target
//! intact or the new one whole.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

use crate::common::*;

/// Name -> hash of every file under `dir` (directories by their files).
fn tree(dir: &Path) -> BTreeMap<String, u64> {
    let mut all = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = p.strip_prefix(dir).unwrap().display().to_string();
            if p.is_dir() {
                all.insert(format!("{name}/"), 0);
                todo.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                let mut h: u64 = 0xcbf29ce484222325;
                for b in bytes {
                    h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
                }
                all.insert(name, h);
            }
        }
    }
    all
}

/// A WAL-mode store of about `mb` MB with commits in its WAL.
fn store(path: &Path, mb: usize, salt: u8) {
    let c = wal_conn(path, 4096);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, body BLOB); CREATE INDEX t_name ON t(name);")
        .unwrap();
    let rows = mb * 1024 / 2;
    for chunk in 0..4 {
        c.execute_batch("BEGIN").unwrap();
        for i in chunk * rows / 4..(chunk + 1) * rows / 4 {
            let body: Vec<u8> = (0..2000).map(|k| (k + i) as u8 ^ salt).collect();
            c.execute(
                "INSERT INTO t(name, body) VALUES(?1, ?2)",
                params![format!("row {i}"), body],
            )
            .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
        if chunk == 1 {
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .unwrap();
        }
    }
    // Leave the WAL as a crashed writer would: copy the files while open.
    let dir = path.parent().unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    for s in ["", "-wal"] {
        std::fs::copy(side(path, s), dir.join(format!("{name}.copy{s}"))).unwrap();
    }
    drop(c);
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(side(path, s));
    }
    for s in ["", "-wal"] {
        std::fs::rename(dir.join(format!("{name}.copy{s}")), side(path, s)).unwrap();
    }
}

/// Where in its run a command is stopped.
#[derive(Clone, Copy, Debug)]
enum Point {
    /// As soon as it is started.
    AtOnce,
    /// Once its temporary output appears.
    TempAppears,
    /// Once its temporary output holds `n` bytes.
    TempHolds(u64),
    /// After a fixed time.
    After(u64),
}

/// A hidden temporary name of ours in `dir`, and its size (the biggest
/// file in it when it is a directory).
fn temp_size(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with('.') && name.contains(".salvage-")) {
            return None;
        }
        let p = e.path();
        if p.is_dir() {
            let sizes = std::fs::read_dir(&p).ok()?.flatten();
            Some(
                sizes
                    .filter_map(|f| f.metadata().ok())
                    .map(|m| m.len())
                    .max()
                    .unwrap_or(0),
            )
        } else {
            e.metadata().ok().map(|m| m.len())
        }
    })
}

/// Waits for `point`; false when the child ended first.
fn wait_for(child: &mut Child, dir: &Path, point: Point) -> bool {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let reached = match point {
            Point::AtOnce => true,
            Point::TempAppears => temp_size(dir).is_some(),
            Point::TempHolds(n) => temp_size(dir).is_some_and(|s| s >= n),
            Point::After(ms) => start.elapsed() >= Duration::from_millis(ms),
        };
        if reached {
            return true;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{point:?} never came"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Runs the CLI with `args` in `dir`, sends it `sig` at `point` (unless
/// it ended first) and waits for it.
fn spawn_and_stop(dir: &Path, args: &[String], sig: &str, point: Point) -> ExitStatus {
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    if wait_for(&mut child, dir, point) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{sig}");
    }
    child.wait().unwrap()
}

/// One command: its arguments (relative to the work directory) and how a
/// finished output is judged whole.
struct Job {
    name: &'static str,
    args: Vec<String>,
    whole: fn(&Path) -> bool,
}

fn db_whole(p: &Path) -> bool {
    let Ok(c) = Connection::open_with_flags(p, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return false;
    };
    c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .is_ok_and(|s| s == "ok")
}

fn backup_whole(p: &Path) -> bool {
    Command::new(bin())
        .arg("verify")
        .arg(p)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `job` in `dir` and stops it with `sig` at `point`; checks what is
/// left against `before` (the inputs) and `out`. True when it was stopped.
fn stop_once(dir: &Path, job: &Job, sig: &str, point: Point, out: &Path) -> bool {
    let before = tree(dir);
    let what = format!("{} stopped by SIG{sig} at {point:?}", job.name);
    let status = spawn_and_stop(dir, &job.args, sig, point);
    let code = status.code();
    let expected = 128
        + match sig {
            "HUP" => 1,
            "INT" => 2,
            _ => 15,
        };
    let after = tree(dir);
    if code == Some(0) {
        assert!(
            (job.whole)(out),
            "{what}: finished, but the output is not whole"
        );
        return false;
    }
    assert!(
        code == Some(expected) || status.signal() == Some(expected - 128),
        "{what}: exit {status:?}"
    );
    let rel = out.strip_prefix(dir).unwrap().display().to_string();
    let left: Vec<_> = after
        .keys()
        .filter(|k| !before.contains_key(*k) && !k.starts_with(&rel))
        .collect();
    assert!(left.is_empty(), "{what}: left behind {left:?}");
    for (k, h) in &before {
        if !k.starts_with(&rel) {
            assert_eq!(after.get(k), Some(h), "{what}: input {k} changed");
        }
    }
    // An output that existed before is untouched, a new one absent;
    // unless the stop came as it was being renamed into place: it waited
    // for the rename, and the output is whole.
    let out_before: Vec<_> = before.iter().filter(|(k, _)| k.starts_with(&rel)).collect();
    let out_after: Vec<_> = after.iter().filter(|(k, _)| k.starts_with(&rel)).collect();
    if out_before != out_after {
        assert!(
            (job.whole)(out),
            "{what}: the output changed and is not whole"
        );
    }
    true
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn a_stopped_command_leaves_only_its_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("in.db");
    store(&db, 24, 0);
    let size = std::fs::metadata(&db).unwrap().len();
    let points = [
        Point::AtOnce,
        Point::TempAppears,
        Point::TempHolds(size / 3),
        Point::After(40),
    ];
    let out = dir.join("out.db");
    let bk = dir.join("bk-files");
    let jobs = [
        Job {
            name: "recover",
            args: vec![
                "recover".into(),
                "--force".into(),
                "-o".into(),
                s(&out),
                s(&db),
            ],
            whole: db_whole,
        },
        Job {
            name: "replay",
            args: vec![
                "replay".into(),
                "--force".into(),
                "-o".into(),
                s(&out),
                s(&db),
            ],
            whole: db_whole,
        },
        Job {
            name: "backup",
            args: vec!["backup".into(), "--force".into(), s(&db), s(&out)],
            whole: backup_whole,
        },
        Job {
            name: "backup --files",
            args: vec![
                "backup".into(),
                "--files".into(),
                "--force".into(),
                s(&db),
                s(&bk),
            ],
            whole: backup_whole,
        },
    ];
    for job in &jobs {
        let target = if job.name.contains("--files") {
            &bk
        } else {
            &out
        };
        let mut stopped = 0;
        for (i, point) in points.iter().enumerate() {
            for sig in ["INT", "TERM"] {
                stopped += usize::from(stop_once(dir, job, sig, *point, target));
            }
            if i == 1 {
                stopped += usize::from(stop_once(dir, job, "HUP", *point, target));
            }
        }
        assert!(stopped >= 4, "{}: stopped only {stopped} times", job.name);
        // Stopped with an old output in place: it stays as it was.
        let _ = std::fs::remove_file(target);
    }
}

#[test]
fn a_stopped_restore_leaves_the_old_target_or_the_new_one_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("in.db");
    store(&db, 16, 0);
    let bk = dir.join("bk.db");
    let (code, _, err) = run(&["backup", &s(&db), &s(&bk)]);
    assert_eq!(code, 0, "{err}");
    let rows_in = |p: &Path| -> Option<i64> {
        let c = Connection::open_with_flags(p, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
        c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).ok()
    };
    let new_rows = rows_in(&bk).unwrap();
    let target = dir.join("target.db");
    let points = [
        Point::AtOnce,
        Point::TempAppears,
        Point::TempHolds(1 << 20),
        Point::After(30),
    ];
    let mut stopped = 0;
    for point in points {
        for sig in ["INT", "TERM"] {
            // The old target: a smaller store with its own WAL.
            for s in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(side(&target, s));
            }
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                if e.file_name().to_string_lossy().contains(".replaced-") {
                    std::fs::remove_file(e.path()).unwrap();
                }
            }
            store(&target, 4, 7);
            let old = (file_hash(&target), file_hash(&side(&target, "-wal")));
            let old_rows = rows_in(&target).unwrap();
            assert_ne!(old_rows, new_rows);
            let job = Job {
                name: "restore",
                args: vec!["restore".into(), s(&bk), s(&target)],
                whole: |_| true,
            };
            let before = tree(dir);
            let code = spawn_and_stop(dir, &job.args, sig, point).code();
            let after = tree(dir);
            let what = format!("restore stopped by SIG{sig} at {point:?}: exit {code:?}");
            if code == Some(0) {
                assert_eq!(rows_in(&target), Some(new_rows), "{what}");
                assert!(db_whole(&target), "{what}");
                assert!(
                    !side(&target, "-wal").exists(),
                    "{what}: old WAL beside the new database"
                );
                continue;
            }
            stopped += 1;
            assert!(matches!(code, Some(130 | 143) | None), "{what}");
            if !side(&target, "-wal").exists() && rows_in(&target) == Some(new_rows) {
                // The stop came as the rename was done: the new database,
                // whole, with no old WAL beside it (that one is kept aside,
                // as after a restore that ran to the end).
                assert!(db_whole(&target), "{what}");
                continue;
            }
            assert_eq!(
                (file_hash(&target), file_hash(&side(&target, "-wal"))),
                old,
                "{what}: the old target changed"
            );
            assert_eq!(rows_in(&target), Some(old_rows), "{what}");
            let left: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
            assert!(
                left.iter().all(|k| k.ends_with("-shm")),
                "{what}: left behind {left:?}"
            );
        }
    }
    assert!(stopped >= 3, "restore stopped only {stopped} times");
}
