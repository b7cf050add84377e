//! The benchmark harness: makes its own large inputs, then times each
//! command side by side with its reference in the same run, with peak RSS.
//!
//!     cargo bench --bench salvage                        # 256 MB db + 32 MB WAL
//!     SALVAGE_BENCH_SIZE=4G cargo bench --bench salvage  # 4 GB db + 64 MB WAL
//!     SALVAGE_BENCH_SIZE=64M cargo bench --bench salvage # smaller, quicker
//!
//! The WAL is an eighth of the database, 4 to 64 MB. Inputs are cached in
//! target/bench-data/ (delete it to regenerate); SALVAGE_BENCH_ONLY=generate
//! makes the input and stops, printing how long that took.
//! Every command runs as a child process; wall time and peak RSS come from
//! wait4(2). Each figure is the best of SALVAGE_BENCH_RUNS runs (default 3);
//! VACUUM INTO and the two recoveries measured against it run in turn.
//! Then a writer commits without pause while each kind of copy runs again
//! and again (for at least 3 s per run asked for): its commit rate alone
//! and during each, and how long each copy took.
//!
//! SALVAGE_BENCH_ONLY=times|writer runs one part; SALVAGE_BENCH_ROWS=a,b
//! keeps the writer's rows whose names hold a or b; SALVAGE_BENCH_WRAP
//! (such as `ionice -c3`) prefixes each writer-row command.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rusqlite::{Connection, params};

struct Measure {
    secs: f64,
    rss_mb: f64,
}

/// Runs `cmd`, returning wall time and the child's peak RSS.
fn measure(cmd: &mut Command) -> Measure {
    measure_codes(cmd, &[0])
}

/// Like [`measure`], accepting any of `codes` as the exit status.
fn measure_codes(cmd: &mut Command, codes: &[i32]) -> Measure {
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of a plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own unwaited child; status and usage are valid
    // for writes. std's Child is never waited afterwards.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(r, pid, "wait4");
    assert!(
        libc::WIFEXITED(status) && codes.contains(&libc::WEXITSTATUS(status)),
        "{cmd:?} failed: {status}"
    );
    std::mem::forget(child);
    Measure {
        secs,
        rss_mb: usage.ru_maxrss as f64 / 1024.0,
    }
}

/// Removes a command's output once it is measured, so that what one
/// command wrote does not push the inputs of the next out of the page
/// cache (at 4 GB the outputs alone would fill most of it); gives `m` back.
fn tidy<T>(m: T, out: &Path) -> T {
    let _ = std::fs::remove_file(out);
    let _ = std::fs::remove_dir_all(out);
    m
}

fn best(runs: usize, mut f: impl FnMut() -> Measure) -> Measure {
    let mut b = f();
    for _ in 1..runs {
        let m = f();
        if m.secs < b.secs {
            b.secs = m.secs;
        }
        b.rss_mb = b.rss_mb.max(m.rss_mb);
    }
    b
}

/// Like [`best`] for several commands at once, run in turn (one of each,
/// then again): a slow spell of the machine or its disk then falls on all
/// of them alike, not on whichever ran during it.
fn best_in_turn<const N: usize>(
    runs: usize,
    mut fs: [&mut dyn FnMut() -> Measure; N],
) -> [Measure; N] {
    let mut b: [Option<Measure>; N] = std::array::from_fn(|_| None);
    for _ in 0..runs.max(1) {
        for (f, b) in fs.iter_mut().zip(b.iter_mut()) {
            let m = f();
            *b = Some(match b.take() {
                None => m,
                Some(o) => Measure {
                    secs: o.secs.min(m.secs),
                    rss_mb: o.rss_mb.max(m.rss_mb),
                },
            });
        }
    }
    b.map(|m| {
        m.unwrap_or(Measure {
            secs: 0.0,
            rss_mb: 0.0,
        })
    })
}

fn side(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A realistic memory store: text keys, JSON metadata, embedding blobs,
/// secondary indexes, then a WAL of further commits.
fn generate(dir: &Path, db_mb: u64, wal_mb: u64) -> PathBuf {
    let out = dir.join("memory.db");
    if out.exists() && side(&out, "-wal").exists() {
        return out;
    }
    std::fs::create_dir_all(dir).unwrap();
    let live = dir.join("live.db");
    for p in [live.clone(), side(&live, "-wal"), side(&live, "-shm")] {
        let _ = std::fs::remove_file(p);
    }
    eprintln!(
        "generating a {db_mb} MB database with a {wal_mb} MB WAL in {}",
        dir.display()
    );
    let c = Connection::open(&live).unwrap();
    c.execute_batch(
        "PRAGMA page_size=4096; PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
         PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;
         CREATE TABLE memories(id TEXT PRIMARY KEY, kind TEXT, created REAL, meta TEXT, embedding BLOB);
         CREATE INDEX memories_kind ON memories(kind, created);
         CREATE TABLE events(id INTEGER PRIMARY KEY, memory TEXT, at INTEGER, note TEXT);
         CREATE TABLE tags(tag TEXT, memory TEXT, weight REAL, PRIMARY KEY(tag, memory)) WITHOUT ROWID;",
    )
    .unwrap();
    let mut n: u64 = 0;
    let insert = |c: &Connection, n: &mut u64, bytes: u64| {
        let mut written = 0;
        c.execute_batch("BEGIN").unwrap();
        let mut ins = c
            .prepare_cached("INSERT INTO memories VALUES(?1, ?2, ?3, ?4, ?5)")
            .unwrap();
        let mut ev = c
            .prepare_cached("INSERT INTO events(memory, at, note) VALUES(?1, ?2, ?3)")
            .unwrap();
        let mut tg = c
            .prepare_cached("INSERT OR REPLACE INTO tags VALUES(?1, ?2, ?3)")
            .unwrap();
        while written < bytes {
            *n += 1;
            let id = format!("mem-{:016x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let emb: Vec<u8> = (0..1536u32).map(|i| (i as u64 ^ *n) as u8).collect();
            let meta = format!(
                "{{\"source\":\"chat\",\"session\":{},\"tokens\":{},\"summary\":\"memory number {} about topic {}\"}}",
                *n / 50,
                *n % 4096,
                *n,
                *n % 97
            );
            ins.execute(params![
                id,
                format!("kind{}", *n % 7),
                *n as f64 * 0.25,
                meta,
                emb
            ])
            .unwrap();
            ev.execute(params![id, *n as i64, format!("created {}", *n)])
                .unwrap();
            tg.execute(params![
                format!("topic{}", *n % 97),
                id,
                (*n % 10) as f64 / 10.0
            ])
            .unwrap();
            written += 1536 + 300;
        }
        drop((ins, ev, tg));
        c.execute_batch("COMMIT").unwrap();
    };
    while std::fs::metadata(side(&live, "-wal"))
        .map(|m| m.len())
        .unwrap_or(0)
        + std::fs::metadata(&live).unwrap().len()
        < db_mb << 20
    {
        insert(&c, &mut n, 16 << 20);
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    // The WAL: many commits of new rows and updates.
    while std::fs::metadata(side(&live, "-wal"))
        .map(|m| m.len())
        .unwrap_or(0)
        < wal_mb << 20
    {
        insert(&c, &mut n, 256 << 10);
        c.execute(
            "UPDATE events SET note = note || '!' WHERE id % 1000 = ?1",
            params![(n % 1000) as i64],
        )
        .unwrap();
    }
    std::fs::copy(side(&live, "-wal"), side(&out, "-wal")).unwrap();
    std::fs::copy(&live, &out).unwrap();
    drop(c);
    for p in [live.clone(), side(&live, "-wal"), side(&live, "-shm")] {
        let _ = std::fs::remove_file(p);
    }
    out
}

/// Child mode: a full scan of every table, touching every value.
fn child(mode: &str, db: &Path) {
    let mut total: u64 = 0;
    match mode {
        "sqlite-scan" => {
            let c = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
            let names: Vec<String> = c
                .prepare("SELECT name FROM sqlite_schema WHERE type='table'")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            for name in names {
                let mut st = c.prepare(&format!("SELECT * FROM \"{name}\"")).unwrap();
                let n = st.column_count();
                let mut rows = st.query([]).unwrap();
                while let Some(r) = rows.next().unwrap() {
                    for i in 0..n {
                        total += match r.get_ref(i).unwrap() {
                            rusqlite::types::ValueRef::Integer(v) => v as u64,
                            rusqlite::types::ValueRef::Real(f) => f as u64,
                            rusqlite::types::ValueRef::Text(t)
                            | rusqlite::types::ValueRef::Blob(t) => t.len() as u64,
                            rusqlite::types::ValueRef::Null => 0,
                        };
                    }
                }
            }
        }
        "ours-scan" => {
            use sqlite_salvage::format::record::ValueRef;
            let d = sqlite_salvage::Database::open(db).unwrap();
            let snap = d.latest().unwrap();
            let schema = snap.schema().unwrap();
            for t in &schema.tables {
                let mut rows = snap.rows(t);
                while let Some(r) = rows.next_row().unwrap() {
                    for v in r.values() {
                        total += match v {
                            ValueRef::Integer(v) => v as u64,
                            ValueRef::Real(f) => f as u64,
                            ValueRef::Text(t) | ValueRef::Blob(t) => t.len() as u64,
                            ValueRef::Null => 0,
                        };
                    }
                }
            }
        }
        "vacuum-into" => {
            let c = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
            let out = std::env::args().nth(4).expect("output path");
            c.execute("VACUUM INTO ?1", [out]).unwrap();
        }
        "hold-snapshot" => {
            // A read transaction held for the given milliseconds, nothing
            // read or written: what pinning a snapshot alone costs a writer.
            let ms: u64 = std::env::args()
                .nth(4)
                .and_then(|v| v.parse().ok())
                .expect("milliseconds");
            let c = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
            c.execute_batch("BEGIN").unwrap();
            let n: i64 = c
                .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(ms));
            c.execute_batch("COMMIT").unwrap();
            total = n as u64;
        }
        m => panic!("unknown child mode {m}"),
    }
    println!("{total}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() >= 4 && args[1] == "--child" {
        child(&args[2], Path::new(&args[3]));
        return;
    }
    let db_mb = size_mb();
    // The WAL of a long-lived store: an eighth of the database, 4 to 64 MB.
    let wal_mb = (db_mb / 8).clamp(4, 64);
    let runs: usize = std::env::var("SALVAGE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bench-data");
    let data = root.join(format!("{db_mb}mb"));
    let started = Instant::now();
    let db = generate(&data, db_mb, wal_mb);
    let only = std::env::var("SALVAGE_BENCH_ONLY").unwrap_or_default();
    if only == "generate" {
        println!(
            "input ready: {} in {:.1} s",
            db.display(),
            started.elapsed().as_secs_f64()
        );
        return;
    }
    let wal = side(&db, "-wal");
    let exe = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/sqlite-salvage");
    assert!(
        exe.exists(),
        "build the release binary first: cargo build --release"
    );
    let me = std::env::current_exe().unwrap();
    let scratch = root.join("scratch");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    // SQLite reads its own copy (a read-only connection still creates -shm).
    let sq = scratch.join("sqlite.db");
    std::fs::copy(&db, &sq).unwrap();
    std::fs::copy(&wal, side(&sq, "-wal")).unwrap();
    println!(
        "input: {} ({} MB) + WAL ({} MB); best of {runs} runs",
        db.display(),
        std::fs::metadata(&db).unwrap().len() >> 20,
        std::fs::metadata(&wal).unwrap().len() >> 20
    );

    let cx = Cx {
        runs,
        db,
        wal,
        exe,
        me,
        scratch,
        sq,
    };
    if only != "writer" {
        time_rows(&cx);
    }
    if only != "times" {
        writer_rows(&cx);
    }
}

/// The database size asked for, in MB: SALVAGE_BENCH_SIZE (such as
/// `256M`, `4G`; a bare number is MB) or SALVAGE_BENCH_MB; 256 by default.
fn size_mb() -> u64 {
    let v = std::env::var("SALVAGE_BENCH_SIZE")
        .or_else(|_| std::env::var("SALVAGE_BENCH_MB"))
        .unwrap_or_default();
    let v = v.trim().to_ascii_uppercase();
    let (num, mult) = match v.strip_suffix('G').or_else(|| v.strip_suffix("GB")) {
        Some(n) => (n, 1024),
        None => (
            v.strip_suffix("MB")
                .or_else(|| v.strip_suffix('M'))
                .unwrap_or(&v),
            1,
        ),
    };
    match num.parse::<u64>() {
        Ok(n) if n > 0 => n * mult,
        _ if v.is_empty() => 256,
        _ => panic!("SALVAGE_BENCH_SIZE={v}: give a size such as 256M or 4G"),
    }
}

/// What both parts of the harness work on.
struct Cx {
    runs: usize,
    /// The generated database and its WAL.
    db: PathBuf,
    wal: PathBuf,
    /// Our binary, and this harness (for its child modes).
    exe: PathBuf,
    me: PathBuf,
    scratch: PathBuf,
    /// SQLite's own copy of the input.
    sq: PathBuf,
}

fn devnull() -> std::fs::File {
    std::fs::File::create("/dev/null").unwrap()
}

/// Each command timed against its reference, with peak RSS.
fn time_rows(cx: &Cx) {
    let Cx {
        runs,
        db,
        wal,
        exe,
        me,
        scratch,
        sq,
    } = cx;
    let (runs, db, wal, scratch) = (*runs, db.as_path(), wal.as_path(), scratch.as_path());
    let cp = best(runs, || {
        let dst = scratch.join("cp");
        let _ = std::fs::remove_dir_all(&dst);
        std::fs::create_dir_all(&dst).unwrap();
        tidy(measure(Command::new("cp").arg(db).arg(wal).arg(&dst)), &dst)
    });
    let replay = best(runs, || {
        let _ = std::fs::remove_file(scratch.join("replayed.db"));
        let m = measure(
            Command::new(exe)
                .args(["replay", "-o"])
                .arg(scratch.join("replayed.db"))
                .arg(db)
                .stdout(devnull()),
        );
        tidy(m, &scratch.join("replayed.db"))
    });
    let replay_nosync = best(runs, || {
        let _ = std::fs::remove_file(scratch.join("replayed.db"));
        let m = measure(
            Command::new(exe)
                .args(["replay", "--no-sync", "-o"])
                .arg(scratch.join("replayed.db"))
                .arg(db)
                .stdout(devnull()),
        );
        tidy(m, &scratch.join("replayed.db"))
    });
    let cp_sync = best(runs, || {
        let dst = scratch.join("cp");
        let _ = std::fs::remove_dir_all(&dst);
        std::fs::create_dir_all(&dst).unwrap();
        let m = measure(Command::new("sh").arg("-c").arg(format!(
            "cp '{}' '{}' '{}' && sync -f '{}'/*",
            db.display(),
            wal.display(),
            dst.display(),
            dst.display()
        )));
        tidy(m, &dst)
    });
    let dump = best(runs, || {
        measure(
            Command::new(exe)
                .args(["dump", "--format", "jsonl"])
                .arg(db)
                .stdout(devnull()),
        )
    });
    let ours_scan = best(runs, || {
        measure(
            Command::new(me)
                .args(["--child", "ours-scan"])
                .arg(db)
                .stdout(devnull()),
        )
    });
    let sqlite_scan = best(runs, || {
        measure(
            Command::new(me)
                .args(["--child", "sqlite-scan"])
                .arg(sq)
                .stdout(devnull()),
        )
    });
    let check = best(runs, || {
        measure(Command::new(exe).arg("check").arg(db).stdout(devnull()))
    });
    let info = best(1, || {
        measure(Command::new(exe).arg("info").arg(db).stdout(devnull()))
    });
    let mut vacuum = || {
        let out = scratch.join("vacuumed.db");
        let _ = std::fs::remove_file(&out);
        let m = measure(
            Command::new(me)
                .args(["--child", "vacuum-into"])
                .arg(sq)
                .arg(&out)
                .stdout(devnull()),
        );
        tidy(m, &out)
    };
    let recover_at = |input: &Path| {
        let out = scratch.join("recovered.db");
        let _ = std::fs::remove_file(&out);
        // 1: recovered with damage met (partial). Synced, as VACUUM INTO
        // syncs its output (synchronous=FULL).
        let m = measure_codes(
            Command::new(exe)
                .args(["recover", "-o"])
                .arg(&out)
                .arg(input)
                .stdout(devnull()),
            &[0, 1],
        );
        tidy(m, &out)
    };
    // The same files with 10% of the database file's pages zeroed.
    let damaged = scratch.join("damaged.db");
    {
        // Zeroed in place in a copy, so that the harness itself stays small
        // (its memory would count in the children's peak RSS).
        use std::os::unix::fs::FileExt;
        std::fs::copy(db, &damaged).unwrap();
        std::fs::copy(wal, side(&damaged, "-wal")).unwrap();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&damaged)
            .unwrap();
        let ps = 4096u64;
        let pages = f.metadata().unwrap().len() / ps;
        let zeros = vec![0u8; ps as usize];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..pages / 10 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let p = 1 + (x % (pages - 1));
            f.write_all_at(&zeros, p * ps).unwrap();
        }
        // On disk before the clock starts: the copy's write-back is not
        // the recovery's to pay for (at 4 GB it fought the recovery's own
        // writes and fsync for the disk).
        f.sync_all().unwrap();
        std::fs::File::open(side(&damaged, "-wal"))
            .unwrap()
            .sync_all()
            .unwrap();
    }
    // VACUUM INTO and both recoveries in turn, so that the ratios compare
    // runs made at the same time.
    let [vacuum, recover_healthy, recover_damaged] = best_in_turn(
        runs,
        [&mut vacuum, &mut || recover_at(db), &mut || {
            recover_at(&damaged)
        }],
    );
    tidy((), &damaged);
    tidy((), &side(&damaged, "-wal"));

    // backup: the file set against cp, the compact file against VACUUM INTO.
    let backup_files = best(runs, || {
        let dst = scratch.join("bk-files");
        let _ = std::fs::remove_dir_all(&dst);
        let m = measure(
            Command::new(exe)
                .args(["backup", "--files", "--no-sync"])
                .arg(sq)
                .arg(&dst)
                .stdout(devnull()),
        );
        tidy(m, &dst)
    });
    let backup_files_sync = best(runs, || {
        let dst = scratch.join("bk-files");
        let _ = std::fs::remove_dir_all(&dst);
        let m = measure(
            Command::new(exe)
                .args(["backup", "--files"])
                .arg(sq)
                .arg(&dst)
                .stdout(devnull()),
        );
        tidy(m, &dst)
    });
    let backup_compact = best(runs, || {
        let dst = scratch.join("bk.db");
        let _ = std::fs::remove_file(&dst);
        let _ = std::fs::remove_file(scratch.join("bk.db.manifest.json"));
        let m = measure(
            Command::new(exe)
                .args(["backup", "--no-sync"])
                .arg(sq)
                .arg(&dst)
                .stdout(devnull()),
        );
        let _ = std::fs::remove_file(scratch.join("bk.db.manifest.json"));
        tidy(m, &dst)
    });
    println!(
        "{:<34} {:>9} {:>10} {:>22}",
        "command", "seconds", "peak MB", "ratio"
    );
    let row = |name: &str, m: &Measure, reference: Option<(&str, &Measure)>| {
        let ratio = reference
            .map(|(n, r)| format!("{:.2}x {n}", m.secs / r.secs))
            .unwrap_or_default();
        println!(
            "{name:<34} {:>9.3} {:>10.1} {:>22}",
            m.secs, m.rss_mb, ratio
        );
    };
    row("cp db + wal", &cp, None);
    row("cp db + wal, then sync", &cp_sync, None);
    row(
        "replay (fsync, default)",
        &replay,
        Some(("cp+sync", &cp_sync)),
    );
    row("replay --no-sync", &replay_nosync, Some(("cp", &cp)));
    row("sqlite full scan (rusqlite)", &sqlite_scan, None);
    row(
        "our full scan (library)",
        &ours_scan,
        Some(("sqlite scan", &sqlite_scan)),
    );
    row(
        "dump --format jsonl > /dev/null",
        &dump,
        Some(("sqlite scan", &sqlite_scan)),
    );
    row("check", &check, Some(("sqlite scan", &sqlite_scan)));
    row("info", &info, None);
    row("VACUUM INTO (rusqlite)", &vacuum, None);
    row(
        "recover, healthy",
        &recover_healthy,
        Some(("VACUUM INTO", &vacuum)),
    );
    row("backup --files --no-sync", &backup_files, Some(("cp", &cp)));
    row(
        "backup --files (fsync)",
        &backup_files_sync,
        Some(("cp+sync", &cp_sync)),
    );
    row(
        "backup (compact)",
        &backup_compact,
        Some(("VACUUM INTO", &vacuum)),
    );
    row(
        "recover, 10% of pages zeroed",
        &recover_damaged,
        Some(("VACUUM INTO", &vacuum)),
    );
    row(
        "  (the same, against healthy)",
        &recover_damaged,
        Some(("healthy", &recover_healthy)),
    );
}

/// A writer's commit rate while each kind of copy runs, against its rate
/// alone. SALVAGE_BENCH_ROWS=a,b keeps the rows whose names hold a or b.
fn writer_rows(cx: &Cx) {
    let Cx {
        runs,
        exe,
        me,
        scratch,
        sq,
        ..
    } = cx;
    let (runs, scratch) = (*runs, scratch.as_path());
    // A writer committing throughout. Its rate while each command runs is
    // compared with its rate alone in windows interleaved with the
    // command's (a window alone, then one with the command, and so on), so
    // that the machine's drift during the run weighs on both alike.
    // Returns (rate during, rate alone, seconds each command took).
    let wrap: Vec<String> = std::env::var("SALVAGE_BENCH_WRAP")
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    let rate = |job: &dyn Fn(&Path) -> Command| -> (f64, f64, f64) {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let n = Arc::new(AtomicU64::new(0));
        let w = {
            let (stop, n, sq) = (stop.clone(), n.clone(), sq.clone());
            std::thread::spawn(move || {
                let c = Connection::open(&sq).unwrap();
                c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
                // SQLite's default durability: each commit is synced.
                c.execute_batch("PRAGMA synchronous=FULL").unwrap();
                let mut i = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    c.execute(
                        "INSERT INTO events(memory, at, note) VALUES('bench', ?1, 'writer')",
                        [i],
                    )
                    .unwrap();
                    n.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let pause = || std::thread::sleep(std::time::Duration::from_millis(200));
        // Settle: the writer's first commits checkpoint the WAL it found.
        std::thread::sleep(std::time::Duration::from_millis(500));
        // Commits counted only inside the windows, over at least 3 s of
        // command windows per run asked for; removing the previous backup
        // is not counted.
        let (mut commits, mut secs, mut alone_commits, mut alone_secs) =
            (0u64, 0.0f64, 0u64, 0.0f64);
        let mut k = 0;
        let mut last = std::time::Duration::ZERO;
        while secs < 3.0 * runs as f64 {
            // The previous copy is removed, and the removal synced and let
            // settle (the file system may discard the freed blocks), outside
            // both windows: it would otherwise weigh on the window alone.
            let dst = scratch.join("live-bk");
            let _ = std::fs::remove_dir_all(&dst);
            let _ = std::fs::remove_file(&dst);
            let _ = std::fs::remove_file(side(&dst, ".manifest.json"));
            let _ = Command::new("sync").arg("-f").arg(scratch).status();
            std::thread::sleep(std::time::Duration::from_secs(3));
            // As long as the command's last window (300 ms to 5 s), so
            // that long commands are compared with as long a sample.
            let (c0, t0) = (n.load(Ordering::Relaxed), Instant::now());
            std::thread::sleep(last.clamp(
                std::time::Duration::from_millis(300),
                std::time::Duration::from_secs(5),
            ));
            alone_commits += n.load(Ordering::Relaxed) - c0;
            alone_secs += t0.elapsed().as_secs_f64();
            pause();
            let (c0, t0) = (n.load(Ordering::Relaxed), Instant::now());
            let mut cmd = job(&dst);
            if let Some((prog, pre)) = wrap.split_first() {
                // SALVAGE_BENCH_WRAP: a prefix, such as `ionice -c3`.
                let mut w = Command::new(prog);
                w.args(pre).arg(cmd.get_program()).args(cmd.get_args());
                cmd = w;
            }
            let st = cmd.stdout(devnull()).status().unwrap();
            assert!(st.success());
            commits += n.load(Ordering::Relaxed) - c0;
            last = t0.elapsed();
            secs += last.as_secs_f64();
            k += 1;
        }
        stop.store(true, Ordering::Relaxed);
        w.join().unwrap();
        (
            commits as f64 / secs,
            alone_commits as f64 / alone_secs,
            secs / f64::from(k),
        )
    };
    let backup_job = |files: bool, sync: bool, full_speed: bool| {
        let (exe, sq) = (exe.clone(), sq.clone());
        move |dst: &Path| {
            let mut c = Command::new(&exe);
            c.arg("backup");
            if files {
                c.arg("--files");
            }
            if !sync {
                c.arg("--no-sync");
            }
            if full_speed {
                c.arg("--full-speed");
            }
            c.arg(&sq).arg(dst);
            c
        }
    };
    let cp_job = |sync: bool| {
        let sq = sq.clone();
        move |dst: &Path| {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!(
                    "mkdir \"$1\" && cp \"$2\" \"$2-wal\" \"$1/\"{}",
                    if sync {
                        " && sync -f \"$1/sqlite.db\""
                    } else {
                        ""
                    }
                ))
                .arg("sh")
                .arg(dst)
                .arg(&sq);
            c
        }
    };
    let hold_job = |ms: u64| {
        let (me, sq) = (me.clone(), sq.clone());
        move |_: &Path| {
            let mut c = Command::new(&me);
            c.args(["--child", "hold-snapshot"])
                .arg(&sq)
                .arg(ms.to_string());
            c
        }
    };
    type Job = Box<dyn Fn(&Path) -> Command>;
    let rows: Vec<(&str, Job)> = vec![
        ("a read transaction held, no I/O", Box::new(hold_job(400))),
        ("the same, held longer", Box::new(hold_job(3000))),
        ("cp", Box::new(cp_job(false))),
        (
            "backup --files --no-sync --full-speed",
            Box::new(backup_job(true, false, true)),
        ),
        ("cp + sync", Box::new(cp_job(true))),
        (
            "backup --files --full-speed",
            Box::new(backup_job(true, true, true)),
        ),
        (
            "backup --files (yields)",
            Box::new(backup_job(true, true, false)),
        ),
        (
            "backup --full-speed (compact)",
            Box::new(backup_job(false, true, true)),
        ),
        (
            "backup (compact, yields)",
            Box::new(backup_job(false, true, false)),
        ),
    ];
    let wanted = std::env::var("SALVAGE_BENCH_ROWS").unwrap_or_default();
    println!(
        "writer commits/s (synchronous=FULL) while each of these runs, alone in the windows between, the share, and how long each took:"
    );
    for (name, job) in rows {
        if !wanted.is_empty() && !wanted.split(',').any(|w| name.contains(w)) {
            continue;
        }
        let (r, alone, secs) = rate(job.as_ref());
        println!(
            "  {name:<38} {r:>9.0} {alone:>9.0} {:>6.0}% {secs:>8.3} s",
            100.0 * r / alone
        );
    }
}
