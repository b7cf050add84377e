//! A summary of a database and its WAL: header fields, pages by role,
//! freelist, schema and WAL state.

use std::collections::BTreeMap;

use crate::check::{Role, check};
use crate::error::Result;
use crate::snapshot::{Database, Exactness, Snapshot};
use crate::wal::{FrameStatus, ShmInfo};
use sqlite_salvage_format::header::{AutoVacuum, TextEncoding};
use sqlite_salvage_format::wal::WalHeader;

/// Header fields of the snapshot's page 1.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HeaderInfo {
    /// Page size in bytes.
    pub page_size: u32,
    /// Reserved bytes per page.
    pub reserved_bytes: u8,
    /// Usable bytes per page.
    pub usable_size: u32,
    /// File format write/read versions (1 legacy, 2 WAL).
    pub format_versions: (u8, u8),
    /// File change counter.
    pub change_counter: u32,
    /// Database size in the header, in pages.
    pub header_database_size: u32,
    /// Whether SQLite would trust that size.
    pub header_database_size_valid: bool,
    /// First freelist trunk page.
    pub freelist_trunk: u32,
    /// Freelist pages.
    pub freelist_count: u32,
    /// Schema cookie.
    pub schema_cookie: u32,
    /// Schema format number.
    pub schema_format: u32,
    /// Text encoding.
    pub text_encoding: TextEncoding,
    /// Auto-vacuum mode.
    pub auto_vacuum: AutoVacuum,
    /// Application id.
    pub application_id: u32,
    /// User version.
    pub user_version: u32,
    /// SQLite version number of the last writer.
    pub sqlite_version: u32,
}

/// WAL summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WalInfo {
    /// Path of the WAL.
    pub path: String,
    /// Its header.
    pub header: WalHeader,
    /// Whole frames in the file.
    pub frames: usize,
    /// Commits.
    pub commits: usize,
    /// Frames by SQLite's verdict.
    pub frame_status: BTreeMap<String, usize>,
    /// Last frame SQLite would use.
    pub last_valid_frame: u32,
    /// Distinct pages in committed frames: what a checkpoint would write.
    pub checkpoint_pages: usize,
    /// Of those, pages whose content differs from the database file.
    pub checkpoint_changes: usize,
    /// What the -shm says, when present.
    pub shm: Option<ShmInfo>,
}

/// Everything `info` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Info {
    /// Database path.
    pub path: String,
    /// File size in bytes.
    pub file_size: u64,
    /// The commit the summary describes.
    pub commit: u32,
    /// Whether that state is exact.
    pub exactness: Exactness,
    /// Pages in the database at that commit.
    pub page_count: u32,
    /// Header fields.
    pub header: HeaderInfo,
    /// Pages by role.
    pub pages: BTreeMap<Role, u64>,
    /// Tables, indexes, views and triggers.
    pub schema: BTreeMap<String, usize>,
    /// Rows or entries per b-tree.
    pub entries: Vec<(String, u64)>,
    /// Problems the structural check found.
    pub damage: usize,
    /// WAL summary.
    pub wal: Option<WalInfo>,
}

/// Summarizes `db` as of `snap`.
pub fn info(db: &Database, snap: &Snapshot) -> Result<Info> {
    let h = snap.header();
    let report = check(snap)?;
    let mut schema = BTreeMap::new();
    if let Ok(s) = snap.schema() {
        for e in &s.entries {
            *schema.entry(e.kind.clone()).or_default() += 1;
        }
    }
    let wal = match db.wal() {
        Some(w) => {
            let mut frame_status = BTreeMap::new();
            for f in &w.frames {
                let key = serde_json::to_value(f.status)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                *frame_status.entry(key).or_default() += 1;
            }
            let latest = db.latest()?;
            let mut pages: Vec<u32> = w
                .frames
                .iter()
                .filter(|f| f.status == FrameStatus::Committed)
                .map(|f| f.pgno)
                .collect();
            pages.sort_unstable();
            pages.dedup();
            let base = db.snapshot(Some(0)).ok();
            let mut a = vec![0u8; db.page_size() as usize];
            let mut b = vec![0u8; db.page_size() as usize];
            let mut changes = 0;
            for &p in &pages {
                let differs = match &base {
                    Some(s) if p <= s.page_count() => {
                        latest.read_page(p, &mut a)?;
                        s.read_page(p, &mut b)?;
                        a != b
                    }
                    _ => true,
                };
                changes += usize::from(differs);
            }
            Some(WalInfo {
                path: w.path.display().to_string(),
                header: w.header,
                frames: w.frames.len(),
                commits: w.commits.len(),
                frame_status,
                last_valid_frame: w.last_valid_frame(),
                checkpoint_pages: pages.len(),
                checkpoint_changes: changes,
                shm: db.shm().copied(),
            })
        }
        None => None,
    };
    Ok(Info {
        path: db.path().display().to_string(),
        file_size: db.file_size(),
        commit: snap.commit(),
        exactness: snap.exactness(),
        page_count: snap.page_count(),
        header: HeaderInfo {
            page_size: h.page_size,
            reserved_bytes: h.raw.reserved,
            usable_size: h.usable_size,
            format_versions: (h.raw.write_version, h.raw.read_version),
            change_counter: h.raw.change_counter,
            header_database_size: h.raw.database_size,
            header_database_size_valid: h.database_size().is_some(),
            freelist_trunk: h.raw.freelist_trunk,
            freelist_count: h.raw.freelist_count,
            schema_cookie: h.raw.schema_cookie,
            schema_format: h.raw.schema_format,
            text_encoding: h.encoding,
            auto_vacuum: h.auto_vacuum(),
            application_id: h.raw.application_id,
            user_version: h.raw.user_version,
            sqlite_version: h.raw.sqlite_version,
        },
        pages: report.pages.into_iter().collect(),
        schema,
        entries: report.entries,
        damage: report.damage.len(),
        wal,
    })
}
