//! TLS helpers for tests/tls.rs: certificates made at test time with `openssl req`, a `[tls]`
//! section appended to a `Config`/`ProxyConfig` TOML, `TlsServer` (a `Server` plus the
//! `listening https` addresses it printed), bounded runs of external commands (curl,
//! `openssl s_client`, `ferry check`), and a real ClientHello captured from `openssl s_client`.

use super::*;
use std::net::TcpListener;
use std::ops::Deref;
use std::process::Output;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
pub use rustls::{ClientConfig, ClientConnection, StreamOwned};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Where the kernel lists its TCP upper-layer protocols (kTLS needs `tls` there).
pub const ULP_PATH: &str = "/proc/sys/net/ipv4/tcp_available_ulp";
/// Bound on every external command (curl has its own `--max-time 60` on top).
pub const CMD_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether this kernel offers the `tls` ULP.
pub fn kernel_has_ktls() -> bool {
    std::fs::read_to_string(ULP_PATH)
        .is_ok_and(|list| list.split_whitespace().any(|ulp| ulp == "tls"))
}

/// These tests describe a kernel without kTLS (userspace TLS, counted fallbacks); on a kernel
/// with the `tls` ULP the expected metrics differ (tests/ktls_vm.rs covers that case).
pub fn assert_kernel_without_ktls() {
    let ulp = std::fs::read_to_string(ULP_PATH).unwrap_or_default();
    assert!(
        !kernel_has_ktls(),
        "{ULP_PATH} is {ulp:?}: this kernel has the `tls` ULP, but tests/tls.rs asserts the \
         no-kTLS behaviour (ulp_unavailable fallbacks, tls_buffered, `require` refusing to start). \
         Run it where `tls` is not loaded (`modprobe -r tls`); tests/ktls_vm.rs covers kTLS."
    );
}

/// Panics with a clear message unless `tool --version`-style `probe` runs.
fn need_tool(tool: &str, probe: &[&str]) {
    let ok = Command::new(tool)
        .args(probe)
        .stdin(Stdio::null())
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "this test needs the `{tool}` binary on PATH (scripts/test.sh installs it); please install {tool}"
    );
}

/// An `openssl` command; panics with a clear message if openssl is not installed.
pub fn openssl() -> Command {
    need_tool("openssl", &["version"]);
    Command::new("openssl")
}

/// Runs `cmd` to completion within `timeout`, feeding it `stdin` (then EOF) and capturing its
/// output; kills it and panics if it overruns.
pub fn run_bounded(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let writer = stdin.map(|data| {
        let mut pipe = child.stdin.take().unwrap();
        let data = data.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
            // dropping `pipe` closes it: EOF
        })
    });
    let reader = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out.join().unwrap_or_default();
            let stderr = err.join().unwrap_or_default();
            panic!(
                "{what} did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// A self-signed P-256 certificate for CN=localhost and its key (PEM files).
#[derive(Clone, Debug)]
pub struct CertPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Generates `NAME.cert.pem` / `NAME.key.pem` in `dir` with `openssl req`, valid for a day.
pub fn gen_cert(dir: &Path, name: &str) -> CertPair {
    gen_cert_days(dir, name, 1)
}

/// As [`gen_cert`], valid for `days` days from now.
pub fn gen_cert_days(dir: &Path, name: &str, days: u32) -> CertPair {
    let cert = dir.join(format!("{name}.cert.pem"));
    let key = dir.join(format!("{name}.key.pem"));
    let mut cmd = openssl();
    cmd.args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-days",
        &days.to_string(),
        "-keyout",
    ])
    .arg(&key)
    .arg("-out")
    .arg(&cert);
    let out = run_bounded(cmd, None, CMD_TIMEOUT);
    assert!(
        out.status.success() && cert.is_file() && key.is_file(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    CertPair { cert, key }
}

fn toml_s(s: &str) -> String {
    serde_json::to_string(s).unwrap() // a JSON string is a valid TOML basic string here
}

/// ferry's `[tls]` section.
#[derive(Clone, Debug)]
pub struct TlsSection {
    pub listen: Vec<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ktls: String,
    pub alpn: Vec<String>,
    pub handshake_timeout: String,
    /// More `key = value` lines for the section, as written.
    pub extra: Vec<String>,
}

impl TlsSection {
    pub fn new(certs: &CertPair) -> TlsSection {
        TlsSection {
            listen: vec!["127.0.0.1:0".into()],
            cert: certs.cert.clone(),
            key: certs.key.clone(),
            ktls: "auto".into(),
            alpn: vec!["h2".into(), "http/1.1".into()],
            handshake_timeout: "10s".into(),
            extra: Vec::new(),
        }
    }

    /// Adds a `key = value` line to the section.
    pub fn with(mut self, line: &str) -> TlsSection {
        self.extra.push(line.into());
        self
    }

    pub fn ktls(mut self, mode: &str) -> TlsSection {
        self.ktls = mode.into();
        self
    }

    pub fn handshake_timeout(mut self, t: &str) -> TlsSection {
        self.handshake_timeout = t.into();
        self
    }

    pub fn listeners(mut self, n: usize) -> TlsSection {
        self.listen = vec!["127.0.0.1:0".into(); n];
        self
    }

    pub fn to_toml(&self) -> String {
        let list = |v: &[String]| v.iter().map(|s| toml_s(s)).collect::<Vec<_>>().join(", ");
        let mut extra = self.extra.join("\n");
        extra.push('\n');
        format!(
            "\n[tls]\nlisten = [{}]\ncert = {}\nkey = {}\nktls = {}\nalpn = [{}]\nhandshake_timeout = {}\n{extra}",
            list(&self.listen),
            toml_s(self.cert.to_str().expect("utf-8 path")),
            toml_s(self.key.to_str().expect("utf-8 path")),
            toml_s(&self.ktls),
            list(&self.alpn),
            toml_s(&self.handshake_timeout),
        )
    }
}

/// Writes `toml` to `DIR/ferry.toml` and returns the path.
pub fn write_config(dir: &Path, toml: &str) -> PathBuf {
    let path = dir.join("ferry.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// Runs the ferry binary with `args` (bounded) and returns its output.
pub fn run_ferry(args: &[&std::ffi::OsStr]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    run_bounded(cmd, None, DEADLINE)
}

/// A running ferry with TLS listeners.
pub struct TlsServer {
    pub server: Server,
    /// Every `listening https ADDR` line, in order.
    pub https: Vec<SocketAddr>,
}

impl Deref for TlsServer {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

impl TlsServer {
    /// Starts `ferry serve` with `toml` (which must have a `[tls]` section with
    /// `expected_https` listeners and one `[server]` listener).
    pub fn start(toml: &str, expected_https: usize) -> TlsServer {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), toml);
        let mut cmd = Command::new(BIN);
        cmd.arg("serve").arg("--config").arg(&path);
        let server = Server::launch(cmd, 1, Some(dir));
        // ferry prints http, then https, then admin lines in one flush, and `launch` returned
        // after seeing the admin line, so every https line is already in.
        let lines = server.stderr_lines();
        let https: Vec<SocketAddr> = lines
            .iter()
            .filter_map(|l| l.trim().strip_prefix("listening https "))
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .collect();
        assert_eq!(
            https.len(),
            expected_https,
            "`listening https ADDR` lines on ferry's stderr:\n{}",
            lines.join("\n")
        );
        TlsServer { server, https }
    }

    pub fn https(&self) -> SocketAddr {
        self.https[0]
    }

    /// `https://localhost:PORT{path}` (with `resolve()`, curl connects to 127.0.0.1 and
    /// sends SNI `localhost`).
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.https().port())
    }

    /// curl's `--resolve` for `url()`.
    pub fn resolve(&self) -> String {
        format!("localhost:{}:127.0.0.1", self.https().port())
    }

    /// `curl -sS -k --resolve ... ARGS`, bounded.
    pub fn curl(&self, args: &[&str]) -> Output {
        let mut c = curl();
        c.args(["-sS", "-k", "--resolve", &self.resolve()]);
        c.args(args);
        run_bounded(c, None, CMD_TIMEOUT)
    }
}

/// Reads until the peer closes (EOF or reset), bounded by the stream's read timeout; returns
/// what arrived. Panics if the connection is still open after IO_TIMEOUT.
pub fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if is_closed_err(&e) => return out,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "connection still open after {IO_TIMEOUT:?} (received {} bytes: {:02x?})",
                    out.len(),
                    &out[..out.len().min(64)]
                )
            }
            Err(e) => panic!("read error while waiting for close: {e}"),
        }
    }
}

/// Kills (and reaps) a child process this test started when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The complete first TLS record (the ClientHello) `openssl s_client` sends, captured on a
/// local listener that never answers.
pub fn real_client_hello() -> Vec<u8> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut cmd = openssl();
    cmd.arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .arg("-servername")
        .arg("localhost")
        // stdin stays open (piped, never written): s_client just waits for the ServerHello
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _client = KillOnDrop(cmd.spawn().expect("spawn openssl s_client"));
    let mut s = poll_until("openssl s_client to connect", DEADLINE, || {
        match listener.accept() {
            Ok((s, _)) => Some(s),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) => panic!("accept: {e}"),
        }
    });
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut rec = vec![0u8; 5];
    s.read_exact(&mut rec).expect("read TLS record header");
    let len = u16::from_be_bytes([rec[3], rec[4]]) as usize;
    rec.resize(5 + len, 0);
    s.read_exact(&mut rec[5..])
        .expect("read the ClientHello record");
    assert_eq!(rec[0], 0x16, "first record is a handshake record");
    assert_eq!(rec[5], 0x01, "first handshake message is a ClientHello");
    rec
}

// ---------------------------------------------------------------------------------------------
// shared by tests/tls.rs and tests/h2.rs

pub const RESPONSES: &str = "ferry_responses_total";
pub const BODY_BYTES: &str = "ferry_body_bytes_total";
pub const ZERO_COPY: &str = "ferry_zero_copy_bytes_total";
pub const CONNS: &str = "ferry_connections_total";
pub const HANDSHAKES: &str = "ferry_tls_handshakes_total";
pub const FALLBACKS: &str = "ferry_fallbacks_total";
/// Every send path that is not userspace TLS (nothing may be counted on them over TLS).
pub const NON_TLS_PATHS: [&str; 5] = [
    "sendfile",
    "splice",
    "ktls_sendfile",
    "ktls_splice",
    "buffered",
];

/// A temp dir with `root/` (served at `/static/`, or internal behind an app) and a
/// certificate pair. Each test file adds its own ways to start ferry on it.
pub struct Fx {
    pub dir: TempDir,
    pub root: PathBuf,
    pub certs: CertPair,
}

impl Fx {
    pub fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let certs = gen_cert(dir.path(), "server");
        Fx { dir, root, certs }
    }

    /// Writes `root/NAME` with `len` pattern bytes.
    pub fn file(&self, name: &str, len: u64, seed: u64) -> Pattern {
        pattern_file(&self.root.join(name), len, seed)
    }

    pub fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// What curl's `-w` reported for one transfer.
#[derive(Debug)]
pub struct Got {
    pub code: u16,
    pub version: String,
    pub connects: u32,
}

pub const W: &str = "%{http_code} %{http_version} %{num_connects}\\n";

pub fn parse_w(stdout: &[u8]) -> Vec<Got> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 3, "curl -w line {l:?}");
            Got {
                code: f[0].parse().unwrap(),
                version: f[1].to_string(),
                connects: f[2].parse().unwrap(),
            }
        })
        .collect()
}

pub fn curl_ok(out: Output, ctx: &str) -> Vec<Got> {
    assert!(
        out.status.success(),
        "{ctx}: curl failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    parse_w(&out.stdout)
}

/// A rustls client over TCP to `addr` (server name `localhost`, IO_TIMEOUT on the socket).
pub fn tls_connect(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
) -> StreamOwned<ClientConnection, TcpStream> {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(Arc::clone(config), name).expect("a TLS client");
    let sock = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    sock.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    StreamOwned::new(conn, sock)
}

/// The DER of the first certificate in the PEM file at `path`.
pub fn leaf(path: &Path) -> Vec<u8> {
    let first = CertificateDer::pem_file_iter(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .next()
        .unwrap_or_else(|| panic!("{}: no certificate", path.display()))
        .unwrap();
    first.to_vec()
}

/// Completes a handshake on `tls` and returns the leaf certificate the server presented.
pub fn handshake(tls: &mut StreamOwned<ClientConnection, TcpStream>) -> Vec<u8> {
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .unwrap_or_else(|e| panic!("TLS handshake with ferry: {e}"));
    }
    let certs = tls.conn.peer_certificates().expect("a server certificate");
    certs[0].to_vec()
}

/// The leaf certificate a new handshake with `addr` gets (no session to resume).
pub fn presented(addr: SocketAddr) -> Vec<u8> {
    handshake(&mut tls_connect(addr, &client_config()))
}

/// TLS 1.3, ALPN http/1.1, any certificate (the test's is self-signed).
pub fn client_config() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Accepts any certificate; signatures are still checked with the provider's algorithms.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
