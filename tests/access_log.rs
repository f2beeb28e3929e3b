//! The access log (issue 15 point 7), read from ferry's stdout in both formats: host,
//! protocol and TLS, user agent, referer, request body bytes, the app server that answered
//! and its time to the response head, the cache's verdict, and durations as integer
//! microseconds. Real clients (raw sockets; curl --http2 over TLS) and the real test app
//! (tests/app/app.py) behind ferry.
mod common;

use common::app::*;
use common::cache::*;
use common::tls::*;
use common::*;
use serde_json::Value;

/// Waits (bounded) until ferry's stdout holds `n` lines; returns them.
fn wait_lines(server: &Server, n: usize) -> Vec<String> {
    poll_until(&format!("{n} access log lines"), DEADLINE, || {
        let lines = server.stdout_lines();
        (lines.len() >= n).then_some(lines)
    })
}

fn json_lines(server: &Server, n: usize) -> Vec<Value> {
    let lines = wait_lines(server, n);
    assert_eq!(lines.len(), n, "one line per response: {lines:#?}");
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The one line whose `target` is `target`.
fn line_for<'a>(lines: &'a [Value], target: &str) -> &'a Value {
    let hits: Vec<&Value> = lines.iter().filter(|v| v["target"] == target).collect();
    assert_eq!(hits.len(), 1, "one line for {target} in {lines:#?}");
    hits[0]
}

/// A logfmt-style text line (`... INFO access: key=value key="quoted \"value\""`) as pairs;
/// quoted values unescaped.
fn parse_text(line: &str) -> Vec<(String, String)> {
    let rest = line
        .split_once("access: ")
        .unwrap_or_else(|| panic!("no `access: ` in {line:?}"))
        .1;
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.push(chars.next().expect("escape at end of line")),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|&c| c != ' ').collect();
        }
        out.push((key, value));
    }
}

fn field<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// ferry in front of the app, `/static/` served from `root`, with the log in `format`.
fn start(app: &App, root: &std::path::Path, format: &str) -> Server {
    let mut cfg = ProxyConfig::new(&app.address).location("/static/", root, false);
    cfg.base.access_log = format.into();
    cfg.start()
}

#[test]
fn json_lines_carry_host_protocol_client_headers_request_bytes_and_the_app() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("hello.txt"), b"hello, world\n").unwrap();
    let app = App::start();
    let server = start(&app, tmp.path(), "json");
    let agent = "probe/1.0 (\"quoted\"; x)";
    let client = [
        ("Host", "site.test:8080"),
        ("User-Agent", agent),
        ("Referer", "http://ref.test/from?x=1"),
    ];
    let mut c = server.connect();
    let r = c.get("/static/hello.txt", &client);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello, world\n"[..]));

    // A Content-Length body and a chunked one (300 decoded bytes in three chunks).
    let body = vec![b'a'; 1000];
    let mut head = req("POST", "/echo?len", &[("Content-Length", "1000")]);
    head.extend_from_slice(&body);
    c.send(&head);
    let r = c.read_response("POST");
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("ok POST 1000 "), "{}", r.text());
    let mut chunked = req("POST", "/echo?chunked", &[("Transfer-Encoding", "chunked")]);
    for _ in 0..3 {
        chunked.extend_from_slice(b"64\r\n");
        chunked.extend_from_slice(&[b'b'; 100]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    c.send(&chunked);
    let r = c.read_response("POST");
    assert!(r.text().starts_with("ok POST 300 "), "{}", r.text());
    // A GET the app answers with no body; no User-Agent or Referer.
    let r = c.get("/status?code=204", &[]);
    assert_eq!(r.status, 204);

    let lines = json_lines(&server, 4);
    for v in &lines {
        assert_eq!(
            (&v["proto"], &v["tls"]),
            (&"HTTP/1.1".into(), &false.into())
        );
        assert!(v["duration_us"].is_u64(), "duration_us an integer: {v}");
        assert!(v.get("duration_ms").is_none(), "{v}");
        assert_eq!(v["cache"], "-", "no [cache]: {v}");
    }
    let file = line_for(&lines, "/static/hello.txt");
    assert_eq!(file["host"], "site.test:8080", "{file}");
    assert_eq!(file["user_agent"], agent, "{file}");
    assert_eq!(file["referer"], "http://ref.test/from?x=1", "{file}");
    assert_eq!(
        (file["status"].as_u64(), file["bytes"].as_u64()),
        (Some(200), Some(13))
    );
    assert_eq!(
        (&file["source"], &file["upstream"]),
        (&"static".into(), &"-".into())
    );
    assert!(
        file.get("upstream_us").is_none(),
        "no app, no upstream time: {file}"
    );
    assert_eq!(file["request_bytes"].as_u64(), Some(0), "{file}");

    let posted = line_for(&lines, "/echo?len");
    assert_eq!(posted["request_bytes"].as_u64(), Some(1000), "{posted}");
    assert_eq!(posted["upstream"], app.address.as_str(), "{posted}");
    assert!(posted["upstream_us"].is_u64(), "{posted}");
    assert!(
        posted["upstream_us"].as_u64() <= posted["duration_us"].as_u64(),
        "the app's part of the request is within the whole: {posted}"
    );
    assert_eq!(
        (&posted["source"], &posted["method"]),
        (&"upstream".into(), &"POST".into())
    );
    assert_eq!(posted["host"], "localhost", "req() sends Host: localhost");

    let chunked = line_for(&lines, "/echo?chunked");
    assert_eq!(chunked["request_bytes"].as_u64(), Some(300), "{chunked}");
    assert_eq!(chunked["upstream"], app.address.as_str(), "{chunked}");

    let empty = line_for(&lines, "/status?code=204");
    assert_eq!(
        (
            &empty["user_agent"],
            &empty["referer"],
            empty["status"].as_u64()
        ),
        (&"-".into(), &"-".into(), Some(204)),
        "{empty}"
    );
}

#[test]
fn text_lines_quote_the_clients_values_and_say_what_json_says() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("hello.txt"), b"hi\n").unwrap();
    let app = App::start();
    let server = start(&app, tmp.path(), "text");
    let agent = "Mozilla/5.0 (X11; \"odd\" agent)";
    let mut c = server.connect();
    let r = c.get(
        "/static/hello.txt",
        &[("User-Agent", agent), ("Host", "text.test")],
    );
    assert_eq!(r.status, 200);
    let mut post = req("POST", "/echo", &[("Content-Length", "7")]);
    post.extend_from_slice(b"1234567");
    c.send(&post);
    assert_eq!(c.read_response("POST").status, 200);

    let lines = wait_lines(&server, 2);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let file = parse_text(&lines[0]);
    let keys: Vec<&str> = file.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "client",
            "peer",
            "request_id",
            "host",
            "proto",
            "tls",
            "method",
            "target",
            "status",
            "bytes",
            "request_bytes",
            "path",
            "source",
            "cache",
            "upstream",
            "failed",
            "user_agent",
            "referer",
            "duration_us"
        ],
        "{}",
        lines[0]
    );
    assert_eq!(field(&file, "user_agent"), Some(agent), "{}", lines[0]);
    assert_eq!(field(&file, "host"), Some("text.test"));
    assert_eq!(field(&file, "proto"), Some("HTTP/1.1"));
    assert_eq!(field(&file, "upstream"), Some("-"));
    // The logged ID is the one the client got.
    assert_eq!(field(&file, "request_id"), r.header("x-request-id"));
    assert!(
        lines[0].contains(" proto=HTTP/1.1 tls=false method=GET target=/static/hello.txt "),
        "ferry's own values unquoted: {}",
        lines[0]
    );
    let duration = field(&file, "duration_us").unwrap();
    assert!(duration.parse::<u64>().is_ok(), "integer µs: {duration}");

    let posted = parse_text(&lines[1]);
    assert_eq!(field(&posted, "request_bytes"), Some("7"), "{}", lines[1]);
    assert_eq!(field(&posted, "upstream"), Some(app.address.as_str()));
    let up = field(&posted, "upstream_us").expect("upstream_us after upstream");
    assert!(up.parse::<u64>().is_ok(), "integer µs: {up}");
}

#[test]
fn cache_status_and_the_app_show_per_line() {
    let fx = CacheFixture::new();
    let file = fx.file("one.bin", 4 * KIB, 3);
    let mut proxy = ProxyConfig::new(&fx.app.address);
    proxy.base.access_log = "json".into();
    let ferry = fx.start_with(proxy, "");
    let target = cacheable("one", &file, &["Cache-Control: max-age=600"]);
    let first = ferry.get(&target);
    assert_eq!((first.status, x_cache(&first).as_str()), (200, "MISS"));
    wait_objects(&ferry, 1);
    let second = ferry.get(&target);
    assert_eq!((second.status, x_cache(&second).as_str()), (200, "HIT"));
    assert_eq!(second.body, std::fs::read(&file).unwrap());
    let post = ferry.request("POST", &target, &[("Content-Length", "0")]);
    assert_eq!(x_cache(&post), "BYPASS");

    let lines = json_lines(&ferry, 3);
    let verdicts: Vec<(&str, &str, &str)> = lines
        .iter()
        .map(|v| {
            (
                v["cache"].as_str().unwrap_or("?"),
                v["source"].as_str().unwrap_or("?"),
                v["upstream"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    let app = fx.app.address.as_str();
    assert_eq!(
        verdicts,
        [
            ("MISS", "upstream", app),
            ("HIT", "cache", "-"),
            ("BYPASS", "upstream", app)
        ],
        "{lines:#?}"
    );
    assert!(lines[1].get("upstream_us").is_none(), "{}", lines[1]);
    assert!(lines[0]["upstream_us"].is_u64(), "{}", lines[0]);
}

#[test]
fn http2_lines_say_http2_over_tls_with_the_authority_as_host() {
    let fx = Fx::new();
    std::fs::write(fx.root.join("hello.txt"), b"h2 hello\n").unwrap();
    let app = App::start();
    let mut proxy = ProxyConfig::new(&app.address).location("/static/", &fx.root, false);
    proxy.base.access_log = "json".into();
    let toml = proxy.to_toml() + &TlsSection::new(&fx.certs).to_toml();
    let server = TlsServer::start(&toml, 1);
    let out = fx.out("body");
    let (static_url, echo_url) = (server.url("/static/hello.txt"), server.url("/echo"));
    let agent = "curl-h2-probe";
    let args = [
        "--http2",
        "-A",
        agent,
        "-e",
        "https://ref.test/",
        "-o",
        out.to_str().unwrap(),
        "-w",
        W,
        &static_url,
    ];
    let got = curl_ok(server.curl(&args), "GET over h2");
    assert_eq!((got[0].code, got[0].version.as_str()), (200, "2"));
    let args = [
        "--http2",
        "--data-binary",
        "0123456789",
        "-o",
        out.to_str().unwrap(),
        "-w",
        W,
        &echo_url,
    ];
    let got = curl_ok(server.curl(&args), "POST over h2");
    assert_eq!((got[0].code, got[0].version.as_str()), (200, "2"));
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .starts_with("ok POST 10 "),
        "the app got the body"
    );

    let lines = json_lines(&server, 2);
    let host = format!("localhost:{}", server.https().port());
    for v in &lines {
        assert_eq!(
            (&v["proto"], &v["tls"]),
            (&"HTTP/2".into(), &true.into()),
            "{v}"
        );
        assert_eq!(v["host"], host.as_str(), "{v}");
        assert!(v["duration_us"].is_u64(), "{v}");
    }
    let file = line_for(&lines, "/static/hello.txt");
    assert_eq!(
        (
            &file["user_agent"],
            &file["referer"],
            file["bytes"].as_u64()
        ),
        (&agent.into(), &"https://ref.test/".into(), Some(9)),
        "{file}"
    );
    let posted = line_for(&lines, "/echo");
    assert_eq!(posted["request_bytes"].as_u64(), Some(10), "{posted}");
    assert_eq!(posted["upstream"], app.address.as_str(), "{posted}");
}

#[test]
fn an_app_that_does_not_answer_is_named_with_the_502() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed here: nothing listens on the port any more
    let addr = format!("127.0.0.1:{port}");
    let mut cfg = ProxyConfig::new(&addr);
    cfg.base.access_log = "json".into();
    let server = cfg.start();
    assert_eq!(server.get("/anything").status, 502);
    let lines = json_lines(&server, 1);
    let line = &lines[0];
    // As nginx logs $upstream_addr for a failed attempt: which server failed, and how long
    // that took.
    assert_eq!(
        (&line["status"], &line["source"], &line["upstream"]),
        (&502.into(), &"upstream".into(), &addr.as_str().into()),
        "{line}"
    );
    assert!(line["upstream_us"].is_u64(), "{line}");
}
