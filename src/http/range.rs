//! Byte ranges (RFC 9110 §14): parsing a `Range` header against a
//! representation length, `Content-Range` values, and the framing pieces of a
//! `multipart/byteranges` body.
//!
//! Whether a Range header applies at all (method, If-Range) is decided by the
//! caller (see `conditional::if_range_allows`); reading the bytes is too.

use super::headers::trim_ows as trim;
use super::response::push_sanitized;

/// An inclusive byte range within a representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    /// Inclusive.
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes covered (`end - start + 1`).
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Always false: a range covers at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// Ignore the header and send the whole representation (200).
    Full,
    /// Sorted, non-overlapping, non-adjacent ranges within the representation.
    Partial(Vec<ByteRange>),
    /// Send 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Most ranges served as one multipart response; more (after coalescing)
/// and the header is ignored.
pub const MAX_RANGES: usize = 16;

/// Most range-specs looked at in one header; more is abuse and the header is
/// ignored before any coalescing work.
const MAX_RANGE_SPECS: usize = 256;

enum Spec {
    /// `first-last` or `first-` (`last` = None).
    Int(u64, Option<u64>),
    /// `-suffix`.
    Suffix(u64),
}

/// Parses a Range header value against a representation of `len` bytes.
///
/// Unknown units, syntax errors, `last < first` and over-long spec lists give
/// `Full`. Ranges starting at or after `len` and zero-length suffixes are
/// unsatisfiable and dropped; ends are clamped to `len - 1`; the rest is
/// sorted and overlapping/adjacent ranges are merged. Nothing left →
/// `Unsatisfiable`, except that a non-zero suffix range on an empty
/// representation is satisfiable per RFC 9110 §14.1.1 yet selects no byte,
/// so that case gives `Full` (200 with the empty body).
pub fn parse_range(value: &[u8], len: u64) -> RangeRequest {
    let Some(specs) = parse_specs(value) else {
        return RangeRequest::Full;
    };
    let mut ranges = Vec::with_capacity(specs.len());
    let mut empty_suffix = false;
    for spec in specs {
        match spec {
            Spec::Int(first, last) if first < len => ranges.push(ByteRange {
                start: first,
                end: last.map_or(len - 1, |l| l.min(len - 1)),
            }),
            Spec::Int(..) | Spec::Suffix(0) => {}
            Spec::Suffix(_) if len == 0 => empty_suffix = true,
            Spec::Suffix(n) => ranges.push(ByteRange {
                start: len - n.min(len),
                end: len - 1,
            }),
        }
    }
    if ranges.is_empty() {
        return if empty_suffix {
            RangeRequest::Full
        } else {
            RangeRequest::Unsatisfiable
        };
    }
    ranges.sort_unstable_by_key(|r| (r.start, r.end));
    let mut merged: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end + 1 => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    if merged.len() > MAX_RANGES {
        RangeRequest::Full
    } else {
        RangeRequest::Partial(merged)
    }
}

fn parse_specs(value: &[u8]) -> Option<Vec<Spec>> {
    let value = trim(value);
    let unit = value.get(..5)?;
    if !unit.eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let set = trim(&value[5..]).strip_prefix(b"=")?;
    let mut specs = Vec::new();
    for item in set.split(|&b| b == b',').map(trim) {
        if item.is_empty() {
            continue;
        }
        if specs.len() == MAX_RANGE_SPECS {
            return None;
        }
        let dash = item.iter().position(|&b| b == b'-')?;
        let (first, last) = (&item[..dash], &item[dash + 1..]);
        specs.push(match (first.is_empty(), last.is_empty()) {
            (true, true) => return None,
            (true, false) => Spec::Suffix(number(last)?),
            (false, true) => Spec::Int(number(first)?, None),
            (false, false) => {
                let (first, last) = (number(first)?, number(last)?);
                if last < first {
                    return None;
                }
                Spec::Int(first, Some(last))
            }
        });
    }
    if specs.is_empty() { None } else { Some(specs) }
}

/// `1*DIGIT`, saturating at u64::MAX (a huge position is still meaningful:
/// past the end).
fn number(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |acc, &b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// `Content-Range` value for a partial response: `"bytes 0-499/1234"`.
pub fn content_range(r: ByteRange, len: u64) -> String {
    format!("bytes {}-{}/{}", r.start, r.end, len)
}

/// `Content-Range` value for a 416 response: `"bytes */1234"`.
pub fn unsatisfied_range(len: u64) -> String {
    format!("bytes */{len}")
}

/// A multipart boundary: `"ferry-"` followed by 20 hex digits mixed from
/// `seed` (splitmix64). The caller supplies the entropy (e.g. a per-process
/// random value combined with a counter); 80 bits make an accidental match
/// inside the file content practically impossible.
pub fn multipart_boundary(seed: u64) -> String {
    let mut state = seed;
    let a = splitmix64(&mut state);
    let b = splitmix64(&mut state);
    format!("ferry-{a:016x}{:04x}", b >> 48)
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Head of one part, the same shape for every part (including the first,
/// whose leading CRLF ends an empty preamble):
/// `"\r\n--B\r\nContent-Type: T\r\nContent-Range: bytes a-b/len\r\n\r\n"`.
/// An empty `content_type` omits the Content-Type line. The part's bytes
/// follow directly; after the last part comes [`multipart_end`].
pub fn multipart_part_head(boundary: &str, content_type: &str, r: ByteRange, len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(boundary.len() + content_type.len() + 96);
    out.extend_from_slice(b"\r\n--");
    push_sanitized(boundary.as_bytes(), &mut out);
    out.extend_from_slice(b"\r\n");
    if !content_type.is_empty() {
        out.extend_from_slice(b"Content-Type: ");
        push_sanitized(content_type.as_bytes(), &mut out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Range: ");
    out.extend_from_slice(content_range(r, len).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out
}

/// Close delimiter: `"\r\n--B--\r\n"`.
pub fn multipart_end(boundary: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(boundary.len() + 8);
    out.extend_from_slice(b"\r\n--");
    push_sanitized(boundary.as_bytes(), &mut out);
    out.extend_from_slice(b"--\r\n");
    out
}

/// Exact `Content-Length` of the multipart body made of
/// [`multipart_part_head`] + bytes for each range, then [`multipart_end`].
pub fn multipart_len(boundary: &str, content_type: &str, ranges: &[ByteRange], len: u64) -> u64 {
    let parts: u64 = ranges
        .iter()
        .map(|&r| multipart_part_head(boundary, content_type, r, len).len() as u64 + r.len())
        .sum();
    parts + multipart_end(boundary).len() as u64
}
