//! Static file serving: content, headers, conditionals, ranges, directories, path safety,
//! methods, and a few checks with the real curl client.
mod common;

use common::*;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::time::Duration;

const HELLO: &[u8] = b"Hello, ferry!\n";
const PAGE: &[u8] = b"<!doctype html><title>ferry</title><p>page</p>\n";
const DIR_INDEX: &[u8] = b"<h1>dir index</h1>\n";
const SECRET: &[u8] = b"TOP SECRET outside the root\n";
const BLOB_LEN: usize = 10_000;

struct Fx {
    _tmp: TempDir,
    root: PathBuf,
    blob: Vec<u8>,
    server: Server,
}

/// root/           <- location /static/ (index.html, expires 1h)
///   hello.txt page.html blob.qqzz empty.txt "my file.txt"
///   dir/index.html  noindex/listing-canary.txt  deep/x.txt ("from A")
///   link_in.txt -> hello.txt   link_out.txt -> ../outside/secret.txt   linkdir -> ../outside
/// deep/           <- location /static/deep/ (x.txt "from B")
/// outside/secret.txt
fn setup() -> Fx {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let deep = tmp.path().join("deep");
    let outside = tmp.path().join("outside");
    for d in [
        &root,
        &deep,
        &outside,
        &root.join("dir"),
        &root.join("noindex"),
        &root.join("deep"),
    ] {
        fs::create_dir_all(d).unwrap();
    }
    let blob = random_bytes(1, BLOB_LEN);
    fs::write(root.join("hello.txt"), HELLO).unwrap();
    fs::write(root.join("page.html"), PAGE).unwrap();
    fs::write(root.join("blob.qqzz"), &blob).unwrap();
    fs::write(root.join("empty.txt"), b"").unwrap();
    fs::write(root.join("my file.txt"), b"spaced\n").unwrap();
    fs::write(root.join("dir/index.html"), DIR_INDEX).unwrap();
    fs::write(root.join("noindex/listing-canary.txt"), b"x").unwrap();
    fs::write(root.join("deep/x.txt"), b"from A\n").unwrap();
    fs::write(deep.join("x.txt"), b"from B\n").unwrap();
    fs::write(outside.join("secret.txt"), SECRET).unwrap();
    symlink("hello.txt", root.join("link_in.txt")).unwrap();
    symlink(outside.join("secret.txt"), root.join("link_out.txt")).unwrap();
    symlink(&outside, root.join("linkdir")).unwrap();
    let cfg = Config::new()
        .location("/static/", &root, Some("index.html"), Some("1h"))
        .location("/static/deep/", &deep, None, None);
    let server = Server::start(&cfg);
    Fx {
        _tmp: tmp,
        root,
        blob,
        server,
    }
}

fn assert_strong_etag(r: &Response) -> String {
    let etag = r.header("etag").expect("ETag header").to_string();
    assert!(!etag.starts_with("W/"), "ETag must be strong, got {etag}");
    assert!(
        etag.len() >= 3 && etag.starts_with('"') && etag.ends_with('"'),
        "ETag must be quoted, got {etag}"
    );
    etag
}

#[test]
fn small_file_body_and_headers() {
    let fx = setup();
    let r = fx.server.get("/static/hello.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, HELLO);
    assert_eq!(r.content_length(), Some(HELLO.len() as u64));
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/plain"),
        "{:?}",
        r.header("content-type")
    );
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        r.header("last-modified"),
        Some(http_date(mtime(&fx.root.join("hello.txt"))).as_str())
    );
    assert_strong_etag(&r);
    assert_eq!(
        r.header("cache-control"),
        Some("max-age=3600"),
        "expires = 1h"
    );
    // the same ETag on every request for an unchanged file
    assert_eq!(
        fx.server.get("/static/hello.txt").header("etag"),
        r.header("etag")
    );
}

#[test]
fn content_types_by_extension() {
    let fx = setup();
    let r = fx.server.get("/static/page.html");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, PAGE);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = fx.server.get("/static/blob.qqzz");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, fx.blob);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
}

#[test]
fn empty_file_query_string_and_encoded_names() {
    let fx = setup();
    let r = fx.server.get("/static/empty.txt");
    assert_eq!(
        (r.status, r.content_length(), r.body.len()),
        (200, Some(0), 0)
    );
    let r = fx.server.get("/static/hello.txt?v=123&x=y");
    assert_eq!((r.status, r.body.as_slice()), (200, HELLO));
    let r = fx.server.get("/static/my%20file.txt");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"spaced\n"[..]));
}

#[test]
fn head_has_get_headers_and_no_body() {
    let fx = setup();
    let mut c = fx.server.connect();
    // pipelined: if HEAD carried a body, the GET response would not parse as the next message
    let mut both = req("HEAD", "/static/blob.qqzz", &[]);
    both.extend(req("GET", "/static/blob.qqzz", &[]));
    c.send(&both);
    let head = c.read_response("HEAD");
    let get = c.read_response("GET");
    assert_eq!(head.status, 200);
    assert_eq!(get.status, 200);
    assert_eq!(get.body, fx.blob);
    assert_eq!(
        head.content_length(),
        Some(BLOB_LEN as u64),
        "HEAD must carry the GET Content-Length"
    );
    for h in [
        "content-type",
        "content-length",
        "etag",
        "last-modified",
        "accept-ranges",
        "cache-control",
    ] {
        assert_eq!(
            head.header(h),
            get.header(h),
            "header {h} differs between HEAD and GET"
        );
    }
}

#[test]
fn missing_file_and_unmatched_prefix_are_404() {
    let fx = setup();
    assert_eq!(fx.server.get("/static/nope.txt").status, 404);
    assert_eq!(fx.server.get("/elsewhere/hello.txt").status, 404);
    assert_eq!(fx.server.get("/").status, 404);
    assert_eq!(fx.server.get("/staticX/hello.txt").status, 404);
}

#[test]
fn longest_prefix_wins() {
    let fx = setup();
    let r = fx.server.get("/static/deep/x.txt");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"from B\n"[..]));
    // a sibling of the longer prefix still uses the shorter one
    let r = fx.server.get("/static/hello.txt");
    assert_eq!((r.status, r.body.as_slice()), (200, HELLO));
}

#[test]
fn if_none_match() {
    let fx = setup();
    let etag = assert_strong_etag(&fx.server.get("/static/hello.txt"));
    let mut c = fx.server.connect();
    for inm in [etag.as_str(), "*", &format!("\"nope\", {etag}")] {
        let r = c.get("/static/hello.txt", &[("If-None-Match", inm)]);
        assert_eq!(r.status, 304, "If-None-Match: {inm}");
        assert_eq!(
            r.header("etag"),
            Some(etag.as_str()),
            "304 carries the ETag"
        );
    }
    // no body was sent with the 304s: the connection is still in sync
    let r = c.get(
        "/static/hello.txt",
        &[("If-None-Match", "\"something-else\"")],
    );
    assert_eq!((r.status, r.body.as_slice()), (200, HELLO));
}

#[test]
fn if_modified_since() {
    let fx = setup();
    let mt = mtime(&fx.root.join("hello.txt"));
    let mut c = fx.server.connect();
    let same = http_date(mt);
    let later = http_date(mt + Duration::from_secs(86400));
    let earlier = http_date(mt - Duration::from_secs(86400));
    for ims in [&same, &later] {
        let r = c.get("/static/hello.txt", &[("If-Modified-Since", ims)]);
        assert_eq!(r.status, 304, "If-Modified-Since: {ims}");
        assert!(r.body.is_empty());
    }
    let r = c.get("/static/hello.txt", &[("If-Modified-Since", &earlier)]);
    assert_eq!((r.status, r.body.as_slice()), (200, HELLO));
}

#[test]
fn etag_changes_when_file_changes() {
    let fx = setup();
    let old = assert_strong_etag(&fx.server.get("/static/hello.txt"));
    fs::write(fx.root.join("hello.txt"), b"a different and longer body\n").unwrap();
    let r = fx.server.get("/static/hello.txt");
    assert_eq!(r.body, b"a different and longer body\n");
    assert_ne!(assert_strong_etag(&r), old);
    let r = fx
        .server
        .request("GET", "/static/hello.txt", &[("If-None-Match", &old)]);
    assert_eq!(r.status, 200, "stale ETag must not give 304");
}

#[test]
fn single_ranges() {
    let fx = setup();
    let len = BLOB_LEN;
    let mut c = fx.server.connect();
    for (spec, a, b) in [
        ("bytes=0-99", 0, 99),
        ("bytes=0-0", 0, 0),
        ("bytes=9000-", 9000, len - 1),
        ("bytes=-100", len - 100, len - 1),
        ("bytes=9990-20000", 9990, len - 1),
        ("bytes=1234-5678", 1234, 5678),
    ] {
        let r = c.get("/static/blob.qqzz", &[("Range", spec)]);
        assert_eq!(r.status, 206, "{spec}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {a}-{b}/{len}").as_str()),
            "{spec}"
        );
        assert_eq!(r.content_length(), Some((b - a + 1) as u64), "{spec}");
        assert_eq!(r.body, &fx.blob[a..=b], "{spec}");
    }
}

#[test]
fn multiple_ranges_are_multipart() {
    let fx = setup();
    let r = fx.server.request(
        "GET",
        "/static/blob.qqzz",
        &[("Range", "bytes=0-9,100-199,-5")],
    );
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").expect("content-type").to_string();
    assert!(ct.starts_with("multipart/byteranges; boundary="), "{ct}");
    assert_eq!(r.content_length(), Some(r.body.len() as u64));
    let parts = parse_multipart(&ct, &r.body);
    let want = [(0usize, 9usize), (100, 199), (BLOB_LEN - 5, BLOB_LEN - 1)];
    assert_eq!(parts.len(), want.len());
    for ((h, body), (a, b)) in parts.iter().zip(want) {
        assert_eq!(
            part_header(h, "content-type"),
            Some("application/octet-stream")
        );
        assert_eq!(
            part_header(h, "content-range"),
            Some(format!("bytes {a}-{b}/{BLOB_LEN}").as_str())
        );
        assert_eq!(body, &fx.blob[a..=b]);
    }
}

#[test]
fn unsatisfiable_range_is_416() {
    let fx = setup();
    for spec in ["bytes=10000-10010", "bytes=20000-"] {
        let r = fx
            .server
            .request("GET", "/static/blob.qqzz", &[("Range", spec)]);
        assert_eq!(r.status, 416, "{spec}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{BLOB_LEN}").as_str()),
            "{spec}"
        );
    }
}

#[test]
fn if_range() {
    let fx = setup();
    let etag = assert_strong_etag(&fx.server.get("/static/blob.qqzz"));
    let r = fx.server.request(
        "GET",
        "/static/blob.qqzz",
        &[("Range", "bytes=10-19"), ("If-Range", &etag)],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &fx.blob[10..20]);
    let r = fx.server.request(
        "GET",
        "/static/blob.qqzz",
        &[("Range", "bytes=10-19"), ("If-Range", "\"other\"")],
    );
    assert_eq!(
        r.status, 200,
        "If-Range with a different ETag gives the full entity"
    );
    assert_eq!(r.body, fx.blob);
}

#[test]
fn directories() {
    let fx = setup();
    let r = fx.server.get("/static/dir/");
    assert_eq!((r.status, r.body.as_slice()), (200, DIR_INDEX));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = fx.server.get("/static/dir");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/static/dir/"));
    let r = fx.server.get("/static/noindex/");
    assert!(
        r.status == 403 || r.status == 404,
        "directory without index: got {}",
        r.status
    );
    assert!(
        !r.text().contains("listing-canary"),
        "directory listing leaked: {}",
        r.text()
    );
}

/// Issue 17 point 9: a location without `index` serves index.html for a directory, as nginx
/// does by default; a directory without one is 403 (nginx without autoindex), no listing.
#[test]
fn a_location_without_index_serves_index_html() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let home = random_bytes(7, 3000);
    let sub = b"<h1>sub</h1>\n";
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::create_dir_all(root.join("bare")).unwrap();
    fs::write(root.join("index.html"), &home).unwrap();
    fs::write(root.join("sub/index.html"), sub).unwrap();
    fs::write(root.join("bare/listing-canary.txt"), b"x").unwrap();
    let cfg = Config::new().location("/", root, None, None);
    assert!(!cfg.to_toml().contains("index"), "{}", cfg.to_toml());
    let server = Server::start(&cfg);
    let r = server.get("/");
    assert_eq!((r.status, &r.body), (200, &home));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = server.get("/sub/");
    assert_eq!((r.status, r.body.as_slice()), (200, &sub[..]));
    let r = server.get("/bare/");
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("listing-canary"), "{}", r.text());
}

#[test]
fn path_traversal_is_refused() {
    let fx = setup();
    for target in [
        "/static/../outside/secret.txt",
        "/static/dir/../../outside/secret.txt",
        "/static/%2e%2e/outside/secret.txt",
        "/static/%2E%2E/outside/secret.txt",
        "/static/.%2e/outside/secret.txt",
        "/static/..%2Foutside/secret.txt",
        "/static/dir%2Findex.html",
        "/static/hello.txt%00",
        "/static/hello.txt%00.html",
    ] {
        // a fresh connection each: the server may close after a 400
        let r = fx.server.get(target);
        assert!(
            r.status == 400 || r.status == 404,
            "{target}: got {} {:?}",
            r.status,
            r.text()
        );
        assert!(
            !r.body.windows(SECRET.len()).any(|w| w == SECRET),
            "{target} leaked the secret"
        );
    }
    // still serving afterwards
    assert_eq!(fx.server.get("/static/hello.txt").body, HELLO);
}

#[test]
fn symlinks_inside_work_outside_refused() {
    let fx = setup();
    let r = fx.server.get("/static/link_in.txt");
    assert_eq!((r.status, r.body.as_slice()), (200, HELLO));
    for target in ["/static/link_out.txt", "/static/linkdir/secret.txt"] {
        let r = fx.server.get(target);
        assert_eq!(r.status, 404, "{target}");
        assert!(
            !r.body.windows(SECRET.len()).any(|w| w == SECRET),
            "{target} leaked the secret"
        );
    }
}

#[test]
fn other_methods_are_405() {
    let fx = setup();
    for m in ["POST", "PUT", "DELETE", "PATCH"] {
        let r = fx
            .server
            .request(m, "/static/hello.txt", &[("Content-Length", "0")]);
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{m}");
    }
}

#[test]
fn random_ranges_property() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config as PtConfig, TestRunner};
    let fx = setup();
    let len = BLOB_LEN as u64;
    let mut runner = TestRunner::new(PtConfig {
        cases: 64,
        ..PtConfig::default()
    });
    // starts past the end (416) in about 1 case of 6; ends past the end (clamped) often
    let strat = (0u64..12_000, 0u64..3_000, any::<bool>());
    runner
        .run(&strat, |(x, span, suffix)| {
            let (spec, want) = if suffix {
                let n = x.max(1);
                let a = len.saturating_sub(n);
                (format!("bytes=-{n}"), Some((a, len - 1)))
            } else {
                let (a, b) = (x, x + span);
                (
                    format!("bytes={a}-{b}"),
                    if a < len {
                        Some((a, b.min(len - 1)))
                    } else {
                        None
                    },
                )
            };
            let r = fx
                .server
                .request("GET", "/static/blob.qqzz", &[("Range", &spec)]);
            match want {
                Some((a, b)) => {
                    prop_assert_eq!(r.status, 206, "{}", spec);
                    let cr = format!("bytes {a}-{b}/{len}");
                    prop_assert_eq!(r.header("content-range"), Some(cr.as_str()));
                    prop_assert!(
                        r.body == fx.blob[a as usize..=b as usize],
                        "{} wrong bytes",
                        spec
                    );
                }
                None => {
                    prop_assert_eq!(r.status, 416, "{}", spec);
                    let cr = format!("bytes */{len}");
                    prop_assert_eq!(r.header("content-range"), Some(cr.as_str()));
                }
            }
            Ok(())
        })
        .unwrap();
}

// ------------------------------------------------------------------ curl

fn curl_out(args: &[&str]) -> std::process::Output {
    let out = curl().args(args).output().expect("run curl");
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn status_of(headers_file: &std::path::Path) -> u16 {
    let h = fs::read_to_string(headers_file).unwrap();
    h.lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status")
}

#[test]
fn curl_download_range_and_conditional() {
    let fx = setup();
    let big = pattern_file(&fx.root.join("big.bin"), 3 * MIB + 7, 42);
    let url = format!("http://{}/static/big.bin", fx.server.addr());
    let dir = tempfile::tempdir().unwrap();
    let (body, headers) = (dir.path().join("body"), dir.path().join("headers"));
    let (b, h) = (body.to_str().unwrap(), headers.to_str().unwrap());

    curl_out(&["-s", "--http1.1", "-o", b, "-D", h, &url]);
    assert_eq!(status_of(&headers), 200);
    assert!(
        fs::read(&body).unwrap() == big.bytes(0, (3 * MIB + 7) as usize),
        "curl download differs"
    );
    let etag = fs::read_to_string(&headers)
        .unwrap()
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("etag"))
                .map(|(_, v)| v.trim().to_string())
        })
        .expect("ETag in curl headers");

    curl_out(&["-s", "--http1.1", "-r", "0-99", "-o", b, "-D", h, &url]);
    assert_eq!(status_of(&headers), 206);
    assert_eq!(fs::read(&body).unwrap(), big.bytes(0, 100));

    fs::remove_file(&body).unwrap(); // curl writes nothing for a 304; don't see the old file
    curl_out(&[
        "-s",
        "--http1.1",
        "-H",
        &format!("If-None-Match: {etag}"),
        "-o",
        b,
        "-D",
        h,
        &url,
    ]);
    assert_eq!(status_of(&headers), 304);
    assert!(fs::read(&body).unwrap_or_default().is_empty());
}

/// `io.open_file_cache`: a file is opened once and served from the kept descriptor while
/// `open_file_cache_valid` lasts (a file renamed over it is not seen yet); once that has run
/// out, the new file is served.
#[test]
fn the_open_file_cache_keeps_a_file_until_its_validity_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), b"first").unwrap();
    let replace = |content: &[u8]| {
        let tmp = dir.path().join("new.tmp");
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, dir.path().join("a.txt")).unwrap();
    };
    let start = |valid: &str| {
        let mut cfg = Config::static_root(dir.path());
        cfg.chunk = "2MiB".into();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.toml");
        let toml = cfg.to_toml().replace(
            "[io]\n",
            &format!("[io]\nopen_file_cache = 100\nopen_file_cache_valid = \"{valid}\"\n"),
        );
        std::fs::write(&path, toml).unwrap();
        let mut cmd = std::process::Command::new(BIN);
        cmd.arg("serve").arg("--config").arg(&path);
        Server::launch(cmd, 1, Some(dir))
    };
    let server = start("1h");
    // One connection: it stays on one worker, whose cache is its own.
    let mut c = server.connect();
    assert_eq!(c.get("/static/a.txt", &[]).body, b"first");
    replace(b"second");
    // Kept: the worker serves the descriptor it opened.
    for _ in 0..3 {
        let r = c.get("/static/a.txt", &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"first", "served from the kept descriptor");
    }
    drop(server);

    let server = start("1ms");
    let mut c = server.connect();
    assert_eq!(c.get("/static/a.txt", &[]).body, b"second");
    replace(b"third");
    poll_until("the replaced file to be served", DEADLINE, || {
        (c.get("/static/a.txt", &[]).body == b"third").then_some(())
    });
}
