//! The two primitives every representation is built from (RFC 7541 §5): integers with an
//! N-bit prefix and string literals (length, optionally Huffman coded).

use super::error::HpackError;
use super::huffman;

/// Continuation bytes past the prefix at most: 5 carry 35 bits, enough for any `u32`.
/// More (even zero-valued ones, which a decoder could otherwise loop over) is an overflow.
const MAX_CONTINUATION_BYTES: u32 = 5;

/// A cursor over one header block.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// The whole block; `take` returns ranges of it.
    pub(super) fn block(&self) -> &'a [u8] {
        self.buf
    }

    /// Decodes an integer whose first byte carries `prefix` bits (§5.1); the first byte's
    /// other bits (the representation's pattern) are ignored. At most `u32::MAX`.
    pub(super) fn int(&mut self, prefix: u8) -> Result<usize, HpackError> {
        let mask = (1u8 << prefix) - 1;
        let first = self.peek().ok_or(HpackError::Truncated)? & mask;
        self.pos += 1;
        if first < mask {
            return Ok(usize::from(first));
        }
        let mut value = u64::from(mask);
        for i in 0..MAX_CONTINUATION_BYTES {
            let b = self.peek().ok_or(HpackError::Truncated)?;
            self.pos += 1;
            value += u64::from(b & 0x7f) << (7 * i);
            if value > u64::from(u32::MAX) {
                return Err(HpackError::IntegerOverflow);
            }
            if b & 0x80 == 0 {
                return usize::try_from(value).map_err(|_| HpackError::IntegerOverflow);
            }
        }
        Err(HpackError::IntegerOverflow)
    }

    /// The next `len` bytes, as a range of the block.
    pub(super) fn take(&mut self, len: usize) -> Result<std::ops::Range<usize>, HpackError> {
        let start = self.pos;
        let end = start
            .checked_add(len)
            .filter(|&end| end <= self.buf.len())
            .ok_or(HpackError::Truncated)?;
        self.pos = end;
        Ok(start..end)
    }
}

/// Appends `value` as an integer with a `prefix`-bit prefix; `pattern` holds the first
/// byte's high bits (the representation).
pub(super) fn encode_int(value: usize, prefix: u8, pattern: u8, out: &mut Vec<u8>) {
    let mask = (1u8 << prefix) - 1;
    if value < usize::from(mask) {
        // Fits: `value < mask <= 0xff`.
        out.push(pattern | value as u8);
        return;
    }
    out.push(pattern | mask);
    let mut rest = value - usize::from(mask);
    while rest >= 0x80 {
        out.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Appends a string literal (§5.2), Huffman coded when that is shorter.
pub(super) fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    let coded = huffman::encoded_len(s);
    if coded < s.len() {
        encode_int(coded, 7, 0x80, out);
        huffman::encode(s, out);
    } else {
        encode_int(s.len(), 7, 0, out);
        out.extend_from_slice(s);
    }
}
