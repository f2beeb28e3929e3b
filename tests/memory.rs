//! Memory per idle keep-alive connection: the real ferry binary, many real client connections,
//! ferry's resident memory read from /proc/PID/status.
//!
//! What is asserted: after one full 4 KiB GET each, `CONNS` idle keep-alive connections grow
//! ferry's VmRSS by less than the goal per connection (plaintext and userspace TLS): an idle
//! connection holds no read, head or body buffer, only its socket, its small task and (TLS)
//! rustls's state. Before pooled buffers a plaintext connection kept ~17 KiB and a TLS one
//! ~285 KiB (bench/RESULTS.md). Also that the read buffer being given back between requests
//! loses nothing: a head sent a byte at a time, and pipelined requests split mid-head.
mod common;

use common::tls::*;
use common::*;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;

/// Idle connections held while ferry's memory is read.
const CONNS: usize = 500;
/// Connections opened and closed first, so that what is allocated once (pools, lazily built
/// state, the allocator's arenas) is not counted against the idle ones.
const WARM_UP: usize = 50;
/// The goals (issue 13): KiB per idle connection.
const PLAIN_GOAL_KIB: f64 = 4.0;
const TLS_GOAL_KIB: f64 = 20.0;
const FILE_LEN: usize = 4096;

fn vm_rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("ferry's status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// The higher of two reads: RSS is sampled, and a page counted a moment late is still ferry's.
fn rss_sample(pid: u32) -> u64 {
    vm_rss_kib(pid).max(vm_rss_kib(pid))
}

/// Room for the client's sockets and ferry's (ferry inherits the limit).
fn raise_nofile() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let want = (4 * (CONNS + WARM_UP) + 1024) as u64;
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|c| c < want) {
        let current = limit.maximum.map_or(want, |m| m.min(want));
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(current),
                maximum: limit.maximum,
            },
        )
        .expect("raise RLIMIT_NOFILE");
    }
}

fn files() -> (TempDir, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let body = random_bytes(13, FILE_LEN);
    fs::write(tmp.path().join("f4k.bin"), &body).unwrap();
    (tmp, body)
}

const GET: &[u8] = b"GET /static/f4k.bin HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// Reads one response with a Content-Length and returns its body.
fn read_response(stream: &mut impl Read) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("read a response head");
        assert_eq!(
            n,
            1,
            "closed in the head: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.push(byte[0]);
    }
    let head = String::from_utf8(raw).expect("an ASCII head");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("a Content-Length");
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).expect("read the body");
    body
}

/// Opens `CONNS` connections with `open`, one full GET on each, holds them, and returns
/// ferry's RSS growth per connection in KiB.
fn kib_per_idle_conn<S: Read + Write>(pid: u32, body: &[u8], open: impl Fn() -> S) -> f64 {
    let get = |s: &mut S| {
        s.write_all(GET).expect("send a GET");
        s.flush().expect("send a GET");
        assert!(read_response(s) == body, "the 4 KiB body byte for byte");
    };
    for _ in 0..WARM_UP {
        let mut s = open();
        get(&mut s);
    }
    let before = rss_sample(pid);
    let mut held = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        let mut s = open();
        get(&mut s);
        held.push(s);
    }
    let after = rss_sample(pid);
    let per_conn = after.saturating_sub(before) as f64 / CONNS as f64;
    eprintln!(
        "VmRSS {before} KiB -> {after} KiB with {CONNS} idle connections: {per_conn:.2} KiB each"
    );
    // Every one still answers: the idle state is a working one.
    for s in held.iter_mut().step_by(50) {
        get(s);
    }
    per_conn
}

#[test]
fn an_idle_plaintext_keep_alive_connection_holds_under_4_kib() {
    raise_nofile();
    let (tmp, body) = files();
    let server = Server::start(&Config::static_root(tmp.path()));
    let addr = server.addr();
    let per_conn = kib_per_idle_conn(server.pid(), &body, || {
        let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s
    });
    assert!(
        per_conn < PLAIN_GOAL_KIB,
        "{per_conn:.2} KiB per idle plaintext connection (goal: under {PLAIN_GOAL_KIB})"
    );
}

#[test]
fn an_idle_tls_keep_alive_connection_holds_under_20_kib() {
    raise_nofile();
    let (tmp, body) = files();
    let certs = gen_cert(tmp.path(), "memory");
    let toml =
        Config::static_root(tmp.path()).to_toml() + &TlsSection::new(&certs).ktls("off").to_toml();
    let server = TlsServer::start(&toml, 1);
    let addr = server.https();
    let config = client_config();
    let per_conn = kib_per_idle_conn(server.pid(), &body, || tls_connect(addr, &config));
    assert!(
        per_conn < TLS_GOAL_KIB,
        "{per_conn:.2} KiB per idle TLS connection (goal: under {TLS_GOAL_KIB})"
    );
}

/// The read buffer goes back to the pool whenever it is empty: bytes of a head that arrived
/// in pieces, and a pipelined request's bytes behind a response, must stay with their
/// connection.
#[test]
fn heads_in_pieces_and_pipelined_requests_split_mid_head_are_answered() {
    let (tmp, body) = files();
    let server = Server::start(&Config::static_root(tmp.path()));
    let mut s = TcpStream::connect_timeout(&server.addr(), IO_TIMEOUT).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    for byte in GET {
        s.write_all(&[*byte]).unwrap();
    }
    assert!(
        read_response(&mut s) == body,
        "a head sent a byte at a time"
    );

    // Three requests: two whole ones and the first half of a third, then the rest of it.
    let mut batch = [GET, GET, GET].concat();
    let rest = batch.split_off(2 * GET.len() + 20);
    s.write_all(&batch).unwrap();
    assert!(read_response(&mut s) == body, "1st pipelined");
    assert!(read_response(&mut s) == body, "2nd pipelined");
    s.write_all(&rest).unwrap();
    assert!(read_response(&mut s) == body, "3rd, its head split");
    // A head split across the first two writes of a fresh request on a kept-alive connection.
    s.write_all(&GET[..5]).unwrap();
    s.write_all(&GET[5..]).unwrap();
    assert!(read_response(&mut s) == body, "a head in two writes");
}
