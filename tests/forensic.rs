//! `recover --deleted` on the public SQLite Forensic Corpus (Nemetz,
//! Schmitt, Freiling, DFRWS 2018; CC0), categories 0A "deleted tables"
//! (five databases whose tables were dropped) and 0C "deleted records"
//! (ten whose rows were deleted one by one), kept in `corpus/forensic/`
//! with the deleted rows of their XML ground truth as `deleted.json`.
//! Every row a `__deleted` table gives must be one of them, and every one
//! of them comes back (their bytes are all still in the files).

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
    for (cat, [deleted, found, reported, wrong]) in &tally {
        println!(
            "forensic corpus {cat}: {found} of {deleted} deleted records, {wrong} wrong of {reported}"
        );
        assert_eq!(*wrong, 0, "{cat}: rows reported deleted that were not");
        assert_eq!(found, deleted, "{cat}");
    }
    assert_eq!(tally.get("0A").map(|t| t[0]), Some(100));
    assert_eq!(tally.get("0C").map(|t| t[0]), Some(101));
}
