//! Reads a plain number (digits with at most one point) of up to 16
//! characters from one 16-byte block, with WebAssembly SIMD in guests.
//!
//! Owns: finding where the number ends and where its point is, and the value
//! of its digits, all from one load and without a loop or a branch per
//! digit. The lanes are WebAssembly `v128` operations when the target has
//! `simd128` (every guest, see `.cargo/config.toml`); elsewhere the same
//! steps run lane by lane on arrays, so native tests check the one
//! algorithm (natively, callers read numbers word by word instead: see
//! [`VECTORISED`]). It must not know CSV: callers say where a number starts
//! and check what ends it.

/// Whether [`read`] runs on SIMD lanes here. One lane at a time it is
/// slower than reading a number word by word, so callers use it only where
/// this is true; the tests run it everywhere.
pub(crate) const VECTORISED: bool = cfg!(all(target_arch = "wasm32", target_feature = "simd128"));

/// A number read from a block: its digits as an integer, how many of them
/// follow the point, whether it had one, and its length in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockNumber {
    /// The digits, point removed, as an integer (at most 16 digits).
    pub mantissa: u64,
    /// Digits after the point (0 without one).
    pub decimals: usize,
    /// Whether the number had a point.
    pub has_point: bool,
    /// Bytes from the first digit (or point) to the first byte that is
    /// neither, or 16 when the whole block is the number's (what follows
    /// it is then beyond the block).
    pub len: usize,
}

/// The number at the start of `block`, when it has at least one digit and
/// at most one point (before the block's end); `None` otherwise, for a
/// caller to read it another way. Whether the number ends where the block
/// says is for the caller to check: the byte at `len` is neither a digit
/// nor a point, or is beyond the block.
#[inline(always)]
pub(crate) fn read(block: &[u8; 16]) -> Option<BlockNumber> {
    let values = lanes::digit_values(block);
    let (digits, points) = lanes::digit_and_point_masks(values);
    // Bit 16 is never set in either mask, so `len` is at most 16.
    let len = (!(digits | points)).trailing_zeros();
    let points = points & ((1 << len) - 1);
    let (count, point) = match points {
        0 => (len, 16),
        _ if points & (points - 1) == 0 => (len - 1, points.trailing_zeros()),
        _ => return None,
    };
    if count == 0 {
        return None;
    }
    let (high, low) = lanes::digits_value(values, count, point);
    Some(BlockNumber {
        mantissa: u64::from(high) * 100_000_000 + u64::from(low),
        decimals: if points == 0 {
            0
        } else {
            (len - 1 - point) as usize
        },
        has_point: points != 0,
        len: len as usize,
    })
}

/// A point's digit value: `b'.'` less `b'0'`, wrapping.
const POINT: u8 = b'.'.wrapping_sub(b'0');

/// The lane operations, as WebAssembly SIMD instructions.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod lanes {
    use core::arch::wasm32::*;

    use super::POINT;

    pub type Values = v128;

    /// Each byte of `block` less `b'0'` (wrapping): a digit's value, 10 or
    /// more for any other byte.
    #[inline(always)]
    pub fn digit_values(block: &[u8; 16]) -> Values {
        let b = block;
        let bytes = u8x16(
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
            b[14], b[15],
        );
        u8x16_sub(bytes, u8x16_splat(b'0'))
    }

    /// Bit `i` set when byte `i` is a digit, and when it is a point.
    #[inline(always)]
    pub fn digit_and_point_masks(values: Values) -> (u32, u32) {
        let digits = u8x16_bitmask(u8x16_lt(values, u8x16_splat(10)));
        let points = u8x16_bitmask(u8x16_eq(values, u8x16_splat(POINT)));
        (u32::from(digits), u32::from(points))
    }

    /// The value of the first `count` digits, skipping the point at `point`
    /// (16: none), as its high and low eight digits.
    #[inline(always)]
    pub fn digits_value(values: Values, count: u32, point: u32) -> (u32, u32) {
        // Lane `j` of the result takes digit `k = j - (16 - count)`, which
        // is byte `k`, or `k + 1` past the point. A negative `k` is out of
        // range for the swizzle, which makes the lane zero: the digits end
        // up right-aligned behind leading zeros.
        let iota = i8x16(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let digit = i8x16_sub(iota, i8x16_splat(16 - count as i8));
        let past_point = i8x16_ge(digit, i8x16_splat(point as i8));
        let source = i8x16_sub(digit, past_point);
        let aligned = i8x16_swizzle(values, source);
        // Pairs of digits (the first byte of a lane is the higher digit),
        // then fours, then eights.
        let pairs = i16x8_add(
            i16x8_mul(v128_and(aligned, u16x8_splat(0x00ff)), i16x8_splat(10)),
            u16x8_shr(aligned, 8),
        );
        let fours = i32x4_dot_i16x8(pairs, i16x8(100, 1, 100, 1, 100, 1, 100, 1));
        let fours = i16x8_narrow_i32x4(fours, fours);
        let eights = i32x4_dot_i16x8(fours, i16x8(10_000, 1, 10_000, 1, 10_000, 1, 10_000, 1));
        (
            i32x4_extract_lane::<0>(eights) as u32,
            i32x4_extract_lane::<1>(eights) as u32,
        )
    }
}

/// The same lane operations, one lane at a time.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod lanes {
    use super::POINT;

    pub type Values = [u8; 16];

    #[inline(always)]
    pub fn digit_values(block: &[u8; 16]) -> Values {
        block.map(|byte| byte.wrapping_sub(b'0'))
    }

    #[inline(always)]
    pub fn digit_and_point_masks(values: Values) -> (u32, u32) {
        let mut digits = 0;
        let mut points = 0;
        for (i, value) in values.iter().enumerate() {
            digits |= u32::from(*value < 10) << i;
            points |= u32::from(*value == POINT) << i;
        }
        (digits, points)
    }

    #[inline(always)]
    pub fn digits_value(values: Values, count: u32, point: u32) -> (u32, u32) {
        let mut aligned = [0u32; 16];
        for (j, lane) in aligned.iter_mut().enumerate() {
            let digit = j as i32 - (16 - count as i32);
            if digit < 0 {
                continue;
            }
            let source = if digit >= point as i32 {
                digit + 1
            } else {
                digit
            };
            *lane = u32::from(values[source as usize]);
        }
        let pair = |i: usize| aligned[2 * i] * 10 + aligned[2 * i + 1];
        let four = |i: usize| pair(2 * i) * 100 + pair(2 * i + 1);
        (four(0) * 10_000 + four(1), four(2) * 10_000 + four(3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(text: &str) -> [u8; 16] {
        let mut block = [b'x'; 16];
        block[..text.len()].copy_from_slice(text.as_bytes());
        block
    }

    #[test]
    fn reads_digits_and_the_point() {
        let read = |text: &str| read(&block(text));
        assert_eq!(
            read("42283.58000000,"),
            Some(BlockNumber {
                mantissa: 4_228_358_000_000,
                decimals: 8,
                has_point: true,
                len: 14
            })
        );
        assert_eq!(
            read("1704067200000,4"),
            Some(BlockNumber {
                mantissa: 1_704_067_200_000,
                decimals: 0,
                has_point: false,
                len: 13
            })
        );
        let one = |text: &str| read(text).map(|n| (n.mantissa, n.decimals, n.len));
        assert_eq!(one("0,"), Some((0, 0, 1)));
        assert_eq!(one(".5,"), Some((5, 1, 2)));
        assert_eq!(one("5.,"), Some((5, 0, 2)));
        assert_eq!(one("123456789012345,"), Some((123_456_789_012_345, 0, 15)));
        assert_eq!(
            one("1735689600999999"),
            Some((1_735_689_600_999_999, 0, 16)),
            "16 digits: the end is beyond the block"
        );
        assert_eq!(one("1234567.87654321"), Some((123_456_787_654_321, 8, 16)));
        assert_eq!(one("1.2.3,"), None);
        assert_eq!(one(".,"), None);
        assert_eq!(one(",1"), None);
        assert_eq!(one("-1,"), None, "signs are the caller's");
    }

    #[test]
    fn every_length_and_point_position_reads_like_str_parse() {
        for count in 1..=16usize {
            let digits: String = (0..count)
                .map(|i| char::from(b'1' + (i % 9) as u8))
                .collect();
            let expected: u64 = digits.parse().unwrap();
            let n = read(&block(&digits)).unwrap();
            assert_eq!((n.mantissa, n.decimals, n.len), (expected, 0, count));
            // With a point, 15 digits fill the block.
            for point in (0..=count).filter(|_| count <= 15) {
                let text = format!("{}.{}", &digits[..point], &digits[point..]);
                let n = read(&block(&text)).unwrap();
                assert_eq!(
                    (n.mantissa, n.decimals, n.has_point, n.len),
                    (expected, count - point, true, count + 1),
                    "{text}"
                );
            }
        }
    }
}
