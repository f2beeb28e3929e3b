//! Body transmission on every send path: byte identity for many sizes and ranges, metric
//! deltas (including a 1 GiB transfer per path), fault-injected fallbacks, and files
//! truncated while being sent.
mod common;

use common::*;
use std::path::Path;

const SIZES: [u64; 5] = [0, 1, 4096, MIB + 1, 64 * MIB];
const PATHS: [&str; 3] = ["sendfile", "splice", "buffered"];

fn name(size: u64) -> String {
    format!("f{size}.bin")
}

/// Writes one pattern file per size into `root`; file `size` uses seed `size + 7`.
fn write_sizes(root: &Path, sizes: &[u64]) {
    for &s in sizes {
        pattern_file(&root.join(name(s)), s, s + 7);
    }
}

fn pattern_for(size: u64) -> Pattern {
    Pattern::new(size + 7)
}

/// GET `target` (optionally with a Range) on `c` and check the body equals
/// pattern[a..a+len]. Returns the number of body bytes.
fn get_and_verify(c: &mut Conn, size: u64, range: Option<(&str, u64, u64)>, ctx: &str) -> u64 {
    let mut headers = vec![];
    if let Some((spec, _, _)) = range {
        headers.push(("Range", spec));
    }
    c.send(&req("GET", &format!("/static/{}", name(size)), &headers));
    let r = c.read_head();
    let (a, len) = match range {
        None => {
            assert_eq!(r.status, 200, "{ctx}");
            (0, size)
        }
        Some((spec, a, b)) => {
            assert_eq!(r.status, 206, "{ctx} {spec}");
            assert_eq!(
                r.header("content-range"),
                Some(format!("bytes {a}-{b}/{size}").as_str()),
                "{ctx} {spec}"
            );
            (a, b - a + 1)
        }
    };
    assert_eq!(r.content_length(), Some(len), "{ctx}: Content-Length");
    expect_pattern_body(
        c,
        &pattern_for(size),
        a,
        len,
        &format!("{ctx} size={size} range={range:?}"),
    );
    len
}

/// Full bodies for every size, HEAD, and single ranges on `send_path`; then checks metric
/// deltas attribute every body byte to `metric_path`; then multipart ranges.
fn bodies_on(send_path: &str, metric_path: &str) {
    let tmp = tempfile::tempdir().unwrap();
    write_sizes(tmp.path(), &SIZES);
    let server = Server::start(&Config::static_root(tmp.path()).send_path(send_path));
    let base = server.metrics();
    let mut c = server.connect();
    let mut total = 0;
    let mut nonempty = 0;
    for s in SIZES {
        total += get_and_verify(&mut c, s, None, send_path);
        nonempty += (s > 0) as u64;
        // HEAD: same Content-Length, no body (the next request on the connection must parse)
        c.send(&req("HEAD", &format!("/static/{}", name(s)), &[]));
        let h = c.read_response("HEAD");
        assert_eq!(
            (h.status, h.content_length()),
            (200, Some(s)),
            "{send_path} HEAD {s}"
        );
    }
    let m1 = MIB + 1;
    let g = 64 * MIB;
    for (size, spec, a, b) in [
        (1, "bytes=0-0", 0, 0),
        (4096, "bytes=4000-", 4000, 4095),
        (m1, "bytes=0-0", 0, 0),
        (m1, "bytes=1048576-1048576", m1 - 1, m1 - 1),
        (m1, "bytes=1000-1048575", 1000, 1_048_575),
        (g, "bytes=2097000-6291999", 2_097_000, 6_291_999),
        (g, "bytes=-5", g - 5, g - 1),
        (g, "bytes=67108000-", 67_108_000, g - 1),
    ] {
        total += get_and_verify(&mut c, size, Some((spec, a, b)), send_path);
        nonempty += 1;
    }
    drop(c);

    let body = wait_delta(
        &server,
        &base,
        "ferry_body_bytes_total",
        &[("path", metric_path)],
        total as f64,
    );
    assert_eq!(
        body, total as f64,
        "{send_path}: ferry_body_bytes_total{{path={metric_path}}} delta"
    );
    if metric_path != "buffered" {
        wait_delta(
            &server,
            &base,
            "ferry_zero_copy_bytes_total",
            &[("path", metric_path)],
            total as f64,
        );
    }
    let now = server.metrics();
    let zc = |m: &Metrics, p: &str| m.get("ferry_zero_copy_bytes_total", &[("path", p)]);
    for p in PATHS {
        let want = if p == metric_path && p != "buffered" {
            total as f64
        } else {
            0.0
        };
        assert_eq!(
            zc(&now, p) - zc(&base, p),
            want,
            "{send_path}: zero_copy{{path={p}}} delta"
        );
        if p != metric_path {
            let other = now.get("ferry_body_bytes_total", &[("path", p)])
                - base.get("ferry_body_bytes_total", &[("path", p)]);
            assert_eq!(other, 0.0, "{send_path}: body bytes attributed to path={p}");
        }
    }
    let ok = |m: &Metrics| {
        m.get(
            "ferry_responses_total",
            &[("path", metric_path), ("source", "static"), ("code", "2xx")],
        )
    };
    let n = ok(&now) - ok(&base);
    // the empty file may be accounted as `memory` (no file body) or as this path
    assert!(
        n == nonempty as f64 || n == (nonempty + 1) as f64,
        "{send_path}: responses_total 2xx delta {n}, want {nonempty}(+1)"
    );
    let heads = now.get(
        "ferry_responses_total",
        &[("path", "memory"), ("code", "2xx")],
    ) - base.get(
        "ferry_responses_total",
        &[("path", "memory"), ("code", "2xx")],
    );
    assert!(
        heads >= SIZES.len() as f64,
        "{send_path}: HEAD responses must count as path=memory, delta {heads}"
    );

    // multipart ranges on this path
    let mut c = server.connect();
    for (size, ranges) in [
        (m1, vec![(0u64, 9u64), (1000, 1999), (1_048_570, 1_048_576)]),
        (g, vec![(0, 99), (33_554_432, 35_651_583), (g - 10, g - 1)]),
    ] {
        let spec = format!(
            "bytes={}",
            ranges
                .iter()
                .map(|(a, b)| format!("{a}-{b}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let r = c.get(&format!("/static/{}", name(size)), &[("Range", &spec)]);
        assert_eq!(r.status, 206, "{send_path} {spec}");
        let ct = r.header("content-type").unwrap_or("").to_string();
        assert!(
            ct.starts_with("multipart/byteranges"),
            "{send_path} {spec}: {ct}"
        );
        let parts = parse_multipart(&ct, &r.body);
        assert_eq!(parts.len(), ranges.len(), "{send_path} {spec}");
        let p = pattern_for(size);
        for ((h, body), (a, b)) in parts.iter().zip(&ranges) {
            assert_eq!(
                part_header(h, "content-range"),
                Some(format!("bytes {a}-{b}/{size}").as_str())
            );
            assert!(
                part_header(h, "content-type").is_some(),
                "part without Content-Type"
            );
            assert!(
                *body == p.bytes(*a, (b - a + 1) as usize),
                "{send_path} {spec}: part {a}-{b} bytes differ"
            );
        }
    }
}

#[test]
fn bodies_sendfile() {
    bodies_on("sendfile", "sendfile");
}

#[test]
fn bodies_splice() {
    bodies_on("splice", "splice");
}

#[test]
fn bodies_buffered() {
    bodies_on("buffered", "buffered");
}

#[test]
fn bodies_auto_uses_sendfile() {
    bodies_on("auto", "sendfile");
}

/// Faults injected through the environment (debug builds only): each file response must fall
/// back exactly once per failing path and still be byte-identical.
fn fallback(env: &[(&str, &str)], hops: &[(&str, &str)], served_by: &str) {
    if !cfg!(debug_assertions) {
        eprintln!("skipped: FERRY_FAULT_* only works in debug builds");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sizes = [1, 4096, MIB + 1, 64 * MIB];
    write_sizes(tmp.path(), &sizes);
    let server = Server::start_env(&Config::static_root(tmp.path()).send_path("sendfile"), env);
    let base = server.metrics();
    let mut c = server.connect();
    let mut total = 0;
    for s in sizes {
        total += get_and_verify(&mut c, s, None, "fallback");
    }
    total += get_and_verify(
        &mut c,
        64 * MIB,
        Some(("bytes=1000-3000999", 1000, 3_000_999)),
        "fallback",
    );
    let responses = sizes.len() as f64 + 1.0;
    for (from, to) in hops {
        let f = [("from", *from), ("to", *to), ("reason", "einval")];
        let d = wait_delta(&server, &base, "ferry_fallbacks_total", &f, responses);
        assert_eq!(
            d, responses,
            "ferry_fallbacks_total{{from={from},to={to},reason=einval}} delta"
        );
    }
    let d = wait_delta(
        &server,
        &base,
        "ferry_body_bytes_total",
        &[("path", served_by)],
        total as f64,
    );
    assert_eq!(d, total as f64, "body bytes attributed to path={served_by}");
    let now = server.metrics();
    let zc_sendfile = now.get("ferry_zero_copy_bytes_total", &[("path", "sendfile")])
        - base.get("ferry_zero_copy_bytes_total", &[("path", "sendfile")]);
    assert_eq!(
        zc_sendfile, 0.0,
        "no byte can have gone out through a failing sendfile"
    );
}

#[test]
fn sendfile_einval_falls_back_to_splice() {
    fallback(
        &[("FERRY_FAULT_SENDFILE", "EINVAL")],
        &[("sendfile", "splice")],
        "splice",
    );
}

#[test]
fn sendfile_and_splice_einval_fall_back_to_buffered() {
    fallback(
        &[
            ("FERRY_FAULT_SENDFILE", "EINVAL"),
            ("FERRY_FAULT_SPLICE", "EINVAL"),
        ],
        &[("sendfile", "splice"), ("splice", "buffered")],
        "buffered",
    );
}

/// A 64 MiB file truncated mid-response: the response ends early with the
/// connection closed, every received byte is the original prefix, and others are still served.
fn truncated_on(send_path: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let size = 64 * MIB;
    write_sizes(tmp.path(), &[size]);
    std::fs::write(tmp.path().join("ok.txt"), b"still fine\n").unwrap();
    let server = Server::start(&Config::static_root(tmp.path()).send_path(send_path));
    let base = server.metrics();
    // a small receive buffer keeps the server from pushing much ahead of our reads
    let mut c = Conn::connect_small_rcvbuf(server.addr(), 64 * 1024);
    c.send(&req("GET", &format!("/static/{}", name(size)), &[]));
    let r = c.read_head();
    assert_eq!((r.status, r.content_length()), (200, Some(size)));
    let pattern = pattern_for(size);
    let mut scratch = Vec::new();
    let mut first = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    while got < first.len() as u64 {
        let n = c
            .read_some(&mut first[got as usize..])
            .expect("read start of body");
        assert!(n > 0, "EOF before the truncation");
        got += n as u64;
    }
    assert!(
        pattern.matches(0, &first, &mut scratch),
        "first 64 KiB differ"
    );
    // Truncate below the 64 MiB but above every byte already handed to the kernel. Bytes that
    // sendfile/splice queued in socket buffers are page-cache references, and truncation zeroes
    // the tail of a large folio in place when it cannot split it, so a 1 MiB cut shows zeros for
    // the data in flight past 1 MiB (up to tcp_wmem max, 4 MiB here): a kernel property, not
    // something ferry can prevent. The buffered path copies, so it gets the 1 MiB cut.
    let new_len = if send_path == "buffered" {
        MIB
    } else {
        32 * MIB
    };
    std::fs::File::options()
        .write(true)
        .open(tmp.path().join(name(size)))
        .unwrap()
        .set_len(new_len)
        .unwrap();

    let mut bad: Option<String> = None;
    let (rest, err) = c.stream_body(size - got, |at, chunk| {
        if bad.is_none() && !pattern.matches(got + at, chunk, &mut scratch) {
            let i = chunk
                .iter()
                .zip(&scratch)
                .position(|(a, b)| a != b)
                .unwrap();
            let show = &chunk[i..chunk.len().min(i + 24)];
            bad = Some(format!(
                "first wrong byte at offset {}: got {show:02x?}",
                got + at + i as u64
            ));
        }
    });
    let total = got + rest;
    assert_eq!(
        bad, None,
        "{send_path}: bytes after truncation differ from the file (received {total}, {err:?})"
    );
    assert!(
        total < size,
        "{send_path}: received the full {size} bytes from a truncated file"
    );
    let err = err.expect("short body must end with EOF/reset");
    assert!(
        err.kind() == std::io::ErrorKind::UnexpectedEof || is_closed_err(&err),
        "{send_path}: response neither completed nor closed: {err} (after {total} bytes)"
    );
    let r = server.get("/static/ok.txt");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"still fine\n"[..]),
        "{send_path}: server still serves"
    );
    // The file shrank: the disk's side, not the client's.
    let incomplete = "ferry_responses_incomplete_total";
    let disk = wait_delta(&server, &base, incomplete, &[("side", "disk")], 1.0);
    assert_eq!(disk, 1.0, "{send_path}: {incomplete}{{side=disk}} delta");
    let client = server.metrics().get(incomplete, &[("side", "client")])
        - base.get(incomplete, &[("side", "client")]);
    assert_eq!(
        client, 0.0,
        "{send_path}: {incomplete}{{side=client}} delta"
    );
}

/// A client that goes away in the middle of a download is counted against the client side
/// (and the server goes on serving).
#[test]
fn a_client_that_leaves_mid_body_is_counted_on_the_client_side() {
    let tmp = tempfile::tempdir().unwrap();
    let size = 64 * MIB;
    write_sizes(tmp.path(), &[size]);
    std::fs::write(tmp.path().join("ok.txt"), b"still fine\n").unwrap();
    let server = Server::start(&Config::static_root(tmp.path()));
    let base = server.metrics();
    let mut c = Conn::connect_small_rcvbuf(server.addr(), 64 * 1024);
    c.send(&req("GET", &format!("/static/{}", name(size)), &[]));
    let r = c.read_head();
    assert_eq!((r.status, r.content_length()), (200, Some(size)));
    let mut first = vec![0u8; 4096];
    assert!(c.read_some(&mut first).expect("some body bytes") > 0);
    // Closed with unread bytes in its buffer: the kernel answers ferry's next write with a
    // reset.
    drop(c);
    let incomplete = "ferry_responses_incomplete_total";
    let client = wait_delta(&server, &base, incomplete, &[("side", "client")], 1.0);
    assert_eq!(client, 1.0, "{incomplete}{{side=client}} delta");
    let disk = server.metrics().get(incomplete, &[("side", "disk")])
        - base.get(incomplete, &[("side", "disk")]);
    assert_eq!(disk, 0.0, "{incomplete}{{side=disk}} delta");
    let r = server.get("/static/ok.txt");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"still fine\n"[..]));
}

#[test]
fn truncated_file_sendfile() {
    truncated_on("sendfile");
}

#[test]
fn truncated_file_splice() {
    truncated_on("splice");
}

#[test]
fn truncated_file_buffered() {
    truncated_on("buffered");
}

/// 1 GiB per path: exact deltas of ferry_body_bytes_total and ferry_zero_copy_bytes_total.
#[test]
fn gib_transfer_metric_deltas() {
    let tmp = tempfile::tempdir().unwrap();
    let pattern = pattern_file(&tmp.path().join("gib.bin"), GIB, 99);
    let mut failures = Vec::new();
    for p in PATHS {
        let server = Server::start(&Config::static_root(tmp.path()).send_path(p));
        let base = server.metrics();
        let mut c = server.connect();
        c.send(&req("GET", "/static/gib.bin", &[]));
        let r = c.read_head();
        assert_eq!((r.status, r.content_length()), (200, Some(GIB)), "{p}");
        expect_pattern_body(&mut c, &pattern, 0, GIB, &format!("1 GiB via {p}"));
        drop(c);
        let body = wait_delta(
            &server,
            &base,
            "ferry_body_bytes_total",
            &[("path", p)],
            GIB as f64,
        );
        if body != GIB as f64 {
            failures.push(format!(
                "{p}: ferry_body_bytes_total{{path={p}}} delta {body}, want {GIB}"
            ));
        }
        if p != "buffered" {
            wait_delta(
                &server,
                &base,
                "ferry_zero_copy_bytes_total",
                &[("path", p)],
                GIB as f64,
            );
        }
        let now = server.metrics();
        for z in ["sendfile", "splice", "buffered"] {
            let d = now.get("ferry_zero_copy_bytes_total", &[("path", z)])
                - base.get("ferry_zero_copy_bytes_total", &[("path", z)]);
            let want = if z == p && p != "buffered" {
                GIB as f64
            } else {
                0.0
            };
            if d != want {
                failures.push(format!(
                    "{p}: ferry_zero_copy_bytes_total{{path={z}}} delta {d}, want {want}"
                ));
            }
        }
        let all_zc = now.get("ferry_zero_copy_bytes_total", &[])
            - base.get("ferry_zero_copy_bytes_total", &[]);
        let want_all = if p == "buffered" { 0.0 } else { GIB as f64 };
        if all_zc != want_all {
            failures.push(format!(
                "{p}: sum of all zero_copy series delta {all_zc}, want {want_all}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "metric delta failures:\n{}",
        failures.join("\n")
    );
}

/// A body of one `io.chunk` (16 MiB here: one sendfile call would cover it, and it is more
/// than a socket's send buffer grows to, tcp_wmem's 4 MiB) to a client with a 4 KiB receive
/// buffer: the socket cannot take it at once, so the response that began without waiting goes
/// on as the client reads. It arrives byte for byte, all of it on the sendfile path, and the
/// connection answers its next request (a small file the socket takes at once).
#[test]
fn a_body_the_socket_cannot_take_at_once_goes_on_as_the_client_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let big = 16 * MIB;
    write_sizes(tmp.path(), &[big, 4096]);
    let mut config = Config::static_root(tmp.path()).send_path("sendfile");
    config.chunk = "16MiB".into();
    let server = Server::start(&config);
    let base = server.metrics();
    let mut c = Conn::connect_small_rcvbuf(server.addr(), 4096);
    let mut total = 0;
    for size in [big, 4096, big] {
        total += get_and_verify(&mut c, size, None, "small receive buffer");
    }
    let sent = wait_delta(
        &server,
        &base,
        "ferry_responses_total",
        &[("path", "sendfile"), ("source", "static"), ("code", "2xx")],
        3.0,
    );
    assert_eq!(sent, 3.0, "responses on the sendfile path");
    let now = server.metrics();
    expect_deltas(
        &base,
        &now,
        &[
            (
                "ferry_body_bytes_total",
                &[("path", "sendfile")],
                total as f64,
            ),
            (
                "ferry_zero_copy_bytes_total",
                &[("path", "sendfile")],
                total as f64,
            ),
            ("ferry_body_bytes_total", &[("path", "buffered")], 0.0),
            (
                "ferry_responses_incomplete_total",
                &[("side", "client")],
                0.0,
            ),
        ],
        "small receive buffer",
    );
}
