//! One function per command: the arguments in, a library call, its
//! result printed (human or `--json`), the exit code out.

use std::io::{self, BufWriter, IsTerminal};
use std::path::PathBuf;

use clap::Args;
use sqlite_salvage::dump::{DumpOptions, Format};
use sqlite_salvage::snapshot::locate_wal;
use sqlite_salvage::wal::{WalIndex, WalListing};
use sqlite_salvage::{Database, Error, backup, check, info, recover, replay};

use super::{DumpFormat, WalOptions, code, human, print, warn_exactness};

/// Arguments of `backup`.
#[derive(Args)]
pub struct BackupArgs {
    /// The database to back up (it may be in use).
    pub src: PathBuf,
    /// Where the backup goes: a file, or a directory with --files.
    pub dest: PathBuf,
    /// The database file and its WAL up to a commit, in a directory.
    #[arg(long)]
    pub files: bool,
    /// Replace an existing backup at DEST.
    #[arg(long)]
    pub force: bool,
    /// Skip fsync (faster; a crash soon after may lose the backup).
    #[arg(long)]
    pub no_sync: bool,
    /// Copy at full speed even while the source's writers commit (by
    /// default a WAL database's backup then works a tenth of the time
    /// and holds its snapshot only briefly; it takes longer).
    #[arg(long)]
    pub full_speed: bool,
}

/// Arguments of `verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The backup (file or directory).
    pub dest: PathBuf,
}

/// Arguments of `restore`.
#[derive(Args)]
pub struct RestoreArgs {
    /// The backup (file or directory).
    pub backup: PathBuf,
    /// The database to replace.
    pub target: PathBuf,
    /// Replace TARGET even if another connection has it open.
    #[arg(long)]
    pub even_if_in_use: bool,
    /// Skip fsync.
    #[arg(long)]
    pub no_sync: bool,
}

/// Arguments of `recover`.
#[derive(Args)]
pub struct RecoverArgs {
    /// The damaged database file.
    pub db: PathBuf,
    /// The new database file.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Overwrite OUTPUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// The application's CREATE statements, used when the schema on
    /// disk cannot be read.
    #[arg(long, value_name = "FILE.sql")]
    pub schema: Option<PathBuf>,
    /// Write the detailed report (page numbers, flagged rows) here.
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,
    /// Skip fsync of the output.
    #[arg(long)]
    pub no_sync: bool,
    /// Also keep older versions of rows (superseded WAL frames, the
    /// file's copies of pages the WAL replaced) in <table>__history.
    #[arg(long)]
    pub history: bool,
    /// Also give back rows that were deleted (free space of the tables'
    /// leaves, freelist pages, older page versions) in <table>__deleted.
    #[arg(long)]
    pub deleted: bool,
    /// Have SQLite's quick_check read the whole output back once it is
    /// written (slower; the pages written in bulk are checked as they are
    /// written either way).
    #[arg(long)]
    pub check_output: bool,
    #[command(flatten)]
    pub wal: WalOptions,
}

/// Arguments of `info`.
#[derive(Args)]
pub struct InfoArgs {
    /// The database file.
    pub db: PathBuf,
    #[command(flatten)]
    pub wal: WalOptions,
}

/// Arguments of `wal`.
#[derive(Args)]
pub struct WalArgs {
    /// The database (its -wal is read) or a WAL file.
    pub path: PathBuf,
}

/// Arguments of `check`.
#[derive(Args)]
pub struct CheckArgs {
    /// The database file.
    pub db: PathBuf,
    #[command(flatten)]
    pub wal: WalOptions,
}

/// Arguments of `dump`.
#[derive(Args)]
pub struct DumpArgs {
    /// The database file.
    pub db: PathBuf,
    /// Only this table.
    #[arg(long, short)]
    pub table: Option<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "sql")]
    pub format: DumpFormat,
    /// Also the rows that were deleted, as `recover --deleted` finds them:
    /// JSON lines with `"deleted": true` after the live rows (with
    /// `--format jsonl`).
    #[arg(long)]
    pub deleted: bool,
    #[command(flatten)]
    pub wal: WalOptions,
}

/// Arguments of `replay`.
#[derive(Args)]
pub struct ReplayArgs {
    /// The database file.
    pub db: PathBuf,
    /// The new database file.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Overwrite OUTPUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// Skip fsync of the output (faster; a crash soon after may lose it).
    #[arg(long)]
    pub no_sync: bool,
    #[command(flatten)]
    pub wal: WalOptions,
}

/// `backup`.
pub fn backup(a: BackupArgs, json: bool) -> Result<u8, Error> {
    let opts = backup::BackupOptions {
        mode: if a.files {
            backup::Mode::Files
        } else {
            backup::Mode::Compact
        },
        force: a.force,
        no_sync: a.no_sync,
        full_speed: a.full_speed,
    };
    let m = backup::backup(&a.src, &a.dest, &opts)?;
    let wal = m
        .wal
        .as_ref()
        .map(|w| format!(", WAL of {} frames ({} commits)", w.frames, w.commits))
        .unwrap_or_default();
    print(json, &m, |out| {
        writeln!(
            out,
            "backed up {} -> {} ({:?}): {} pages of {} bytes{wal}",
            a.src.display(),
            a.dest.display(),
            m.mode,
            m.page_count,
            m.page_size,
        )
    })?;
    Ok(code::OK)
}

/// `verify`.
pub fn verify(a: VerifyArgs, json: bool) -> Result<u8, Error> {
    let v = backup::verify(&a.dest)?;
    let tables: Vec<String> = v
        .tables
        .iter()
        .map(|(t, n)| format!("{t} {n} rows"))
        .collect();
    print(json, &v, |out| {
        writeln!(
            out,
            "{}: ok ({} files, {} pages; {})",
            a.dest.display(),
            v.manifest.files.len(),
            v.manifest.page_count,
            tables.join(", ")
        )
    })?;
    Ok(code::OK)
}

/// `restore`.
pub fn restore(a: RestoreArgs, json: bool) -> Result<u8, Error> {
    let r = backup::restore(&a.backup, &a.target, a.even_if_in_use, a.no_sync)?;
    print(json, &r, |out| {
        writeln!(
            out,
            "restored {} -> {}",
            a.backup.display(),
            a.target.display()
        )?;
        for p in &r.moved_aside {
            writeln!(out, "  moved the old database's {} aside", p.display())?;
        }
        Ok(())
    })?;
    Ok(code::OK)
}

/// Progress for `recover`: on a terminal only, and only for large inputs;
/// one bar per phase, named, each left complete when the next begins, and
/// never moved backwards.
struct Bars {
    current: std::sync::Mutex<Option<(String, indicatif::ProgressBar)>>,
}

impl Bars {
    fn new(db: &std::path::Path, json: bool) -> Option<std::sync::Arc<Bars>> {
        let large = std::fs::metadata(db).map(|m| m.len()).unwrap_or(0) > 64 << 20;
        (!json && large && io::stderr().is_terminal()).then(|| {
            std::sync::Arc::new(Bars {
                current: std::sync::Mutex::new(None),
            })
        })
    }

    fn tick(&self, phase: &str, done: u64, total: u64) {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if cur.as_ref().is_none_or(|(p, _)| p != phase) {
            Bars::complete(cur.take());
            let b = indicatif::ProgressBar::new(total);
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{msg:32} [{bar:40}] {pos}/{len} ({eta})")
            {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_message(phase.to_string());
            *cur = Some((phase.to_string(), b));
        }
        if let Some((_, b)) = cur.as_ref() {
            b.set_length(total.max(b.position()));
            if done > b.position() {
                b.set_position(done);
            }
        }
    }

    /// Leaves a phase's bar complete: its work is done, whatever share of
    /// the pages it counted.
    fn complete(bar: Option<(String, indicatif::ProgressBar)>) {
        if let Some((_, b)) = bar {
            b.set_length(b.position());
            b.finish();
        }
    }

    fn finish(&self) {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        Bars::complete(cur.take());
    }
}

/// `recover`.
pub fn recover(a: RecoverArgs, json: bool) -> Result<u8, Error> {
    let schema_sql = match &a.schema {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| Error::Io {
            path: p.clone(),
            source: e,
        })?),
        None => None,
    };
    let bars = Bars::new(&a.db, json);
    let progress = bars.clone().map(|b| {
        recover::ProgressFn(std::sync::Arc::new(
            move |phase: &str, done: u64, total: u64| b.tick(phase, done, total),
        ))
    });
    let opts = recover::RecoverOptions {
        wal: a.wal.choice(),
        at_commit: a.wal.at_commit,
        schema_sql,
        force: a.force,
        no_sync: a.no_sync,
        history: a.history,
        deleted: a.deleted,
        check_output: a.check_output,
        progress,
    };
    let r = recover::recover(&a.db, &a.output, &opts);
    if let Some(b) = bars {
        b.finish();
    }
    let r = r?;
    if let Some(path) = &a.report {
        write_report(path, &r)?;
    }
    print(json, &r, |out| human::print_recover(out, &r))?;
    Ok(match r.outcome {
        recover::Outcome::Complete => code::OK,
        recover::Outcome::Partial => code::DAMAGE,
        recover::Outcome::Nothing => code::NOTHING,
    })
}

/// Writes the recovery report as JSON to `path` (`--report`).
fn write_report(path: &PathBuf, r: &recover::Report) -> Result<(), Error> {
    let out_err = |e| Error::Output {
        path: path.clone(),
        source: e,
    };
    let text = serde_json::to_string_pretty(r).map_err(|e| out_err(io::Error::other(e)))?;
    std::fs::write(path, text + "\n").map_err(out_err)
}

/// `info`.
pub fn info(a: InfoArgs, json: bool) -> Result<u8, Error> {
    let database = Database::open_with(&a.db, a.wal.choice())?;
    let snap = database.snapshot(a.wal.at_commit)?;
    warn_exactness(snap.exactness(), snap.commit(), json);
    let report = info::info(&database, &snap)?;
    print(json, &report, |out| human::print_info(out, &report))?;
    Ok(code::OK)
}

/// `wal`.
pub fn wal(a: WalArgs, json: bool) -> Result<u8, Error> {
    let wal_path = locate_wal(&a.path)?;
    let idx = WalIndex::scan(&wal_path)?;
    let listing = WalListing::new(&wal_path, idx.as_ref());
    print(json, &listing, |out| {
        human::print_wal(out, &wal_path, idx.as_ref())
    })?;
    Ok(code::OK)
}

/// `check`.
pub fn check(a: CheckArgs, json: bool) -> Result<u8, Error> {
    let database = Database::open_with(&a.db, a.wal.choice())?;
    let snap = database.snapshot(a.wal.at_commit)?;
    warn_exactness(snap.exactness(), snap.commit(), json);
    let report = check::check(&snap)?;
    print(json, &report, |out| human::print_check(out, &a.db, &report))?;
    Ok(if report.is_ok() {
        code::OK
    } else {
        code::DAMAGE
    })
}

/// `dump`.
pub fn dump(a: DumpArgs) -> Result<u8, Error> {
    if a.deleted && !matches!(a.format, DumpFormat::Jsonl) {
        eprintln!(
            "sqlite-salvage: dump --deleted writes JSON lines: add --format jsonl \
             (or write them into tables with `recover --deleted`)"
        );
        return Ok(code::USAGE);
    }
    let database = Database::open_with(&a.db, a.wal.choice())?;
    let snap = database.snapshot(a.wal.at_commit)?;
    warn_exactness(snap.exactness(), snap.commit(), false);
    let schema = snap.schema()?;
    let opts = DumpOptions {
        format: match a.format {
            DumpFormat::Sql => Format::Sql,
            DumpFormat::Jsonl => Format::Jsonl,
            DumpFormat::Csv => Format::Csv,
        },
        table: a.table.clone(),
    };
    let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
    sqlite_salvage::dump::dump(&snap, &schema, &opts, &mut out)?;
    if a.deleted {
        let opts = recover::RecoverOptions {
            wal: a.wal.choice(),
            at_commit: a.wal.at_commit,
            ..Default::default()
        };
        recover::write_deleted_lines(&a.db, &opts, a.table.as_deref(), &mut out)?;
    }
    Ok(code::OK)
}

/// `replay`.
pub fn replay(a: ReplayArgs, json: bool) -> Result<u8, Error> {
    let database = Database::open_with(&a.db, a.wal.choice())?;
    let r = replay::replay_database(&database, a.wal.at_commit, &a.output, a.force, !a.no_sync)?;
    warn_exactness(r.exactness, r.stats.commit, json);
    print(json, &r, |out| {
        writeln!(
            out,
            "wrote {}: {} pages ({} from the WAL), as of commit {}",
            a.output.display(),
            r.stats.pages,
            r.stats.wal_pages,
            r.stats.commit
        )
    })?;
    Ok(code::OK)
}
