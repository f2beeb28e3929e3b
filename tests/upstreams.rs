//! Several apps and several servers (issue 15 points 4 and 5), with real app processes
//! (tests/app/app.py) and real clients (raw HTTP/1.1, curl over HTTP/2): named upstreams
//! routed by location, round robin across a TCP and a unix server, least_conn preferring the
//! idle server, failover past a refused server and passive health, retries after a reset
//! only where they are safe, and the cap + queue (503 with Retry-After when full or timed
//! out; 25 concurrent HTTP/2 streams against an app with a listen backlog of 5 and two sync
//! workers, without a failure).

mod common;
use common::app::*;
use common::tls::*;
use common::*;

/// Starts ferry with the shared [server]/[admin]/[io] defaults and `rest` (upstream sections
/// and locations).
fn start(rest: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.toml");
    std::fs::write(&path, format!("{}\n{rest}", Config::new().to_toml())).unwrap();
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("serve").arg("--config").arg(&path);
    Server::launch(cmd, 1, Some(dir))
}

/// A TCP address nothing listens on (bound, then closed): connections are refused.
fn refused_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr.to_string()
}

/// The value of `name{upstream, server}`.
fn per_server(m: &Metrics, name: &str, upstream: &str, server: &str) -> f64 {
    m.get(name, &[("upstream", upstream), ("server", server)])
}

/// A location names an upstream; requests no location matches go to [upstream]; a static
/// location still serves its files.
#[test]
fn locations_route_to_named_upstreams_and_the_rest_to_the_default() {
    let default_app = App::start();
    let api_app = App::start();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("a.txt"), b"static bytes").unwrap();
    let server = start(&format!(
        r#"
[upstream]
address = "{default}"

[upstreams.api]
address = "{api}"

[[location]]
prefix = "/api/"
upstream = "api"

[[location]]
prefix = "/static/"
root = "{root}"
"#,
        default = default_app.address,
        api = api_app.address,
        root = files.path().display(),
    ));
    let api = server.get("/api/v1/whoami");
    assert_eq!((api.status, api.text()), (200, api_app.address.clone()));
    let other = server.get("/v1/whoami");
    assert_eq!(
        (other.status, other.text()),
        (200, default_app.address.clone())
    );
    let file = server.get("/static/a.txt");
    assert_eq!(
        (file.status, file.body.as_slice()),
        (200, &b"static bytes"[..])
    );
    assert_eq!(api_app.requests_to("/api/v1/whoami").len(), 1);
    assert!(api_app.requests_to("/v1/whoami").is_empty());
    assert_eq!(default_app.requests_to("/v1/whoami").len(), 1);
    let m = server.metrics();
    assert_eq!(
        per_server(
            &m,
            "ferry_upstream_server_requests_total",
            "api",
            &api_app.address
        ),
        1.0
    );
    assert_eq!(
        per_server(
            &m,
            "ferry_upstream_server_requests_total",
            "default",
            &default_app.address
        ),
        1.0
    );
}

/// Round robin over a TCP server and a unix-socket server: requests alternate between them.
#[test]
fn round_robin_spreads_requests_over_a_tcp_and_a_unix_server() {
    let tcp = App::start();
    let dir = tempfile::tempdir().unwrap();
    let unix = App::start_unix(&dir.path().join("app.sock"));
    let server = start(&format!(
        "[upstream]\nservers = [\"{}\", \"{}\"]\n",
        tcp.address, unix.address
    ));
    let answers: Vec<String> = (0..6).map(|_| server.get("/whoami").text()).collect();
    let expected: Vec<String> = (0..6)
        .map(|i| {
            if i % 2 == 0 {
                &tcp.address
            } else {
                &unix.address
            }
            .clone()
        })
        .collect();
    assert_eq!(answers, expected);
    assert_eq!(tcp.requests_to("/whoami").len(), 3);
    assert_eq!(unix.requests_to("/whoami").len(), 3);
}

/// least_conn: while one server holds a request (the app never answers /hang), every new
/// request goes to the idle one; round robin would send every other one to the busy server.
#[test]
fn least_conn_prefers_the_idle_server() {
    let busy = App::start();
    let idle = App::start();
    let server = start(&format!(
        "[upstream]\nservers = [\"{}\", \"{}\"]\nbalance = \"least_conn\"\n",
        busy.address, idle.address
    ));
    // The first request goes to the first server (both idle, its turn): it hangs there.
    let mut hanging = server.connect();
    hanging.send(&req("GET", "/hang", &[]));
    busy.wait_request("/hang");
    let m = server.metrics();
    assert_eq!(
        per_server(&m, "ferry_upstream_server_active", "default", &busy.address),
        1.0
    );
    let answers: Vec<String> = (0..6).map(|_| server.get("/whoami").text()).collect();
    assert_eq!(answers, vec![idle.address.clone(); 6]);
    assert!(busy.requests_to("/whoami").is_empty());
    drop(hanging);
}

/// A refused server: every request (GET and a POST with a body streamed from the client)
/// goes on to the next server, with no client error; passive health then skips the refused
/// one (one failure counted, its `up` gauge 0), so later requests do not try it at all.
#[test]
fn a_refused_server_fails_over_and_is_skipped() {
    let app = App::start();
    let dead = refused_address();
    let server = start(&format!(
        "[upstream]\nservers = [\"{dead}\", \"{}\"]\nmax_fails = 1\nfail_timeout = \"1h\"\n",
        app.address
    ));
    let base = server.metrics();
    for i in 0..10 {
        let r = server.get(&format!("/echo?close=0&i={i}"));
        assert_eq!(r.status, 200, "GET {i}: {}", r.text());
        let mut c = server.connect();
        let body = format!("body {i}");
        let len = body.len().to_string();
        c.send(&req(
            "POST",
            &format!("/echo?close=0&p={i}"),
            &[("Content-Length", &len)],
        ));
        c.send(body.as_bytes());
        let r = c.read_response("POST");
        assert_eq!(r.status, 200, "POST {i}: {}", r.text());
        assert_eq!(
            r.text(),
            format!("ok POST {} {}", body.len(), sha256_hex(body.as_bytes()))
        );
    }
    assert_eq!(app.requests().len(), 20);
    let m = server.metrics();
    let delta = |name: &str, server: &str| {
        per_server(&m, name, "default", server) - per_server(&base, name, "default", server)
    };
    assert_eq!(delta("ferry_upstream_server_failures_total", &dead), 1.0);
    assert_eq!(delta("ferry_upstream_server_requests_total", &dead), 1.0);
    assert_eq!(
        delta("ferry_upstream_server_requests_total", &app.address),
        20.0
    );
    assert_eq!(
        per_server(&m, "ferry_upstream_server_up", "default", &dead),
        0.0
    );
    assert_eq!(
        per_server(&m, "ferry_upstream_server_up", "default", &app.address),
        1.0
    );
    let errors = m.get(
        "ferry_upstream_requests_total",
        &[("outcome", "connect_error")],
    ) - base.get(
        "ferry_upstream_requests_total",
        &[("outcome", "connect_error")],
    );
    assert_eq!(errors, 0.0, "no request ended in a connect error");
}

/// A server that resets every connection after reading the request: a GET (no body, so all
/// of it is in hand) goes on to the next server; a POST whose body went to the app is not
/// sent again (it may have been acted on) and gets 502.
#[test]
fn a_reset_before_the_head_is_retried_only_for_idempotent_requests() {
    let resetting = App::start_with(&["--reset"]);
    let good = App::start();
    let server = start(&format!(
        "[upstream]\nservers = [\"{}\", \"{}\"]\nmax_fails = 0\n",
        resetting.address, good.address
    ));
    // Turn 0: the resetting server first, then the next.
    let r = server.get("/whoami");
    assert_eq!((r.status, r.text()), (200, good.address.clone()));
    assert_eq!(resetting.requests_to("/whoami").len(), 1);
    // Turn 1: the good server.
    let post = |target: &str| {
        let mut c = server.connect();
        c.send(&req("POST", target, &[("Content-Length", "4")]));
        c.send(b"data");
        c.read_response("POST")
    };
    assert_eq!(post("/echo?close=0&n=1").status, 200);
    // Turn 2: the resetting server, which took the POST: no second try.
    let r = post("/echo?close=0&n=2");
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(resetting.requests_to("/echo?close=0&n=2").len(), 1);
    assert!(good.requests_to("/echo?close=0&n=2").is_empty());
}

/// max_conns = 1, queue = 1: with the one slot held (the app never answers /hang), a second
/// request waits in the queue, a third finds the queue full and gets 503 with Retry-After
/// at once, and the second gets 503 with Retry-After when queue_timeout passes.
#[test]
fn past_the_cap_requests_queue_then_get_503_with_retry_after() {
    let app = App::start();
    let server = start(&format!(
        "[upstream]\naddress = \"{}\"\nmax_conns = 1\nqueue = 1\nqueue_timeout = \"2s\"\n",
        app.address
    ));
    let base = server.metrics();
    let mut holder = server.connect();
    holder.send(&req("GET", "/hang", &[]));
    app.wait_request("/hang");
    let mut waiter = server.connect();
    waiter.send(&req("GET", "/echo?close=0&w=1", &[]));
    poll_until("one request in the queue", DEADLINE, || {
        let m = server.metrics();
        (m.get("ferry_upstream_queue_length", &[("upstream", "default")]) == 1.0).then_some(())
    });
    let full = server.get("/echo?close=0&w=2");
    assert_eq!(full.status, 503);
    assert_eq!(full.header("retry-after"), Some("1"));
    let timed_out = waiter.read_response("GET");
    assert_eq!(timed_out.status, 503);
    assert_eq!(timed_out.header("retry-after"), Some("1"));
    assert!(app.requests_to("/echo?close=0&w=1").is_empty());
    assert!(app.requests_to("/echo?close=0&w=2").is_empty());
    let m = server.metrics();
    let outcome = |o: &str| {
        let f = [("upstream", "default"), ("outcome", o)];
        m.get("ferry_upstream_queue_total", &f) - base.get("ferry_upstream_queue_total", &f)
    };
    assert_eq!(
        (outcome("full"), outcome("timeout"), outcome("served")),
        (1.0, 1.0, 0.0)
    );
    let overloaded = m.get(
        "ferry_upstream_requests_total",
        &[("outcome", "overloaded")],
    );
    assert_eq!(overloaded, 2.0);
    assert_eq!(
        m.get("ferry_upstream_queue_length", &[("upstream", "default")]),
        0.0
    );
    drop(holder);
}

/// The issue's measurement: an app with a listen backlog of 5 and two sync workers (one
/// connection at a time each, slow answers), 25 concurrent HTTP/2 streams on one connection.
/// With max_conns = 2 ferry has at most two requests on connections to it, the rest wait in
/// the queue (counted as served from it), and every stream gets its 200.
#[test]
fn a_backlog_5_app_serves_25_concurrent_h2_streams_without_a_failure() {
    let app = App::start_with(&["--backlog", "5", "--workers", "2", "--delay-ms", "20"]);
    let fx = Fx::new();
    let toml = format!(
        "{}{}\n[upstream]\naddress = \"{}\"\nmax_conns = 2\nqueue = 100\n",
        Config::new().to_toml(),
        TlsSection::new(&fx.certs).to_toml(),
        app.address
    );
    let server = TlsServer::start(&toml, 1);
    let base = server.metrics();
    // --parallel: curl multiplexes the transfers as streams of one HTTP/2 connection.
    let mut args: Vec<String> = ["--http2", "--parallel", "--parallel-max", "25", "-w", W]
        .map(String::from)
        .to_vec();
    for i in 0..25 {
        args.extend([
            "-o".into(),
            "/dev/null".into(),
            server.url(&format!("/echo?n={i}")),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let got = curl_ok(server.curl(&args), "25 parallel streams");
    assert_eq!(got.len(), 25, "{got:?}");
    assert!(
        got.iter().all(|g| g.code == 200 && g.version == "2"),
        "{got:?}"
    );
    assert_eq!(
        got.iter().map(|g| g.connects).sum::<u32>(),
        1,
        "one connection: {got:?}"
    );
    for i in 0..25 {
        assert_eq!(
            app.requests_to(&format!("/echo?n={i}")).len(),
            1,
            "request {i}"
        );
    }
    let m = server.metrics();
    let d = |name: &str, f: &[(&str, &str)]| m.get(name, f) - base.get(name, f);
    assert_eq!(
        d("ferry_upstream_requests_total", &[("outcome", "ok")]),
        25.0
    );
    assert_eq!(
        d(
            "ferry_upstream_server_failures_total",
            &[("upstream", "default")]
        ),
        0.0
    );
    let served = d(
        "ferry_upstream_queue_total",
        &[("upstream", "default"), ("outcome", "served")],
    );
    assert!(served > 0.0, "some streams waited in the queue: {served}");
    assert_eq!(
        d(
            "ferry_upstream_queue_total",
            &[("upstream", "default"), ("outcome", "timeout")]
        ) + d(
            "ferry_upstream_queue_total",
            &[("upstream", "default"), ("outcome", "full")]
        ),
        0.0
    );
}
