#![no_main]
use libfuzzer_sys::fuzz_target;
use sqlite_salvage::format::page::{BtreePage, FreelistTrunk};

// First byte picks page 1 or not and the reserved bytes; the rest is the page.
fuzz_target!(|data: &[u8]| {
    let Some((&sel, page)) = data.split_first() else {
        return;
    };
    let pgno = if sel & 1 == 1 { 1 } else { 2 };
    let usable = (page.len() as u32).saturating_sub(u32::from(sel >> 1));
    if let Ok(p) = BtreePage::parse(page, pgno, usable) {
        for i in 0..p.cell_count {
            let _ = p.cell(i);
            let _ = p.cell_size(i);
        }
        let _ = p.freeblocks();
        let _ = p.children();
    }
    let _ = FreelistTrunk::parse(page, usable);
});
