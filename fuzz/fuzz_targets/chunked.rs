//! `ferry::http::ChunkedDecoder` on arbitrary bytes (a client's or the app's chunked body).
//!
//! The first input byte picks a split position; the rest is decoded once whole and once in
//! two pieces. Both must give the same decoded bytes, the same consumed count (or the same
//! error) and the same `done()`. Also: only a finished body leaves input unconsumed, a
//! finished decoder consumes nothing more, and a failed one stays failed.
#![no_main]

use ferry::http::ChunkedDecoder;
use libfuzzer_sys::fuzz_target;

/// Small enough that the fuzzer reaches the line-length limit; the proxy uses 4096.
const MAX_CHUNK_LINE: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    // 0 → split before the first byte, 255 → after the last, proportionally between.
    let split = body.len() * usize::from(first) / 255;
    let (a, b) = body.split_at(split);

    let mut whole = ChunkedDecoder::new(MAX_CHUNK_LINE);
    let mut whole_out = Vec::new();
    let whole_res = whole.decode(body, &mut whole_out);
    if let Ok(n) = whole_res {
        assert!(n <= body.len());
        assert!(
            n == body.len() || whole.done(),
            "stopped at {n} of {} without done()",
            body.len()
        );
    }

    let mut pieces = ChunkedDecoder::new(MAX_CHUNK_LINE);
    let mut pieces_out = Vec::new();
    let pieces_res = match pieces.decode(a, &mut pieces_out) {
        Err(e) => Err(e),
        Ok(n1) if n1 < a.len() => {
            assert!(
                pieces.done(),
                "stopped at {n1} of {} without done()",
                a.len()
            );
            let before = pieces_out.len();
            assert_eq!(
                pieces.decode(b, &mut pieces_out),
                Ok(0),
                "finished decoder consumed more"
            );
            assert_eq!(pieces_out.len(), before, "finished decoder produced more");
            Ok(n1)
        }
        Ok(n1) => pieces.decode(b, &mut pieces_out).map(|n2| n1 + n2),
    };

    assert_eq!(whole_res, pieces_res, "split at {split}: result");
    assert_eq!(whole_out, pieces_out, "split at {split}: decoded bytes");
    assert_eq!(whole.done(), pieces.done(), "split at {split}: done()");

    if whole_res.is_err() {
        assert!(
            whole.decode(b"0\r\n\r\n", &mut whole_out).is_err(),
            "failed decoder recovered"
        );
        assert!(
            whole.decode(b"", &mut whole_out).is_err(),
            "failed decoder recovered"
        );
    }
});
