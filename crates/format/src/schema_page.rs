//! `sqlite_schema` rows read straight off one page image, with no tree
//! walk: what page 1 says before anything else can be trusted.

use super::header::TextEncoding;
use super::kind::PageKind;
use super::page::BtreePage;
use super::record::{Record, ValueRef, decode_text, encode_text};

/// Names of the tables `sqlite_schema` lists on page 1 when page 1 is a
/// leaf holding the whole schema (no cell spills); `None` otherwise.
pub fn table_names_on_page1(page: &[u8], usable: u32, enc: TextEncoding) -> Option<Vec<String>> {
    let p = BtreePage::parse(page, 1, usable).ok()?;
    if p.kind != PageKind::TableLeaf {
        return None;
    }
    let mut rec = Record::new();
    let mut names = Vec::new();
    for i in 0..p.cell_count {
        let pl = *p.cell(i).ok()?.payload()?;
        if pl.spills() {
            return None;
        }
        rec.parse(pl.local).ok()?;
        if let (ValueRef::Text(kind), ValueRef::Text(name)) =
            (rec.value(pl.local, 0), rec.value(pl.local, 1))
        {
            if kind == encode_text("table", enc).as_slice() {
                names.push(decode_text(name, enc).into_owned());
            }
        }
    }
    Some(names)
}
