//! Page-level reading of SQLite databases and their WAL files.
//!
//! `sqlite-salvage` reads the SQLite file format directly: the database
//! header, b-tree pages, records, overflow chains, freelists, pointer maps,
//! WAL frames and rollback journals. It never modifies its inputs, never
//! panics on any input, and reads a database as of any commit in its WAL.
//!
//! ```no_run
//! use sqlite_salvage::{Database, format::record::ValueRef};
//!
//! # fn main() -> sqlite_salvage::Result<()> {
//! // Opens memory.db read-only, with memory.db-wal if it exists.
//! let db = Database::open("memory.db")?;
//! // The database as of the last commit in the WAL.
//! let snap = db.latest()?;
//! let schema = snap.schema()?;
//! let table = schema.require("notes")?;
//! let mut rows = snap.rows(table);
//! while let Some(row) = rows.next_row()? {
//!     for (name, value) in table.column_names().zip(row.values()) {
//!         if let ValueRef::Integer(i) = value {
//!             println!("{:?} {name} = {i}", row.rowid);
//!         }
//!     }
//! }
//! // Or as owned values, as of the second commit:
//! let earlier = db.snapshot(Some(2))?;
//! for row in earlier.row_iter(table) {
//!     println!("{:?}", row?.values);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Modules, from the bytes up: [`format`](mod@format) (pure decoding of byte slices),
//! [`wal`] (frames and commits), [`snapshot`] (pages as of a commit),
//! [`tree`] (b-tree walks), [`schema`], [`rows`], and the operations built
//! on them: [`check`], [`dump`], [`replay`], [`info`], [`recover`] (every
//! surviving row of a damaged database into a fresh one) and [`backup`]
//! (consistent hot backups, verify, restore).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod backup;
pub mod check;
pub mod cleanup;
pub mod dump;
pub mod error;
pub use sqlite_salvage_format as format;
pub mod info;
pub mod io;
pub mod recover;
pub mod replay;
pub mod rows;
pub mod schema;
pub mod snapshot;
pub mod torn;
pub mod tree;
pub mod wal;

pub use error::{Error, Result};
pub use rows::{Row, RowView, Rows};
pub use schema::{Schema, Table};
pub use snapshot::{Database, Exactness, Snapshot, WalChoice};
