//! kTLS end to end: a 64 MiB static file over HTTPS, sent by `sendfile(2)` on a socket the kernel
//! encrypts (`ktls = "require"`), and the same download with kTLS switched off (`ktls = "off"`,
//! userspace TLS).
//!
//! These tests need a kernel with the `tls` ULP, which the development and CI hosts do not have.
//! `scripts/vm-test.sh` builds this test binary and ferry on the host and runs the binary inside
//! the throwaway VM of `tests/vm/` (Debian's 6.1 kernel, `tls` loaded) with
//! `FERRY_IN_KTLS_VM=1` and `FERRY_BIN=<host path of target/debug/ferry>`; the repository is
//! shared into the guest at the same absolute path. Without `FERRY_IN_KTLS_VM=1` every test
//! returns at once (plain `cargo test` only compiles them).
//!
//! The guest has no Rust toolchain, only curl, openssl, python3 and coreutils, so the client is
//! curl and the digests come from `sha256sum`. Everything is bounded: ferry's start-up, every
//! socket read (`IO_TIMEOUT`), curl (`--max-time`) and every metrics poll (`DEADLINE`). The VM
//! runs under TCG (no KVM), so the bounds are generous; none of them is a timing assertion.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

const IN_VM_VAR: &str = "FERRY_IN_KTLS_VM";
const FILE_SIZE: u64 = 64 * 1024 * 1024;
const FILE_NAME: &str = "big.bin";
/// Bound on each socket read and write (metrics scrapes).
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on ferry printing its listeners, and on each "wait until the metrics show it" poll.
const DEADLINE: Duration = Duration::from_secs(60);
/// curl's `--max-time` for the 64 MiB download (software AES-GCM on both ends, under TCG).
const DOWNLOAD_MAX_TIME_SECS: u32 = 600;
const TLS_STAT: &str = "/proc/net/tls_stat";
const ULP_PATH: &str = "/proc/sys/net/ipv4/tcp_available_ulp";
/// The test certificate baked into the VM image, used when `openssl req` fails.
const GUEST_CERT: &str = "/etc/ktls-vm/cert.pem";
const GUEST_KEY: &str = "/etc/ktls-vm/key.pem";

/// The two tests run one after the other: `TlsTxSw` is a machine-wide counter, and the VM has
/// 2 vCPUs under TCG.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn ktls_require_sends_static_file_with_sendfile_on_kernel_tls() {
    let Some(_serial) = vm_only("ktls_require_sends_static_file_with_sendfile_on_kernel_tls")
    else {
        return;
    };
    let ulp = fs::read_to_string(ULP_PATH).unwrap_or_default();
    assert!(
        ulp.split_whitespace().any(|u| u == "tls"),
        "{ULP_PATH} is {ulp:?}: this kernel has no `tls` ULP (is this the ktls VM?)"
    );
    let fx = Fixture::new();
    let ferry = Ferry::start(&fx, "require");

    let before = ferry.scrape();
    let tx_before = tls_stat("TlsTxSw");
    let out = fx.download(ferry.https, &ferry);
    fx.assert_same_file(&out, &ferry);
    let tx_after = tls_stat("TlsTxSw");
    assert!(
        tx_after > tx_before,
        "TlsTxSw did not rise ({tx_before} -> {tx_after}): no kTLS TX session was installed\n{}",
        ferry.diagnostics()
    );

    let responses = [
        ("path", "ktls_sendfile"),
        ("source", "static"),
        ("code", "2xx"),
    ];
    ferry.wait_for(&before, "ferry_responses_total", &responses, 1.0);
    let zero_copy = [("path", "ktls_sendfile")];
    let after = ferry.wait_for(
        &before,
        "ferry_zero_copy_bytes_total",
        &zero_copy,
        FILE_SIZE as f64,
    );
    let grew = delta(&before, &after, "ferry_zero_copy_bytes_total", &zero_copy);
    assert_eq!(
        grew,
        FILE_SIZE as f64,
        "ferry_zero_copy_bytes_total{{path=\"ktls_sendfile\"}} must grow by exactly the file size\n{}",
        ferry.diagnostics()
    );
    let handshakes = after.get(
        "ferry_tls_handshakes_total",
        &[("result", "ok"), ("ktls", "true")],
    );
    assert!(
        handshakes >= 1.0,
        "ferry_tls_handshakes_total{{result=\"ok\",ktls=\"true\"}} is {handshakes}\n{}",
        ferry.diagnostics()
    );
    eprintln!(
        "ktls require: {FILE_SIZE} bytes identical, TlsTxSw {tx_before} -> {tx_after}, \
         ktls_sendfile zero-copy +{grew}, kTLS handshakes {handshakes}"
    );
}

#[test]
fn ktls_off_sends_static_file_with_userspace_tls() {
    let Some(_serial) = vm_only("ktls_off_sends_static_file_with_userspace_tls") else {
        return;
    };
    let fx = Fixture::new();
    let ferry = Ferry::start(&fx, "off");

    let before = ferry.scrape();
    let tx_before = tls_stat("TlsTxSw");
    let out = fx.download(ferry.https, &ferry);
    fx.assert_same_file(&out, &ferry);
    let tx_after = tls_stat("TlsTxSw");
    assert_eq!(
        tx_after,
        tx_before,
        "ktls = \"off\", yet TlsTxSw rose: a kTLS session was installed\n{}",
        ferry.diagnostics()
    );

    let responses = [
        ("path", "tls_buffered"),
        ("source", "static"),
        ("code", "2xx"),
    ];
    ferry.wait_for(&before, "ferry_responses_total", &responses, 1.0);
    let fallback = [
        ("from", "ktls"),
        ("to", "tls_buffered"),
        ("reason", "disabled"),
    ];
    let after = ferry.wait_for(&before, "ferry_fallbacks_total", &fallback, 1.0);
    eprintln!(
        "ktls off: {FILE_SIZE} bytes identical, TlsTxSw unchanged at {tx_after}, \
         fallbacks{{reason=\"disabled\"}} +{}",
        delta(&before, &after, "ferry_fallbacks_total", &fallback)
    );
}

/// `Some(lock)` inside the VM; `None`, after saying why, everywhere else.
fn vm_only(test: &str) -> Option<MutexGuard<'static, ()>> {
    if std::env::var(IN_VM_VAR).as_deref() != Ok("1") {
        eprintln!(
            "{test}: skipped: this test only runs inside the kTLS VM, via scripts/vm-test.sh \
             ({IN_VM_VAR}=1 is not set)"
        );
        return None;
    }
    Some(
        SERIAL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    )
}

/// The ferry binary: `FERRY_BIN` (set by scripts/vm-test.sh), else the one cargo built with
/// this test (the same host path, which the VM shares).
fn ferry_bin() -> PathBuf {
    std::env::var_os("FERRY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ferry")))
}

/// A temp dir with a certificate, a key and a 64 MiB pseudo-random file under `files/`.
struct Fixture {
    dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    root: PathBuf,
    file: PathBuf,
    sha256: String,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key) = cert_and_key(dir.path());
        let root = dir.path().join("files");
        fs::create_dir(&root).unwrap();
        let file = root.join(FILE_NAME);
        write_pseudo_random(&file, FILE_SIZE);
        let sha256 = sha256sum(&file);
        Fixture {
            dir,
            cert,
            key,
            root,
            file,
            sha256,
        }
    }

    fn config(&self, ktls: &str) -> String {
        format!(
            "[server]\n\
             listen = [\"127.0.0.1:0\"]\n\
             [admin]\n\
             listen = \"127.0.0.1:0\"\n\
             [tls]\n\
             listen = [\"127.0.0.1:0\"]\n\
             cert = {cert}\n\
             key = {key}\n\
             ktls = \"{ktls}\"\n\
             alpn = [\"http/1.1\"]\n\
             [[location]]\n\
             prefix = \"/static/\"\n\
             root = {root}\n",
            cert = toml_str(&self.cert),
            key = toml_str(&self.key),
            root = toml_str(&self.root),
        )
    }

    /// `curl -sk --http1.1 https://ADDR/static/big.bin -o OUT`; asserts a 200.
    fn download(&self, addr: SocketAddr, ferry: &Ferry) -> PathBuf {
        let out = self.dir.path().join("download.bin");
        let url = format!("https://{addr}/static/{FILE_NAME}");
        let result = Command::new("curl")
            .args(["-sSk", "--http1.1", "--max-time"])
            .arg(DOWNLOAD_MAX_TIME_SECS.to_string())
            .args(["-w", "%{http_code}", "-o"])
            .arg(&out)
            .arg(&url)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run curl: {e}"));
        let code = String::from_utf8_lossy(&result.stdout).trim().to_string();
        assert!(
            result.status.success() && code == "200",
            "curl {url}: {} (HTTP code {code:?}), stderr: {}\n{}",
            result.status,
            String::from_utf8_lossy(&result.stderr).trim(),
            ferry.diagnostics()
        );
        out
    }

    fn assert_same_file(&self, out: &Path, ferry: &Ferry) {
        let len = fs::metadata(out).map(|m| m.len()).unwrap_or(0);
        assert_eq!(
            len,
            FILE_SIZE,
            "downloaded body has the wrong length\n{}",
            ferry.diagnostics()
        );
        let got = sha256sum(out);
        assert_eq!(
            got,
            self.sha256,
            "downloaded body differs from {} (sha256)\n{}",
            self.file.display(),
            ferry.diagnostics()
        );
    }
}

/// A self-signed P-256 certificate for CN=localhost, made with openssl; the VM image's test
/// certificate if that fails.
fn cert_and_key(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-subj", "/CN=localhost", "-days", "1"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output();
    match made {
        Ok(o) if o.status.success() => (cert, key),
        other => {
            let why = describe(&other);
            let (gc, gk) = (PathBuf::from(GUEST_CERT), PathBuf::from(GUEST_KEY));
            assert!(
                gc.exists() && gk.exists(),
                "openssl req failed ({why}) and {GUEST_CERT} is missing"
            );
            eprintln!("openssl req failed ({why}); using {GUEST_CERT}");
            (gc, gk)
        }
    }
}

fn describe(result: &std::io::Result<Output>) -> String {
    match result {
        Ok(o) => format!(
            "{}: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => e.to_string(),
    }
}

/// `size` bytes of xorshift64* output: incompressible, and the same on every run.
fn write_pseudo_random(path: &Path, size: u64) {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for chunk in block.chunks_exact_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            chunk.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        w.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    w.flush().unwrap();
}

fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run sha256sum: {e}"));
    assert!(
        out.status.success(),
        "sha256sum {}: {}",
        path.display(),
        out.status
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("sha256sum printed nothing for {}", path.display()))
        .to_string()
}

fn toml_str(path: &Path) -> String {
    let s = path.to_str().expect("utf-8 temp path");
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// One counter of /proc/net/tls_stat, e.g. `TlsTxSw` (kTLS TX sessions installed in software).
fn tls_stat(name: &str) -> u64 {
    let text = fs::read_to_string(TLS_STAT)
        .unwrap_or_else(|e| panic!("{TLS_STAT}: {e} (is the `tls` module loaded?)"));
    text.lines()
        .find_map(|l| {
            let (key, value) = l.split_once(char::is_whitespace)?;
            if key == name {
                value.trim().parse().ok()
            } else {
                None
            }
        })
        .unwrap_or_else(|| panic!("{TLS_STAT} has no {name}:\n{text}"))
}

/// The running ferry, killed on drop. Its stdout and stderr are drained into memory (so the
/// pipes never fill) and shown in every failure message.
struct Ferry {
    child: Child,
    https: SocketAddr,
    admin: SocketAddr,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    stderr_events: Receiver<Event>,
    config: String,
    _config_dir: tempfile::TempDir,
}

enum Event {
    Line(String),
    Eof,
}

impl Ferry {
    /// Writes the config, runs `FERRY_BIN serve --config FILE` and waits, at most `DEADLINE`,
    /// for its `listening http|https|admin ADDR` lines.
    fn start(fx: &Fixture, ktls: &str) -> Ferry {
        let config = fx.config(ktls);
        let config_dir = tempfile::tempdir().unwrap();
        let path = config_dir.path().join("ferry.toml");
        fs::write(&path, &config).unwrap();
        let bin = ferry_bin();
        let mut child = Command::new(&bin)
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start ferry ({}): {e}", bin.display()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (err_tx, stderr_events) = mpsc::channel();
        drain(child.stderr.take().unwrap(), stderr.clone(), err_tx);
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        drain(child.stdout.take().unwrap(), stdout.clone(), tx);
        let mut ferry = Ferry {
            child,
            https: unspecified(),
            admin: unspecified(),
            stdout,
            stderr,
            stderr_events,
            config,
            _config_dir: config_dir,
        };
        ferry.wait_listening(&rx);
        ferry
    }

    fn wait_listening(&mut self, rx: &Receiver<Event>) {
        let deadline = Instant::now() + DEADLINE;
        let (mut http, mut https, mut admin) = (None, None, None);
        while http.is_none() || https.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let why = match rx.recv_timeout(left.min(Duration::from_millis(250))) {
                Ok(Event::Line(line)) => {
                    let mut words = line.split_whitespace();
                    if words.next() == Some("listening") {
                        let kind = words.next();
                        let addr = words.next().and_then(|a| a.parse::<SocketAddr>().ok());
                        match kind {
                            Some("http") => http = http.or(addr),
                            Some("https") => https = https.or(addr),
                            Some("admin") => admin = admin.or(addr),
                            _ => {}
                        }
                    }
                    continue;
                }
                Ok(Event::Eof) | Err(RecvTimeoutError::Disconnected) => {
                    "ferry closed its stdout before printing its listeners"
                }
                Err(RecvTimeoutError::Timeout) if left.is_zero() => {
                    "ferry did not print `listening http|https|admin` lines in time"
                }
                Err(RecvTimeoutError::Timeout) => continue,
            };
            self.fail_start(why);
        }
        self.https = https.unwrap();
        self.admin = admin.unwrap();
    }

    /// Stops ferry and panics with its exit status, output and config.
    fn fail_start(&mut self, why: &str) -> ! {
        // A ferry that rejected its config is exiting on its own: give it a bounded moment so
        // the message shows its own exit status, then kill it.
        let until = Instant::now() + Duration::from_secs(5);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status.to_string(),
                Ok(None) if Instant::now() < until => thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = self.child.kill();
                    let status = self.child.wait().map(|s| s.to_string());
                    break format!("killed: {}", status.unwrap_or_default());
                }
            }
        };
        // The stderr drain ends when ferry is gone; give it a bounded moment to catch up.
        let until = Instant::now() + Duration::from_secs(2);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.stderr_events.recv_timeout(left) {
                Ok(Event::Line(_)) => continue,
                Ok(Event::Eof) | Err(_) => break,
            }
        }
        panic!(
            "{why} (ferry {status}; binary {})\n{}",
            ferry_bin().display(),
            self.diagnostics()
        );
    }

    fn diagnostics(&self) -> String {
        let tail = |lines: &Arc<Mutex<Vec<String>>>| {
            let lines = lines.lock().unwrap();
            let from = lines.len().saturating_sub(40);
            lines[from..].join("\n")
        };
        format!(
            "--- ferry config ---\n{}--- ferry stderr (last 40 lines) ---\n{}\n\
             --- ferry stdout (last 40 lines) ---\n{}\n---",
            self.config,
            tail(&self.stderr),
            tail(&self.stdout)
        )
    }

    fn scrape(&self) -> Metrics {
        match get_metrics(self.admin) {
            Ok(text) => Metrics::parse(&text),
            Err(e) => panic!(
                "GET http://{}/metrics: {e}\n{}",
                self.admin,
                self.diagnostics()
            ),
        }
    }

    /// Polls /metrics until `name{filter}` has grown by at least `want` since `before`, at most
    /// `DEADLINE`; returns that scrape.
    fn wait_for(
        &self,
        before: &Metrics,
        name: &str,
        filter: &[(&str, &str)],
        want: f64,
    ) -> Metrics {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let now = self.scrape();
            let grew = delta(before, &now, name, filter);
            if grew >= want {
                return now;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{name}{} grew by {grew}, expected at least {want}\n\
                     --- matching series now ---\n{}\n{}",
                    show(filter),
                    now.lines(name),
                    self.diagnostics()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

/// Reads `r` line by line into `into`, and tells `tx` (while someone listens) about each line
/// and the end.
fn drain<R: Read + Send + 'static>(r: R, into: Arc<Mutex<Vec<String>>>, tx: mpsc::Sender<Event>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(r);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line)
                        .trim_end_matches(['\r', '\n'])
                        .to_string();
                    into.lock().unwrap().push(text.clone());
                    let _ = tx.send(Event::Line(text));
                }
            }
        }
        let _ = tx.send(Event::Eof);
    });
}

/// `GET /metrics` over a raw socket with a timeout on every read and write.
fn get_metrics(admin: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&admin, IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| invalid(format!("no end of response head in {} bytes", raw.len())))?;
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(invalid(format!("status line {status:?}")));
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        dechunk(body)
    } else {
        Ok(body.to_string())
    }
}

fn dechunk(mut rest: &str) -> std::io::Result<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest
            .split_once("\r\n")
            .ok_or_else(|| invalid("truncated chunk size".into()))?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| invalid(format!("bad chunk size {size:?}: {e}")))?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = after
            .get(..size)
            .ok_or_else(|| invalid("truncated chunk".into()))?;
        out.push_str(chunk);
        rest = after[size..].trim_start_matches("\r\n");
    }
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

/// The samples of one Prometheus text exposition.
struct Metrics {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
    text: String,
}

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = match line.rfind('}') {
                Some(close) => (&line[..=close], &line[close + 1..]),
                None => line.split_once(' ').unwrap_or((line, "")),
            };
            let Some(Ok(value)) = value.split_whitespace().next().map(str::parse::<f64>) else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, parse_labels(labels.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            samples.push((name.to_string(), labels, value));
        }
        Metrics {
            samples,
            text: text.to_string(),
        }
    }

    /// Sum of the series named `name` whose labels include every pair of `filter`.
    fn get(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, labels, _)| {
                n == name
                    && filter
                        .iter()
                        .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    fn lines(&self, name: &str) -> String {
        let found: Vec<&str> = self
            .text
            .lines()
            .filter(|l| l.split(['{', ' ']).next() == Some(name))
            .collect();
        if found.is_empty() {
            format!("(no series named {name})")
        } else {
            found.join("\n")
        }
    }
}

/// `a="x",b="y"` (values may contain `\"`, `\\`, `\n`).
fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(key.trim_matches([',', ' ']).to_string(), value);
        rest = &after[end..];
    }
    out
}

fn delta(before: &Metrics, after: &Metrics, name: &str, filter: &[(&str, &str)]) -> f64 {
    after.get(name, filter) - before.get(name, filter)
}

fn show(filter: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = filter.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{{{}}}", pairs.join(","))
}
