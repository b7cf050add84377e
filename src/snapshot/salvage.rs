//! The database read for salvage: every intact commit of the WAL, also
//! after a damaged frame; older page versions kept as evidence; a hot
//! journal's original pages put back; a stand-in for a lost header.
//!
//! Takes an open [`Database`] and a commit; gives a [`Salvage`]: the
//! snapshot recovery reads, how the WAL was read ([`SalvageWal`]), and
//! where each page's older versions lie.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::journal::{BeforeImages, JournalInfo};
use super::reader::{PageReader, Snapshot};
use super::{Database, Exactness, guess};
use crate::error::{Error, Result};
use crate::io::{open_input, read_full_at, sibling};
use crate::wal::{Commit, WalIndex};
use sqlite_salvage_format::header::{DbHeader, HEADER_SIZE, TextEncoding};

/// The salvage replay of a WAL's frames up to one commit.
struct FrameReplay {
    /// Page -> WAL offset of its newest intact version.
    overlay: HashMap<u32, u64>,
    /// The database size the applied commit frame gives.
    page_count: Option<u32>,
    /// Page -> WAL offsets of its older intact versions, oldest first.
    older: HashMap<u32, Vec<u64>>,
    info: SalvageWal,
}

/// Replays the frames of `w` for salvage up to salvage commit `at`.
fn replay_frames(w: &WalIndex, ps: u32, at: Option<u32>) -> Result<FrameReplay> {
    let mut overlay: HashMap<u32, u64> = HashMap::new();
    let mut older: HashMap<u32, Vec<u64>> = HashMap::new();
    let mut page_count = None;
    let mut commits = Vec::new();
    let mut damaged = Vec::new();
    let mut stale = 0usize;
    let mut pending: Vec<(u32, u64, bool)> = Vec::new();
    let mut fallback: BTreeSet<u32> = BTreeSet::new();
    let mut first = 1u32;
    let mut done = false;
    for f in &w.frames {
        let intact = f.salt_ok && f.checksum_ok && f.pgno != 0;
        if !f.salt_ok {
            // A frame of an earlier WAL generation (or one whose salt is
            // damaged): an older page version, kept as evidence only.
            stale += 1;
            if f.pgno != 0 {
                older.entry(f.pgno).or_default().push(f.page_offset(ps));
            }
            continue;
        }
        if done {
            continue;
        }
        if !intact {
            damaged.push(f.index);
        }
        pending.push((f.pgno, f.page_offset(ps), intact));
        if intact && f.commit_size != 0 {
            for (pgno, off, ok) in pending.drain(..) {
                if ok {
                    if let Some(prev) = overlay.insert(pgno, off) {
                        older.entry(pgno).or_default().push(prev);
                    }
                    fallback.remove(&pgno);
                } else if pgno != 0 {
                    fallback.insert(pgno);
                }
            }
            commits.push(Commit {
                number: commits.len() as u32 + 1,
                first_frame: first,
                last_frame: f.index,
                db_size: f.commit_size,
            });
            first = f.index + 1;
            page_count = Some(f.commit_size);
            if at == Some(commits.len() as u32) {
                done = true;
            }
        }
    }
    if let Some(n) = at {
        if n > commits.len() as u32 {
            return Err(Error::NoSuchCommit {
                requested: n,
                available: commits.len() as u32,
            });
        }
        if n == 0 {
            overlay.clear();
            page_count = None;
            fallback.clear();
        }
    }
    let info = SalvageWal {
        sqlite_commits: w.commits.len() as u32,
        uncommitted_frames: pending.len(),
        commit: commits.len().min(at.map_or(usize::MAX, |a| a as usize)) as u32,
        commits,
        damaged_frames: damaged,
        stale_frames: stale,
        fallback_pages: fallback.into_iter().collect(),
    };
    Ok(FrameReplay {
        overlay,
        page_count,
        older,
        info,
    })
}

impl Database {
    /// Reads the database for salvage as of salvage commit `at` (default:
    /// the last one). Unlike [`Database::snapshot`], a damaged frame does
    /// not end the WAL: every frame is checked against its predecessor's
    /// stored checksum, so commits after a damaged frame stay usable; a page
    /// whose newest version is damaged keeps its previous good version and
    /// is listed in [`SalvageWal::fallback_pages`]. Frames after the last
    /// intact commit frame (never committed) and frames of an older WAL
    /// generation (other salts) are not applied. A page 1 that does not
    /// parse is replaced, for its header fields only, by the database
    /// file's, an older intact version's, or a stand-in.
    pub fn salvage(&self, at: Option<u32>) -> Result<Salvage> {
        let (overlay, mut page_count, older, info) = match &self.wal {
            Some(w) => {
                let r = replay_frames(w, self.page_size, at)?;
                (r.overlay, r.page_count, r.older, Some(r.info))
            }
            None if at.is_some_and(|n| n > 0) => {
                return Err(Error::NoSuchCommit {
                    requested: at.unwrap_or(0),
                    available: 0,
                });
            }
            None => (HashMap::new(), None, HashMap::new(), None),
        };
        // A hot rollback journal (rollback-journal databases only) puts back
        // the pages of the interrupted transaction: the last committed state.
        let journal_path = sibling(&self.path, "-journal");
        let journal = match (&self.wal, self.header.as_ref().map(|h| h.is_wal_mode())) {
            (None, Some(false) | None) => JournalInfo::scan(&journal_path, self.page_size),
            _ => None,
        };
        if let Some(j) = &journal {
            page_count = Some(j.header.initial_size);
        }
        let journal_pages = match (&journal, open_input(&journal_path)) {
            (Some(j), Ok((f, _))) => Some((Arc::new(f), j.offsets.clone())),
            _ => None,
        };
        let src = self.page_reader(overlay, journal_pages);
        let (header, header_from) = self.salvage_header(&src, &older)?;
        let file_pages = self.file_pages().min(u64::from(u32::MAX)) as u32;
        let claimed = match page_count {
            Some(n) => n,
            None => match header_from {
                HeaderSource::Page1 => header.database_size().unwrap_or(file_pages),
                _ => file_pages,
            },
        };
        let present = src.present_pages(file_pages);
        let commit = info.as_ref().map_or(0, |i| i.commit);
        Ok(Salvage {
            snapshot: Snapshot {
                src,
                page_count: claimed.min(present).max(1),
                claimed_page_count: claimed,
                header,
                commit,
                exactness: Exactness::Exact,
            },
            wal: info,
            journal,
            header_from,
            older,
            file_pages,
        })
    }

    /// The header fields salvage reads by: page 1's own, else the database
    /// file's, an older intact version's in the WAL, or a stand-in with a
    /// guessed text encoding.
    fn salvage_header(
        &self,
        src: &PageReader,
        older: &HashMap<u32, Vec<u64>>,
    ) -> Result<(DbHeader, HeaderSource)> {
        let mut p1 = vec![0u8; self.page_size as usize];
        src.read(1, &mut p1)?;
        if let Ok(h) = DbHeader::parse(&p1) {
            if h.page_size == self.page_size {
                return Ok((h, HeaderSource::Page1));
            }
        }
        if let Some(h) = self
            .header
            .as_ref()
            .filter(|h| h.page_size == self.page_size)
        {
            return Ok((h.clone(), HeaderSource::DatabaseFile));
        }
        let from_older = older.get(&1).and_then(|v| {
            v.iter().rev().find_map(|off| {
                let mut b = vec![0u8; HEADER_SIZE];
                let wf = self.wal_file.as_ref()?;
                read_full_at(wf, &mut b, *off).ok()?;
                DbHeader::parse(&b)
                    .ok()
                    .filter(|h| h.page_size == self.page_size)
            })
        });
        if let Some(h) = from_older {
            return Ok((h, HeaderSource::OlderVersion));
        }
        let mut h = DbHeader::synthetic(self.page_size);
        h.encoding = guess::guess_encoding(src, self.file_pages().min(2048) as u32, self.page_size);
        h.raw.text_encoding = match h.encoding {
            TextEncoding::Utf8 => 1,
            TextEncoding::Utf16le => 2,
            TextEncoding::Utf16be => 3,
        };
        Ok((h, HeaderSource::StandIn))
    }
}

/// Where a salvage snapshot's header fields came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeaderSource {
    /// Page 1 of the snapshot itself.
    Page1,
    /// The database file's page 1 (the snapshot's page 1 is damaged).
    DatabaseFile,
    /// An older intact version of page 1 in the WAL.
    OlderVersion,
    /// Nothing readable: page size from the WAL or the file's shape,
    /// UTF-8, no reserved bytes.
    StandIn,
}

/// How salvage read the WAL.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SalvageWal {
    /// Commits SQLite itself would apply.
    pub sqlite_commits: u32,
    /// Commits salvage found (intact commit frames, also after damage).
    pub commits: Vec<Commit>,
    /// The commit applied.
    pub commit: u32,
    /// Frames of the current WAL generation that are damaged.
    pub damaged_frames: Vec<u32>,
    /// Frames of an earlier generation (other salts), not applied.
    pub stale_frames: usize,
    /// Frames after the last intact commit frame, never committed.
    pub uncommitted_frames: usize,
    /// Pages whose newest committed version is damaged; their previous
    /// good version is used and the rows on them may be stale.
    pub fallback_pages: Vec<u32>,
}

/// A salvage reading of a database: its snapshot, how the WAL was read,
/// and older versions of pages kept as evidence.
#[derive(Debug, Clone)]
pub struct Salvage {
    /// The pages as of the chosen commit.
    pub snapshot: Snapshot,
    /// How the WAL was read, when there is one.
    pub wal: Option<SalvageWal>,
    /// The hot rollback journal applied, when there is one.
    pub journal: Option<JournalInfo>,
    /// Where the header fields came from.
    pub header_from: HeaderSource,
    older: HashMap<u32, Vec<u64>>,
    file_pages: u32,
}

impl Salvage {
    /// WAL offsets of older intact versions of page `pgno` (oldest first):
    /// superseded committed frames and frames of earlier WAL generations.
    pub fn older_versions(&self, pgno: u32) -> &[u64] {
        self.older.get(&pgno).map_or(&[], |v| v.as_slice())
    }

    /// Pages that have an older version somewhere: superseded or stale WAL
    /// frames, or the database file's own copy of a page the WAL replaced.
    pub fn pages_with_older_versions(&self) -> Vec<u32> {
        let file_pages = self.snapshot.page_count.min(self.file_pages);
        let mut v: Vec<u32> = self
            .older
            .keys()
            .copied()
            .chain(
                self.snapshot
                    .src
                    .overlay
                    .keys()
                    .copied()
                    .filter(|&p| p <= file_pages),
            )
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Pages the database file holds (past the snapshot's page count when
    /// the WAL shrank the database: their copies in the file are older
    /// versions of nothing now).
    pub fn file_page_count(&self) -> u32 {
        self.file_pages
    }

    /// Reads the database file's own copy of page `pgno`.
    pub fn read_file_page(&self, pgno: u32, buf: &mut [u8]) -> Result<()> {
        let ps = u64::from(self.snapshot.src.page_size);
        let buf = buf
            .get_mut(..ps as usize)
            .ok_or_else(|| Error::corrupt(pgno, "page buffer too small"))?;
        read_full_at(
            &self.snapshot.src.db_file,
            buf,
            u64::from(pgno.saturating_sub(1)) * ps,
        )
        .map_err(|e| Error::io(&self.snapshot.src.db_path, e))
    }

    /// The page records of the rollback journal beside the database when
    /// it is not hot (a hot one is applied: [`Salvage::journal`]): pages as
    /// they were before a transaction since committed. Read from disk at
    /// each call.
    pub fn before_images(&self) -> Option<BeforeImages> {
        if self.journal.is_some() {
            return None;
        }
        let src = &self.snapshot.src;
        let path = sibling(&src.db_path, "-journal");
        let max_page = self.file_pages.max(self.snapshot.page_count);
        BeforeImages::scan(&path, src.page_size, max_page)
    }

    /// Reads a page version at a WAL offset returned by
    /// [`Salvage::older_versions`].
    pub fn read_version(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let ps = self.snapshot.src.page_size as usize;
        let buf = buf
            .get_mut(..ps)
            .ok_or_else(|| Error::corrupt(0, "page buffer too small"))?;
        match &self.snapshot.src.wal_file {
            Some(w) => {
                read_full_at(w, buf, offset).map_err(|e| Error::io(&self.snapshot.src.db_path, e))
            }
            None => Err(Error::corrupt(0, "no WAL")),
        }
    }
}
