//! Spooling: slow clients never hold the app. A response the client reads slower than the
//! app writes is spliced into a spool file and sent from it, so the app's writes all finish
//! while the clients have read almost nothing (proven by the app's own "sent" events, and
//! the spool's metrics); every client still gets the body byte for byte, with the spooled
//! part sent by sendfile (counted as zero-copy).
mod common;

use common::app::*;
use common::*;

const MIB: u64 = 1024 * 1024;

fn spool_config(app: &App, dir: &std::path::Path) -> ProxyConfig {
    ProxyConfig::new(&app.address)
        .idle_connections(64)
        .extra(&format!(
            "[spool]\ndir = {:?}\nmax_file_size = \"128MiB\"\nmax_size = \"2GiB\"\n",
            dir.to_str().unwrap()
        ))
}

/// Bytes in the spool directory's visible entries (spool files have no name: none).
fn visible_entries(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn twenty_slow_readers_of_a_64_mib_body_free_the_app_at_once_and_get_every_byte() {
    let files = tempfile::tempdir().unwrap();
    let spool_dir = tempfile::tempdir().unwrap();
    let path = files.path().join("big.bin");
    let len = 64 * MIB;
    let pattern = pattern_file(&path, len, 7);
    let app = App::start();
    let server = spool_config(&app, spool_dir.path()).start();
    let before = server.metrics();
    let target = format!("/file?path={}", qenc(path.to_str().unwrap()));

    // Twenty clients with small receive buffers ask, read the head and stop reading.
    let mut clients: Vec<Conn> = (0..20)
        .map(|_| {
            let mut c = Conn::connect_small_rcvbuf(server.addr(), 64 * 1024);
            c.send(&req("GET", &target, &[]));
            c
        })
        .collect();
    let heads: Vec<Response> = clients.iter_mut().map(Conn::read_head).collect();
    for head in &heads {
        assert_eq!(head.status, 200);
        assert_eq!(head.content_length(), Some(len));
    }

    // The app finishes all twenty writes while no client reads: without a spool, each
    // write would block on a client that takes nothing.
    poll_until("the app to finish writing all 20 bodies", DEADLINE, || {
        let sent = app
            .events()
            .into_iter()
            .filter(|e| e.event == "sent" && e.json["target"] == target.as_str())
            .count();
        (sent == 20).then_some(())
    });
    let during = server.metrics();
    assert_eq!(during.get("ferry_spool_files_open", &[]), 20.0);
    assert!(during.get("ferry_spool_used_bytes", &[]) > 0.0);
    assert_eq!(
        visible_entries(spool_dir.path()),
        0,
        "spool files have no name"
    );
    let spooled = during.get("ferry_spool_bytes_total", &[("direction", "response")])
        - before.get("ferry_spool_bytes_total", &[("direction", "response")]);
    assert!(
        spooled >= 20.0 * (len - 8 * MIB) as f64,
        "most of each body went through the spool: {spooled}"
    );

    for (i, c) in clients.iter_mut().enumerate() {
        expect_pattern_body(c, &pattern, 0, len, &format!("client {i}"));
    }

    let done = wait_delta(
        &server,
        &before,
        "ferry_responses_total",
        &[("source", "upstream")],
        20.0,
    );
    assert_eq!(done, 20.0);
    let after = server.metrics();
    assert_eq!(after.get("ferry_spool_files_open", &[]), 0.0);
    assert_eq!(after.get("ferry_spool_used_bytes", &[]), 0.0);
    let zero_copy = after.get("ferry_zero_copy_bytes_total", &[("path", "sendfile")])
        - before.get("ferry_zero_copy_bytes_total", &[("path", "sendfile")]);
    assert!(
        zero_copy >= spooled,
        "the spooled bytes left by sendfile: {zero_copy} < {spooled}"
    );
    // The app's connections went back to the pool: the next request reuses one.
    let r = server.get("/echo");
    assert_eq!(r.status, 200);
    let echo = app.wait_request("/echo");
    assert!(
        app.requests_to(&target).iter().any(|r| r.conn == echo.conn),
        "the /echo request came on a connection a spooled body had used"
    );
}

/// Waits until `ferry_spool_files_open` is `n`.
fn wait_files_open(server: &Server, n: f64) {
    poll_until(&format!("{n} spool files open"), DEADLINE, || {
        (server.metrics().get("ferry_spool_files_open", &[]) == n).then_some(())
    });
}

fn app_opens(app: &App) -> usize {
    app.events().iter().filter(|e| e.event == "open").count()
}

#[test]
fn fifty_slow_uploads_hold_no_app_connection_until_each_body_is_complete() {
    let spool_dir = tempfile::tempdir().unwrap();
    let app = App::start();
    let server = spool_config(&app, spool_dir.path()).start();
    let before = server.metrics();
    let len = 100 * 1024;
    let bodies: Vec<Vec<u8>> = (0..50).map(|i| random_bytes(i, len)).collect();
    // Every client sends its head and a fifth of its body, then stops.
    let mut clients: Vec<Conn> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let mut c = server.connect();
            let target = format!("/echo?upload={i}");
            let len = body.len().to_string();
            c.send(&req("POST", &target, &[("Content-Length", &len)]));
            c.send(&body[..len_fifth(body)]);
            c
        })
        .collect();
    // Each body past `request_memory` has its spool file: ferry has read every head.
    wait_files_open(&server, 50.0);
    assert_eq!(
        app_opens(&app),
        0,
        "the app was contacted before a body was complete"
    );
    assert!(app.requests().is_empty());

    for (c, body) in clients.iter_mut().zip(&bodies) {
        c.send(&body[len_fifth(body)..]);
    }
    for (i, (c, body)) in clients.iter_mut().zip(&bodies).enumerate() {
        let r = c.read_response("POST");
        assert_eq!(r.status, 200, "upload {i}");
        assert_eq!(
            r.text(),
            format!("ok POST {} {}", body.len(), sha256_hex(body)),
            "upload {i}"
        );
        let seen = app.wait_request(&format!("/echo?upload={i}"));
        assert!(seen.body_complete);
        assert_eq!(
            seen.header("content-length"),
            Some(body.len().to_string().as_str())
        );
    }
    let after = server.metrics();
    let spooled = after.get("ferry_spool_bytes_total", &[("direction", "request")])
        - before.get("ferry_spool_bytes_total", &[("direction", "request")]);
    assert_eq!(spooled, (50 * len) as f64);
    wait_files_open(&server, 0.0);
}

/// `data` as one chunk of a chunked body.
fn framed_chunk(data: &[u8]) -> Vec<u8> {
    let mut framed = format!("{:x}\r\n", data.len()).into_bytes();
    framed.extend_from_slice(data);
    framed.extend_from_slice(b"\r\n");
    framed
}

fn len_fifth(body: &[u8]) -> usize {
    body.len() / 5
}

#[test]
fn a_slow_chunked_upload_is_read_whole_and_reaches_the_app_with_a_length() {
    let spool_dir = tempfile::tempdir().unwrap();
    let app = App::start();
    let server = spool_config(&app, spool_dir.path()).start();
    // 40 KiB in 10 chunks: past `request_memory` (16 KiB), so it moves to a file mid-way.
    let body = random_bytes(99, 40 * 1024);
    let mut c = server.connect();
    c.send(&req(
        "POST",
        "/echo?chunked=1",
        &[("Transfer-Encoding", "chunked")],
    ));
    let mut chunks = body.chunks(4096).map(framed_chunk);
    for chunk in chunks.by_ref().take(5) {
        c.send(&chunk);
    }
    // Past memory: a spool file, and still no app connection.
    wait_files_open(&server, 1.0);
    assert_eq!(app_opens(&app), 0);
    for chunk in chunks {
        c.send(&chunk);
    }
    c.send(b"0\r\n\r\n");
    let r = c.read_response("POST");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        format!("ok POST {} {}", body.len(), sha256_hex(&body))
    );
    let seen = app.wait_request("/echo?chunked=1");
    assert_eq!(
        seen.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(seen.header("transfer-encoding"), None);
    // The connection stays usable.
    let r = c.get("/echo?after=chunked", &[]);
    assert_eq!(r.status, 200);
}

#[test]
fn an_oversized_body_gets_413_and_the_app_sees_nothing() {
    let app = App::start();
    let server = ProxyConfig::new(&app.address)
        .server("max_body_size = \"64KiB\"")
        .start();
    // A Content-Length over the limit: answered before a byte of the body is sent.
    let mut c = server.connect();
    c.send(&req(
        "POST",
        "/echo?big=length",
        &[("Content-Length", "70000")],
    ));
    let r = c.read_response("POST");
    assert_eq!(r.status, 413);
    c.expect_closed("after 413 with the body unread");
    // A chunked body: answered as soon as it passes the limit.
    let mut c = server.connect();
    c.send(&req(
        "POST",
        "/echo?big=chunked",
        &[("Transfer-Encoding", "chunked")],
    ));
    let framed = framed_chunk(&random_bytes(5, 16 * 1024));
    for _ in 0..5 {
        c.send(&framed);
    }
    let r = c.read_response("POST");
    assert_eq!(r.status, 413);
    // A body at the limit passes.
    let body = random_bytes(6, 64 * 1024);
    let mut c = server.connect();
    c.send(&req(
        "POST",
        "/echo?at=limit",
        &[("Content-Length", "65536")],
    ));
    c.send(&body);
    let r = c.read_response("POST");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), format!("ok POST 65536 {}", sha256_hex(&body)));
    // The app saw only that one.
    app.wait_request("/echo?at=limit");
    assert!(app.requests_to("/echo?big=length").is_empty());
    assert!(app.requests_to("/echo?big=chunked").is_empty());
}

/// Streamed (no request buffering), a chunked body is still held to the limit: 413 once it
/// passes it, and the app's truncated request is dropped, never answered to the client.
#[test]
fn a_streamed_chunked_body_past_the_limit_gets_413() {
    let app = App::start();
    let server = ProxyConfig::new(&app.address)
        .server("max_body_size = \"64KiB\"")
        .extra("[spool]\nrequest_buffering = false")
        .start();
    let before = server.metrics();
    let mut c = server.connect();
    c.send(&req(
        "POST",
        "/echo?streamed=big",
        &[("Transfer-Encoding", "chunked")],
    ));
    let framed = framed_chunk(&random_bytes(9, 16 * 1024));
    for _ in 0..5 {
        c.send(&framed);
    }
    let r = c.read_response("POST");
    assert_eq!(r.status, 413);
    c.expect_closed("after 413 with the body unread");
    // The app got a head and part of a body, never a whole request.
    assert!(
        app.requests_to("/echo?streamed=big")
            .iter()
            .all(|r| !r.body_complete && r.body_len <= 64 * 1024)
    );
    let after = server.metrics();
    let d = after.get("ferry_responses_total", &[("code", "4xx")])
        - before.get("ferry_responses_total", &[("code", "4xx")]);
    assert_eq!(d, 1.0);
}

#[test]
fn without_request_buffering_the_body_streams_to_the_app_as_it_comes() {
    let app = App::start();
    let server = ProxyConfig::new(&app.address)
        .extra("[spool]\nrequest_buffering = false")
        .start();
    let body = random_bytes(8, 100 * 1024);
    let mut c = server.connect();
    c.send(&req(
        "POST",
        "/echo?streamed=1",
        &[("Content-Length", "102400")],
    ));
    c.send(&body[..1000]);
    // The app is contacted while most of the body is still to come.
    app.wait_event("open", |_| true);
    assert!(app.requests_to("/echo?streamed=1").is_empty());
    c.send(&body[1000..]);
    let r = c.read_response("POST");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), format!("ok POST 102400 {}", sha256_hex(&body)));
}

/// Over userspace TLS the spool works the same: the app's bytes are spliced into the file
/// (the app's side is plain TCP), and the client gets the rest read from the file and
/// encrypted (path `tls_buffered`).
#[test]
fn a_slow_tls_reader_frees_the_app_and_gets_every_byte() {
    use common::tls::*;
    use std::io::{Read, Write};

    let files = tempfile::tempdir().unwrap();
    let spool_dir = tempfile::tempdir().unwrap();
    let certs = gen_cert(files.path(), "localhost");
    let path = files.path().join("big.bin");
    let len = 32 * MIB;
    let pattern = pattern_file(&path, len, 11);
    let app = App::start();
    let toml = spool_config(&app, spool_dir.path()).to_toml()
        + &TlsSection::new(&certs).ktls("off").to_toml();
    let server = TlsServer::start(&toml, 1);
    let before = server.metrics();
    let target = format!("/file?path={}", qenc(path.to_str().unwrap()));

    let mut tls = tls_connect(server.https(), &client_config());
    tls.write_all(&req("GET", &target, &[])).unwrap();
    // The head and a first piece, then nothing while the app writes the rest.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let head_end = loop {
        let n = tls.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the head");
        got.extend_from_slice(&buf[..n]);
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains(&format!("content-length: {len}\r\n"))
            || head.contains(&format!("Content-Length: {len}\r\n")),
        "{head}"
    );
    poll_until("the app to finish writing the body", DEADLINE, || {
        app.events()
            .iter()
            .any(|e| e.event == "sent" && e.json["target"] == target.as_str())
            .then_some(())
    });
    assert_eq!(server.metrics().get("ferry_spool_files_open", &[]), 1.0);

    let mut body = got.split_off(head_end);
    while (body.len() as u64) < len {
        let n = tls.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {} of {len} bytes", body.len());
        body.extend_from_slice(&buf[..n]);
    }
    assert_eq!(body.len() as u64, len);
    assert!(
        pattern.matches(0, &body, &mut Vec::new()),
        "the body differs from the file"
    );
    let done = wait_delta(
        &server,
        &before,
        "ferry_responses_total",
        &[("source", "upstream"), ("path", "tls_buffered")],
        1.0,
    );
    assert_eq!(done, 1.0);
    let after = server.metrics();
    let spooled = after.get("ferry_spool_bytes_total", &[("direction", "response")])
        - before.get("ferry_spool_bytes_total", &[("direction", "response")]);
    assert!(spooled > (len / 2) as f64, "spooled {spooled}");
    assert_eq!(after.get("ferry_spool_files_open", &[]), 0.0);
}

/// An HTTP/2 stream whose client reads slowly (curl --limit-rate) has the rest of its body
/// spooled too, and gets it whole.
#[test]
fn a_slow_http2_reader_gets_the_rest_from_the_spool() {
    use common::tls::*;

    let files = tempfile::tempdir().unwrap();
    let spool_dir = tempfile::tempdir().unwrap();
    let certs = gen_cert(files.path(), "localhost");
    let path = files.path().join("big.bin");
    let len = 8 * MIB;
    pattern_file(&path, len, 12);
    let app = App::start();
    let toml = spool_config(&app, spool_dir.path()).to_toml() + &TlsSection::new(&certs).to_toml();
    let server = TlsServer::start(&toml, 1);
    let before = server.metrics();
    let out = files.path().join("out.bin");
    let target = format!("/file?path={}", qenc(path.to_str().unwrap()));
    let got = server.curl(&[
        "--http2",
        "--limit-rate",
        "4M",
        "-o",
        out.to_str().unwrap(),
        "-w",
        "%{http_code} %{http_version}",
        &server.url(&target),
    ]);
    assert!(got.status.success(), "curl: {got:?}");
    assert_eq!(String::from_utf8_lossy(&got.stdout), "200 2");
    assert_eq!(
        sha256_hex(&std::fs::read(&out).unwrap()),
        sha256_hex(&std::fs::read(&path).unwrap()),
        "the body differs from the file"
    );
    let done = wait_delta(
        &server,
        &before,
        "ferry_responses_total",
        &[("source", "upstream")],
        1.0,
    );
    assert_eq!(done, 1.0);
    let after = server.metrics();
    let spooled = after.get("ferry_spool_bytes_total", &[("direction", "response")])
        - before.get("ferry_spool_bytes_total", &[("direction", "response")]);
    assert!(spooled > 0.0, "nothing spooled for a slow HTTP/2 reader");
    assert_eq!(after.get("ferry_spool_files_open", &[]), 0.0);
}

/// A chunked body from the app is spooled too (after decoding), and reaches a slow client
/// whole and re-framed; the connection then serves another request.
#[test]
fn a_slow_reader_of_a_chunked_body_frees_the_app_and_gets_it_whole() {
    let files = tempfile::tempdir().unwrap();
    let spool_dir = tempfile::tempdir().unwrap();
    let path = files.path().join("big.bin");
    let len = 32 * MIB;
    pattern_file(&path, len, 13);
    let app = App::start();
    let server = spool_config(&app, spool_dir.path()).start();
    let before = server.metrics();
    let target = format!(
        "/file?path={}&mode=chunked&chunk=65536",
        qenc(path.to_str().unwrap())
    );
    let mut c = Conn::connect_small_rcvbuf(server.addr(), 64 * 1024);
    c.send(&req("GET", &target, &[]));
    let head = c.read_head();
    assert_eq!(head.status, 200);
    assert!(head.is_chunked());
    poll_until(
        "the app to finish writing the chunked body",
        DEADLINE,
        || {
            app.events()
                .iter()
                .any(|e| e.event == "sent" && e.json["target"] == target.as_str())
                .then_some(())
        },
    );
    assert_eq!(server.metrics().get("ferry_spool_files_open", &[]), 1.0);
    let body = c.read_body(&head, "GET").unwrap();
    assert_eq!(body.len() as u64, len);
    assert!(
        body == std::fs::read(&path).unwrap(),
        "the body differs from the file"
    );
    let after = server.metrics();
    let spooled = after.get("ferry_spool_bytes_total", &[("direction", "response")])
        - before.get("ferry_spool_bytes_total", &[("direction", "response")]);
    assert!(spooled >= (len / 2) as f64, "spooled {spooled}");
    // Kept alive: the next request on the same connection is answered.
    let r = c.get("/echo?after=chunked", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(after.get("ferry_spool_files_open", &[]), 0.0);
}

/// Past `spool.max_file_size` a response is not spooled: it is relayed at the client's pace
/// as without a spool, counted in `ferry_spool_skipped_total{reason="file_size"}`, and still
/// arrives whole.
#[test]
fn a_body_over_the_spool_file_limit_is_relayed_and_counted() {
    let files = tempfile::tempdir().unwrap();
    let spool_dir = tempfile::tempdir().unwrap();
    let path = files.path().join("big.bin");
    let len = 16 * MIB;
    let pattern = pattern_file(&path, len, 14);
    let app = App::start();
    let server = ProxyConfig::new(&app.address)
        .extra(&format!(
            "[spool]\ndir = {:?}\nmax_file_size = \"1MiB\"\n",
            spool_dir.path().to_str().unwrap()
        ))
        .start();
    let before = server.metrics();
    let target = format!("/file?path={}", qenc(path.to_str().unwrap()));
    let mut c = Conn::connect_small_rcvbuf(server.addr(), 64 * 1024);
    c.send(&req("GET", &target, &[]));
    let head = c.read_head();
    assert_eq!(head.status, 200);
    // Stalled long enough for ferry to look for a spool file (the skip is counted then).
    let skipped = wait_delta(
        &server,
        &before,
        "ferry_spool_skipped_total",
        &[("reason", "file_size")],
        1.0,
    );
    assert_eq!(skipped, 1.0);
    expect_pattern_body(&mut c, &pattern, 0, len, "relayed past the limit");
    let after = server.metrics();
    let spooled = after.get("ferry_spool_bytes_total", &[("direction", "response")])
        - before.get("ferry_spool_bytes_total", &[("direction", "response")]);
    assert_eq!(spooled, 0.0);
}

/// An HTTP/2 request body goes through the same collector: past `request_memory` into a
/// spool file, and to the app with a Content-Length, byte for byte.
#[test]
fn an_http2_upload_is_spooled_and_reaches_the_app_whole() {
    use common::tls::*;

    let files = tempfile::tempdir().unwrap();
    let spool_dir = tempfile::tempdir().unwrap();
    let certs = gen_cert(files.path(), "localhost");
    let body = random_bytes(21, 1024 * 1024);
    let upload = files.path().join("upload.bin");
    std::fs::write(&upload, &body).unwrap();
    let app = App::start();
    let toml = spool_config(&app, spool_dir.path()).to_toml() + &TlsSection::new(&certs).to_toml();
    let server = TlsServer::start(&toml, 1);
    let before = server.metrics();
    let data = format!("@{}", upload.to_str().unwrap());
    let got = server.curl(&[
        "--http2",
        "--data-binary",
        &data,
        "-w",
        "\n%{http_code} %{http_version}",
        &server.url("/echo?h2=upload"),
    ]);
    assert!(got.status.success(), "curl: {got:?}");
    let text = String::from_utf8_lossy(&got.stdout).to_string();
    assert_eq!(
        text,
        format!("ok POST {} {}\n200 2", body.len(), sha256_hex(&body))
    );
    let seen = app.wait_request("/echo?h2=upload");
    assert_eq!(
        seen.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    let after = server.metrics();
    let spooled = after.get("ferry_spool_bytes_total", &[("direction", "request")])
        - before.get("ferry_spool_bytes_total", &[("direction", "request")]);
    assert_eq!(spooled, body.len() as f64);
}

/// `X-Accel-Buffering: no` from the app (as nginx honours it, for streams of events) keeps
/// its response out of the spool: beside a stalled client of a buffered response, which is
/// spooled, a stalled client of an unbuffered one holds its app connection.
#[test]
fn x_accel_buffering_no_keeps_a_response_out_of_the_spool() {
    let files = tempfile::tempdir().unwrap();
    let spool_dir = tempfile::tempdir().unwrap();
    let path = files.path().join("big.bin");
    let len = 16 * MIB;
    let pattern = pattern_file(&path, len, 15);
    let app = App::start();
    let server = spool_config(&app, spool_dir.path()).start();
    let file = qenc(path.to_str().unwrap());
    let unbuffered = format!("/file?path={file}&h=X-Accel-Buffering:no");
    let buffered = format!("/file?path={file}");
    // The unbuffered client stalls first, so it has stalled at least as long as the other.
    let mut slow = Conn::connect_small_rcvbuf(server.addr(), 64 * 1024);
    slow.send(&req("GET", &unbuffered, &[]));
    let head = slow.read_head();
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("x-accel-buffering"),
        None,
        "X-Accel-* never reach clients"
    );
    let mut other = Conn::connect_small_rcvbuf(server.addr(), 64 * 1024);
    other.send(&req("GET", &buffered, &[]));
    assert_eq!(other.read_head().status, 200);
    let sent = |target: &str| {
        app.events()
            .iter()
            .any(|e| e.event == "sent" && e.json["target"] == target)
    };
    poll_until("the buffered body to be spooled", DEADLINE, || {
        sent(&buffered).then_some(())
    });
    assert!(
        !sent(&unbuffered),
        "the unbuffered body was taken off the app"
    );
    assert_eq!(server.metrics().get("ferry_spool_files_open", &[]), 1.0);
    expect_pattern_body(&mut slow, &pattern, 0, len, "unbuffered");
    expect_pattern_body(&mut other, &pattern, 0, len, "buffered");
}
