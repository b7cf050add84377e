//! The kind of a b-tree page, from its first header byte: the one type
//! both [`crate::page`] (pages) and [`crate::cell`] (cells) are read by.

/// The four kinds of b-tree page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PageKind {
    /// Interior page of an index (or WITHOUT ROWID table) b-tree.
    IndexInterior,
    /// Interior page of a rowid table b-tree.
    TableInterior,
    /// Leaf page of an index (or WITHOUT ROWID table) b-tree.
    IndexLeaf,
    /// Leaf page of a rowid table b-tree.
    TableLeaf,
}

impl PageKind {
    /// The kind for a page-type byte.
    #[inline]
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            2 => Some(PageKind::IndexInterior),
            5 => Some(PageKind::TableInterior),
            10 => Some(PageKind::IndexLeaf),
            13 => Some(PageKind::TableLeaf),
            _ => None,
        }
    }

    /// Leaf pages have no children.
    #[inline]
    pub fn is_leaf(self) -> bool {
        matches!(self, PageKind::IndexLeaf | PageKind::TableLeaf)
    }

    /// Table (intkey) pages, as opposed to index pages.
    #[inline]
    pub fn is_table(self) -> bool {
        matches!(self, PageKind::TableInterior | PageKind::TableLeaf)
    }

    /// Size of the page header.
    #[inline]
    pub fn header_len(self) -> usize {
        if self.is_leaf() { 8 } else { 12 }
    }
}
