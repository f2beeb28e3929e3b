//! `ferry::http::parse_range` on an arbitrary Range header value.
//!
//! The first 8 bytes (little-endian) are the representation length, the rest the value.
//! Every range returned lies within `0..len`, has `start <= end`, and the list is non-empty,
//! sorted, non-overlapping and non-adjacent (coalesced), with at most `MAX_RANGES` entries.
#![no_main]

use ferry::http::{MAX_RANGES, RangeRequest, parse_range};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, value)) = data.split_first_chunk::<8>() else {
        return;
    };
    let len = u64::from_le_bytes(*len);
    let RangeRequest::Partial(ranges) = parse_range(value, len) else {
        return;
    };
    assert!(!ranges.is_empty(), "empty Partial for len {len}");
    assert!(ranges.len() <= MAX_RANGES, "{} ranges", ranges.len());
    for r in &ranges {
        assert!(r.start <= r.end, "{r:?} start > end (len {len})");
        assert!(r.end < len, "{r:?} outside 0..{len}");
        assert!(r.len() >= 1);
    }
    for w in ranges.windows(2) {
        // end < len <= u64::MAX, so end + 1 cannot overflow.
        assert!(
            w[0].end + 1 < w[1].start,
            "not sorted/coalesced: {ranges:?} (len {len})"
        );
    }
});
