//! Issue 15 point 8: headers added per location and server-wide (`add_header`, nginx
//! semantics: without `always` only on 200, 201, 204, 206, 301, 302, 303, 304, 307, 308;
//! with it on every status) on static files, the app's responses, cache hits and ferry's
//! own errors, over HTTP/1.1 (raw sockets) and HTTP/2 (curl --http2); and the plaintext
//! listener that redirects to https (`server.redirect_https`), followed by a real curl.
//! The real test app (tests/app/app.py) is behind ferry throughout.
mod common;

use common::app::*;
use common::cache::*;
use common::tls::*;
use common::*;
use std::path::Path;

const SERVER_HEADERS: &str = r#"add_header = [
  { name = "Strict-Transport-Security", value = "max-age=63072000", always = true },
  { name = "X-Frame-Options", value = "DENY" },
  { name = "X-Replaced", value = "by ferry" },
]
"#;

/// `/static/` with a list of its own (which replaces the server's there).
fn static_location(root: &Path) -> String {
    format!(
        "\n[[location]]\nprefix = \"/static/\"\nroot = {:?}\nadd_header = [\n  \
         {{ name = \"Cache-Control\", value = \"public, immutable\" }},\n  \
         {{ name = \"X-Loc\", value = \"static\", always = true }},\n]\n",
        root.to_str().unwrap()
    )
}

/// ferry in front of `app` with the server list, the `/static/` location over `root`, a
/// cache in `cache_dir`, and `extra` TOML at the end.
fn config(app: &App, root: &Path, cache_dir: &Path, extra: &str) -> String {
    let mut proxy = ProxyConfig::new(&app.address);
    proxy.base.server_extra = SERVER_HEADERS.into();
    format!(
        "{}{}\n[cache]\ndir = {:?}\n{extra}",
        proxy.to_toml(),
        static_location(root),
        cache_dir.to_str().unwrap()
    )
}

fn launch(toml: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), toml);
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("serve").arg("--config").arg(&path);
    Server::launch(cmd, 1, Some(dir))
}

/// The values of `name` in `r`, in order.
fn values<'a>(r: &'a Response, name: &str) -> Vec<&'a str> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

const HSTS: &str = "max-age=63072000";

#[test]
fn http1_static_app_cache_and_own_errors_carry_their_lists() {
    let fx = CacheFixture::new();
    let file = fx.file("page.bin", 3000, 7);
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.css"), b"body{}\n").unwrap();
    let server = launch(&config(&fx.app, root.path(), &fx.cache_dir, ""));
    let path = qenc(file.to_str().unwrap());
    let mut c = server.connect();

    // The location's own list: not the server's.
    let r = c.get("/static/a.css", &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"body{}\n"[..]));
    assert_eq!(values(&r, "cache-control"), ["public, immutable"]);
    assert_eq!(values(&r, "x-loc"), ["static"]);
    assert_eq!(values(&r, "strict-transport-security"), Vec::<&str>::new());
    // Its 404: only the `always` one.
    let r = c.get("/static/missing.css", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(
        (values(&r, "x-loc"), values(&r, "cache-control")),
        (vec!["static"], vec![])
    );
    // Its 304 (a listed status).
    let etag = c
        .get("/static/a.css", &[])
        .header("etag")
        .unwrap()
        .to_string();
    let r = c.get("/static/a.css", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    assert_eq!(values(&r, "cache-control"), ["public, immutable"]);

    // The app's 200: the server's list, its own X-Replaced replaced, not repeated.
    let target = format!("/file?path={path}&h=X-Replaced:app&h=X-Other:kept");
    let r = c.get(&target, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, std::fs::read(&file).unwrap());
    assert_eq!(values(&r, "strict-transport-security"), [HSTS]);
    assert_eq!(values(&r, "x-frame-options"), ["DENY"]);
    assert_eq!(values(&r, "x-replaced"), ["by ferry"]);
    assert_eq!(values(&r, "x-other"), ["kept"]);
    assert_eq!(fx.app.requests_to(&target).len(), 1);
    // The app's 500: only the `always` one.
    let r = c.get(&format!("/file?path={path}&status=500"), &[]);
    assert_eq!(r.status, 500);
    assert_eq!(values(&r, "strict-transport-security"), [HSTS]);
    assert_eq!(values(&r, "x-frame-options"), Vec::<&str>::new());

    // A cache miss, then a hit sent from the cache file: both carry the server's list.
    let cached = cacheable(
        "page",
        &file,
        &["Cache-Control: max-age=600", "X-Replaced: app"],
    );
    let miss = c.get(&cached, &[]);
    assert_eq!(x_cache(&miss), "MISS");
    wait_objects(&server, 1);
    let hit = c.get(&cached, &[]);
    assert_eq!((hit.status, x_cache(&hit).as_str()), (200, "HIT"));
    assert_eq!(hit.body, std::fs::read(&file).unwrap());
    for r in [&miss, &hit] {
        assert_eq!(values(r, "strict-transport-security"), [HSTS]);
        assert_eq!(values(r, "x-frame-options"), ["DENY"]);
        assert_eq!(values(r, "x-replaced"), ["by ferry"]);
    }
    assert_eq!(fx.app_count(&cached), 1, "the hit did not ask the app");

    // ferry's own error for a head it refused (no location: the server's list).
    let mut bad = server.connect();
    bad.send(b"GET /x HTTP/1.1\r\nHost: a\r\nNo colon here\r\n\r\n");
    let r = bad.read_response("GET");
    assert_eq!(r.status, 400);
    assert_eq!(values(&r, "strict-transport-security"), [HSTS]);
    assert_eq!(values(&r, "x-frame-options"), Vec::<&str>::new());
}

/// `curl --http2 -D HEADERS -o BODY URL`: the status, and the response headers (lowercase).
fn h2_get(srv: &TlsServer, dir: &Path, target: &str) -> (u16, Vec<(String, String)>) {
    let (head, body) = (dir.join("head"), dir.join("body"));
    let url = srv.url(target);
    let args = [
        "--http2",
        "-D",
        head.to_str().unwrap(),
        "-o",
        body.to_str().unwrap(),
        "-w",
        W,
        &url,
    ];
    let got = curl_ok(srv.curl(&args), target);
    assert_eq!(got[0].version, "2", "{target}: HTTP/2");
    let text = std::fs::read_to_string(&head).unwrap();
    let headers = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (got[0].code, headers)
}

fn h2_values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn http2_static_app_and_errors_carry_their_lists() {
    let fx = Fx::new();
    std::fs::write(fx.root.join("a.css"), b"body{}\n").unwrap();
    let app = App::start();
    let cache = tempfile::tempdir().unwrap();
    let toml = config(&app, &fx.root, cache.path(), "") + &TlsSection::new(&fx.certs).to_toml();
    let server = TlsServer::start(&toml, 1);
    let dir = fx.dir.path();

    let (status, h) = h2_get(&server, dir, "/static/a.css");
    assert_eq!(status, 200);
    assert_eq!(h2_values(&h, "cache-control"), ["public, immutable"]);
    assert_eq!(h2_values(&h, "x-loc"), ["static"]);
    assert_eq!(
        h2_values(&h, "strict-transport-security"),
        Vec::<&str>::new()
    );
    let (status, h) = h2_get(&server, dir, "/static/none.css");
    assert_eq!(status, 404);
    assert_eq!(
        (h2_values(&h, "x-loc"), h2_values(&h, "cache-control")),
        (vec!["static"], vec![])
    );
    let (status, h) = h2_get(&server, dir, "/status?code=204&h=X-Replaced:app");
    assert_eq!(status, 204);
    assert_eq!(h2_values(&h, "strict-transport-security"), [HSTS]);
    assert_eq!(h2_values(&h, "x-frame-options"), ["DENY"]);
    assert_eq!(h2_values(&h, "x-replaced"), ["by ferry"]);
    let css = qenc(fx.root.join("a.css").to_str().unwrap());
    let (status, h) = h2_get(&server, dir, &format!("/file?path={css}&status=503"));
    assert_eq!(status, 503);
    assert_eq!(h2_values(&h, "strict-transport-security"), [HSTS]);
    assert_eq!(h2_values(&h, "x-frame-options"), Vec::<&str>::new());
}

#[test]
fn plaintext_listener_redirects_to_the_tls_port() {
    let fx = Fx::new();
    std::fs::write(fx.root.join("a.css"), b"body{}\n").unwrap();
    let app = App::start();
    let cache = tempfile::tempdir().unwrap();
    let mut toml = config(&app, &fx.root, cache.path(), "") + &TlsSection::new(&fx.certs).to_toml();
    toml = toml.replacen("[server]\n", "[server]\nredirect_https = true\n", 1);
    let server = TlsServer::start(&toml, 1);
    let tls_port = server.https().port();
    let http_port = server.addr().port();
    let mut c = server.connect();

    let host = format!("site.test:{http_port}");
    let r = c.get("/echo?a=1", &[("Host", &host)]);
    assert_eq!(r.status, 301);
    let want = format!("https://site.test:{tls_port}/echo?a=1");
    assert_eq!(r.header("location"), Some(want.as_str()));
    // The redirect is a 301 like any: the server's list (HSTS among it) is on it.
    assert_eq!(values(&r, "strict-transport-security"), [HSTS]);
    let mut post = req(
        "POST",
        "/form",
        &[("Host", "site.test"), ("Content-Length", "3")],
    );
    post.extend_from_slice(b"a=b");
    c.send(&post);
    let r = c.read_response("POST");
    assert_eq!(r.status, 308);
    let want = format!("https://site.test:{tls_port}/form");
    assert_eq!(r.header("location"), Some(want.as_str()));
    let r = server.request("HEAD", "/static/a.css", &[("Host", "[::1]")]);
    assert_eq!(r.status, 301);
    let want = format!("https://[::1]:{tls_port}/static/a.css");
    assert_eq!(r.header("location"), Some(want.as_str()));
    let mut no_host = server.connect();
    no_host.send(b"GET /static/a.css HTTP/1.0\r\n\r\n");
    assert_eq!(no_host.read_response("GET").status, 400);
    assert!(
        app.requests().is_empty(),
        "nothing reached the app over plaintext"
    );

    // A real client follows it to the TLS listener, which serves as usual.
    let out = fx.out("followed");
    let resolve_http = format!("localhost:{http_port}:127.0.0.1");
    let url = format!("http://localhost:{http_port}/echo");
    let args = [
        "-L",
        "--resolve",
        &resolve_http,
        "--data-binary",
        "xyz",
        "-o",
        out.to_str().unwrap(),
        "-w",
        W,
        &url,
    ];
    let got = curl_ok(server.curl(&args), "curl -L");
    assert_eq!(got.len(), 1, "one -w line for the final transfer");
    assert_eq!(got[0].code, 200);
    assert_eq!(
        got[0].connects, 2,
        "the plaintext connection, then the TLS one"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.starts_with("ok POST 3 "),
        "308 kept the method and body: {text}"
    );
    assert_eq!(app.requests().len(), 1);
}

#[test]
fn redirect_to_a_given_port_leaves_443_out() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.css"), b"x").unwrap();
    let mut cfg = Config::static_root(root.path());
    cfg.server_extra = "redirect_https = 443\n".into();
    let server = Server::start(&cfg);
    let r = server.request("GET", "/static/a.css?v=2", &[("Host", "example.test:80")]);
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("https://example.test/static/a.css?v=2")
    );
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
}

/// A location that proxies to a named upstream has its own list too, on the app's answers
/// through it; the default upstream's answers keep the server's list.
#[test]
fn a_proxied_location_adds_its_own_list() {
    let app = App::start();
    let api = App::start();
    let mut proxy = ProxyConfig::new(&app.address);
    proxy.base.server_extra = SERVER_HEADERS.into();
    let toml = format!(
        "{}\n[upstreams.api]\nservers = [{:?}]\n\n[[location]]\nprefix = \"/status\"\n\
         upstream = \"api\"\nadd_header = [{{ name = \"X-Loc\", value = \"api\" }}]\n",
        proxy.to_toml(),
        api.address
    );
    let server = launch(&toml);
    let r = server.get("/status?code=204");
    assert_eq!(r.status, 204);
    assert_eq!(values(&r, "x-loc"), ["api"]);
    assert!(
        values(&r, "x-frame-options").is_empty(),
        "the location's list replaces the server's"
    );
    api.wait_request("/status?code=204");
    let r = server.get("/echo");
    assert_eq!(r.status, 200);
    assert!(values(&r, "x-loc").is_empty());
    assert_eq!(values(&r, "x-frame-options"), ["DENY"]);
    app.wait_request("/echo");
}
