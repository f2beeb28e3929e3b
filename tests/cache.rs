//! The disk cache (`[cache]`) in front of a real app process that logs every request it
//! gets (tests/app/app.py, endpoint `/cacheable/`): hits sent by sendfile without asking the
//! app (metric deltas and the app's log), the RFC 9111 rules for what is not stored, Vary,
//! revalidation with 304, stale-if-error with the app failing or stopped,
//! stale-while-revalidate, one app request for 100 concurrent misses, a kill -9 during a
//! 256 MiB fill, eviction under max_size, objects surviving a restart (also after a 304 whose
//! headers outgrew the room in the object file), and purges.
mod common;

use common::cache::*;
use common::*;
use std::thread;

fn delta(before: &Metrics, after: &Metrics, name: &str, filter: &[(&str, &str)]) -> f64 {
    after.get(name, filter) - before.get(name, filter)
}

/// The admin token `start_with_token` gives ferry.
const ADMIN_TOKEN: &str = "cache-test-token";

/// ferry with `[cache]` and the admin token (from FERRY__ADMIN__TOKEN_FILE) that purges need.
fn start_with_token(fx: &CacheFixture) -> Server {
    let token_file = fx.files.join("admin-token");
    std::fs::write(&token_file, ADMIN_TOKEN).unwrap();
    let proxy = common::app::ProxyConfig::new(&fx.app.address);
    let env = [("FERRY__ADMIN__TOKEN_FILE", token_file.to_str().unwrap())];
    fx.start_env(proxy, "", &env)
}

/// `POST /cache/purge?query` on the admin listener, with the token.
fn purge(server: &Server, query: &str) -> Response {
    let mut c = Conn::connect(server.admin);
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    c.send(&req(
        "POST",
        &format!("/cache/purge?{query}"),
        &[
            ("Connection", "close"),
            ("Content-Length", "0"),
            ("Authorization", &bearer),
        ],
    ));
    c.read_response("POST")
}

#[test]
fn a_second_get_is_a_hit_sent_by_sendfile_without_asking_the_app() {
    let fx = CacheFixture::new();
    let file = fx.file("one.bin", MIB, 1);
    let ferry = fx.start("");
    let target = cacheable("one", &file, &["Cache-Control: max-age=600"]);
    let before = ferry.metrics();
    let first = ferry.get(&target);
    assert_eq!(first.status, 200);
    assert_eq!(x_cache(&first), "MISS");
    assert_eq!(first.body, std::fs::read(&file).unwrap());
    wait_objects(&ferry, 1);
    let filled = ferry.metrics();
    // The fill went through tee(2): every body byte, none copied through user space.
    let tee = delta(
        &before,
        &filled,
        "ferry_cache_fill_bytes_total",
        &[("path", "tee")],
    );
    assert_eq!(tee, MIB as f64);
    let splice = [("path", "splice"), ("source", "upstream")];
    assert_eq!(
        delta(&before, &filled, "ferry_responses_total", &splice),
        1.0
    );

    let second = ferry.get(&target);
    assert_eq!(second.status, 200);
    assert_eq!(x_cache(&second), "HIT");
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("etag"), first.header("etag"));
    assert_eq!(second.header("cache-control"), Some("max-age=600"));
    let age: u64 = second.header("age").expect("Age on a hit").parse().unwrap();
    assert!(age < 600, "age {age}");
    assert_eq!(fx.app_count(&target), 1, "the hit must not reach the app");
    let sendfile = [("path", "sendfile"), ("source", "cache"), ("code", "2xx")];
    assert_eq!(
        wait_delta(&ferry, &filled, "ferry_responses_total", &sendfile, 1.0),
        1.0
    );
    let after = ferry.metrics();
    let zero_copy = delta(
        &filled,
        &after,
        "ferry_zero_copy_bytes_total",
        &[("path", "sendfile")],
    );
    assert_eq!(zero_copy, MIB as f64);
    let hit = [("result", "hit")];
    assert_eq!(
        delta(&before, &after, "ferry_cache_requests_total", &hit),
        1.0
    );
    let miss = [("result", "miss")];
    assert_eq!(
        delta(&before, &after, "ferry_cache_requests_total", &miss),
        1.0
    );
    assert_eq!(after.get("ferry_cache_objects", &[]), 1.0);
    let on_disk: u64 = fx.cache_files().iter().map(|(_, size)| size).sum();
    assert_eq!(after.get("ferry_cache_bytes", &[]), on_disk as f64);
}

/// A name, the app's response headers, the request's headers.
type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>);

#[test]
fn responses_that_must_not_be_stored_reach_the_app_every_time() {
    let fx = CacheFixture::new();
    let file = fx.file("body.bin", 4 * KIB, 2);
    let ferry = fx.start("");
    let fresh = "Cache-Control: max-age=600";
    let cases: [Case; 8] = [
        (
            "no-store",
            vec!["Cache-Control: no-store, max-age=600"],
            vec![],
        ),
        (
            "private",
            vec!["Cache-Control: private, max-age=600"],
            vec![],
        ),
        ("cookie", vec![fresh, "Set-Cookie: session=1"], vec![]),
        ("vary-star", vec![fresh, "Vary: *"], vec![]),
        // ETag and Last-Modified alone are no explicit freshness.
        ("no-freshness", vec![], vec![]),
        ("accel-zero", vec![fresh, "X-Accel-Expires: 0"], vec![]),
        (
            "authorization",
            vec![fresh],
            vec![("Authorization", "Bearer t")],
        ),
        (
            "client-no-store",
            vec![fresh],
            vec![("Cache-Control", "no-store")],
        ),
    ];
    for (name, headers, request_headers) in &cases {
        let target = cacheable(name, &file, headers);
        for round in 0..2 {
            let r = get_with(&ferry, &target, request_headers);
            assert_eq!(r.status, 200, "{name}");
            assert_eq!(r.body.len() as u64, 4 * KIB, "{name}");
            let want = if *name == "client-no-store" {
                "BYPASS"
            } else {
                "MISS"
            };
            assert_eq!(x_cache(&r), want, "{name} round {round}");
        }
        assert_eq!(
            fx.app_count(&target),
            2,
            "{name}: both requests reach the app"
        );
    }
    // Unsafe methods bypass the cache.
    let post = cacheable("post", &file, &[fresh]);
    let r = ferry.request("POST", &post, &[("Content-Length", "0")]);
    assert_eq!(x_cache(&r), "BYPASS");
    // A 5xx is never stored.
    let failing = fx.files.join("failing");
    std::fs::write(&failing, b"x").unwrap();
    let down = format!(
        "{}&fail_if={}",
        cacheable("down", &file, &[fresh]),
        common::app::qenc(failing.to_str().unwrap())
    );
    for _ in 0..2 {
        let r = ferry.get(&down);
        assert_eq!(r.status, 503);
        assert_eq!(x_cache(&r), "MISS");
    }
    assert_eq!(fx.app_count(&down), 2);
    assert_eq!(ferry.metrics().get("ferry_cache_objects", &[]), 0.0);
    assert!(fx.cache_files().is_empty(), "{:?}", fx.cache_files());
}

#[test]
fn x_accel_expires_wins_and_is_hidden_and_public_opens_up_authorization() {
    let fx = CacheFixture::new();
    let file = fx.file("body.bin", 8 * KIB, 3);
    let ferry = fx.start("");
    let accel = cacheable(
        "accel",
        &file,
        &["Cache-Control: max-age=0", "X-Accel-Expires: 600"],
    );
    let first = ferry.get(&accel);
    assert_eq!(x_cache(&first), "MISS");
    assert_eq!(first.header("x-accel-expires"), None);
    assert_eq!(first.header("cache-control"), Some("max-age=0"));
    wait_objects(&ferry, 1);
    let second = ferry.get(&accel);
    assert_eq!(x_cache(&second), "HIT");
    assert_eq!(second.header("x-accel-expires"), None);
    assert_eq!(fx.app_count(&accel), 1);

    let public = cacheable("public", &file, &["Cache-Control: public, max-age=600"]);
    let auth = [("Authorization", "Bearer t")];
    assert_eq!(x_cache(&get_with(&ferry, &public, &auth)), "MISS");
    wait_objects(&ferry, 2);
    let hit = get_with(&ferry, &public, &auth);
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(hit.body, std::fs::read(&file).unwrap());
    assert_eq!(fx.app_count(&public), 1);
}

#[test]
fn vary_keeps_one_object_per_variant() {
    let fx = CacheFixture::new();
    let file = fx.file("body.bin", 16 * KIB, 4);
    let ferry = fx.start("");
    let target = cacheable(
        "vary",
        &file,
        &["Cache-Control: max-age=600", "Vary: Accept-Encoding"],
    );
    let gzip = [("Accept-Encoding", "gzip")];
    let br = [("Accept-Encoding", "br")];
    assert_eq!(x_cache(&get_with(&ferry, &target, &gzip)), "MISS");
    wait_objects(&ferry, 1);
    assert_eq!(x_cache(&get_with(&ferry, &target, &br)), "MISS");
    wait_objects(&ferry, 2);
    assert_eq!(x_cache(&get_with(&ferry, &target, &gzip)), "HIT");
    let hit = get_with(&ferry, &target, &br);
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(hit.header("vary"), Some("Accept-Encoding"));
    // No Accept-Encoding is a variant of its own.
    assert_eq!(x_cache(&ferry.get(&target)), "MISS");
    assert_eq!(fx.app_count(&target), 3);
}

#[test]
fn expired_objects_are_revalidated_with_304_or_replaced() {
    let fx = CacheFixture::new();
    let file = fx.file("body.bin", 64 * KIB, 5);
    let ferry = fx.start("");
    // max-age=0 with validators: stored, and revalidated on every use.
    let target = cacheable("reval", &file, &["Cache-Control: max-age=0"]);
    let first = ferry.get(&target);
    assert_eq!(x_cache(&first), "MISS");
    wait_objects(&ferry, 1);
    let etag = first.header("etag").unwrap().to_string();
    let second = ferry.get(&target);
    assert_eq!(second.status, 200);
    assert_eq!(x_cache(&second), "REVALIDATED");
    assert_eq!(second.body, first.body);
    let asked = fx.app.requests_to(&target);
    assert_eq!(asked.len(), 2);
    assert_eq!(asked[1].header("if-none-match"), Some(etag.as_str()));
    assert!(asked[1].header("if-modified-since").is_some());
    // A client's own conditional is answered from the revalidated object.
    let not_modified = get_with(&ferry, &target, &[("If-None-Match", &etag)]);
    assert_eq!(not_modified.status, 304);
    assert_eq!(x_cache(&not_modified), "REVALIDATED");

    // The app's answer changes: the new body goes out (EXPIRED) and replaces the object.
    let before = ferry.metrics();
    fx.file("body.bin", 48 * KIB, 6);
    let changed = ferry.get(&target);
    assert_eq!(changed.status, 200);
    assert_eq!(x_cache(&changed), "EXPIRED");
    assert_eq!(changed.body, std::fs::read(&file).unwrap());
    let tee = [("path", "tee")];
    let filled = wait_delta(&ferry, &before, "ferry_cache_fill_bytes_total", &tee, 1.0);
    assert_eq!(filled, (48 * KIB) as f64);
    poll_until("the new object in place", DEADLINE, || {
        let r = ferry.get(&target);
        (x_cache(&r) == "REVALIDATED" && r.body == changed.body).then_some(())
    });
    wait_objects(&ferry, 1);

    // A fresh object, but the client insists: revalidated.
    let fresh = cacheable("fresh", &file, &["Cache-Control: max-age=600"]);
    ferry.get(&fresh);
    wait_objects(&ferry, 2);
    let insist = get_with(&ferry, &fresh, &[("Cache-Control", "no-cache")]);
    assert_eq!(x_cache(&insist), "REVALIDATED");
    assert_eq!(x_cache(&ferry.get(&fresh)), "HIT");
    assert_eq!(fx.app_count(&fresh), 2);
}

#[test]
fn stale_objects_stand_in_when_the_app_fails_or_is_stopped() {
    let fx = CacheFixture::new();
    let file = fx.file("body.bin", 32 * KIB, 7);
    let failing = fx.files.join("failing");
    let ferry = fx.start("stale_if_error = \"1h\"");
    let with_fail = |name: &str, headers: &[&str]| {
        format!(
            "{}&fail_if={}",
            cacheable(name, &file, headers),
            common::app::qenc(failing.to_str().unwrap())
        )
    };
    let target = with_fail("stale", &["Cache-Control: max-age=0"]);
    let strict = with_fail("strict", &["Cache-Control: max-age=0, must-revalidate"]);
    let body = std::fs::read(&file).unwrap();
    assert_eq!(x_cache(&ferry.get(&target)), "MISS");
    assert_eq!(x_cache(&ferry.get(&strict)), "MISS");
    wait_objects(&ferry, 2);

    // The app answers 503: the stored object goes out instead.
    std::fs::write(&failing, b"x").unwrap();
    let stale = ferry.get(&target);
    assert_eq!(stale.status, 200);
    assert_eq!(x_cache(&stale), "STALE");
    assert_eq!(stale.body, body);
    // must-revalidate forbids it: the 503 goes out.
    let r = ferry.get(&strict);
    assert_eq!(r.status, 503);
    assert_eq!(x_cache(&r), "EXPIRED");

    // The app is stopped: connection refused, the stored object goes out.
    let before = ferry.metrics();
    let CacheFixture { app, .. } = fx;
    drop(app);
    let stale = ferry.get(&target);
    assert_eq!(stale.status, 200);
    assert_eq!(x_cache(&stale), "STALE");
    assert_eq!(stale.body, body);
    let r = ferry.get(&strict);
    assert_eq!(r.status, 502);
    assert_eq!(x_cache(&r), "EXPIRED");
    let after = ferry.metrics();
    let stale_count = [("result", "stale")];
    assert_eq!(
        delta(&before, &after, "ferry_cache_requests_total", &stale_count),
        1.0
    );
}

#[test]
fn stale_while_revalidate_serves_stale_and_refreshes_once_in_the_background() {
    let fx = CacheFixture::new();
    let file = fx.file("body.bin", 16 * KIB, 8);
    let ferry = fx.start("");
    let target = cacheable(
        "swr",
        &file,
        &["Cache-Control: max-age=0, stale-while-revalidate=600"],
    );
    let first = ferry.get(&target);
    assert_eq!(x_cache(&first), "MISS");
    wait_objects(&ferry, 1);
    let stale = ferry.get(&target);
    assert_eq!(x_cache(&stale), "STALE");
    assert_eq!(stale.body, first.body);
    // The refresh reaches the app as a conditional request of its own.
    let refresh = poll_until("the background refresh", DEADLINE, || {
        fx.app.requests_to(&target).into_iter().nth(1)
    });
    assert_eq!(refresh.header("if-none-match"), first.header("etag"));
}

#[test]
fn a_hundred_concurrent_misses_make_one_app_request() {
    let fx = CacheFixture::new();
    let file = fx.file("body.bin", 256 * KIB, 9);
    let ferry = fx.start("lock_timeout = \"10s\"");
    // The app takes a while, so every request arrives while the first is still waiting.
    let target = format!(
        "{}&delay_ms=1000",
        cacheable("herd", &file, &["Cache-Control: max-age=600"])
    );
    let addr = ferry.addr();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(100));
    let threads: Vec<_> = (0..100)
        .map(|_| {
            let target = target.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut c = Conn::connect(addr);
                barrier.wait();
                c.send(&req("GET", &target, &[]));
                c.read_response("GET")
            })
        })
        .collect();
    let responses: Vec<Response> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let body = std::fs::read(&file).unwrap();
    for r in &responses {
        assert_eq!(r.status, 200);
        assert_eq!(r.body, body);
    }
    let misses = responses.iter().filter(|r| x_cache(r) == "MISS").count();
    let hits = responses.iter().filter(|r| x_cache(r) == "HIT").count();
    assert_eq!((misses, hits), (1, 99));
    assert_eq!(fx.app_count(&target), 1);
}

#[test]
fn kill_9_during_a_256_mib_fill_leaves_nothing_servable() {
    let fx = CacheFixture::new();
    let len = 256 * MIB;
    let path = fx.files.join("big.bin");
    let pattern = pattern_file(&path, len, 10);
    let mut ferry = fx.start("");
    let target = cacheable("big", &path, &["Cache-Control: max-age=600"]);
    let mut c = ferry.connect();
    c.send(&req("GET", &target, &[]));
    let head = c.read_head();
    assert_eq!(x_cache(&head), "MISS");
    assert_eq!(head.content_length(), Some(len));
    // Read a little, then stop reading: the relay, and so the fill, stalls part-way.
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < MIB as usize {
        got += c.read_some(&mut buf).unwrap();
    }
    let is_temp = |name: &str| name.ends_with(".tmp");
    poll_until("a temporary fill file", DEADLINE, || {
        fx.cache_files()
            .iter()
            .any(|(name, size)| is_temp(name) && *size > 0)
            .then_some(())
    });
    ferry.signal("KILL");
    ferry.wait_exit(DEADLINE);
    drop(c);
    let left = fx.cache_files();
    assert!(left.iter().all(|(name, _)| is_temp(name)), "{left:?}");

    // Restarted: the interrupted fill is gone, the request is a miss, refilled in full.
    let ferry = fx.start("");
    assert!(fx.cache_files().is_empty(), "{:?}", fx.cache_files());
    assert_eq!(ferry.metrics().get("ferry_cache_objects", &[]), 0.0);
    let mut c = ferry.connect();
    c.send(&req("GET", &target, &[]));
    let head = c.read_head();
    assert_eq!(x_cache(&head), "MISS");
    expect_pattern_body(&mut c, &pattern, 0, len, "refill");
    wait_objects(&ferry, 1);
    let mut c = ferry.connect();
    c.send(&req("GET", &target, &[]));
    let head = c.read_head();
    assert_eq!(x_cache(&head), "HIT");
    assert_eq!(head.content_length(), Some(len));
    expect_pattern_body(&mut c, &pattern, 0, len, "hit after refill");
    assert_eq!(fx.app_count(&target), 2);
}

#[test]
fn eviction_keeps_the_directory_under_max_size() {
    let fx = CacheFixture::new();
    let max = 3 * MIB;
    let ferry = fx.start(&format!("max_size = \"{max}\"\nmax_object_size = \"1MiB\""));
    let targets: Vec<String> = (0..6)
        .map(|i| {
            let file = fx.file(&format!("f{i}.bin"), 900 * KIB, 20 + i);
            cacheable(&format!("f{i}"), &file, &["Cache-Control: max-age=600"])
        })
        .collect();
    for (i, target) in targets.iter().enumerate() {
        assert_eq!(x_cache(&ferry.get(target)), "MISS");
        poll_until("the object installed", DEADLINE, || {
            let m = ferry.metrics();
            let installed =
                m.get("ferry_cache_objects", &[]) + m.get("ferry_cache_evictions_total", &[]);
            (installed as usize == i + 1).then_some(())
        });
        let on_disk: u64 = fx.cache_files().iter().map(|(_, size)| size).sum();
        assert!(
            on_disk <= max,
            "{on_disk} bytes on disk after {} fills",
            i + 1
        );
    }
    let m = ferry.metrics();
    assert_eq!(m.get("ferry_cache_objects", &[]), 3.0);
    assert_eq!(m.get("ferry_cache_evictions_total", &[]), 3.0);
    assert!(m.get("ferry_cache_bytes", &[]) <= max as f64);
    // The configured max_size is exported for the alert to compare with.
    assert_eq!(m.get("ferry_cache_max_bytes", &[]), max as f64);
    // The least recently used went first.
    assert_eq!(x_cache(&ferry.get(&targets[5])), "HIT");
    assert_eq!(x_cache(&ferry.get(&targets[0])), "MISS");
}

#[test]
fn objects_survive_a_restart() {
    let fx = CacheFixture::new();
    let file = fx.file("body.bin", 300 * KIB, 11);
    let mut ferry = fx.start("");
    let target = cacheable("keep", &file, &["Cache-Control: max-age=600"]);
    let first = ferry.get(&target);
    assert_eq!(x_cache(&first), "MISS");
    wait_objects(&ferry, 1);
    ferry.signal("TERM");
    ferry.wait_exit(DEADLINE);

    let ferry = fx.start("");
    assert_eq!(ferry.metrics().get("ferry_cache_objects", &[]), 1.0);
    let hit = ferry.get(&target);
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(hit.body, first.body);
    assert_eq!(fx.app_count(&target), 1);
}

/// A 304 whose headers no longer fit in the room before the body: the object file is written
/// anew (body copied in the kernel, moved to a later offset) and renamed over the old one, so
/// the refresh survives a restart and hits keep sending exactly the body.
#[test]
fn a_304_that_outgrows_the_stored_head_is_kept_across_a_restart() {
    let fx = CacheFixture::new();
    let file = fx.file("body.bin", 300 * KIB + 123, 14);
    let body = std::fs::read(&file).unwrap();
    let mut ferry = fx.start("");
    // Stored expired (revalidated on use); the 304 makes it fresh for 600 s (X-Accel-Expires
    // wins) and adds a 6000-byte header: more than the room left before the body.
    let long = "r".repeat(6000);
    let mut target = cacheable("outgrow", &file, &["Cache-Control: max-age=0"]);
    for h in [
        "X-Accel-Expires:600".to_string(),
        format!("X-Refreshed:{long}"),
    ] {
        target.push_str(&format!("&h304={}", common::app::qenc(&h)));
    }
    let first = ferry.get(&target);
    assert_eq!(x_cache(&first), "MISS");
    assert_eq!(first.body, body);
    assert_eq!(first.header("x-refreshed"), None);
    wait_objects(&ferry, 1);
    let stored = ferry.metrics().get("ferry_cache_bytes", &[]);
    let on_disk = |fx: &CacheFixture| -> u64 { fx.cache_files().iter().map(|(_, s)| s).sum() };
    assert_eq!(stored, on_disk(&fx) as f64);

    let revalidated = ferry.get(&target);
    assert_eq!(x_cache(&revalidated), "REVALIDATED");
    assert_eq!(revalidated.header("x-refreshed"), Some(long.as_str()));
    assert_eq!(revalidated.body, body);
    assert_eq!(fx.app_count(&target), 2);
    // The new file is in place once the cache's size counts its larger head.
    let grown = poll_until("the refreshed object file in place", DEADLINE, || {
        let bytes = ferry.metrics().get("ferry_cache_bytes", &[]);
        (bytes > stored).then_some(bytes)
    });
    let files = fx.cache_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(grown, on_disk(&fx) as f64);
    let hit = ferry.get(&target);
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(hit.header("x-refreshed"), Some(long.as_str()));
    assert_eq!(hit.body, body);
    ferry.signal("TERM");
    ferry.wait_exit(DEADLINE);

    let ferry = fx.start("");
    let m = ferry.metrics();
    assert_eq!(m.get("ferry_cache_objects", &[]), 1.0);
    assert_eq!(m.get("ferry_cache_bytes", &[]), grown);
    let hit = ferry.get(&target);
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(hit.header("x-refreshed"), Some(long.as_str()));
    assert_eq!(hit.header("etag"), first.header("etag"));
    assert_eq!(hit.body, body);
    let range = get_with(&ferry, &target, &[("Range", "bytes=4000-4199")]);
    assert_eq!(range.status, 206);
    assert_eq!(range.body, body[4000..4200]);
    assert_eq!(fx.app_count(&target), 2);
}

#[test]
fn hits_answer_ranges_and_conditionals_from_the_stored_validators() {
    let fx = CacheFixture::new();
    let len = 100 * KIB;
    let file = fx.file("body.bin", len, 12);
    let body = std::fs::read(&file).unwrap();
    let ferry = fx.start("");
    let target = cacheable("ranges", &file, &["Cache-Control: max-age=600"]);
    let first = ferry.get(&target);
    wait_objects(&ferry, 1);
    let etag = first.header("etag").unwrap().to_string();

    let r = get_with(&ferry, &target, &[("Range", "bytes=100-199")]);
    assert_eq!(r.status, 206);
    assert_eq!(x_cache(&r), "HIT");
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 100-199/{len}").as_str())
    );
    assert_eq!(r.body, &body[100..200]);
    let multi = get_with(&ferry, &target, &[("Range", "bytes=0-1,1000-1001")]);
    assert_eq!(multi.status, 206);
    assert!(
        multi
            .header("content-type")
            .unwrap()
            .starts_with("multipart/byteranges"),
    );
    let r = get_with(&ferry, &target, &[("Range", "bytes=999999999-")]);
    assert_eq!(r.status, 416);
    let r = get_with(&ferry, &target, &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    assert_eq!(x_cache(&r), "HIT");
    let r = get_with(&ferry, &target, &[("If-Match", "\"other\"")]);
    assert_eq!(r.status, 412);
    let stale_range = [("Range", "bytes=0-9"), ("If-Range", "\"other\"")];
    let r = get_with(&ferry, &target, &stale_range);
    assert_eq!((r.status, r.body.len() as u64), (200, len));
    let current_range = [("Range", "bytes=0-9"), ("If-Range", etag.as_str())];
    let r = get_with(&ferry, &target, &current_range);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &body[..10]);
    let modified = first.header("last-modified").unwrap().to_string();
    let r = get_with(&ferry, &target, &[("If-Modified-Since", &modified)]);
    assert_eq!(r.status, 304);
    let epoch = "Thu, 01 Jan 1970 00:00:00 GMT";
    let r = get_with(&ferry, &target, &[("If-Unmodified-Since", epoch)]);
    assert_eq!(r.status, 412);
    let head = ferry.request("HEAD", &target, &[]);
    assert_eq!(head.status, 200);
    assert_eq!(x_cache(&head), "HIT");
    assert_eq!(head.content_length(), Some(len));
    assert_eq!(fx.app_count(&target), 1);
}

#[test]
fn chunked_bodies_are_filled_from_the_buffer_and_hit_by_sendfile() {
    let fx = CacheFixture::new();
    let len = 200 * KIB;
    let file = fx.file("body.bin", len, 13);
    let ferry = fx.start("");
    let target = format!(
        "/file?path={}&mode=chunked&chunk=10000&h={}",
        common::app::qenc(file.to_str().unwrap()),
        common::app::qenc("Cache-Control:max-age=600")
    );
    let before = ferry.metrics();
    let first = ferry.get(&target);
    assert!(first.is_chunked());
    assert_eq!(x_cache(&first), "MISS");
    wait_objects(&ferry, 1);
    let buffered = [("path", "buffered")];
    let after = ferry.metrics();
    assert_eq!(
        delta(&before, &after, "ferry_cache_fill_bytes_total", &buffered),
        len as f64
    );
    let hit = ferry.get(&target);
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(hit.content_length(), Some(len));
    assert_eq!(hit.body, std::fs::read(&file).unwrap());
    assert_eq!(fx.app_count(&target), 1);
}

#[test]
fn purge_removes_one_target_or_a_prefix() {
    let fx = CacheFixture::new();
    let file = fx.file("body.bin", 8 * KIB, 14);
    let ferry = start_with_token(&fx);
    let fresh = ["Cache-Control: max-age=600"];
    let a = cacheable("p/a", &file, &fresh);
    let b = cacheable("p/b", &file, &fresh);
    let q = cacheable("q", &file, &fresh);
    for (i, target) in [&a, &b, &q].into_iter().enumerate() {
        ferry.get(target);
        wait_objects(&ferry, i + 1);
    }
    let r = purge(&ferry, &format!("target={}", common::app::qenc(&a)));
    assert_eq!((r.status, r.text()), (200, "purged 1\n".to_string()));
    assert_eq!(ferry.metrics().get("ferry_cache_objects", &[]), 2.0);
    assert_eq!(x_cache(&ferry.get(&a)), "MISS");
    assert_eq!(x_cache(&ferry.get(&b)), "HIT");
    wait_objects(&ferry, 3);
    let r = purge(&ferry, "prefix=/cacheable/p/");
    assert_eq!((r.status, r.text()), (200, "purged 2\n".to_string()));
    assert_eq!(x_cache(&ferry.get(&b)), "MISS");
    assert_eq!(x_cache(&ferry.get(&q)), "HIT");
    assert_eq!(fx.cache_files().len(), 2);
    // An unsafe method through the proxy drops what is stored for its target.
    let post = ferry.request("POST", &q, &[("Content-Length", "0")]);
    assert_eq!(x_cache(&post), "BYPASS");
    assert_eq!(x_cache(&ferry.get(&q)), "MISS");
    // Bad purges say what is wrong.
    assert_eq!(purge(&ferry, "").status, 400);
    assert_eq!(purge(&ferry, "prefix=nope").status, 400);
    let mut c = Conn::connect(ferry.admin);
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let headers = [("Connection", "close"), ("Authorization", bearer.as_str())];
    c.send(&req("GET", "/cache/purge?prefix=/", &headers));
    assert_eq!(c.read_response("GET").status, 405);
}

/// `curl -k --resolve ... PROTO -D HEAD -o BODY URL`: the X-Cache header and the body.
fn tls_get(
    srv: &common::tls::TlsServer,
    dir: &std::path::Path,
    proto: &str,
    target: &str,
) -> (String, Vec<u8>) {
    let head = dir.join("head");
    let body = dir.join("body");
    let url = srv.url(target);
    let out = srv.curl(&[
        proto,
        "-D",
        head.to_str().unwrap(),
        "-o",
        body.to_str().unwrap(),
        "-w",
        common::tls::W,
        &url,
    ]);
    assert!(out.status.success(), "curl {proto} {target}: {out:?}");
    let got = common::tls::parse_w(&out.stdout);
    let version = if proto == "--http2" { "2" } else { "1.1" };
    assert_eq!((got[0].code, got[0].version.as_str()), (200, version));
    let head = std::fs::read_to_string(&head).unwrap();
    let x_cache = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-cache")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    (x_cache, std::fs::read(&body).unwrap())
}

#[test]
fn http2_and_userspace_tls_fill_from_the_buffer_and_hit_from_the_file() {
    let fx = CacheFixture::new();
    let tls = common::tls::Fx::new();
    let len = 512 * KIB;
    let file = fx.file("body.bin", len, 15);
    let body = std::fs::read(&file).unwrap();
    let toml = format!(
        "{}{}\n[cache]\ndir = {:?}\n",
        common::app::ProxyConfig::new(&fx.app.address).to_toml(),
        common::tls::TlsSection::new(&tls.certs).to_toml(),
        fx.cache_dir.to_str().unwrap()
    );
    let srv = common::tls::TlsServer::start(&toml, 1);
    for (n, proto) in ["--http2", "--http1.1"].into_iter().enumerate() {
        let target = cacheable(&format!("tls{n}"), &file, &["Cache-Control: max-age=600"]);
        let before = srv.metrics();
        let (first, got) = tls_get(&srv, tls.dir.path(), proto, &target);
        assert_eq!(first, "MISS", "{proto}");
        assert_eq!(got, body, "{proto}");
        wait_objects(&srv, n + 1);
        let (second, got) = tls_get(&srv, tls.dir.path(), proto, &target);
        assert_eq!(second, "HIT", "{proto}");
        assert_eq!(got, body, "{proto}");
        assert_eq!(fx.app_count(&target), 1, "{proto}");
        // No pipe to tee from on userspace TLS: the fill is written from the buffer.
        let buffered = [("path", "buffered")];
        let after = srv.metrics();
        let filled = delta(&before, &after, "ferry_cache_fill_bytes_total", &buffered);
        assert_eq!(filled, len as f64, "{proto}");
        let hit = [("path", "tls_buffered"), ("source", "cache")];
        assert_eq!(
            wait_delta(&srv, &before, "ferry_responses_total", &hit, 1.0),
            1.0,
            "{proto}"
        );
    }
}

#[test]
fn oversized_or_abandoned_fills_leave_nothing_behind() {
    let fx = CacheFixture::new();
    let ferry = fx.start("max_size = \"1MiB\"\nmax_object_size = \"100KiB\"");
    let fresh = ["Cache-Control: max-age=600"];
    // Announced larger than max_object_size: relayed, never stored.
    let big = fx.file("big.bin", 300 * KIB, 16);
    let target = cacheable("big", &big, &fresh);
    for _ in 0..2 {
        let r = ferry.get(&target);
        assert_eq!(x_cache(&r), "MISS");
        assert_eq!(r.body, std::fs::read(&big).unwrap());
    }
    // Chunked, so the size shows only on the way: the fill is given up, the client served.
    let chunked = format!(
        "/file?path={}&mode=chunked&chunk=16384&h={}",
        common::app::qenc(big.to_str().unwrap()),
        common::app::qenc("Cache-Control:max-age=600")
    );
    for _ in 0..2 {
        let r = ferry.get(&chunked);
        assert_eq!(x_cache(&r), "MISS");
        assert_eq!(r.body, std::fs::read(&big).unwrap());
    }
    let m = ferry.metrics();
    assert_eq!(m.get("ferry_cache_objects", &[]), 0.0);
    // The writer thread removes a given-up fill's temporary file after the response ends.
    poll_until("the given-up fills' files removed", DEADLINE, || {
        fx.cache_files().is_empty().then_some(())
    });
    drop(ferry);

    // The client goes away mid-body (32 MiB cannot all wait in socket buffers): the fill is
    // abandoned with the response, and nothing of it remains.
    let ferry = fx.start("");
    let large = fx.file("large.bin", 32 * MIB, 17);
    let gone = format!(
        "/file?path={}&mode=chunked&chunk=65536&h={}",
        common::app::qenc(large.to_str().unwrap()),
        common::app::qenc("Cache-Control:max-age=600")
    );
    let mut c = ferry.connect();
    c.send(&req("GET", &gone, &[]));
    let head = c.read_head();
    assert_eq!(x_cache(&head), "MISS");
    drop(c);
    poll_until("no file left in the cache directory", DEADLINE, || {
        fx.cache_files().is_empty().then_some(())
    });
    let m = ferry.metrics();
    assert_eq!(m.get("ferry_cache_objects", &[]), 0.0);
    assert_eq!(m.get("ferry_cache_bytes", &[]), 0.0);
    // Not stored: the next request is a miss again, served in full.
    let r = ferry.get(&gone);
    assert_eq!(x_cache(&r), "MISS");
    assert_eq!(r.body.len() as u64, 32 * MIB);
    assert_eq!(r.body, std::fs::read(&large).unwrap());
}

#[test]
fn hits_close_every_file_they_open() {
    let fx = CacheFixture::new();
    let file = fx.file("body.bin", 64 * KIB, 18);
    let ferry = fx.start("");
    let target = cacheable("fds", &file, &["Cache-Control: max-age=600"]);
    ferry.get(&target);
    wait_objects(&ferry, 1);
    assert_eq!(x_cache(&ferry.get(&target)), "HIT");
    let baseline = ferry.fd_count();
    for _ in 0..50 {
        let r = ferry.get(&target);
        assert_eq!((r.status, x_cache(&r)), (200, "HIT".to_string()));
    }
    poll_until("ferry's open fds back to the baseline", DEADLINE, || {
        (ferry.fd_count() <= baseline).then_some(())
    });
}

#[test]
fn misses_that_waited_lock_timeout_go_to_the_app_themselves() {
    let fx = CacheFixture::new();
    let file = fx.file("body.bin", 64 * KIB, 19);
    let ferry = fx.start("lock_timeout = \"200ms\"");
    // The fill takes far longer than the waiters are willing to wait.
    let target = format!(
        "{}&delay_ms=2000",
        cacheable("slow", &file, &["Cache-Control: max-age=600"])
    );
    let addr = ferry.addr();
    let first = {
        let target = target.clone();
        thread::spawn(move || {
            let mut c = Conn::connect(addr);
            c.send(&req("GET", &target, &[]));
            c.read_response("GET")
        })
    };
    fx.app.wait_request(&target);
    let others: Vec<_> = (0..4)
        .map(|_| {
            let target = target.clone();
            thread::spawn(move || {
                let mut c = Conn::connect(addr);
                c.send(&req("GET", &target, &[]));
                c.read_response("GET")
            })
        })
        .collect();
    let body = std::fs::read(&file).unwrap();
    let first = first.join().unwrap();
    assert_eq!((x_cache(&first), &first.body), ("MISS".to_string(), &body));
    for other in others {
        let r = other.join().unwrap();
        assert_eq!((x_cache(&r), &r.body), ("MISS".to_string(), &body));
    }
    assert_eq!(fx.app_count(&target), 5);
}

#[test]
fn an_unusable_cache_directory_stops_the_start_with_its_key() {
    let fx = CacheFixture::new();
    // A directory cannot be created beneath a regular file.
    let blocker = fx.files.join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    let dir = blocker.join("cache");
    let toml = format!(
        "{}\n[cache]\ndir = {:?}\n",
        common::app::ProxyConfig::new(&fx.app.address).to_toml(),
        dir.to_str().unwrap()
    );
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ferry.toml");
    std::fs::write(&path, toml).unwrap();
    let mut child = std::process::Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = poll_until("ferry to exit", DEADLINE, || child.try_wait().unwrap());
    // 64 (EX_USAGE): the configuration's fault, like a TLS certificate path that does not exist.
    assert_eq!(status.code(), Some(64));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let expected = format!("cache.dir {}: ", dir.display());
    assert!(stderr.contains(&expected), "{stderr}");
}

/// A cache disk that cannot keep up (FERRY_FAULT_FILL_STALL: the writer sleeps 2 s before
/// each write, debug builds) never holds the client back: the fill is given up, the body
/// arrives whole, nothing is stored and the temporary file goes.
#[test]
fn a_stalled_cache_disk_gives_the_fill_up_and_the_client_gets_everything() {
    let fx = CacheFixture::new();
    let file = fx.file("big.bin", 32 * MIB, 41);
    let ferry = fx.start_env(
        common::app::ProxyConfig::new(&fx.app.address),
        "",
        &[("FERRY_FAULT_FILL_STALL", "2000")],
    );
    let target = cacheable("stalled", &file, &["Cache-Control: max-age=600"]);
    let first = ferry.get(&target);
    assert_eq!(first.status, 200);
    assert_eq!(x_cache(&first), "MISS");
    assert!(
        first.body == std::fs::read(&file).unwrap(),
        "the body, byte for byte"
    );
    // The writer wakes, finds the fill given up and removes its temporary file.
    poll_until("the abandoned fill's file removed", DEADLINE, || {
        fx.cache_files().is_empty().then_some(())
    });
    let m = ferry.metrics();
    assert_eq!(m.get("ferry_cache_objects", &[]), 0.0);
    let second = ferry.get(&target);
    assert_eq!(x_cache(&second), "MISS");
    assert!(second.body == first.body);
    assert_eq!(fx.app_count(&target), 2);
}
