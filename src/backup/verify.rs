//! Verifying a backup: every file's size and CRC-32 against its manifest,
//! this tool's structural check, and SQLite's `integrity_check` on a
//! private copy.
//!
//! Takes a backup's path; gives [`Verified`] (the manifest, the database,
//! rows per table), or the one reason it fails.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::Manifest;
use super::copy::file_entry;
use super::manifest::{check_file_names, manifest_path, read_manifest};
use crate::error::{Error, Result};
use crate::io::{parent_dir, sibling};
use crate::snapshot::Database;

/// The outcome of [`verify`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    /// The manifest.
    pub manifest: Manifest,
    /// The database file of the backup.
    pub database: PathBuf,
    /// Rows per table, as SQLite reads them.
    pub tables: Vec<(String, u64)>,
}

/// Checks a backup: every file's size and CRC-32 against the manifest, our
/// structural check, and SQLite's `integrity_check` (on a private copy).
pub fn verify(dest: &Path) -> Result<Verified> {
    let bad = |what: String| Error::BadBackup {
        path: dest.to_path_buf(),
        what,
    };
    if !dest.exists() {
        return Err(Error::io(
            dest,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no backup here"),
        ));
    }
    let manifest = read_manifest(&manifest_path(dest)).map_err(bad)?;
    check_file_names(&manifest.files).map_err(bad)?;
    let base = if dest.is_dir() {
        dest.to_path_buf()
    } else {
        parent_dir(dest)
    };
    for f in &manifest.files {
        let p = base.join(&f.name);
        let got = file_entry(&p).map_err(|e| bad(format!("{}: {e}", f.name)))?;
        if got.size != f.size {
            return Err(bad(format!(
                "{}: {} bytes, the manifest says {}",
                f.name, got.size, f.size
            )));
        }
        if got.crc32 != f.crc32 {
            return Err(bad(format!(
                "{}: CRC-32 differs from the manifest's",
                f.name
            )));
        }
    }
    let database = match manifest.files.first() {
        Some(f) => base.join(&f.name),
        None => return Err(bad("the manifest lists no files".into())),
    };
    // What is verified (and restored) is what the manifest lists: a WAL or
    // journal written beside the backup since would change what SQLite and
    // our reader see.
    let wal_listed = manifest.files.len() == 2;
    for (suffix, listed) in [("-wal", wal_listed), ("-journal", false)] {
        let p = sibling(&database, suffix);
        if !listed && std::fs::metadata(&p).is_ok_and(|m| m.len() > 0) {
            return Err(bad(format!(
                "{} is beside the backup but not in its manifest: the backup was \
                 opened and written since it was taken (move that file away to use \
                 the backup as taken)",
                p.display()
            )));
        }
    }
    // Our reader: the structure of every page.
    let db = Database::open(&database).map_err(|e| bad(e.to_string()))?;
    let snap = db.latest().map_err(|e| bad(e.to_string()))?;
    if snap.page_count() != manifest.page_count {
        return Err(bad(format!(
            "{} pages, the manifest says {}",
            snap.page_count(),
            manifest.page_count
        )));
    }
    let report = crate::check::check(&snap).map_err(|e| bad(e.to_string()))?;
    if let Some(d) = report.damage.first() {
        return Err(bad(format!("page {}: {}", d.page, d.what)));
    }
    // SQLite, on a private copy (opening a WAL database writes beside it).
    let sys = std::env::temp_dir();
    let pending = crate::cleanup::Pending::for_output(&sys, Path::new("verify"));
    let tmp = tempfile::Builder::new()
        .prefix(pending.prefix())
        .suffix(".tmp")
        .tempdir_in(&sys)
        .map_err(|e| Error::output(&sys, e))?;
    let copy = tmp.path().join("verify.db");
    std::fs::copy(&database, &copy).map_err(|e| Error::io(&database, e))?;
    let wal = sibling(&database, "-wal");
    if wal_listed {
        std::fs::copy(&wal, sibling(&copy, "-wal")).map_err(|e| Error::io(&wal, e))?;
    }
    let conn = Connection::open(&copy)?;
    let ic: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if ic != "ok" {
        return Err(bad(format!("SQLite's integrity_check: {ic}")));
    }
    let mut tables = Vec::new();
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    for n in names {
        let c: i64 = conn.query_row(
            &format!("SELECT count(*) FROM {}", crate::schema::quote_ident(&n)),
            [],
            |r| r.get(0),
        )?;
        tables.push((n, c as u64));
    }
    Ok(Verified {
        manifest,
        database,
        tables,
    })
}
