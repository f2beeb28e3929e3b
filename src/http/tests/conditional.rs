//! Precondition evaluation order (RFC 9110 §13.2.2), If-Range and the
//! validator helpers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::codec::ok;
use crate::http::RequestHead;
use crate::http::conditional::*;

const ETAG: &str = "\"5f3-1000-17a3b\"";
/// Sun, 06 Nov 1994 08:49:37 GMT, plus half a second.
const LM_SECS: u64 = 784_111_777;
const LM_DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
const EARLIER: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
const LATER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

fn validators() -> Validators {
    Validators {
        etag: ETAG.into(),
        last_modified: UNIX_EPOCH + Duration::from_millis(LM_SECS * 1000 + 500),
    }
}

fn req(method: &str, headers: &[(&str, &str)]) -> RequestHead {
    let mut s = format!("{method} /f HTTP/1.1\r\nHost: h\r\n");
    for (n, v) in headers {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    s.push_str("\r\n");
    ok(s.as_bytes()).0
}

fn eval(method: &str, headers: &[(&str, &str)]) -> Precondition {
    evaluate(&req(method, headers), &validators())
}

use Precondition::{Failed, NotModified, Proceed};

#[test]
fn no_preconditions() {
    assert_eq!(eval("GET", &[]), Proceed);
}

#[test]
fn if_match_uses_strong_comparison() {
    assert_eq!(eval("PUT", &[("If-Match", ETAG)]), Proceed);
    assert_eq!(eval("PUT", &[("If-Match", "*")]), Proceed);
    assert_eq!(
        eval("PUT", &[("If-Match", "\"x\", \"5f3-1000-17a3b\"")]),
        Proceed
    );
    assert_eq!(
        eval("PUT", &[("If-Match", "\"x\""), ("If-Match", ETAG)]),
        Proceed
    );
    assert_eq!(eval("PUT", &[("If-Match", "\"other\"")]), Failed);
    assert_eq!(eval("GET", &[("If-Match", "W/\"5f3-1000-17a3b\"")]), Failed);
    assert_eq!(eval("GET", &[("If-Match", "5f3-1000-17a3b")]), Failed);
    assert_eq!(eval("GET", &[("If-Match", "\"unterminated")]), Failed);
}

#[test]
fn if_unmodified_since() {
    assert_eq!(eval("PUT", &[("If-Unmodified-Since", LM_DATE)]), Proceed);
    assert_eq!(eval("PUT", &[("If-Unmodified-Since", LATER)]), Proceed);
    assert_eq!(eval("PUT", &[("If-Unmodified-Since", EARLIER)]), Failed);
    assert_eq!(
        eval("PUT", &[("If-Unmodified-Since", "yesterday")]),
        Proceed
    );
    assert_eq!(
        eval(
            "PUT",
            &[
                ("If-Unmodified-Since", EARLIER),
                ("If-Unmodified-Since", EARLIER)
            ]
        ),
        Proceed
    );
    // Only evaluated without If-Match.
    assert_eq!(
        eval(
            "PUT",
            &[("If-Match", ETAG), ("If-Unmodified-Since", EARLIER)]
        ),
        Proceed
    );
}

#[test]
fn if_none_match_uses_weak_comparison() {
    assert_eq!(eval("GET", &[("If-None-Match", ETAG)]), NotModified);
    assert_eq!(eval("HEAD", &[("If-None-Match", ETAG)]), NotModified);
    assert_eq!(
        eval("GET", &[("If-None-Match", "W/\"5f3-1000-17a3b\"")]),
        NotModified
    );
    assert_eq!(
        eval(
            "GET",
            &[("If-None-Match", "\"a\",W/\"b\" , \"5f3-1000-17a3b\"")]
        ),
        NotModified
    );
    assert_eq!(eval("GET", &[("If-None-Match", "*")]), NotModified);
    assert_eq!(eval("POST", &[("If-None-Match", ETAG)]), Failed);
    assert_eq!(eval("DELETE", &[("If-None-Match", "*")]), Failed);
    assert_eq!(eval("GET", &[("If-None-Match", "\"other\"")]), Proceed);
    assert_eq!(eval("GET", &[("If-None-Match", "garbage")]), Proceed);
}

#[test]
fn if_modified_since() {
    assert_eq!(eval("GET", &[("If-Modified-Since", LM_DATE)]), NotModified);
    assert_eq!(eval("HEAD", &[("If-Modified-Since", LATER)]), NotModified);
    assert_eq!(eval("GET", &[("If-Modified-Since", EARLIER)]), Proceed);
    assert_eq!(eval("GET", &[("If-Modified-Since", "not a date")]), Proceed);
    assert_eq!(eval("POST", &[("If-Modified-Since", LATER)]), Proceed);
    // Obsolete date formats are still dates.
    assert_eq!(
        eval(
            "GET",
            &[("If-Modified-Since", "Sunday, 06-Nov-94 08:49:37 GMT")]
        ),
        NotModified
    );
}

#[test]
fn precedence() {
    // If-None-Match present: If-Modified-Since is ignored.
    assert_eq!(
        eval(
            "GET",
            &[("If-None-Match", "\"other\""), ("If-Modified-Since", LATER)]
        ),
        Proceed
    );
    // A failing If-Match wins over a matching If-None-Match.
    assert_eq!(
        eval("GET", &[("If-Match", "\"other\""), ("If-None-Match", ETAG)]),
        Failed
    );
    // A failing If-Unmodified-Since wins too.
    assert_eq!(
        eval(
            "GET",
            &[("If-Unmodified-Since", EARLIER), ("If-None-Match", ETAG)]
        ),
        Failed
    );
    // Passing If-Match, then If-None-Match decides.
    assert_eq!(
        eval("GET", &[("If-Match", ETAG), ("If-None-Match", ETAG)]),
        NotModified
    );
}

#[test]
fn if_range() {
    let v = validators();
    let later = UNIX_EPOCH + Duration::from_secs(LM_SECS + 10);
    let allows = |h: &[(&str, &str)], now| if_range_allows_at(&req("GET", h), &v, now);
    assert!(allows(&[], later));
    assert!(allows(&[("If-Range", ETAG)], later));
    assert!(!allows(&[("If-Range", "W/\"5f3-1000-17a3b\"")], later));
    assert!(!allows(&[("If-Range", "\"other\"")], later));
    assert!(!allows(&[("If-Range", "\"a\", \"5f3-1000-17a3b\"")], later));
    assert!(allows(&[("If-Range", LM_DATE)], later));
    assert!(!allows(&[("If-Range", LATER)], later));
    assert!(!allows(&[("If-Range", EARLIER)], later));
    assert!(!allows(&[("If-Range", "garbage")], later));
    assert!(!allows(&[("If-Range", ETAG), ("If-Range", ETAG)], later));
    // Last-Modified in the current second is weak: no date match.
    let same_second = UNIX_EPOCH + Duration::from_millis(LM_SECS * 1000 + 900);
    assert!(!allows(&[("If-Range", LM_DATE)], same_second));
    // A weak validator of ours never matches.
    let weak = Validators {
        etag: format!("W/{ETAG}").into(),
        ..validators()
    };
    assert!(!if_range_allows_at(
        &req("GET", &[("If-Range", ETAG)]),
        &weak,
        later
    ));
    // The public wrapper uses the real clock (1994 is long past).
    assert!(if_range_allows(&req("GET", &[("If-Range", LM_DATE)]), &v));
}

#[test]
fn etag_and_date_formatting() {
    assert_eq!(strong_etag(0x5f3, 0x1000, 0x17a3b), ETAG);
    assert_eq!(strong_etag(0, 0, 0), "\"0-0-0\"");
    assert_eq!(strong_etag(1, 2, -1), format!("\"1-2-{}\"", "f".repeat(32)));
    assert_eq!(
        http_date(UNIX_EPOCH + Duration::from_secs(LM_SECS)),
        LM_DATE
    );
    assert_eq!(
        http_date(SystemTime::UNIX_EPOCH),
        "Thu, 01 Jan 1970 00:00:00 GMT"
    );
}

#[test]
fn date_formatting_at_calendar_edges() {
    // 2000-02-29 (a leap day of a year divisible by 400), 2100-03-01 (after the 28th of a
    // non-leap century), 1972-12-31, the last second four year digits can write.
    for (secs, text) in [
        (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
        (4_107_542_400, "Mon, 01 Mar 2100 00:00:00 GMT"),
        (94_694_399, "Sun, 31 Dec 1972 23:59:59 GMT"),
        (253_402_300_799, "Fri, 31 Dec 9999 23:59:59 GMT"),
    ] {
        assert_eq!(http_date(UNIX_EPOCH + Duration::from_secs(secs)), text);
    }
}

proptest::proptest! {
    #[test]
    fn date_formatting_matches_httpdate(secs in 0u64..=253_402_300_799, nanos in 0u32..1_000_000_000) {
        let t = UNIX_EPOCH + Duration::new(secs, nanos);
        proptest::prop_assert_eq!(http_date(t), httpdate::fmt_http_date(t));
    }

    #[test]
    fn etag_matches_the_format_string(inode: u64, size: u64, mtime: i128) {
        proptest::prop_assert_eq!(
            strong_etag(inode, size, mtime),
            format!("\"{inode:x}-{size:x}-{:x}\"", mtime.cast_unsigned())
        );
    }
}
