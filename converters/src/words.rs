//! Byte searches a word (8 bytes) at a time, for the short texts an import is made of: header
//! names and values, URLs, JSON strings.
//!
//! Each test flags the bytes of a word (read little endian) that match by setting their high
//! bit. The lowest flag always marks the first matching byte; flags above it may be wrong (a
//! borrow runs upwards), so only the lowest is used. Tests of several kinds are combined with
//! `|`: the lowest flag of the combination is still exact.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The 8 bytes of `bytes` at `at`, if there are 8.
pub(crate) fn word(bytes: &[u8], at: usize) -> Option<u64> {
    let w: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(w))
}

/// Flags the bytes equal to `byte`.
pub(crate) fn equal(x: u64, byte: u8) -> u64 {
    let y = x ^ (ONES * u64::from(byte));
    y.wrapping_sub(ONES) & !y & HIGH
}

/// Flags the bytes below `n` (at most 0x80).
pub(crate) fn below(x: u64, n: u8) -> u64 {
    x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH
}

/// The index in the word of the first byte flagged in `flags`, which is not 0.
pub(crate) fn first(flags: u64) -> usize {
    flags.trailing_zeros() as usize / 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_flag_is_exact() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let interesting = [0u8, 0x1f, 0x20, b'"', b'\\', b'{', 0x7f, 0x80, 0xa0, 0xff];
        for _ in 0..100_000 {
            crate::test_rand::step(&mut seed);
            let bytes: Vec<u8> = (0..8)
                .map(|i| {
                    let r = (seed >> (i * 7)) as usize;
                    if r.is_multiple_of(3) {
                        interesting[r % interesting.len()]
                    } else {
                        (r >> 3) as u8
                    }
                })
                .collect();
            let x = word(&bytes, 0).expect("8 bytes");
            for byte in [b'"', b'\\', 0, 0xff] {
                let expected = bytes.iter().position(|&b| b == byte);
                let flags = equal(x, byte);
                assert_eq!(
                    (flags != 0).then(|| first(flags)),
                    expected,
                    "{bytes:?} {byte}"
                );
            }
            for n in [0x20, 0x80, 1] {
                let expected = bytes.iter().position(|&b| b < n);
                let flags = below(x, n);
                assert_eq!(
                    (flags != 0).then(|| first(flags)),
                    expected,
                    "{bytes:?} < {n}"
                );
            }
            let expected = bytes
                .iter()
                .position(|&b| b < 0x20 || b == b'"' || b == b'\\');
            let flags = below(x, 0x20) | equal(x, b'"') | equal(x, b'\\');
            assert_eq!((flags != 0).then(|| first(flags)), expected, "{bytes:?}");
        }
        assert_eq!(word(b"1234567", 0), None);
        assert_eq!(word(b"12345678", 1), None);
    }
}
