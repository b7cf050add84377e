//! Command-line parsing, output and exit codes.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sqlite_salvage::{Error, Exactness, WalChoice};

mod commands;
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
    // 129, 130, 143: stopped by SIGHUP, SIGINT or SIGTERM (128 + the
    // signal), temporary files removed: `sqlite_salvage::cleanup`.
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

/// `--wal`, `--no-wal` and `--at-commit`, shared by the reading commands.
#[derive(Args, Clone)]
pub struct WalOptions {
    /// Read this WAL instead of DB-wal.
    #[arg(long, value_name = "PATH", conflicts_with = "no_wal")]
    pub wal: Option<PathBuf>,
    /// Ignore any WAL: read the database file alone.
    #[arg(long)]
    pub no_wal: bool,
    /// Read the database as of commit N of the WAL (1 is the first, 0 the
    /// database file alone); default: the last commit.
    #[arg(long, value_name = "N")]
    pub at_commit: Option<u32>,
}

impl WalOptions {
    pub fn choice(&self) -> WalChoice {
        if self.no_wal {
            WalChoice::Ignore
        } else if let Some(p) = &self.wal {
            WalChoice::Path(p.clone())
        } else {
            WalChoice::Auto
        }
    }
}

/// `dump --format`.
#[derive(Clone, Copy, ValueEnum)]
pub enum DumpFormat {
    Sql,
    Jsonl,
    Csv,
}

#[derive(Subcommand)]
enum Command {
    /// A consistent backup of a live database: one compact file (default),
    /// or the file set (--files), with a manifest of sizes and CRC-32s.
    Backup(commands::BackupArgs),
    /// Check a backup: sizes and CRC-32s against its manifest, this tool's
    /// structural check, SQLite's integrity_check. Exit code 1 if it fails.
    Verify(commands::VerifyArgs),
    /// Verify a backup, then put its database in place at TARGET
    /// atomically; a stale -wal, -shm or -journal of the old TARGET is
    /// moved aside.
    Restore(commands::RestoreArgs),
    /// Recover every committed row that survives on disk (tree, orphaned
    /// pages, WAL) into a fresh database, with a report. Exit code 0: all
    /// read; 1: damage met (partial); 7: nothing recovered.
    Recover(commands::RecoverArgs),
    /// Header fields, pages by kind, freelist, schema and the WAL beside it.
    Info(commands::InfoArgs),
    /// Every WAL frame: page, commit, salts, checksum, SQLite's verdict.
    Wal(commands::WalArgs),
    /// Structural check of every page; exit code 1 when damage is found.
    Check(commands::CheckArgs),
    /// Rows as of the last commit (or --at-commit), read by this tool's own
    /// reader with the WAL applied.
    Dump(commands::DumpArgs),
    /// Write a fresh single-file database equal to DB with its WAL applied
    /// up to the last commit (or --at-commit): a point-in-time restore.
    Replay(commands::ReplayArgs),
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
    if let Err(e) = sqlite_salvage::cleanup::on_signals() {
        eprintln!(
            "sqlite-salvage: cannot watch for signals ({e}); a stop may leave temporary files"
        );
    }
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
        Error::NoSuchCommit { .. } | Error::NoSuchTable(_) | Error::OneTableNeeded(_) => {
            code::USAGE
        }
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
        Error::OutputExists(_) => "choose another path, or pass --force to overwrite it",
        Error::OneTableNeeded(_) => {
            "name one with --table; `sqlite-salvage info DB` lists the tables"
        }
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

/// Prints `v` as JSON with `--json`, else what `human` writes.
fn print<T: serde::Serialize>(
    json: bool,
    v: &T,
    human: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), Error> {
    if json {
        print_json(v)
    } else {
        to_stdout(human)
    }
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

/// Warns (on a terminal's stderr, not with `--json`) that the snapshot
/// shown may not be exactly commit `commit`.
fn warn_exactness(exactness: Exactness, commit: u32, json: bool) {
    if json {
        return;
    }
    match exactness {
        Exactness::Exact => {}
        Exactness::Inexact { backfilled } => eprintln!(
            "sqlite-salvage: warning: commit {commit} cannot be rebuilt exactly: the database file already holds pages checkpointed from WAL frames up to {backfilled}"
        ),
        Exactness::Unknown => eprintln!(
            "sqlite-salvage: warning: commit {commit} may not be rebuilt exactly: no -shm tells how far the WAL was checkpointed into the database file"
        ),
    }
}

fn run(cli: Cli) -> Result<u8, Error> {
    let json = cli.json;
    match cli.cmd {
        Command::Backup(a) => commands::backup(a, json),
        Command::Verify(a) => commands::verify(a, json),
        Command::Restore(a) => commands::restore(a, json),
        Command::Recover(a) => commands::recover(a, json),
        Command::Info(a) => commands::info(a, json),
        Command::Wal(a) => commands::wal(a, json),
        Command::Check(a) => commands::check(a, json),
        Command::Dump(a) => commands::dump(a),
        Command::Replay(a) => commands::replay(a, json),
    }
}
