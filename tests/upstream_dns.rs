//! Host-name upstreams (`address = "host:port"`): the real app (tests/app/app.py) reached
//! as `localhost:PORT` through the system resolver, byte for byte, over pooled connections;
//! a name that cannot resolve (`.invalid`, RFC 6761 §6.4) is a connect failure (502,
//! `outcome="connect_error"`, logged with the name and the resolver's error) while ferry keeps
//! serving; and `ferry check` on accepted and rejected forms.
mod common;

use common::app::*;
use common::*;
use std::process::{Command, Stdio};

const SIZES: [u64; 3] = [0, 1000, 3 * MIB + 7];

#[test]
fn localhost_reaches_the_real_app_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let app = App::start();
    let address = format!("localhost:{}", app.port());
    let server = ProxyConfig::new(&address).start();
    let base = server.metrics();
    let mut c = server.connect();
    for (i, size) in SIZES.into_iter().enumerate() {
        let path = tmp.path().join(format!("r{i}.bin"));
        let pattern = pattern_file(&path, size, size + 5);
        c.send(&req(
            "GET",
            &format!("/file?path={}", qenc(path.to_str().unwrap())),
            &[],
        ));
        let r = c.read_head();
        assert_eq!(r.status, 200, "size {size}");
        assert_eq!(r.content_length(), Some(size), "size {size}");
        expect_pattern_body(&mut c, &pattern, 0, size, &format!("size {size}"));
    }
    // HTTP/1.0 without Host: the app is told the host as configured (nginx's $proxy_host).
    let mut old = server.connect();
    old.send(b"GET /echo?no-host HTTP/1.0\r\n\r\n");
    assert_eq!(old.read_response("GET").status, 200);
    assert_eq!(
        app.wait_request("/echo?no-host").header("host"),
        Some(address.as_str())
    );

    let n = SIZES.len() as f64 + 1.0;
    let ok = wait_delta(
        &server,
        &base,
        "ferry_upstream_requests_total",
        &[("outcome", "ok")],
        n,
    );
    assert_eq!(ok, n, "upstream_requests_total{{outcome=ok}} delta");
    let now = server.metrics();
    let d = |name: &str, f: &[(&str, &str)]| now.get(name, f) - base.get(name, f);
    assert_eq!(
        d(
            "ferry_responses_total",
            &[("source", "upstream"), ("code", "2xx")]
        ),
        n
    );
    let body_bytes: u64 = SIZES.iter().sum::<u64>() + "ok GET 0 ".len() as u64 + 64;
    assert_eq!(d("ferry_body_bytes_total", &[]), body_bytes as f64);
    // Every body had a Content-Length (the echo's too): all spliced, as from a numeric
    // address.
    assert_eq!(
        d("ferry_zero_copy_bytes_total", &[("path", "splice")]),
        body_bytes as f64
    );
    // The keep-alive client's requests went over one pooled app connection.
    let conns: Vec<u64> = (0..SIZES.len())
        .map(|i| {
            let target = format!(
                "/file?path={}",
                qenc(tmp.path().join(format!("r{i}.bin")).to_str().unwrap())
            );
            app.wait_request(&target).conn
        })
        .collect();
    assert!(
        conns.iter().all(|c| *c == conns[0]),
        "app connections: {conns:?}"
    );
}

#[test]
fn a_name_that_does_not_resolve_is_502_connect_error_and_ferry_keeps_serving() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("still.txt"), b"still serving\n").unwrap();
    let server = ProxyConfig::new("app.invalid:80")
        .location("/static/", root.path(), false)
        .start();
    let base = server.metrics();
    // Twice: the first asks the resolver, the second may be answered from the remembered
    // failure; both are the same connect failure.
    for i in 0..2 {
        let r = server.get(&format!("/api/{i}"));
        assert_eq!(r.status, 502, "request {i}: {}", r.text());
    }
    let failed = wait_delta(
        &server,
        &base,
        "ferry_upstream_requests_total",
        &[("outcome", "connect_error")],
        2.0,
    );
    assert_eq!(
        failed, 2.0,
        "upstream_requests_total{{outcome=connect_error}}"
    );
    let now = server.metrics();
    assert_eq!(
        now.get("ferry_upstream_requests_total", &[("outcome", "timeout")])
            - base.get("ferry_upstream_requests_total", &[("outcome", "timeout")]),
        0.0
    );
    assert_eq!(
        now.get(
            "ferry_responses_total",
            &[("source", "upstream"), ("code", "5xx")]
        ) - base.get(
            "ferry_responses_total",
            &[("source", "upstream"), ("code", "5xx")]
        ),
        2.0
    );
    let logged = poll_until("the failure in ferry's log", DEADLINE, || {
        server
            .stderr_lines()
            .into_iter()
            .find(|l| l.contains("upstream request failed"))
    });
    assert!(
        logged.contains("upstream app.invalid:80: resolve app.invalid: "),
        "{logged}"
    );
    // The rest of ferry is unaffected.
    let r = server.get("/static/still.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"still serving\n");
    assert_eq!(server.get("/api/again").status, 502);
}

/// `ferry check` with `address`, from the file and from the environment.
fn check(address: &str, env: Option<&str>) -> (Option<i32>, String) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ferry.toml");
    std::fs::write(&path, ProxyConfig::new(address).to_toml()).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("check")
        .arg("--config")
        .arg(&path)
        .stdin(Stdio::null());
    if let Some(value) = env {
        cmd.env("FERRY__UPSTREAM__ADDRESS", value);
    }
    let out = cmd.output().expect("run ferry check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_host_names_and_rejects_malformed_ones_by_key() {
    // A name that does not resolve (yet) is not a configuration error: the app's container
    // may start after ferry's.
    for address in [
        "localhost:3000",
        "app.invalid:3000",
        "api.shop.svc.cluster.local:80",
        "my_app:3000",
    ] {
        let (code, stderr) = check(address, None);
        assert_eq!(code, Some(0), "{address}: {stderr}");
        // Said, though, for a name that does not resolve here: `.invalid` never does (RFC
        // 6761) and localhost always does; the other two depend on the machine's resolver.
        let warned =
            stderr.contains("warning: upstream.address:") && stderr.contains("does not resolve");
        if address.starts_with("app.invalid") || address.starts_with("localhost") {
            assert_eq!(
                warned,
                address.starts_with("app.invalid"),
                "{address}: a warning for app.invalid, none for localhost; stderr: {stderr}"
            );
        }
    }
    for address in [
        "my app:3000",
        "app",
        "app:0",
        "app:http",
        "-app:80",
        "300.1.1.1:80",
    ] {
        let (code, stderr) = check(address, None);
        assert_eq!(code, Some(64), "{address}: {stderr}");
        // `FILE:LINE:COLUMN: upstream.address: ...`
        let expected = format!("upstream.address: invalid address {address:?}: ");
        let first = stderr.lines().next().unwrap_or_default();
        let (place, rest) = first.split_once(": ").unwrap_or_default();
        assert!(
            place.contains("ferry.toml:") && rest.starts_with(&expected),
            "{address}: {stderr}"
        );
    }
    let (code, stderr) = check("127.0.0.1:80", Some("my app:3000"));
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("(from environment variable FERRY__UPSTREAM__ADDRESS)"),
        "{stderr}"
    );
    let (code, stderr) = check("127.0.0.1:80", Some("app:3000"));
    assert_eq!(code, Some(0), "{stderr}");
}
