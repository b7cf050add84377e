//! Command-line parsing, output and exit codes.

use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sqlite_salvage::dump::{DumpOptions, Format, dump};
use sqlite_salvage::{
    Database, Error, Exactness, WalChoice, backup, check, info, recover, replay, wal,
};

mod human;

/// Exit codes (also in the README).
pub mod code {
    /// Success; for `check`, no damage found.
    pub const OK: u8 = 0;
    /// `check` found damage.
    pub const DAMAGE: u8 = 1;
    /// Bad arguments: unknown option, no such table or commit.
    pub const USAGE: u8 = 2;
    /// An input could not be read (missing, permissions, a directory).
    pub const INPUT: u8 = 3;
    /// An input is not an SQLite database, or the WAL does not belong to it.
    pub const NOT_A_DATABASE: u8 = 4;
    /// Damage in the database stopped the command.
    pub const CORRUPT: u8 = 5;
    /// The output could not be written, exists, or is one of the inputs.
    pub const OUTPUT: u8 = 6;
    /// `recover` found nothing to recover.
    pub const NOTHING: u8 = 7;
    /// `backup`: a hot rollback journal is beside the source.
    pub const HOT_JOURNAL: u8 = 8;
    /// `restore`: the target is in use by another connection; `backup`:
    /// another process holds the source in exclusive locking mode.
    pub const IN_USE: u8 = 9;
}

#[derive(Parser)]
#[command(
    name = "sqlite-salvage",
    version,
    about = "Read, check and restore SQLite databases and their WAL at page level. Inputs are never modified."
)]
struct Cli {
    /// Machine-readable JSON output (errors too).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Args, Clone)]
struct WalArgs {
    /// Read this WAL instead of DB-wal.
    #[arg(long, value_name = "PATH", conflicts_with = "no_wal")]
    wal: Option<PathBuf>,
    /// Ignore any WAL: read the database file alone.
    #[arg(long)]
    no_wal: bool,
    /// Read the database as of commit N of the WAL (1 is the first, 0 the
    /// database file alone); default: the last commit.
    #[arg(long, value_name = "N")]
    at_commit: Option<u32>,
}

impl WalArgs {
    fn choice(&self) -> WalChoice {
        if self.no_wal {
            WalChoice::Ignore
        } else if let Some(p) = &self.wal {
            WalChoice::Path(p.clone())
        } else {
            WalChoice::Auto
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum DumpFormat {
    Sql,
    Jsonl,
    Csv,
}

#[derive(Subcommand)]
enum Command {
    /// A consistent backup of a live database: one compact file (default),
    /// or the file set (--files), with a manifest of sizes and CRC-32s.
    Backup {
        /// The database to back up (it may be in use).
        src: PathBuf,
        /// Where the backup goes: a file, or a directory with --files.
        dest: PathBuf,
        /// The database file and its WAL up to a commit, in a directory.
        #[arg(long)]
        files: bool,
        /// Replace an existing backup at DEST.
        #[arg(long)]
        force: bool,
        /// Skip fsync (faster; a crash soon after may lose the backup).
        #[arg(long)]
        no_sync: bool,
        /// Copy at full speed even while the source's writers commit (by
        /// default a WAL database's backup then works a tenth of the time
        /// and holds its snapshot only briefly; it takes longer).
        #[arg(long)]
        full_speed: bool,
    },
    /// Check a backup: sizes and CRC-32s against its manifest, this tool's
    /// structural check, SQLite's integrity_check. Exit code 1 if it fails.
    Verify {
        /// The backup (file or directory).
        dest: PathBuf,
    },
    /// Verify a backup, then put its database in place at TARGET
    /// atomically; a stale -wal, -shm or -journal of the old TARGET is
    /// moved aside.
    Restore {
        /// The backup (file or directory).
        backup: PathBuf,
        /// The database to replace.
        target: PathBuf,
        /// Replace TARGET even if another connection has it open.
        #[arg(long)]
        even_if_in_use: bool,
        /// Skip fsync.
        #[arg(long)]
        no_sync: bool,
    },
    /// Recover every committed row that survives on disk (tree, orphaned
    /// pages, WAL) into a fresh database, with a report. Exit code 0: all
    /// read; 1: damage met (partial); 7: nothing recovered.
    Recover {
        /// The damaged database file.
        db: PathBuf,
        /// The new database file.
        #[arg(long, short)]
        output: PathBuf,
        /// Overwrite OUTPUT if it exists.
        #[arg(long)]
        force: bool,
        /// The application's CREATE statements, used when the schema on
        /// disk cannot be read.
        #[arg(long, value_name = "FILE.sql")]
        schema: Option<PathBuf>,
        /// Write the detailed report (page numbers, flagged rows) here.
        #[arg(long, value_name = "FILE.json")]
        report: Option<PathBuf>,
        /// Skip fsync of the output.
        #[arg(long)]
        no_sync: bool,
        /// Also keep older versions of rows (superseded WAL frames, the
        /// file's copies of pages the WAL replaced) in <table>__history.
        #[arg(long)]
        history: bool,
        #[command(flatten)]
        wal: WalArgs,
    },
    /// Header fields, pages by kind, freelist, schema and the WAL beside it.
    Info {
        /// The database file.
        db: PathBuf,
        #[command(flatten)]
        wal: WalArgs,
    },
    /// Every WAL frame: page, commit, salts, checksum, SQLite's verdict.
    Wal {
        /// The database (its -wal is read) or a WAL file.
        path: PathBuf,
    },
    /// Structural check of every page; exit code 1 when damage is found.
    Check {
        /// The database file.
        db: PathBuf,
        #[command(flatten)]
        wal: WalArgs,
    },
    /// Rows as of the last commit (or --at-commit), read by this tool's own
    /// reader with the WAL applied.
    Dump {
        /// The database file.
        db: PathBuf,
        /// Only this table.
        #[arg(long, short)]
        table: Option<String>,
        /// Output format.
        #[arg(long, short, value_enum, default_value = "sql")]
        format: DumpFormat,
        #[command(flatten)]
        wal: WalArgs,
    },
    /// Write a fresh single-file database equal to DB with its WAL applied
    /// up to the last commit (or --at-commit): a point-in-time restore.
    Replay {
        /// The database file.
        db: PathBuf,
        /// The new database file.
        #[arg(long, short)]
        output: PathBuf,
        /// Overwrite OUTPUT if it exists.
        #[arg(long)]
        force: bool,
        /// Skip fsync of the output (faster; a crash soon after may lose it).
        #[arg(long)]
        no_sync: bool,
        #[command(flatten)]
        wal: WalArgs,
    },
}

/// Runs the CLI and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                code::USAGE
            } else {
                code::OK
            });
        }
    };
    let json = cli.json;
    match run(cli) {
        Ok(c) => ExitCode::from(c),
        Err(e) => report_error(&e, json),
    }
}

fn exit_code(e: &Error) -> u8 {
    match e {
        Error::Io { .. } => code::INPUT,
        Error::NotADatabase { .. } | Error::BadWal { .. } => code::NOT_A_DATABASE,
        Error::Corrupt { .. } | Error::Sqlite(_) => code::CORRUPT,
        Error::NoSuchCommit { .. } | Error::NoSuchTable(_) => code::USAGE,
        Error::Output { .. } | Error::OutputExists(_) | Error::OutputIsInput(_) => code::OUTPUT,
        Error::BadBackup { .. } => code::DAMAGE,
        Error::HotJournal(_) => code::HOT_JOURNAL,
        Error::InUse(_) | Error::HeldExclusively(_) => code::IN_USE,
    }
}

fn hint(e: &Error) -> &'static str {
    match e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::InvalidInput => {
            "give the path of a regular file (copy a device or pipe into one first)"
        }
        Error::Io { .. } => "check the path and its permissions",
        Error::NotADatabase { .. } => "check that this is the database file",
        Error::BadWal { .. } => {
            "pass --no-wal to read the database file alone, or --wal PATH for the right WAL"
        }
        Error::Corrupt { .. } => {
            "the database is damaged here; `sqlite-salvage check` lists all damage"
        }
        Error::NoSuchCommit { .. } => "`sqlite-salvage wal DB` lists the commits",
        Error::NoSuchTable(_) => "`sqlite-salvage info DB` lists the tables",
        Error::Output { .. } => "check the output path, its directory and free space",
        Error::OutputExists(_) => "choose another path or pass --force",
        Error::OutputIsInput(_) => "choose an output path that is not one of the inputs",
        Error::Sqlite(_) => "SQLite refused; the message says why",
        Error::BadBackup { .. } => "this backup cannot be trusted: take a new one",
        Error::HotJournal(_) => {
            "open the database with SQLite once to roll it back, or `sqlite-salvage recover` it"
        }
        Error::InUse(_) => "close the applications using it, or pass --even-if-in-use",
        Error::HeldExclusively(_) => {
            "stop that process (or have it use PRAGMA locking_mode=NORMAL), then back up again"
        }
    }
}

fn report_error(e: &Error, json: bool) -> ExitCode {
    // A closed pipe (`| head`) is not a failure.
    if let Error::Output { source, .. } = e {
        if source.kind() == io::ErrorKind::BrokenPipe {
            return ExitCode::from(code::OK);
        }
    }
    let c = exit_code(e);
    if json {
        let v = serde_json::json!({ "error": e.to_string(), "hint": hint(e), "exit_code": c });
        // Nothing more can be said if stdout is closed: the code says it.
        let _ = writeln!(io::stdout(), "{v}");
    } else {
        eprintln!("sqlite-salvage: error: {e} ({})", hint(e));
    }
    ExitCode::from(c)
}

/// Writes human output to stdout through `f`; a closed pipe (`| head`)
/// ends it quietly (see `report_error`).
fn to_stdout(f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<(), Error> {
    let mut out = BufWriter::new(io::stdout().lock());
    f(&mut out)
        .and_then(|_| out.flush())
        .map_err(|e| Error::Output {
            path: "-".into(),
            source: e,
        })
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<(), Error> {
    let mut out = BufWriter::new(io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, v).map_err(|e| Error::Output {
        path: "-".into(),
        source: io::Error::other(e),
    })?;
    writeln!(out)
        .and_then(|_| out.flush())
        .map_err(|e| Error::Output {
            path: "-".into(),
            source: e,
        })
}

fn warn_exactness(snap: &sqlite_salvage::Snapshot, json: bool) {
    if json {
        return;
    }
    match snap.exactness() {
        Exactness::Exact => {}
        Exactness::Inexact { backfilled } => eprintln!(
            "sqlite-salvage: warning: commit {} cannot be rebuilt exactly: the database file already holds pages checkpointed from WAL frames up to {backfilled}",
            snap.commit()
        ),
        Exactness::Unknown => eprintln!(
            "sqlite-salvage: warning: commit {} may not be rebuilt exactly: no -shm tells how far the WAL was checkpointed into the database file",
            snap.commit()
        ),
    }
}

/// Whether `path` is a file that starts with a WAL magic number (a FIFO
/// or device is not opened here; the reader refuses it with a message).
fn looks_like_wal(path: &Path) -> bool {
    let mut b = [0u8; 4];
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
        && std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut b))
            .is_ok()
        && matches!(
            u32::from_be_bytes(b),
            sqlite_salvage::format::wal::MAGIC_LE | sqlite_salvage::format::wal::MAGIC_BE
        )
}

fn run(cli: Cli) -> Result<u8, Error> {
    let json = cli.json;
    match cli.cmd {
        Command::Backup {
            src,
            dest,
            files,
            force,
            no_sync,
            full_speed,
        } => {
            let opts = backup::BackupOptions {
                mode: if files {
                    backup::Mode::Files
                } else {
                    backup::Mode::Compact
                },
                force,
                no_sync,
                full_speed,
            };
            let m = backup::backup(&src, &dest, &opts)?;
            if json {
                print_json(&m)?;
            } else {
                to_stdout(|out| {
                    writeln!(
                        out,
                        "backed up {} -> {} ({:?}): {} pages of {} bytes{}",
                        src.display(),
                        dest.display(),
                        m.mode,
                        m.page_count,
                        m.page_size,
                        m.wal
                            .as_ref()
                            .map(|w| format!(
                                ", WAL of {} frames ({} commits)",
                                w.frames, w.commits
                            ))
                            .unwrap_or_default()
                    )
                })?;
            }
            Ok(code::OK)
        }
        Command::Verify { dest } => {
            let v = backup::verify(&dest)?;
            if json {
                print_json(&v)?;
            } else {
                to_stdout(|out| {
                    writeln!(
                        out,
                        "{}: ok ({} files, {} pages; {})",
                        dest.display(),
                        v.manifest.files.len(),
                        v.manifest.page_count,
                        v.tables
                            .iter()
                            .map(|(t, n)| format!("{t} {n} rows"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            }
            Ok(code::OK)
        }
        Command::Restore {
            backup: from,
            target,
            even_if_in_use,
            no_sync,
        } => {
            let r = backup::restore(&from, &target, even_if_in_use, no_sync)?;
            if json {
                print_json(&r)?;
            } else {
                to_stdout(|out| {
                    writeln!(out, "restored {} -> {}", from.display(), target.display())?;
                    for p in &r.moved_aside {
                        writeln!(out, "  moved the old database's {} aside", p.display())?;
                    }
                    Ok(())
                })?;
            }
            Ok(code::OK)
        }
        Command::Recover {
            db,
            output,
            force,
            schema,
            report,
            no_sync,
            history,
            wal,
        } => {
            let schema_sql = match &schema {
                Some(p) => Some(std::fs::read_to_string(p).map_err(|e| Error::Io {
                    path: p.clone(),
                    source: e,
                })?),
                None => None,
            };
            // A progress bar on a terminal only, and only for large inputs.
            let large = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) > 64 << 20;
            let bar = (!json && large && io::stderr().is_terminal()).then(|| {
                let b = indicatif::ProgressBar::new(0);
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "{msg:24} [{bar:40}] {pos}/{len} pages ({eta})",
                ) {
                    b.set_style(style.progress_chars("=> "));
                }
                b
            });
            let progress = bar.clone().map(|b| {
                recover::ProgressFn(std::sync::Arc::new(
                    move |phase: &str, done: u64, total: u64| {
                        b.set_length(total);
                        b.set_position(done);
                        b.set_message(phase.to_string());
                    },
                ))
            });
            let opts = recover::RecoverOptions {
                wal: wal.choice(),
                at_commit: wal.at_commit,
                schema_sql,
                force,
                no_sync,
                history,
                progress,
            };
            let r = recover::recover(&db, &output, &opts);
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let r = r?;
            if let Some(path) = &report {
                let text = serde_json::to_string_pretty(&r).map_err(|e| Error::Output {
                    path: path.clone(),
                    source: io::Error::other(e),
                })?;
                std::fs::write(path, text + "\n").map_err(|e| Error::Output {
                    path: path.clone(),
                    source: e,
                })?;
            }
            if json {
                print_json(&r)?;
            } else {
                to_stdout(|out| human::print_recover(out, &r))?;
            }
            Ok(match r.outcome {
                recover::Outcome::Complete => code::OK,
                recover::Outcome::Partial => code::DAMAGE,
                recover::Outcome::Nothing => code::NOTHING,
            })
        }
        Command::Info { db, wal } => {
            let database = Database::open_with(&db, wal.choice())?;
            let snap = database.snapshot(wal.at_commit)?;
            warn_exactness(&snap, json);
            let report = info::info(&database, &snap)?;
            if json {
                print_json(&report)?;
            } else {
                to_stdout(|out| human::print_info(out, &report))?;
            }
            Ok(code::OK)
        }
        Command::Wal { path } => {
            let wal_path = if looks_like_wal(&path) {
                path.clone()
            } else {
                // A database: read the WAL beside it (the database must open).
                Database::open_with(&path, WalChoice::Ignore)?;
                let mut s = path.as_os_str().to_owned();
                s.push("-wal");
                PathBuf::from(s)
            };
            if !wal_path.exists() {
                return Err(Error::Io {
                    path: wal_path,
                    source: io::Error::new(io::ErrorKind::NotFound, "no WAL file"),
                });
            }
            let idx = wal::WalIndex::scan(&wal_path)?;
            if json {
                print_json(&serde_json::json!({
                    "path": wal_path.display().to_string(),
                    "header": idx.as_ref().map(|w| w.header),
                    "frames": idx.as_ref().map(|w| &w.frames),
                    "commits": idx.as_ref().map(|w| &w.commits),
                    "trailing_bytes": idx.as_ref().map(|w| w.trailing_bytes),
                }))?;
            } else {
                to_stdout(|out| human::print_wal(out, &wal_path, idx.as_ref()))?;
            }
            Ok(code::OK)
        }
        Command::Check { db, wal } => {
            let database = Database::open_with(&db, wal.choice())?;
            let snap = database.snapshot(wal.at_commit)?;
            warn_exactness(&snap, json);
            let report = check::check(&snap)?;
            if json {
                print_json(&report)?;
            } else {
                to_stdout(|out| human::print_check(out, &db, &report))?;
            }
            Ok(if report.is_ok() {
                code::OK
            } else {
                code::DAMAGE
            })
        }
        Command::Dump {
            db,
            table,
            format,
            wal,
        } => {
            let database = Database::open_with(&db, wal.choice())?;
            let snap = database.snapshot(wal.at_commit)?;
            warn_exactness(&snap, false);
            let schema = snap.schema()?;
            let opts = DumpOptions {
                format: match format {
                    DumpFormat::Sql => Format::Sql,
                    DumpFormat::Jsonl => Format::Jsonl,
                    DumpFormat::Csv => Format::Csv,
                },
                table,
            };
            let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
            dump(&snap, &schema, &opts, &mut out)?;
            Ok(code::OK)
        }
        Command::Replay {
            db,
            output,
            force,
            no_sync,
            wal,
        } => {
            let database = Database::open_with(&db, wal.choice())?;
            let mut inputs: Vec<&Path> = vec![db.as_path()];
            if let Some(w) = database.wal() {
                inputs.push(w.path.as_path());
            }
            sqlite_salvage::io::check_output(&output, &inputs, force)?;
            let snap = database.snapshot(wal.at_commit)?;
            warn_exactness(&snap, json);
            let stats = replay::replay_with(&snap, &output, !no_sync)?;
            if json {
                print_json(&serde_json::json!({
                    "output": output.display().to_string(),
                    "exactness": snap.exactness(),
                    "stats": stats,
                }))?;
            } else {
                to_stdout(|out| {
                    writeln!(
                        out,
                        "wrote {}: {} pages ({} from the WAL), as of commit {}",
                        output.display(),
                        stats.pages,
                        stats.wal_pages,
                        stats.commit
                    )
                })?;
            }
            Ok(code::OK)
        }
    }
}
