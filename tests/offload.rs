//! File offload: the app answers with X-Accel-Redirect (nginx semantics: a URI in an internal
//! location) or X-Sendfile (lighttpd semantics: an absolute path beneath
//! offload.x_sendfile_roots) and ferry sends the file itself — byte-identical, with the app's
//! allowed headers, Range/conditional handling, source `accel` in the metrics — and refuses
//! every path that leaves the allowed places.
mod common;

use common::app::*;
use common::*;
use std::path::{Path, PathBuf};

const FILE_LEN: u64 = MIB + 1;
const SECRET: &[u8] = b"TOP-SECRET-CONTENT-never-to-be-served";

/// Directory layout:
///   tmp/secret.bin                 outside every root
///   tmp/files/file.bin             the internal location's root (FILE_LEN pattern bytes)
///   tmp/files/a b.bin, small.txt, sub/nested.bin, escape.bin -> ../secret.bin
///   tmp/public/pub.bin             a public (non-internal) location
///   tmp/sf/doc.bin, sf/link.bin -> ../secret.bin, sf/sub/
///   tmp/sfevil/doc.bin             a sibling whose name starts with the root's
struct Fx {
    tmp: TempDir,
    app: App,
    server: Server,
    pattern: Pattern,
}

impl Fx {
    fn files(&self) -> PathBuf {
        self.tmp.path().join("files")
    }
    fn sf(&self) -> PathBuf {
        self.tmp.path().join("sf")
    }
    fn secret(&self) -> PathBuf {
        self.tmp.path().join("secret.bin")
    }
}

fn layout(tmp: &Path) -> Pattern {
    let d = |p: &str| {
        let p = tmp.join(p);
        std::fs::create_dir_all(&p).unwrap();
        p
    };
    let files = d("files");
    let public = d("public");
    let sf = d("sf");
    d("files/sub");
    d("sf/sub");
    d("sfevil");
    std::fs::write(tmp.join("secret.bin"), SECRET).unwrap();
    let pattern = pattern_file(&files.join("file.bin"), FILE_LEN, 42);
    std::fs::write(files.join("a b.bin"), b"a file with a space in its name").unwrap();
    std::fs::write(files.join("small.txt"), b"small text file\n").unwrap();
    std::fs::write(files.join("sub/nested.bin"), b"nested").unwrap();
    std::fs::write(public.join("pub.bin"), b"public file").unwrap();
    pattern_file(&sf.join("doc.bin"), FILE_LEN, 43);
    std::fs::write(tmp.join("sfevil/doc.bin"), SECRET).unwrap();
    std::os::unix::fs::symlink("../secret.bin", sf.join("link.bin")).unwrap();
    std::os::unix::fs::symlink("../secret.bin", files.join("escape.bin")).unwrap();
    pattern
}

/// ferry with /protected/ (internal) and /public/ locations, X-Sendfile under tmp/sf,
/// advertising X-Accel-Redirect with a mapping.
fn setup() -> Fx {
    let tmp = tempfile::tempdir().unwrap();
    let pattern = layout(tmp.path());
    let app = App::start();
    let files = tmp.path().join("files");
    let server = ProxyConfig::new(&app.address)
        .location("/protected/", &files, true)
        .location("/public/", &tmp.path().join("public"), false)
        .sendfile_root(&tmp.path().join("sf"))
        .advertise("X-Accel-Redirect")
        .accel_mapping(&format!("{}/=/protected/", files.display()))
        .start();
    Fx {
        tmp,
        app,
        server,
        pattern,
    }
}

/// `/accel` target: the app answers with `X-Accel-Redirect: to` and the extra headers.
fn accel(to: &str, headers: &[(&str, &str)]) -> String {
    let mut t = format!("/accel?to={}", qenc(to));
    for (k, v) in headers {
        t.push_str(&format!("&h={}", qenc(&format!("{k}:{v}"))));
    }
    t
}

/// `/sendfile` target: `X-Sendfile: path`, the app's own body and Content-Length `cl`.
fn sendfile(path: &str, cl: u64) -> String {
    format!("/sendfile?path={}&cl={cl}", qenc(path))
}

fn accel_headers_hidden(r: &Response) {
    let leaked: Vec<&(String, String)> = r
        .headers
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-accel-"))
        .collect();
    assert!(
        leaked.is_empty(),
        "X-Accel-* headers reached the client: {leaked:?}"
    );
}

// ------------------------------------------------------------------ X-Accel-Redirect

#[test]
fn accel_redirect_serves_the_file_zero_copy() {
    let fx = setup();
    let base = fx.server.metrics();
    let mut c = fx.server.connect();
    let target = accel("/protected/file.bin", &[]);
    c.send(&req("GET", &target, &[]));
    let r = c.read_head();
    assert_eq!(r.status, 200);
    assert_eq!(r.content_length(), Some(FILE_LEN));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert!(r.header("etag").is_some() && r.header("last-modified").is_some());
    accel_headers_hidden(&r);
    expect_pattern_body(&mut c, &fx.pattern, 0, FILE_LEN, "X-Accel-Redirect file");
    // the app's own body was never relayed: the next response on the connection parses
    let after = c.get("/echo?after-accel", &[]);
    assert_eq!(after.status, 200);

    let d = wait_delta(
        &fx.server,
        &base,
        "ferry_responses_total",
        &[("path", "sendfile"), ("source", "accel"), ("code", "2xx")],
        1.0,
    );
    assert_eq!(
        d, 1.0,
        "responses_total{{path=sendfile,source=accel,code=2xx}} delta"
    );
    let now = fx.server.metrics();
    let zc = |m: &Metrics| m.get("ferry_zero_copy_bytes_total", &[("path", "sendfile")]);
    assert_eq!(
        zc(&now) - zc(&base),
        FILE_LEN as f64,
        "zero_copy{{path=sendfile}} delta"
    );

    // ferry told the app how to offload (its own values, nothing from the client)
    let seen = fx.app.wait_request(&target);
    assert_eq!(seen.header_all("x-sendfile-type"), ["X-Accel-Redirect"]);
    assert_eq!(
        seen.header_all("x-accel-mapping"),
        [format!("{}/=/protected/", fx.files().display()).as_str()]
    );

    // curl downloads the same bytes
    let out = fx.tmp.path().join("curl.bin");
    let st = curl()
        .args(["-sS", "--http1.1", "-o"])
        .arg(&out)
        .arg(format!("http://{}{}", fx.server.addr(), target))
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(fx.files().join("file.bin")).unwrap(),
        "curl download differs from the file"
    );
}

#[test]
fn accel_value_args_are_ignored_and_the_path_is_percent_decoded() {
    let fx = setup();
    let r = fx
        .server
        .get(&accel("/protected/small.txt?x=1&y=../../secret.bin", &[]));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"small text file\n");
    let r = fx.server.get(&accel("/protected/a%20b.bin", &[]));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"a file with a space in its name");
    let r = fx.server.get(&accel("/protected/sub/nested.bin", &[]));
    assert_eq!((r.status, r.body.as_slice()), (200, b"nested".as_slice()));
}

#[test]
fn accel_value_outside_internal_locations_or_with_dot_dot_is_404() {
    let fx = setup();
    let secret = fx.secret();
    let cases = [
        "/public/pub.bin".to_string(),
        "/nowhere/file.bin".to_string(),
        "/protected/../secret.bin".to_string(),
        "/protected/%2e%2e/secret.bin".to_string(),
        "/protected/sub/../../secret.bin".to_string(),
        "/protected/..%2fsecret.bin".to_string(),
        "/protected/missing.bin".to_string(),
        "/protected/escape.bin".to_string(),
        "protected/file.bin".to_string(),
        secret.display().to_string(),
    ];
    let mut failures = Vec::new();
    for to in &cases {
        let r = fx.server.get(&accel(to, &[]));
        let leaked = r.body.windows(SECRET.len()).any(|w| w == SECRET);
        if r.status != 404 || leaked {
            failures.push(format!(
                "X-Accel-Redirect: {to} → {} (secret leaked: {leaked})",
                r.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn internal_location_requested_directly_is_404() {
    let fx = setup();
    for (method, target) in [
        ("GET", "/protected/file.bin"),
        ("HEAD", "/protected/file.bin"),
        ("GET", "/protected/"),
        ("GET", "/protected//file.bin"),
        ("GET", "/protected/a%20b.bin"),
    ] {
        let mut c = fx.server.connect();
        c.send(&req(method, target, &[]));
        let r = c.read_response(method);
        assert_eq!(r.status, 404, "{method} {target}");
        assert!(r.content_length() != Some(FILE_LEN), "{method} {target}");
    }
    // the public location next to it works, and none of this went to the app
    let r = fx.server.get("/public/pub.bin");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, b"public file".as_slice())
    );
    assert!(
        fx.app
            .requests()
            .iter()
            .all(|r| !r.target.starts_with("/protected")),
        "requests for the internal location reached the app"
    );
}

#[test]
fn accel_range_head_and_if_none_match() {
    let fx = setup();
    let target = accel("/protected/file.bin", &[]);
    let mut c = fx.server.connect();

    let r = c.get(&target, &[("Range", "bytes=100-199")]);
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 100-199/{FILE_LEN}").as_str())
    );
    assert_eq!(r.body, fx.pattern.bytes(100, 100), "range bytes");
    let r = c.get(&target, &[("Range", "bytes=-10")]);
    assert_eq!(r.status, 206);
    assert_eq!(
        r.body,
        fx.pattern.bytes(FILE_LEN - 10, 10),
        "suffix range bytes"
    );

    c.send(&req("HEAD", &target, &[]));
    let h = c.read_response("HEAD");
    assert_eq!(h.status, 200);
    assert_eq!(h.content_length(), Some(FILE_LEN));
    assert!(h.body.is_empty());
    accel_headers_hidden(&h);
    let etag = h.header("etag").expect("ETag on the HEAD").to_string();

    let r = c.get(&target, &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304, "If-None-Match with the file's ETag");
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    // still in sync after HEAD and 304
    let after = c.get("/echo?after-304", &[]);
    assert_eq!(after.status, 200);
    let methods: Vec<String> = fx
        .app
        .requests_to(&target)
        .into_iter()
        .map(|r| r.method)
        .collect();
    assert_eq!(methods, ["GET", "GET", "HEAD", "GET"]);
}

#[test]
fn accel_after_a_post_serves_the_file_as_get() {
    let fx = setup();
    let target = accel("/protected/small.txt", &[]);
    let mut c = fx.server.connect();
    c.send(&req("POST", &target, &[("Content-Length", "5")]));
    c.send(b"hello");
    let r = c.read_response("POST");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"small text file\n");
    let seen = fx.app.wait_request(&target);
    assert_eq!((seen.method.as_str(), seen.body_len), ("POST", 5));
    // a Range on a POST that turned into a file is honoured like on a GET
    c.send(&req(
        "POST",
        &target,
        &[("Content-Length", "0"), ("Range", "bytes=0-4")],
    ));
    let r = c.read_response("POST");
    assert_eq!((r.status, r.body.as_slice()), (206, b"small".as_slice()));
}

#[test]
fn accel_keeps_only_the_allowed_app_headers() {
    let fx = setup();
    let expires = "Thu, 01 Jan 2037 00:00:00 GMT";
    let target = accel(
        "/protected/file.bin",
        &[
            ("Content-Type", "application/x-app"),
            ("Set-Cookie", "a=1; Path=/"),
            ("Set-Cookie", "b=2"),
            ("Content-Disposition", "attachment; filename=\"report.bin\""),
            ("Cache-Control", "private, max-age=5"),
            ("Expires", expires),
            ("Accept-Ranges", "none"),
            ("X-App-Secret", "s3cret"),
            ("ETag", "\"app-etag\""),
            ("Last-Modified", "Mon, 01 Jan 2001 00:00:00 GMT"),
            ("Content-Language", "de"),
            ("X-Accel-Buffering", "no"),
            ("X-Accel-Limit-Rate", "1000000000"),
            ("X-Accel-Expires", "60"),
            ("X-Accel-Charset", "utf-8"),
        ],
    );
    let mut c = fx.server.connect();
    c.send(&req("GET", &target, &[]));
    let r = c.read_head();
    assert_eq!(r.status, 200);
    let all = |n: &str| -> Vec<&str> {
        r.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(
        all("content-type"),
        ["application/x-app"],
        "the app's Content-Type wins"
    );
    assert_eq!(all("set-cookie"), ["a=1; Path=/", "b=2"]);
    assert_eq!(
        all("content-disposition"),
        ["attachment; filename=\"report.bin\""]
    );
    assert_eq!(all("cache-control"), ["private, max-age=5"]);
    assert_eq!(all("expires"), [expires]);
    assert_eq!(all("accept-ranges"), ["none"]);
    assert!(
        all("x-app-secret").is_empty(),
        "X-App-Secret reached the client"
    );
    assert!(
        all("content-language").is_empty(),
        "Content-Language is not on the list"
    );
    assert_eq!(all("etag").len(), 1);
    assert_ne!(
        all("etag"),
        ["\"app-etag\""],
        "the file's ETag, not the app's"
    );
    assert_ne!(all("last-modified"), ["Mon, 01 Jan 2001 00:00:00 GMT"]);
    assert_eq!(all("content-length"), [FILE_LEN.to_string().as_str()]);
    accel_headers_hidden(&r);
    expect_pattern_body(&mut c, &fx.pattern, 0, FILE_LEN, "file with app headers");

    // without a Content-Type from the app: by the file's extension
    let r = fx
        .server
        .get(&accel("/protected/small.txt", &[("X-App-Secret", "s")]));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("x-app-secret"), None);
}

#[test]
fn accel_limit_rate_still_sends_every_byte() {
    let fx = setup();
    // 4 MiB/s: a quarter of a second for this file; only the bytes are asserted
    let target = accel("/protected/file.bin", &[("X-Accel-Limit-Rate", "4194304")]);
    let mut c = fx.server.connect();
    c.send(&req("GET", &target, &[]));
    let r = c.read_head();
    assert_eq!(r.status, 200);
    assert_eq!(r.content_length(), Some(FILE_LEN));
    accel_headers_hidden(&r);
    expect_pattern_body(&mut c, &fx.pattern, 0, FILE_LEN, "rate-limited file");
}

// ------------------------------------------------------------------ X-Sendfile

#[test]
fn x_sendfile_under_a_root_serves_the_file_with_its_own_length() {
    let fx = setup();
    let base = fx.server.metrics();
    let doc = fx.sf().join("doc.bin");
    // the app announces (and sends) 7 bytes of its own: ferry drops them and the length
    let target = sendfile(doc.to_str().unwrap(), 7);
    let mut c = fx.server.connect();
    c.send(&req("GET", &target, &[]));
    let r = c.read_head();
    assert_eq!(r.status, 200);
    assert_eq!(r.header_count("content-length"), 1, "{:?}", r.headers);
    assert_eq!(
        r.content_length(),
        Some(FILE_LEN),
        "Content-Length re-derived from the file"
    );
    assert_eq!(
        r.header("x-sendfile"),
        None,
        "X-Sendfile reached the client"
    );
    expect_pattern_body(&mut c, &Pattern::new(43), 0, FILE_LEN, "X-Sendfile file");
    assert_eq!(c.get("/echo?after-sendfile", &[]).status, 200);
    let d = wait_delta(
        &fx.server,
        &base,
        "ferry_responses_total",
        &[("path", "sendfile"), ("source", "accel"), ("code", "2xx")],
        1.0,
    );
    assert_eq!(
        d, 1.0,
        "responses_total{{path=sendfile,source=accel,code=2xx}} delta"
    );

    // a larger announced length than the file does not matter either
    let r = fx.server.get(&sendfile(doc.to_str().unwrap(), 3 * MIB));
    assert_eq!(r.status, 200);
    assert_eq!(r.content_length(), Some(FILE_LEN));
    assert!(r.body == Pattern::new(43).bytes(0, FILE_LEN as usize));
}

#[test]
fn x_sendfile_refuses_paths_outside_the_roots() {
    let fx = setup();
    let sf = fx.sf();
    let s = |p: PathBuf| p.to_str().unwrap().to_string();
    let cases: Vec<(String, u16)> = vec![
        (s(fx.secret()), 403),
        (s(fx.files().join("file.bin")), 403),
        (format!("{}/../secret.bin", sf.display()), 403),
        (format!("{}/sub/../doc.bin", sf.display()), 403),
        (s(sf.join("link.bin")), 403),
        (format!("{}evil/doc.bin", sf.display()), 403),
        ("doc.bin".to_string(), 403),
        ("/etc/passwd".to_string(), 403),
        (s(sf.join("missing.bin")), 404),
    ];
    let mut failures = Vec::new();
    for (path, want) in &cases {
        let r = fx.server.get(&sendfile(path, 0));
        let leaked = r.body.windows(SECRET.len()).any(|w| w == SECRET);
        if r.status != *want || leaked {
            failures.push(format!(
                "X-Sendfile: {path} → {} (want {want}, secret leaked: {leaked})",
                r.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn x_sendfile_is_ignored_without_roots() {
    let tmp = tempfile::tempdir().unwrap();
    layout(tmp.path());
    let app = App::start();
    let server = ProxyConfig::new(&app.address).start();
    let doc = tmp.path().join("sf/doc.bin");
    let r = server.get(&sendfile(doc.to_str().unwrap(), 8));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body, b"app-body",
        "the app's own response is relayed as is"
    );
    assert_eq!(r.content_length(), Some(8));
    assert_eq!(r.header("x-sendfile"), Some(doc.to_str().unwrap()));
}
