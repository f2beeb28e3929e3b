//! The response head and the first body bytes leave together (TCP_CORK): a 4 KiB file is one
//! TCP segment on every file send path. Read from the client socket's own counters
//! (`data_segs_in` in `ss -ti`, the kernel's tcp_info), so nothing here depends on timing.
mod common;

use common::*;
use std::process::Command;

/// Data-carrying segments the client socket with local port `port` has received.
fn data_segs_in(port: u16) -> u64 {
    let out = Command::new("ss")
        .args([
            "-tinH",
            "state",
            "established",
            &format!("( sport = :{port} )"),
        ])
        .output()
        .expect("ss (iproute2) is needed for this test");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(":{port}")),
        "ss does not list port {port}: {text:?}"
    );
    // ss leaves the field out while it is zero.
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("data_segs_in:"))
        .map_or(0, |n| n.parse().expect("data_segs_in is a number"))
}

#[test]
fn small_file_head_and_body_share_one_segment_on_every_path() {
    let dir = TempDir::new().unwrap();
    let pattern = pattern_file(&dir.path().join("f4k.bin"), 4096, 41);
    for path in ["sendfile", "splice", "buffered"] {
        let server = Server::start(&Config::static_root(dir.path()).send_path(path));
        let mut conn = server.connect();
        let port = conn.stream.local_addr().unwrap().port();
        let before = data_segs_in(port);
        let response = conn.get("/static/f4k.bin", &[]);
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.body, pattern.bytes(0, 4096), "{path}: body");
        // The connection stays open, so its counters are still there to read.
        assert_eq!(
            data_segs_in(port) - before,
            1,
            "{path}: head and 4 KiB body in one segment"
        );
    }
}
