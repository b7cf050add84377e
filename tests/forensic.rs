//! `recover --deleted` on the public SQLite Forensic Corpus (Nemetz,
//! Schmitt, Freiling, DFRWS 2018; CC0), category 0C "deleted records":
//! ten databases whose deleted rows its XML ground truth lists, kept in
//! `corpus/forensic/` with that truth as `deleted.json`. Every row a
//! `__deleted` table gives must be one of them; 91 of the 101 come back.

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
    let (mut deleted, mut found, mut reported, mut wrong) = (0, 0, 0, 0);
    for (file, tables) in &truth {
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
            (deleted, found, reported, wrong) = (
                deleted + want.len(),
                found + hits.len(),
                reported + got.len(),
                wrong + bad,
            );
        }
    }
    println!(
        "forensic corpus 0C: {found} of {deleted} deleted records, {wrong} wrong of {reported}"
    );
    assert_eq!(deleted, 101);
    assert_eq!(wrong, 0, "rows reported deleted that were not");
    assert!(found >= 91, "{found} of {deleted}");
}
