//! Issue 15 points 3 and 6: ferry behind an ingress or a load balancer, and request IDs. The real test app
//! (tests/app/app.py) logs every request head it gets, so each test checks byte for byte the
//! forwarded headers the app saw, and the access log line (JSON) for the same request.
//!
//! Trusted proxies: the test clients connect from 127.0.0.1, so `trusted_proxies =
//! ["127.0.0.0/8"]` makes them an ingress, and `["10.0.0.0/8"]` makes them anyone. PROXY
//! protocol: version 1 from curl (`--haproxy-protocol`) and from raw sockets, version 2 from
//! raw sockets, each with the request in the same write as the header; over TLS through a
//! small relay that puts the header and curl's ClientHello in one write.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::thread;

use common::app::*;
use common::cache::{CacheFixture, cacheable, wait_objects, x_cache};
use common::tls::{Fx, TlsSection, read_until_closed, run_bounded};
use common::*;

const PP_METRIC: &str = "ferry_proxy_protocol_headers_total";

/// A ferry in front of `app` with a JSON access log, `trusted` networks and, if `pp`, PROXY
/// protocol on its plaintext listener; `tls` adds a TLS listener (with PROXY protocol too,
/// if `pp`). `header_timeout` for the plaintext listener.
struct Setup<'a> {
    app: &'a App,
    trusted: &'a [&'a str],
    pp: bool,
    tls: Option<&'a Fx>,
    header_timeout: &'a str,
}

impl<'a> Setup<'a> {
    fn new(app: &'a App, trusted: &'a [&'a str]) -> Setup<'a> {
        Setup {
            app,
            trusted,
            pp: false,
            tls: None,
            header_timeout: "10s",
        }
    }

    fn toml(&self) -> String {
        let mut cfg = ProxyConfig::new(&self.app.address);
        cfg.base.access_log = "json".into();
        cfg.base.header_timeout = self.header_timeout.into();
        let trusted: Vec<String> = self.trusted.iter().map(|t| format!("{t:?}")).collect();
        let server = format!(
            "[server]\ntrusted_proxies = [{}]\nproxy_protocol = {}\n",
            trusted.join(", "),
            self.pp
        );
        let mut toml = cfg.to_toml().replacen("[server]\n", &server, 1);
        if let Some(fx) = self.tls {
            toml.push_str(&TlsSection::new(&fx.certs).to_toml());
            toml.push_str(&format!("proxy_protocol = {}\n", self.pp));
        }
        toml
    }

    fn start(&self) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.toml");
        std::fs::write(&path, self.toml()).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("serve").arg("--config").arg(&path);
        Server::launch(cmd, 1, Some(dir))
    }
}

/// The `https` listener's address, from ferry's `listening https ADDR` line.
fn https_addr(server: &Server) -> SocketAddr {
    server
        .stderr_lines()
        .iter()
        .find_map(|l| {
            l.trim()
                .strip_prefix("listening https ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .expect("a `listening https` line")
}

/// The access log line (JSON) of the request for `target`, waited for.
fn access_line(server: &Server, target: &str) -> serde_json::Value {
    poll_until(
        &format!("the access log line for {target}"),
        DEADLINE,
        || {
            server
                .stdout_lines()
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["target"] == target)
        },
    )
}

/// The forwarded set as the app saw it: (X-Forwarded-For, X-Real-IP, X-Forwarded-Proto,
/// X-Forwarded-Host), every line of each.
fn forwarded(seen: &AppRequest) -> [Vec<&str>; 4] {
    [
        seen.header_all("x-forwarded-for"),
        seen.header_all("x-real-ip"),
        seen.header_all("x-forwarded-proto"),
        seen.header_all("x-forwarded-host"),
    ]
}

const FROM_INGRESS: [(&str, &str); 6] = [
    ("Host", "app.internal"),
    ("X-Forwarded-For", "6.6.6.6, 198.51.100.7"),
    ("X-Real-IP", "6.6.6.6"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "shop.example"),
    ("X-Forwarded-For", "10.0.0.2"),
];

/// Point 3: from a trusted peer X-Forwarded-For is appended to, -Proto and -Host kept, and
/// the client (access log, X-Real-IP) is the first untrusted address from the right.
#[test]
fn a_trusted_proxys_forwarded_headers_are_kept_and_its_client_logged() {
    let app = App::start();
    let server = Setup::new(&app, &["127.0.0.0/8", "10.0.0.0/8"]).start();
    let target = "/echo?ingress=trusted";
    let r = server.request("GET", target, &FROM_INGRESS);
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = app.wait_request(target);
    assert_eq!(
        forwarded(&seen),
        [
            vec!["6.6.6.6, 198.51.100.7, 10.0.0.2, 127.0.0.1"],
            vec!["198.51.100.7"],
            vec!["https"],
            vec!["shop.example"],
        ]
    );
    let line = access_line(&server, target);
    assert_eq!(line["client"], "198.51.100.7", "{line}");
    assert!(
        line["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{line}"
    );
}

/// Point 3: from any other peer the forwarded set is replaced.
#[test]
fn an_untrusted_peers_forwarded_headers_are_replaced() {
    let app = App::start();
    let server = Setup::new(&app, &["10.0.0.0/8"]).start();
    let target = "/echo?ingress=untrusted";
    let r = server.request("GET", target, &FROM_INGRESS);
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = app.wait_request(target);
    assert_eq!(
        forwarded(&seen),
        [
            vec!["127.0.0.1"],
            vec!["127.0.0.1"],
            vec!["http"],
            vec!["app.internal"],
        ]
    );
    assert_eq!(access_line(&server, target)["client"], "127.0.0.1");
}

/// A PROXY protocol v2 header: PROXY command, TCP over IPv4, with a NOOP TLV after the
/// addresses (which ferry must skip).
fn v2_header(source: &str, destination: &str) -> Vec<u8> {
    let (src, dst): (SocketAddr, SocketAddr) =
        (source.parse().unwrap(), destination.parse().unwrap());
    let (SocketAddr::V4(src), SocketAddr::V4(dst)) = (src, dst) else {
        panic!("IPv4 addresses only");
    };
    let tlv = [0x04, 0x00, 0x03, b'a', b'b', b'c'];
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.extend_from_slice(&[0x21, 0x11]);
    out.extend_from_slice(&(12 + tlv.len() as u16).to_be_bytes());
    out.extend_from_slice(&src.ip().octets());
    out.extend_from_slice(&dst.ip().octets());
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out.extend_from_slice(&tlv);
    out
}

/// Writes `header` and a GET for `target` (with `headers`) in one write, reads the response.
fn get_after(
    server: &Server,
    header: &[u8],
    target: &str,
    headers: &[(&str, &str)],
) -> (Conn, Response) {
    let mut c = server.connect();
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(&req("GET", target, headers));
    c.send(&bytes);
    let r = c.read_response("GET");
    (c, r)
}

/// Point 3: the PROXY protocol source becomes the peer (v1 and v2), and trusted_proxies is
/// checked against it; the request in the same segment as the header is served, and the
/// connection carries further requests.
#[test]
fn proxy_protocol_sources_are_the_peer_and_trusted_proxies_apply_to_them() {
    let app = App::start();
    let setup = Setup {
        pp: true,
        ..Setup::new(&app, &["10.0.0.0/8"])
    };
    let server = setup.start();
    let before = server.metrics();

    // v2 from a trusted balancer address: its X-Forwarded-For is believed.
    let header = v2_header("10.1.2.3:40000", "10.0.0.1:80");
    let target = "/echo?pp=v2";
    let (mut c, r) = get_after(
        &server,
        &header,
        target,
        &[("X-Forwarded-For", "203.0.113.5")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = app.wait_request(target);
    assert_eq!(
        seen.header_all("x-forwarded-for"),
        ["203.0.113.5, 10.1.2.3"]
    );
    assert_eq!(seen.header_all("x-real-ip"), ["203.0.113.5"]);
    let line = access_line(&server, target);
    assert_eq!(
        (&line["client"], &line["peer"]),
        (&"203.0.113.5".into(), &"10.1.2.3:40000".into())
    );
    // The same connection, a second request: the same peer.
    let again = "/echo?pp=v2-again";
    c.send(&req("GET", again, &[]));
    assert_eq!(c.read_response("GET").status, 200);
    assert_eq!(
        app.wait_request(again).header_all("x-real-ip"),
        ["10.1.2.3"]
    );

    // v1 from an address that is not trusted: its forged X-Forwarded-For is replaced.
    let header = b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 80\r\n";
    let target = "/echo?pp=v1";
    let (_, r) = get_after(&server, header, target, &[("X-Forwarded-For", "6.6.6.6")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = app.wait_request(target);
    assert_eq!(seen.header_all("x-forwarded-for"), ["192.0.2.7"]);
    assert_eq!(seen.header_all("x-real-ip"), ["192.0.2.7"]);
    assert_eq!(access_line(&server, target)["peer"], "192.0.2.7:51234");

    // v1 UNKNOWN and v2 LOCAL (a balancer's health check): the real peer.
    let target = "/echo?pp=unknown";
    let (_, r) = get_after(&server, b"PROXY UNKNOWN\r\n", target, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        app.wait_request(target).header_all("x-real-ip"),
        ["127.0.0.1"]
    );
    let mut local = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    let target = "/echo?pp=local";
    let (_, r) = get_after(&server, &local, target, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        app.wait_request(target).header_all("x-real-ip"),
        ["127.0.0.1"]
    );

    // curl's own v1 header (its real address) is read like any other.
    let out = run_bounded(
        {
            let mut c = curl();
            c.args([
                "-sS",
                "--haproxy-protocol",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ]);
            c.arg(format!("http://{}/echo?pp=curl", server.addr()));
            c
        },
        None,
        DEADLINE,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{out:?}");
    assert_eq!(
        app.wait_request("/echo?pp=curl").header_all("x-real-ip"),
        ["127.0.0.1"]
    );

    let after = server.metrics();
    let delta = |result: &str| {
        after.get(PP_METRIC, &[("result", result)]) - before.get(PP_METRIC, &[("result", result)])
    };
    assert_eq!((delta("ok"), delta("local")), (3.0, 2.0));
}

/// Point 3: on a PROXY protocol listener a connection without a valid header is closed
/// unanswered, and counted by why.
#[test]
fn connections_without_a_proxy_protocol_header_are_refused() {
    let app = App::start();
    let setup = Setup {
        pp: true,
        header_timeout: "1s",
        ..Setup::new(&app, &[])
    };
    let server = setup.start();
    let before = server.metrics();
    let refused = |bytes: &[u8]| {
        let mut s = TcpStream::connect(server.addr()).unwrap();
        s.write_all(bytes).unwrap();
        let answer = read_until_closed(&mut s);
        assert!(
            answer.is_empty(),
            "answered {:?}",
            String::from_utf8_lossy(&answer)
        );
    };
    // A plain HTTP request, a bad v1 line, a v1 line too long, a v2 header of version 1.
    refused(&req("GET", "/echo?pp=none", &[]));
    refused(b"PROXY TCP4 192.0.2.7 10.0.0.1 51234\r\nGET / HTTP/1.1\r\n\r\n");
    let mut long = b"PROXY TCP4 ".to_vec();
    long.resize(200, b'1');
    refused(&long);
    let mut v1_of_v2 = v2_header("10.1.2.3:1", "10.0.0.1:80");
    v1_of_v2[12] = 0x11;
    refused(&v1_of_v2);
    // Half a header, then nothing: closed at header_timeout.
    refused(b"PROXY TCP4 192.0.2.7 ");
    // Closed before a whole header.
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.write_all(&v2_header("10.1.2.3:1", "10.0.0.1:80")[..10])
        .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert!(read_until_closed(&mut s).is_empty());

    let after = server.metrics();
    let delta = |result: &str| {
        after.get(PP_METRIC, &[("result", result)]) - before.get(PP_METRIC, &[("result", result)])
    };
    assert_eq!(
        (
            delta("invalid"),
            delta("timeout"),
            delta("closed"),
            delta("ok")
        ),
        (4.0, 1.0, 1.0, 0.0)
    );
    assert!(
        app.requests().is_empty(),
        "the app saw {:?}",
        app.requests()
    );
}

/// A one-connection relay in front of `to` that sends `header` and the client's first bytes
/// (a TLS ClientHello) in one write, then copies both ways until either side closes.
fn relay(to: SocketAddr, header: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        let mut upstream = TcpStream::connect(to).unwrap();
        let mut first = vec![0u8; 64 * 1024];
        let n = client.read(&mut first).unwrap();
        let mut out = header;
        out.extend_from_slice(&first[..n]);
        upstream.write_all(&out).unwrap();
        let (mut back_from, mut back_to) =
            (upstream.try_clone().unwrap(), client.try_clone().unwrap());
        let back = thread::spawn(move || {
            let _ = std::io::copy(&mut back_from, &mut back_to);
            let _ = back_to.shutdown(Shutdown::Write);
        });
        let _ = std::io::copy(&mut client, &mut upstream);
        let _ = upstream.shutdown(Shutdown::Write);
        let _ = back.join();
    });
    addr
}

/// Point 3: a TLS listener behind PROXY protocol reads the header before the handshake,
/// with the ClientHello in the same segment; HTTP/1.1 and HTTP/2 alike.
#[test]
fn tls_behind_proxy_protocol() {
    let app = App::start();
    let fx = Fx::new();
    let setup = Setup {
        pp: true,
        tls: Some(&fx),
        ..Setup::new(&app, &["10.0.0.0/8"])
    };
    let server = setup.start();
    let https = https_addr(&server);
    for (proto, source) in [
        ("--http1.1", "198.51.100.20:1111"),
        ("--http2", "198.51.100.21:2222"),
    ] {
        let via = relay(https, v2_header(source, "10.0.0.1:443"));
        let target = format!("/echo?tls={proto}");
        let mut c = curl();
        c.args([
            "-sS",
            "-k",
            proto,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
        ]);
        c.arg(format!("https://127.0.0.1:{}{target}", via.port()));
        let out = run_bounded(c, None, DEADLINE);
        let want = if proto == "--http2" {
            "200 2"
        } else {
            "200 1.1"
        };
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{out:?}");
        let seen = app.wait_request(&target);
        let ip = source.split(':').next().unwrap();
        assert_eq!(forwarded(&seen)[..3], [vec![ip], vec![ip], vec!["https"]]);
        assert_eq!(access_line(&server, &target)["peer"], source);
    }
    // curl's own v1 header before its handshake.
    let mut c = curl();
    c.args([
        "-sS",
        "-k",
        "--haproxy-protocol",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
    ]);
    c.arg(format!("https://127.0.0.1:{}/echo?tls=curl", https.port()));
    let out = run_bounded(c, None, DEADLINE);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{out:?}");
    // Without a header, the handshake never starts.
    let mut c = curl();
    c.args(["-sS", "-k", "-o", "/dev/null"]);
    c.arg(format!("https://127.0.0.1:{}/echo?tls=none", https.port()));
    assert!(!run_bounded(c, None, DEADLINE).status.success());
    assert!(app.requests_to("/echo?tls=none").is_empty());
}

/// Point 3 over HTTP/2: a trusted peer's forwarded headers are kept there too.
#[test]
fn a_trusted_proxy_over_http2() {
    let app = App::start();
    let fx = Fx::new();
    let setup = Setup {
        tls: Some(&fx),
        ..Setup::new(&app, &["127.0.0.1"])
    };
    let server = setup.start();
    let https = https_addr(&server);
    let target = "/echo?h2=trusted";
    let mut c = curl();
    c.args([
        "-sS",
        "-k",
        "--http2",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version}",
    ]);
    for (k, v) in &FROM_INGRESS[1..] {
        c.args(["-H", &format!("{k}: {v}")]);
    }
    c.arg(format!("https://127.0.0.1:{}{target}", https.port()));
    let out = run_bounded(c, None, DEADLINE);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2", "{out:?}");
    let seen = app.wait_request(target);
    assert_eq!(
        forwarded(&seen),
        [
            vec!["6.6.6.6, 198.51.100.7, 10.0.0.2, 127.0.0.1"],
            vec!["10.0.0.2"],
            vec!["https"],
            vec!["shop.example"],
        ]
    );
    assert_eq!(access_line(&server, target)["client"], "10.0.0.2");
}

/// A generated request ID: 32 lowercase hex digits.
fn is_generated(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The one X-Request-Id of `r`.
fn request_id(r: &Response) -> String {
    assert_eq!(r.header_count("x-request-id"), 1, "{:?}", r.headers);
    r.header("x-request-id").unwrap_or_default().to_string()
}

/// Point 6: an ID from a trusted proxy is kept, any other is replaced by a new one; the app,
/// the client and the access log all see the same one, and the app's own never reaches the
/// client.
#[test]
fn request_ids_reach_the_app_the_client_and_the_log() {
    let app = App::start();
    let fx = Fx::new();
    let ingress = Setup::new(&app, &["127.0.0.0/8"]).start();
    let anyone = Setup::new(&app, &["10.0.0.0/8"]).start();

    // From the ingress: kept.
    let target = "/echo?rid=trusted";
    let r = ingress.request("GET", target, &[("X-Request-Id", "edge-7f3a:42")]);
    assert_eq!(
        (r.status, request_id(&r)),
        (200, "edge-7f3a:42".to_string())
    );
    assert_eq!(
        app.wait_request(target).header_all("x-request-id"),
        ["edge-7f3a:42"]
    );
    assert_eq!(access_line(&ingress, target)["request_id"], "edge-7f3a:42");

    // From the ingress, but not sane (a space, or too long): a new one.
    let long = "x".repeat(201);
    for (n, forged) in ["has space", long.as_str()].into_iter().enumerate() {
        let target = format!("/echo?rid=insane{n}");
        let r = ingress.request("GET", &target, &[("X-Request-Id", forged)]);
        let id = request_id(&r);
        assert!(is_generated(&id), "{id}");
        assert_eq!(
            app.wait_request(&target).header_all("x-request-id"),
            [id.as_str()]
        );
    }

    // From anyone else: replaced; each request its own; the app's own ID is not passed on.
    let mut seen_ids = Vec::new();
    for n in 0..3 {
        let target = format!("/status?code=204&h=X-Request-Id:app-made-{n}");
        let r = anyone.request("GET", &target, &[("X-Request-Id", "forged")]);
        assert_eq!(r.status, 204);
        let id = request_id(&r);
        assert!(is_generated(&id), "{id}");
        assert_eq!(
            app.wait_request(&target).header_all("x-request-id"),
            [id.as_str()]
        );
        assert_eq!(access_line(&anyone, &target)["request_id"], id.as_str());
        seen_ids.push(id);
    }
    seen_ids.sort();
    seen_ids.dedup();
    assert_eq!(seen_ids.len(), 3);

    // Over HTTP/2 through a trusted TLS listener: the same.
    let setup = Setup {
        tls: Some(&fx),
        ..Setup::new(&app, &["127.0.0.1"])
    };
    let tls = setup.start();
    let target = "/status?code=204&h=X-Request-Id:app-made-h2";
    let mut c = curl();
    c.args(["-sS", "-k", "--http2", "-o", "/dev/null", "-D", "-"]);
    c.args(["-H", "X-Request-Id: edge-h2"]);
    c.arg(format!(
        "https://127.0.0.1:{}{target}",
        https_addr(&tls).port()
    ));
    let out = run_bounded(c, None, DEADLINE);
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.starts_with("http/2 204"), "{head}");
    let ids: Vec<&str> = head
        .lines()
        .filter_map(|l| l.strip_prefix("x-request-id: "))
        .collect();
    assert_eq!(ids, ["edge-h2"], "{head}");
    assert_eq!(
        app.wait_request(target).header_all("x-request-id"),
        ["edge-h2"]
    );
    assert_eq!(access_line(&tls, target)["request_id"], "edge-h2");
}

/// Point 6: responses ferry makes itself carry an ID too, logged with it: a static file, a
/// refused request head (HTTP/1.1 and HTTP/2), and a cache hit (whose stored answer had the
/// app's ID of another request).
#[test]
fn static_error_and_cached_responses_carry_their_own_request_id() {
    let fx = CacheFixture::new();
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.txt"), b"static bytes\n").unwrap();
    let mut proxy = ProxyConfig::new(&fx.app.address).location("/static/", root.path(), false);
    proxy.base.access_log = "json".into();
    let server = fx.start_with(proxy, "");

    let r = server.get("/static/a.txt");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"static bytes\n"[..]));
    let id = request_id(&r);
    assert!(is_generated(&id), "{id}");
    assert_eq!(
        access_line(&server, "/static/a.txt")["request_id"],
        id.as_str()
    );

    // A head ferry refuses (400): answered and logged with an ID all the same.
    let mut c = server.connect();
    c.send(b"GET /bad\x01target HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.read_response("GET");
    assert_eq!(r.status, 400);
    let id = request_id(&r);
    assert!(is_generated(&id), "{id}");
    let logged = poll_until("the refused request's log line", DEADLINE, || {
        server
            .stdout_lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["status"] == 400)
    });
    assert_eq!(logged["request_id"], id.as_str());

    // Stored with the app's own X-Request-Id; neither the miss nor the hit passes it on.
    let file = fx.file("c.bin", 1000, 7);
    let target = cacheable(
        "rid",
        &file,
        &["Cache-Control: max-age=600", "X-Request-Id: app-stored"],
    );
    let miss = server.get(&target);
    assert_eq!((miss.status, x_cache(&miss)), (200, "MISS".to_string()));
    wait_objects(&server, 1);
    let hit = server.get(&target);
    assert_eq!((hit.status, x_cache(&hit)), (200, "HIT".to_string()));
    assert_eq!(fx.app_count(&target), 1);
    let (miss_id, hit_id) = (request_id(&miss), request_id(&hit));
    assert!(
        is_generated(&miss_id) && is_generated(&hit_id),
        "{miss_id} {hit_id}"
    );
    assert_ne!(miss_id, hit_id);
    assert_eq!(
        access_line(&server, &target)["request_id"],
        miss_id.as_str()
    );
}
