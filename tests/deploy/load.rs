//! The traffic tests/deploy.rs puts through ferry before asking Prometheus about it: a little
//! of every kind this build serves, each answer checked so a broken path fails here rather
//! than as a mysteriously empty panel. Three ferry processes, scraped as one job:
//! `main` (send_path auto: static sendfile, O_DIRECT reads above a location's
//! directio_threshold, proxied splice and chunked/buffered bodies,
//! X-Accel-Redirect, the disk cache, a protocol upgrade, 404s and 502s, HTTPS over HTTP/1.1
//! and HTTP/2 with its kTLS decision and fallback), `splice` and `buffered` (static files on
//! the send paths `io.send_path` forces).

use super::common::app::*;
use super::common::tls::*;
use super::common::*;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The static file every server sends (plain and TLS), and the cached upstream body.
const SMALL: u64 = 20 * KIB;
/// The proxied file (upstream, Content-Length: splice; chunked: buffered).
const BIG: u64 = MIB;
/// The file the app hands over with X-Accel-Redirect.
const REPORT: u64 = 256 * KIB;

pub struct Load {
    pub fx: Fx,
    /// The app behind `main`, kept running for as long as the load is.
    _app: App,
    pub main: TlsServer,
    pub splice: Server,
    pub buffered: Server,
    /// Served at /direct/ with a directio_threshold below its file's size.
    _direct: TempDir,
    small: Vec<u8>,
    small_path: PathBuf,
    big_path: PathBuf,
}

/// `s` as a TOML basic string.
fn toml_s(s: &Path) -> String {
    serde_json::to_string(s.to_str().expect("utf-8 path")).unwrap()
}

impl Load {
    pub fn start() -> Load {
        let fx = Fx::new();
        let small = fx.file("small.txt", SMALL, 1).bytes(0, SMALL as usize);
        fx.file("big.bin", BIG, 2);
        let files = fx.dir.path().join("files");
        std::fs::create_dir(&files).unwrap();
        pattern_file(&files.join("report.bin"), REPORT, 3);
        let cache = fx.dir.path().join("cache");
        // O_DIRECT needs a file system that has it (tmpfs does not): the target directory's
        let direct = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        pattern_file(&direct.path().join("big.bin"), BIG, 4);
        let app = App::start();
        let toml = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
             [upstream]\naddress = {app}\nmax_conns = 64\n\n[offload]\nx_accel_redirect = true\n\n\
             [cache]\ndir = {cache}\nmax_size = \"64MiB\"\nmax_object_size = \"16MiB\"\n\n\
             [[location]]\nprefix = \"/static/\"\nroot = {root}\n\n\
             [[location]]\nprefix = \"/protected/\"\nroot = {files}\ninternal = true\n\n\
             [[location]]\nprefix = \"/direct/\"\nroot = {direct}\n\
             directio_threshold = \"256KiB\"\n{tls}",
            app = serde_json::to_string(&app.address).unwrap(),
            cache = toml_s(&cache),
            root = toml_s(&fx.root),
            files = toml_s(&files),
            direct = toml_s(direct.path()),
            tls = TlsSection::new(&fx.certs).to_toml(),
        );
        let main = TlsServer::start(&toml, 1);
        let splice = Server::start(&Config::static_root(&fx.root).send_path("splice"));
        let buffered = Server::start(&Config::static_root(&fx.root).send_path("buffered"));
        Load {
            _direct: direct,
            small_path: fx.root.join("small.txt"),
            big_path: fx.root.join("big.bin"),
            fx,
            _app: app,
            main,
            splice,
            buffered,
            small,
        }
    }

    /// The admin addresses Prometheus scrapes.
    pub fn targets(&self) -> Vec<String> {
        [&self.main.admin, &self.splice.admin, &self.buffered.admin]
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    /// One round of every kind of request; panics on any unexpected answer.
    pub fn round(&self) {
        self.plain();
        self.proxied();
        self.upgrade();
        self.https("--http1.1", "1.1");
        self.https("--http2", "2");
    }

    fn plain(&self) {
        for (name, server) in [
            ("auto", &*self.main),
            ("splice", &self.splice),
            ("buffered", &self.buffered),
        ] {
            let r = server.get("/static/small.txt");
            assert_eq!(r.status, 200, "{name}: GET /static/small.txt");
            assert!(
                r.body == self.small,
                "{name}: /static/small.txt body differs"
            );
        }
        // at or above the location's directio_threshold: O_DIRECT reads, path directio
        let r = self.main.get("/direct/big.bin");
        assert_eq!(r.status, 200, "GET /direct/big.bin");
        assert_eq!(r.body.len() as u64, BIG, "GET /direct/big.bin");
        let r = self.main.get("/static/missing.txt");
        assert_eq!(r.status, 404, "GET /static/missing.txt");
    }

    fn proxied(&self) {
        let big = qenc(self.big_path.to_str().unwrap());
        let r = self.main.get(&format!("/file?path={big}"));
        assert_eq!(r.status, 200, "proxied Content-Length body");
        assert_eq!(r.body.len() as u64, BIG, "proxied Content-Length body");
        let r = self
            .main
            .get(&format!("/file?path={big}&mode=chunked&chunk=65536"));
        assert_eq!(r.status, 200, "proxied chunked body");
        assert_eq!(r.body.len() as u64, BIG, "proxied chunked body");

        let r = self.main.get("/accel?to=/protected/report.bin");
        assert_eq!(r.status, 200, "X-Accel-Redirect");
        assert_eq!(r.body.len() as u64, REPORT, "X-Accel-Redirect body");

        // a response head with two Content-Lengths: 502, outcome bad_response
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok";
        let r = self.main.get(&raw_target(raw));
        assert_eq!(r.status, 502, "malformed upstream head");

        // cacheable for 10 minutes: stored on the first request, then answered from the cache
        let small = qenc(self.small_path.to_str().unwrap());
        let cached = format!("/file?path={small}&h={}", qenc("Cache-Control:max-age=600"));
        for _ in 0..2 {
            let r = self.main.get(&cached);
            assert_eq!(r.status, 200, "cacheable upstream body");
            assert!(r.body == self.small, "cacheable upstream body differs");
        }
    }

    /// A websocket upgrade: 101, then the app echoes the bytes (spliced both ways).
    fn upgrade(&self) {
        let mut c = self.main.connect();
        c.send(&req(
            "GET",
            "/ws",
            &[
                ("Connection", "Upgrade"),
                ("Upgrade", "websocket"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Version", "13"),
            ],
        ));
        let r = c.read_head();
        assert_eq!(r.status, 101, "websocket upgrade");
        c.stream.write_all(b"ping").unwrap();
        let mut back = [0u8; 4];
        let mut at = 0;
        while at < back.len() {
            match c.read_some(&mut back[at..]) {
                Ok(0) => panic!("EOF after {at} echoed bytes"),
                Ok(n) => at += n,
                Err(e) => panic!("reading the echo: {e}"),
            }
        }
        assert_eq!(&back, b"ping");
    }

    /// One HTTPS download with curl (`--http1.1` or `--http2`), checked byte for byte.
    fn https(&self, flag: &str, version: &str) {
        let out = self.fx.out("https.bin");
        let url = self.main.url("/static/small.txt");
        let got = self.main.curl(&[
            flag,
            "-o",
            out.to_str().unwrap(),
            "-w",
            "%{http_code} %{http_version}",
            &url,
        ]);
        assert!(
            got.status.success(),
            "curl {flag} {url}: {}",
            String::from_utf8_lossy(&got.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&got.stdout),
            format!("200 {version}"),
            "curl {flag}: status and HTTP version"
        );
        assert!(
            std::fs::read(&out).unwrap() == self.small,
            "curl {flag}: body differs"
        );
    }
}
