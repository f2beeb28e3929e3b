//! Shared helpers of `tests/ktls_vm.rs` (a module of that test crate, not a test target of its
//! own): the fixture (certificate, served files, config), the running ferry (start-up, metrics,
//! signals, CPU time), /proc/net/tls_stat, and the two TLS clients the guest offers (a Python
//! `ssl` script and `openssl s_client`). Every wait is bounded; none of the bounds is a timing
//! assertion (the VM runs under TCG).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

pub mod offload;
pub mod tls_client;

pub const IN_VM_VAR: &str = "FERRY_IN_KTLS_VM";
pub const FILE_SIZE: u64 = 64 * 1024 * 1024;
pub const FILE_NAME: &str = "big.bin";
/// A small pseudo-random file: several TLS records (16 KiB each), sent by `ktls_sendfile`.
pub const SMALL_SIZE: u64 = 256 * 1024;
pub const SMALL_NAME: &str = "small.bin";
/// A text file for `openssl s_client`, whose body is printed on its stdout; it ends with
/// `TEXT_END` so the test can count complete bodies there.
pub const TEXT_NAME: &str = "hello.txt";
pub const TEXT_END: &str = "END-OF-FERRY-TEXT";
/// Bound on each socket read and write (metrics scrapes).
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on ferry printing its listeners, and on each "wait until the metrics show it" poll.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// curl's `--max-time` for the 64 MiB download (software AES-GCM on both ends, under TCG).
pub const DOWNLOAD_MAX_TIME_SECS: u32 = 600;
pub const TLS_STAT: &str = "/proc/net/tls_stat";
pub const ULP_PATH: &str = "/proc/sys/net/ipv4/tcp_available_ulp";
/// The test certificate baked into the VM image, used when `openssl req` fails.
pub const GUEST_CERT: &str = "/etc/ktls-vm/cert.pem";
pub const GUEST_KEY: &str = "/etc/ktls-vm/key.pem";

/// The tests run one after the other: `TlsTxSw` is a machine-wide counter, and the VM has
/// 2 vCPUs under TCG.
static SERIAL: Mutex<()> = Mutex::new(());

/// Panics unless this kernel offers the `tls` ULP.
pub fn assert_tls_ulp() {
    let ulp = fs::read_to_string(ULP_PATH).unwrap_or_default();
    assert!(
        ulp.split_whitespace().any(|u| u == "tls"),
        "{ULP_PATH} is {ulp:?}: this kernel has no `tls` ULP (is this the ktls VM?)"
    );
}

/// The lock that runs the kTLS tests one at a time. Panics outside the VM: the tests are
/// `#[ignore]`d, so this runs only when someone asked for the ignored tests, and a kTLS test
/// that cannot run must not pass.
pub fn vm_only() -> MutexGuard<'static, ()> {
    assert!(
        std::env::var(IN_VM_VAR).as_deref() == Ok("1"),
        "this test only runs inside the kTLS VM: scripts/vm-test.sh ({IN_VM_VAR}=1 is not set)"
    );
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The ferry binary: `FERRY_BIN` (set by scripts/vm-test.sh), else the one cargo built with
/// this test (the same host path, which the VM shares).
pub fn ferry_bin() -> PathBuf {
    std::env::var_os("FERRY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ferry")))
}

/// A temp dir with a certificate, a key and, under `files/`: `small.bin` (256 KiB,
/// pseudo-random), `hello.txt` (text ending in `TEXT_END`) and, for the download tests,
/// `big.bin` (64 MiB, pseudo-random).
pub struct Fixture {
    pub dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    root: PathBuf,
    /// `files/big.bin` and its sha256 (`None` for `Fixture::small`, which has no big file).
    file: PathBuf,
    sha256: Option<String>,
    /// sha256 of `files/small.bin`.
    pub small_sha256: String,
    /// The content of `files/hello.txt`.
    pub text: String,
}

impl Fixture {
    /// With the 64 MiB file.
    pub fn new() -> Fixture {
        Fixture::build(true)
    }

    /// Without the 64 MiB file (the connection tests only fetch small bodies).
    pub fn small() -> Fixture {
        Fixture::build(false)
    }

    /// As `small`, with an RSA certificate: a TLS 1.2 client then negotiates an ECDHE-RSA
    /// suite.
    pub fn small_rsa() -> Fixture {
        Fixture::build_with(false, KeyKind::Rsa)
    }

    /// The content of `files/small.bin`.
    pub fn small_bytes(&self) -> Vec<u8> {
        fs::read(self.root.join(SMALL_NAME)).expect("files/small.bin")
    }

    fn build(big: bool) -> Fixture {
        Fixture::build_with(big, KeyKind::Ec)
    }

    fn build_with(big: bool, kind: KeyKind) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key) = cert_and_key(dir.path(), kind);
        let root = dir.path().join("files");
        fs::create_dir(&root).unwrap();
        let file = root.join(FILE_NAME);
        let sha256 = big.then(|| {
            write_pseudo_random(&file, FILE_SIZE);
            sha256sum(&file)
        });
        let small = root.join(SMALL_NAME);
        write_pseudo_random(&small, SMALL_SIZE);
        let small_sha256 = sha256sum(&small);
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(&format!("ferry kTLS connection test, line {i:04}\n"));
        }
        text.push_str(TEXT_END);
        text.push('\n');
        fs::write(root.join(TEXT_NAME), &text).unwrap();
        Fixture {
            dir,
            cert,
            key,
            root,
            file,
            sha256,
            small_sha256,
            text,
        }
    }

    pub fn config(&self, ktls: &str) -> String {
        self.config_alpn(ktls, &["http/1.1"])
    }

    /// The config with `[tls] alpn` set to `alpn`.
    pub fn config_alpn(&self, ktls: &str, alpn: &[&str]) -> String {
        let alpn: Vec<String> = alpn.iter().map(|a| format!("\"{a}\"")).collect();
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
             alpn = [{alpn}]\n\
             [[location]]\n\
             prefix = \"/static/\"\n\
             root = {root}\n",
            cert = toml_str(&self.cert),
            key = toml_str(&self.key),
            root = toml_str(&self.root),
            alpn = alpn.join(", "),
        )
    }

    /// `curl -sk --http1.1 https://ADDR/static/big.bin -o OUT`; asserts a 200.
    pub fn download(&self, addr: SocketAddr, ferry: &Ferry) -> PathBuf {
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

    pub fn assert_same_file(&self, out: &Path, ferry: &Ferry) {
        let len = fs::metadata(out).map(|m| m.len()).unwrap_or(0);
        assert_eq!(
            len,
            FILE_SIZE,
            "downloaded body has the wrong length\n{}",
            ferry.diagnostics()
        );
        let got = sha256sum(out);
        let want = self
            .sha256
            .as_deref()
            .expect("Fixture::new() has the big file");
        assert_eq!(
            got,
            want,
            "downloaded body differs from {} (sha256)\n{}",
            self.file.display(),
            ferry.diagnostics()
        );
    }
}

/// The key type of the test certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// P-256.
    Ec,
    /// RSA 2048.
    Rsa,
}

/// A self-signed certificate for CN=localhost, made with openssl; for `KeyKind::Ec` the VM
/// image's test certificate if that fails.
pub fn cert_and_key(dir: &Path, kind: KeyKind) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let key_args: &[&str] = match kind {
        KeyKind::Ec => &["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        KeyKind::Rsa => &["rsa:2048"],
    };
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey"])
        .args(key_args)
        .arg("-nodes")
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
        other if kind == KeyKind::Rsa => panic!("openssl req (RSA): {}", describe(&other)),
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

pub fn describe(result: &std::io::Result<Output>) -> String {
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
pub fn write_pseudo_random(path: &Path, size: u64) {
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

pub fn sha256sum(path: &Path) -> String {
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

pub fn toml_str(path: &Path) -> String {
    let s = path.to_str().expect("utf-8 temp path");
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// One counter of /proc/net/tls_stat, e.g. `TlsTxSw` (kTLS TX sessions installed in software).
pub fn tls_stat(name: &str) -> u64 {
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
pub struct Ferry {
    child: Child,
    pub https: SocketAddr,
    pub admin: SocketAddr,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    stderr_events: Receiver<Event>,
    config: String,
    _config_dir: tempfile::TempDir,
}

pub enum Event {
    Line(String),
    Eof,
}

impl Ferry {
    /// Writes the config, runs `FERRY_BIN serve --config FILE` and waits, at most `DEADLINE`,
    /// for its `listening http|https|admin ADDR` lines.
    pub fn start(fx: &Fixture, ktls: &str) -> Ferry {
        Ferry::start_logged(fx, ktls, None)
    }

    /// `start`, with `RUST_LOG=rust_log` for ferry when given (otherwise the inherited one).
    pub fn start_logged(fx: &Fixture, ktls: &str, rust_log: Option<&str>) -> Ferry {
        Ferry::start_config(fx.config(ktls), &[], rust_log)
    }

    /// Runs ferry with `config`, the environment variables `env` and `RUST_LOG=rust_log` when
    /// given (otherwise the inherited one).
    pub fn start_config(config: String, env: &[(&str, &str)], rust_log: Option<&str>) -> Ferry {
        let config_dir = tempfile::tempdir().unwrap();
        let path = config_dir.path().join("ferry.toml");
        fs::write(&path, &config).unwrap();
        let bin = ferry_bin();
        let mut command = Command::new(&bin);
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        command.envs(env.iter().copied());
        let mut child = command
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
        // stdout carries the access log alone; nothing waits on its lines.
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (tx, _) = mpsc::channel();
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
        ferry.wait_listening();
        ferry
    }

    /// The `listening` lines come on stderr, with ferry's other diagnostics.
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        let (mut http, mut https, mut admin) = (None, None, None);
        while http.is_none() || https.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let why = match self
                .stderr_events
                .recv_timeout(left.min(Duration::from_millis(250)))
            {
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
                    "ferry closed its stderr before printing its listeners"
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (with `kill(1)`: the test crate has no libc of its own).
    pub fn sigterm(&self) {
        let pid = self.pid().to_string();
        let out = Command::new("kill")
            .args(["-TERM", &pid])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            other => panic!(
                "kill -TERM {pid}: {}\n{}",
                describe(&other),
                self.diagnostics()
            ),
        }
    }

    /// Waits at most `limit` for ferry to exit; its status, or `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < until => thread::sleep(Duration::from_millis(20)),
                Ok(None) => return None,
                Err(e) => panic!("waiting for ferry: {e}\n{}", self.diagnostics()),
            }
        }
    }

    /// CPU time ferry has used so far, all threads, in clock ticks: utime + stime, fields 14
    /// and 15 of /proc/PID/stat (counted after the `(comm)` field, which may hold spaces).
    pub fn cpu_ticks(&self) -> u64 {
        let path = format!("/proc/{}/stat", self.pid());
        let stat = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e} (has ferry exited?)\n{}", self.diagnostics()));
        let after_comm = &stat[stat.rfind(')').expect("(comm) in /proc/PID/stat") + 1..];
        // after_comm starts at field 3 (state): utime is field 14, stime field 15.
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        let field = |n: usize| -> u64 {
            fields
                .get(n - 3)
                .and_then(|f| f.parse().ok())
                .unwrap_or_else(|| panic!("{path}: no field {n} in {stat:?}"))
        };
        field(14) + field(15)
    }

    /// ferry's stderr lines that contain any of `needles`.
    pub fn stderr_matching(&self, needles: &[&str]) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| needles.iter().any(|n| l.contains(n)))
            .cloned()
            .collect()
    }

    pub fn diagnostics(&self) -> String {
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

    pub fn scrape(&self) -> Metrics {
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
    pub fn wait_for(
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

impl Ferry {
    /// Polls /metrics until `ferry_connections_active{transport}` is 0, at most `DEADLINE`:
    /// every connection of that transport has been closed by ferry.
    pub fn wait_no_active(&self, transport: &str) {
        let filter = [("transport", transport)];
        let deadline = Instant::now() + DEADLINE;
        loop {
            let now = self.scrape();
            let active = now.get("ferry_connections_active", &filter);
            if active == 0.0 {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "ferry_connections_active{} is still {active}: a connection was not \
                     closed\n{}\n{}",
                    show(&filter),
                    now.lines("ferry_connections_active"),
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

pub fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

/// Reads `r` line by line into `into`, and tells `tx` (while someone listens) about each line
/// and the end.
pub fn drain<R: Read + Send + 'static>(
    r: R,
    into: Arc<Mutex<Vec<String>>>,
    tx: mpsc::Sender<Event>,
) {
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
pub fn get_metrics(admin: SocketAddr) -> std::io::Result<String> {
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

pub fn dechunk(mut rest: &str) -> std::io::Result<String> {
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

pub fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

/// The samples of one Prometheus text exposition.
pub struct Metrics {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
    text: String,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
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
    pub fn get(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
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

    pub fn lines(&self, name: &str) -> String {
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
pub fn parse_labels(s: &str) -> BTreeMap<String, String> {
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

pub fn delta(before: &Metrics, after: &Metrics, name: &str, filter: &[(&str, &str)]) -> f64 {
    after.get(name, filter) - before.get(name, filter)
}

pub fn show(filter: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = filter.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{{{}}}", pairs.join(","))
}

/// The Python TLS client (`python3 CLIENT HOST PORT MODE PATH COUNT`), run in the guest. It
/// prints one line per event, which the tests parse:
///
/// - `TLS <version> <cipher> alpn=<protocol>` once the handshake is done;
/// - `RESPONSE <i> <status> <body length> <body sha256> connection=<header or ->` per response;
/// - mode `requests`: COUNT keep-alive requests for PATH on one connection, then `DONE`;
/// - mode `wait-close`: one request, then `IDLE`, then a blocking read on the idle connection,
///   whose end it reports as `CLOSE <kind> <detail>`: `close_notify` (the read returned b'':
///   the peer sent a TLS close_notify alert: the socket is wrapped with
///   `suppress_ragged_eofs=False` and the context clears `OP_IGNORE_UNEXPECTED_EOF`, which
///   Python sets by default, so a bare TCP FIN is *not* reported as b''),
///   `eof_without_close_notify` (a TCP FIN or reset with no close_notify: OpenSSL's "unexpected
///   eof while reading", or SSLEOFError), `reset`,
///   `timeout`, `data` (unexpected bytes), `ssl_error` or `os_error`;
/// - `ERROR <what>` (exit status 1) if the exchange itself failed.
const PY_CLIENT: &str = r#"
import hashlib, socket, ssl, sys

host, port, mode, path, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
IDLE_READ_TIMEOUT = 60.0

def say(*words):
    print(*words, flush=True)

def read_response(s, buf):
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError("connection closed before the end of a response head (%d bytes)" % len(buf))
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length, connection = None, "-"
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
        elif name.strip().lower() == "connection":
            connection = value.strip()
    if length is None:
        raise ValueError("no Content-Length in %r" % lines)
    body = bytearray(rest)
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError("connection closed after %d of %d body bytes" % (len(body), length))
        body += chunk
    return status, connection, bytes(body[:length]), bytearray(body[length:])

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["http/1.1"])
# Python (3.10+) sets OP_IGNORE_UNEXPECTED_EOF by default, which makes OpenSSL 3 report a TCP FIN
# without close_notify as a clean close (b''). Clear it, so b'' really means close_notify.
ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
raw = socket.create_connection((host, port), timeout=30.0)
s = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
say("TLS", s.version(), s.cipher()[0], "alpn=%s" % s.selected_alpn_protocol())
buf = bytearray()
n = count if mode == "requests" else 1
try:
    for i in range(1, n + 1):
        s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path).encode())
        status, connection, body, buf = read_response(s, buf)
        say("RESPONSE", i, status, len(body), hashlib.sha256(body).hexdigest(), "connection=%s" % connection.replace(" ", ""))
except Exception as e:
    say("ERROR", type(e).__name__, repr(e))
    sys.exit(1)
if mode == "requests":
    say("DONE")
    sys.exit(0)
say("IDLE")
s.settimeout(IDLE_READ_TIMEOUT)
try:
    data = bytes(buf) or s.recv(4096)
    if data == b"":
        say("CLOSE close_notify read returned b'' (SSL_ERROR_ZERO_RETURN)")
    else:
        say("CLOSE data", len(data), repr(data[:80]))
except ssl.SSLZeroReturnError as e:
    say("CLOSE close_notify", repr(e))
except ssl.SSLEOFError as e:
    # SSL_ERROR_SYSCALL/EOF: the guest's Python 3.11 reports a reset this way too.
    say("CLOSE eof_without_close_notify", repr(e))
except ssl.SSLError as e:
    if getattr(e, "reason", None) == "UNEXPECTED_EOF_WHILE_READING":
        # OpenSSL 3: TCP FIN without close_notify (Python 3.11 does not map it to SSLEOFError).
        say("CLOSE eof_without_close_notify", repr(e))
    else:
        say("CLOSE ssl_error", repr(e))
except ConnectionResetError as e:
    say("CLOSE reset", repr(e))
except socket.timeout as e:
    say("CLOSE timeout", repr(e))
except OSError as e:
    say("CLOSE os_error", repr(e))
"#;

/// A client process in the guest, its stdout and stderr drained into memory (so the pipes
/// never fill), its stdin kept open until drop; killed on drop.
pub struct Proc {
    pub what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Proc {
    pub fn spawn(what: &str, mut command: Command) -> Proc {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        drain_bytes(child.stdout.take().unwrap(), stdout.clone());
        drain_bytes(child.stderr.take().unwrap(), stderr.clone());
        Proc {
            what: what.to_string(),
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
        }
    }

    /// `python3 CLIENT HOST PORT MODE PATH COUNT` (see `PY_CLIENT`).
    pub fn python(fx: &Fixture, addr: SocketAddr, mode: &str, path: &str, count: u32) -> Proc {
        let script = fx.dir.path().join("client.py");
        if !script.exists() {
            fs::write(&script, PY_CLIENT).unwrap();
        }
        let mut command = Command::new("python3");
        command
            .arg(&script)
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .args([mode, path, &count.to_string()]);
        Proc::spawn(&format!("python3 client.py {mode} {path} {count}"), command)
    }

    pub fn write(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        if let Err(e) = stdin.write_all(bytes).and_then(|()| stdin.flush()) {
            panic!("writing to {}'s stdin: {e}\n{}", self.what, self.report());
        }
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// The first stdout line starting with `prefix`.
    pub fn line(&self, prefix: &str) -> Option<String> {
        self.stdout()
            .lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_string)
    }

    /// Polls `done` every 50 ms for at most `limit`; whether it became true.
    pub fn wait_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Proc) -> bool) -> bool {
        let until = Instant::now() + limit;
        loop {
            if done(self) {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits at most `limit` for the exit, then for the drains to catch up (bounded).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let status = if self.wait_until(limit, |p| p.exited().is_some()) {
            self.exited()
        } else {
            None
        };
        thread::sleep(Duration::from_millis(200));
        status
    }

    /// Its stdout and stderr (the last 6000 characters of each), for failure messages.
    pub fn report(&self) -> String {
        let tail = |s: String| {
            let from = s.len().saturating_sub(6000);
            let from = (from..s.len())
                .find(|&i| s.is_char_boundary(i))
                .unwrap_or(s.len());
            s[from..].to_string()
        };
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}\n---",
            self.what,
            tail(self.stdout()),
            self.what,
            tail(self.stderr())
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Appends everything `r` yields to `into`, until EOF.
fn drain_bytes<R: Read + Send + 'static>(mut r: R, into: Arc<Mutex<Vec<u8>>>) {
    thread::spawn(move || {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => into.lock().unwrap().extend_from_slice(&chunk[..n]),
            }
        }
    });
}

/// One HTTP/1.1 response with a Content-Length body, and every byte after it.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
    pub rest: Vec<u8>,
}

/// The complete Content-Length responses at the start of `raw`, in order; parsing stops at the
/// first incomplete or unparsable one (left in the last response's `rest`).
pub fn split_responses(raw: &[u8]) -> Vec<HttpResponse> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(end) = find(&raw[at..], b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&raw[at..at + end]).into_owned();
        let status = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok());
        let length = head.lines().skip(1).find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        });
        let (Some(status), Some(length)) = (status, length) else {
            break;
        };
        let body_at = at + end + 4;
        let Some(body) = raw.get(body_at..body_at + length) else {
            break;
        };
        at = body_at + length;
        out.push(HttpResponse {
            status,
            body: body.to_vec(),
            rest: raw[at..].to_vec(),
        });
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
