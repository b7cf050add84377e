//! `recover --deleted` on the public SQLite Forensic Corpus (Nemetz,
//! Schmitt, Freiling, DFRWS 2018; CC0), categories 0A "deleted tables"
//! (five databases whose tables were dropped), 0C "deleted records" (ten
//! whose rows were deleted one by one), 0D "overwritten records" and 0E
//! "deleted overflow pages", kept in `corpus/forensic/` with the deleted
//! rows of their XML ground truth as `deleted.json`. Every row a
//! `__deleted` table gives must be one of them; every one of 0A and 0C
//! comes back (their bytes are all still in the files).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use rusqlite::types::Value;

use crate::common::*;

/// A value as the truth and the output are compared: numbers by their
/// value, text as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum V {
    Null,
    Num(i128),
    Text(String),
}

fn from_json(v: &serde_json::Value) -> V {
    match v {
        serde_json::Value::Null => V::Null,
        serde_json::Value::Number(n) => V::Num(n.as_f64().map_or(0, |f| (f * 1e6).round() as i128)),
        serde_json::Value::String(s) => V::Text(s.clone()),
        other => V::Text(other.to_string()),
    }
}

fn from_sql(v: Value) -> V {
    match v {
        Value::Null => V::Null,
        Value::Integer(i) => V::Num(i128::from(i) * 1_000_000),
        Value::Real(f) => V::Num((f * 1e6).round() as i128),
        Value::Text(s) => V::Text(s),
        Value::Blob(b) => V::Text(format!("{b:?}")),
    }
}

#[test]
fn deleted_records_of_the_forensic_corpus_come_back() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/forensic");
    let truth: BTreeMap<String, BTreeMap<String, Vec<Vec<serde_json::Value>>>> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("deleted.json")).unwrap()).unwrap();
    // Per category (the file name's first two characters): deleted,
    // found, reported, wrong.
    let mut tally: BTreeMap<String, [usize; 4]> = BTreeMap::new();
    for (file, tables) in &truth {
        let t = tally.entry(file.chars().take(2).collect()).or_default();
        let tmp = tempfile::tempdir().unwrap();
        let input = tmp.path().join(file);
        std::fs::copy(dir.join(file), &input).unwrap();
        let out = tmp.path().join("out.db");
        let (_, conn) = recover_deleted(&input, &out, file);
        for (table, rows) in tables {
            let want: HashSet<Vec<V>> = rows
                .iter()
                .map(|r| r.iter().map(from_json).collect())
                .collect();
            let width = rows.first().map_or(0, Vec::len);
            let got: Vec<Vec<V>> = conn
                .prepare(&format!("SELECT * FROM \"{table}__deleted\""))
                .map(|mut st| {
                    st.query_map([], |r| {
                        (0..width)
                            .map(|i| r.get::<_, Value>(i).map(from_sql))
                            .collect()
                    })
                    .unwrap()
                    .map(|r| r.unwrap())
                    .collect()
                })
                .unwrap_or_default();
            let hits: HashSet<&Vec<V>> = got.iter().filter(|r| want.contains(*r)).collect();
            let bad = got.iter().filter(|r| !want.contains(*r)).count();
            println!(
                "{file} {table}: deleted {}, found {}, reported {}, wrong {bad}",
                want.len(),
                hits.len(),
                got.len()
            );
            for (k, n) in [want.len(), hits.len(), got.len(), bad]
                .into_iter()
                .enumerate()
            {
                t[k] += n;
            }
        }
    }
    // Per category: its deleted records, and how many come back. In 0D
    // newer rows overwrote most deleted ones (20 of 45 keep their values in
    // the file, one of them cut by a newer row); in 0E most deleted rows'
    // overflow pages were taken again.
    let want = [
        ("0A", 100, 100),
        ("0C", 101, 101),
        ("0D", 45, 19),
        ("0E", 12, 4),
    ];
    for (cat, [deleted, found, reported, wrong]) in &tally {
        println!(
            "forensic corpus {cat}: {found} of {deleted} deleted records, {wrong} wrong of {reported}"
        );
        assert_eq!(*wrong, 0, "{cat}: rows reported deleted that were not");
    }
    for (cat, deleted, found) in want {
        let t = tally.get(cat).copied().unwrap_or_default();
        assert_eq!(t[0], deleted, "{cat}");
        assert!(t[1] >= found, "{cat}: {} of {deleted}", t[1]);
    }
}
