//! `ferry::http::parse_request` on arbitrary bytes (the client's request head: the
//! request-smuggling boundary).
//!
//! Invariants, beyond "no panic":
//! - a complete head of `n` bytes has `n <= data.len()`, and parsing `data[..n]` alone gives
//!   the same head and the same `n` (the head does not depend on what follows it);
//! - a prefix of the input either needs more bytes or gives the same answer as the whole
//!   input (errors are reported for the earliest offending byte).
#![no_main]

use ferry::http::{ParseError, RequestHead, parse_request};
use libfuzzer_sys::fuzz_target;

type Parsed = Result<Option<(RequestHead, usize)>, ParseError>;

fn assert_same_head(a: &RequestHead, b: &RequestHead, what: &str) {
    assert_eq!(a.method, b.method, "{what}: method");
    assert_eq!(a.target, b.target, "{what}: target");
    assert_eq!(a.version, b.version, "{what}: version");
    assert_eq!(a.headers, b.headers, "{what}: headers");
    assert_eq!(a.body, b.body, "{what}: body");
    assert_eq!(a.keep_alive, b.keep_alive, "{what}: keep_alive");
    assert_eq!(
        a.expect_continue, b.expect_continue,
        "{what}: expect_continue"
    );
}

fn assert_same_answer(a: &Parsed, b: &Parsed, what: &str) {
    match (a, b) {
        (Ok(Some((ha, na))), Ok(Some((hb, nb)))) => {
            assert_eq!(na, nb, "{what}: head length");
            assert_same_head(ha, hb, what);
        }
        (Err(ea), Err(eb)) => assert_eq!(ea, eb, "{what}: error"),
        (Ok(None), Ok(None)) => {}
        _ => panic!(
            "{what}: different answers: {:?} vs {:?}",
            a.as_ref().map(|o| o.as_ref().map(|(_, n)| *n)),
            b.as_ref().map(|o| o.as_ref().map(|(_, n)| *n)),
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = parse_request(data);
    if let Ok(Some((_, n))) = &whole {
        assert!(
            *n <= data.len(),
            "head length {n} > input length {}",
            data.len()
        );
        let again = parse_request(&data[..*n]);
        assert_same_answer(&whole, &again, "reparse of data[..n]");
    }

    // One prefix (its length follows the input's, so the fuzzer moves it around).
    let cut = data.len() / 2;
    let prefix = parse_request(&data[..cut]);
    if !matches!(prefix, Ok(None)) {
        assert_same_answer(&prefix, &whole, "prefix vs whole");
    }
});
