//! What the fuzz targets of the whole library run on one input, shared
//! with the test suite, which replays the seeds and regressions through the
//! same calls. The pure decoding targets (header, page, record, -shm, WAL
//! frames) are the format crate's: `crates/format/fuzz/`.

use std::path::{Path, PathBuf};

use sqlite_salvage::dump::{DumpOptions, Format, dump};
use sqlite_salvage::{Database, WalChoice};

/// How the `database` target cuts one input into a database and its WAL.
/// After an even first byte, the rest is the database file (no WAL). After
/// an odd one, `2n + 1`, the rest is n pages of the page size its header
/// names (512 when that is not one), then the WAL (none when empty).
pub fn split(data: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let (&sel, rest) = data.split_first()?;
    if sel & 1 == 0 {
        return Some((rest, None));
    }
    let ps = rest
        .get(16..18)
        .map(|b| match u16::from_be_bytes([b[0], b[1]]) {
            1 => 65536,
            n => usize::from(n),
        })
        .filter(|p| p.is_power_of_two() && *p >= 512)
        .unwrap_or(512);
    let (db, wal) = rest.split_at((usize::from(sel >> 1) * ps).min(rest.len()));
    Some((db, (!wal.is_empty()).then_some(wal)))
}

/// Writes the database `data` splits into as `dir/f.db`, and the rest, if
/// any, beside it as `f.db<beside>` (`-wal` or `-journal`); its path.
pub fn write_split(dir: &Path, data: &[u8], beside: &str) -> Option<PathBuf> {
    let (db_bytes, rest) = split(data)?;
    let db = dir.join("f.db");
    std::fs::write(&db, db_bytes).ok()?;
    if let Some(rest) = rest {
        std::fs::write(dir.join(format!("f.db{beside}")), rest).ok()?;
    }
    Some(db)
}

/// `database` and `journal`: the files `data` splits into (the second one
/// named by `beside`), through info (which runs check), dump in every
/// format and replay, at the latest commit and, when there is a WAL, at the
/// file alone; then recover, keeping older versions of rows.
pub fn files(data: &[u8], beside: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = write_split(dir.path(), data, beside) else {
        return;
    };
    if let Ok(d) = Database::open_with(&db, WalChoice::Auto) {
        let commits: &[Option<u32>] = if d.commit_count() > 0 {
            &[None, Some(0)]
        } else {
            &[None]
        };
        for &at in commits {
            let Ok(s) = d.snapshot(at) else { continue };
            let _ = sqlite_salvage::info::info(&d, &s);
            let Ok(schema) = s.schema() else { continue };
            let csv_table = schema.tables.first().map(|t| t.name.clone());
            for (format, table) in [
                (Format::Sql, None),
                (Format::Jsonl, None),
                (Format::Csv, csv_table),
            ] {
                let opts = DumpOptions { format, table };
                let _ = dump(&s, &schema, &opts, &mut std::io::sink());
            }
            let out = dir.path().join("replayed.db");
            let _ = sqlite_salvage::replay::replay_with(&s, &out, false);
            let _ = std::fs::remove_file(out);
        }
    }
    let opts = sqlite_salvage::recover::RecoverOptions {
        no_sync: true,
        history: true,
        deleted: true,
        ..Default::default()
    };
    let _ = sqlite_salvage::recover::recover(&db, &dir.path().join("out.db"), &opts);
}
