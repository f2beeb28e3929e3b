//! Protocol upgrades through the proxy: the app answers 101 Switching Protocols and echoes
//! every byte; ferry joins the two sockets (splice both ways) until either side closes.
mod common;

use common::app::*;
use common::*;
use std::io::{Read, Write};
use std::net::Shutdown;

/// The RFC 6455 §1.3 example key and its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn upgrade_request(target: &str) -> Vec<u8> {
    req(
        "GET",
        target,
        &[
            ("Connection", "keep-alive, Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", "13"),
        ],
    )
}

fn assert_101(r: &Response) {
    assert_eq!(r.status, 101, "{r:?}");
    assert_eq!(r.header_count("upgrade"), 1, "{:?}", r.headers);
    assert_eq!(r.header("upgrade"), Some("websocket"));
    assert_eq!(r.header_count("connection"), 1, "{:?}", r.headers);
    assert!(
        r.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("upgrade")),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("sec-websocket-accept"), Some(ACCEPT));
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.header("transfer-encoding"), None);
    // Like every other answer: ferry's Server and Date, and the request's ID (the one the
    // app was sent), never the app's own.
    assert_eq!(r.header("server"), Some("ferry"), "{:?}", r.headers);
    assert_eq!(r.header_count("date"), 1, "{:?}", r.headers);
    assert_eq!(r.header_count("x-request-id"), 1, "{:?}", r.headers);
    let seen = r.header("x-seen-request-id");
    assert!(seen.is_some_and(|id| id != "-"), "{:?}", r.headers);
    assert_eq!(r.header("x-request-id"), seen, "{:?}", r.headers);
}

/// Writes `msg` from another thread while reading its echo here (so neither side's socket
/// buffers need to hold the whole message); returns what came back.
fn echo(c: &mut Conn, msg: &[u8]) -> Vec<u8> {
    let mut w = c.stream.try_clone().unwrap();
    let owned = msg.to_vec();
    let writer = std::thread::spawn(move || w.write_all(&owned));
    let mut got = vec![0u8; msg.len()];
    let mut at = 0;
    while at < got.len() {
        match c.read_some(&mut got[at..]) {
            Ok(0) => panic!("EOF after {at} of {} echoed bytes", msg.len()),
            Ok(n) => at += n,
            Err(e) => panic!("reading the echo after {at} of {} bytes: {e}", msg.len()),
        }
    }
    writer.join().unwrap().expect("writing the message");
    got
}

#[test]
fn websocket_upgrade_echoes_every_byte_until_close() {
    let app = App::start();
    let server = ProxyConfig::new(&app.address).start();
    let base = server.metrics();
    let mut c = server.connect();
    c.send(&upgrade_request("/ws"));
    let r = c.read_head();
    assert_101(&r);

    let big = random_bytes(61, MIB as usize);
    let messages: Vec<Vec<u8>> = vec![
        b"hello".to_vec(),
        vec![0u8; 1],
        b"GET /not-a-request HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        big,
        random_bytes(62, 70_001),
        b"bye".to_vec(),
    ];
    let mut total = 0;
    for (i, m) in messages.iter().enumerate() {
        let back = echo(&mut c, m);
        assert!(
            back == *m,
            "message {i} ({} bytes) came back different",
            m.len()
        );
        total += m.len();
    }

    // what the app was asked: the upgrade headers of this hop, set by ferry
    let seen = app.wait_request("/ws");
    assert_eq!(seen.header_all("upgrade"), ["websocket"]);
    assert!(
        seen.header_all("connection")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("upgrade")),
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.header_all("sec-websocket-key"), [KEY]);
    assert_eq!(seen.header_all("sec-websocket-version"), ["13"]);

    // the client closes its sending side: the app sees EOF, having echoed everything
    c.stream.shutdown(Shutdown::Write).unwrap();
    let eof = app.wait_event("eof", |e| e.conn == seen.conn);
    assert_eq!(
        eof.json["received"].as_u64(),
        Some(total as u64),
        "bytes the app echoed"
    );
    // ... and then the app's close reaches the client
    let mut rest = Vec::new();
    match c.stream.read_to_end(&mut rest) {
        Ok(_) => assert!(
            rest.is_empty(),
            "unexpected bytes after the echo: {}",
            rest.len()
        ),
        Err(e) => assert!(is_closed_err(&e), "waiting for the close: {e}"),
    }
    drop(c);

    let d = wait_delta(
        &server,
        &base,
        "ferry_responses_total",
        &[("path", "splice"), ("source", "upstream"), ("code", "1xx")],
        1.0,
    );
    assert_eq!(
        d, 1.0,
        "responses_total{{path=splice,source=upstream,code=1xx}} delta"
    );
}

#[test]
fn client_closing_the_tunnel_reaches_the_app() {
    let app = App::start();
    let server = ProxyConfig::new(&app.address).start();
    let base = server.metrics();
    let mut c = server.connect();
    c.send(&upgrade_request("/ws?drop=1"));
    assert_101(&c.read_head());
    assert_eq!(echo(&mut c, b"ping"), b"ping");
    let seen = app.wait_request("/ws?drop=1");
    drop(c); // a full close, not a half-close
    let eof = app.wait_event("eof", |e| e.conn == seen.conn);
    assert_eq!(eof.json["received"].as_u64(), Some(4));
    let d = wait_delta(
        &server,
        &base,
        "ferry_responses_total",
        &[("path", "splice"), ("source", "upstream"), ("code", "1xx")],
        1.0,
    );
    assert_eq!(
        d, 1.0,
        "responses_total{{path=splice,source=upstream,code=1xx}} delta"
    );
}

#[test]
fn bytes_sent_right_behind_the_upgrade_request_are_not_lost() {
    let app = App::start();
    let server = ProxyConfig::new(&app.address).start();
    let mut c = server.connect();
    let mut bytes = upgrade_request("/ws?early=1");
    bytes.extend_from_slice(b"early bytes");
    c.send(&bytes);
    assert_101(&c.read_head());
    let mut got = vec![0u8; 11];
    let mut at = 0;
    while at < got.len() {
        match c.read_some(&mut got[at..]) {
            Ok(0) => panic!("EOF after {at} echoed bytes"),
            Ok(n) => at += n,
            Err(e) => panic!("reading the echo: {e}"),
        }
    }
    assert_eq!(got, b"early bytes");
    assert_eq!(echo(&mut c, b"later"), b"later");
}

#[test]
fn an_upgrade_the_app_declines_stays_http() {
    let app = App::start();
    let server = ProxyConfig::new(&app.address).start();
    let mut c = server.connect();
    c.send(&upgrade_request("/echo?declined"));
    let r = c.read_response("GET");
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("ok GET 0 "));
    let seen = app.wait_request("/echo?declined");
    assert_eq!(
        seen.header_all("upgrade"),
        ["websocket"],
        "the upgrade was offered"
    );
    // the connection goes on as HTTP/1.1
    let r = c.get("/echo?after-declined", &[]);
    assert_eq!(r.status, 200);
}

#[test]
fn a_101_nobody_asked_for_is_a_bad_gateway() {
    let app = App::start();
    let server = ProxyConfig::new(&app.address).start();
    let r = server.get(&raw_target(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nraw bytes",
    ));
    assert_eq!(r.status, 502);
    assert!(!r.text().contains("raw bytes"));
}
