//! HTTP/1.x connection semantics: keep-alive, pipelining, HTTP/1.0, and hostile input.
mod common;

use common::*;
use std::fs;

const HELLO: &[u8] = b"Hello, ferry!\n";

struct Fx {
    _tmp: TempDir,
    server: Server,
    big: Vec<Vec<u8>>,
}

fn setup() -> Fx {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("hello.txt"), HELLO).unwrap();
    let mut big = Vec::new();
    for i in 0..3u64 {
        let data = random_bytes(100 + i, (MIB + 13 * i) as usize);
        fs::write(tmp.path().join(format!("big{i}.bin")), &data).unwrap();
        big.push(data);
    }
    let server = Server::start(&Config::static_root(tmp.path()));
    Fx {
        _tmp: tmp,
        server,
        big,
    }
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let fx = setup();
    let mut c = fx.server.connect();
    for i in 0..5 {
        let r = c.get("/static/hello.txt", &[]);
        assert_eq!((r.status, r.body.as_slice()), (200, HELLO), "request {i}");
        assert!(
            !r.header("connection")
                .unwrap_or("")
                .eq_ignore_ascii_case("close"),
            "request {i} announced close"
        );
    }
    let r = c.get("/static/big1.bin", &[]);
    assert_eq!(r.body, fx.big[1]);
}

#[test]
fn pipelined_requests_answered_in_order() {
    let fx = setup();
    let mut c = fx.server.connect();
    let mut batch = Vec::new();
    batch.extend(req("GET", "/static/big0.bin", &[]));
    batch.extend(req("GET", "/static/hello.txt", &[]));
    batch.extend(req("HEAD", "/static/big2.bin", &[]));
    batch.extend(req("GET", "/static/missing", &[]));
    batch.extend(req("GET", "/static/big1.bin", &[("Range", "bytes=10-19")]));
    batch.extend(req("GET", "/static/big2.bin", &[]));
    c.send(&batch);
    let r = c.read_response("GET");
    assert_eq!((r.status, r.body == fx.big[0]), (200, true), "1st");
    let r = c.read_response("GET");
    assert_eq!((r.status, r.body.as_slice()), (200, HELLO), "2nd");
    let r = c.read_response("HEAD");
    assert_eq!(
        (r.status, r.content_length()),
        (200, Some(fx.big[2].len() as u64)),
        "3rd (HEAD)"
    );
    let r = c.read_response("GET");
    assert_eq!(r.status, 404, "4th");
    let r = c.read_response("GET");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (206, &fx.big[1][10..20]),
        "5th"
    );
    let r = c.read_response("GET");
    assert_eq!((r.status, r.body == fx.big[2]), (200, true), "6th");
    // and the connection is still usable
    assert_eq!(c.get("/static/hello.txt", &[]).body, HELLO);
}

#[test]
fn connection_close_is_honoured() {
    let fx = setup();
    let mut c = fx.server.connect();
    let r = c.get("/static/hello.txt", &[("Connection", "close")]);
    assert_eq!((r.status, r.body.as_slice()), (200, HELLO));
    c.expect_closed("after Connection: close");
}

#[test]
fn http10_closes_by_default() {
    let fx = setup();
    let mut c = fx.server.connect();
    c.send(b"GET /static/hello.txt HTTP/1.0\r\n\r\n");
    let r = c.read_response("GET");
    assert_eq!((r.status, r.body.as_slice()), (200, HELLO));
    c.expect_closed("HTTP/1.0 without keep-alive");
}

#[test]
fn http10_keep_alive() {
    let fx = setup();
    let mut c = fx.server.connect();
    for i in 0..3 {
        c.send(b"GET /static/hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = c.read_response("GET");
        assert_eq!((r.status, r.body.as_slice()), (200, HELLO), "request {i}");
        assert!(
            r.header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")),
            "HTTP/1.0 keep-alive response must say Connection: keep-alive, got {:?}",
            r.header("connection")
        );
    }
    c.send(b"GET /static/hello.txt HTTP/1.0\r\n\r\n");
    assert_eq!(c.read_response("GET").body, HELLO);
    c.expect_closed("HTTP/1.0 without keep-alive after keep-alive requests");
}

/// Sends `payload` on a fresh connection; expects `status` and then the connection closed.
fn expect_rejected(server: &Server, what: &str, payload: &[u8], status: u16) -> Result<(), String> {
    let mut c = server.connect();
    // the server may respond and close before it has read everything; ignore write errors
    let _ = c.try_send(payload);
    let r = match c.try_read_response("GET") {
        Ok(r) => r,
        Err(e) => return Err(format!("{what}: no response ({e})")),
    };
    if r.status != status {
        return Err(format!("{what}: status {} (want {status})", r.status));
    }
    c.closed_state()
        .map_err(|e| format!("{what}: {status} but connection not closed: {e}"))
}

fn corpus() -> Vec<(&'static str, Vec<u8>, u16)> {
    let mut v: Vec<(&'static str, Vec<u8>, u16)> = Vec::new();
    let mut long_line = b"GET /static/".to_vec();
    long_line.extend(std::iter::repeat_n(b'a', 16 * 1024 + 512));
    v.push(("request line > 16 KiB without end", long_line, 414));
    let mut big_head = b"GET /static/hello.txt HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..40 {
        big_head.extend(format!("X-Filler-{i}: {}\r\n", "v".repeat(500)).bytes());
    }
    big_head.extend(b"\r\n");
    v.push(("head > 16 KiB", big_head, 431));
    let mut many = b"GET /static/hello.txt HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..101 {
        many.extend(format!("X-H{i}: v\r\n").bytes());
    }
    many.extend(b"\r\n");
    v.push(("more than 100 headers", many, 431));
    let simple: [(&'static str, &[u8], u16); 11] = [
        ("header without colon", b"GET /static/hello.txt HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400),
        ("space before colon", b"GET /static/hello.txt HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        ("invalid method token", b"G(T /static/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("garbage request line", b"\x01\x02\x03 nonsense\r\n\r\n", 400),
        ("non-numeric Content-Length", b"GET /static/hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (
            "Content-Length with Transfer-Encoding",
            b"GET /static/hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            "two differing Content-Length",
            b"GET /static/hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            400,
        ),
        (
            "Transfer-Encoding not ending in chunked",
            b"GET /static/hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            400,
        ),
        ("Transfer-Encoding gzip only", b"GET /static/hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        ("bare LF line endings", b"GET /static/hello.txt HTTP/1.1\nHost: x\n\n", 400),
        ("HTTP/1.1 without Host", b"GET /static/hello.txt HTTP/1.1\r\n\r\n", 400),
    ];
    for (what, p, s) in simple {
        v.push((what, p.to_vec(), s));
    }
    v
}

#[test]
fn hostile_input_gets_status_and_close() {
    let fx = setup();
    let failures: Vec<String> = corpus()
        .iter()
        .filter_map(|(what, payload, status)| {
            expect_rejected(&fx.server, what, payload, *status).err()
        })
        .collect();
    // the server survives all of it
    assert_eq!(
        fx.server.get("/static/hello.txt").body,
        HELLO,
        "server still serves after the corpus"
    );
    assert!(
        failures.is_empty(),
        "hostile input failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn bad_request_after_good_one_on_same_connection() {
    let fx = setup();
    let mut c = fx.server.connect();
    let mut batch = req("GET", "/static/hello.txt", &[]);
    batch.extend(b"GET /static/hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    batch.extend(req("GET", "/static/hello.txt", &[]));
    c.send(&batch);
    assert_eq!(c.read_response("GET").body, HELLO);
    assert_eq!(c.read_response("GET").status, 400);
    // the request after the bad one must not be answered
    c.expect_closed("after 400 in a pipeline");
}

#[test]
fn random_garbage_never_breaks_the_server() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config as PtConfig, TestRunner};
    let fx = setup();
    let mut runner = TestRunner::new(PtConfig {
        cases: 48,
        ..PtConfig::default()
    });
    let strat = proptest::collection::vec(any::<u8>(), 1..2048);
    runner
        .run(&strat, |mut bytes| {
            bytes.extend_from_slice(b"\r\n\r\n");
            let mut c = fx.server.connect();
            let _ = c.try_send(&bytes);
            // either a well-formed error response or a close; never a hang, never a 2xx
            match c.try_read_head() {
                Ok(Some(r)) => {
                    prop_assert!((400..600).contains(&r.status), "garbage got {}", r.status)
                }
                Ok(None) => {}
                Err(e) => prop_assert!(is_closed_err(&e), "garbage: {}", e),
            }
            let r = fx.server.get("/static/hello.txt");
            prop_assert_eq!(r.body.as_slice(), HELLO);
            Ok(())
        })
        .unwrap();
}
