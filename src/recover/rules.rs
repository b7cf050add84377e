//! SQLite's rules for a stored row, applied before a row is written page
//! by page, so that the output passes SQLite's `quick_check` without
//! SQLite reading it back.
//!
//! SQLite's `quick_check` judges each row of a table by its NOT NULL
//! columns and its column types: a TEXT column of an ordinary table holds
//! no number, a numeric column (NUMERIC, INTEGER, REAL) no text that its
//! affinity would have turned into a number, and a NOT NULL column no NULL
//! (a stored NaN reads as NULL). A row of the input's tree that breaks one
//! of these rules (damage, or a file written by other software) is not
//! written page by page: it goes in through SQL, where SQLite applies its
//! affinity and constraints, one row at a time, and what SQLite does to it
//! is in the report as for any row inserted through SQL.
//!
//! Rules only SQLite can evaluate (generated columns, the exact types of a
//! STRICT table, a schema SQLite's parser did not give) are left to
//! SQLite: such a table is checked by `quick_check` of that table once it
//! is written ([`sqlite_judges`]). CHECK constraints are not enforced on
//! recovered rows (the output's connection ignores them), here or there.
//!
//! Takes a table and a record; gives whether the record meets the rules.

use crate::schema::{Affinity, Table};
use sqlite_salvage_format::header::TextEncoding;
use sqlite_salvage_format::record::{Record, ValueRef};

/// Whether table `t`'s rows answer to rules this module does not apply,
/// so that SQLite must check the table once it is written: generated
/// columns, a STRICT table, or columns not from SQLite's parser. STRICT is
/// looked for as a word anywhere in the CREATE statement: one that only
/// looks like the option (a column's name, a string, a comment) costs a
/// check, nothing else.
pub(crate) fn sqlite_judges(t: &Table) -> bool {
    if !t.parsed || t.columns.iter().any(|c| c.generated) {
        return true;
    }
    has_word(&t.sql.to_ascii_uppercase(), "STRICT")
}

/// Whether `word` occurs in `s` with no identifier character either side.
fn has_word(s: &str, word: &str) -> bool {
    let ident = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    s.match_indices(word)
        .any(|(i, w)| !ident(s[..i].chars().next_back()) && !ident(s[i + w.len()..].chars().next()))
}

/// Whether record `rec` (parsed whole from `payload`) of table `t` meets
/// SQLite's NOT NULL and column-type rules for an ordinary table, as its
/// `quick_check` applies them. The rowid alias's slot is not judged.
pub(crate) fn meets_rules(t: &Table, rec: &Record, payload: &[u8], enc: TextEncoding) -> bool {
    for (i, col) in t.columns.iter().enumerate() {
        if t.rowid_alias == Some(i) {
            continue;
        }
        let Some(slot) = col.slot else { continue };
        if !col.notnull && col.affinity == Affinity::Blob {
            continue;
        }
        // A value a short record lacks reads as the column's default,
        // which SQLite applied its affinity to when the column was added.
        if slot >= rec.len() {
            if col.notnull && col.default == crate::schema::StoredValue::Null {
                return false;
            }
            continue;
        }
        // Judged by the serial type, as SQLite's check is: a stored NaN
        // is a REAL (no TEXT column holds one) that reads as NULL.
        let text = col.affinity == Affinity::Text;
        let ok = match rec.serial_type(slot).unwrap_or(0) {
            0 => !col.notnull,
            10 | 11 => false,
            7 => !(text || (col.notnull && rec.value(payload, slot) == ValueRef::Null)),
            1..=6 | 8 | 9 => !text,
            s if s % 2 == 0 => true,
            _ => match rec.value(payload, slot) {
                ValueRef::Text(b) if col.affinity != Affinity::Blob && !text => {
                    !may_be_numeric(b, enc)
                }
                _ => true,
            },
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether text `b` could be one SQLite's numeric affinity turns into a
/// number: after spaces, a sign, digits, a point, an exponent, or a word
/// for infinity or NaN. Errs towards yes (a row wrongly taken for one only
/// goes in through SQL, which applies the affinity itself).
fn may_be_numeric(b: &[u8], enc: TextEncoding) -> bool {
    let mut ascii = Vec::new();
    let text: &[u8] = match enc {
        TextEncoding::Utf8 => b,
        _ => {
            for u in b.chunks(2) {
                let unit = match (enc, u) {
                    (TextEncoding::Utf16le, [x, y]) => u16::from_le_bytes([*x, *y]),
                    (_, [x, y]) => u16::from_be_bytes([*x, *y]),
                    _ => return true,
                };
                match u8::try_from(unit) {
                    Ok(c) if c.is_ascii() => ascii.push(c),
                    _ => return false,
                }
            }
            &ascii
        }
    };
    let t = text.trim_ascii();
    if t.is_empty() {
        return false;
    }
    let numeric_chars = t
        .iter()
        .all(|c| c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.' | b'e' | b'E'));
    if numeric_chars {
        return t.iter().any(u8::is_ascii_digit);
    }
    let word = t.strip_prefix(b"-").or(t.strip_prefix(b"+")).unwrap_or(t);
    ["inf", "infinity", "nan"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_looking_text_is_found_in_both_encodings() {
        let utf16 = |s: &str, le: bool| -> Vec<u8> {
            s.encode_utf16()
                .flat_map(|u| if le { u.to_le_bytes() } else { u.to_be_bytes() })
                .collect()
        };
        for (s, want) in [
            ("12", true),
            (" -1.5e3 ", true),
            ("Inf", true),
            ("abc", false),
            ("", false),
            ("1a", false),
            ("e", false),
            ("0x10", false),
            ("١٢", false),
        ] {
            assert_eq!(
                may_be_numeric(s.as_bytes(), TextEncoding::Utf8),
                want,
                "{s}"
            );
            assert_eq!(may_be_numeric(&utf16(s, true), TextEncoding::Utf16le), want);
            assert_eq!(
                may_be_numeric(&utf16(s, false), TextEncoding::Utf16be),
                want
            );
        }
    }

    #[test]
    fn words_are_found_whole() {
        assert!(has_word("A INT CHECK(A>0)", "CHECK"));
        assert!(!has_word("CHECKED_AT INT", "CHECK"));
        assert!(!has_word("RECHECK INT", "CHECK"));
        assert!(has_word(") STRICT", "STRICT"));
        assert!(has_word(") WITHOUT ROWID, STRICT", "STRICT"));
        assert!(has_word(") STRICT -- a note)", "STRICT"));
        assert!(!has_word(") STRICTLY", "STRICT"));
    }
}
