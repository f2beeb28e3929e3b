//! Pre-compressed variants (`precompressed = [...]`, nginx's `gzip_static`/`brotli_static`):
//! which variant Accept-Encoding picks, the variant's bytes, length and validators, Range and
//! conditionals on it, HEAD, index files, `Vary`, a variant named directly, symlinks out of
//! the root, curl decoding what it gets, and the send path in the metrics.
//!
//! The gzip variant is made by the `gzip` tool; the brotli one by a minimal encoder below
//! (stored meta-blocks, RFC 7932 §9.2), which every brotli decoder reads.
mod common;

use common::*;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

const SECRET: &[u8] = b"TOP SECRET outside the root\n";

struct Fx {
    _tmp: TempDir,
    root: PathBuf,
    /// app.js and its variants.
    js: Vec<u8>,
    gz: Vec<u8>,
    br: Vec<u8>,
    zst: Vec<u8>,
    server: Server,
}

/// root/                  <- /static/ (precompressed = ["br", "zstd", "gzip"], index.html)
///                           /plain/  (the same root, no precompressed)
///   app.js app.js.gz app.js.br app.js.zst (zst: marker bytes, never decoded)
///   app.js.gz.br (a variant of the variant, never served)
///   only-gz.css only-gz.css.gz   plain.txt   ghost.js.gz (no ghost.js)
///   dir/index.html dir/index.html.br
///   evil.js evil.js.br -> ../outside/secret.br   odd.js odd.js.br/ (a directory)
/// outside/secret.br
fn setup() -> Fx {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(root.join("dir")).unwrap();
    fs::create_dir_all(root.join("odd.js.br")).unwrap();
    fs::create_dir_all(&outside).unwrap();
    let js: Vec<u8> = (0..400)
        .flat_map(|i| format!("export const value{i} = {i} * 2; // ferry\n").into_bytes())
        .collect();
    let (gz, br) = (gzip(&js), brotli_stored(&js));
    let zst = b"zstd variant marker bytes".to_vec();
    fs::write(root.join("app.js"), &js).unwrap();
    fs::write(root.join("app.js.gz"), &gz).unwrap();
    fs::write(root.join("app.js.br"), &br).unwrap();
    fs::write(root.join("app.js.zst"), &zst).unwrap();
    fs::write(root.join("app.js.gz.br"), brotli_stored(&gz)).unwrap();
    fs::write(root.join("only-gz.css"), b"body { color: red }\n").unwrap();
    fs::write(root.join("only-gz.css.gz"), gzip(b"body { color: red }\n")).unwrap();
    fs::write(root.join("plain.txt"), b"plain\n").unwrap();
    fs::write(root.join("ghost.js.gz"), gzip(b"ghost\n")).unwrap();
    fs::write(root.join("dir/index.html"), b"<h1>index</h1>\n").unwrap();
    fs::write(
        root.join("dir/index.html.br"),
        brotli_stored(b"<h1>index</h1>\n"),
    )
    .unwrap();
    fs::write(root.join("evil.js"), b"evil identity\n").unwrap();
    fs::write(outside.join("secret.br"), SECRET).unwrap();
    symlink(outside.join("secret.br"), root.join("evil.js.br")).unwrap();
    fs::write(root.join("odd.js"), b"odd identity\n").unwrap();
    // The variant is older than the original: its own Last-Modified must show.
    let old = SystemTime::now() - Duration::from_secs(86_400);
    fs::File::options()
        .write(true)
        .open(root.join("app.js.gz"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let cfg = Config::new()
        .location("/plain/", &root, Some("index.html"), None)
        .location("/static/", &root, Some("index.html"), None);
    // The last [[location]] table is /static/: the key joins it.
    let toml = format!(
        "{}precompressed = [\"br\", \"zstd\", \"gzip\"]\n",
        cfg.to_toml()
    );
    let server = start_toml(&toml);
    Fx {
        _tmp: tmp,
        root,
        js,
        gz,
        br,
        zst,
        server,
    }
}

fn start_toml(toml: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.toml");
    fs::write(&path, toml).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("serve").arg("--config").arg(&path);
    Server::launch(cmd, 1, Some(dir))
}

/// `data` compressed by the `gzip` tool (no name or time stamp in the header).
fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .args(["-c", "-n", "-9"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("this test needs the `gzip` tool on PATH");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "gzip failed");
    assert!(out.stdout.len() < data.len() || data.len() < 64);
    out.stdout
}

/// A valid brotli stream holding `data` in stored (uncompressed) meta-blocks: WBITS 16, then
/// per chunk of at most 64 KiB ISLAST=0, MNIBBLES=4, MLEN-1, ISUNCOMPRESSED=1, padding to a
/// byte and the bytes; then ISLAST=1, ISLASTEMPTY=1. Bits are written least significant
/// first (RFC 7932 §2).
fn brotli_stored(data: &[u8]) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u32,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, value: u32, width: u32) {
            self.acc |= value << self.n;
            self.n += width;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        fn align(&mut self) {
            if self.n > 0 {
                self.put(0, 8 - self.n);
            }
        }
    }
    let mut bits = Bits {
        out: Vec::new(),
        acc: 0,
        n: 0,
    };
    bits.put(0, 1); // WBITS = 16
    for chunk in data.chunks(65_536) {
        bits.put(0, 1); // ISLAST
        bits.put(0, 2); // MNIBBLES = 4
        bits.put(chunk.len() as u32 - 1, 16);
        bits.put(1, 1); // ISUNCOMPRESSED
        bits.align();
        bits.out.extend_from_slice(chunk);
    }
    bits.put(1, 1); // ISLAST
    bits.put(1, 1); // ISLASTEMPTY
    bits.align();
    bits.out
}

fn get(fx: &Fx, target: &str, headers: &[(&str, &str)]) -> Response {
    fx.server.request("GET", target, headers)
}

fn ae(value: &str) -> [(&str, &str); 1] {
    [("Accept-Encoding", value)]
}

/// The file's original Content-Type, as the location without variants gives it.
fn identity_type(fx: &Fx, name: &str) -> String {
    let r = get(fx, &format!("/plain/{name}"), &[]);
    assert_eq!(r.status, 200, "{name}");
    r.header("content-type").unwrap().to_string()
}

#[test]
fn accept_encoding_picks_the_variant() {
    let fx = setup();
    let js_type = identity_type(&fx, "app.js");
    for (accept, coding) in [
        (None, None),
        (Some(""), None),
        (Some("gzip"), Some("gzip")),
        (Some("br"), Some("br")),
        (Some("zstd"), Some("zstd")),
        (Some("x-gzip"), Some("gzip")),
        (Some("gzip, deflate, br, zstd"), Some("br")),
        (Some("gzip, zstd"), Some("zstd")),
        (Some("br;q=0.5, gzip"), Some("gzip")),
        (Some("br;q=0.5, gzip;q=0.8, zstd;q=0.9"), Some("zstd")),
        (Some("br;q=0, gzip;q=0.1"), Some("gzip")),
        (Some("br;q=0"), None),
        (Some("gzip;q=0, br;q=0, zstd;q=0"), None),
        (Some("*"), Some("br")),
        (Some("*;q=0.5, gzip"), Some("gzip")),
        (Some("*;q=0"), None),
        (Some("identity"), None),
        (Some("identity, gzip;q=0.5"), None),
        (Some("BR"), Some("br")),
        (Some("Gzip ; Q=1"), Some("gzip")),
        (Some("deflate, compress"), None),
        (Some("br;q=2, gzip;q=zz, zstd;;, gzip"), Some("gzip")),
        (Some("b r, \"br\", gzip"), Some("gzip")),
    ] {
        let headers: Vec<(&str, &str)> =
            accept.map(|v| ("Accept-Encoding", v)).into_iter().collect();
        let r = get(&fx, "/static/app.js", &headers);
        let ctx = format!("Accept-Encoding: {accept:?}");
        assert_eq!(r.status, 200, "{ctx}");
        assert_eq!(r.header("content-encoding"), coding, "{ctx}");
        assert_eq!(
            r.header_count("content-encoding"),
            usize::from(coding.is_some())
        );
        let want = match coding {
            None => &fx.js,
            Some("gzip") => &fx.gz,
            Some("br") => &fx.br,
            Some(_) => &fx.zst,
        };
        assert!(r.body == *want, "{ctx}: body is not the {coding:?} file");
        assert_eq!(r.content_length(), Some(want.len() as u64), "{ctx}");
        assert_eq!(r.header("content-type"), Some(js_type.as_str()), "{ctx}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{ctx}");
        assert_eq!(r.header_count("vary"), 1, "{ctx}");
    }
}

#[test]
fn repeated_accept_encoding_fields_are_one_list() {
    let fx = setup();
    let r = get(
        &fx,
        "/static/app.js",
        &[("Accept-Encoding", "gzip"), ("Accept-Encoding", "br")],
    );
    assert_eq!(r.header("content-encoding"), Some("br"));
    let r = get(
        &fx,
        "/static/app.js",
        &[
            ("Accept-Encoding", "br, gzip"),
            ("Accept-Encoding", "br;q=0"),
        ],
    );
    assert_eq!(r.header("content-encoding"), Some("gzip"));
}

#[test]
fn missing_variants_direct_names_and_missing_originals() {
    let fx = setup();
    // Only a .gz there: br is asked for first, gzip is what exists.
    let r = get(&fx, "/static/only-gz.css", &ae("br"));
    assert_eq!((r.status, r.header("content-encoding")), (200, None));
    assert_eq!(r.body, b"body { color: red }\n");
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    let r = get(&fx, "/static/only-gz.css", &ae("br, gzip"));
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.body, fs::read(fx.root.join("only-gz.css.gz")).unwrap());
    assert_eq!(
        r.header("content-type"),
        Some(identity_type(&fx, "only-gz.css").as_str())
    );

    let r = get(&fx, "/static/plain.txt", &ae("br, gzip"));
    assert_eq!((r.status, r.header("content-encoding")), (200, None));
    assert_eq!(r.body, b"plain\n");
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));

    // The variant named directly is an ordinary file: its own type, no Content-Encoding.
    let r = get(&fx, "/static/app.js.gz", &ae("gzip, br, zstd"));
    assert_eq!((r.status, r.header("content-encoding")), (200, None));
    assert!(r.body == fx.gz);
    assert_eq!(
        r.header("content-type"),
        Some(identity_type(&fx, "app.js.gz").as_str())
    );

    // A variant without its original is not served in its place.
    let r = get(&fx, "/static/ghost.js", &ae("gzip"));
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));

    // A location without precompressed: neither variants nor Vary.
    let r = get(&fx, "/plain/app.js", &ae("br, gzip"));
    assert_eq!(
        (r.header("content-encoding"), r.header("vary")),
        (None, None)
    );
    assert!(r.body == fx.js);
}

#[test]
fn variants_have_their_own_validators() {
    let fx = setup();
    let identity = get(&fx, "/static/app.js", &[]);
    let gz = get(&fx, "/static/app.js", &ae("gzip"));
    let br = get(&fx, "/static/app.js", &ae("br"));
    let etags: Vec<&str> = [&identity, &gz, &br]
        .iter()
        .map(|r| r.header("etag").unwrap())
        .collect();
    assert!(
        etags[0] != etags[1] && etags[1] != etags[2] && etags[0] != etags[2],
        "{etags:?}"
    );
    assert_eq!(
        gz.header("last-modified"),
        Some(http_date(mtime(&fx.root.join("app.js.gz"))).as_str())
    );
    assert_ne!(gz.header("last-modified"), identity.header("last-modified"));

    // The variant's ETag validates the variant only.
    let gz_etag = gz.header("etag").unwrap();
    let r = get(
        &fx,
        "/static/app.js",
        &[("Accept-Encoding", "gzip"), ("If-None-Match", gz_etag)],
    );
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(gz_etag));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    for other in [&[("Accept-Encoding", "br")][..], &[][..]] {
        let mut headers = other.to_vec();
        headers.push(("If-None-Match", gz_etag));
        let r = get(&fx, "/static/app.js", &headers);
        assert_eq!(r.status, 200, "{other:?}");
    }
    // If-Modified-Since at the variant's date: not modified.
    let since = gz.header("last-modified").unwrap();
    let r = get(
        &fx,
        "/static/app.js",
        &[("Accept-Encoding", "gzip"), ("If-Modified-Since", since)],
    );
    assert_eq!(r.status, 304);
    // If-Match with the identity ETag fails on the gzip representation.
    let r = get(
        &fx,
        "/static/app.js",
        &[("Accept-Encoding", "gzip"), ("If-Match", etags[0])],
    );
    assert_eq!(r.status, 412);
}

#[test]
fn ranges_apply_to_the_variants_bytes() {
    let fx = setup();
    let len = fx.gz.len();
    let r = get(
        &fx,
        "/static/app.js",
        &[("Accept-Encoding", "gzip"), ("Range", "bytes=10-99")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 10-99/{len}").as_str())
    );
    assert_eq!(r.body, fx.gz[10..100]);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));

    let r = get(
        &fx,
        "/static/app.js",
        &[("Accept-Encoding", "br"), ("Range", "bytes=-5")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, fx.br[fx.br.len() - 5..]);

    // Past the variant's end (though inside the original's): 416 with the variant's length.
    let past = format!("bytes={len}-");
    let r = get(
        &fx,
        "/static/app.js",
        &[("Accept-Encoding", "gzip"), ("Range", &past)],
    );
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    assert_eq!(r.header("content-encoding"), None);

    // Several ranges of an encoded representation: the whole variant instead.
    let r = get(
        &fx,
        "/static/app.js",
        &[("Accept-Encoding", "gzip"), ("Range", "bytes=0-9,20-29")],
    );
    assert_eq!(
        (r.status, r.header("content-encoding")),
        (200, Some("gzip"))
    );
    assert!(r.body == fx.gz);

    // If-Range with the identity ETag does not hold for the variant: the whole variant.
    let identity_etag = get(&fx, "/static/app.js", &[])
        .header("etag")
        .unwrap()
        .to_string();
    let r = get(
        &fx,
        "/static/app.js",
        &[
            ("Accept-Encoding", "gzip"),
            ("Range", "bytes=0-9"),
            ("If-Range", &identity_etag),
        ],
    );
    assert_eq!(r.status, 200);
    assert!(r.body == fx.gz);
}

#[test]
fn head_announces_the_variant() {
    let fx = setup();
    let r = fx.server.request("HEAD", "/static/app.js", &ae("br"));
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(r.content_length(), Some(fx.br.len() as u64));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    let get = get(&fx, "/static/app.js", &ae("br"));
    assert_eq!(r.header("etag"), get.header("etag"));
}

#[test]
fn index_files_have_variants() {
    let fx = setup();
    let r = get(&fx, "/static/dir/", &ae("gzip, br"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(r.body, brotli_stored(b"<h1>index</h1>\n"));
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/html"),
        "{:?}",
        r.header("content-type")
    );
    let r = get(&fx, "/static/dir/", &ae("gzip"));
    assert_eq!(
        (r.header("content-encoding"), r.body.as_slice()),
        (None, &b"<h1>index</h1>\n"[..])
    );
    // The directory without its slash is still a redirect, with Vary.
    let r = get(&fx, "/static/dir", &ae("br"));
    assert_eq!((r.status, r.header("vary")), (301, Some("Accept-Encoding")));
}

#[test]
fn variants_out_of_the_root_or_not_files_are_skipped() {
    let fx = setup();
    let r = get(&fx, "/static/evil.js", &ae("br"));
    assert_eq!((r.status, r.header("content-encoding")), (200, None));
    assert_eq!(r.body, b"evil identity\n");
    assert!(
        !r.body.windows(SECRET.len()).any(|w| w == SECRET),
        "a variant out of the root leaked"
    );
    let r = get(&fx, "/static/odd.js", &ae("br"));
    assert_eq!((r.status, r.header("content-encoding")), (200, None));
    assert_eq!(r.body, b"odd identity\n");
}

fn curl_body(args: &[&str]) -> (Vec<u8>, String) {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let out = curl()
        .args(["-s", "--http1.1", "-D"])
        .arg(&headers)
        .args(args)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.stdout, fs::read_to_string(&headers).unwrap())
}

/// curl decodes what it gets back into the original bytes, for each coding it supports.
#[test]
fn curl_compressed_gets_the_original_back() {
    let fx = setup();
    let url = format!("http://{}/static/app.js", fx.server.addr());
    let features = String::from_utf8(curl().arg("--version").output().unwrap().stdout).unwrap();
    let mut codings = vec!["gzip"];
    if features.contains("brotli") {
        codings.push("br");
    }
    for coding in codings {
        let header = format!("Accept-Encoding: {coding}");
        let (body, headers) = curl_body(&["--compressed", "-H", &header, &url]);
        assert!(
            headers
                .to_ascii_lowercase()
                .contains(&format!("content-encoding: {coding}")),
            "{coding}: {headers}"
        );
        assert!(body == fx.js, "{coding}: curl's decoded body differs");
    }
    // curl's own Accept-Encoding (every coding it decodes).
    let (body, _) = curl_body(&["--compressed", &url]);
    assert!(body == fx.js, "curl --compressed: decoded body differs");
    // Without --compressed curl asks for nothing and gets the original.
    let (body, headers) = curl_body(&[&url]);
    assert!(body == fx.js);
    assert!(!headers.to_ascii_lowercase().contains("content-encoding"));
}

#[test]
fn metrics_count_the_variants_bytes_on_sendfile() {
    let fx = setup();
    let base = fx.server.metrics();
    let mut total = 0;
    for (accept, len) in [("gzip", fx.gz.len()), ("br", fx.br.len())] {
        let r = get(&fx, "/static/app.js", &ae(accept));
        assert_eq!(r.body.len(), len);
        total += len;
    }
    let delta = wait_delta(
        &fx.server,
        &base,
        "ferry_body_bytes_total",
        &[("path", "sendfile")],
        total as f64,
    );
    assert_eq!(delta, total as f64, "body bytes on path=sendfile");
    let zero_copy = wait_delta(
        &fx.server,
        &base,
        "ferry_zero_copy_bytes_total",
        &[("path", "sendfile")],
        total as f64,
    );
    assert_eq!(zero_copy, total as f64, "zero-copy bytes on path=sendfile");
    let now = fx.server.metrics();
    let buffered = now.get("ferry_body_bytes_total", &[("path", "buffered")])
        - base.get("ferry_body_bytes_total", &[("path", "buffered")]);
    assert_eq!(buffered, 0.0);
}

/// The stored-block brotli writer above, checked by curl (when it decodes brotli) on an empty
/// body and on one longer than a meta-block, so the fixture is not what is being tested.
#[test]
fn the_test_brotli_writer_is_valid_brotli() {
    let features = String::from_utf8(curl().arg("--version").output().unwrap().stdout).unwrap();
    if !features.contains("brotli") {
        eprintln!("curl here does not decode brotli: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let long = random_bytes(7, 200_000);
    for (name, data) in [("empty.bin", &b""[..]), ("long.bin", &long[..])] {
        fs::write(root.join(name), data).unwrap();
        fs::write(root.join(format!("{name}.br")), brotli_stored(data)).unwrap();
    }
    let toml = format!(
        "{}precompressed = [\"br\"]\n",
        Config::static_root(root).to_toml()
    );
    let server = start_toml(&toml);
    for (name, data) in [("empty.bin", &b""[..]), ("long.bin", &long[..])] {
        let url = format!("http://{}/static/{name}", server.addr());
        let (body, headers) = curl_body(&["--compressed", "-H", "Accept-Encoding: br", &url]);
        assert!(
            headers
                .to_ascii_lowercase()
                .contains("content-encoding: br")
        );
        assert!(body == data, "{name}");
    }
}

/// An internal location's variants serve X-Accel-Redirect answers too (nginx's gzip_static
/// applies after an internal redirect as well).
#[test]
fn x_accel_redirect_into_an_internal_location_gets_variants() {
    use common::app::{App, ProxyConfig, qenc};
    let tmp = tempfile::tempdir().unwrap();
    let files = tmp.path().join("files");
    fs::create_dir_all(&files).unwrap();
    let js = b"console.log('offloaded');\n".repeat(50);
    let gz = gzip(&js);
    fs::write(files.join("app.js"), &js).unwrap();
    fs::write(files.join("app.js.gz"), &gz).unwrap();
    let app = App::start();
    let cfg = ProxyConfig::new(&app.address).location("/protected/", &files, true);
    let server = start_toml(&format!("{}precompressed = [\"gzip\"]\n", cfg.to_toml()));
    let target = format!("/accel?to={}", qenc("/protected/app.js"));
    let r = server.request("GET", &target, &ae("gzip"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(r.body == gz);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    let r = server.request("GET", &target, &[]);
    assert_eq!((r.status, r.header("content-encoding")), (200, None));
    assert!(r.body == js);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
}
