//! What to recover and how ([`RecoverOptions`]), and the progress
//! callback the stages report to.

use crate::snapshot::WalChoice;

/// What to recover and how.
#[derive(Debug, Clone, Default)]
pub struct RecoverOptions {
    /// Which WAL to read.
    pub wal: WalChoice,
    /// Recover as of this salvage commit (default: the last).
    pub at_commit: Option<u32>,
    /// The application's CREATE statements, used when the schema on disk
    /// is unreadable.
    pub schema_sql: Option<String>,
    /// Overwrite the output.
    pub force: bool,
    /// Skip fsync of the output.
    pub no_sync: bool,
    /// Also keep older versions of rows (from superseded WAL frames and the
    /// database file's copies of pages the WAL replaced) in a side table
    /// `<table>__history` per table.
    pub history: bool,
    /// Also give back rows that were deleted, in a side table
    /// `<table>__deleted` per table (see the README's "Deleted rows").
    pub deleted: bool,
    /// Have SQLite's `quick_check` read the whole output back once it is
    /// written. Without it, SQLite checks the tables whose rules only it
    /// can apply; the pages written in bulk are checked as they are
    /// written, and their rows against SQLite's rules before
    /// ([`crate::recover`]'s "checks" section).
    pub check_output: bool,
    /// Called as recovery proceeds.
    pub progress: Option<ProgressFn>,
}

/// The function behind a [`ProgressFn`]: (phase, pages done, pages in all).
pub type ProgressCallback = dyn Fn(&str, u64, u64) + Send + Sync;

/// A progress callback.
#[derive(Clone)]
pub struct ProgressFn(pub std::sync::Arc<ProgressCallback>);

impl std::fmt::Debug for ProgressFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressFn")
    }
}

impl ProgressFn {
    pub(crate) fn tick(p: Option<&ProgressFn>, phase: &str, done: u64, total: u64) {
        if let Some(p) = p {
            (p.0)(phase, done, total);
        }
    }
}
