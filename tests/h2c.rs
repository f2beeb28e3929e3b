//! h2c: HTTP/2 with prior knowledge on the plaintext listener, beside HTTP/1.1 on the same
//! port. The real ferry binary behind `curl --http2-prior-knowledge`, `h2load` and raw
//! sockets; a real app (tests/app/app.py) for proxied requests.
//!
//! What is asserted: curl speaks HTTP/2 (`HTTP/2 200`, `%{http_version}` 2) for static files
//! (0 B .. 8 MiB, byte for byte) while HTTP/1.1 clients on the same listener are still served
//! (sendfile); the metrics (`ferry_http_connections_total` by proto and transport, bodies on
//! `buffered`, no TLS path, no kTLS fallback) and the access log (`proto` HTTP/2, `tls`
//! false); proxied GET and POST through the app (which sees `X-Forwarded-Proto: http`); many
//! concurrent streams on few connections (h2load, from nghttp2-client; required under
//! CI=true, skipped with a note elsewhere); the limits of HTTP/2 over TLS (413 past
//! `server.max_body_size`, an idle connection closed after `header_timeout`);
//! `server.redirect_https`; `server.h2c = false` (the preface is an HTTP/1.1 request for a
//! version ferry does not speak: 505); a listener that takes the PROXY protocol; and, in raw
//! frames sent with the preface in one write, a stream the client resets at once dropped
//! while the connection goes on serving the next ones; a 4 MiB body the answer (405) does not
//! need, dropped as it comes with the receive windows reopened; `Expect: 100-continue` on a
//! proxied POST answered with an interim 100 HEADERS before the client sends the body (and
//! none when the body is refused unread: 413 first).
//!
//! One transfer per curl: curl 7.88 (Debian 12's) fails the second transfer on a reused
//! prior-knowledge connection ("Error in the HTTP2 framing layer", curl/curl#10634, fixed
//! in 8.0), whatever the server; several streams on one connection are h2load's part.
//!
//! Every external command is bounded (CMD_TIMEOUT, curl --max-time), metrics are polled to a
//! bound (DEADLINE); no test asserts a duration.
mod common;

use common::app::*;
use common::tls::*;
use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use ferry::http2::hpack::Decoder;

const H2C: &str = "--http2-prior-knowledge";
const HTTP_CONNS: &str = "ferry_http_connections_total";
const H2C_CONN: Labels<'static> = &[("proto", "http2"), ("transport", "tcp")];
const H1_CONN: Labels<'static> = &[("proto", "http1"), ("transport", "tcp")];
const STATIC_OK: Labels<'static> = &[("source", "static"), ("code", "2xx")];
const BUFFERED_STATIC_OK: Labels<'static> =
    &[("path", "buffered"), ("source", "static"), ("code", "2xx")];
/// HTTP/2's connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: what a client sends right after the preface.
const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

fn url(srv: &Server, target: &str) -> String {
    format!("http://{}{target}", srv.addr())
}

/// `curl -sS ARGS`, bounded.
fn run_curl(args: &[&str]) -> std::process::Output {
    let mut c = curl();
    c.arg("-sS").args(args);
    run_bounded(c, None, CMD_TIMEOUT)
}

/// `curl --http2-prior-knowledge -o OUT -D HEADERS URL`; returns its -w and the status line.
fn fetch(srv: &Server, target: &str, out: &Path, extra: &[&str]) -> (Got, String) {
    let dump = out.with_extension("headers");
    let url = url(srv, target);
    let (out, dump_s) = (out.to_str().unwrap(), dump.to_str().unwrap());
    let mut args = vec![H2C, "-o", out, "-D", dump_s, "-w", W];
    args.extend_from_slice(extra);
    args.push(&url);
    let mut got = curl_ok(run_curl(&args), &format!("h2c {target}"));
    assert_eq!(got.len(), 1, "one transfer");
    let got = got.remove(0);
    assert_eq!(got.version, "2", "{target}: curl must speak HTTP/2");
    let headers = std::fs::read_to_string(&dump).unwrap();
    let status = headers.lines().next().unwrap_or("").trim().to_string();
    (got, status)
}

/// The JSON access log lines ferry has written once there are `n`.
fn json_lines(srv: &Server, n: usize) -> Vec<Value> {
    let lines = poll_until(&format!("{n} access log lines"), DEADLINE, || {
        let lines = srv.stdout_lines();
        (lines.len() >= n).then_some(lines)
    });
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Whether `tool` runs; under CI=true a missing one fails the test, elsewhere it is skipped
/// with a note.
fn have_tool(tool: &str, package: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: `{tool}` is missing (Debian package {package}; scripts/test.sh installs it)"
        );
        eprintln!("skipped: `{tool}` is not installed (Debian package {package})");
    }
    ok
}

// ---------------------------------------------------------------------------------------------
// static files, and HTTP/1.1 beside them

#[test]
fn h2c_static_files_are_byte_identical_and_http1_shares_the_listener() {
    let fx = Fx::new();
    let sizes: [(&str, u64); 4] = [
        ("empty", 0),
        ("page", 4096),
        ("mib1", MIB + 1),
        ("big", 8 * MIB),
    ];
    let patterns: Vec<Pattern> = sizes
        .iter()
        .enumerate()
        .map(|(i, (name, len))| fx.file(name, *len, 300 + i as u64))
        .collect();
    let mut cfg = Config::static_root(&fx.root);
    cfg.access_log = "json".into();
    let srv = Server::start(&cfg);
    let base = srv.metrics();

    for ((name, len), pattern) in sizes.iter().zip(&patterns) {
        let out = fx.out(&format!("{name}.out"));
        let (got, status) = fetch(&srv, &format!("/static/{name}"), &out, &[]);
        assert_eq!((got.code, status.as_str()), (200, "HTTP/2 200"), "{name}");
        assert_file_is(&out, pattern, 0, *len, &format!("/static/{name} over h2c"));
    }

    let d = wait_delta(&srv, &base, RESPONSES, STATIC_OK, 4.0);
    assert_eq!(d, 4.0, "static responses counted");
    let now = srv.metrics();
    let total: u64 = sizes.iter().map(|(_, l)| l).sum::<u64>();
    let mut want: Vec<Want<'_>> = vec![
        (HTTP_CONNS, H2C_CONN, 4.0),
        (HTTP_CONNS, &[("proto", "http2")], 4.0),
        (HTTP_CONNS, &[("proto", "http1")], 0.0),
        (CONNS, &[("transport", "tcp")], 4.0),
        // The empty file's response carries no body: `memory`.
        (RESPONSES, BUFFERED_STATIC_OK, 3.0),
        (BODY_BYTES, &[("path", "buffered")], total as f64),
        (ZERO_COPY, &[], 0.0),
        (FALLBACKS, &[], 0.0),
        (HANDSHAKES, &[], 0.0),
    ];
    let tls_paths = [[("path", "tls_buffered")], [("path", "ktls_sendfile")]];
    for p in &tls_paths {
        want.push((RESPONSES, p, 0.0));
    }
    expect_deltas(&base, &now, &want, "static over h2c");

    // The access log says HTTP/2, over plaintext.
    let lines = json_lines(&srv, 4);
    for v in &lines {
        assert_eq!(
            (&v["proto"], &v["tls"]),
            (&"HTTP/2".into(), &false.into()),
            "{v}"
        );
    }

    // HTTP/1.1 on the same listener: curl, and a raw client whose request line starts with
    // the preface's first letter.
    let base = srv.metrics();
    let out = fx.out("h1.out");
    let page_url = url(&srv, "/static/page");
    let h1 = curl_ok(
        run_curl(&["--http1.1", "-o", out.to_str().unwrap(), "-w", W, &page_url]),
        "HTTP/1.1 beside h2c",
    );
    assert_eq!((h1[0].code, h1[0].version.as_str()), (200, "1.1"));
    assert_file_is(&out, &patterns[1], 0, 4096, "/static/page over HTTP/1.1");
    let mut conn = srv.connect();
    conn.send(&req(
        "PUT",
        "/static/page",
        &[("Host", "x"), ("Content-Length", "0")],
    ));
    let refused = conn.read_response("PUT");
    assert_eq!(refused.status, 405, "PUT on a static location, as HTTP/1.1");
    let d = wait_delta(&srv, &base, HTTP_CONNS, H1_CONN, 2.0);
    assert_eq!(d, 2.0, "two HTTP/1.1 connections");
    let now = srv.metrics();
    expect_deltas(
        &base,
        &now,
        &[
            (HTTP_CONNS, H2C_CONN, 0.0),
            (
                RESPONSES,
                &[("path", "sendfile"), ("source", "static")],
                1.0,
            ),
        ],
        "HTTP/1.1 beside h2c",
    );
}

// ---------------------------------------------------------------------------------------------
// proxied

#[test]
fn h2c_proxied_requests_reach_the_app_and_come_back_whole() {
    let fx = Fx::new();
    let len = MIB + 17;
    let pattern = fx.file("u.bin", len, 61);
    let app = App::start();
    let srv = ProxyConfig::new(&app.address).start();
    let base = srv.metrics();

    let path = qenc(fx.root.join("u.bin").to_str().unwrap());
    for (what, target) in [
        ("length", format!("/file?path={path}")),
        (
            "chunked",
            format!("/file?mode=chunked&chunk=7000&path={path}"),
        ),
    ] {
        let out = fx.out(&format!("{what}.out"));
        let (got, status) = fetch(&srv, &target, &out, &[]);
        assert_eq!((got.code, status.as_str()), (200, "HTTP/2 200"), "{what}");
        assert_file_is(&out, &pattern, 0, len, what);
        let seen = app.wait_request(&target);
        assert_eq!(seen.version, "HTTP/1.1", "ferry speaks HTTP/1.1 to the app");
        assert_eq!(
            seen.header_all("x-forwarded-proto"),
            ["http"],
            "h2c is http"
        );
        assert_eq!(seen.header("host"), Some(srv.addr().to_string().as_str()));
    }

    // A POST: the body reaches the app whole.
    let body = fx.root.join("u.bin");
    let data = format!("@{}", body.to_str().unwrap());
    let out = fx.out("post.out");
    let (got, _) = fetch(&srv, "/echo?h2c", &out, &["--data-binary", &data]);
    assert_eq!(got.code, 200);
    let want_sha = pattern_sha256(&pattern, len);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("ok POST {len} {want_sha}")
    );
    let seen = app.wait_request("/echo?h2c");
    assert_eq!((seen.body_len, seen.body_complete), (len, true));

    let f = [("source", "upstream"), ("code", "2xx")];
    assert_eq!(wait_delta(&srv, &base, RESPONSES, &f, 3.0), 3.0);
    let now = srv.metrics();
    expect_deltas(
        &base,
        &now,
        &[
            (HTTP_CONNS, H2C_CONN, 3.0),
            (
                RESPONSES,
                &[("path", "buffered"), ("source", "upstream")],
                3.0,
            ),
            ("ferry_upstream_requests_total", &[("outcome", "ok")], 3.0),
            (ZERO_COPY, &[], 0.0),
        ],
        "proxied over h2c",
    );
}

// ---------------------------------------------------------------------------------------------
// many streams

#[test]
fn h2c_serves_many_concurrent_streams() {
    let fx = Fx::new();
    if !have_tool("h2load", "nghttp2-client") {
        return;
    }
    fx.file("small", 1000, 7);
    let srv = Server::start(&Config::static_root(&fx.root));
    let base = srv.metrics();
    // 4 connections, up to 100 streams each at once (ferry allows 128), 4000 requests.
    let mut h2load = Command::new("h2load");
    h2load.args([
        "-n",
        "4000",
        "-c",
        "4",
        "-m",
        "100",
        &url(&srv, "/static/small"),
    ]);
    let out = run_bounded(h2load, None, CMD_TIMEOUT);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "h2load: {report}");
    assert!(
        report.contains("requests: 4000 total, 4000 started, 4000 done, 4000 succeeded, 0 failed"),
        "h2load: {report}"
    );
    assert!(
        report.contains("status codes: 4000 2xx"),
        "h2load: {report}"
    );
    assert_eq!(
        wait_delta(&srv, &base, RESPONSES, BUFFERED_STATIC_OK, 4000.0),
        4000.0
    );
    let now = srv.metrics();
    expect_deltas(
        &base,
        &now,
        &[
            (HTTP_CONNS, H2C_CONN, 4.0),
            (BODY_BYTES, &[("path", "buffered")], 4e6),
        ],
        "h2load",
    );
}

// ---------------------------------------------------------------------------------------------
// limits

#[test]
fn h2c_has_the_limits_of_http2_over_tls() {
    let fx = Fx::new();
    let app = App::start();
    let mut cfg = ProxyConfig::new(&app.address).server("max_body_size = \"64KiB\"");
    cfg.base.header_timeout = "1s".into();
    let srv = cfg.start();

    // A body past server.max_body_size: 413, and the app never sees it.
    let big = fx.root.join("big.bin");
    pattern_file(&big, 200 * KIB, 5);
    let data = format!("@{}", big.to_str().unwrap());
    let (got, status) = fetch(
        &srv,
        "/echo?big",
        &fx.out("413.out"),
        &["--data-binary", &data],
    );
    assert_eq!((got.code, status.as_str()), (413, "HTTP/2 413"));
    assert!(
        app.requests_to("/echo?big").is_empty(),
        "the app got the request"
    );

    // A client that sends the preface and nothing more is closed after header_timeout, with
    // a GOAWAY after ferry's SETTINGS.
    let mut idle = TcpStream::connect(srv.addr()).unwrap();
    idle.write_all(PREFACE).unwrap();
    idle.write_all(SETTINGS).unwrap();
    let got = read_until_closed(&mut idle);
    let frames = frame_types(&got);
    assert_eq!(frames.first(), Some(&4), "SETTINGS first: {frames:?}");
    assert!(frames.contains(&7), "a GOAWAY before the close: {frames:?}");

    // Half a preface, then nothing: not HTTP/1.1 either; closed (408) after header_timeout.
    let mut half = TcpStream::connect(srv.addr()).unwrap();
    half.write_all(&PREFACE[..10]).unwrap();
    let got = read_until_closed(&mut half);
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
        "{got:?}"
    );
}

#[test]
fn h2c_on_a_redirecting_listener_is_redirected_too() {
    let fx = Fx::new();
    fx.file("page", 10, 1);
    let mut cfg = Config::static_root(&fx.root);
    cfg.server_extra = "redirect_https = 8443\n".into();
    let srv = Server::start(&cfg);
    let (got, status) = fetch(&srv, "/static/page?q=1", &fx.out("r.out"), &[]);
    assert_eq!((got.code, status.as_str()), (301, "HTTP/2 301"));
    let headers = std::fs::read_to_string(fx.out("r.headers")).unwrap();
    let location = headers
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .unwrap_or_else(|| panic!("no location: {headers}"));
    assert_eq!(location.trim(), "https://127.0.0.1:8443/static/page?q=1");
}

#[test]
fn with_h2c_off_the_preface_is_an_http1_request_for_an_unknown_version() {
    let fx = Fx::new();
    fx.file("page", 10, 1);
    let mut cfg = Config::static_root(&fx.root);
    cfg.server_extra = "h2c = false\n".into();
    let srv = Server::start(&cfg);
    let base = srv.metrics();
    let mut conn = TcpStream::connect(srv.addr()).unwrap();
    conn.write_all(PREFACE).unwrap();
    conn.write_all(SETTINGS).unwrap();
    let got = read_until_closed(&mut conn);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 505 "), "{text}");
    let page_url = url(&srv, "/static/page");
    let out = run_curl(&[H2C, "-o", "/dev/null", &page_url]);
    assert!(!out.status.success(), "curl must fail: {out:?}");
    // HTTP/1.1 is still served.
    assert_eq!(srv.get("/static/page").status, 200);
    expect_deltas(
        &base,
        &srv.metrics(),
        &[(HTTP_CONNS, &[("proto", "http2")], 0.0)],
        "off",
    );
}

// ---------------------------------------------------------------------------------------------
// PROXY protocol

#[test]
fn h2c_after_a_proxy_protocol_header() {
    let fx = Fx::new();
    let pattern = fx.file("page", 5000, 9);
    let mut cfg = Config::static_root(&fx.root);
    cfg.server_extra = "proxy_protocol = true\n".into();
    let srv = Server::start(&cfg);
    let base = srv.metrics();
    let out = fx.out("pp.out");
    let (got, status) = fetch(&srv, "/static/page", &out, &["--haproxy-protocol"]);
    assert_eq!((got.code, status.as_str()), (200, "HTTP/2 200"));
    assert_file_is(&out, &pattern, 0, 5000, "h2c after a PROXY header");

    // Raw: a version 1 header naming another client, then the preface.
    let mut raw = TcpStream::connect(srv.addr()).unwrap();
    raw.write_all(b"PROXY TCP4 192.0.2.7 127.0.0.1 4000 80\r\n")
        .unwrap();
    raw.write_all(PREFACE).unwrap();
    raw.write_all(SETTINGS).unwrap();
    raw.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut first = [0u8; 9];
    raw.read_exact(&mut first).unwrap();
    assert_eq!(first[3], 4, "ferry answers with its SETTINGS");
    drop(raw);

    assert_eq!(wait_delta(&srv, &base, HTTP_CONNS, H2C_CONN, 2.0), 2.0);
    let now = srv.metrics();
    expect_deltas(
        &base,
        &now,
        &[(
            "ferry_proxy_protocol_headers_total",
            &[("result", "ok")],
            2.0,
        )],
        "PROXY protocol + h2c",
    );
}

/// A request HEADERS frame (END_HEADERS, and END_STREAM when `end_stream`) on stream `id`:
/// :method, :scheme http, :path, :authority localhost, then `fields`, every one an HPACK
/// literal without indexing or Huffman coding (RFC 7541 §6.2.2), each string under 127
/// bytes.
fn request_frame(
    id: u32,
    method: &str,
    path: &str,
    fields: &[(&str, &str)],
    end_stream: bool,
) -> Vec<u8> {
    let pseudo = [
        (":method", method),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
    ];
    let mut block = Vec::new();
    for (name, value) in pseudo.iter().chain(fields) {
        block.push(0); // without indexing, a new name
        for s in [name, value] {
            assert!(s.len() < 127, "a short string: {s}");
            block.push(s.len() as u8);
            block.extend_from_slice(s.as_bytes());
        }
    }
    let flags = if end_stream { 0x05 } else { 0x04 };
    raw_frame(1, flags, id, &block)
}

/// A GET on stream `id` with END_STREAM.
fn get_frame(id: u32, path: &str) -> Vec<u8> {
    request_frame(id, "GET", path, &[], true)
}

/// A frame of `kind` with these flags, on stream `id`.
fn raw_frame(kind: u8, flags: u8, id: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    frame.extend_from_slice(&[kind, flags]);
    frame.extend_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// A frame ferry sent: type, flags, stream, payload.
type RawFrame = (u8, u8, u32, Vec<u8>);

/// Reads frames until one for which `last` is true; returns every frame read (what came
/// after it in the same read is dropped: wait for the last frame before the client's turn).
fn frames_until(stream: &mut TcpStream, last: impl Fn(&RawFrame) -> bool) -> Vec<RawFrame> {
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut bytes = Vec::new();
    let mut frames = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        while bytes.len() >= 9 {
            let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
            if bytes.len() < 9 + len {
                break;
            }
            let (kind, flags) = (bytes[3], bytes[4]);
            let sid = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff;
            frames.push((kind, flags, sid, bytes[9..9 + len].to_vec()));
            bytes.drain(..9 + len);
            if last(frames.last().unwrap()) {
                return frames;
            }
        }
        let n = stream.read(&mut buf).expect("frames until the awaited one");
        assert!(n > 0, "closed before the awaited frame: {frames:?}");
        bytes.extend_from_slice(&buf[..n]);
    }
}

/// Reads frames until a DATA frame with END_STREAM on stream `id`; returns (type, stream,
/// payload) of every frame read.
fn frames_until_end_of(stream: &mut TcpStream, id: u32) -> Vec<(u8, u32, Vec<u8>)> {
    frames_until(stream, |(kind, flags, sid, _)| {
        *kind == 0 && *sid == id && flags & 1 == 1
    })
    .into_iter()
    .map(|(kind, _, sid, payload)| (kind, sid, payload))
    .collect()
}

#[test]
fn h2c_a_reset_stream_is_dropped_and_the_connection_keeps_serving() {
    let fx = Fx::new();
    fx.file("big.bin", 8 * MIB, 77);
    std::fs::write(fx.root.join("small.txt"), b"still here\n").unwrap();
    let srv = Server::start(&Config::static_root(&fx.root));
    let mut conn = TcpStream::connect(srv.addr()).unwrap();
    // A download, reset by the client at once (RST_STREAM CANCEL), then another request.
    let mut hello = PREFACE.to_vec();
    hello.extend_from_slice(SETTINGS);
    hello.extend_from_slice(&get_frame(1, "/static/big.bin"));
    hello.extend_from_slice(&[0, 0, 4, 3, 0, 0, 0, 0, 1, 0, 0, 0, 8]);
    hello.extend_from_slice(&get_frame(3, "/static/small.txt"));
    conn.write_all(&hello).unwrap();
    let frames = frames_until_end_of(&mut conn, 3);
    let body: Vec<u8> = frames
        .iter()
        .filter(|(kind, sid, _)| *kind == 0 && *sid == 3)
        .flat_map(|(_, _, payload)| payload.clone())
        .collect();
    assert_eq!(body, b"still here\n");
    let reset_data: usize = frames
        .iter()
        .filter(|(kind, sid, _)| *kind == 0 && *sid == 1)
        .map(|(_, _, payload)| payload.len())
        .sum();
    assert!(
        reset_data <= 65_535,
        "no more of the reset stream than its window: {reset_data}"
    );
    assert!(
        !frames.iter().any(|(kind, _, _)| *kind == 7),
        "no GOAWAY: {frames:?}"
    );
    // The same connection serves a third request.
    conn.write_all(&get_frame(5, "/static/small.txt")).unwrap();
    let frames = frames_until_end_of(&mut conn, 5);
    assert!(frames.iter().any(|(kind, sid, _)| *kind == 1 && *sid == 5));
}

#[test]
fn h2c_a_body_the_answer_does_not_need_is_read_and_dropped_past_the_windows() {
    let fx = Fx::new();
    std::fs::write(fx.root.join("small.txt"), b"still here\n").unwrap();
    // Larger than every receive window ferry announces: the client can send it all only if
    // ferry keeps reopening the windows while it drops the bytes.
    let big = fx.root.join("upload.bin");
    pattern_file(&big, 4 * MIB, 9);
    let srv = Server::start(&Config::static_root(&fx.root));
    let data = format!("@{}", big.to_str().unwrap());
    let (got, status) = fetch(
        &srv,
        "/static/small.txt",
        &fx.out("405.out"),
        &["--data-binary", &data],
    );
    assert_eq!((got.code, status.as_str()), (405, "HTTP/2 405"));
}

/// A response head ferry sent, decoded.
#[derive(Debug)]
struct SentHead {
    stream: u32,
    flags: u8,
    fields: Vec<(String, String)>,
}

impl SentHead {
    fn status(&self) -> &str {
        let status = self.fields.iter().find(|(n, _)| n == ":status");
        &status.expect(":status").1
    }
}

/// ferry's HEADERS frames among `frames` (each a whole block: ferry's heads here are small),
/// decoded in order with the connection's `decoder`.
fn heads(decoder: &mut Decoder, frames: &[RawFrame]) -> Vec<SentHead> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    frames
        .iter()
        .filter(|(kind, ..)| *kind == 1)
        .map(|(_, flags, sid, block)| {
            assert!(flags & 0x4 != 0, "one frame per head");
            let mut fields = Vec::new();
            decoder
                .decode(block, usize::MAX, |n, v| fields.push((text(n), text(v))))
                .expect("ferry's header block decodes");
            SentHead {
                stream: *sid,
                flags: *flags,
                fields,
            }
        })
        .collect()
}

#[test]
fn h2c_expect_100_continue_gets_an_interim_100_when_the_body_is_wanted() {
    let app = App::start();
    let srv = ProxyConfig::new(&app.address)
        .server("max_body_size = \"1MiB\"")
        .start();
    let mut conn = TcpStream::connect(srv.addr()).unwrap();
    let mut decoder = Decoder::new(4096);
    let mut hello = PREFACE.to_vec();
    hello.extend_from_slice(SETTINGS);
    let expect = [("content-length", "5"), ("expect", "100-continue")];
    hello.extend(request_frame(1, "POST", "/echo?expect", &expect, false));
    conn.write_all(&hello).unwrap();
    // The body is held back until ferry asks for it: the interim 100, without END_STREAM.
    let frames = frames_until(&mut conn, |(kind, _, sid, _)| *kind == 1 && *sid == 1);
    let got = heads(&mut decoder, &frames);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].stream, got[0].status()), (1, "100"));
    assert_eq!(
        got[0].flags & 0x1,
        0,
        "an interim response does not end the stream"
    );
    assert!(
        !frames.iter().any(|(kind, ..)| *kind == 0),
        "no DATA before the body: {frames:?}"
    );
    conn.write_all(&raw_frame(0, 0x1, 1, b"hello")).unwrap();
    let frames = frames_until(&mut conn, |(kind, flags, sid, _)| {
        *kind == 0 && *sid == 1 && flags & 1 == 1
    });
    let got = heads(&mut decoder, &frames);
    assert_eq!(got.len(), 1, "then the final response: {got:?}");
    assert_eq!((got[0].stream, got[0].status()), (1, "200"));
    let body: Vec<u8> = frames
        .iter()
        .filter(|(kind, ..)| *kind == 0)
        .flat_map(|(.., payload)| payload.clone())
        .collect();
    let want = format!("ok POST 5 {}", sha256_hex(b"hello"));
    assert_eq!(String::from_utf8_lossy(&body), want);
    let seen = app.wait_request("/echo?expect");
    assert_eq!((seen.body_len, seen.body_complete), (5, true));
    assert_eq!(
        seen.header("expect"),
        None,
        "ferry answered the expectation"
    );

    // A body too large to be wanted: the final answer comes first, no 100.
    let expect = [("content-length", "2000000"), ("expect", "100-continue")];
    let post = request_frame(3, "POST", "/echo?too-large", &expect, false);
    conn.write_all(&post).unwrap();
    let frames = frames_until(&mut conn, |(kind, _, sid, _)| *kind == 1 && *sid == 3);
    let got = heads(&mut decoder, &frames);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].stream, got[0].status()), (3, "413"));
}
