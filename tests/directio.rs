//! `directio_threshold`: files at or above it are read with O_DIRECT and must not enter the
//! page cache, which `mincore(2)` on the served file shows (after evicting it with
//! `posix_fadvise(DONTNEED)`), while the same file under the threshold (a location that turns
//! it off) does. Bodies are compared byte for byte with the generated content (never by
//! reading the file, which would itself fill the cache), ranges included: unaligned starts and
//! ends, a range inside one block, the last partial block, multipart. Metric deltas on
//! path="directio"; a filesystem refusing O_DIRECT (ramfs, mounted here as root) and an
//! injected refusal fall back to sendfile, counted once per response; over TLS the bytes go
//! through rustls on HTTP/1.1 (path directio) and through the page cache on HTTP/2
//! (tls_buffered, the documented fallback); files the app hands over (X-Accel-Redirect,
//! X-Sendfile) take directio too; a file truncated mid-download ends the response cleanly.
mod common;

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use common::app::{App, ProxyConfig, qenc};
use common::tls::{TlsSection, TlsServer, W, curl_ok, gen_cert};
use common::*;
use ferry::sys::directio::{AlignedBuf, evict, read_at, resident_pages};

/// 40 MiB and 1234 bytes: several read buffers, and a last block that is partial.
const SIZE: u64 = 40 * MIB + 1234;
const SEED: u64 = 0xD1EC;

/// Whether O_DIRECT opens and reads a file in `dir`.
fn takes_o_direct(dir: &Path) -> bool {
    let probe = dir.join("o_direct.probe");
    if std::fs::write(&probe, vec![7u8; 8192]).is_err() {
        return false;
    }
    let ok = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&probe)
        .and_then(|file| {
            let mut buf = AlignedBuf::new(4096, 4096)?;
            read_at(&file, buf.as_mut_slice(), 4096)
        })
        .is_ok_and(|n| n == 4096);
    let _ = std::fs::remove_file(&probe);
    ok
}

/// A temp dir on a disk filesystem that takes O_DIRECT (tmpfs before Linux 6.6 does not,
/// and a page cache test on tmpfs would prove nothing: its pages are the file). Cargo's
/// target dir first, then /var/tmp and /tmp. `None` (the test is skipped) only outside CI.
fn direct_dir() -> Option<TempDir> {
    let candidates = [
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
        PathBuf::from("/var/tmp"),
        std::env::temp_dir(),
    ];
    for dir in &candidates {
        if let Ok(tmp) = tempfile::tempdir_in(dir)
            && takes_o_direct(tmp.path())
            && !is_tmpfs(tmp.path())
        {
            return Some(tmp);
        }
    }
    let message = format!(
        "no filesystem taking O_DIRECT among {candidates:?}: the directio tests need a disk \
         filesystem (ext4, xfs, btrfs) there"
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
    eprintln!("skipped: {message}");
    None
}

/// Whether `dir` is on tmpfs (`stat -f -c %T`).
fn is_tmpfs(dir: &Path) -> bool {
    let out = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .expect("run stat(1)");
    String::from_utf8_lossy(&out.stdout).trim() == "tmpfs"
}

/// Writes the test file, syncs it (dirty pages cannot be evicted) and returns its content.
fn big_file(root: &Path) -> Pattern {
    let path = root.join("big.bin");
    let pattern = pattern_file(&path, SIZE, SEED);
    File::open(&path)
        .and_then(|f| f.sync_all())
        .expect("sync big.bin");
    pattern
}

/// Drops the file's pages from the page cache and checks that they are gone.
fn evict_file(path: &Path) {
    let file = File::open(path).expect("open for eviction");
    evict(&file).expect("posix_fadvise(DONTNEED)");
    let (resident, pages) = resident_pages(&file).expect("mincore");
    assert!(
        resident <= pages / 100,
        "{} still has {resident} of {pages} pages cached after DONTNEED",
        path.display()
    );
}

/// (pages in the page cache, pages of the file), by mincore(2).
fn residency(path: &Path) -> (usize, usize) {
    resident_pages(&File::open(path).expect("open for mincore")).expect("mincore")
}

/// ferry's config: `[io] directio_threshold = threshold` and `chunk = "1MiB"` (so a download
/// spans many read buffers), `/d/` inheriting it and `/p/` turning it off, both on `root`;
/// `extra` is appended (a `[tls]` section).
fn config(root: &Path, threshold: &str, extra: &str) -> String {
    let root = serde_json::to_string(root.to_str().expect("utf-8 root")).unwrap_or_default();
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [io]\nchunk = \"1MiB\"\ndirectio_threshold = \"{threshold}\"\n\
         [[location]]\nprefix = \"/d/\"\nroot = {root}\n\
         [[location]]\nprefix = \"/p/\"\nroot = {root}\ndirectio_threshold = \"0\"\n{extra}"
    )
}

/// ferry serving `config(root, threshold, "")`, with `env` set.
fn start(root: &Path, threshold: &str, env: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().expect("config dir");
    let path = dir.path().join("ferry.toml");
    std::fs::write(&path, config(root, threshold, "")).expect("write config");
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("serve").arg("--config").arg(&path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Server::launch(cmd, 1, Some(dir))
}

fn body_bytes(m: &Metrics, path: &str) -> f64 {
    m.get("ferry_body_bytes_total", &[("path", path)])
}

/// GET `target` with an optional Range on `c`; checks status, Content-Range and that the body
/// is the pattern's bytes `a..=b`. Returns the body length.
fn get_range(c: &mut Conn, target: &str, pattern: &Pattern, range: Option<(u64, u64)>) -> u64 {
    let spec = range.map(|(a, b)| format!("bytes={a}-{b}"));
    let headers: Vec<(&str, &str)> = spec.iter().map(|s| ("Range", s.as_str())).collect();
    c.send(&req("GET", target, &headers));
    let r = c.read_head();
    let (a, len) = match range {
        None => {
            assert_eq!(r.status, 200, "GET {target}");
            (0, SIZE)
        }
        Some((a, b)) => {
            assert_eq!(r.status, 206, "GET {target} {spec:?}");
            let expected = format!("bytes {a}-{b}/{SIZE}");
            assert_eq!(r.header("content-range"), Some(expected.as_str()));
            (a, b - a + 1)
        }
    };
    assert_eq!(r.content_length(), Some(len), "{target} {spec:?}");
    expect_pattern_body(c, pattern, a, len, &format!("GET {target} {spec:?}"));
    len
}

#[test]
fn directio_download_leaves_the_page_cache_alone_and_sendfile_fills_it() {
    let Some(tmp) = direct_dir() else { return };
    let pattern = big_file(tmp.path());
    let file = tmp.path().join("big.bin");
    let server = start(tmp.path(), "16MiB", &[]);

    evict_file(&file);
    let base = server.metrics();
    let mut c = server.connect();
    get_range(&mut c, "/d/big.bin", &pattern, None);
    let (resident, pages) = residency(&file);
    assert!(
        resident <= pages / 100,
        "after a directio download {resident} of {pages} pages are in the page cache"
    );
    let body = wait_delta(
        &server,
        &base,
        "ferry_body_bytes_total",
        &[("path", "directio")],
        SIZE as f64,
    );
    assert_eq!(
        body, SIZE as f64,
        "ferry_body_bytes_total{{path=directio}} delta"
    );
    let after = server.metrics();
    let responses = &[("path", "directio"), ("source", "static"), ("code", "2xx")];
    assert_eq!(
        after.get("ferry_responses_total", responses)
            - base.get("ferry_responses_total", responses),
        1.0
    );
    assert_eq!(
        after.get("ferry_zero_copy_bytes_total", &[("path", "directio")]),
        0.0
    );
    assert_eq!(
        body_bytes(&after, "sendfile"),
        body_bytes(&base, "sendfile")
    );

    // The same file from the location that turns directio off: sendfile, through the cache.
    evict_file(&file);
    get_range(&mut c, "/p/big.bin", &pattern, None);
    let (resident, pages) = residency(&file);
    assert!(
        resident >= pages * 9 / 10,
        "after a sendfile download only {resident} of {pages} pages are in the page cache"
    );
    let sent = wait_delta(
        &server,
        &after,
        "ferry_body_bytes_total",
        &[("path", "sendfile")],
        SIZE as f64,
    );
    assert_eq!(
        sent, SIZE as f64,
        "ferry_body_bytes_total{{path=sendfile}} delta"
    );
    assert_eq!(
        body_bytes(&server.metrics(), "directio"),
        body_bytes(&after, "directio")
    );
}

#[test]
fn ranges_on_directio_send_exactly_the_bytes_asked_for() {
    let Some(tmp) = direct_dir() else { return };
    let pattern = big_file(tmp.path());
    let file = tmp.path().join("big.bin");
    let server = start(tmp.path(), "16MiB", &[]);
    evict_file(&file);
    let base = server.metrics();
    let last_block = SIZE - SIZE % 4096;
    let ranges = [
        (0, 0),
        (1000, 5_000_000),           // unaligned start and end, across read buffers
        (4097, 4100),                // inside one block
        (4096, 8191),                // exactly one aligned block
        (MIB - 1, MIB),              // across a read buffer's end
        (SIZE - 100, SIZE - 1),      // inside the last, partial block
        (last_block - 10, SIZE - 1), // into the last partial block
        (2_097_000, 6_291_999),
    ];
    let mut c = server.connect();
    let mut total = 0;
    for range in ranges {
        total += get_range(&mut c, "/d/big.bin", &pattern, Some(range));
    }
    // A suffix range and a HEAD on the same connection.
    c.send(&req("GET", "/d/big.bin", &[("Range", "bytes=-5")]));
    let r = c.read_head();
    assert_eq!((r.status, r.content_length()), (206, Some(5)));
    expect_pattern_body(&mut c, &pattern, SIZE - 5, 5, "suffix range");
    total += 5;
    c.send(&req("HEAD", "/d/big.bin", &[]));
    let h = c.read_response("HEAD");
    assert_eq!((h.status, h.content_length()), (200, Some(SIZE)));

    // Several ranges: multipart/byteranges, every part on directio.
    let spec = format!("bytes=0-0,4095-4097,{}-", SIZE - 3);
    let r = c.get("/d/big.bin", &[("Range", spec.as_str())]);
    assert_eq!(r.status, 206);
    let ctype = r.header("content-type").expect("content-type").to_string();
    let parts = parse_multipart(&ctype, &r.body);
    let want = [(0u64, 1u64), (4095, 3), (SIZE - 3, 3)];
    assert_eq!(parts.len(), want.len());
    for ((headers, bytes), (a, len)) in parts.iter().zip(want) {
        let range = format!("bytes {a}-{}/{SIZE}", a + len - 1);
        assert_eq!(part_header(headers, "content-range"), Some(range.as_str()));
        assert_eq!(bytes, &pattern.bytes(a, len as usize), "part {range}");
        total += len;
    }

    let body = wait_delta(
        &server,
        &base,
        "ferry_body_bytes_total",
        &[("path", "directio")],
        total as f64,
    );
    assert_eq!(
        body, total as f64,
        "ferry_body_bytes_total{{path=directio}} delta"
    );
    let (resident, pages) = residency(&file);
    assert!(
        resident <= pages / 100,
        "after directio ranges {resident} of {pages} pages are in the page cache"
    );
}

/// Unmounts (lazily, so a server still holding a file cannot block it) on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Two downloads from a filesystem that refuses O_DIRECT: sendfile, one fallback each.
fn assert_falls_back(server: &Server, pattern: &Pattern, reason: &str) {
    let fallbacks = [("from", "directio"), ("to", "sendfile"), ("reason", reason)];
    let base = server.metrics();
    let mut c = server.connect();
    let mut total = get_range(&mut c, "/d/big.bin", pattern, None);
    total += get_range(&mut c, "/d/big.bin", pattern, Some((1000, 3_000_000)));
    let sent = wait_delta(
        server,
        &base,
        "ferry_body_bytes_total",
        &[("path", "sendfile")],
        total as f64,
    );
    assert_eq!(
        sent, total as f64,
        "ferry_body_bytes_total{{path=sendfile}} delta"
    );
    let after = server.metrics();
    assert_eq!(
        after.get("ferry_fallbacks_total", &fallbacks)
            - base.get("ferry_fallbacks_total", &fallbacks),
        2.0,
        "ferry_fallbacks_total{fallbacks:?}: one per response"
    );
    assert_eq!(
        body_bytes(&after, "directio"),
        body_bytes(&base, "directio")
    );
}

#[test]
fn a_filesystem_refusing_o_direct_falls_back_to_sendfile() {
    // ramfs has no direct I/O (tmpfs has had it since Linux 6.6), so mount one.
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "ramfs", "ramfs"])
        .arg(tmp.path())
        .output()
        .is_ok_and(|out| out.status.success());
    if !mounted {
        let message = "mounting a ramfs (a filesystem refusing O_DIRECT) needs root and \
                       mount(8); a_refusal_injected_in_a_debug_build_falls_back covers the \
                       counting without it";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        eprintln!("skipped: {message}");
        return;
    }
    let _mount = Mount(tmp.path().to_path_buf());
    assert!(!takes_o_direct(tmp.path()), "ramfs took O_DIRECT");
    let pattern = pattern_file(&tmp.path().join("big.bin"), SIZE, SEED);
    let server = start(tmp.path(), "1MiB", &[]);
    assert_falls_back(&server, &pattern, "einval");
}

#[test]
fn a_refusal_injected_in_a_debug_build_falls_back() {
    if !cfg!(debug_assertions) {
        eprintln!("skipped: FERRY_FAULT_DIRECTIO only works in debug builds");
        return;
    }
    let Some(tmp) = direct_dir() else { return };
    let pattern = big_file(tmp.path());
    let server = start(tmp.path(), "1MiB", &[("FERRY_FAULT_DIRECTIO", "ENOSYS")]);
    assert_falls_back(&server, &pattern, "enosys");
}

#[test]
fn over_tls_http1_uses_directio_and_http2_reads_through_the_cache() {
    let Some(tmp) = direct_dir() else { return };
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).expect("root dir");
    let pattern = big_file(&root);
    let file = root.join("big.bin");
    let certs = gen_cert(tmp.path(), "server");
    let tls = TlsSection::new(&certs).to_toml();
    let srv = TlsServer::start(&config(&root, "16MiB", &tls), 1);
    let check = |out: &Path, ctx: &str| {
        let mut got = Vec::new();
        File::open(out)
            .and_then(|mut f| f.read_to_end(&mut got))
            .expect("read curl output");
        assert_eq!(got.len() as u64, SIZE, "{ctx}: body length");
        assert!(
            got == pattern.bytes(0, SIZE as usize),
            "{ctx}: body differs"
        );
    };

    evict_file(&file);
    let base = srv.metrics();
    let out = tmp.path().join("h1.out");
    let got = curl_ok(
        srv.curl(&[
            "--http1.1",
            "-o",
            out.to_str().unwrap_or(""),
            "-w",
            W,
            &srv.url("/d/big.bin"),
        ]),
        "https http/1.1",
    );
    assert_eq!((got[0].code, got[0].version.as_str()), (200, "1.1"));
    check(&out, "https http/1.1");
    let sent = wait_delta(
        &srv,
        &base,
        "ferry_body_bytes_total",
        &[("path", "directio")],
        SIZE as f64,
    );
    assert_eq!(sent, SIZE as f64, "directio bytes over TLS");
    let (resident, pages) = residency(&file);
    assert!(
        resident <= pages / 100,
        "TLS directio: {resident} of {pages} pages cached"
    );

    let after = srv.metrics();
    let out = tmp.path().join("h2.out");
    let got = curl_ok(
        srv.curl(&[
            "--http2",
            "-o",
            out.to_str().unwrap_or(""),
            "-w",
            W,
            &srv.url("/d/big.bin"),
        ]),
        "https h2",
    );
    assert_eq!((got[0].code, got[0].version.as_str()), (200, "2"));
    check(&out, "https h2");
    let sent = wait_delta(
        &srv,
        &after,
        "ferry_body_bytes_total",
        &[("path", "tls_buffered")],
        SIZE as f64,
    );
    assert_eq!(
        sent, SIZE as f64,
        "HTTP/2 reads through the page cache (tls_buffered)"
    );
    assert_eq!(
        body_bytes(&srv.metrics(), "directio"),
        body_bytes(&after, "directio")
    );
}

#[test]
fn a_file_truncated_during_a_directio_download_ends_the_response() {
    let Some(tmp) = direct_dir() else { return };
    let size = 64 * MIB;
    let path = tmp.path().join("shrinks.bin");
    let pattern = pattern_file(&path, size, SEED + 1);
    let server = start(tmp.path(), "16MiB", &[]);
    // A small receive buffer: the server cannot run far ahead of what is read here.
    let mut c = Conn::connect_small_rcvbuf(server.addr(), 64 * 1024);
    c.send(&req("GET", "/d/shrinks.bin", &[]));
    let r = c.read_head();
    assert_eq!((r.status, r.content_length()), (200, Some(size)));
    let mut start = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < start.len() {
        let n = c.read_some(&mut start[got..]).expect("body start");
        assert!(n > 0, "closed before the truncation");
        got += n;
    }
    assert!(start == pattern.bytes(0, got), "the first 64 KiB differ");
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(MIB))
        .expect("truncate");
    // What was read before the cut is sent as read (directio copies); then the response ends.
    let mut scratch = Vec::new();
    let mut wrong = None;
    let (rest, err) = c.stream_body(size - got as u64, |at, chunk| {
        if wrong.is_none() && !pattern.matches(got as u64 + at, chunk, &mut scratch) {
            wrong = Some(got as u64 + at);
        }
    });
    assert_eq!(
        wrong, None,
        "a byte after the truncation differs from the file"
    );
    let total = got as u64 + rest;
    assert!(total < size, "all {size} bytes of a truncated file arrived");
    let err = err.expect("a short body ends with the connection");
    assert!(
        err.kind() == std::io::ErrorKind::UnexpectedEof || is_closed_err(&err),
        "the response neither completed nor closed: {err} after {total} bytes"
    );
    let r = server.get("/d/shrinks.bin");
    assert_eq!((r.status, r.body.len() as u64), (200, MIB), "still serving");
}

#[test]
fn files_the_app_hands_over_take_directio_too() {
    let Some(tmp) = direct_dir() else { return };
    let pattern = big_file(tmp.path());
    let file = tmp.path().join("big.bin");
    let app = App::start();
    // X-Accel-Redirect into an internal location, X-Sendfile under a root: both inherit
    // [io] directio_threshold.
    let toml = ProxyConfig::new(&app.address)
        .location("/protected/", tmp.path(), true)
        .sendfile_root(tmp.path())
        .to_toml()
        .replacen("[io]\n", "[io]\ndirectio_threshold = \"16MiB\"\n", 1);
    assert!(toml.contains("directio_threshold"), "{toml}");
    let dir = tempfile::tempdir().expect("config dir");
    std::fs::write(dir.path().join("ferry.toml"), toml).expect("write config");
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("serve")
        .arg("--config")
        .arg(dir.path().join("ferry.toml"));
    let server = Server::launch(cmd, 1, Some(dir));

    evict_file(&file);
    let base = server.metrics();
    let mut c = server.connect();
    get_range(
        &mut c,
        &format!("/accel?to={}", qenc("/protected/big.bin")),
        &pattern,
        None,
    );
    let path = file.to_str().expect("utf-8 path");
    get_range(
        &mut c,
        &format!("/sendfile?path={}&cl=0", qenc(path)),
        &pattern,
        Some((4095, 3 * MIB)),
    );
    let total = SIZE + 3 * MIB - 4095 + 1;
    let filter = [("path", "directio")];
    let body = wait_delta(
        &server,
        &base,
        "ferry_body_bytes_total",
        &filter,
        total as f64,
    );
    assert_eq!(
        body, total as f64,
        "ferry_body_bytes_total{{path=directio}} delta"
    );
    let accel = [("path", "directio"), ("source", "accel"), ("code", "2xx")];
    let after = server.metrics();
    assert_eq!(
        after.get("ferry_responses_total", &accel) - base.get("ferry_responses_total", &accel),
        2.0
    );
    let (resident, pages) = residency(&file);
    assert!(
        resident <= pages / 100,
        "after offloaded directio downloads {resident} of {pages} pages are cached"
    );
}

#[test]
fn a_refused_read_falls_back_for_the_rest_of_the_response() {
    if !cfg!(debug_assertions) {
        eprintln!("skipped: FERRY_FAULT_DIRECTIO_READ only works in debug builds");
        return;
    }
    let Some(tmp) = direct_dir() else { return };
    let pattern = big_file(tmp.path());
    let server = start(
        tmp.path(),
        "1MiB",
        &[("FERRY_FAULT_DIRECTIO_READ", "EINVAL")],
    );
    let fallbacks = [
        ("from", "directio"),
        ("to", "sendfile"),
        ("reason", "einval"),
    ];
    let base = server.metrics();
    let mut c = server.connect();
    let mut total = get_range(&mut c, "/d/big.bin", &pattern, Some((1000, 3_000_000)));
    // Several ranges: the first refused read moves every later part to sendfile too.
    let spec = format!("bytes=0-0,4095-4097,{}-", SIZE - 3);
    let r = c.get("/d/big.bin", &[("Range", spec.as_str())]);
    assert_eq!(r.status, 206);
    let ctype = r.header("content-type").expect("content-type").to_string();
    let parts = parse_multipart(&ctype, &r.body);
    for ((_, bytes), (a, len)) in parts.iter().zip([(0u64, 1u64), (4095, 3), (SIZE - 3, 3)]) {
        assert_eq!(bytes, &pattern.bytes(a, len as usize), "part at {a}");
        total += len;
    }
    let sent = wait_delta(
        &server,
        &base,
        "ferry_body_bytes_total",
        &[("path", "sendfile")],
        total as f64,
    );
    assert_eq!(
        sent, total as f64,
        "ferry_body_bytes_total{{path=sendfile}} delta"
    );
    let after = server.metrics();
    assert_eq!(
        after.get("ferry_fallbacks_total", &fallbacks)
            - base.get("ferry_fallbacks_total", &fallbacks),
        2.0,
        "one fallback per response"
    );
    assert_eq!(
        body_bytes(&after, "directio"),
        body_bytes(&base, "directio")
    );
}
