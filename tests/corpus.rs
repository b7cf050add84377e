//! The committed samples in corpus/ behave as corpus/expected.json says,
//! and as SQLite itself reads them.

use std::path::PathBuf;

use sqlite_salvage::Database;
use sqlite_salvage::check::check;

use crate::common::*;

#[test]
fn samples_match_their_expected_outcomes() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("expected.json")).unwrap())
            .unwrap();
    let samples = expected.as_object().unwrap();
    assert!(samples.len() >= 3);
    for (name, want) in samples {
        let db = root.join(name).join("memory.db");
        let before = dir_hashes(&root.join(name));
        let d = Database::open(&db).unwrap();
        assert_eq!(
            u64::from(d.commit_count()),
            want["commits"].as_u64().unwrap(),
            "{name}"
        );
        let snap = d.latest().unwrap();
        let report = check(&snap).unwrap();
        let mut damaged: Vec<u64> = report.damage.iter().map(|x| u64::from(x.page)).collect();
        damaged.sort_unstable();
        damaged.dedup();
        let want_damaged: Vec<u64> = want["damaged_pages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(damaged, want_damaged, "{name}: {:?}", report.damage);
        if let Some(rows) = want["rows"].as_object() {
            let ours = our_state(&snap);
            for (t, n) in rows {
                assert_eq!(ours[t].len() as u64, n.as_u64().unwrap(), "{name} {t}");
            }
            assert_same_state(&ours, &sqlite_view(&db), name);
        }
        // recover: the rows per table and the outcome recorded.
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("recovered.db");
        let opts = sqlite_salvage::recover::RecoverOptions {
            no_sync: true,
            ..Default::default()
        };
        let r = sqlite_salvage::recover::recover(&db, &out, &opts).unwrap();
        assert_eq!(
            serde_json::to_value(r.outcome).unwrap(),
            want["recover_outcome"],
            "{name}"
        );
        let got = sqlite_state(&rusqlite::Connection::open(&out).unwrap());
        for (t, n) in want["recover_rows"].as_object().unwrap() {
            assert_eq!(
                got[t].len() as u64,
                n.as_u64().unwrap(),
                "{name} recover {t}"
            );
        }
        assert_eq!(dir_hashes(&root.join(name)), before, "{name} changed");
    }
}
