//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use sqlite_salvage::format::record::Record;
use sqlite_salvage::format::record::Value;
use sqlite_salvage::format::wal::{FRAME_HEADER_SIZE, WAL_HEADER_SIZE, frame_checksum};
use sqlite_salvage::rows::column_value;
use sqlite_salvage::tree::{PageVisitor, TreeCursor};
use sqlite_salvage::{Database, Snapshot};

/// A row as compared: rowid (None for WITHOUT ROWID) and values.
pub type Row = (Option<i64>, Vec<Value>);
/// Every table's rows, by table name.
pub type State = BTreeMap<String, Vec<Row>>;

pub fn from_sqlite(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef as V;
    match v {
        V::Null => Value::Null,
        V::Integer(i) => Value::Integer(i),
        V::Real(f) => Value::Real(f),
        V::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        V::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// Compares values exactly (reals by bits).
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Real(x), Value::Real(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

fn sort_key(r: &Row) -> String {
    format!("{:?}", r)
}

/// What SQLite returns for every user table (and sqlite_sequence) of `conn`:
/// stored (non-VIRTUAL) columns, in declared order, ordered by rowid or,
/// for WITHOUT ROWID tables, sorted.
pub fn sqlite_state(conn: &Connection) -> State {
    let mut names: Vec<(String, bool)> = Vec::new();
    {
        let mut st = conn
            .prepare("SELECT name, wr FROM pragma_table_list WHERE schema='main' AND type='table' AND name NOT IN ('sqlite_schema','sqlite_temp_schema')")
            .unwrap();
        let mut rows = st.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            names.push((r.get(0).unwrap(), r.get::<_, i64>(1).unwrap() != 0));
        }
    }
    let mut out = State::new();
    for (name, wr) in names {
        let cols: Vec<String> = {
            let mut st = conn
                .prepare(&format!(
                    "SELECT name FROM pragma_table_xinfo('{}') WHERE hidden IN (0,3)",
                    name.replace('\'', "''")
                ))
                .unwrap();
            st.query_map([], |r| r.get(0))
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        let list = cols
            .iter()
            .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(",");
        let q = if wr {
            format!("SELECT NULL,{list} FROM \"{name}\"")
        } else {
            format!("SELECT rowid,{list} FROM \"{name}\" ORDER BY rowid")
        };
        let mut st = conn.prepare(&q).unwrap();
        let n = st.column_count();
        let mut rows: Vec<Row> = st
            .query_map([], |r| {
                let rowid = r.get::<_, Option<i64>>(0)?;
                let vals = (1..n).map(|i| from_sqlite(r.get_ref(i).unwrap())).collect();
                Ok((rowid, vals))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        if wr {
            rows.sort_by_key(sort_key);
        }
        out.insert(name, rows);
    }
    out
}

/// The same, read by our reader from a snapshot.
pub fn our_state(snap: &Snapshot) -> State {
    let schema = snap.schema().expect("schema");
    let mut out = State::new();
    for t in &schema.tables {
        let keep: Vec<usize> = (0..t.columns.len())
            .filter(|&i| t.columns[i].slot.is_some())
            .collect();
        let mut rows: Vec<Row> = snap
            .row_iter(t)
            .map(|r| {
                let r = r.unwrap_or_else(|e| panic!("table {}: {e}", t.name));
                let vals = keep.iter().map(|&i| r.values[i].clone()).collect();
                (if t.without_rowid { None } else { r.rowid }, vals)
            })
            .collect();
        if t.without_rowid {
            rows.sort_by_key(sort_key);
        }
        out.insert(t.name.clone(), rows);
    }
    out
}

/// Asserts two states are equal, with a useful message at the first difference.
pub fn assert_same_state(ours: &State, theirs: &State, what: &str) {
    let a: Vec<&String> = ours.keys().collect();
    let b: Vec<&String> = theirs.keys().collect();
    assert_eq!(a, b, "{what}: tables differ");
    for (name, rows) in theirs {
        let mine = &ours[name];
        assert_eq!(
            mine.len(),
            rows.len(),
            "{what}: table {name}: row counts differ"
        );
        for (i, (x, y)) in mine.iter().zip(rows).enumerate() {
            let eq = x.0 == y.0
                && x.1.len() == y.1.len()
                && x.1.iter().zip(&y.1).all(|(p, q)| same(p, q));
            assert!(eq, "{what}: table {name} row {i}: ours {x:?} sqlite {y:?}");
        }
    }
}

/// Copies a database and its -wal (and -shm when present) into `dir`
/// under `name`, returning the new database path.
pub fn copy_set(src: &Path, dir: &Path, name: &str) -> PathBuf {
    let dst = dir.join(name);
    std::fs::copy(src, &dst).unwrap();
    for s in ["-wal", "-shm"] {
        let from = side(src, s);
        if from.exists() {
            std::fs::copy(&from, side(&dst, s)).unwrap();
        }
    }
    dst
}

pub fn side(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// SQLite's own view of a database + WAL, read from a private copy so the
/// originals are untouched.
pub fn sqlite_view(db: &Path) -> State {
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("view.db");
    std::fs::copy(db, &copy).unwrap();
    let wal = side(db, "-wal");
    if wal.exists() {
        std::fs::copy(&wal, side(&copy, "-wal")).unwrap();
    }
    let conn = Connection::open(&copy).unwrap();
    sqlite_state(&conn)
}

/// Our view of the latest commit.
pub fn our_view(db: &Path) -> State {
    let d = Database::open(db).unwrap();
    our_state(&d.latest().unwrap())
}

/// Sets `reserved` bytes at the end of every page of the still-empty
/// database at `path`: the header byte and page 1's cell-content start
/// (the usable size). SQLite keeps them for every page it writes after.
pub fn set_reserved(path: &Path, page_size: u32, reserved: u8) {
    let mut b = std::fs::read(path).unwrap();
    b[20] = reserved;
    let usable = page_size - u32::from(reserved);
    b[105..107].copy_from_slice(&(usable as u16).to_be_bytes());
    std::fs::write(path, b).unwrap();
}

/// A connection set up to keep every commit in the WAL.
pub fn wal_conn(path: &Path, page_size: u32) -> Connection {
    let c = Connection::open(path).unwrap();
    c.execute_batch(&format!(
        "PRAGMA page_size={page_size}; PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;"
    ))
    .unwrap();
    c
}

/// FNV-1a of a file's bytes (to show inputs are unchanged).
pub fn file_hash(p: &Path) -> u64 {
    let bytes = std::fs::read(p).unwrap();
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Name and hash of every file in `dir`.
pub fn dir_hashes(dir: &Path) -> BTreeMap<String, u64> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                file_hash(&e.path()),
            )
        })
        .collect()
}

/// Path of the CLI binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sqlite-salvage"))
}

/// Runs the CLI, returning (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(bin())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Deterministic pseudo-random numbers (xorshift).
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Between 0 and `max` random bytes.
    pub fn blob(&mut self, max: u64) -> Vec<u8> {
        let n = self.below(max) as usize;
        self.bytes(n)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Rewrites frame `index`'s header field at `field` and re-chains its
/// checksum (and every later frame's) so that only that change remains.
pub fn rewrite_frame(wal: &Path, index: u32, field: usize, value: u32) {
    edit_frame(wal, index, |f| {
        f[field..field + 4].copy_from_slice(&value.to_be_bytes())
    });
}

/// Applies `edit` to frame `index` (its 24-byte header, then its page) and
/// re-chains its checksum (and every later frame's) so that only that
/// change remains.
pub fn edit_frame(wal: &Path, index: u32, edit: impl FnOnce(&mut [u8])) {
    let mut b = std::fs::read(wal).unwrap();
    let ps = u32::from_be_bytes(b[8..12].try_into().unwrap()) as usize;
    let big = b[3] & 1 == 1;
    let fsize = FRAME_HEADER_SIZE + ps;
    let at = WAL_HEADER_SIZE + (index as usize - 1) * fsize;
    edit(&mut b[at..at + fsize]);
    let nframes = (b.len() - WAL_HEADER_SIZE) / fsize;
    for i in index as usize..=nframes {
        let at = WAL_HEADER_SIZE + (i - 1) * fsize;
        let prev_at = if i == 1 { 24 } else { at - fsize + 16 };
        let prev = (
            u32::from_be_bytes(b[prev_at..prev_at + 4].try_into().unwrap()),
            u32::from_be_bytes(b[prev_at + 4..prev_at + 8].try_into().unwrap()),
        );
        let (c1, c2) = frame_checksum(&b[at..at + 24], &b[at + 24..at + fsize], big, prev);
        b[at + 16..at + 20].copy_from_slice(&c1.to_be_bytes());
        b[at + 20..at + 24].copy_from_slice(&c2.to_be_bytes());
    }
    std::fs::write(wal, b).unwrap();
}

/// Row identity as compared: table and the row (rowid + values).
pub fn keys(state: &State) -> HashSet<String> {
    state
        .iter()
        .filter(|(t, _)| !t.starts_with("lost_and_found"))
        .flat_map(|(t, rows)| rows.iter().map(move |r| format!("{t}|{r:?}")))
        .collect()
}

pub struct Pages(pub Vec<u32>);
impl PageVisitor for Pages {
    fn overflow_page(&mut self, pgno: u32) {
        self.0.push(pgno);
    }
}

/// For every row of the latest snapshot of `db`: the pages its bytes are on.
pub fn locate(db: &Path) -> HashMap<String, Vec<u32>> {
    let d = Database::open(db).unwrap();
    let snap = d.latest().unwrap();
    let enc = snap.header().encoding;
    let schema = snap.schema().unwrap();
    let mut out = HashMap::new();
    let mut rec = Record::new();
    for t in &schema.tables {
        let keep: Vec<usize> = (0..t.columns.len())
            .filter(|&i| t.columns[i].slot.is_some())
            .collect();
        let mut cur = TreeCursor::with_visitor(&snap, t.root, Pages(Vec::new()));
        loop {
            let (key, page) = {
                let Some(e) = cur.next().unwrap() else { break };
                rec.parse(e.payload).unwrap();
                let vals: Vec<_> = keep
                    .iter()
                    .map(|&i| column_value(t, &rec, e.payload, e.rowid, i).to_owned(enc))
                    .collect();
                let row: Row = (if t.without_rowid { None } else { e.rowid }, vals);
                (format!("{}|{row:?}", t.name), e.at.page)
            };
            let mut pages = std::mem::take(&mut cur.visitor.0);
            pages.push(page);
            out.insert(key, pages);
        }
    }
    out
}

/// SQLite's `integrity_check` verdict (its first line: "ok" when sound).
pub fn integrity(conn: &Connection) -> String {
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// `recover` of `db` into `out` with default options, without fsync.
pub fn recover_no_sync(
    db: &Path,
    out: &Path,
) -> sqlite_salvage::Result<sqlite_salvage::recover::Report> {
    let opts = sqlite_salvage::recover::RecoverOptions {
        no_sync: true,
        ..Default::default()
    };
    sqlite_salvage::recover::recover(db, out, &opts)
}

/// Asserts that a recovery's report adds up and matches its output: per
/// table, the rows counted by source, by evidence and by confidence are
/// the rows in the output table, and each is exact or partial.
pub fn assert_report_adds_up(report: &sqlite_salvage::recover::Report, out: &Path, what: &str) {
    let conn = Connection::open(out).unwrap();
    for t in &report.tables {
        let rows: u64 = t.by_source.values().sum();
        let q = format!("SELECT count(*) FROM \"{}\"", t.name.replace('"', "\"\""));
        if let Ok(n) = conn.query_row(&q, [], |r| r.get::<_, i64>(0)) {
            let name = t.name.to_ascii_lowercase();
            if !name.starts_with("sqlite_") {
                assert_eq!(n as u64, rows, "{what}: {}: rows in the output", t.name);
            }
        }
        assert_eq!(t.by_evidence.values().sum::<u64>(), rows, "{what}: {t:?}");
        assert_eq!(t.by_confidence.values().sum::<u64>(), rows, "{what}: {t:?}");
        assert_eq!(t.exact + t.partial, rows, "{what}: {t:?}");
    }
}

/// The page sizes and text encodings the generated damage classes run at.
pub const LAYOUTS: [(u32, &str); 8] = [
    (512, "UTF-8"),
    (512, "UTF-16le"),
    (1024, "UTF-8"),
    (1024, "UTF-16be"),
    (4096, "UTF-8"),
    (4096, "UTF-16le"),
    (65536, "UTF-8"),
    (65536, "UTF-16be"),
];

/// `recover` of `db` into `out` (no fsync): the inputs in `watched` are
/// unchanged, the output passes SQLite's integrity check and its report
/// adds up ([`assert_report_adds_up`]).
pub fn recover_checked(
    db: &Path,
    out: &Path,
    watched: &Path,
    what: &str,
) -> (sqlite_salvage::recover::Report, Connection) {
    let opts = sqlite_salvage::recover::RecoverOptions {
        no_sync: true,
        ..Default::default()
    };
    let before = dir_hashes(watched);
    let report = sqlite_salvage::recover::recover(db, out, &opts).unwrap();
    assert_eq!(dir_hashes(watched), before, "{what}: inputs changed");
    let conn = Connection::open(out).unwrap();
    assert_eq!(integrity(&conn), "ok", "{what}");
    assert_report_adds_up(&report, out, what);
    (report, conn)
}

/// `recover --deleted` of `input` into `out` (no sync): its report and the
/// output, checked (SQLite's integrity_check, the report adds up).
pub fn recover_deleted(
    input: &Path,
    out: &Path,
    what: &str,
) -> (sqlite_salvage::recover::Report, Connection) {
    let opts = sqlite_salvage::recover::RecoverOptions {
        no_sync: true,
        deleted: true,
        ..Default::default()
    };
    let report = sqlite_salvage::recover::recover(input, out, &opts).unwrap();
    assert_report_adds_up(&report, out, what);
    let conn = Connection::open(out).unwrap();
    assert_eq!(integrity(&conn), "ok", "{what}");
    (report, conn)
}
