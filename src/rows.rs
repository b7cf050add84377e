//! Rows of a table: b-tree entries decoded as records and mapped to the
//! table's declared columns.

use crate::error::{Error, Result};
use crate::schema::{Affinity, Schema, Table};
use crate::snapshot::Snapshot;
use crate::tree::{Provenance, TreeCursor};
use sqlite_salvage_format::header::TextEncoding;
use sqlite_salvage_format::record::{Record, Value, ValueRef};

/// A lending cursor over the rows of one table, in key order.
///
/// Each row borrows the cursor's buffers: nothing is allocated per row.
pub struct Rows<'s> {
    cursor: TreeCursor<'s>,
    table: &'s Table,
    record: Record,
}

/// One row, borrowed from a [`Rows`] cursor.
pub struct RowView<'r> {
    /// The rowid (None for WITHOUT ROWID tables).
    pub rowid: Option<i64>,
    /// Where the row is stored.
    pub at: Provenance,
    payload: &'r [u8],
    record: &'r Record,
    table: &'r Table,
}

/// An owned row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    /// The rowid (None for WITHOUT ROWID tables).
    pub rowid: Option<i64>,
    /// Values in declared column order.
    pub values: Vec<Value>,
}

impl<'r> RowView<'r> {
    /// Number of values: the table's columns, or the record's when the
    /// table's layout is unknown.
    pub fn len(&self) -> usize {
        if self.table.parsed {
            self.table.columns.len()
        } else {
            self.record.len()
        }
    }

    /// Whether the row has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of values actually stored in the record.
    pub fn stored_len(&self) -> usize {
        self.record.len()
    }

    /// The value of declared column `i`, as SQLite would return it: the
    /// rowid for the INTEGER PRIMARY KEY column, integers read as reals in
    /// REAL columns, and the column default for records stored before the
    /// column was added. Generated VIRTUAL columns read as NULL.
    #[inline]
    pub fn value(&self, i: usize) -> ValueRef<'r> {
        column_value(self.table, self.record, self.payload, self.rowid, i)
    }

    /// All values in declared order.
    pub fn values(&self) -> impl Iterator<Item = ValueRef<'r>> + '_ {
        (0..self.len()).map(|i| self.value(i))
    }

    /// The raw record payload.
    pub fn payload(&self) -> &'r [u8] {
        self.payload
    }

    /// An owned copy with text decoded from `enc`.
    pub fn to_row(&self, enc: TextEncoding) -> Row {
        Row {
            rowid: self.rowid,
            values: self.values().map(|v| v.to_owned(enc)).collect(),
        }
    }
}

/// The value of declared column `i` of `table` for a row stored as
/// `record` over `payload` with `rowid`, as SQLite would return it (see
/// [`RowView::value`]). For a table whose layout is unknown, record column
/// `i`.
#[inline]
pub fn column_value<'a>(
    table: &'a Table,
    record: &Record,
    payload: &'a [u8],
    rowid: Option<i64>,
    i: usize,
) -> ValueRef<'a> {
    if !table.parsed {
        return record.value(payload, i);
    }
    let Some(col) = table.columns.get(i) else {
        return ValueRef::Null;
    };
    if table.rowid_alias == Some(i) {
        if let Some(r) = rowid {
            return ValueRef::Integer(r);
        }
    }
    let Some(slot) = col.slot else {
        return ValueRef::Null;
    };
    if slot >= record.len() {
        return col.default.as_ref();
    }
    match record.value(payload, slot) {
        ValueRef::Integer(v) if col.affinity == Affinity::Real => ValueRef::Real(v as f64),
        v => v,
    }
}

impl<'s> Rows<'s> {
    /// A cursor over the rows of `table` in `snap`.
    pub fn new(snap: &'s Snapshot, table: &'s Table) -> Self {
        Rows {
            cursor: TreeCursor::new(snap, table.root),
            table,
            record: Record::new(),
        }
    }

    /// The next row, or `None` after the last.
    pub fn next_row(&mut self) -> Result<Option<RowView<'_>>> {
        let Some(e) = self.cursor.next()? else {
            return Ok(None);
        };
        if self.table.without_rowid == e.rowid.is_some() {
            return Err(Error::corrupt(
                e.at.page,
                format!(
                    "b-tree of table {:?} has the wrong kind of pages",
                    self.table.name
                ),
            ));
        }
        self.record
            .parse(e.payload)
            .map_err(|m| Error::corrupt(e.at.page, format!("cell {}: record: {m}", e.at.cell)))?;
        Ok(Some(RowView {
            rowid: e.rowid,
            at: e.at,
            payload: e.payload,
            record: &self.record,
            table: self.table,
        }))
    }
}

/// An owning iterator over rows, for convenience where per-row allocation
/// does not matter.
pub struct RowIter<'s> {
    rows: Rows<'s>,
    enc: TextEncoding,
    done: bool,
}

impl Iterator for RowIter<'_> {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.rows.next_row() {
            Ok(Some(r)) => Some(Ok(r.to_row(self.enc))),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl Snapshot {
    /// Reads the schema.
    pub fn schema(&self) -> Result<Schema> {
        Schema::read(self)
    }

    /// A lending cursor over the rows of `table`.
    pub fn rows<'s>(&'s self, table: &'s Table) -> Rows<'s> {
        Rows::new(self, table)
    }

    /// An iterator of owned rows of `table`.
    pub fn row_iter<'s>(&'s self, table: &'s Table) -> RowIter<'s> {
        RowIter {
            rows: Rows::new(self, table),
            enc: self.header().encoding,
            done: false,
        }
    }
}
