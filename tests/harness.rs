//! Self-checks of the shared test helpers (no server involved), so a broken helper cannot
//! silently make the real tests pass.
mod common;

use common::*;
use std::time::{Duration, UNIX_EPOCH};

#[test]
fn http_date_is_imf_fixdate() {
    assert_eq!(
        http_date(UNIX_EPOCH + Duration::from_secs(784_111_777)),
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );
    assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(
        http_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
        "Tue, 29 Feb 2000 00:00:00 GMT"
    );
}

#[test]
fn pattern_random_access_matches_sequential() {
    let p = Pattern::new(3);
    let all = p.bytes(0, (3 * MIB + 17) as usize);
    for (off, len) in [
        (0u64, 10usize),
        (MIB - 3, 7),
        (2 * MIB + 5, 1000),
        (3 * MIB, 17),
    ] {
        assert_eq!(p.bytes(off, len), all[off as usize..off as usize + len]);
    }
    // different blocks and different seeds differ
    assert_ne!(p.bytes(0, 4096), p.bytes(MIB, 4096));
    assert_ne!(p.bytes(0, 4096), Pattern::new(4).bytes(0, 4096));
    // file on disk equals the generator
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("f");
    p.write_file(&f, 3 * MIB + 17);
    assert!(std::fs::read(&f).unwrap() == all);
    let mut scratch = Vec::new();
    assert!(p.matches(
        MIB - 1,
        &all[(MIB - 1) as usize..(MIB + 9) as usize],
        &mut scratch
    ));
    assert!(!p.matches(
        MIB,
        &all[(MIB - 1) as usize..(MIB + 9) as usize],
        &mut scratch
    ));
}

#[test]
fn metrics_parser() {
    let m = Metrics::parse(
        "# HELP x y\n# TYPE ferry_body_bytes_total counter\n\
         ferry_body_bytes_total{path=\"sendfile\"} 1073741824\n\
         ferry_body_bytes_total{path=\"buffered\"} 5\n\
         ferry_request_duration_seconds_bucket{source=\"static\",le=\"+Inf\"} 3\n\
         process_open_fds 12\n\
         weird{a=\"q\\\"uote,}\"} 1e3\n",
    );
    assert_eq!(
        m.get("ferry_body_bytes_total", &[("path", "sendfile")]),
        1_073_741_824.0
    );
    assert_eq!(m.get("ferry_body_bytes_total", &[]), 1_073_741_829.0);
    assert_eq!(m.get("ferry_body_bytes_total", &[("path", "splice")]), 0.0);
    assert_eq!(
        m.get("ferry_request_duration_seconds_bucket", &[("le", "+Inf")]),
        3.0
    );
    assert_eq!(m.get("process_open_fds", &[]), 12.0);
    assert_eq!(m.get("weird", &[("a", "q\"uote,}")]), 1000.0);
}

#[test]
fn multipart_parser() {
    let body = b"--XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-2/10\r\n\r\nabc\r\n\
                 --XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 8-9/10\r\n\r\nij\r\n--XYZ--\r\n";
    let parts = parse_multipart("multipart/byteranges; boundary=XYZ", body);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].1, b"abc");
    assert_eq!(
        part_header(&parts[1].0, "content-range"),
        Some("bytes 8-9/10")
    );
    assert_eq!(parts[1].1, b"ij");
}

#[test]
fn config_toml_shape() {
    let t = Config::new()
        .location(
            "/static/",
            std::path::Path::new("/tmp/a\"b"),
            Some("index.html"),
            Some("1h"),
        )
        .to_toml();
    for needle in [
        "[server]\nlisten = [\"127.0.0.1:0\"]",
        "[admin]\nlisten = \"127.0.0.1:0\"",
        "[io]\nsend_path = \"auto\"\nchunk = \"2MiB\"",
        "[[location]]\nprefix = \"/static/\"\nroot = \"/tmp/a\\\"b\"\nindex = \"index.html\"\nexpires = \"1h\"",
    ] {
        assert!(t.contains(needle), "{needle:?} not in:\n{t}");
    }
}
