//! `recover` against a generated memory store, per damage class: every row
//! whose bytes survive comes back exactly, no row comes back that was never
//! committed, damaged values are flagged, inputs are unchanged.
//!
//! `cargo test recover -- --nocapture` prints the per-class table.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};
use sqlite_salvage::WalChoice;
use sqlite_salvage::recover::{RecoverOptions, Report, recover};
use sqlite_salvage::wal::WalIndex;

use crate::common::*;

const SCHEMA: &str = "
    CREATE TABLE memories(id TEXT PRIMARY KEY, kind TEXT NOT NULL, created REAL, meta TEXT, embedding BLOB);
    CREATE INDEX memories_kind ON memories(kind, created);
    CREATE TABLE events(id INTEGER PRIMARY KEY, memory TEXT, at INTEGER, note TEXT);
    CREATE INDEX events_memory ON events(memory);
    CREATE TABLE tags(tag TEXT, memory TEXT, weight REAL, PRIMARY KEY(tag, memory)) WITHOUT ROWID;";

struct Store {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    live: PathBuf,
    conn: Connection,
    /// State after the checkpoint (index 0) and after each WAL commit.
    states: Vec<State>,
    page_size: u32,
}

fn insert_memory(c: &Connection, n: u64, page_size: u32) {
    let id = format!("mem-{n:05}");
    let len = if page_size >= 65536 {
        70_000 + (n % 7) as usize * 5000
    } else {
        1536 + (n % 5) as usize * 300
    };
    let emb: Vec<u8> = (0..len).map(|i| (i as u64 * 31 + n) as u8).collect();
    c.execute(
        "INSERT INTO memories VALUES(?1, ?2, ?3, ?4, ?5)",
        params![
            id,
            format!("kind{}", n % 4),
            n as f64 * 0.5,
            format!("{{\"n\":{n},\"tokens\":{}}}", n * 7),
            emb
        ],
    )
    .unwrap();
    c.execute(
        "INSERT INTO events(memory, at, note) VALUES(?1, ?2, ?3)",
        params![id, n as i64, format!("created memory {n}")],
    )
    .unwrap();
    c.execute(
        "INSERT OR REPLACE INTO tags VALUES(?1, ?2, ?3)",
        params![format!("topic{}", n % 9), id, (n % 10) as f64 / 10.0],
    )
    .unwrap();
}

fn store(page_size: u32, encoding: &str, base: u64, commits: usize) -> Store {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let live = dir.join("live.db");
    let c = Connection::open(&live).unwrap();
    c.execute_batch(&format!(
        "PRAGMA page_size={page_size}; PRAGMA encoding='{encoding}'; PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;"
    ))
    .unwrap();
    c.execute_batch(SCHEMA).unwrap();
    // Pages freed and reused: a table filled and dropped first.
    c.execute_batch(
        "CREATE TABLE scratch(x);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 40)
         INSERT INTO scratch SELECT randomblob(600) FROM n;
         DROP TABLE scratch;",
    )
    .unwrap();
    c.execute_batch("BEGIN").unwrap();
    for n in 1..=base {
        insert_memory(&c, n, page_size);
    }
    c.execute_batch("COMMIT").unwrap();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let mut states = vec![sqlite_state(&c)];
    let mut rng = Rng(page_size as u64 + base);
    let mut next = base + 1;
    for k in 0..commits {
        c.execute_batch("BEGIN").unwrap();
        for _ in 0..3 {
            insert_memory(&c, next, page_size);
            next += 1;
        }
        match k % 3 {
            0 => {
                let victim = 1 + rng.below(next - 1);
                c.execute(
                    "DELETE FROM memories WHERE id = ?1",
                    params![format!("mem-{victim:05}")],
                )
                .unwrap();
                c.execute(
                    "DELETE FROM events WHERE memory = ?1",
                    params![format!("mem-{victim:05}")],
                )
                .unwrap();
            }
            1 => {
                c.execute(
                    "UPDATE events SET note = note || ' (seen)' WHERE id % 13 = ?1",
                    params![(k % 13) as i64],
                )
                .unwrap();
            }
            _ => {
                c.execute(
                    "UPDATE tags SET weight = weight + 1 WHERE tag = ?1",
                    params![format!("topic{}", k % 9)],
                )
                .unwrap();
            }
        }
        c.execute_batch("COMMIT").unwrap();
        states.push(sqlite_state(&c));
    }
    Store {
        _tmp: tmp,
        dir,
        live,
        conn: c,
        states,
        page_size,
    }
}

/// One damage class's outcome.
struct Outcome {
    class: String,
    truth: usize,
    ceiling: usize,
    recovered: usize,
    invented: usize,
    stale: usize,
    lost_and_found: u64,
    sqlite_plain: String,
    report: Report,
}

/// Recovers `db` and measures against `truth` (the committed state the
/// damaged files stand for), `history` (every committed row ever) and the
/// pages the damage destroyed.
fn measure(
    class: &str,
    db: &Path,
    located: &HashMap<String, Vec<u32>>,
    destroyed: &HashSet<u32>,
    truth: &State,
    history: &HashSet<String>,
    schema_sql: Option<&str>,
) -> Outcome {
    let before = dir_hashes(db.parent().unwrap());
    let out = db
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join(format!("{}-recovered.db", class.replace(['/', ' '], "-")));
    let opts = RecoverOptions {
        schema_sql: schema_sql.map(String::from),
        no_sync: true,
        ..Default::default()
    };
    let report = recover(db, &out, &opts).unwrap_or_else(|e| panic!("{class}: {e}"));
    assert_eq!(
        dir_hashes(db.parent().unwrap()),
        before,
        "{class}: inputs changed"
    );
    let conn = Connection::open(&out).unwrap();
    let ic = integrity(&conn);
    assert_eq!(ic, "ok", "{class}");
    assert_report_adds_up(&report, &out, class);
    // The flags table lists values, it holds no rows of the store.
    let got: HashSet<String> = keys(&sqlite_state(&conn))
        .into_iter()
        .filter(|k| !k.starts_with("salvage_flags|"))
        .collect();
    let truth_keys = keys(truth);
    let ceiling: HashSet<&String> = truth_keys
        .iter()
        .filter(|k| {
            located
                .get(*k)
                .is_none_or(|pages| !pages.iter().any(|p| destroyed.contains(p)))
        })
        .collect();
    let recovered = ceiling.iter().filter(|k| got.contains(**k)).count();
    // Rows with a value read only in part are flagged, not invented: their
    // key must be a committed one.
    let partial: HashSet<String> = report
        .flagged
        .iter()
        .filter(|f| f.flag.contains("only in part") || f.flag.contains("all zeros"))
        .map(|f| format!("{}|{:?}", f.table, f.rowid))
        .collect();
    let committed_keys: HashSet<String> = history
        .iter()
        .map(|k| {
            let (t, rest) = k.split_once('|').unwrap();
            let rowid = rest.trim_start_matches('(').split(',').next().unwrap_or("");
            format!("{t}|{rowid}")
        })
        .collect();
    let invented: Vec<&String> = got
        .iter()
        .filter(|k| !history.contains(*k))
        .filter(|k| {
            let (t, rest) = k.split_once('|').unwrap();
            let rowid = rest.trim_start_matches('(').split(',').next().unwrap_or("");
            let key = format!("{t}|{rowid}");
            !(partial.contains(&key) && committed_keys.contains(&key))
        })
        .collect();
    let stale = got.iter().filter(|k| !truth_keys.contains(*k)).count();
    let sqlite_plain = {
        let tmp = tempfile::tempdir().unwrap();
        let copy = copy_set(db, tmp.path(), "plain.db");
        match std::panic::catch_unwind(|| {
            let c = Connection::open(&copy).unwrap();
            // Every row of every table, read as an application would.
            let ok: Result<usize, rusqlite::Error> = (|| {
                let mut n = 0;
                for t in ["memories", "events", "tags"] {
                    let mut st = c.prepare(&format!("SELECT * FROM {t} NOT INDEXED"))?;
                    let mut rows = st.query([])?;
                    while rows.next()?.is_some() {
                        n += 1;
                    }
                }
                Ok(n)
            })();
            ok
        }) {
            Ok(Ok(n)) => format!("{n} rows"),
            Ok(Err(e)) => format!(
                "error: {}",
                e.to_string().chars().take(40).collect::<String>()
            ),
            Err(_) => "error".into(),
        }
    };
    assert!(
        invented.is_empty(),
        "{class}: invented rows: {:?}\nreport: {}",
        &invented[..invented.len().min(3)],
        serde_json::to_string(&(
            &report.orphan_pages,
            &report.flagged.iter().take(20).collect::<Vec<_>>(),
            &report.unreadable_pages
        ))
        .unwrap()
        .chars()
        .take(4000)
        .collect::<String>()
    );
    Outcome {
        class: class.into(),
        truth: truth_keys.len(),
        ceiling: ceiling.len(),
        recovered,
        invented: invented.len(),
        stale,
        lost_and_found: report.lost_and_found,
        sqlite_plain,
        report,
    }
}

fn history_of(states: &[State]) -> HashSet<String> {
    states.iter().flat_map(keys).collect()
}

fn case_dir(s: &Store, name: &str) -> PathBuf {
    let d = s.dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn zero_page(db: &Path, pgno: u32, page_size: u32) {
    let mut b = std::fs::read(db).unwrap();
    let at = (pgno as usize - 1) * page_size as usize;
    b[at..at + page_size as usize].fill(0);
    std::fs::write(db, b).unwrap();
}

fn pages_of(db: &Path, name: &str, pagetype: &str) -> Vec<u32> {
    let tmp = tempfile::tempdir().unwrap();
    let copy = copy_set(db, tmp.path(), "q.db");
    let c = Connection::open(&copy).unwrap();
    let mut st = c
        .prepare("SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = ?2 ORDER BY pageno")
        .unwrap();
    st.query_map(params![name, pagetype], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|r| r.unwrap() as u32)
        .collect()
}

/// Every damage class on one store layout.
fn classes(page_size: u32, encoding: &str, base: u64) -> Vec<Outcome> {
    let s = store(page_size, encoding, base, 24);
    let ps = s.page_size;
    let history = history_of(&s.states);
    let last = s.states.last().unwrap().clone();
    let mut out = Vec::new();
    let tag = format!("{ps}/{encoding}");

    // The newest commits only in the WAL; pages reused from the freelist.
    let healthy = copy_set(&s.live, &case_dir(&s, "healthy"), "memory.db");
    let located = locate(&healthy);
    let o = measure(
        &format!("wal-only-commits {tag}"),
        &healthy,
        &located,
        &HashSet::new(),
        &last,
        &history,
        None,
    );
    assert_eq!(
        o.stale, 0,
        "nothing stale or deleted comes back from a healthy store"
    );
    out.push(o);

    // An uncommitted tail: the last transaction lost its commit marker.
    let db = copy_set(&s.live, &case_dir(&s, "tail"), "memory.db");
    let _ = std::fs::remove_file(side(&db, "-shm"));
    let wal = side(&db, "-wal");
    let idx = WalIndex::scan(&wal).unwrap().unwrap();
    rewrite_frame(&wal, idx.commits.last().unwrap().last_frame, 4, 0);
    let n = s.states.len();
    let truth = s.states[n - 2].clone();
    let o = measure(
        &format!("uncommitted-tail {tag}"),
        &db,
        &located,
        &HashSet::new(),
        &truth,
        &history_of(&s.states[..n - 1]),
        None,
    );
    assert_eq!(o.stale, 0);
    out.push(o);

    // One damaged frame in the middle of the WAL.
    let db = copy_set(&s.live, &case_dir(&s, "frame"), "memory.db");
    let _ = std::fs::remove_file(side(&db, "-shm"));
    let wal = side(&db, "-wal");
    let f = idx.frames[idx.frames.len() / 2];
    let mut b = std::fs::read(&wal).unwrap();
    let off = sqlite_salvage::wal::frame_offset(f.index, ps) as usize + 24 + (ps as usize / 2);
    b[off] ^= 0x55;
    std::fs::write(&wal, b).unwrap();
    let rewritten = idx
        .frames
        .iter()
        .any(|g| g.index > f.index && g.pgno == f.pgno && g.commit.is_some());
    let destroyed: HashSet<u32> = if rewritten {
        HashSet::new()
    } else {
        [f.pgno].into()
    };
    out.push(measure(
        &format!("damaged-frame {tag}"),
        &db,
        &located,
        &destroyed,
        &last,
        &history,
        None,
    ));

    // A WAL left from another database.
    let db = copy_set(&s.live, &case_dir(&s, "foreign"), "memory.db");
    let _ = std::fs::remove_file(side(&db, "-shm"));
    let other = s.dir.join("other.db");
    let oc = wal_conn(&other, ps);
    oc.execute_batch(&format!("PRAGMA encoding='{encoding}'; CREATE TABLE unrelated(a, b); INSERT INTO unrelated VALUES(1, 2);"))
        .unwrap();
    std::fs::copy(side(&other, "-wal"), side(&db, "-wal")).unwrap();
    let o = measure(
        &format!("wal-of-another-db {tag}"),
        &db,
        &located,
        &HashSet::new(),
        &s.states[0],
        &history,
        None,
    );
    assert!(o.report.wal_rejected.is_some(), "foreign WAL not noticed");
    out.push(o);
    drop(oc);

    // Everything checkpointed: the database file alone, then damaged.
    s.conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let clean = copy_set(&s.live, &case_dir(&s, "clean"), "memory.db");
    let located = locate(&clean);

    let db = copy_set(&s.live, &case_dir(&s, "page1"), "memory.db");
    zero_page(&db, 1, ps);
    out.push(measure(
        &format!("page1-zeroed +schema {tag}"),
        &db,
        &located,
        &[1].into(),
        &last,
        &history,
        Some(SCHEMA),
    ));

    let db = copy_set(&s.live, &case_dir(&s, "interior"), "memory.db");
    let mut destroyed = HashSet::new();
    for t in ["memories", "events"] {
        let interior = pages_of(&clean, t, "internal");
        if let Some(p) = interior.first() {
            zero_page(&db, *p, ps);
            destroyed.insert(*p);
        }
    }
    if !destroyed.is_empty() {
        out.push(measure(
            &format!("interior-zeroed {tag}"),
            &db,
            &located,
            &destroyed,
            &last,
            &history,
            None,
        ));
    }

    let overflow = pages_of(&clean, "memories", "overflow");
    if !overflow.is_empty() {
        let db = copy_set(&s.live, &case_dir(&s, "overflow"), "memory.db");
        let destroyed: HashSet<u32> = overflow
            .iter()
            .step_by(overflow.len() / 4 + 1)
            .copied()
            .collect();
        for p in &destroyed {
            zero_page(&db, *p, ps);
        }
        let o = measure(
            &format!("overflow-zeroed {tag}"),
            &db,
            &located,
            &destroyed,
            &last,
            &history,
            None,
        );
        let hit = located
            .values()
            .filter(|p| p.iter().any(|x| destroyed.contains(x)))
            .count();
        let flagged: u64 = o.report.tables.iter().map(|t| t.partial).sum();
        assert!(
            flagged as usize >= hit.min(1),
            "{}: {hit} rows hit, {flagged} flagged",
            o.class
        );
        out.push(o);
    }

    let db = copy_set(&s.live, &case_dir(&s, "truncated"), "memory.db");
    let len = std::fs::metadata(&db).unwrap().len();
    let pages = (len / u64::from(ps)) as u32;
    let keep = pages * 6 / 10;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(u64::from(keep) * u64::from(ps))
        .unwrap();
    let destroyed: HashSet<u32> = (keep + 1..=pages).collect();
    out.push(measure(
        &format!("truncated-file {tag}"),
        &db,
        &located,
        &destroyed,
        &last,
        &history,
        None,
    ));

    // A torn page: a leaf of events, half its sectors from an older version.
    let leaves = pages_of(&clean, "events", "leaf");
    if ps >= 1024 && leaves.len() >= 2 {
        if let Some(&p) = leaves.get(leaves.len() / 2) {
            let db = copy_set(&s.live, &case_dir(&s, "torn"), "memory.db");
            let mut b = std::fs::read(&db).unwrap();
            let at = (p as usize - 1) * ps as usize;
            // The older version: sectors of the neighbouring leaf.
            let q = leaves[leaves.len() / 2 - 1];
            let old = b[(q as usize - 1) * ps as usize..q as usize * ps as usize].to_vec();
            for sector in (1..ps as usize / 512).step_by(2) {
                b[at + sector * 512..at + (sector + 1) * 512]
                    .copy_from_slice(&old[sector * 512..(sector + 1) * 512]);
            }
            std::fs::write(&db, b).unwrap();
            out.push(measure(
                &format!("torn-page {tag}"),
                &db,
                &located,
                &[p].into(),
                &last,
                &history,
                None,
            ));
        }
    }
    out
}

fn print(outcomes: &[Outcome]) {
    eprintln!(
        "{:<34} {:>6} {:>8} {:>10} {:>6} {:>9} {:>6} {:>6}  sqlite plain read",
        "class", "truth", "ceiling", "recovered", "%", "invented", "other", "l&f"
    );
    for o in outcomes {
        eprintln!(
            "{:<34} {:>6} {:>8} {:>10} {:>6.1} {:>9} {:>6} {:>6}  {}",
            o.class,
            o.truth,
            o.ceiling,
            o.recovered,
            100.0 * o.recovered as f64 / o.ceiling.max(1) as f64,
            o.invented,
            o.stale,
            o.lost_and_found,
            o.sqlite_plain
        );
    }
}

fn assert_ceiling(outcomes: &[Outcome]) {
    print(outcomes);
    for o in outcomes {
        assert_eq!(
            o.recovered, o.ceiling,
            "{}: {:#?}",
            o.class, o.report.tables
        );
        assert_eq!(o.invented, 0, "{}", o.class);
    }
}

#[test]
fn recover_every_damage_class_4096() {
    assert_ceiling(&classes(4096, "UTF-8", 120));
}

#[test]
fn recover_every_damage_class_small_pages_utf16() {
    assert_ceiling(&classes(512, "UTF-16le", 60));
}

#[test]
fn recover_every_damage_class_64k_pages() {
    assert_ceiling(&classes(65536, "UTF-16be", 12));
}

#[test]
fn recover_cli_reports_and_refuses() {
    let s = store(1024, "UTF-8", 20, 3);
    let db = copy_set(&s.live, &case_dir(&s, "cli"), "memory.db");
    let out = s.dir.join("out.db");
    let rep = s.dir.join("report.json");
    let p = |x: &Path| x.to_str().unwrap().to_string();
    let (code, stdout, err) = run(&["recover", &p(&db), "-o", &p(&out), "--report", &p(&rep)]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(stdout.contains("memories"), "{stdout}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&rep).unwrap()).unwrap();
    assert_eq!(v["outcome"], "complete");
    let (code, _, err) = run(&["recover", &p(&db), "-o", &p(&out)]);
    assert_eq!(code, 6, "{err}");
    // The input itself, a symlink to it, its WAL or a directory is refused
    // as the output, even with --force.
    let link = s.dir.join("link.db");
    std::os::unix::fs::symlink(&db, &link).unwrap();
    let before = dir_hashes(db.parent().unwrap());
    for bad in [&db, &link, &side(&db, "-wal"), &s.dir] {
        let (code, _, err) = run(&["recover", &p(&db), "-o", &p(bad), "--force"]);
        assert_eq!(code, 6, "{}: {err}", bad.display());
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert_eq!(dir_hashes(db.parent().unwrap()), before);
    // Damage makes the outcome partial (exit 1).
    let leaf = pages_of(&db, "events", "leaf")[0];
    s.conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let db2 = copy_set(&s.live, &case_dir(&s, "cli2"), "memory.db");
    zero_page(&db2, leaf, 1024);
    let (code, stdout, _) = run(&[
        "recover",
        &p(&db2),
        "-o",
        &p(&s.dir.join("out2.db")),
        "--json",
    ]);
    assert_eq!(code, 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["outcome"], "partial");
    let _ = WalChoice::Auto;
}

#[test]
fn hot_journal_is_rolled_back() {
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("live.db");
    let c = Connection::open(&live).unwrap();
    c.execute_batch(
        "PRAGMA page_size=1024; PRAGMA journal_mode=DELETE; PRAGMA cache_size=5;
         CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 400)
         INSERT INTO notes SELECT i, printf('note %d %.60c', i, 'x') FROM n;",
    )
    .unwrap();
    let before = sqlite_state(&c);
    // A transaction that spills changed pages into the database file, then
    // a copy of the files as a crash would leave them.
    c.execute_batch(
        "BEGIN; UPDATE notes SET body = 'changed ' || id; DELETE FROM notes WHERE id > 300;
         INSERT INTO notes(body) SELECT body FROM notes;",
    )
    .unwrap();
    let dir = tmp.path().join("crashed");
    std::fs::create_dir(&dir).unwrap();
    let db = dir.join("memory.db");
    std::fs::copy(&live, &db).unwrap();
    std::fs::copy(side(&live, "-journal"), side(&db, "-journal")).unwrap();
    c.execute_batch("ROLLBACK").unwrap();
    assert_ne!(
        std::fs::read(&live).unwrap(),
        std::fs::read(&db).unwrap(),
        "the file was changed mid-transaction"
    );
    let out = tmp.path().join("out.db");
    let hashes = dir_hashes(&dir);
    let r = recover_no_sync(&db, &out).unwrap();
    assert_eq!(dir_hashes(&dir), hashes, "inputs unchanged");
    let j = r.journal.as_ref().expect("journal used");
    assert!(j.pages > 0);
    let got = sqlite_state(&Connection::open(&out).unwrap());
    assert_same_state(&got, &before, "rolled back");
    // SQLite itself rolls the same journal back.
    let view = tempfile::tempdir().unwrap();
    let v = view.path().join("v.db");
    std::fs::copy(&db, &v).unwrap();
    std::fs::copy(side(&db, "-journal"), side(&v, "-journal")).unwrap();
    assert_same_state(
        &sqlite_state(&Connection::open(&v).unwrap()),
        &before,
        "sqlite",
    );
}

#[test]
fn history_keeps_older_versions_only() {
    let s = store(1024, "UTF-8", 20, 12);
    let history = history_of(&s.states);
    let last = keys(s.states.last().unwrap());
    let db = copy_set(&s.live, &case_dir(&s, "hist"), "memory.db");
    let out = s.dir.join("hist-out.db");
    let opts = RecoverOptions {
        history: true,
        no_sync: true,
        ..Default::default()
    };
    let r = recover(&db, &out, &opts).unwrap();
    assert!(!r.history.is_empty(), "older versions exist in the WAL");
    let c = Connection::open(&out).unwrap();
    // The recovered tables themselves are exactly the last commit.
    let mut main = sqlite_state(&c);
    main.retain(|t, _| !t.ends_with("__history"));
    assert_eq!(keys(&main), last);
    for (table, n) in &r.history {
        let base = table.trim_end_matches("__history");
        let cols: Vec<String> = c
            .prepare(&format!("SELECT name FROM pragma_table_info('{base}')"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let list = cols
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(",");
        let mut st = c
            .prepare(&format!("SELECT salvage_rowid, {list} FROM \"{table}\""))
            .unwrap();
        let ncol = st.column_count();
        let rows: Vec<String> = st
            .query_map([], |r| {
                let vals: Vec<_> = (1..ncol)
                    .map(|i| from_sqlite(r.get_ref(i).unwrap()))
                    .collect();
                Ok(format!("{base}|{:?}", (Some(r.get::<_, i64>(0)?), vals)))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(rows.len() as u64, *n);
        for k in &rows {
            assert!(history.contains(k), "history row never committed: {k}");
            assert!(
                !last.contains(k),
                "history row equal to the current one: {k}"
            );
        }
    }
}

#[test]
fn no_schema_at_all_gives_tables_by_shape() {
    let s = store(4096, "UTF-8", 60, 0);
    let truth = s.states.last().unwrap().clone();
    let db = copy_set(&s.live, &case_dir(&s, "noschema"), "memory.db");
    zero_page(&db, 1, 4096);
    let out = s.dir.join("noschema-out.db");
    let r = recover_no_sync(&db, &out).unwrap();
    let by_name: HashMap<String, u64> = r.inferred_tables.iter().cloned().collect();
    assert_eq!(
        by_name.get("recovered_rows_5").copied(),
        Some(truth["memories"].len() as u64),
        "{by_name:?}"
    );
    assert_eq!(
        by_name.get("recovered_rows_4").copied(),
        Some(truth["events"].len() as u64),
        "{by_name:?}"
    );
    // Every inferred memories row is a committed row, value for value.
    let c = Connection::open(&out).unwrap();
    let mut st = c
        .prepare("SELECT salvage_rowid, c0, c1, c2, c3, c4 FROM recovered_rows_5")
        .unwrap();
    let rows: HashSet<String> = st
        .query_map([], |r| {
            let vals: Vec<_> = (1..6).map(|i| from_sqlite(r.get_ref(i).unwrap())).collect();
            Ok(format!("memories|{:?}", (Some(r.get::<_, i64>(0)?), vals)))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(rows.len(), truth["memories"].len());
    assert!(rows.is_subset(&keys(&truth)));
}

#[test]
fn autoincrement_sequence_is_restored() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("seq.db");
    let c = Connection::open(&db).unwrap();
    c.execute_batch(
        "CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT, v);
         INSERT INTO a(v) VALUES (1), (2), (3), (4);
         DELETE FROM a WHERE id >= 3;",
    )
    .unwrap();
    drop(c);
    let out = tmp.path().join("seq-out.db");
    recover_no_sync(&db, &out).unwrap();
    let c = Connection::open(&out).unwrap();
    let seq: i64 = c
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'a'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(seq, 4, "the next id stays 5, as in the source");
    c.execute("INSERT INTO a(v) VALUES (5)", []).unwrap();
    assert_eq!(c.last_insert_rowid(), 5);
}

#[test]
fn a_migration_that_replaces_every_table_keeps_its_wal() {
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("live.db");
    let c = wal_conn(&live, 1024);
    c.execute_batch(
        "CREATE TABLE old_a(x); CREATE TABLE old_b(y); INSERT INTO old_a VALUES(1);
         PRAGMA wal_checkpoint(TRUNCATE);
         DROP TABLE old_a; DROP TABLE old_b;
         CREATE TABLE fresh(z); INSERT INTO fresh VALUES('migrated');",
    )
    .unwrap();
    let dir = tmp.path().join("m");
    std::fs::create_dir(&dir).unwrap();
    let db = copy_set(&live, &dir, "memory.db");
    let out = tmp.path().join("m-out.db");
    let r = recover_no_sync(&db, &out).unwrap();
    assert!(r.wal_rejected.is_none(), "{:?}", r.wal_rejected);
    let got = sqlite_state(&Connection::open(&out).unwrap());
    assert_same_state(&got, &sqlite_state(&c), "migrated");
}

#[test]
fn a_very_wide_unattributed_record_does_not_fail_the_recovery() {
    // A table of 1999 columns whose schema is lost with page 1: its rows go
    // into a table named by their shape, which must stay within SQLite's
    // 2000-column limit together with its provenance columns.
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("wide.db");
    let c = Connection::open(&db).unwrap();
    let cols: Vec<String> = (0..1999).map(|i| format!("c{i}")).collect();
    c.execute_batch(&format!(
        "CREATE TABLE wide({}); INSERT INTO wide(c0, c1998) VALUES(1, 'last');",
        cols.join(", ")
    ))
    .unwrap();
    drop(c);
    let mut b = std::fs::read(&db).unwrap();
    b[..4096].fill(0);
    std::fs::write(&db, b).unwrap();
    let out = tmp.path().join("wide-out.db");
    let r = recover_no_sync(&db, &out).unwrap();
    assert_eq!(r.inferred_tables.len(), 1, "{:?}", r.inferred_tables);
    let ic = integrity(&Connection::open(&out).unwrap());
    assert_eq!(ic, "ok");
}

#[test]
fn tree_rows_that_break_a_unique_constraint_keep_the_first() {
    // Two rows of a table's own tree with the same UNIQUE value (the
    // table page was altered behind SQLite's back): the first is kept in
    // the table, the second (another row, not a duplicate) in
    // lost_and_found, and the output is sound.
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("dup.db");
    let c = Connection::open(&db).unwrap();
    c.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, u TEXT UNIQUE, v);
         INSERT INTO t VALUES (1, 'dup-A', 'first'), (2, 'dup-B', 'second'), (3, 'dup-C', 'third');",
    )
    .unwrap();
    let root: i64 = c
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = 't'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(c);
    let mut b = std::fs::read(&db).unwrap();
    let page = &mut b[(root as usize - 1) * 4096..root as usize * 4096];
    let at = page.windows(5).position(|w| w == b"dup-B").unwrap();
    page[at..at + 5].copy_from_slice(b"dup-A");
    std::fs::write(&db, &b).unwrap();

    let out = tmp.path().join("out.db");
    let r = recover_no_sync(&db, &out).unwrap();
    let t = r.tables.iter().find(|t| t.name == "t").unwrap();
    assert_eq!((t.duplicates_skipped, t.conflicts), (0, 1));
    assert_eq!(r.lost_and_found, 1);
    let o = Connection::open(&out).unwrap();
    let kept: (i64, String, String) = o
        .query_row("SELECT rowid_found, c1, c2 FROM lost_and_found", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(kept, (2, "dup-A".into(), "second".into()));
    let ic = integrity(&o);
    assert_eq!(ic, "ok");
    let rows: Vec<(i64, String, String)> = o
        .prepare("SELECT id, u, v FROM t ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        rows,
        vec![
            (1, "dup-A".into(), "first".into()),
            (3, "dup-C".into(), "third".into())
        ]
    );
}

/// A leaf whose cell count or pointer array is damaged while its cells are
/// intact: the cells its pointers miss are carved from its content area.
/// Rows deleted from it before (their bytes linger in freeblocks and below
/// the content area) do not come back, in the table or in lost_and_found.
#[test]
fn a_leaf_with_damaged_pointers_gives_back_its_rows_not_its_deleted_ones() {
    use sqlite_salvage::format::cell::Cell;
    use sqlite_salvage::format::page::BtreePage;
    for indexed in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("t.db");
        let c = Connection::open(&p).unwrap();
        c.execute_batch(
            "PRAGMA page_size=4096; PRAGMA secure_delete=OFF;
             CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000)
             INSERT INTO t SELECT i, printf('value %d %.50c', i, 'x') FROM n;",
        )
        .unwrap();
        if indexed {
            c.execute_batch("CREATE INDEX t_v ON t(v)").unwrap();
        }
        let leaf: u32 = c
            .query_row(
                "SELECT pageno FROM dbstat WHERE name='t' AND pagetype='leaf' ORDER BY pageno LIMIT 1 OFFSET 5",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let at = (leaf as usize - 1) * 4096;
        let page_of = || std::fs::read(&p).unwrap()[at..at + 4096].to_vec();
        // The row whose cell starts the content area: deleted, its bytes
        // stay below the new start. Two of every 7 rows, side by side:
        // deleted into freeblocks, the second cell's bytes left whole.
        let before = page_of();
        let bp = BtreePage::parse(&before, leaf, 4096).unwrap();
        let mut top = None;
        for i in 0..bp.cell_count {
            if bp.cell_offset(i).unwrap() == bp.content_start as usize {
                if let Ok(Cell::TableLeaf { rowid, .. }) = bp.cell(i) {
                    top = Some(rowid);
                }
            }
        }
        let top = top.expect("a cell at the content start");
        c.execute("DELETE FROM t WHERE id = ?1 OR id % 7 IN (0, 1)", [top])
            .unwrap();
        let deleted: Vec<i64> = (1..=2000).filter(|i| i % 7 <= 1 || *i == top).collect();
        let truth = keys(&sqlite_state(&c));
        drop(c);
        let clean = page_of();
        let cp = BtreePage::parse(&clean, leaf, 4096).unwrap();
        assert!(
            cp.content_start > bp.content_start,
            "residue below the content area"
        );
        assert!(cp.first_freeblock != 0, "freeblocks");
        let n = usize::from(cp.cell_count);
        for what in [
            "cell count filling the page",
            "cell count zero",
            "pointer array zeroed",
        ] {
            let db = tmp.path().join("damaged.db");
            let mut bytes = std::fs::read(&p).unwrap();
            let b = &mut bytes[at..at + 4096];
            match what {
                "cell count filling the page" => b[3..5].copy_from_slice(&2044u16.to_be_bytes()),
                "cell count zero" => b[3..5].fill(0),
                _ => b[8..8 + 2 * n].fill(0),
            }
            std::fs::write(&db, &bytes).unwrap();
            let ic = integrity(&Connection::open(&db).unwrap());
            assert_ne!(ic, "ok", "{what}: SQLite sees the damage");
            let out = tmp.path().join("out.db");
            let _ = std::fs::remove_file(&out);
            let opts = RecoverOptions {
                no_sync: true,
                ..Default::default()
            };
            recover(&db, &out, &opts).unwrap();
            let got = sqlite_state(&Connection::open(&out).unwrap());
            let text: String = format!("{got:?}");
            for d in &deleted {
                assert!(
                    !text.contains(&format!("\"value {d} x")),
                    "{what}, indexed {indexed}: deleted row {d} came back"
                );
            }
            let in_t = keys(&got);
            if indexed {
                // Confirmed by the index: every row back in its table.
                let missing: Vec<_> = truth.difference(&in_t).take(3).collect();
                let extra: Vec<_> = in_t.difference(&truth).take(3).collect();
                assert!(
                    missing.is_empty() && extra.is_empty(),
                    "{what}: missing {missing:?}, extra {extra:?}"
                );
            } else {
                // Unconfirmed rows wait in lost_and_found: none is lost.
                let missing = truth.difference(&in_t).count();
                let lost = got.get("lost_and_found").map_or(0, Vec::len);
                assert!(in_t.is_subset(&truth), "{what}");
                assert_eq!(missing, lost, "{what}");
            }
        }
    }
}

/// With `--history`, the older versions of a leaf whose newest version is
/// damaged (its cell count zeroed in the WAL) are kept like any other
/// page's: the rows as they were before the update, in t__history.
#[test]
fn history_keeps_the_older_versions_of_a_damaged_leaf() {
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("live.db");
    let c = wal_conn(&live, 4096);
    c.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 300)
         INSERT INTO t SELECT i, printf('old %d %.40c', i, 'x') FROM n;
         PRAGMA wal_checkpoint(TRUNCATE);
         UPDATE t SET v = printf('new %d %.40c', id, 'y');",
    )
    .unwrap();
    let leaf: u32 = c
        .query_row(
            "SELECT pageno FROM dbstat WHERE name='t' AND pagetype='leaf' LIMIT 1 OFFSET 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let dir = tmp.path().join("in");
    std::fs::create_dir(&dir).unwrap();
    let db = copy_set(&live, &dir, "t.db");
    let _ = std::fs::remove_file(side(&db, "-shm"));
    let wal = side(&db, "-wal");
    let idx = WalIndex::scan(&wal).unwrap().unwrap();
    let frame = idx.frames.iter().rev().find(|f| f.pgno == leaf).unwrap();
    edit_frame(&wal, frame.index, |f| f[24 + 3..24 + 5].fill(0));
    let out = tmp.path().join("out.db");
    let opts = RecoverOptions {
        history: true,
        no_sync: true,
        ..Default::default()
    };
    let r = recover(&db, &out, &opts).unwrap();
    let o = Connection::open(&out).unwrap();
    let old: Vec<String> = o
        .prepare("SELECT v FROM t__history")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(!old.is_empty(), "{:?}", r.history);
    assert!(old.iter().all(|v| v.starts_with("old ")), "{old:?}");
    // Every row is back (the damaged leaf's carved from its content), each
    // as of the update, in t or, unconfirmed, in lost_and_found.
    let rows: i64 = o
        .query_row("SELECT count(*) FROM t WHERE v LIKE 'new %'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let lost: i64 = o
        .query_row("SELECT count(*) FROM lost_and_found", [], |r| r.get(0))
        .unwrap_or(0);
    assert_eq!(rows + lost, 300);
    // The damaged leaf's rows, unconfirmed, wait in lost_and_found; their
    // versions from before the update are in the history.
    assert!(lost > 0);
    let older: i64 = o
        .query_row(
            "SELECT count(*) FROM t__history WHERE v LIKE 'old %'
             AND salvage_rowid IN (SELECT rowid_found FROM lost_and_found)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(older, lost, "{:?}", r.history);
}
