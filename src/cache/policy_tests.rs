//! The RFC 9111 rules on byte-literal heads.

use super::*;
use crate::http::parse_request;
use crate::http::parse_response;

const NOW: u64 = 1_700_000_000;

fn req(extra: &str) -> RequestHead {
    req_method("GET", extra)
}

fn req_method(method: &str, extra: &str) -> RequestHead {
    let text = format!("{method} /a HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
    match parse_request(text.as_bytes()) {
        Ok(Some((head, _))) => head,
        other => panic!("{other:?}"),
    }
}

fn resp(status: u16, headers: &str) -> ResponseHead {
    let text = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n{headers}\r\n");
    match parse_response(text.as_bytes()) {
        Ok(Some((head, _))) => head,
        other => panic!("{other:?}"),
    }
}

fn lifetime_of(req: &RequestHead, head: &ResponseHead) -> Result<u64, &'static str> {
    match storable(req, head, NOW) {
        Storable::Yes(f) => Ok(f.lifetime),
        Storable::No(why) => Err(why),
    }
}

#[test]
fn directives_parse_with_arguments_case_and_junk() {
    let d = Directives::parse([
        &b"Public, MAX-AGE=60, s-maxage=\"30\""[..],
        b"stale-if-error=5, stale-while-revalidate=x, no-cache=\"Set-Cookie\", foo",
    ]);
    assert!(d.public && d.no_cache && !d.no_store && !d.private);
    assert_eq!(d.max_age, Some(60));
    assert_eq!(d.s_maxage, Some(30));
    assert_eq!(d.stale_if_error, Some(5));
    assert_eq!(d.stale_while_revalidate, None);
    let big = Directives::parse([&b"max-age=99999999999999999999999"[..]]);
    assert_eq!(big.max_age, Some(1 << 31));
    assert_eq!(Directives::parse([&b"max-age=-1"[..]]).max_age, None);
}

#[test]
fn freshness_comes_from_x_accel_expires_then_s_maxage_then_max_age_then_expires() {
    let get = req("");
    let date = "Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"; // NOW
    let all = format!(
        "{date}X-Accel-Expires: 7\r\nCache-Control: max-age=60, s-maxage=30\r\n\
         Expires: Tue, 14 Nov 2023 22:15:20 GMT\r\n"
    );
    assert_eq!(lifetime_of(&get, &resp(200, &all)), Ok(7));
    let no_accel = all.replace("X-Accel-Expires: 7\r\n", "");
    assert_eq!(lifetime_of(&get, &resp(200, &no_accel)), Ok(30));
    let max_age = no_accel.replace(", s-maxage=30", "");
    assert_eq!(lifetime_of(&get, &resp(200, &max_age)), Ok(60));
    let expires = max_age.replace("Cache-Control: max-age=60\r\n", "");
    assert_eq!(lifetime_of(&get, &resp(200, &expires)), Ok(120));
    let at = format!("X-Accel-Expires: @{}\r\n", NOW + 90);
    assert_eq!(lifetime_of(&get, &resp(200, &at)), Ok(90));
    // X-Accel-Expires wins over no-cache as well; 0 forbids storing.
    let accel = "X-Accel-Expires: 5\r\nCache-Control: no-cache\r\n";
    assert_eq!(lifetime_of(&get, &resp(200, accel)), Ok(5));
    let zero = "X-Accel-Expires: 0\r\nCache-Control: max-age=60\r\n";
    assert_eq!(
        lifetime_of(&get, &resp(200, zero)),
        Err("x-accel-expires 0")
    );
}

#[test]
fn only_explicitly_fresh_responses_are_stored() {
    let get = req("");
    assert_eq!(
        lifetime_of(&get, &resp(200, "ETag: \"a\"\r\n")),
        Err("no explicit freshness")
    );
    assert_eq!(
        lifetime_of(&get, &resp(200, "Cache-Control: max-age=0\r\n")),
        Err("not fresh")
    );
    // An invalid Expires is in the past.
    assert_eq!(
        lifetime_of(&get, &resp(200, "Expires: 0\r\n")),
        Err("not fresh")
    );
    // no-cache (or max-age=0) with a validator: stored, revalidated on every use.
    let no_cache = "Cache-Control: no-cache, max-age=60\r\nETag: \"a\"\r\n";
    assert_eq!(lifetime_of(&get, &resp(200, no_cache)), Ok(0));
    let zero = "Cache-Control: max-age=0\r\nLast-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\n";
    assert_eq!(lifetime_of(&get, &resp(200, zero)), Ok(0));
}

#[test]
fn what_is_never_stored() {
    let get = req("");
    let fresh = "Cache-Control: max-age=60\r\n";
    for (status, extra, why) in [
        (200, "Cache-Control: no-store, max-age=60\r\n", "no-store"),
        (200, "Cache-Control: private, max-age=60\r\n", "private"),
        (
            200,
            "Set-Cookie: a=1\r\nCache-Control: max-age=60\r\n",
            "set-cookie",
        ),
        (
            200,
            "Vary: Accept, *\r\nCache-Control: max-age=60\r\n",
            "vary *",
        ),
        (206, fresh, "status"),
        (304, fresh, "status"),
        (500, fresh, "status"),
        (503, fresh, "status"),
    ] {
        assert_eq!(lifetime_of(&get, &resp(status, extra)), Err(why), "{extra}");
    }
    for ok in [200, 203, 301, 404, 410] {
        assert_eq!(lifetime_of(&get, &resp(ok, fresh)), Ok(60), "{ok}");
    }
    let head = req_method("HEAD", "");
    assert_eq!(lifetime_of(&head, &resp(200, fresh)), Err("method"));
}

#[test]
fn authorization_needs_public_s_maxage_or_must_revalidate() {
    let auth = req("Authorization: Bearer t\r\n");
    assert_eq!(
        lifetime_of(&auth, &resp(200, "Cache-Control: max-age=60\r\n")),
        Err("authorization")
    );
    for cc in [
        "public, max-age=60",
        "s-maxage=60",
        "must-revalidate, max-age=60",
    ] {
        let head = resp(200, &format!("Cache-Control: {cc}\r\n"));
        assert_eq!(lifetime_of(&auth, &head), Ok(60), "{cc}");
    }
}

#[test]
fn stale_permissions_follow_the_directives() {
    let get = req("");
    let head = resp(
        200,
        "Cache-Control: max-age=1, stale-if-error=30, stale-while-revalidate=9\r\n",
    );
    let Storable::Yes(f) = storable(&get, &head, NOW) else {
        panic!("not stored")
    };
    assert_eq!(f.stale_if_error, Some(30));
    assert_eq!(f.stale_while_revalidate, 9);
    assert!(!f.no_stale);
    for cc in [
        "max-age=1, must-revalidate",
        "s-maxage=1",
        "max-age=1, proxy-revalidate",
    ] {
        let head = resp(200, &format!("Cache-Control: {cc}\r\n"));
        let Storable::Yes(f) = storable(&get, &head, NOW) else {
            panic!("not stored")
        };
        assert!(f.no_stale, "{cc}");
    }
}

#[test]
fn requests_that_bypass_or_revalidate() {
    use RequestUse::*;
    assert_eq!(request_use(&req_method("POST", "")), Bypass("method"));
    assert_eq!(
        request_use(&req("Content-Length: 3\r\n")),
        Bypass("request body")
    );
    assert_eq!(
        request_use(&req("Cache-Control: no-store\r\n")),
        Bypass("no-store")
    );
    assert_eq!(
        request_use(&req("Connection: upgrade\r\nUpgrade: websocket\r\n")),
        Bypass("upgrade")
    );
    let plain = Lookup {
        revalidate: false,
        max_age: None,
    };
    assert_eq!(request_use(&req("")), plain);
    assert_eq!(request_use(&req_method("HEAD", "")), plain);
    for extra in [
        "Cache-Control: no-cache\r\n",
        "Cache-Control: max-age=0\r\n",
        "Pragma: no-cache\r\n",
    ] {
        let Lookup { revalidate, .. } = request_use(&req(extra)) else {
            panic!("bypass")
        };
        assert!(revalidate, "{extra}");
    }
    // Pragma counts only without Cache-Control.
    let both = req("Cache-Control: max-age=5\r\nPragma: no-cache\r\n");
    assert_eq!(
        request_use(&both),
        Lookup {
            revalidate: false,
            max_age: Some(5)
        }
    );
}

#[test]
fn vary_names_and_the_secondary_key() {
    let head = resp(
        200,
        "Vary: Accept-Encoding, accept\r\nVary: ACCEPT-ENCODING\r\n",
    );
    let names = vary_names(&head).unwrap_or_default();
    assert_eq!(names, ["accept", "accept-encoding"]);
    assert_eq!(vary_names(&resp(200, "Vary: *\r\n")), Err(VaryStar));
    let a = req("Accept-Encoding: gzip\r\nAccept: text/html\r\n");
    let b = req("Accept-Encoding:  gzip \r\nAccept: text/html\r\n");
    let c = req("Accept-Encoding: br\r\nAccept: text/html\r\n");
    let d = req("Accept: text/html\r\n");
    assert_eq!(vary_values(&a, &names), vary_values(&b, &names));
    assert_ne!(vary_values(&a, &names), vary_values(&c, &names));
    assert_ne!(vary_values(&a, &names), vary_values(&d, &names));
    assert_eq!(
        vary_values(&d, &names)[1],
        ("accept-encoding".to_string(), None)
    );
}

#[test]
fn age_follows_rfc_9111_section_4_2_3() {
    // Date 10 s before arrival, Age 3 from upstream caches, 2 s on the way.
    assert_eq!(initial_age(Some(NOW - 10), Some(3), NOW - 2, NOW), 10);
    assert_eq!(initial_age(Some(NOW - 1), Some(30), NOW - 2, NOW), 32);
    // A Date in the future does not make the age negative.
    assert_eq!(initial_age(Some(NOW + 100), None, NOW, NOW), 0);
    assert_eq!(initial_age(None, None, NOW, NOW), 0);
    assert_eq!(current_age(10, NOW, NOW + 5), 15);
    assert_eq!(current_age(10, NOW, NOW - 5), 10);
    assert_eq!(age_header(&resp(200, "Age: 42\r\n")), Some(42));
    assert_eq!(age_header(&resp(200, "Age: -1\r\n")), None);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever an app or client puts in Cache-Control, parsing never panics, and a
        /// delta-seconds never exceeds 2^31.
        #[test]
        fn cache_control_of_any_bytes(value in proptest::collection::vec(any::<u8>(), 0..200)) {
            let d = Directives::parse([value.as_slice()]);
            for n in [d.max_age, d.s_maxage, d.stale_if_error, d.stale_while_revalidate]
                .into_iter()
                .flatten()
            {
                prop_assert!(n <= 1 << 31);
            }
        }

        /// Damaged metadata (a crash mid-rewrite, a bad disk) is refused, never a panic.
        #[test]
        fn metadata_of_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = crate::cache::meta::Meta::decode(&bytes);
            let _ = crate::cache::meta::decode_header(&bytes);
        }
    }
}
