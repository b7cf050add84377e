//! What every stage reads ([`Ctx`]: the input, its schema, the options),
//! and how a run of the stages ends ([`Attempt`]).

use super::options::RecoverOptions;
use super::report::Report;
use super::splice::Splices;
use crate::schema::Schema;
use crate::snapshot::{Salvage, Snapshot};
use sqlite_salvage_format::header::TextEncoding;

/// How one run of the stages ended.
pub(crate) enum Attempt {
    /// The recovery is complete.
    Done(Box<Report>),
    /// SQLite refused what a bulk load wrote (its reason): run again with
    /// every row through SQL.
    Retry(String),
    /// The walk found many orphaned leaves and surveyed them instead of
    /// writing: run again with those that can join their tables' loads.
    Survey(Splices),
}

/// What every stage reads: the input, its schema and the options.
pub(crate) struct Ctx<'a> {
    pub salvage: &'a Salvage,
    pub snap: &'a Snapshot,
    pub schema: &'a Schema,
    pub opts: &'a RecoverOptions,
    pub enc: TextEncoding,
    pub page_count: u32,
}
