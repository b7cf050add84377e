//! Our reader against SQLite on generated databases of every layout.

use std::path::Path;

use rusqlite::{Connection, params};
use sqlite_salvage::check::{Role, check};
use sqlite_salvage::dump::{DumpOptions, Format, dump};
use sqlite_salvage::{Database, WalChoice};

use crate::common::*;

const INTS: &[i64] = &[
    0,
    1,
    -1,
    2,
    127,
    128,
    -128,
    -129,
    255,
    32767,
    32768,
    -32768,
    -32769,
    8_388_607,
    8_388_608,
    -8_388_608,
    -8_388_609,
    2_147_483_647,
    2_147_483_648,
    -2_147_483_648,
    -2_147_483_649,
    140_737_488_355_327,
    140_737_488_355_328,
    -140_737_488_355_328,
    -140_737_488_355_329,
    i64::MAX,
    i64::MIN,
];

const REALS: &[f64] = &[
    0.0,
    -0.0,
    1.5,
    -2.25,
    1e300,
    -1e-300,
    f64::MIN_POSITIVE,
    f64::MAX,
    f64::INFINITY,
    f64::NEG_INFINITY,
    3.0,
    1e15,
];

struct Layout {
    page_size: u32,
    encoding: &'static str,
    auto_vacuum: &'static str,
    reserved: u8,
}

/// Builds a database exercising every serial type, spill threshold and
/// table kind. Returns the path.
fn build(dir: &Path, l: &Layout) -> std::path::PathBuf {
    let path = dir.join(format!(
        "db-{}-{}-{}-{}.db",
        l.page_size, l.encoding, l.auto_vacuum, l.reserved
    ));
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(&format!(
            "PRAGMA page_size={}; PRAGMA encoding='{}'; PRAGMA auto_vacuum={}; PRAGMA user_version=7; VACUUM;",
            l.page_size, l.encoding, l.auto_vacuum
        ))
        .unwrap();
    }
    if l.reserved > 0 {
        set_reserved(&path, l.page_size, l.reserved);
    }
    let c = Connection::open(&path).unwrap();
    // The encoding is fixed when the first table is created.
    c.execute_batch(&format!("PRAGMA encoding='{}';", l.encoding))
        .unwrap();
    let usable = l.page_size - u32::from(l.reserved);
    c.execute_batch(
        "BEGIN;
         CREATE TABLE vals(a, b TEXT, c REAL, d INT, e BLOB, f NUMERIC);
         CREATE TABLE ipk(id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, meta TEXT);
         CREATE INDEX ipk_name ON ipk(name);
         CREATE UNIQUE INDEX ipk_meta ON ipk(meta, id);
         CREATE TABLE wr(a TEXT, b INTEGER, c BLOB, d, PRIMARY KEY(b, a)) WITHOUT ROWID;
         CREATE TABLE spill(id INTEGER PRIMARY KEY, body BLOB);
         CREATE TABLE spillidx(k BLOB PRIMARY KEY, v) WITHOUT ROWID;
         CREATE TABLE auto(id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT);
         CREATE TABLE gen(a INT, b INT AS (a*2) VIRTUAL, c INT AS (a*3) STORED, d TEXT);
         CREATE TABLE desc_pk(x INTEGER PRIMARY KEY DESC, y);
         CREATE TABLE alt(x INTEGER, y TEXT);
         CREATE VIEW v_ipk AS SELECT id, name FROM ipk;
         CREATE TRIGGER t_auto AFTER INSERT ON auto BEGIN UPDATE vals SET f = f WHERE 0; END;
         COMMIT;",
    )
    .unwrap();
    c.execute_batch("BEGIN").unwrap();
    for (i, v) in INTS.iter().enumerate() {
        c.execute(
            "INSERT INTO vals VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                v,
                format!("t{i}"),
                *v as f64,
                v,
                v.to_be_bytes().to_vec(),
                v
            ],
        )
        .unwrap();
    }
    for r in REALS {
        c.execute(
            "INSERT INTO vals VALUES(?1, NULL, ?1, ?1, NULL, ?1)",
            params![r],
        )
        .unwrap();
    }
    c.execute_batch(
        "INSERT INTO vals VALUES(NULL, '', 2, 2.0, x'', '12');
         INSERT INTO vals VALUES('héllo ☃ 𝄞', 'ünïcödé', '1.25', '7', 'text in blob column', 'x');
         INSERT INTO vals VALUES(x'00ff00', 'it''s', -0.0, 1e3, zeroblob(10), 1e20);",
    )
    .unwrap();
    let mut rng = Rng(l.page_size as u64 * 31 + u64::from(l.reserved) + 7);
    for i in 0..600 {
        let name = format!(
            "name-{:05}-{}",
            rng.below(100_000),
            "x".repeat((i % 40) as usize)
        );
        c.execute(
            "INSERT INTO ipk(id, name, score, meta) VALUES(?1, ?2, ?3, ?4)",
            params![i * 3 + 1, name, (i as f64) * 0.5, format!("{{\"k\":{i}}}")],
        )
        .unwrap();
    }
    for i in 0..400i64 {
        c.execute(
            "INSERT INTO wr VALUES(?1, ?2, ?3, ?4)",
            params![
                format!("key{}", i % 37),
                i / 3,
                rng.bytes((i % 50) as usize),
                i
            ],
        )
        .unwrap();
    }
    // Payload sizes around every spill threshold, and long chains.
    let u = i64::from(usable);
    let max_table = u - 35;
    let max_index = ((u - 12) * 64 / 255) - 23;
    let min_local = ((u - 12) * 32 / 255) - 23;
    let mut sizes = Vec::new();
    for base in [
        max_table,
        min_local,
        max_table + (u - 4),
        2 * (u - 4) + min_local,
    ] {
        for d in -6..=6 {
            sizes.push(base + d);
        }
    }
    sizes.extend([0, 1, 3 * u + 17, 7 * u]);
    for (i, s) in sizes.iter().enumerate() {
        // Record: header (3-4 bytes) + blob; aim the payload at the size.
        let len = (*s - 4).max(0) as usize;
        c.execute(
            "INSERT INTO spill VALUES(?1, ?2)",
            params![i as i64 + 1, rng.bytes(len)],
        )
        .unwrap();
    }
    let mut isizes = Vec::new();
    for base in [max_index, min_local, max_index + (u - 4)] {
        for d in -6..=6 {
            isizes.push(base + d);
        }
    }
    isizes.push(3 * u);
    for (i, s) in isizes.iter().enumerate() {
        let mut k = rng.bytes((*s - 5).max(1) as usize);
        k[0] = i as u8;
        c.execute("INSERT INTO spillidx VALUES(?1, ?2)", params![k, i as i64])
            .unwrap();
    }
    for i in 0..30 {
        c.execute("INSERT INTO auto(v) VALUES(?1)", params![format!("a{i}")])
            .unwrap();
        c.execute(
            "INSERT INTO gen(a, d) VALUES(?1, ?2)",
            params![i, format!("g{i}")],
        )
        .unwrap();
        c.execute("INSERT INTO desc_pk VALUES(?1, ?2)", params![i * 7, i])
            .unwrap();
    }
    c.execute("DELETE FROM auto WHERE id % 4 = 0", []).unwrap();
    for i in 0..20 {
        c.execute(
            "INSERT INTO alt VALUES(?1, ?2)",
            params![i, format!("before{i}")],
        )
        .unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
    c.execute_batch(
        "ALTER TABLE alt ADD COLUMN z TEXT DEFAULT 'zz';
         ALTER TABLE alt ADD COLUMN w REAL DEFAULT 3;
         ALTER TABLE alt ADD COLUMN v DEFAULT NULL;
         ALTER TABLE alt ADD COLUMN u INT DEFAULT -7;
         ALTER TABLE alt ADD COLUMN t BLOB DEFAULT x'cafe';
         ALTER TABLE alt ADD COLUMN s NUMERIC DEFAULT '42';",
    )
    .unwrap();
    for i in 20..30 {
        c.execute(
            "INSERT INTO alt(x, y, z, w) VALUES(?1, ?2, ?3, ?4)",
            params![i, format!("after{i}"), format!("z{i}"), i as f64],
        )
        .unwrap();
    }
    // Freed pages: a table filled and dropped.
    c.execute_batch(
        "CREATE TABLE junk(x); 
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 60)
         INSERT INTO junk SELECT randomblob(700) FROM n;
         DROP TABLE junk;",
    )
    .unwrap();
    drop(c);
    path
}

fn layouts() -> Vec<Layout> {
    let encs = ["UTF-8", "UTF-16le", "UTF-16be"];
    let avs = ["NONE", "FULL", "INCREMENTAL"];
    let mut out = Vec::new();
    for (i, ps) in [512u32, 1024, 2048, 4096, 8192, 16384, 32768, 65536]
        .into_iter()
        .enumerate()
    {
        for j in 0..2 {
            out.push(Layout {
                page_size: ps,
                encoding: encs[(i + j) % 3],
                auto_vacuum: avs[(i + 2 * j) % 3],
                reserved: if j == 1 && i % 2 == 0 { 32 } else { 0 },
            });
        }
    }
    out
}

/// dbstat's count of pages per kind: (interior, leaf, overflow).
fn dbstat_counts(conn: &Connection) -> (u64, u64, u64) {
    let q = |t: &str| -> u64 {
        conn.query_row(
            &format!("SELECT count(*) FROM dbstat WHERE pagetype='{t}'"),
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as u64
    };
    (q("internal"), q("leaf"), q("overflow"))
}

#[test]
fn every_layout_matches_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    for l in layouts() {
        let path = build(tmp.path(), &l);
        let what = format!(
            "page size {} {} auto_vacuum {} reserved {}",
            l.page_size, l.encoding, l.auto_vacuum, l.reserved
        );
        let conn =
            Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let theirs = sqlite_state(&conn);
        let db = Database::open_with(&path, WalChoice::Ignore).unwrap();
        let snap = db.latest().unwrap();
        assert_eq!(snap.header().page_size, l.page_size, "{what}");
        assert_eq!(
            snap.header().usable_size,
            l.page_size - u32::from(l.reserved)
        );
        assert_eq!(snap.header().encoding.name(), l.encoding, "{what}");
        let ours = our_state(&snap);
        assert_same_state(&ours, &theirs, &what);

        // Structural check: clean, and page kinds agree with dbstat.
        let report = check(&snap).unwrap();
        assert!(report.is_ok(), "{what}: {:?}", report.damage);
        let (interior, leaf, overflow) = dbstat_counts(&conn);
        let n = |r: Role| report.pages.get(&r).copied().unwrap_or(0);
        assert_eq!(
            n(Role::TableInterior) + n(Role::IndexInterior),
            interior,
            "{what}"
        );
        assert_eq!(n(Role::TableLeaf) + n(Role::IndexLeaf), leaf, "{what}");
        assert_eq!(n(Role::Overflow), overflow, "{what}");
        let freelist: i64 = conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            (n(Role::FreelistTrunk) + n(Role::FreelistLeaf)) as i64,
            freelist,
            "{what}"
        );
        if l.auto_vacuum == "NONE" {
            assert!(freelist > 0, "{what}: the dropped table left free pages");
        } else {
            assert!(n(Role::PointerMap) > 0, "{what}");
        }

        // The SQL dump rebuilds an equal database.
        let mut sql = Vec::new();
        dump(
            &snap,
            &snap.schema().unwrap(),
            &DumpOptions::default(),
            &mut sql,
        )
        .unwrap();
        let rebuilt = Connection::open_in_memory().unwrap();
        rebuilt
            .execute_batch(&format!("PRAGMA encoding='{}';", l.encoding))
            .unwrap();
        rebuilt
            .execute_batch(std::str::from_utf8(&sql).unwrap())
            .unwrap_or_else(|e| panic!("{what}: dump does not load: {e}"));
        assert_same_state(
            &sqlite_state(&rebuilt),
            &theirs,
            &format!("{what} (sql dump)"),
        );

        // recover writes the same rows into a file SQLite accepts.
        let out = tmp.path().join("recovered.db");
        let opts = sqlite_salvage::recover::RecoverOptions {
            no_sync: true,
            force: true,
            ..Default::default()
        };
        let r = sqlite_salvage::recover::recover(&path, &out, &opts)
            .unwrap_or_else(|e| panic!("{what}: recover: {e}"));
        assert_eq!(
            r.outcome,
            sqlite_salvage::recover::Outcome::Complete,
            "{what}"
        );
        let rc = Connection::open(&out).unwrap();
        let ic = integrity(&rc);
        assert_eq!(ic, "ok", "{what}: recovered");
        assert_same_state(&sqlite_state(&rc), &theirs, &format!("{what} (recovered)"));

        // JSON lines: one parseable object per row.
        let mut jl = Vec::new();
        let opts = DumpOptions {
            format: Format::Jsonl,
            table: None,
        };
        let stats = dump(&snap, &snap.schema().unwrap(), &opts, &mut jl).unwrap();
        let total: usize = theirs.values().map(Vec::len).sum();
        assert_eq!(stats.rows as usize, total, "{what}");
        let lines: Vec<serde_json::Value> = std::str::from_utf8(&jl)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), total, "{what}");
    }
}

#[test]
fn trees_three_levels_deep() {
    let tmp = tempfile::tempdir().unwrap();
    for ps in [512u32, 1024] {
        let path = tmp.path().join(format!("deep{ps}.db"));
        let c = Connection::open(&path).unwrap();
        c.execute_batch(&format!(
            "PRAGMA page_size={ps};
             CREATE TABLE deep(id INTEGER PRIMARY KEY, k TEXT, v BLOB);
             CREATE INDEX deep_k ON deep(k);
             CREATE TABLE deepwr(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 30000)
             INSERT INTO deep SELECT i*2, printf('key-%08d', (i*7919) % 30011), randomblob(i % 30) FROM n;
             INSERT INTO deepwr SELECT k || id, id FROM deep;"
        ))
        .unwrap();
        let depth: i64 = c
            .query_row(
                "SELECT max(length(path) - length(replace(path, '/', ''))) FROM dbstat WHERE name IN ('deep','deep_k','deepwr') AND pagetype != 'overflow'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(depth >= 3, "page size {ps}: depth {depth}");
        let theirs = sqlite_state(&c);
        let db = Database::open(&path).unwrap();
        let snap = db.latest().unwrap();
        assert_same_state(&our_state(&snap), &theirs, &format!("deep {ps}"));
        let r = check(&snap).unwrap();
        assert!(r.is_ok(), "{:?}", r.damage);
        // recover rebuilds trees as deep, page by page.
        let out = tmp.path().join(format!("deep{ps}-recovered.db"));
        recover_no_sync(&path, &out).unwrap();
        let rc = Connection::open(&out).unwrap();
        let ic = integrity(&rc);
        assert_eq!(ic, "ok", "deep {ps}: recovered");
        assert_same_state(
            &sqlite_state(&rc),
            &theirs,
            &format!("deep {ps} (recovered)"),
        );
    }
}
