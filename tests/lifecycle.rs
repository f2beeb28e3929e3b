//! Connection lifecycle: timeouts, connection limits, graceful shutdown, aborted downloads
//! (no fd leaks), health endpoints, metrics series and the access log.
mod common;

use common::*;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const HELLO: &[u8] = b"Hello, ferry!\n";
const BIG: u64 = 64 * MIB;

fn fixture(big: bool) -> (TempDir, Option<Pattern>) {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("hello.txt"), HELLO).unwrap();
    fs::create_dir(tmp.path().join("dir")).unwrap();
    fs::write(tmp.path().join("dir/index.html"), b"<p>i</p>\n").unwrap();
    let p = big.then(|| pattern_file(&tmp.path().join("big.bin"), BIG, 5));
    (tmp, p)
}

fn cfg(root: &Path) -> Config {
    Config::static_root(root)
}

/// Status of GET `target` on `addr`, or None if the connection failed / was closed / timed out.
fn try_status(addr: SocketAddr, target: &str, timeout: Duration) -> Option<u16> {
    let s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    let mut c = Conn::from_stream(s);
    c.stream.set_read_timeout(Some(timeout)).ok()?;
    c.try_send(&req("GET", target, &[("Connection", "close")]))
        .ok()?;
    c.try_read_response("GET").ok().map(|r| r.status)
}

#[test]
fn header_timeout_closes_stalled_head_while_others_are_served() {
    let (tmp, _) = fixture(false);
    let mut c = cfg(tmp.path());
    c.header_timeout = "1s".into();
    let server = Server::start(&c);
    let mut slow = server.connect();
    slow.send(b"GET /static/hello.txt HTTP/1.1\r\nHost: x\r\n");
    let r = server.get("/static/hello.txt");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, HELLO),
        "another client while a head is stalled"
    );
    match slow.try_read_head() {
        Ok(None) => {}
        Ok(Some(r)) => {
            assert_eq!(
                r.status, 408,
                "a stalled head may only get 408 before the close"
            );
            slow.read_body(&r, "GET").expect("408 body");
            slow.expect_closed("after 408");
        }
        Err(e) => assert!(is_closed_err(&e), "stalled head was not closed: {e}"),
    }
}

#[test]
fn header_timeout_covers_the_whole_head_not_each_read() {
    drip_feed_is_cut_off(false);
}

#[test]
fn header_timeout_applies_to_later_requests_on_a_connection() {
    drip_feed_is_cut_off(true);
}

/// Drips a head one byte at a time (optionally after one served request on the same
/// connection) and expects ferry to close long before the head is complete.
fn drip_feed_is_cut_off(after_a_request: bool) {
    let (tmp, _) = fixture(false);
    let mut c = cfg(tmp.path());
    c.header_timeout = "1s".into();
    let server = Server::start(&c);
    let mut conn = server.connect();
    if after_a_request {
        assert_eq!(conn.get("/static/hello.txt", &[]).body, HELLO);
    }
    let mut writer = conn.stream.try_clone().unwrap();
    let closed = Arc::new(AtomicBool::new(false));
    let closed2 = closed.clone();
    let mut reader = conn.stream;
    let t = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut b = [0u8; 4096];
        loop {
            match reader.read(&mut b) {
                Ok(0) => {
                    closed2.store(true, Ordering::SeqCst);
                    break;
                }
                Ok(n) => got.extend_from_slice(&b[..n]),
                Err(e) => {
                    closed2.store(is_closed_err(&e), Ordering::SeqCst);
                    break;
                }
            }
        }
        got
    });
    // drip one byte every 100 ms: ~6 s for the whole head, far beyond header_timeout = 1s
    let head = b"GET /static/hello.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: drip\r\n\r\n";
    let mut sent = 0;
    for &byte in head.iter() {
        if closed.load(Ordering::SeqCst) || writer.write_all(&[byte]).is_err() {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(100)); // pacing, not synchronisation
    }
    let got = t.join().unwrap();
    assert!(
        !got.starts_with(b"HTTP/1.1 200"),
        "a dripped head was served"
    );
    assert!(
        sent < head.len(),
        "the whole dripped head was accepted (sent {sent} bytes)"
    );
    assert!(closed.load(Ordering::SeqCst), "connection was not closed");
}

#[test]
fn keepalive_timeout_closes_idle_connections() {
    let (tmp, _) = fixture(false);
    let mut c = cfg(tmp.path());
    c.keepalive_timeout = "1s".into();
    let server = Server::start(&c);
    let mut conn = server.connect();
    assert_eq!(conn.get("/static/hello.txt", &[]).body, HELLO);
    conn.expect_closed("idle keep-alive connection after keepalive_timeout");
}

#[test]
fn max_connections_reached_then_recovers() {
    let (tmp, _) = fixture(false);
    let mut c = cfg(tmp.path());
    c.max_connections = 4;
    let mut server = Server::start(&c);
    let mut open: Vec<Conn> = (0..4).map(|_| server.connect()).collect();
    for c in open.iter_mut() {
        assert_eq!(c.get("/static/hello.txt", &[]).body, HELLO);
    }
    // one over the limit: it may wait or be closed; we only require ferry to keep running
    let mut extra = server.connect();
    let _ = extra.try_send(&req("GET", "/static/hello.txt", &[]));
    assert!(
        server.try_wait().is_none(),
        "ferry exited at max_connections"
    );
    drop(open);
    drop(extra);
    let addr = server.addr();
    poll_until(
        "a new client is served after the connections closed",
        DEADLINE,
        || {
            (try_status(addr, "/static/hello.txt", Duration::from_secs(2)) == Some(200))
                .then_some(())
        },
    );
    assert!(server.try_wait().is_none(), "ferry exited");
}

/// The limit is shared by every accept loop (one per connection worker, each on its own
/// SO_REUSEPORT socket): with room for one connection, one client after another is served,
/// whichever worker's socket the kernel hands each to. (When a loop took its permit before
/// accepting, the permit could sit with a loop whose socket stayed empty while the client
/// waited in the other socket's backlog: about one client in two, on two cores.)
#[test]
fn max_connections_is_shared_by_every_accepting_worker() {
    let (tmp, _) = fixture(false);
    let mut c = cfg(tmp.path());
    c.max_connections = 1;
    let server = Server::start(&c);
    for round in 0..8 {
        // The previous client has closed; ferry frees its permit when it sees that, and this
        // one is served then at the latest.
        let mut conn = server.connect();
        let response = conn.get("/static/hello.txt", &[("Connection", "close")]);
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, HELLO),
            "client {round}"
        );
    }
}

/// At the limit an idle keep-alive connection makes room for a new client at once (nginx's
/// "reusing connections"), the one idle longest first, and the others go on. The keep-alive
/// timeout is 300 s, so without reclaiming the new client would wait that long: its read
/// gives up after IO_TIMEOUT and the test fails.
#[test]
fn max_connections_closes_the_oldest_idle_connection_for_a_new_client() {
    let (tmp, _) = fixture(false);
    let mut c = cfg(tmp.path());
    c.max_connections = 4;
    c.keepalive_timeout = "300s".into();
    let server = Server::start(&c);
    let base = server.metrics();
    let mut open: Vec<Conn> = (0..4).map(|_| server.connect()).collect();
    for conn in open.iter_mut() {
        assert_eq!(conn.get("/static/hello.txt", &[]).body, HELLO);
    }
    // The others go idle again, well after the first one did: it went idle in the same
    // step of its task that wrote the response it read, long before these requests.
    for conn in open[1..].iter_mut() {
        assert_eq!(conn.get("/static/hello.txt", &[]).body, HELLO);
    }
    let mut fresh = server.connect();
    let r = fresh.get("/static/hello.txt", &[("Connection", "close")]);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, HELLO),
        "a new client at max_connections with every connection idle"
    );
    fresh.expect_closed("the new client asked for close");
    drop(fresh);
    open[0].expect_closed("the connection idle longest, closed to make room");
    for (i, conn) in open[1..].iter_mut().enumerate() {
        let r = conn.get("/static/hello.txt", &[]);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, HELLO),
            "idle connection {} after the oldest was closed",
            i + 1
        );
    }
    let d = wait_delta(
        &server,
        &base,
        "ferry_connections_reclaimed_total",
        &[],
        1.0,
    );
    assert_eq!(d, 1.0, "ferry_connections_reclaimed_total delta");
}

/// A connection in the middle of a response is never closed to make room: at the limit with
/// one connection downloading and one idle, the idle one is closed for the new client; with
/// every connection downloading, a new client waits until one of them is done and idle, and
/// then gets its place (no keep-alive timeout involved: it is 300 s). Both downloads arrive
/// whole.
#[test]
fn max_connections_never_closes_a_busy_connection() {
    let (tmp, pattern) = fixture(true);
    let pattern = pattern.unwrap();
    let mut c = cfg(tmp.path());
    c.max_connections = 2;
    c.keepalive_timeout = "300s".into();
    let server = Server::start(&c);
    let base = server.metrics();
    // Starts a download that ferry cannot finish until the test reads it: a small receive
    // buffer and 64 MiB to send.
    let start_download = || {
        let mut conn = Conn::connect_small_rcvbuf(server.addr(), 64 * 1024);
        conn.send(&req("GET", "/static/big.bin", &[]));
        let r = conn.read_head();
        assert_eq!((r.status, r.content_length()), (200, Some(BIG)));
        conn
    };
    let mut busy = start_download();
    let mut idle = server.connect();
    assert_eq!(idle.get("/static/hello.txt", &[]).body, HELLO);

    let mut fresh = server.connect();
    let r = fresh.get("/static/hello.txt", &[("Connection", "close")]);
    assert_eq!((r.status, r.body.as_slice()), (200, HELLO), "new client");
    idle.expect_closed("the idle connection, closed to make room");
    drop(fresh);

    // Both places busy now; the next client waits for one of them.
    let mut other = start_download();
    let mut waiting = server.connect();
    waiting.send(&req("GET", "/static/hello.txt", &[("Connection", "close")]));
    expect_pattern_body(&mut busy, &pattern, 0, BIG, "first download");
    let r = waiting.read_response("GET");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, HELLO),
        "the waiting client, once a download was done"
    );
    busy.expect_closed("the finished download's connection, idle, closed to make room");
    expect_pattern_body(&mut other, &pattern, 0, BIG, "second download");
    let d = wait_delta(
        &server,
        &base,
        "ferry_connections_reclaimed_total",
        &[],
        2.0,
    );
    assert_eq!(d, 2.0, "ferry_connections_reclaimed_total delta");
}

/// A connection with part of a request head in is not idle: at the limit the idle connection
/// is closed for the new client instead, although the other went idle first, and the head
/// then completes and is answered.
#[test]
fn max_connections_never_closes_a_connection_with_part_of_a_head() {
    let (tmp, _) = fixture(false);
    let mut c = cfg(tmp.path());
    c.max_connections = 2;
    c.keepalive_timeout = "300s".into();
    c.header_timeout = "300s".into();
    let server = Server::start(&c);
    let mut partial = server.connect();
    assert_eq!(partial.get("/static/hello.txt", &[]).body, HELLO);
    // Sent before the other connection's whole exchange below, so read by ferry long before
    // the new client arrives.
    partial.send(b"GET /static/hello.txt HTTP/1.1\r\nHost: x\r\n");
    let mut idle = server.connect();
    assert_eq!(idle.get("/static/hello.txt", &[]).body, HELLO);
    let mut fresh = server.connect();
    let r = fresh.get("/static/hello.txt", &[("Connection", "close")]);
    assert_eq!((r.status, r.body.as_slice()), (200, HELLO), "new client");
    idle.expect_closed("the idle connection, closed to make room");
    partial.send(b"\r\n");
    let r = partial.read_response("GET");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, HELLO),
        "the connection that had part of a head in"
    );
}

fn shutdown_during_download(sig: &str) {
    let (tmp, pattern) = fixture(true);
    let pattern = pattern.unwrap();
    let mut server = Server::start(&cfg(tmp.path()));
    assert_eq!(server.admin_get("/readyz").status, 200);
    let mut c = Conn::connect_small_rcvbuf(server.addr(), 64 * 1024);
    c.send(&req("GET", "/static/big.bin", &[]));
    let r = c.read_head();
    assert_eq!((r.status, r.content_length()), (200, Some(BIG)));
    let mut first = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < first.len() {
        let n = c.read_some(&mut first[got..]).expect("read body");
        assert!(n > 0);
        got += n;
    }
    assert!(first == pattern.bytes(0, first.len()));

    server.signal(sig);
    let admin = server.admin;
    poll_until("/readyz answers 503 while draining", DEADLINE, || {
        (try_status(admin, "/readyz", Duration::from_secs(2)) == Some(503)).then_some(())
    });
    let addr = server.addr();
    poll_until(
        "new connections are refused after the signal",
        DEADLINE,
        || refused(addr).then_some(()),
    );
    // the in-flight download completes, byte-identical
    expect_pattern_body(
        &mut c,
        &pattern,
        got as u64,
        BIG - got as u64,
        &format!("download across SIG{sig}"),
    );
    c.expect_closed("download connection after drain");
    let st = server.wait_exit(Duration::from_secs(30));
    assert_eq!(st.code(), Some(0), "exit status after SIG{sig}: {st:?}");
}

#[test]
fn sigterm_drains_inflight_download() {
    shutdown_during_download("TERM");
}

#[test]
fn sigint_drains_inflight_download() {
    shutdown_during_download("INT");
}

#[test]
fn sigterm_closes_idle_keepalive_connection() {
    let (tmp, _) = fixture(false);
    let mut server = Server::start(&cfg(tmp.path()));
    let mut c = server.connect();
    assert_eq!(c.get("/static/hello.txt", &[]).body, HELLO);
    server.signal("TERM");
    c.expect_closed("idle keep-alive connection on SIGTERM");
    let st = server.wait_exit(Duration::from_secs(30));
    assert_eq!(st.code(), Some(0), "{st:?}");
}

#[test]
fn health_endpoints() {
    let (tmp, _) = fixture(false);
    let server = Server::start(&cfg(tmp.path()));
    assert_eq!(server.admin_get("/healthz").status, 200);
    assert_eq!(server.admin_get("/readyz").status, 200);
}

#[test]
fn aborted_downloads_leak_nothing() {
    let (tmp, _) = fixture(true);
    let server = Server::start(&cfg(tmp.path()).send_path("sendfile"));
    assert_eq!(server.get("/static/hello.txt").body, HELLO);
    let base = server.metrics();
    let baseline = server.fd_count();
    let addr = server.addr();
    for batch in 0..20 {
        let mut conns: Vec<Conn> = (0..50).map(|_| Conn::connect(addr)).collect();
        for c in conns.iter_mut() {
            c.send(&req("GET", "/static/big.bin", &[]));
        }
        for (i, c) in conns.iter_mut().enumerate() {
            let r = c.read_head();
            assert_eq!(r.status, 200, "batch {batch} client {i}");
            let mut buf = [0u8; 4096];
            let n = c.read_some(&mut buf).expect("read a few KiB");
            assert!(n > 0);
            if i % 2 == 1 {
                // abort with RST instead of FIN
                socket2::SockRef::from(&c.stream)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
            }
        }
        drop(conns);
    }
    let mut last = 0;
    let fds = poll_until("fd count back to baseline", DEADLINE, || {
        last = server.fd_count();
        (last <= baseline).then_some(last)
    });
    assert!(fds <= baseline, "fds {last} > baseline {baseline}");
    poll_until(
        "ferry_connections_active{transport=tcp} back to 0",
        DEADLINE,
        || {
            (server
                .metrics()
                .get("ferry_connections_active", &[("transport", "tcp")])
                == 0.0)
                .then_some(())
        },
    );
    let now = server.metrics();
    let total = now.get("ferry_connections_total", &[("transport", "tcp")])
        - base.get("ferry_connections_total", &[("transport", "tcp")]);
    assert!(
        total >= 1000.0,
        "ferry_connections_total delta {total} < 1000"
    );
    assert_eq!(server.get("/static/hello.txt").body, HELLO, "still serving");
}

#[test]
fn metrics_series_count_responses_and_connections() {
    let (tmp, _) = fixture(false);
    let server = Server::start(&cfg(tmp.path()));
    let base = server.metrics();
    assert!(
        base.get("process_open_fds", &[]) > 0.0,
        "process_open_fds missing"
    );
    let etag = server
        .get("/static/hello.txt")
        .header("etag")
        .expect("etag")
        .to_string(); // sendfile 2xx
    assert_eq!(server.request("HEAD", "/static/hello.txt", &[]).status, 200); // memory 2xx
    assert_eq!(server.get("/static/missing").status, 404); // memory 4xx
    assert_eq!(
        server
            .request("GET", "/static/hello.txt", &[("If-None-Match", &etag)])
            .status,
        304
    ); // memory 3xx
    assert_eq!(server.get("/static/dir").status, 301); // memory 3xx
    assert_eq!(
        server
            .request("POST", "/static/hello.txt", &[("Content-Length", "0")])
            .status,
        405
    ); // memory 4xx
    let resp = |path, code| [("path", path), ("source", "static"), ("code", code)];
    let mut failures = Vec::new();
    for (path, code, want) in [
        ("sendfile", "2xx", 1.0),
        ("memory", "2xx", 1.0),
        ("memory", "3xx", 2.0),
        ("memory", "4xx", 2.0),
    ] {
        let d = wait_delta(
            &server,
            &base,
            "ferry_responses_total",
            &resp(path, code),
            want,
        );
        if d != want {
            failures.push(format!("ferry_responses_total{{path={path},source=static,code={code}}} delta {d}, want {want}"));
        }
    }
    let d = wait_delta(
        &server,
        &base,
        "ferry_request_duration_seconds_count",
        &[("source", "static")],
        6.0,
    );
    if d != 6.0 {
        failures.push(format!(
            "ferry_request_duration_seconds_count{{source=static}} delta {d}, want 6"
        ));
    }
    let now = server.metrics();
    let inf = now.get(
        "ferry_request_duration_seconds_bucket",
        &[("source", "static"), ("le", "+Inf")],
    );
    if inf
        != now.get(
            "ferry_request_duration_seconds_count",
            &[("source", "static")],
        )
    {
        failures.push("histogram +Inf bucket != _count".into());
    }
    // connections: one open keep-alive connection is active; closed → 0
    let mut c = server.connect();
    assert_eq!(c.get("/static/hello.txt", &[]).body, HELLO);
    poll_until(
        "connections_active == 1 while a connection is open",
        DEADLINE,
        || {
            (server
                .metrics()
                .get("ferry_connections_active", &[("transport", "tcp")])
                == 1.0)
                .then_some(())
        },
    );
    drop(c);
    poll_until("connections_active == 0 after close", DEADLINE, || {
        (server
            .metrics()
            .get("ferry_connections_active", &[("transport", "tcp")])
            == 0.0)
            .then_some(())
    });
    let total = server
        .metrics()
        .get("ferry_connections_total", &[("transport", "tcp")])
        - base.get("ferry_connections_total", &[("transport", "tcp")]);
    if total != 7.0 {
        failures.push(format!(
            "ferry_connections_total{{transport=tcp}} delta {total}, want 7"
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// ferry's stdout: the access log and nothing else.
fn access_lines(server: &Server) -> Vec<String> {
    server.stdout_lines()
}

#[test]
fn access_log_json_one_line_per_response() {
    let (tmp, _) = fixture(false);
    let mut c = cfg(tmp.path());
    c.access_log = "json".into();
    let server = Server::start(&c);
    let get = server.get("/static/hello.txt");
    let head = server.request("HEAD", "/static/hello.txt", &[]);
    let missing = server.get("/static/missing");
    let range = server.request("GET", "/static/hello.txt", &[("Range", "bytes=0-4")]);
    assert_eq!(
        (get.status, head.status, missing.status, range.status),
        (200, 200, 404, 206)
    );
    let lines = poll_until("4 access log lines", DEADLINE, || {
        let l = access_lines(&server);
        (l.len() >= 4).then_some(l)
    });
    assert_eq!(lines.len(), 4, "one line per response: {lines:#?}");
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for v in &parsed {
        for k in [
            "timestamp",
            "client",
            "method",
            "target",
            "status",
            "bytes",
            "path",
            "source",
            "duration_us",
        ] {
            assert!(v.get(k).is_some(), "key {k} missing in {v}");
        }
        assert!(
            v["timestamp"].as_str().is_some_and(|s| !s.is_empty()),
            "{v}"
        );
        assert!(
            v["client"]
                .as_str()
                .is_some_and(|s| s.starts_with("127.0.0.1")),
            "{v}"
        );
        assert_eq!(
            v["target"].as_str().map(|t| t.starts_with("/static/")),
            Some(true),
            "{v}"
        );
        assert_eq!(v["source"], "static", "{v}");
        assert!(v["duration_us"].as_u64().is_some(), "{v}");
    }
    let find = |m: &str, s: u64| {
        let hits: Vec<&serde_json::Value> = parsed
            .iter()
            .filter(|v| v["method"] == m && v["status"].as_u64() == Some(s))
            .collect();
        assert_eq!(hits.len(), 1, "exactly one {m} {s} line in {parsed:#?}");
        hits[0].clone()
    };
    let v = find("GET", 200);
    assert_eq!(
        (
            v["target"].as_str(),
            v["bytes"].as_u64(),
            v["path"].as_str()
        ),
        (Some("/static/hello.txt"), Some(14), Some("sendfile"))
    );
    let v = find("HEAD", 200);
    assert_eq!(
        (v["bytes"].as_u64(), v["path"].as_str()),
        (Some(0), Some("memory"))
    );
    let v = find("GET", 404);
    assert_eq!(
        (
            v["target"].as_str(),
            v["bytes"].as_u64(),
            v["path"].as_str()
        ),
        (
            Some("/static/missing"),
            Some(missing.body.len() as u64),
            Some("memory")
        )
    );
    let v = find("GET", 206);
    assert_eq!(
        (v["bytes"].as_u64(), v["path"].as_str()),
        (Some(5), Some("sendfile"))
    );
}

#[test]
fn access_log_text_and_off() {
    let (tmp, _) = fixture(false);
    let server = Server::start(&cfg(tmp.path()));
    assert_eq!(server.get("/static/hello.txt").status, 200);
    assert_eq!(server.get("/static/missing").status, 404);
    let lines = poll_until("2 text access log lines", DEADLINE, || {
        let l = access_lines(&server);
        (l.len() >= 2).then_some(l)
    });
    assert_eq!(lines.len(), 2, "{lines:#?}");
    // the text format is free-form: require the target and the status as a separate token
    let has = |l: &str, target: &str, status: &str| {
        l.contains(target)
            && l.split(|c: char| !c.is_ascii_alphanumeric())
                .any(|t| t == status)
    };
    assert!(
        lines.iter().any(|l| has(l, "/static/hello.txt", "200")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| has(l, "/static/missing", "404")),
        "{lines:#?}"
    );
    drop(server);

    let mut c = cfg(tmp.path());
    c.access_log = "off".into();
    let server = Server::start(&c);
    let base = server.metrics();
    assert_eq!(server.get("/static/hello.txt").status, 200);
    assert_eq!(server.get("/static/missing").status, 404);
    wait_delta(
        &server,
        &base,
        "ferry_responses_total",
        &[("source", "static")],
        2.0,
    );
    assert_eq!(
        access_lines(&server),
        Vec::<String>::new(),
        "access_log = off must log nothing"
    );
}
