//! `ferry::http::parse_response` on arbitrary bytes (the app's response head), then
//! `framing` for it, and the header helpers the proxy calls on it. No panic; `n <= len`.
#![no_main]

use ferry::http::Method;
use ferry::http::{framing, parse_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Some((head, n))) = parse_response(data) else {
        return;
    };
    assert!(
        n <= data.len(),
        "head length {n} > input length {}",
        data.len()
    );
    let _ = framing(&head, &Method::Get);
    let _ = framing(&head, &Method::Head);
    let _ = head.keep_alive();
    let _ = head.client_headers();
});
