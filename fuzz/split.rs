//! How the `database` target cuts one input into a database and its WAL;
//! shared with the test suite, which replays the seeds the same way.

/// After an even first byte, the rest is the database file (no WAL). After
/// an odd one, `2n + 1`, the rest is n pages of the page size its header
/// names (512 when that is not one), then the WAL (none when empty).
pub fn split(data: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let (&sel, rest) = data.split_first()?;
    if sel & 1 == 0 {
        return Some((rest, None));
    }
    let ps = rest
        .get(16..18)
        .map(|b| match u16::from_be_bytes([b[0], b[1]]) {
            1 => 65536,
            n => usize::from(n),
        })
        .filter(|p| p.is_power_of_two() && *p >= 512)
        .unwrap_or(512);
    let (db, wal) = rest.split_at((usize::from(sel >> 1) * ps).min(rest.len()));
    Some((db, (!wal.is_empty()).then_some(wal)))
}
