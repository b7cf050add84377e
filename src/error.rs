//! The library's error type.

use std::path::PathBuf;

/// Everything that can go wrong while reading or writing.
///
/// Each variant renders as one line that says what is wrong; the CLI adds
/// what to do about it and maps the variant to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The input is not an SQLite database (bad magic, impossible header).
    #[error("{path}: not an SQLite database: {reason}")]
    NotADatabase {
        /// The file involved.
        path: PathBuf,
        /// Which check failed.
        reason: String,
    },
    /// The WAL file is unusable with this database.
    #[error("{path}: not a usable WAL for this database: {reason}")]
    BadWal {
        /// The WAL file.
        path: PathBuf,
        /// Which check failed.
        reason: String,
    },
    /// Writing the output failed.
    #[error("writing {path}: {source}")]
    Output {
        /// The output file ("-" for standard output).
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A structure on disk is damaged where the operation needed it intact.
    #[error("page {page}: {what}")]
    Corrupt {
        /// The page where the damage was found (0 when not tied to a page).
        page: u32,
        /// The kind of damage.
        what: String,
    },
    /// The requested commit does not exist.
    #[error("commit {requested} does not exist: the WAL holds {available} commit(s)")]
    NoSuchCommit {
        /// What was asked for.
        requested: u32,
        /// How many commits there are.
        available: u32,
    },
    /// The requested table is not in the schema.
    #[error("no table named {0:?} in the schema")]
    NoSuchTable(String),
    /// The output already exists and overwriting was not allowed.
    #[error("{0}: already exists")]
    OutputExists(PathBuf),
    /// A format that writes one table was asked for a database of several
    /// (how many) without naming one.
    #[error("csv writes one table and this database has {0}")]
    OneTableNeeded(usize),
    /// The output path would overwrite or alias one of the inputs.
    #[error("{0}: output must not be one of the input files")]
    OutputIsInput(PathBuf),
    /// A hot rollback journal is beside the source: its database file holds
    /// an interrupted transaction.
    #[error(
        "{0}: a hot rollback journal is beside it: the database file holds an interrupted transaction"
    )]
    HotJournal(PathBuf),
    /// The target is open in another process.
    #[error("{0}: in use by another connection")]
    InUse(PathBuf),
    /// A WAL database held by another process in exclusive locking mode:
    /// that process keeps the WAL index in its own memory (there is no
    /// `-shm`) and its lock shuts every other process out, so no consistent
    /// state can be read while it runs.
    #[error(
        "{0}: held by another process in exclusive locking mode (locked, no -shm): no consistent state can be read while it runs"
    )]
    HeldExclusively(PathBuf),
    /// A backup failed verification.
    #[error("{path}: backup does not verify: {what}")]
    BadBackup {
        /// The backup.
        path: PathBuf,
        /// The first problem found.
        what: String,
    },
    /// SQLite reported an error (schema parsing, writing output).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn output(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Output {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(page: u32, what: impl Into<String>) -> Self {
        Error::Corrupt {
            page,
            what: what.into(),
        }
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
