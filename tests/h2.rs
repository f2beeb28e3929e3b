//! HTTP/2 (ALPN h2 over TLS): the real ferry binary behind `curl --http2`, on a host without
//! kTLS, certificates made per test with `openssl req`.
//!
//! What is asserted: curl speaks HTTP/2 (`%{http_version}` is 2); static downloads (0 B ..
//! 64 MiB) byte for byte; a range (206), several ranges (multipart), HEAD (Content-Length, no
//! body), 404 and If-None-Match (304); several requests multiplexed on one connection; the
//! metrics (`tls_buffered` bodies, one `tls` connection, its kTLS fallback counted as
//! `ulp_unavailable` — on a kernel with the `tls` ULP the reason is `http2`, which
//! tests/ktls_vm.rs covers); proxied GET (Content-Length and chunked app bodies), POST with
//! and without a length (the app logs the body's SHA-256), a body over the limit (413), an
//! X-Accel-Redirect; a request head over the header list limit (a 40 KiB field) answered
//! 431 on a connection that then serves the next request; and a graceful shutdown that lets
//! an HTTP/2 download finish.
//!
//! Every external command is bounded (CMD_TIMEOUT, curl --max-time), metrics are polled to a
//! bound (DEADLINE); no test asserts a duration.
mod common;

use common::app::*;
use common::tls::*;
use common::*;
use std::path::Path;

// ---------------------------------------------------------------------------------------------
// fixture and clients

/// How this file starts ferry on the shared fixture (tests/common/tls.rs).
impl Fx {
    /// ferry serving `root/` at `/static/` over TLS (alpn = ["h2", "http/1.1"]).
    fn start_static(&self) -> TlsServer {
        let toml =
            Config::static_root(&self.root).to_toml() + &TlsSection::new(&self.certs).to_toml();
        TlsServer::start(&toml, 1)
    }

    /// ferry in front of `app`, with `root/` as the internal location `/internal/`.
    fn start_proxy(&self, app: &App) -> TlsServer {
        self.start_proxy_with(ProxyConfig::new(&app.address))
    }

    fn start_proxy_with(&self, config: ProxyConfig) -> TlsServer {
        let toml = config.location("/internal/", &self.root, true).to_toml()
            + &TlsSection::new(&self.certs).to_toml();
        TlsServer::start(&toml, 1)
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `curl --http2 -o OUT URL` (one transfer); returns its -w.
fn fetch(srv: &TlsServer, target: &str, out: &Path, extra: &[&str]) -> Got {
    let url = srv.url(target);
    let mut args = vec!["--http2", "-o", out.to_str().unwrap(), "-w", W];
    args.extend_from_slice(extra);
    args.push(&url);
    let mut got = curl_ok(srv.curl(&args), &format!("GET {target}"));
    assert_eq!(got.len(), 1, "one transfer");
    let got = got.remove(0);
    assert_eq!(got.version, "2", "{target}: curl --http2 must speak HTTP/2");
    got
}

/// The response headers curl wrote with `-D FILE`, names lowercased.
fn dumped_headers(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Waits until `n` more responses matching `filter` are counted, then scrapes.
fn after_responses(srv: &TlsServer, base: &Metrics, filter: Labels<'_>, n: f64) -> Metrics {
    let d = wait_delta(srv, base, RESPONSES, filter, n);
    assert_eq!(d, n, "responses{filter:?} counted");
    srv.metrics()
}

/// Nothing went over a non-TLS path, no zero-copy byte was counted, and `n` TLS connections
/// were made, each with its kTLS fallback counted as `ulp_unavailable` (not `http2`: that
/// reason is only reached on a kernel with the `tls` ULP).
fn expect_tls_only(base: &Metrics, now: &Metrics, n: f64, ctx: &str) {
    let paths: Vec<[(&str, &str); 1]> = NON_TLS_PATHS.iter().map(|p| [("path", *p)]).collect();
    let mut want: Vec<Want<'_>> = vec![
        (ZERO_COPY, &[], 0.0),
        (CONNS, &[("transport", "tls")], n),
        (CONNS, &[("transport", "tcp")], 0.0),
        (FALLBACKS, &[("from", "ktls")], n),
        (
            FALLBACKS,
            &[
                ("from", "ktls"),
                ("to", "tls_buffered"),
                ("reason", "ulp_unavailable"),
            ],
            n,
        ),
        (FALLBACKS, &[("from", "ktls"), ("reason", "http2")], 0.0),
    ];
    for p in &paths {
        want.push((BODY_BYTES, p, 0.0));
        want.push((RESPONSES, p, 0.0));
    }
    expect_deltas(base, now, &want, ctx);
}

const STATIC_OK: Labels<'static> = &[("source", "static"), ("code", "2xx")];
const TLS_STATIC_OK: Labels<'static> = &[
    ("path", "tls_buffered"),
    ("source", "static"),
    ("code", "2xx"),
];

// ---------------------------------------------------------------------------------------------
// static files

#[test]
fn h2_static_downloads_are_byte_identical_on_one_connection() {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    let sizes: [(&str, u64); 5] = [
        ("empty", 0),
        ("one", 1),
        ("page", 4096),
        ("mib1", MIB + 1),
        ("big", 64 * MIB),
    ];
    let patterns: Vec<Pattern> = sizes
        .iter()
        .enumerate()
        .map(|(i, (name, len))| fx.file(name, *len, 200 + i as u64))
        .collect();
    let srv = fx.start_static();
    let base = srv.metrics();
    // one curl, one connection, the five transfers one after the other on it
    let mut args: Vec<String> = vec!["--http2".into(), "-w".into(), W.into()];
    for (name, _) in &sizes {
        args.push("-o".into());
        args.push(fx.out(&format!("{name}.out")).to_str().unwrap().into());
        args.push(srv.url(&format!("/static/{name}")));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let got = curl_ok(srv.curl(&args), "five downloads");
    assert_eq!(got.len(), sizes.len(), "{got:?}");
    for (g, (name, _)) in got.iter().zip(&sizes) {
        assert_eq!((g.code, g.version.as_str()), (200, "2"), "/static/{name}");
    }
    let connects: u32 = got.iter().map(|g| g.connects).sum();
    assert_eq!(connects, 1, "one connection for all: {got:?}");
    for ((name, len), pattern) in sizes.iter().zip(&patterns) {
        let out = fx.out(&format!("{name}.out"));
        assert_file_is(&out, pattern, 0, *len, &format!("/static/{name} over h2"));
    }
    let now = after_responses(&srv, &base, STATIC_OK, 5.0);
    let total: u64 = sizes.iter().map(|(_, l)| l).sum();
    // The empty file has no body to read: it is counted on `memory`, as on the other paths.
    expect_deltas(
        &base,
        &now,
        &[
            (RESPONSES, TLS_STATIC_OK, 4.0),
            (
                RESPONSES,
                &[("path", "memory"), ("source", "static"), ("code", "2xx")],
                1.0,
            ),
            (BODY_BYTES, &[("path", "tls_buffered")], total as f64),
        ],
        "five static files over h2",
    );
    expect_tls_only(&base, &now, 1.0, "five static files over h2");
}

#[test]
fn h2_ranges_head_404_and_304() {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    let len = MIB + 1;
    let pattern = fx.file("r.bin", len, 7);
    let srv = fx.start_static();
    let base = srv.metrics();

    // one range: 206 with its Content-Range
    let (out, dump) = (fx.out("range.out"), fx.out("range.headers"));
    let got = fetch(
        &srv,
        "/static/r.bin",
        &out,
        &["-r", "100-199", "-D", dump.to_str().unwrap()],
    );
    assert_eq!(got.code, 206);
    assert_file_is(&out, &pattern, 100, 100, "Range bytes=100-199");
    let headers = dumped_headers(&dump);
    assert_eq!(
        header(&headers, "content-range"),
        Some(format!("bytes 100-199/{len}").as_str())
    );
    assert_eq!(header(&headers, "content-length"), Some("100"));

    // several ranges: multipart/byteranges with both parts
    let multi = fx.out("multi.out");
    let dump = fx.out("multi.headers");
    let got = fetch(
        &srv,
        "/static/r.bin",
        &multi,
        &["-r", "0-9,1048570-", "-D", dump.to_str().unwrap()],
    );
    assert_eq!(got.code, 206);
    let headers = dumped_headers(&dump);
    let ctype = header(&headers, "content-type").unwrap_or_default();
    assert!(
        ctype.starts_with("multipart/byteranges; boundary="),
        "{ctype:?}"
    );
    let body = std::fs::read(&multi).unwrap();
    assert_eq!(
        header(&headers, "content-length"),
        Some(body.len().to_string().as_str())
    );
    for (first, n) in [(0u64, 10usize), (1_048_570, 7)] {
        let part = pattern.bytes(first, n);
        assert!(
            body.windows(n).any(|w| w == part.as_slice()),
            "multipart body lacks bytes {first}+{n}"
        );
    }

    // HEAD: the length of the file, no body
    let head = srv.curl(&[
        "--http2",
        "-I",
        "-w",
        "%{size_download}\\n",
        &srv.url("/static/r.bin"),
    ]);
    assert!(head.status.success(), "HEAD: {}", text(&head.stderr));
    let shown = text(&head.stdout);
    assert!(shown.starts_with("HTTP/2 200"), "{shown}");
    assert!(
        shown.lines().any(|l| l
            .trim()
            .eq_ignore_ascii_case(&format!("content-length: {len}"))),
        "HEAD announces the length:\n{shown}"
    );
    assert_eq!(shown.lines().last(), Some("0"), "HEAD has no body: {shown}");

    // 404
    let missing = fx.out("missing.out");
    assert_eq!(fetch(&srv, "/static/nope", &missing, &[]).code, 404);

    // If-None-Match with the file's ETag: 304 without a body
    let etag = header(&headers, "etag").expect("ETag").to_string();
    let cond = fx.out("cond.out");
    let got = fetch(
        &srv,
        "/static/r.bin",
        &cond,
        &["-H", &format!("If-None-Match: {etag}")],
    );
    assert_eq!(got.code, 304);
    assert_eq!(std::fs::metadata(&cond).map(|m| m.len()).unwrap_or(0), 0);

    let now = after_responses(&srv, &base, &[("source", "static")], 5.0);
    expect_deltas(
        &base,
        &now,
        &[
            (RESPONSES, TLS_STATIC_OK, 2.0),
            (
                RESPONSES,
                &[("path", "memory"), ("source", "static"), ("code", "2xx")],
                1.0,
            ),
            (RESPONSES, &[("source", "static"), ("code", "3xx")], 1.0),
            (RESPONSES, &[("source", "static"), ("code", "4xx")], 1.0),
        ],
        "range, multipart, HEAD, 304, 404",
    );
    expect_tls_only(&base, &now, 5.0, "one connection per curl");
}

#[test]
fn h2_multiplexes_parallel_requests_on_one_connection() {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    let files: Vec<(String, u64, Pattern)> = (0..3)
        .map(|i| {
            let name = format!("m{i}.bin");
            let len = 3 * MIB + i * 1000;
            let p = fx.file(&name, len, 300 + i);
            (name, len, p)
        })
        .collect();
    let srv = fx.start_static();
    let base = srv.metrics();
    // --parallel: curl waits for the first connection and multiplexes the others on it.
    let mut args: Vec<String> = vec!["--http2".into(), "--parallel".into(), "-w".into(), W.into()];
    for (name, _, _) in &files {
        args.push("-o".into());
        args.push(fx.out(name).to_str().unwrap().into());
        args.push(srv.url(&format!("/static/{name}")));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let got = curl_ok(srv.curl(&args), "three parallel downloads");
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got.iter().all(|g| g.code == 200 && g.version == "2"),
        "{got:?}"
    );
    assert_eq!(
        got.iter().map(|g| g.connects).sum::<u32>(),
        1,
        "multiplexed on one connection: {got:?}"
    );
    for (name, len, pattern) in &files {
        assert_file_is(&fx.out(name), pattern, 0, *len, name);
    }
    let now = after_responses(&srv, &base, STATIC_OK, 3.0);
    let total: u64 = files.iter().map(|(_, len, _)| len).sum();
    expect_deltas(
        &base,
        &now,
        &[
            (RESPONSES, TLS_STATIC_OK, 3.0),
            (BODY_BYTES, &[("path", "tls_buffered")], total as f64),
        ],
        "three multiplexed downloads",
    );
    expect_tls_only(&base, &now, 1.0, "three multiplexed downloads");
    poll_until("the h2 connection counted closed", DEADLINE, || {
        let open = srv
            .metrics()
            .get("ferry_connections_active", &[("transport", "tls")]);
        (open == 0.0).then_some(())
    });
}

// ---------------------------------------------------------------------------------------------
// proxied

#[test]
fn h2_proxied_gets_are_relayed_byte_identical() {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    let len = MIB + 17;
    let pattern = fx.file("u.bin", len, 61);
    let app = App::start();
    let srv = fx.start_proxy(&app);
    let base = srv.metrics();
    let path = qenc(fx.root.join("u.bin").to_str().unwrap());
    let cases = [
        ("length", format!("/file?path={path}")),
        (
            "chunked",
            format!("/file?mode=chunked&chunk=7000&path={path}"),
        ),
        ("close", format!("/file?mode=close&path={path}")),
    ];
    for (what, target) in &cases {
        let out = fx.out(&format!("{what}.out"));
        let dump = fx.out(&format!("{what}.headers"));
        let got = fetch(&srv, target, &out, &["-D", dump.to_str().unwrap()]);
        assert_eq!(got.code, 200, "{what}");
        assert_file_is(&out, &pattern, 0, len, what);
        let headers = dumped_headers(&dump);
        assert_eq!(header(&headers, "x-app"), Some("relayed"), "{what}");
        assert_eq!(header(&headers, "transfer-encoding"), None, "{what}");
        assert_eq!(header(&headers, "trailer"), None, "{what}");
    }
    let f = [("source", "upstream"), ("code", "2xx")];
    let now = after_responses(&srv, &base, &f, 3.0);
    expect_deltas(
        &base,
        &now,
        &[
            (
                RESPONSES,
                &[
                    ("path", "tls_buffered"),
                    ("source", "upstream"),
                    ("code", "2xx"),
                ],
                3.0,
            ),
            (BODY_BYTES, &[("path", "tls_buffered")], 3.0 * len as f64),
            ("ferry_upstream_requests_total", &[("outcome", "ok")], 3.0),
        ],
        "proxied over h2",
    );
    expect_tls_only(&base, &now, 3.0, "proxied over h2");
    let seen = app.wait_request(&cases[0].1);
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.version, "HTTP/1.1", "ferry speaks HTTP/1.1 to the app");
    assert_eq!(seen.header_all("x-forwarded-proto"), ["https"]);
    assert_eq!(
        seen.header("host"),
        Some(format!("localhost:{}", srv.https().port()).as_str()),
        "the :authority reaches the app as Host"
    );
}

/// An app that closes in the middle of its body: the HTTP/2 stream is reset (curl reports a
/// failed transfer, never a complete short body) and the response is counted incomplete
/// against the app, not the client.
#[test]
fn h2_app_closing_mid_body_resets_the_stream_and_is_counted_on_the_upstream_side() {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    let app = App::start();
    let srv = fx.start_proxy(&app);
    let base = srv.metrics();
    let out = fx.out("midclose.out");
    let target = "/midclose?announce=1048576&send=102400";
    let url = srv.url(target);
    let result = srv.curl(&["--http2", "-o", out.to_str().unwrap(), &url]);
    assert!(
        !result.status.success(),
        "curl must see the transfer fail: {result:?}"
    );
    let got = std::fs::metadata(&out).map_or(0, |m| m.len());
    assert!(got <= 102_400, "more bytes than the app sent: {got}");
    let incomplete = "ferry_responses_incomplete_total";
    let upstream = wait_delta(&srv, &base, incomplete, &[("side", "upstream")], 1.0);
    assert_eq!(upstream, 1.0, "{incomplete}{{side=upstream}} delta");
    let client = srv.metrics().get(incomplete, &[("side", "client")])
        - base.get(incomplete, &[("side", "client")]);
    assert_eq!(client, 0.0, "{incomplete}{{side=client}} delta");
}

#[test]
fn h2_proxied_posts_reach_the_app_whole() {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    let app = App::start();
    let srv = fx.start_proxy(&app);
    let len = MIB + 3;
    let pattern = fx.file("post.bin", len, 71);
    let want_sha = pattern_sha256(&pattern, len);
    let body_file = fx.root.join("post.bin");

    // with a Content-Length
    let out = fx.out("post.out");
    let data = format!("@{}", body_file.to_str().unwrap());
    let got = fetch(
        &srv,
        "/echo?post=length",
        &out,
        &[
            "--data-binary",
            &data,
            "-H",
            "Content-Type: application/octet-stream",
        ],
    );
    assert_eq!(got.code, 200);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("ok POST {len} {want_sha}")
    );
    let seen = app.wait_request("/echo?post=length");
    assert_eq!(
        (seen.method.as_str(), seen.body_len, seen.body_complete),
        ("POST", len, true)
    );
    assert_eq!(seen.body_sha256, want_sha);
    assert_eq!(
        seen.header("content-length"),
        Some(len.to_string().as_str())
    );

    // without one (an upload from stdin: the stream's end delimits it)
    let small = pattern.bytes(0, 100_000);
    let url = srv.url("/echo?post=stream");
    let mut c = curl();
    c.args(["-sS", "-k", "--resolve", &srv.resolve(), "--http2"]);
    c.args(["-X", "POST", "-T", "-", "-w", W, "-o", "/dev/null", &url]);
    let got = curl_ok(run_bounded(c, Some(&small), CMD_TIMEOUT), "POST from stdin");
    assert_eq!((got[0].code, got[0].version.as_str()), (200, "2"));
    let seen = app.wait_request("/echo?post=stream");
    assert_eq!((seen.body_len, seen.body_complete), (100_000, true));
    assert_eq!(seen.body_sha256, sha256_hex(&small));
    assert_eq!(seen.header("content-length"), Some("100000"));
    assert_eq!(seen.header("transfer-encoding"), None);
}

#[test]
fn h2_request_body_over_the_limit_gets_413_and_never_reaches_the_app() {
    let fx = Fx::new();
    let app = App::start();
    let config = ProxyConfig::new(&app.address).server("max_body_size = \"16MiB\"");
    let srv = fx.start_proxy_with(config);
    let len = 16 * MIB + 1;
    fx.file("huge.bin", len, 81);
    let data = format!("@{}", fx.root.join("huge.bin").to_str().unwrap());
    let out = fx.out("huge.out");
    let got = fetch(&srv, "/echo?too=big", &out, &["--data-binary", &data]);
    assert_eq!(got.code, 413);
    // a later request on a fresh connection is served, and the app never saw the big one
    let ok = fx.out("ok.out");
    assert_eq!(fetch(&srv, "/echo?after=413", &ok, &[]).code, 200);
    app.wait_request("/echo?after=413");
    assert!(app.requests_to("/echo?too=big").is_empty());
    // a body ferry answers without (a location, not the app) is read and dropped, so the
    // client gets the answer rather than a reset stream
    std::fs::write(fx.root.join("x"), b"x").unwrap();
    let data = format!("@{}", fx.root.join("huge.bin").to_str().unwrap());
    let not_found = fx.out("internal.out");
    let got = fetch(&srv, "/internal/x", &not_found, &["--data-binary", &data]);
    assert_eq!(got.code, 404, "internal locations are not for clients");
}

#[test]
fn h2_a_request_head_over_the_limit_gets_431_and_the_connection_goes_on() {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    std::fs::write(fx.root.join("small.txt"), b"still here\n").unwrap();
    let srv = fx.start_static();
    let base = srv.metrics();
    // 40 KiB, over the 16 KiB header list limit. (Not 70 KiB: curl 7.88's nghttp2 will not
    // send a head whose uncompressed size passes 64 KiB, and fails the transfer itself.)
    let big = format!("X-Big: {}", "a".repeat(40 * 1024));
    let url = srv.url("/static/small.txt");
    let (refused, after) = (fx.out("431.out"), fx.out("after.out"));
    let resolve = srv.resolve();
    let got = curl_ok(
        srv.curl(&[
            "--http2",
            "-H",
            &big,
            "-o",
            refused.to_str().unwrap(),
            "-w",
            W,
            &url,
            "--next",
            "-k",
            "--resolve",
            &resolve,
            "--http2",
            "-o",
            after.to_str().unwrap(),
            "-w",
            W,
            &url,
        ]),
        "an over-large head, then a request on the same connection",
    );
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].code, got[0].version.as_str()), (431, "2"));
    assert_eq!(
        (got[1].code, got[1].version.as_str(), got[1].connects),
        (200, "2", 0),
        "the second request reuses the connection"
    );
    assert_eq!(std::fs::read(&after).unwrap(), b"still here\n");
    let now = after_responses(&srv, &base, &[("source", "internal"), ("code", "4xx")], 1.0);
    expect_deltas(
        &base,
        &now,
        &[
            (RESPONSES, STATIC_OK, 1.0),
            (CONNS, &[("transport", "tls")], 1.0),
        ],
        "431, then a static file, on one connection",
    );
}

#[test]
fn h2_idle_connection_is_closed() {
    let fx = Fx::new();
    let mut cfg = Config::static_root(&fx.root);
    cfg.header_timeout = "1s".into();
    cfg.keepalive_timeout = "1s".into();
    let srv = TlsServer::start(&(cfg.to_toml() + &TlsSection::new(&fx.certs).to_toml()), 1);
    // The client preface and an empty SETTINGS frame, then nothing: ferry must close the
    // connection (GOAWAY) once it has been idle for the timeout, which ends s_client.
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let mut cmd = openssl();
    cmd.arg("s_client")
        .arg("-connect")
        .arg(srv.https().to_string())
        .args([
            "-servername",
            "localhost",
            "-quiet",
            "-ign_eof",
            "-alpn",
            "h2",
        ]);
    let out = run_bounded(cmd, Some(&hello), CMD_TIMEOUT);
    // The server's SETTINGS (type 4) came first, a GOAWAY (type 7) before the close.
    let frames = frame_types(&out.stdout);
    assert_eq!(frames.first(), Some(&4), "frames {frames:?}");
    assert!(
        frames.contains(&7),
        "no GOAWAY before the close: {frames:?}"
    );
    poll_until("the idle h2 connection counted closed", DEADLINE, || {
        let open = srv
            .metrics()
            .get("ferry_connections_active", &[("transport", "tls")]);
        (open == 0.0).then_some(())
    });
}

#[test]
fn h2_stream_without_flow_control_credit_closes_the_connection_after_send_timeout() {
    let fx = Fx::new();
    fx.file("big.bin", 4 * MIB, 97);
    let mut cfg = Config::static_root(&fx.root);
    cfg.send_timeout = "1s".into();
    let srv = TlsServer::start(&(cfg.to_toml() + &TlsSection::new(&fx.certs).to_toml()), 1);
    let base = srv.metrics();
    // Preface, empty SETTINGS, then HEADERS (END_STREAM | END_HEADERS) for GET /static/big.bin,
    // and never a WINDOW_UPDATE: the response stalls once the 64 KiB initial window is used.
    let mut block = vec![0x82, 0x87, 0x44, 15];
    block.extend_from_slice(b"/static/big.bin");
    block.extend_from_slice(&[0x41, 9]);
    block.extend_from_slice(b"localhost");
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    hello.extend_from_slice(&[0, 0, block.len() as u8, 1, 0x05, 0, 0, 0, 1]);
    hello.extend_from_slice(&block);
    let mut cmd = openssl();
    cmd.arg("s_client")
        .arg("-connect")
        .arg(srv.https().to_string())
        .args([
            "-servername",
            "localhost",
            "-quiet",
            "-ign_eof",
            "-alpn",
            "h2",
        ]);
    // s_client ends only when ferry closes the connection.
    let out = run_bounded(cmd, Some(&hello), CMD_TIMEOUT);
    let frames = frame_types(&out.stdout);
    assert!(frames.contains(&1), "response HEADERS: {frames:?}");
    assert!(frames.contains(&0), "some DATA: {frames:?}");
    let now = after_responses(&srv, &base, TLS_STATIC_OK, 1.0);
    let sent = now.get(BODY_BYTES, &[("path", "tls_buffered")])
        - base.get(BODY_BYTES, &[("path", "tls_buffered")]);
    assert!(
        sent > 0.0 && sent < (4 * MIB) as f64,
        "the stalled response is recorded with what was produced: {sent}"
    );
    poll_until("the stalled h2 connection counted closed", DEADLINE, || {
        let open = srv
            .metrics()
            .get("ferry_connections_active", &[("transport", "tls")]);
        (open == 0.0).then_some(())
    });
}

#[test]
fn h2_x_accel_redirect_serves_the_internal_file() {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    let len = 2 * MIB + 5;
    let pattern = fx.file("a.bin", len, 91);
    let app = App::start();
    let srv = fx.start_proxy(&app);
    let base = srv.metrics();
    let out = fx.out("accel.out");
    let dump = fx.out("accel.headers");
    let got = fetch(
        &srv,
        "/accel?to=/internal/a.bin&h=Content-Type:application/x-test",
        &out,
        &["-D", dump.to_str().unwrap()],
    );
    assert_eq!(got.code, 200);
    assert_file_is(&out, &pattern, 0, len, "X-Accel-Redirect over h2");
    let headers = dumped_headers(&dump);
    assert_eq!(header(&headers, "content-type"), Some("application/x-test"));
    assert_eq!(header(&headers, "x-accel-redirect"), None);
    // and a range of it
    let part = fx.out("accel-range.out");
    let got = fetch(
        &srv,
        "/accel?to=/internal/a.bin",
        &part,
        &["-r", "1000-1999"],
    );
    assert_eq!(got.code, 206);
    assert_file_is(&part, &pattern, 1000, 1000, "ranged X-Accel-Redirect");
    // a client cannot name the internal location itself
    let direct = fx.out("direct.out");
    assert_eq!(fetch(&srv, "/internal/a.bin", &direct, &[]).code, 404);

    let f = [("source", "accel"), ("code", "2xx")];
    let now = after_responses(&srv, &base, &f, 2.0);
    expect_deltas(
        &base,
        &now,
        &[
            (
                RESPONSES,
                &[
                    ("path", "tls_buffered"),
                    ("source", "accel"),
                    ("code", "2xx"),
                ],
                2.0,
            ),
            (BODY_BYTES, &[("path", "tls_buffered")], (len + 1000) as f64),
        ],
        "X-Accel-Redirect over h2",
    );
    expect_tls_only(&base, &now, 3.0, "X-Accel-Redirect over h2");
}

// ---------------------------------------------------------------------------------------------
// shutdown

#[test]
fn h2_download_in_flight_finishes_on_sigterm() {
    let fx = Fx::new();
    let len = 3 * MIB;
    let pattern = fx.file("slow.bin", len, 95);
    let app = App::start();
    let mut srv = fx.start_proxy(&app);
    // X-Accel-Limit-Rate keeps the download in flight for a few seconds.
    let target = "/accel?to=/internal/slow.bin&h=X-Accel-Limit-Rate:1048576";
    let out = fx.out("slow.out");
    let url = srv.url(target);
    let mut c = curl();
    c.args(["-sS", "-k", "--resolve", &srv.resolve(), "--http2"]);
    c.args(["-w", W, "-o", out.to_str().unwrap(), &url]);
    let client = std::thread::spawn(move || run_bounded(c, None, CMD_TIMEOUT));
    // The app has answered: the stream is in flight in ferry.
    app.wait_request(target);
    srv.server.signal("TERM");
    let got = curl_ok(client.join().unwrap(), "download across SIGTERM");
    assert_eq!((got[0].code, got[0].version.as_str()), (200, "2"));
    assert_file_is(&out, &pattern, 0, len, "download across SIGTERM");
    let status = srv.server.wait_exit(DEADLINE);
    assert!(status.success(), "ferry exit status {status:?}");
}
