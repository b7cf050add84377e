//! The command line: outputs, errors, exit codes, inputs left unchanged.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rusqlite::Connection;

use crate::common::*;

/// A WAL database (db, -wal, -shm) with a few commits, copied into its own
/// directory while the writer is open.
fn wal_set(dir: &Path) -> PathBuf {
    let live = dir.join("live.db");
    let c = wal_conn(&live, 4096);
    c.execute_batch(
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body BLOB);
         CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;",
    )
    .unwrap();
    for i in 0..5 {
        c.execute_batch(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 400)
             INSERT INTO notes(title, body) SELECT 'title ' || i || ' {i}', randomblob(i % 300) FROM n;
             INSERT INTO kv VALUES('k{i}', {i});"
        ))
        .unwrap();
    }
    let inputs = dir.join("in");
    std::fs::create_dir(&inputs).unwrap();
    let db = copy_set(&live, &inputs, "memory.db");
    assert!(side(&db, "-shm").exists());
    db
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn no_command_changes_its_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let db = wal_set(tmp.path());
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let inputs = db.parent().unwrap().to_path_buf();
    let before = dir_hashes(&inputs);
    assert_eq!(before.len(), 3);
    let r1 = out.join("r1.db");
    let r2 = out.join("r2.db");
    let runs: Vec<Vec<&str>> = vec![
        vec!["info", s(&db)],
        vec!["info", s(&db), "--json", "--at-commit", "2"],
        vec!["wal", s(&db)],
        vec!["wal", "--json", s(&db)],
        vec!["check", s(&db)],
        vec!["check", s(&db), "--json"],
        vec!["dump", s(&db)],
        vec!["dump", s(&db), "--format", "jsonl"],
        vec!["dump", s(&db), "--format", "csv", "--table", "notes"],
        vec!["dump", s(&db), "--at-commit", "3"],
        vec!["replay", s(&db), "-o", s(&r1)],
        vec!["replay", s(&db), "-o", s(&r2), "--at-commit", "1", "--json"],
    ];
    for args in &runs {
        let (code, _, err) = run(args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert_eq!(dir_hashes(&inputs), before, "{args:?} changed its inputs");
    }
    // The same without a -shm: none is created.
    std::fs::remove_file(side(&db, "-shm")).unwrap();
    let before = dir_hashes(&inputs);
    for args in &runs[..10] {
        let (code, _, err) = run(args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert_eq!(dir_hashes(&inputs), before, "{args:?} changed its inputs");
    }
}

#[test]
fn replay_and_dump_agree_with_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let db = wal_set(tmp.path());
    let theirs = sqlite_view(&db);
    let out = tmp.path().join("replayed.db");
    let (code, stdout, err) = run(&["replay", s(&db), "-o", s(&out)]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("as of commit 12"), "{stdout}");
    let conn = Connection::open(&out).unwrap();
    let ic = integrity(&conn);
    assert_eq!(ic, "ok");
    assert_same_state(&sqlite_state(&conn), &theirs, "replay");
    let (code, sql, _) = run(&["dump", s(&db)]);
    assert_eq!(code, 0);
    let mem = Connection::open_in_memory().unwrap();
    mem.execute_batch(&sql).unwrap();
    assert_same_state(&sqlite_state(&mem), &theirs, "dump");
    // Refuses to overwrite, then does with --force.
    let (code, _, err) = run(&["replay", s(&db), "-o", s(&out)]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("--force"), "{err}");
    let (code, _, _) = run(&["replay", s(&db), "-o", s(&out), "--force"]);
    assert_eq!(code, 0);
    // CSV has a header and one line per row.
    let (code, csv, _) = run(&["dump", s(&db), "-f", "csv", "-t", "notes"]);
    assert_eq!(code, 0);
    assert_eq!(csv.lines().count(), 1 + theirs["notes"].len());
    assert!(csv.starts_with("id,title,body\n"), "{}", &csv[..40]);
}

#[test]
fn errors_are_one_line_with_documented_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let db = wal_set(tmp.path());
    let d = tmp.path();
    let text = d.join("text.db");
    std::fs::write(&text, b"this is not a database, just some text that is long enough to have a header of one hundred bytes........").unwrap();
    let short = d.join("short.db");
    std::fs::write(&short, &std::fs::read(&db).unwrap()[..50]).unwrap();
    let link = d.join("link.db");
    std::os::unix::fs::symlink(&db, &link).unwrap();
    let missing = d.join("missing.db");
    let wal = side(&db, "-wal");
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (vec!["info", s(&missing)], 3),
        (vec!["check", s(d)], 3),
        (vec!["dump", s(&text)], 4),
        (vec!["info", s(&short)], 4),
        (vec!["wal", s(&text)], 4),
        (vec!["dump", s(&db), "--at-commit", "999"], 2),
        (vec!["dump", s(&db), "--table", "nope"], 2),
        (vec!["dump", s(&db), "--format", "csv"], 2),
        (vec!["replay", s(&db), "-o", s(&db)], 6),
        (vec!["replay", s(&db), "-o", s(&link)], 6),
        (vec!["replay", s(&db), "-o", s(&wal)], 6),
        (vec!["replay", s(&db), "-o", s(d)], 6),
        (vec!["dump", s(&db), "--wal", s(&text)], 4),
    ];
    for (args, want) in cases {
        let (code, stdout, err) = run(&args);
        assert_eq!(code, want, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("sqlite-salvage: error: "),
            "{args:?}: {err}"
        );
        assert!(stdout.is_empty() || args[0] == "dump", "{args:?}: {stdout}");
        // The same error as JSON on stdout.
        let mut j = args.clone();
        j.push("--json");
        let (code, stdout, _) = run(&j);
        assert_eq!(code, want);
        let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(v["exit_code"], want);
    }
    // Usage errors come from the parser, also with exit code 2.
    let (code, _, _) = run(&["dump"]);
    assert_eq!(code, 2);
    // Nothing was written next to the inputs by the refused replays.
    assert_eq!(dir_hashes(db.parent().unwrap()).len(), 3);
}

#[test]
fn check_names_damaged_pages() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("damaged.db");
    let c = Connection::open(&path).unwrap();
    c.execute_batch(
        "PRAGMA page_size=1024;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 3000)
         INSERT INTO t SELECT i, printf('%.100c', 'x') FROM n;",
    )
    .unwrap();
    let leaf: i64 = c
        .query_row(
            "SELECT pageno FROM dbstat WHERE name='t' AND pagetype='leaf' LIMIT 1 OFFSET 10",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(c);
    let (code, out, _) = run(&["check", s(&path)]);
    assert_eq!(code, 0, "{out}");
    let mut b = std::fs::read(&path).unwrap();
    let at = (leaf as usize - 1) * 1024;
    b[at..at + 1024].fill(0);
    std::fs::write(&path, b).unwrap();
    let ic = integrity(&Connection::open(&path).unwrap());
    assert_ne!(ic, "ok", "SQLite sees the damage too");
    let (code, out, _) = run(&["check", s(&path)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("page {leaf}")), "{out}");
    let (code, _, err) = run(&["dump", s(&path)]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains(&format!("page {leaf}")), "{err}");
}

#[test]
fn closed_pipe_is_not_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let db = wal_set(tmp.path());
    let mut child = Command::new(bin())
        .args(["dump", s(&db), "--format", "jsonl"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let err = stderr_of(&mut child);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
    // Every command's output, to a pipe closed before it writes.
    let out = tmp.path().join("r.db");
    let bk = tmp.path().join("bk.db");
    let missing = tmp.path().join("missing.db");
    let runs: Vec<Vec<&str>> = vec![
        vec!["info", s(&db)],
        vec!["check", s(&db)],
        vec!["wal", s(&db)],
        vec!["recover", s(&db), "-o", s(&out), "--force"],
        vec!["replay", s(&db), "-o", s(&out), "--force"],
        vec!["backup", s(&db), s(&bk), "--force"],
        vec!["verify", s(&bk)],
        vec!["restore", s(&bk), s(&out)],
        vec!["info", s(&db), "--json"],
        vec!["info", s(&missing), "--json"],
    ];
    for args in runs {
        let mut child = Command::new(bin())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let status = child.wait().unwrap();
        let err = stderr_of(&mut child);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        if args[1] != s(&missing) {
            assert_eq!(status.code(), Some(0), "{args:?}: {err}");
            assert!(err.is_empty(), "{args:?}: {err}");
        }
    }
}

fn stderr_of(child: &mut std::process::Child) -> String {
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut err).unwrap();
    }
    err
}

/// Runs the binary with `args`, killed if it has not ended after 20 s;
/// returns (exit code, stderr), or None when it had to be killed.
fn run_within(args: &[&str]) -> Option<(i32, String)> {
    let mut child = Command::new(bin())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(20) {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let code = child.wait().unwrap().code().unwrap_or(-1);
    Some((code, stderr_of(&mut child)))
}

fn mkfifo(p: &Path) {
    let status = Command::new("mkfifo").arg(p).status().unwrap();
    assert!(status.success());
}

/// A FIFO opened for reading waits for a writer: given as a database, or
/// lying where a -wal, -shm or -journal would be, it is refused or passed
/// over, never waited on.
#[test]
fn pipes_and_devices_are_refused_not_waited_on() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let fifo = d.join("fifo.db");
    mkfifo(&fifo);
    let out = d.join("out.db");
    let bk = d.join("bk");
    for input in [s(&fifo), "/dev/null", "/dev/zero"] {
        let runs: Vec<Vec<&str>> = vec![
            vec!["info", input],
            vec!["check", input],
            vec!["dump", input],
            vec!["wal", input],
            vec!["recover", input, "-o", s(&out)],
            vec!["replay", input, "-o", s(&out)],
            vec!["backup", input, s(&bk)],
        ];
        for args in runs {
            let (code, err) = run_within(&args).unwrap_or_else(|| panic!("{args:?} hung"));
            assert_eq!(code, 3, "{args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            assert!(err.contains("not a regular file"), "{args:?}: {err}");
            assert!(!out.exists() && !bk.exists(), "{args:?} wrote output");
        }
    }
    // A database whose -shm, -wal or -journal is a FIFO: read without it.
    let db = wal_set(d);
    let names = ["-shm", "-wal", "-journal"];
    for suffix in names {
        let f = side(&db, suffix);
        let _ = std::fs::remove_file(&f);
        mkfifo(&f);
        let rec = d.join(format!("rec{suffix}.db"));
        for args in [
            vec!["info", s(&db)],
            vec!["check", s(&db)],
            vec!["dump", s(&db)],
            vec!["recover", s(&db), "-o", s(&rec)],
        ] {
            let (code, err) = run_within(&args).unwrap_or_else(|| panic!("{args:?} hung"));
            assert!([0, 1, 7].contains(&code), "{args:?}: {code} {err}");
        }
        assert!(rec.exists());
        let b = d.join(format!("bk{suffix}"));
        let args = ["backup", s(&db), s(&b)];
        let (code, err) = run_within(&args).unwrap_or_else(|| panic!("{args:?} hung"));
        assert!(
            code != -1 && err.lines().count() <= 1,
            "{args:?}: {code} {err}"
        );
        std::fs::remove_file(&f).unwrap();
    }
}
