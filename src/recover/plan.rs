//! Stage: the load plan, which tables bulk-load their own tree's rows and
//! which go through SQL, and in what order the trees are walked.
//!
//! Takes the schema, the tables SQLite could not create, whether this
//! attempt may load in bulk and what becomes of orphaned leaves; gives a
//! [`LoadPlan`].

use std::collections::HashSet;

use super::splice::Splices;
use crate::schema::Schema;

/// How an attempt writes the rows of tables' own trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoadMode {
    /// Complete rows page by page, the rest through SQL.
    Bulk,
    /// Every row through SQL (after a bulk attempt SQLite refused).
    Sql,
}

/// What becomes of the orphaned leaves of bulk-loaded tables.
pub(crate) enum Orphans {
    /// Their rows go in through SQL, but a walk that finds many of them
    /// may stop writing and survey them instead ([`super::splice`]).
    MaySurvey,
    /// These leaves join their tables' loads; the others' rows go in
    /// through SQL.
    Join(Splices),
    /// Their rows go in through SQL.
    Insert,
}

/// Which tables load in bulk, and the walk order (bulk tables first).
pub(crate) struct LoadPlan {
    mode: LoadMode,
    /// What becomes of orphaned leaves.
    pub orphans: Orphans,
    page_count: u32,
    bulk: Vec<bool>,
    /// Tables SQLite refused to create, with its reason.
    pub tables_not_created: Vec<(String, String)>,
    not_created: HashSet<String>,
}

impl LoadPlan {
    /// A plan for `mode`, settled by [`LoadPlan::settle`] once the tables
    /// exist.
    pub fn new(mode: LoadMode, orphans: Orphans, page_count: u32) -> LoadPlan {
        LoadPlan {
            mode,
            orphans,
            page_count,
            bulk: Vec::new(),
            tables_not_created: Vec::new(),
            not_created: HashSet::new(),
        }
    }

    /// Decides per table, now that [`LoadPlan::tables_not_created`] is known:
    /// a user table that was created, with a root page in range, loads in
    /// bulk when the mode allows.
    pub fn settle(&mut self, schema: &Schema) {
        self.not_created = self
            .tables_not_created
            .iter()
            .map(|t| t.0.clone())
            .collect();
        self.bulk = schema
            .tables
            .iter()
            .map(|t| {
                self.mode == LoadMode::Bulk
                    && !t.name.to_ascii_lowercase().starts_with("sqlite_")
                    && !self.not_created.contains(&t.name)
                    && t.root > 1
                    && t.root <= self.page_count
            })
            .collect();
    }

    /// The input's page count.
    pub fn page_count(&self) -> u32 {
        self.page_count
    }

    /// Whether a walk that finds many orphaned leaves may survey them.
    pub fn may_survey(&self) -> bool {
        self.mode == LoadMode::Bulk && matches!(self.orphans, Orphans::MaySurvey)
    }

    /// The leaves to join to their tables' loads, when there are any.
    pub fn splices(&self) -> Option<&Splices> {
        match &self.orphans {
            Orphans::Join(s) if self.mode == LoadMode::Bulk => Some(s),
            _ => None,
        }
    }

    /// Whether any table loads in bulk.
    pub fn any_bulk(&self) -> bool {
        self.bulk.contains(&true)
    }

    /// Whether table `ti` loads in bulk.
    pub fn is_bulk(&self, ti: usize) -> bool {
        self.bulk.get(ti).copied().unwrap_or(false)
    }

    /// Tables loaded in bulk, in schema order.
    pub fn bulk_tables(&self) -> Vec<usize> {
        (0..self.bulk.len()).filter(|&i| self.bulk[i]).collect()
    }

    /// The other tables, in schema order.
    pub fn sql_tables(&self) -> Vec<usize> {
        (0..self.bulk.len()).filter(|&i| !self.bulk[i]).collect()
    }

    /// Whether SQLite refused to create the table `name`.
    pub fn not_created(&self, name: &str) -> bool {
        self.not_created.contains(name)
    }

    /// The names of the tables SQLite refused to create.
    pub fn not_created_set(&self) -> &HashSet<String> {
        &self.not_created
    }
}
