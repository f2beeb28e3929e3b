//! TLS termination on a host without kTLS: the real ferry binary behind real clients (curl,
//! `openssl s_client`, raw TCP), certificates made per test with `openssl req`.
//!
//! What is asserted: static downloads (0 B .. 64 MiB) and ranges byte for byte over
//! userspace TLS with the `tls_buffered` metrics and no zero-copy bytes; one counted
//! `ktls -> tls_buffered` fallback per connection (`ulp_unavailable` for ktls="auto",
//! `disabled` for "off"); `ktls = "require"` refusing to start (and `ferry check` warning);
//! bad certificate/key files (exit 64 with the key); a TLS 1.3 handshake with s_client that
//! verifies the configured certificate; hostile handshakes (garbage: `error`; stalled:
//! `timeout`) while others are served; ALPN (h2 offered, served: see tests/h2.rs);
//! keep-alive; the plaintext listener alongside; a proxied request (upstream, chunked,
//! X-Accel-Redirect) over TLS; session resumption with `openssl s_client -sess_out/-sess_in`
//! (TLS 1.3 and 1.2, by ticket and from the session cache, and neither when both are off),
//! counted in `ferry_tls_resumed_total`.
//!
//! Every read is bounded (IO_TIMEOUT), every external command too (CMD_TIMEOUT, curl
//! --max-time), metrics are polled to a bound (DEADLINE); no test asserts a duration.
mod common;

use common::app::*;
use common::tls::*;
use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Output;

// ---------------------------------------------------------------------------------------------
// fixture

/// How this file starts ferry on the shared fixture (tests/common/tls.rs).
impl Fx {
    fn tls(&self) -> TlsSection {
        TlsSection::new(&self.certs)
    }

    fn toml(&self, tls: &TlsSection) -> String {
        Config::static_root(&self.root).to_toml() + &tls.to_toml()
    }

    fn start(&self, tls: TlsSection) -> TlsServer {
        TlsServer::start(&self.toml(&tls), tls.listen.len())
    }

    /// Writes the config for `tls` to its own file (for `ferry check` / failing starts).
    fn config_file(&self, name: &str, tls: &TlsSection) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, self.toml(tls)).unwrap();
        path
    }
}

// ---------------------------------------------------------------------------------------------
// clients

/// `curl --http1.1 -o OUT URL` over TLS (one connection); returns the transfer's -w.
fn download(srv: &TlsServer, path: &str, out: &Path, extra: &[&str]) -> Got {
    let url = srv.url(path);
    let mut args = vec!["--http1.1", "-o", out.to_str().unwrap(), "-w", W];
    args.extend_from_slice(extra);
    args.push(&url);
    let mut got = curl_ok(srv.curl(&args), &format!("GET {path}"));
    assert_eq!(got.len(), 1, "one transfer");
    got.remove(0)
}

fn delta(base: &Metrics, now: &Metrics, name: &str, filter: &[(&str, &str)]) -> f64 {
    now.get(name, filter) - base.get(name, filter)
}

/// No byte went over a non-TLS path and no zero-copy byte was counted.
fn expect_nothing_outside_tls_buffered(base: &Metrics, now: &Metrics, ctx: &str) {
    let paths: Vec<[(&str, &str); 1]> = NON_TLS_PATHS.iter().map(|p| [("path", *p)]).collect();
    let mut want: Vec<Want<'_>> = vec![(ZERO_COPY, &[], 0.0)];
    for p in &paths {
        want.push((BODY_BYTES, p, 0.0));
        want.push((RESPONSES, p, 0.0));
    }
    expect_deltas(base, now, &want, ctx);
}

/// Waits until `n` more static 2xx responses (any path) have been counted, then scrapes.
fn after_static_2xx(srv: &TlsServer, base: &Metrics, n: f64) -> Metrics {
    let f = [("source", "static"), ("code", "2xx")];
    let d = wait_delta(srv, base, RESPONSES, &f, n);
    assert_eq!(d, n, "static 2xx responses counted");
    srv.metrics()
}

/// Per TLS connection on this kernel with ktls="auto": one ok handshake without kTLS, one
/// `ulp_unavailable` fallback, one `tls` connection; nothing else of the kind.
fn expect_tls_connections(base: &Metrics, now: &Metrics, n: f64, reason: &str, ctx: &str) {
    let mut want: Vec<Want<'_>> = vec![
        (CONNS, &[("transport", "tls")], n),
        (CONNS, &[("transport", "tcp")], 0.0),
        (CONNS, &[("transport", "ktls")], 0.0),
        (HANDSHAKES, &[("result", "ok"), ("ktls", "false")], n),
        (HANDSHAKES, &[("result", "ok"), ("ktls", "true")], 0.0),
        (HANDSHAKES, &[("result", "error")], 0.0),
        (HANDSHAKES, &[("result", "timeout")], 0.0),
        (FALLBACKS, &[("from", "ktls")], n),
    ];
    let r = [("from", "ktls"), ("to", "tls_buffered"), ("reason", reason)];
    want.push((FALLBACKS, &r, n));
    expect_deltas(base, now, &want, ctx);
}

/// Waits (bounded) until no TLS connection is counted as open any more.
fn wait_no_open_tls_connections(srv: &TlsServer) {
    poll_until(
        "ferry_connections_active{transport=\"tls\"} back to 0",
        DEADLINE,
        || {
            let open = srv
                .metrics()
                .get("ferry_connections_active", &[("transport", "tls")]);
            assert!(
                open >= 0.0,
                "connections_active{{tls}} went negative: {open}"
            );
            (open == 0.0).then_some(())
        },
    );
}

/// Runs `openssl s_client -brief -ign_eof` against `addr` with `stdin` as the request.
fn s_client(addr: std::net::SocketAddr, extra: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = openssl();
    cmd.arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .args(["-servername", "localhost", "-brief", "-ign_eof"])
        .args(extra);
    run_bounded(cmd, Some(stdin), CMD_TIMEOUT)
}

/// One HTTP/1.1 response with Content-Length split out of a byte stream.
struct Split {
    status: u16,
    /// Lowercase names.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Whatever followed the body.
    rest: Vec<u8>,
}

fn split_response(raw: &[u8]) -> Split {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(
        status_line.starts_with("HTTP/1.1 "),
        "status line {status_line:?}"
    );
    let status: u16 = status_line[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').expect("header line");
            (k.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .expect("Content-Length")
        .1
        .parse()
        .unwrap();
    let body_at = end + 4;
    assert!(
        raw.len() >= body_at + len,
        "short body: {} of {len}",
        raw.len() - body_at
    );
    Split {
        status,
        headers,
        body: raw[body_at..body_at + len].to_vec(),
        rest: raw[body_at + len..].to_vec(),
    }
}

/// Opens a raw TCP connection to `addr` with bounded reads and writes.
fn tcp(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// What ferry may send on a connection whose handshake it gives up: nothing, or TLS alert
/// records — never an HTTP response.
fn assert_only_alerts(got: &[u8], ctx: &str) {
    assert!(
        !got.windows(5).any(|w| w == b"HTTP/"),
        "{ctx}: ferry answered HTTP on the TLS port: {:?}",
        String::from_utf8_lossy(got)
    );
    let mut rest = got;
    while !rest.is_empty() {
        assert!(
            rest.len() >= 5 && rest[0] == 0x15,
            "{ctx}: expected only TLS alert records before the close, got {:02x?}",
            &got[..got.len().min(64)]
        );
        let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
        assert!(
            rest.len() >= 5 + len,
            "{ctx}: truncated alert record {got:02x?}"
        );
        rest = &rest[5 + len..];
    }
}

fn one_small_file_served(
    srv: &TlsServer,
    fx: &Fx,
    name: &str,
    pattern: &Pattern,
    len: u64,
    ctx: &str,
) {
    let out = fx.out(&format!("{ctx}.out").replace(' ', "_"));
    let got = download(srv, &format!("/static/{name}"), &out, &[]);
    assert_eq!((got.code, got.version.as_str()), (200, "1.1"), "{ctx}");
    assert_file_is(&out, pattern, 0, len, ctx);
}

// ---------------------------------------------------------------------------------------------
// 1. downloads, 2. fallbacks

#[test]
fn https_static_downloads_are_byte_identical_and_counted_on_tls_buffered() {
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
        .map(|(i, (name, len))| fx.file(name, *len, 100 + i as u64))
        .collect();
    let srv = fx.start(fx.tls());
    let base = srv.metrics();
    for ((name, len), pattern) in sizes.iter().zip(&patterns) {
        let out = fx.out(&format!("{name}.out"));
        let got = download(&srv, &format!("/static/{name}"), &out, &[]);
        assert_eq!(
            (got.code, got.version.as_str(), got.connects),
            (200, "1.1", 1),
            "GET /static/{name}"
        );
        assert_file_is(
            &out,
            pattern,
            0,
            *len,
            &format!("GET /static/{name} ({len} bytes)"),
        );
        std::fs::remove_file(&out).unwrap();
    }
    let n = sizes.len() as f64;
    let now = after_static_2xx(&srv, &base, n);

    let tls_ok = delta(
        &base,
        &now,
        RESPONSES,
        &[
            ("path", "tls_buffered"),
            ("source", "static"),
            ("code", "2xx"),
        ],
    );
    let mem_ok = delta(
        &base,
        &now,
        RESPONSES,
        &[("path", "memory"), ("source", "static"), ("code", "2xx")],
    );
    // Every non-empty file is a tls_buffered response; the empty one has no file body and may
    // be accounted as `memory` (as on the plaintext paths, see tests/send_paths.rs).
    assert!(
        (tls_ok == n - 1.0 && mem_ok == 1.0) || (tls_ok == n && mem_ok == 0.0),
        "responses{{tls_buffered,static,2xx}} delta {tls_ok}, {{memory}} delta {mem_ok}; want {}(+1 for the empty file)",
        n - 1.0
    );
    let total: u64 = sizes.iter().map(|(_, l)| l).sum();
    expect_deltas(
        &base,
        &now,
        &[(BODY_BYTES, &[("path", "tls_buffered")], total as f64)],
        "body bytes",
    );
    expect_nothing_outside_tls_buffered(&base, &now, "static downloads over TLS");
    expect_tls_connections(
        &base,
        &now,
        n,
        "ulp_unavailable",
        "one curl connection per file",
    );
}

#[test]
fn https_range_requests_get_206_with_the_right_bytes() {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    let len = MIB + 1;
    let pattern = fx.file("r.bin", len, 7);
    let srv = fx.start(fx.tls());
    let base = srv.metrics();
    // (curl -r spec, first byte, length)
    let ranges: [(&str, u64, u64); 5] = [
        ("0-0", 0, 1),
        ("100-199", 100, 100),
        ("1048000-1048576", 1_048_000, 577),
        ("1048570-", 1_048_570, 7),
        ("-10", len - 10, 10),
    ];
    for (i, (spec, first, n)) in ranges.iter().enumerate() {
        let out = fx.out(&format!("range{i}.out"));
        let headers = fx.out(&format!("range{i}.headers"));
        let got = download(
            &srv,
            "/static/r.bin",
            &out,
            &["-r", spec, "-D", headers.to_str().unwrap()],
        );
        assert_eq!(got.code, 206, "Range bytes={spec}");
        assert_file_is(&out, &pattern, *first, *n, &format!("Range bytes={spec}"));
        let head = std::fs::read_to_string(&headers).unwrap();
        let want = format!("content-range: bytes {first}-{}/{len}", first + n - 1);
        assert!(
            head.lines().any(|l| l.trim().eq_ignore_ascii_case(&want)),
            "Range bytes={spec}: want {want:?} in\n{head}"
        );
    }
    let n = ranges.len() as f64;
    let now = after_static_2xx(&srv, &base, n);
    let bytes: u64 = ranges.iter().map(|r| r.2).sum();
    expect_deltas(
        &base,
        &now,
        &[
            (
                RESPONSES,
                &[
                    ("path", "tls_buffered"),
                    ("source", "static"),
                    ("code", "2xx"),
                ],
                n,
            ),
            (BODY_BYTES, &[("path", "tls_buffered")], bytes as f64),
        ],
        "206 responses",
    );
    expect_nothing_outside_tls_buffered(&base, &now, "ranges over TLS");
    expect_tls_connections(
        &base,
        &now,
        n,
        "ulp_unavailable",
        "one curl connection per range",
    );
}

#[test]
fn ktls_auto_without_tls_ulp_counts_one_ulp_unavailable_fallback_per_connection() {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    let pattern = fx.file("a.bin", 10_000, 3);
    let srv = fx.start(fx.tls().ktls("auto"));
    let base = srv.metrics();
    // three single-request connections and one keep-alive connection with two requests
    for i in 0..3 {
        one_small_file_served(&srv, &fx, "a.bin", &pattern, 10_000, &format!("auto {i}"));
    }
    let url = srv.url("/static/a.bin");
    let (o1, o2) = (fx.out("ka1"), fx.out("ka2"));
    let got = curl_ok(
        srv.curl(&[
            "--http1.1",
            "-w",
            W,
            "-o",
            o1.to_str().unwrap(),
            &url,
            "-o",
            o2.to_str().unwrap(),
            &url,
        ]),
        "keep-alive pair",
    );
    assert_eq!(got.iter().map(|g| g.connects).sum::<u32>(), 1, "{got:?}");
    assert_file_is(&o1, &pattern, 0, 10_000, "keep-alive 1");
    assert_file_is(&o2, &pattern, 0, 10_000, "keep-alive 2");
    let now = after_static_2xx(&srv, &base, 5.0);
    for other in ["disabled", "cipher_unsupported", "http2", "install_failed"] {
        let d = delta(
            &base,
            &now,
            FALLBACKS,
            &[("from", "ktls"), ("reason", other)],
        );
        assert_eq!(d, 0.0, "fallbacks{{from=ktls,reason={other}}}");
    }
    expect_tls_connections(
        &base,
        &now,
        4.0,
        "ulp_unavailable",
        "4 TLS connections, 5 requests",
    );
}

#[test]
fn ktls_off_counts_one_disabled_fallback_per_connection() {
    let fx = Fx::new();
    let pattern = fx.file("o.bin", 70_000, 4);
    let srv = fx.start(fx.tls().ktls("off"));
    let base = srv.metrics();
    for i in 0..3 {
        one_small_file_served(&srv, &fx, "o.bin", &pattern, 70_000, &format!("off {i}"));
    }
    let now = after_static_2xx(&srv, &base, 3.0);
    expect_deltas(
        &base,
        &now,
        &[
            (
                FALLBACKS,
                &[("from", "ktls"), ("reason", "ulp_unavailable")],
                0.0,
            ),
            (
                RESPONSES,
                &[
                    ("path", "tls_buffered"),
                    ("source", "static"),
                    ("code", "2xx"),
                ],
                3.0,
            ),
            (BODY_BYTES, &[("path", "tls_buffered")], 210_000.0),
        ],
        "ktls=off",
    );
    expect_nothing_outside_tls_buffered(&base, &now, "ktls=off");
    expect_tls_connections(&base, &now, 3.0, "disabled", "ktls=off");
}

// ---------------------------------------------------------------------------------------------
// 3. require, 4. bad certificate / key

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn ktls_require_without_tls_ulp_refuses_to_start_but_check_only_warns() {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    let cfg = fx.config_file("require.toml", &fx.tls().ktls("require"));

    let out = run_ferry(&["serve".as_ref(), "--config".as_ref(), cfg.as_os_str()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success() && out.status.code().is_some(),
        "ferry serve with ktls=require on a kernel without kTLS must exit non-zero: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains("modprobe tls"),
        "stderr should tell how to get kTLS (`modprobe tls`):\n{stderr}"
    );
    assert!(
        !reported_listeners(&stdout, &stderr),
        "ferry reported listeners although it refused to start:\n{stdout}\n{stderr}"
    );

    let out = run_ferry(&["check".as_ref(), "--config".as_ref(), cfg.as_os_str()]);
    let all = text(&out.stdout) + &text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "ferry check: {all}");
    assert!(
        all.lines()
            .any(|l| l.to_ascii_lowercase().contains("warning") && l.contains("require")),
        "ferry check should warn that `require` would refuse to start here:\n{all}"
    );
}

/// `ferry check` and `ferry serve` with `tls` both exit 64 with a line starting `prefix`
/// (after the file, line and column where check gives them).
fn expect_rejected(fx: &Fx, name: &str, tls: &TlsSection, prefix: &str) {
    let cfg = fx.config_file(name, tls);
    for cmd in ["check", "serve"] {
        let out = run_ferry(&[cmd.as_ref(), "--config".as_ref(), cfg.as_os_str()]);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(
            out.status.code(),
            Some(64),
            "ferry {cmd} with {name}: exit status\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        let file = cfg.to_str().unwrap();
        let placed = |l: &str| {
            l.split_once(": ")
                .is_some_and(|(place, rest)| place.starts_with(file) && rest.starts_with(prefix))
        };
        assert!(
            stderr
                .lines()
                .any(|l| l.trim_start().starts_with(prefix) || placed(l)),
            "ferry {cmd} with {name}: want a line starting {prefix:?} on stderr:\n{stderr}"
        );
        assert!(
            !reported_listeners(&stdout, &stderr),
            "ferry {cmd} with {name} reported listeners:\n{stdout}\n{stderr}"
        );
    }
}

/// Whether ferry printed a `listening KIND ADDR` line (on stderr; stdout counted too).
fn reported_listeners(stdout: &str, stderr: &str) -> bool {
    stdout
        .lines()
        .chain(stderr.lines())
        .any(|l| l.starts_with("listening "))
}

#[test]
fn key_that_does_not_fit_the_cert_is_rejected_by_check_and_serve() {
    let fx = Fx::new();
    let other = gen_cert(fx.dir.path(), "other");
    let mut tls = fx.tls();
    tls.key = other.key.clone(); // fx's certificate with the other pair's key
    expect_rejected(&fx, "mixed.toml", &tls, "tls.key:");
    // and the other way round
    let mut tls = fx.tls();
    tls.cert = other.cert;
    expect_rejected(&fx, "mixed2.toml", &tls, "tls.key:");
}

#[test]
fn missing_cert_or_key_file_is_rejected_by_check_and_serve() {
    let fx = Fx::new();
    let mut tls = fx.tls();
    tls.cert = fx.dir.path().join("no-such-cert.pem");
    expect_rejected(&fx, "nocert.toml", &tls, "tls.cert:");
    let mut tls = fx.tls();
    tls.key = fx.dir.path().join("no-such-key.pem");
    expect_rejected(&fx, "nokey.toml", &tls, "tls.key:");
}

// ---------------------------------------------------------------------------------------------
// 5. openssl s_client

#[test]
fn openssl_s_client_negotiates_tls13_verifies_the_cert_and_gets_the_file() {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    let body = b"hello over TLS from ferry\n".repeat(40);
    std::fs::write(fx.root.join("x"), &body).unwrap();
    let srv = fx.start(fx.tls());
    let base = srv.metrics();
    let req = b"GET /static/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let ca = fx.certs.cert.to_str().unwrap();
    let out = s_client(
        srv.https(),
        &[
            "-CAfile",
            ca,
            "-verify_hostname",
            "localhost",
            "-verify_return_error",
            "-alpn",
            "http/1.1",
        ],
        req,
    );
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "s_client failed ({:?}):\n{stderr}",
        out.status
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.trim() == "Protocol version: TLSv1.3"),
        "want TLS 1.3:\n{stderr}"
    );
    assert!(
        stderr.contains("Verification: OK") && stderr.contains("Peer certificate: CN = localhost"),
        "the configured certificate must verify for `localhost`:\n{stderr}"
    );
    let Split {
        status,
        headers,
        body: got,
        rest,
    } = split_response(&out.stdout);
    assert_eq!(status, 200, "{headers:?}");
    assert!(
        got == body,
        "body differs: {:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        rest.is_empty(),
        "bytes after the response: {:?}",
        text(&rest)
    );
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "connection" && v == "close"),
        "{headers:?}"
    );
    let now = after_static_2xx(&srv, &base, 1.0);
    expect_tls_connections(&base, &now, 1.0, "ulp_unavailable", "s_client");
    wait_no_open_tls_connections(&srv);
}

// ---------------------------------------------------------------------------------------------
// 6. hostile handshakes

#[test]
fn garbage_on_the_tls_port_is_a_counted_handshake_error_and_others_are_served() {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    let pattern = fx.file("g.bin", 5000, 9);
    let srv = fx.start(fx.tls());
    let base = srv.metrics();
    let mut random = random_bytes(11, 300);
    random[0] = 0xAB; // not a TLS content type: an error at once, not a wait for more bytes
    let mut bad_hello = vec![0x16, 0x03, 0x01, 0x00, 0x10];
    bad_hello.extend_from_slice(&[0xFF; 16]); // a handshake record with no valid message
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "plaintext HTTP",
            b"GET /static/g.bin HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
        ),
        ("random bytes", random),
        ("malformed handshake record", bad_hello),
    ];
    for (what, bytes) in &cases {
        let mut s = tcp(srv.https());
        // ferry may close (even reset) as soon as it has seen enough; a failed write is fine
        let _ = s.write_all(bytes);
        let got = read_until_closed(&mut s);
        assert_only_alerts(&got, what);
    }
    let n = cases.len() as f64;
    let d = wait_delta(
        &srv,
        &base,
        HANDSHAKES,
        &[("result", "error"), ("ktls", "false")],
        n,
    );
    assert_eq!(d, n, "handshakes{{result=error}}");
    let now = srv.metrics();
    expect_deltas(
        &base,
        &now,
        &[
            (HANDSHAKES, &[("result", "ok")], 0.0),
            (HANDSHAKES, &[("result", "timeout")], 0.0),
            (CONNS, &[], 0.0),
            (FALLBACKS, &[("from", "ktls")], 0.0),
            (RESPONSES, &[], 0.0),
        ],
        "failed handshakes reach no HTTP code",
    );
    // ferry keeps serving TLS and plaintext
    one_small_file_served(&srv, &fx, "g.bin", &pattern, 5000, "after garbage");
    let mut c = srv.connect();
    c.send(&req("GET", "/static/g.bin", &[]));
    let head = c.read_head();
    assert_eq!(head.status, 200);
    expect_pattern_body(&mut c, &pattern, 0, 5000, "plaintext after garbage");
    let after = after_static_2xx(&srv, &now, 2.0);
    expect_deltas(
        &now,
        &after,
        &[(HANDSHAKES, &[("result", "ok"), ("ktls", "false")], 1.0)],
        "the good handshake",
    );
}

#[test]
fn stalled_handshakes_time_out_and_are_counted_while_others_are_served() {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    let pattern = fx.file("s.bin", 200_000, 12);
    let srv = fx.start(fx.tls().handshake_timeout("1s"));
    let hello = real_client_hello();
    assert!(
        hello.len() > 20,
        "a real ClientHello is longer than 20 bytes"
    );
    let base = srv.metrics();
    let stalls: [(&str, Vec<u8>); 3] = [
        ("first 20 bytes of a real ClientHello", hello[..20].to_vec()),
        (
            "a record header promising 512 bytes, 6 sent",
            vec![
                0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
            ],
        ),
        ("nothing at all", Vec::new()),
    ];
    let mut conns: Vec<(&str, TcpStream)> = stalls
        .iter()
        .map(|(what, bytes)| {
            let mut s = tcp(srv.https());
            s.write_all(bytes).unwrap();
            (*what, s)
        })
        .collect();
    // meanwhile: a normal client is served
    one_small_file_served(
        &srv,
        &fx,
        "s.bin",
        &pattern,
        200_000,
        "while handshakes stall",
    );
    // each stalled connection is closed by ferry (after the 1s handshake timeout; the read
    // bound is IO_TIMEOUT) without any HTTP
    for (what, s) in &mut conns {
        let got = read_until_closed(s);
        assert_only_alerts(&got, what);
    }
    let n = stalls.len() as f64;
    let d = wait_delta(
        &srv,
        &base,
        HANDSHAKES,
        &[("result", "timeout"), ("ktls", "false")],
        n,
    );
    assert_eq!(d, n, "handshakes{{result=timeout}}");
    // afterwards: served too
    one_small_file_served(&srv, &fx, "s.bin", &pattern, 200_000, "after the timeouts");
    let now = after_static_2xx(&srv, &base, 2.0);
    expect_deltas(
        &base,
        &now,
        &[
            (HANDSHAKES, &[("result", "timeout")], n),
            (HANDSHAKES, &[("result", "error")], 0.0),
            (HANDSHAKES, &[("result", "ok"), ("ktls", "false")], 2.0),
            (CONNS, &[("transport", "tls")], 2.0),
            (
                FALLBACKS,
                &[("from", "ktls"), ("reason", "ulp_unavailable")],
                2.0,
            ),
        ],
        "stalled handshakes",
    );
    wait_no_open_tls_connections(&srv);
}

// ---------------------------------------------------------------------------------------------
// 7. ALPN

#[test]
fn alpn_offers_h2_so_curl_http2_gets_http2() {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    let pattern = fx.file("h.bin", MIB + 1, 21);
    let srv = fx.start(fx.tls()); // alpn = ["h2", "http/1.1"]
    let base = srv.metrics();
    let out_file = fx.out("h.out");
    let url = srv.url("/static/h.bin");
    let out = srv.curl(&[
        "-v",
        "--http2",
        "-o",
        out_file.to_str().unwrap(),
        "-w",
        W,
        &url,
    ]);
    let verbose = text(&out.stderr);
    let got = curl_ok(out, "curl --http2");
    assert_eq!(
        (got[0].code, got[0].version.as_str()),
        (200, "2"),
        "ferry offers h2 first: curl --http2 must speak HTTP/2"
    );
    assert!(
        verbose
            .lines()
            .any(|l| l.contains("ALPN") && l.contains("accepted") && l.contains("h2")),
        "curl -v should report the server accepted h2 over ALPN:\n{verbose}"
    );
    assert_file_is(&out_file, &pattern, 0, MIB + 1, "curl --http2");
    let now = after_static_2xx(&srv, &base, 1.0);
    // HTTP/2 bodies are always tls_buffered. On this kernel (no `tls` ULP) the connection's
    // fallback reason is ulp_unavailable; with kTLS available it would be `http2`
    // (tests/ktls_vm.rs).
    expect_deltas(
        &base,
        &now,
        &[
            (
                RESPONSES,
                &[
                    ("path", "tls_buffered"),
                    ("source", "static"),
                    ("code", "2xx"),
                ],
                1.0,
            ),
            (FALLBACKS, &[("from", "ktls"), ("reason", "http2")], 0.0),
        ],
        "curl --http2",
    );
    expect_tls_connections(&base, &now, 1.0, "ulp_unavailable", "curl --http2");
}

/// A client that offers *only* h2 now completes the handshake with h2 selected (before
/// HTTP/2 was served, rustls failed it with no_application_protocol).
#[test]
fn alpn_h2_only_client_completes_the_handshake_with_h2() {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    std::fs::write(fx.root.join("x"), b"x").unwrap();
    let srv = fx.start(fx.tls());
    let base = srv.metrics();
    // Not an HTTP/2 preface: ferry's HTTP/2 server answers with GOAWAY and closes.
    let req = b"GET /static/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    // Without -brief, s_client prints the negotiated protocol on stdout.
    let mut cmd = openssl();
    cmd.arg("s_client")
        .arg("-connect")
        .arg(srv.https().to_string())
        .args(["-servername", "localhost", "-ign_eof", "-alpn", "h2"]);
    let out = run_bounded(cmd, Some(req), CMD_TIMEOUT);
    let stdout = text(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.trim() == "ALPN protocol: h2"),
        "s_client -alpn h2 should negotiate h2:\n{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        !out.stdout.windows(5).any(|w| w == b"HTTP/"),
        "an HTTP/1.1 answer on an h2 connection: {:?}",
        text(&out.stdout)
    );
    let d = wait_delta(
        &srv,
        &base,
        HANDSHAKES,
        &[("result", "ok"), ("ktls", "false")],
        1.0,
    );
    assert_eq!(d, 1.0, "handshakes{{result=ok}}");
    wait_no_open_tls_connections(&srv);
    expect_deltas(
        &base,
        &srv.metrics(),
        &[
            (HANDSHAKES, &[("result", "error")], 0.0),
            (CONNS, &[("transport", "tls")], 1.0),
            (RESPONSES, &[], 0.0),
        ],
        "h2-only client",
    );
}

// ---------------------------------------------------------------------------------------------
// 8. keep-alive, 9. plaintext alongside, several TLS listeners

#[test]
fn keep_alive_over_tls_serves_two_requests_on_one_connection() {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    let p1 = fx.file("k1.bin", 300_000, 31);
    let p2 = fx.file("k2.bin", 4096, 32);
    let srv = fx.start(fx.tls());
    let base = srv.metrics();
    let (u1, u2) = (srv.url("/static/k1.bin"), srv.url("/static/k2.bin"));
    let (o1, o2) = (fx.out("k1.out"), fx.out("k2.out"));
    let got = curl_ok(
        srv.curl(&[
            "--http1.1",
            "-w",
            W,
            "-o",
            o1.to_str().unwrap(),
            &u1,
            "-o",
            o2.to_str().unwrap(),
            &u2,
        ]),
        "curl URL1 URL2",
    );
    let summary: Vec<(u16, u32)> = got.iter().map(|g| (g.code, g.connects)).collect();
    assert_eq!(
        summary,
        [(200, 1), (200, 0)],
        "second transfer must reuse the connection"
    );
    assert_file_is(&o1, &p1, 0, 300_000, "keep-alive first");
    assert_file_is(&o2, &p2, 0, 4096, "keep-alive second");
    let now = after_static_2xx(&srv, &base, 2.0);
    expect_deltas(
        &base,
        &now,
        &[
            (
                RESPONSES,
                &[
                    ("path", "tls_buffered"),
                    ("source", "static"),
                    ("code", "2xx"),
                ],
                2.0,
            ),
            (BODY_BYTES, &[("path", "tls_buffered")], 304_096.0),
        ],
        "keep-alive",
    );
    expect_tls_connections(
        &base,
        &now,
        1.0,
        "ulp_unavailable",
        "one connection, two requests",
    );
    wait_no_open_tls_connections(&srv);
}

#[test]
fn plaintext_listener_keeps_serving_the_same_files_alongside_tls() {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    let len = 2 * MIB + 3;
    let pattern = fx.file("p.bin", len, 41);
    let srv = fx.start(fx.tls());
    assert_ne!(srv.addr(), srv.https(), "distinct listeners");
    let base = srv.metrics();
    // plaintext
    let mut c = srv.connect();
    c.send(&req("GET", "/static/p.bin", &[]));
    let head = c.read_head();
    assert_eq!((head.status, head.content_length()), (200, Some(len)));
    expect_pattern_body(&mut c, &pattern, 0, len, "plaintext GET");
    let m = after_static_2xx(&srv, &base, 1.0);
    expect_deltas(
        &base,
        &m,
        &[
            (CONNS, &[("transport", "tcp")], 1.0),
            (CONNS, &[("transport", "tls")], 0.0),
            (HANDSHAKES, &[], 0.0),
            (FALLBACKS, &[("from", "ktls")], 0.0),
            (RESPONSES, &[("path", "tls_buffered")], 0.0),
            (ZERO_COPY, &[], len as f64),
        ],
        "plaintext GET is zero-copy and not TLS",
    );
    // the same file over TLS, then plaintext again on the kept-alive connection
    one_small_file_served(&srv, &fx, "p.bin", &pattern, len, "TLS GET");
    c.send(&req("GET", "/static/p.bin", &[("Range", "bytes=10-19")]));
    let r = c.read_response("GET");
    assert_eq!(r.status, 206);
    assert_eq!(
        r.body,
        pattern.bytes(10, 10),
        "plaintext range after the TLS download"
    );
    let now = after_static_2xx(&srv, &m, 2.0);
    expect_deltas(
        &m,
        &now,
        &[
            (CONNS, &[("transport", "tcp")], 0.0),
            (CONNS, &[("transport", "tls")], 1.0),
            (
                RESPONSES,
                &[
                    ("path", "tls_buffered"),
                    ("source", "static"),
                    ("code", "2xx"),
                ],
                1.0,
            ),
            (BODY_BYTES, &[("path", "tls_buffered")], len as f64),
            (ZERO_COPY, &[], 10.0),
        ],
        "one TLS and one plaintext response",
    );
}

#[test]
fn every_tls_listener_is_printed_and_serves() {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    let pattern = fx.file("l.bin", 1234, 51);
    let srv = fx.start(fx.tls().listeners(2));
    assert_ne!(srv.https[0], srv.https[1], "two TLS listeners, two ports");
    let base = srv.metrics();
    for (i, addr) in srv.https.iter().enumerate() {
        let out = fx.out(&format!("l{i}.out"));
        let url = format!("https://localhost:{}/static/l.bin", addr.port());
        let resolve = format!("localhost:{}:127.0.0.1", addr.port());
        let got = curl_ok(
            srv.curl(&[
                "--resolve",
                &resolve,
                "--http1.1",
                "-o",
                out.to_str().unwrap(),
                "-w",
                W,
                &url,
            ]),
            &format!("listener {addr}"),
        );
        assert_eq!(got[0].code, 200, "listener {addr}");
        assert_file_is(&out, &pattern, 0, 1234, &format!("listener {addr}"));
    }
    let now = after_static_2xx(&srv, &base, 2.0);
    expect_tls_connections(&base, &now, 2.0, "ulp_unavailable", "two listeners");
}

// ---------------------------------------------------------------------------------------------
// 10. proxied over TLS

fn tls_proxy(fx: &Fx, app: &App) -> TlsServer {
    let toml = ProxyConfig::new(&app.address)
        .location("/internal/", &fx.root, true)
        .to_toml()
        + &fx.tls().to_toml();
    TlsServer::start(&toml, 1)
}

#[test]
fn proxied_requests_over_tls_are_relayed_byte_identical_on_tls_buffered() {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    let len = MIB + 17;
    let pattern = fx.file("u.bin", len, 61);
    let file = fx.root.join("u.bin");
    let app = App::start();
    let srv = tls_proxy(&fx, &app);
    let base = srv.metrics();
    let path = qenc(file.to_str().unwrap());
    // Content-Length and chunked app bodies, and an X-Accel-Redirect to an internal file
    let cases = [
        ("length", format!("/file?path={path}"), "upstream"),
        (
            "chunked",
            format!("/file?mode=chunked&chunk=7000&path={path}"),
            "upstream",
        ),
        ("accel", "/accel?to=/internal/u.bin".to_string(), "accel"),
    ];
    for (what, target, _) in &cases {
        let out = fx.out(&format!("{what}.out"));
        let got = download(&srv, target, &out, &[]);
        assert_eq!((got.code, got.version.as_str()), (200, "1.1"), "{what}");
        assert_file_is(&out, &pattern, 0, len, what);
    }
    let f = [("code", "2xx")];
    let d = wait_delta(&srv, &base, RESPONSES, &f, 3.0);
    assert_eq!(d, 3.0, "2xx responses");
    let now = srv.metrics();
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
                2.0,
            ),
            (
                RESPONSES,
                &[
                    ("path", "tls_buffered"),
                    ("source", "accel"),
                    ("code", "2xx"),
                ],
                1.0,
            ),
            (BODY_BYTES, &[("path", "tls_buffered")], 3.0 * len as f64),
            (BODY_BYTES, &[("path", "memory")], 0.0),
            ("ferry_upstream_requests_total", &[("outcome", "ok")], 3.0),
        ],
        "proxied over TLS",
    );
    expect_nothing_outside_tls_buffered(&base, &now, "proxied over TLS");
    expect_tls_connections(
        &base,
        &now,
        3.0,
        "ulp_unavailable",
        "three proxied requests",
    );
    let seen = app.wait_request(&cases[0].1);
    assert_eq!(seen.method, "GET");
}

/// The app must be able to tell that the client came over HTTPS (redirect schemes, Secure
/// cookies): X-Forwarded-Proto is `https` for a TLS client and `http` for a plaintext one.
#[test]
fn proxied_request_over_tls_tells_the_app_x_forwarded_proto_https() {
    let fx = Fx::new();
    let app = App::start();
    let srv = tls_proxy(&fx, &app);
    let out = fx.out("echo.out");
    let got = download(
        &srv,
        "/echo?over=tls",
        &out,
        &["-H", "X-Forwarded-Proto: http"],
    );
    assert_eq!(got.code, 200);
    let r = srv.get("/echo?over=plain");
    assert_eq!(r.status, 200);
    let tls_seen = app.wait_request("/echo?over=tls");
    let plain_seen = app.wait_request("/echo?over=plain");
    assert_eq!(
        plain_seen.header_all("x-forwarded-proto"),
        ["http"],
        "plaintext client"
    );
    assert_eq!(
        tls_seen.header_all("x-forwarded-proto"),
        ["https"],
        "TLS client (a client-sent X-Forwarded-Proto must not pass either)"
    );
}

// ---------------------------------------------------------------------------------------------
// 11. session resumption

const RESUMED: &str = "ferry_tls_resumed_total";

/// What one `openssl s_client` connection of a resumption pair saw.
struct Session {
    /// s_client's "New, ..." / "Reused, ..." line.
    line: String,
    body: Vec<u8>,
}

/// One connection with `openssl s_client` (not `-brief`, which does not say whether the
/// session was reused) fetching `/static/x`; `file` is written (`-sess_out`) or read
/// (`-sess_in`).
fn s_client_session(srv: &TlsServer, opts: &[&str], sess: (&str, &Path)) -> Session {
    let req = b"GET /static/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let mut cmd = openssl();
    cmd.arg("s_client")
        .arg("-connect")
        .arg(srv.https().to_string())
        .args(["-servername", "localhost", "-ign_eof", "-alpn", "http/1.1"])
        .args(opts)
        .arg(sess.0)
        .arg(sess.1);
    let out = run_bounded(cmd, Some(req), CMD_TIMEOUT);
    assert!(
        out.status.success(),
        "s_client {opts:?} {}: {:?}\n{}",
        sess.0,
        out.status,
        text(&out.stderr)
    );
    let stdout = &out.stdout;
    let line = text(stdout)
        .lines()
        .find(|l| l.starts_with("New, ") || l.starts_with("Reused, "))
        .unwrap_or_else(|| panic!("no New/Reused line from s_client:\n{}", text(stdout)))
        .to_string();
    let at = stdout
        .windows(9)
        .position(|w| w == b"HTTP/1.1 ")
        .unwrap_or_else(|| panic!("no response from s_client:\n{}", text(stdout)));
    let Split { status, body, .. } = split_response(&stdout[at..]);
    assert_eq!(status, 200, "s_client {opts:?}");
    Session { line, body }
}

/// For each client option set: a full handshake that saves its session, then a connection
/// that offers it back; asserts the protocol, whether the second was resumed, both bodies
/// byte for byte, and that ferry counted exactly the resumed ones.
/// `lines` are added to the `[tls]` section.
fn resumption_cases(lines: &[&str], cases: &[(&[&str], &str, bool)]) {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    let body: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(fx.root.join("x"), &body).unwrap();
    let tls = lines.iter().fold(fx.tls(), |tls, line| tls.with(line));
    let srv = fx.start(tls);
    let mut resumed = 0.0;
    for (i, (opts, protocol, reuse)) in cases.iter().enumerate() {
        let ctx = format!("case {i} {opts:?}");
        let file = fx.dir.path().join(format!("session{i}.pem"));
        let base = srv.metrics();
        let first = s_client_session(&srv, opts, ("-sess_out", &file));
        assert!(
            first.line.starts_with(&format!("New, {protocol}, ")),
            "{ctx}: first connection: {}",
            first.line
        );
        assert!(first.body == body, "{ctx}: first body differs");
        if !file.exists() {
            // s_client writes no file when the server gave it nothing to resume with (no
            // ticket, no session ID): the strongest form of "not resumed".
            assert!(!reuse, "{ctx}: no session to resume was handed out");
            let now = after_static_2xx(&srv, &base, 1.0);
            expect_tls_connections(&base, &now, 1.0, "ulp_unavailable", &ctx);
            assert_eq!(delta(&base, &now, RESUMED, &[]), 0.0, "{ctx}: resumed");
            continue;
        }
        let second = s_client_session(&srv, opts, ("-sess_in", &file));
        let want = if *reuse { "Reused" } else { "New" };
        assert!(
            second.line.starts_with(&format!("{want}, {protocol}, ")),
            "{ctx}: second connection: {}, want {want}",
            second.line
        );
        assert!(second.body == body, "{ctx}: second body differs");
        resumed += f64::from(u8::from(*reuse));
        let now = after_static_2xx(&srv, &base, 2.0);
        expect_tls_connections(&base, &now, 2.0, "ulp_unavailable", &ctx);
        let want_resumed = f64::from(u8::from(*reuse));
        let want: [Want<'_>; 2] = [
            (RESUMED, &[("ktls", "false")], want_resumed),
            (RESUMED, &[("ktls", "true")], 0.0),
        ];
        expect_deltas(&base, &now, &want, &ctx);
    }
    let total = srv.metrics().get(RESUMED, &[]);
    assert_eq!(total, resumed, "resumed handshakes in all");
    wait_no_open_tls_connections(&srv);
}

const TLS13: &[&str] = &["-tls1_3"];
const TLS12_TICKET: &[&str] = &["-tls1_2"];
const TLS12_SESSION_ID: &[&str] = &["-tls1_2", "-no_ticket"];

#[test]
fn by_default_tls13_and_tls12_sessions_are_resumed_by_ticket_and_by_session_id() {
    resumption_cases(
        &[],
        &[
            (TLS13, "TLSv1.3", true),
            (TLS12_TICKET, "TLSv1.2", true),
            (TLS12_SESSION_ID, "TLSv1.2", true),
        ],
    );
}

/// Tickets alone: TLS 1.3 and TLS 1.2 with tickets resume; a TLS 1.2 client that takes no
/// ticket has nothing to resume with.
#[test]
fn with_the_cache_off_tickets_alone_resume_tls13_and_tls12() {
    resumption_cases(
        &["session_cache = 0"],
        &[
            (TLS13, "TLSv1.3", true),
            (TLS12_TICKET, "TLSv1.2", true),
            (TLS12_SESSION_ID, "TLSv1.2", false),
        ],
    );
}

/// The cache alone: TLS 1.3 resumes by a ticket that names a cache entry, TLS 1.2 by session
/// ID whether or not the client would take a ticket.
#[test]
fn with_tickets_off_the_session_cache_alone_resumes_tls13_and_tls12() {
    resumption_cases(
        &["session_tickets = false"],
        &[
            (TLS13, "TLSv1.3", true),
            (TLS12_TICKET, "TLSv1.2", true),
            (TLS12_SESSION_ID, "TLSv1.2", true),
        ],
    );
}

#[test]
fn with_the_cache_and_tickets_off_no_session_is_resumed() {
    resumption_cases(
        &["session_cache = 0", "session_tickets = false"],
        &[
            (TLS13, "TLSv1.3", false),
            (TLS12_TICKET, "TLSv1.2", false),
            (TLS12_SESSION_ID, "TLSv1.2", false),
        ],
    );
}

/// Three hundred pipelined requests for a 16 KiB file (the most a response gives rustls at
/// once without waiting) and small answers between them, over one TLS connection: every body
/// arrives byte for byte and in order, each response in one record with its head, including
/// those written after the socket filled up and the rest of the records went out later.
#[test]
fn pipelined_small_responses_over_tls_arrive_whole_and_in_order() {
    assert_kernel_without_ktls();
    let fx = Fx::new();
    let pattern = fx.file("sixteen", 16 * 1024, 77);
    let srv = fx.start(fx.tls());
    let base = srv.metrics();
    let n = 300;
    let mut requests = Vec::new();
    for i in 0..n {
        let (path, close) = match i % 3 {
            0 | 1 => ("/static/sixteen", ""),
            _ => ("/static/none", ""),
        };
        let close = if i == n - 1 {
            "Connection: close\r\n"
        } else {
            close
        };
        requests.extend_from_slice(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{close}\r\n").as_bytes(),
        );
    }
    let out = s_client(srv.https(), &["-alpn", "http/1.1"], &requests);
    assert!(out.status.success(), "s_client: {}", text(&out.stderr));
    let mut rest = out.stdout;
    let want = pattern.bytes(0, 16 * 1024);
    for i in 0..n {
        let got = split_response(&rest);
        if i % 3 == 2 {
            assert_eq!(got.status, 404, "response {i}");
        } else {
            assert_eq!(got.status, 200, "response {i}");
            assert!(got.body == want, "response {i}: body differs");
        }
        rest = got.rest;
    }
    assert!(
        rest.is_empty(),
        "{} bytes after the last response",
        rest.len()
    );
    let now = after_static_2xx(&srv, &base, f64::from(n / 3 * 2));
    expect_deltas(
        &base,
        &now,
        &[(
            BODY_BYTES,
            &[("path", "tls_buffered")],
            f64::from(n / 3 * 2) * 16384.0,
        )],
        "pipelined over TLS",
    );
}
