//! Hostile requests and broken apps that once got through (issue 13), each against a real app
//! process (tests/app/app.py logs what reached it) and real clients (raw sockets, curl):
//! a `Connection` header that named Host, a cache key without the scheme, an app status
//! outside 100-599, and header names with underscores.
mod common;

use common::app::*;
use common::cache::*;
use common::tls::{CertPair, Fx, TlsSection, TlsServer};
use common::*;

fn delta(before: &Metrics, after: &Metrics, name: &str, filter: &[(&str, &str)]) -> f64 {
    after.get(name, filter) - before.get(name, filter)
}

/// `target` plus `&echo=Name` for each of `names` (the app answers with X-Echo-Name).
fn echoing(target: &str, names: &[&str]) -> String {
    let mut t = target.to_string();
    for n in names {
        t.push_str(&format!("&echo={}", qenc(n)));
    }
    t
}

#[test]
fn connection_tokens_never_remove_host_and_the_cache_keys_on_what_the_app_saw() {
    let fx = CacheFixture::new();
    let file = fx.file("page.html", 2048, 1);
    let ferry = fx.start("");
    let target = echoing(
        &cacheable(
            "page",
            &file,
            &["Cache-Control: max-age=600", "Vary: Accept-Language"],
        ),
        &["Host", "Accept-Language"],
    );
    // The attack: Host listed as hop-by-hop, and a field the answer varies on listed too.
    let mut c = ferry.connect();
    c.send(&req(
        "GET",
        &target,
        &[
            ("Host", "victim.example"),
            ("Accept-Language", "en"),
            ("Connection", "host, accept-language"),
        ],
    ));
    let first = c.read_response("GET");
    assert_eq!((first.status, x_cache(&first).as_str()), (200, "MISS"));
    let seen = fx.app.wait_request(&target);
    assert_eq!(
        seen.header_all("host"),
        ["victim.example"],
        "the Host the client sent reaches the app: {:?}",
        seen.headers
    );
    assert_eq!(seen.header("accept-language"), None, "{:?}", seen.headers);
    assert_eq!(first.header("x-echo-host"), Some("victim.example"));
    assert_eq!(first.header("x-echo-accept-language"), Some("none"));
    wait_objects(&ferry, 1);

    // An ordinary client of that host gets what the app made for that host...
    let hit = get_with(&ferry, &target, &[("Host", "victim.example")]);
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(hit.header("x-echo-host"), Some("victim.example"));
    assert_eq!(hit.body, std::fs::read(&file).unwrap());
    // ...and one asking for English is not served the answer the app gave to no language.
    let english = get_with(
        &ferry,
        &target,
        &[("Host", "victim.example"), ("Accept-Language", "en")],
    );
    assert_eq!(x_cache(&english), "MISS");
    assert_eq!(english.header("x-echo-accept-language"), Some("en"));
    assert_eq!(fx.app_count(&target), 2);
}

#[test]
fn framing_fields_named_by_connection_still_frame_the_body() {
    let app = App::start();
    let server = ProxyConfig::new(&app.address).start();
    let target = "/echo?listed=framing";
    let body = b"hello";
    let mut c = server.connect();
    let mut raw = req(
        "POST",
        target,
        &[
            ("Content-Length", "5"),
            ("Connection", "content-length, transfer-encoding, host"),
        ],
    );
    raw.extend_from_slice(body);
    c.send(&raw);
    let r = c.read_response("POST");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), format!("ok POST 5 {}", sha256_hex(body)));
    let seen = app.wait_request(target);
    assert_eq!(seen.header_all("content-length"), ["5"]);
    assert_eq!(seen.header_all("host"), ["localhost"]);
    // The connection stays usable: the body did not leak into the next request.
    let again = c.get("/echo?after=1", &[]);
    assert_eq!(again.status, 200);
}

/// `curl -k PROTO -H 'Host: localhost' -D - -o BODY URL` against the TLS listener: the
/// response head's lines (status line first) and the body. The Host is the one the
/// plaintext helpers send, so only the scheme tells the two requests apart.
fn tls_get(
    srv: &TlsServer,
    dir: &std::path::Path,
    proto: &str,
    target: &str,
) -> (Vec<String>, Vec<u8>) {
    let body = dir.join(format!("body{}", proto.trim_start_matches('-')));
    let out = srv.curl(&[
        proto,
        "-H",
        "Host: localhost",
        "-D",
        "-",
        "-o",
        body.to_str().unwrap(),
        &srv.url(target),
    ]);
    assert!(out.status.success(), "curl {proto} {target}: {out:?}");
    let head = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end().to_string())
        .take_while(|l| !l.is_empty())
        .collect();
    (head, std::fs::read(&body).unwrap())
}

fn head_value<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head.iter().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn the_cache_key_has_the_scheme_so_a_plain_redirect_never_reaches_tls_clients() {
    let fx = CacheFixture::new();
    let tls = Fx::new();
    let certs: &CertPair = &tls.certs;
    let file = fx.file("moved.txt", 64, 2);
    let toml = format!(
        "{}{}\n[cache]\ndir = {:?}\n",
        ProxyConfig::new(&fx.app.address).to_toml(),
        TlsSection::new(certs).to_toml(),
        fx.cache_dir.to_str().unwrap()
    );
    let srv = TlsServer::start(&toml, 1);
    let target = format!(
        "{}&status=301",
        echoing(
            &cacheable(
                "moved",
                &file,
                &[
                    "Cache-Control: max-age=600",
                    "Location: https://localhost/moved"
                ]
            ),
            &["X-Forwarded-Proto"],
        )
    );
    // A plaintext client: the app redirects it to https, and the answer is stored.
    let plain = get_with(&srv, &target, &[]);
    assert_eq!((plain.status, x_cache(&plain).as_str()), (301, "MISS"));
    assert_eq!(plain.header("x-echo-x-forwarded-proto"), Some("http"));
    wait_objects(&srv, 1);
    assert_eq!(x_cache(&get_with(&srv, &target, &[])), "HIT");

    // HTTPS clients (HTTP/1.1, then HTTP/2) never get the plaintext answer.
    for (n, proto) in ["--http1.1", "--http2"].into_iter().enumerate() {
        let (head, _) = tls_get(&srv, tls.dir.path(), proto, &target);
        let want = if n == 0 { "MISS" } else { "HIT" };
        assert_eq!(
            head_value(&head, "x-cache"),
            Some(want),
            "{proto}: {head:?}"
        );
        assert_eq!(
            head_value(&head, "x-echo-x-forwarded-proto"),
            Some("https"),
            "{proto}: {head:?}"
        );
    }
    assert_eq!(fx.app_count(&target), 2, "one app request per scheme");
    assert_eq!(srv.metrics().get("ferry_cache_objects", &[]), 2.0);
}

#[test]
fn an_app_status_outside_100_to_599_is_a_framed_502_and_its_connection_is_dropped() {
    let app = App::start();
    let server = ProxyConfig::new(&app.address).start();
    for (n, status) in ["000", "099", "600", "999"].into_iter().enumerate() {
        // The app keeps its connection open after the bad head (close=0).
        let raw = format!("HTTP/1.1 {status} Odd\r\nContent-Length: 0\r\n\r\n");
        let target = format!("{}&close=0&n={n}", raw_target(raw.as_bytes()));
        let before = server.metrics();
        // Pipelined: the bad answer must not swallow the next response as its body.
        let mut c = server.connect();
        let mut both = req("GET", &target, &[]);
        both.extend_from_slice(&req("GET", &format!("/echo?next=1&n={n}"), &[]));
        c.send(&both);
        let r = c.read_response("GET");
        assert_eq!(r.status, 502, "status {status}: {}", r.text());
        assert_eq!(
            r.content_length(),
            Some(r.body.len() as u64),
            "status {status}: the 502 is framed"
        );
        let next_target = format!("/echo?next=2&n={n}");
        let next = c.get(&next_target, &[]);
        assert_eq!(next.status, 200, "status {status}: the connection goes on");
        let bad = [("outcome", "bad_response")];
        assert_eq!(
            wait_delta(&server, &before, "ferry_upstream_requests_total", &bad, 1.0),
            1.0,
            "status {status}"
        );
        // The app connection that answered it was not reused for the next request.
        let odd = app.wait_request(&target);
        let after = app.wait_request(&next_target);
        assert_ne!(odd.conn, after.conn, "status {status}");
        assert_eq!(
            delta(
                &before,
                &server.metrics(),
                "ferry_responses_total",
                &[("code", "5xx")]
            ),
            1.0
        );
    }
}

/// The underscore spellings of what ferry sets or strips, plus one of the app's own.
const UNDERSCORED: [(&str, &str); 5] = [
    ("X_Accel_Mapping", "/=/etc/"),
    ("X_Sendfile_Type", "X-Sendfile"),
    ("X_Forwarded_For", "6.6.6.6"),
    ("X_Real_IP", "6.6.6.6"),
    ("X_App_Token", "t"),
];

fn underscore_names(seen: &AppRequest) -> Vec<String> {
    seen.headers
        .iter()
        .filter(|(k, _)| k.contains('_'))
        .map(|(k, _)| k.clone())
        .collect()
}

#[test]
fn header_names_with_underscores_never_reach_the_app_unless_allowed() {
    let app = App::start();
    let tmp = tempfile::tempdir().unwrap();
    let mapping = format!("{}/=/protected/", tmp.path().display());
    let base = ProxyConfig::new(&app.address)
        .location("/protected/", tmp.path(), true)
        .advertise("X-Accel-Redirect")
        .accel_mapping(&mapping);
    for allowed in [false, true] {
        let server = base.clone().underscores_in_headers(allowed).start();
        let target = format!("/echo?underscores={allowed}");
        let r = server.request("GET", &target, &UNDERSCORED);
        assert_eq!(r.status, 200);
        let seen = app.wait_request(&target);
        let want: &[&str] = if allowed { &["X_App_Token"] } else { &[] };
        assert_eq!(underscore_names(&seen), want, "allowed = {allowed}");
        assert_eq!(seen.header_all("x-accel-mapping"), [mapping.as_str()]);
        assert_eq!(seen.header_all("x-sendfile-type"), ["X-Accel-Redirect"]);
        assert_eq!(seen.header_all("x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(seen.header_all("x-real-ip"), ["127.0.0.1"]);
    }
}

#[test]
fn header_names_with_underscores_are_dropped_on_http2_too() {
    let app = App::start();
    let tls = Fx::new();
    let toml = format!(
        "{}{}",
        ProxyConfig::new(&app.address).to_toml(),
        TlsSection::new(&tls.certs).to_toml()
    );
    let srv = TlsServer::start(&toml, 1);
    let target = "/echo?h2=underscores";
    let mut args = vec!["--http2".to_string(), "-o".into(), "/dev/null".into()];
    for (k, v) in UNDERSCORED {
        args.push("-H".into());
        args.push(format!("{k}: {v}"));
    }
    args.push(srv.url(target));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = srv.curl(&args);
    assert!(out.status.success(), "{out:?}");
    let seen = app.wait_request(target);
    assert_eq!(
        underscore_names(&seen),
        [] as [&str; 0],
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.header_all("x-forwarded-proto"), ["https"]);
}

#[test]
fn objects_stored_under_the_key_without_a_scheme_are_removed_at_start() {
    let fx = CacheFixture::new();
    std::fs::create_dir_all(&fx.cache_dir).unwrap();
    // An object file of format 1, as the ferry before the scheme wrote them (its name is a
    // SHA-256 in hex; its head the old magic).
    let old = fx.cache_dir.join("ab".repeat(32));
    let mut bytes = b"FERRYC1\n".to_vec();
    bytes.resize(8192, 0);
    std::fs::write(&old, &bytes).unwrap();
    let ferry = fx.start("");
    assert!(
        !old.exists(),
        "the format-1 object is removed when the cache opens"
    );
    assert_eq!(ferry.metrics().get("ferry_cache_objects", &[]), 0.0);
    let file = fx.file("new.bin", 100, 3);
    let target = cacheable("new", &file, &["Cache-Control: max-age=600"]);
    assert_eq!(x_cache(&ferry.get(&target)), "MISS");
    wait_objects(&ferry, 1);
    assert_eq!(x_cache(&ferry.get(&target)), "HIT");
}
