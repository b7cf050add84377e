//! SQLite variable-length integers.
//!
//! A varint is 1 to 9 bytes, big-endian, seven bits per byte with the high
//! bit meaning "more follows"; the ninth byte, when present, contributes all
//! eight bits. The one-byte case is peeled off first because it is by far the
//! most common (serial types, small rowids, small payload sizes).

/// Decodes the varint at the start of `buf`.
///
/// Returns the value and the number of bytes it used, or `None` when `buf`
/// ends before the varint does.
#[inline]
pub fn read_varint(buf: &[u8]) -> Option<(u64, usize)> {
    let first = *buf.first()?;
    if first < 0x80 {
        return Some((u64::from(first), 1));
    }
    let mut value: u64 = u64::from(first & 0x7f);
    for i in 1..8 {
        let b = *buf.get(i)?;
        value = (value << 7) | u64::from(b & 0x7f);
        if b < 0x80 {
            return Some((value, i + 1));
        }
    }
    let b = *buf.get(8)?;
    Some(((value << 8) | u64::from(b), 9))
}

/// Decodes a varint as SQLite's signed 64-bit interpretation (rowids).
#[inline]
pub fn read_varint_i64(buf: &[u8]) -> Option<(i64, usize)> {
    read_varint(buf).map(|(v, n)| (v as i64, n))
}

/// Encodes `value` as a varint into `out`, returning the number of bytes written.
pub fn write_varint(value: u64, out: &mut [u8; 9]) -> usize {
    if value <= 0x7f {
        out[0] = value as u8;
        return 1;
    }
    if value > 0x00ff_ffff_ffff_ffff {
        out[8] = value as u8;
        let mut v = value >> 8;
        for i in (0..8).rev() {
            out[i] = ((v & 0x7f) as u8) | 0x80;
            v >>= 7;
        }
        return 9;
    }
    let mut tmp = [0u8; 9];
    let mut n = 0;
    let mut v = value;
    while v != 0 {
        tmp[n] = ((v & 0x7f) as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    tmp[0] &= 0x7f;
    for i in 0..n {
        out[i] = tmp[n - 1 - i];
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_boundaries() {
        let mut values = vec![
            0u64,
            1,
            0x7f,
            0x80,
            0x3fff,
            0x4000,
            u64::MAX,
            i64::MAX as u64,
        ];
        for shift in 0..64 {
            values.push(1u64 << shift);
            values.push((1u64 << shift) - 1);
            values.push((1u64 << shift).wrapping_add(1));
        }
        for v in values {
            let mut buf = [0u8; 9];
            let n = write_varint(v, &mut buf);
            assert_eq!(read_varint(&buf[..n]), Some((v, n)), "value {v:#x}");
            assert_eq!(read_varint(&buf[..n - 1]), None);
        }
    }

    #[test]
    fn lengths_match_sqlite() {
        let mut buf = [0u8; 9];
        assert_eq!(write_varint(240, &mut buf), 2);
        assert_eq!(write_varint(0x00ff_ffff_ffff_ffff, &mut buf), 8);
        assert_eq!(write_varint(0x0100_0000_0000_0000, &mut buf), 9);
        assert_eq!(read_varint(&[0xff; 9]), Some((u64::MAX, 9)));
        assert_eq!(read_varint(&[]), None);
    }
}
