//! Human-readable output.

use std::io::{self, Write};
use std::path::Path;

use sqlite_salvage::check::CheckReport;
use sqlite_salvage::info::Info;
use sqlite_salvage::recover::Report;
use sqlite_salvage::wal::{FrameStatus, WalIndex};

pub fn print_info(out: &mut dyn Write, i: &Info) -> io::Result<()> {
    let h = &i.header;
    writeln!(out, "database      {} ({} bytes)", i.path, i.file_size)?;
    writeln!(out, "as of commit  {} ({:?})", i.commit, i.exactness)?;
    writeln!(
        out,
        "page size     {} ({} reserved, {} usable)",
        h.page_size, h.reserved_bytes, h.usable_size
    )?;
    writeln!(
        out,
        "pages         {} (header says {}{})",
        i.page_count,
        h.header_database_size,
        if h.header_database_size_valid {
            ""
        } else {
            ", not valid"
        }
    )?;
    writeln!(
        out,
        "format        write {} / read {} ({}), schema format {}",
        h.format_versions.0,
        h.format_versions.1,
        if h.format_versions.0 == 2 {
            "WAL"
        } else {
            "rollback journal"
        },
        h.schema_format
    )?;
    writeln!(out, "encoding      {}", h.text_encoding.name())?;
    writeln!(out, "auto-vacuum   {:?}", h.auto_vacuum)?;
    writeln!(
        out,
        "freelist      {} pages, first trunk {}",
        h.freelist_count, h.freelist_trunk
    )?;
    writeln!(
        out,
        "counters      change {}, schema cookie {}, user version {}, application id {}",
        h.change_counter, h.schema_cookie, h.user_version, h.application_id
    )?;
    writeln!(out, "written by    SQLite {}", h.sqlite_version)?;
    let pages: Vec<String> = i.pages.iter().map(|(r, n)| format!("{r:?} {n}")).collect();
    writeln!(out, "page kinds    {}", pages.join(", "))?;
    let schema: Vec<String> = i.schema.iter().map(|(k, n)| format!("{n} {k}")).collect();
    writeln!(out, "schema        {}", schema.join(", "))?;
    for (name, n) in &i.entries {
        writeln!(out, "  {name:<30} {n} entries")?;
    }
    writeln!(
        out,
        "damage        {}",
        if i.damage == 0 {
            "none found".to_string()
        } else {
            format!("{} problem(s); run `sqlite-salvage check`", i.damage)
        }
    )?;
    match &i.wal {
        None => writeln!(out, "wal           none")?,
        Some(w) => {
            writeln!(out, "wal           {}", w.path)?;
            writeln!(
                out,
                "  frames      {} ({}), {} commits, last valid frame {}",
                w.frames,
                w.frame_status
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                w.commits,
                w.last_valid_frame
            )?;
            writeln!(
                out,
                "  salts       {:#010x} {:#010x}, checkpoint sequence {}, page size {}",
                w.header.salt1, w.header.salt2, w.header.checkpoint_seq, w.header.page_size
            )?;
            writeln!(
                out,
                "  checkpoint  would write {} pages, {} of them different from the database file",
                w.checkpoint_pages, w.checkpoint_changes
            )?;
            match &w.shm {
                Some(s) => writeln!(
                    out,
                    "  shm         max frame {}, backfilled {}{}",
                    s.max_frame,
                    s.backfilled,
                    if s.salts_match {
                        ""
                    } else {
                        " (stale: salts differ)"
                    }
                )?,
                None => writeln!(out, "  shm         none")?,
            }
        }
    }
    Ok(())
}

pub fn print_wal(out: &mut dyn Write, path: &Path, idx: Option<&WalIndex>) -> io::Result<()> {
    let Some(w) = idx else {
        writeln!(
            out,
            "{}: empty WAL (shorter than its header)",
            path.display()
        )?;
        return Ok(());
    };
    writeln!(
        out,
        "{}: page size {}, salts {:#010x} {:#010x}, checkpoint sequence {}, {} checksums",
        path.display(),
        w.header.page_size,
        w.header.salt1,
        w.header.salt2,
        w.header.checkpoint_seq,
        if w.header.big_endian() {
            "big-endian"
        } else {
            "little-endian"
        }
    )?;
    writeln!(
        out,
        "{:>7} {:>9} {:>9} {:>5} {:>8} {:>16} {:>6}",
        "frame", "page", "commit-db", "salt", "checksum", "status", "commit"
    )?;
    for f in &w.frames {
        writeln!(
            out,
            "{:>7} {:>9} {:>9} {:>5} {:>8} {:>16} {:>6}",
            f.index,
            f.pgno,
            if f.commit_size == 0 {
                "-".to_string()
            } else {
                f.commit_size.to_string()
            },
            if f.salt_ok { "ok" } else { "bad" },
            if f.checksum_ok { "ok" } else { "bad" },
            FrameStatus::name(f.status),
            f.commit.map_or("-".to_string(), |c| c.to_string())
        )?;
    }
    writeln!(
        out,
        "{} frames, {} commits, last valid frame {}{}",
        w.frames.len(),
        w.commits.len(),
        w.last_valid_frame(),
        if w.trailing_bytes > 0 {
            format!(", {} trailing bytes", w.trailing_bytes)
        } else {
            String::new()
        }
    )?;
    Ok(())
}

pub fn print_check(out: &mut dyn Write, db: &Path, r: &CheckReport) -> io::Result<()> {
    for d in &r.damage {
        match d.cell {
            Some(c) => writeln!(out, "page {} cell {}: {}", d.page, c, d.what)?,
            None => writeln!(out, "page {}: {}", d.page, d.what)?,
        }
    }
    if r.truncated {
        writeln!(out, "(more problems not listed)")?;
    }
    if r.is_ok() {
        writeln!(out, "{}: ok ({} pages)", db.display(), r.page_count)?;
    } else {
        writeln!(
            out,
            "{}: {} problem(s) in {} pages",
            db.display(),
            r.damage.len(),
            r.page_count
        )?;
    }
    Ok(())
}

pub fn print_recover(out: &mut dyn Write, r: &Report) -> io::Result<()> {
    writeln!(
        out,
        "recovered {} -> {} ({:?})",
        r.input, r.output, r.outcome
    )?;
    writeln!(
        out,
        "  {} pages of {} bytes; header from {:?}; schema from {}",
        r.page_count, r.page_size, r.header_from, r.schema_from
    )?;
    if let Some(w) = &r.wal {
        writeln!(
            out,
            "  WAL: {} commits applied (SQLite alone would apply {}), {} damaged frames, {} stale, {} uncommitted",
            w.commit,
            w.sqlite_commits,
            w.damaged_frames.len(),
            w.stale_frames,
            w.uncommitted_frames
        )?;
    }
    if let Some(j) = &r.journal {
        writeln!(
            out,
            "  hot journal {}: {} pages of an interrupted transaction rolled back (database size {} pages)",
            j.path.display(),
            j.pages,
            j.header.initial_size
        )?;
    }
    if let Some(why) = &r.wal_rejected {
        writeln!(out, "  WAL not used: {why}")?;
    }
    writeln!(
        out,
        "  {:<28} {:>9} {:>7} {:>7} {:>7} {:>8} {:>7}",
        "table", "rows", "tree", "wal", "orphan", "carved", "partial"
    )?;
    for t in &r.tables {
        use sqlite_salvage::recover::Source;
        let n = |s: Source| t.by_source.get(&s).copied().unwrap_or(0);
        let total: u64 = t.by_source.values().sum();
        writeln!(
            out,
            "  {:<28} {:>9} {:>7} {:>7} {:>7} {:>8} {:>7}",
            t.name,
            total,
            n(Source::Tree),
            n(Source::Wal),
            n(Source::Orphan),
            n(Source::Carved),
            t.partial
        )?;
    }
    let stale: u64 = r.tables.iter().map(|t| t.possibly_stale).sum();
    if stale > 0 {
        writeln!(
            out,
            "  {stale} rows read from an older page version (the newest is damaged): possibly stale"
        )?;
    }
    let by_shape: u64 = r.inferred_tables.iter().map(|(_, n)| n).sum();
    if let Some(t) = &r.lost_and_found_table {
        let unconfirmed: u64 = r.tables.iter().map(|t| t.unconfirmed).sum();
        let refused: u64 = r.tables.iter().map(|t| t.conflicts + t.wrong_type).sum();
        let unattributed = r
            .lost_and_found
            .saturating_sub(by_shape + unconfirmed + refused);
        writeln!(
            out,
            "  {unattributed} rows could not be attributed: table {t}"
        )?;
        if unconfirmed > 0 {
            writeln!(
                out,
                "  {unconfirmed} rows of damaged pages that neither stood on their own nor had an index confirm them: table {t}"
            )?;
        }
    }
    let moved: u64 = r.tables.iter().map(|t| t.cross_linked).sum();
    if moved > 0 {
        writeln!(
            out,
            "  {moved} rows found in another table's tree (cross-linked trees): moved to the table whose index lists them"
        )?;
    }
    let conflicts: u64 = r.tables.iter().map(|t| t.conflicts).sum();
    if conflicts > 0 {
        writeln!(
            out,
            "  {conflicts} rows clash with another on a UNIQUE value: kept in lost_and_found"
        )?;
    }
    let wrong_type: u64 = r.tables.iter().map(|t| t.wrong_type).sum();
    if wrong_type > 0 {
        writeln!(
            out,
            "  {wrong_type} rows hold a value of a type their STRICT table refuses: kept in lost_and_found"
        )?;
    }
    let stood_in: u64 = r.tables.iter().map(|t| t.stand_ins).sum();
    if let (true, Some(flags)) = (stood_in > 0, &r.flags_table) {
        writeln!(
            out,
            "  {stood_in} rows kept with a stand-in for a value lost in a NOT NULL column: listed in table {flags}"
        )?;
    }
    for (name, n) in &r.inferred_tables {
        writeln!(
            out,
            "  no table known: {n} rows of one shape in table {name}"
        )?;
    }
    if !r.loose_overflow_pages.is_empty() {
        writeln!(
            out,
            "  {} overflow pages whose value's cell or chain is lost (part of no surviving row)",
            r.loose_overflow_pages.len()
        )?;
    }
    if !r.unreadable_pages.is_empty() {
        writeln!(out, "  {} pages unreadable", r.unreadable_pages.len())?;
    }
    for (name, why) in r.tables_not_created.iter().chain(&r.objects_not_created) {
        writeln!(out, "  not created: {name}: {why}")?;
    }
    for d in &r.deleted {
        writeln!(
            out,
            "  deleted: {} rows of {} found, in table {} (not among the rows above)",
            d.rows, d.table, d.name
        )?;
    }
    if let Some(why) = &r.restarted {
        writeln!(
            out,
            "  loaded row by row: SQLite refused the page-by-page load ({why})"
        )?;
    }
    Ok(())
}
