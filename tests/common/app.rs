//! The proxy tests' other half: `App`, the Python test application (tests/app/app.py) as a
//! real child process on 127.0.0.1:0 or a unix socket, with its JSON request log parsed;
//! `ProxyConfig`, a ferry configuration with [upstream], [offload] and internal locations
//! (the shared `Config` builder covers [server]/[admin]/[io], which this reuses); and small
//! helpers: SHA-256 (to compare with the app's body digests), query encoding.

use super::*;
use std::sync::mpsc;

pub const APP_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/app/app.py");

/// One request as the app received it (one JSON line of its log).
#[derive(Clone, Debug)]
pub struct AppRequest {
    pub conn: u64,
    pub peer_port: u64,
    pub seq: u64,
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body_len: u64,
    pub body_sha256: String,
    pub body_complete: bool,
}

impl AppRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn from_json(v: &serde_json::Value) -> AppRequest {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        let n = |k: &str| v[k].as_u64().unwrap_or_default();
        AppRequest {
            conn: n("conn"),
            peer_port: n("peer_port"),
            seq: n("seq"),
            method: s("method"),
            target: s("target"),
            version: s("version"),
            headers: v["headers"]
                .as_array()
                .map(|hs| {
                    hs.iter()
                        .map(|h| {
                            (
                                h[0].as_str().unwrap_or_default().to_string(),
                                h[1].as_str().unwrap_or_default().to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            body_len: n("body_len"),
            body_sha256: s("body_sha256"),
            body_complete: v["body_complete"].as_bool().unwrap_or(false),
        }
    }
}

/// A connection event in the app's log ("open", "eof", "closed", "dropped", ...).
#[derive(Clone, Debug)]
pub struct AppEvent {
    pub event: String,
    pub conn: u64,
    pub json: serde_json::Value,
}

/// The Python test app as a child process; killed on drop.
pub struct App {
    child: Child,
    /// `127.0.0.1:PORT` or `unix:/path` — ready for `upstream.address`.
    pub address: String,
    pub log: PathBuf,
    stderr: Arc<Mutex<Vec<String>>>,
    _dir: TempDir,
}

impl App {
    /// Starts the app on 127.0.0.1:0.
    pub fn start() -> App {
        App::spawn(None, &[])
    }

    /// Starts the app on 127.0.0.1:0 with these options of app.py (`--backlog 5`, ...).
    pub fn start_with(options: &[&str]) -> App {
        App::spawn(None, options)
    }

    /// Starts the app on a unix socket at `path` (absolute, at most 107 bytes).
    pub fn start_unix(path: &Path) -> App {
        App::spawn(Some(path), &[])
    }

    fn spawn(unix: Option<&Path>, options: &[&str]) -> App {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let mut cmd = Command::new("python3");
        cmd.arg("-u")
            .arg(APP_PY)
            .arg("--log")
            .arg(&log)
            .args(options);
        if let Some(p) = unix {
            cmd.arg("--unix").arg(p);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .expect("spawn python3 tests/app/app.py (python3 must be on PATH)");
        let (tx, rx) = mpsc::channel::<String>();
        let out = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let err = child.stderr.take().unwrap();
        let e2 = stderr.clone();
        thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                e2.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + DEADLINE;
        let mut address = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("port ") => {
                    address = Some(format!("127.0.0.1:{}", line[5..].trim()));
                }
                Ok(line) if line.starts_with("unix ") => {
                    address = Some(format!("unix:{}", line[5..].trim()));
                }
                Ok(line) if line == "ready" => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "test app did not report ready within {DEADLINE:?}; stderr:\n{}",
                        stderr.lock().unwrap().join("\n")
                    );
                }
            }
        }
        App {
            child,
            address: address.expect("app printed its address before ready"),
            log,
            stderr,
            _dir: dir,
        }
    }

    /// The app's TCP port (panics for a unix socket app).
    pub fn port(&self) -> u16 {
        self.address
            .strip_prefix("127.0.0.1:")
            .expect("a TCP app")
            .parse()
            .unwrap()
    }

    /// Every complete JSON line of the log so far.
    pub fn entries(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut out = Vec::new();
        // Only lines ending in '\n' are complete (the app writes one line per write).
        let complete = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        for line in complete.lines().filter(|l| !l.trim().is_empty()) {
            out.push(
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("bad app log line {line:?}: {e}")),
            );
        }
        out
    }

    /// Every request the app has logged, in order.
    pub fn requests(&self) -> Vec<AppRequest> {
        self.entries()
            .iter()
            .filter(|v| v["kind"] == "request")
            .map(AppRequest::from_json)
            .collect()
    }

    /// Every connection event the app has logged, in order.
    pub fn events(&self) -> Vec<AppEvent> {
        self.entries()
            .into_iter()
            .filter(|v| v["kind"] == "event")
            .map(|v| AppEvent {
                event: v["event"].as_str().unwrap_or_default().to_string(),
                conn: v["conn"].as_u64().unwrap_or_default(),
                json: v,
            })
            .collect()
    }

    /// Requests whose target is exactly `target`.
    pub fn requests_to(&self, target: &str) -> Vec<AppRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.target == target)
            .collect()
    }

    /// Waits (bounded) until the app has logged a request with exactly this target; returns
    /// the first one.
    pub fn wait_request(&self, target: &str) -> AppRequest {
        poll_until(
            &format!("the app to log a request for {target:?}"),
            DEADLINE,
            || self.requests_to(target).into_iter().next(),
        )
    }

    /// Waits (bounded) for an event named `event` satisfying `pred`.
    pub fn wait_event(&self, event: &str, pred: impl Fn(&AppEvent) -> bool) -> AppEvent {
        poll_until(&format!("the app to log event {event:?}"), DEADLINE, || {
            self.events()
                .into_iter()
                .find(|e| e.event == event && pred(e))
        })
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            let err = self.stderr.lock().unwrap();
            eprintln!("---- app stderr ({} lines) ----", err.len());
            for l in err
                .iter()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                eprintln!("{l}");
            }
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "---- app log (last {} of {} lines) ----",
                lines.len().min(30),
                lines.len()
            );
            for l in &lines[lines.len().saturating_sub(30)..] {
                eprintln!("{}", if l.len() > 600 { &l[..600] } else { l });
            }
        }
    }
}

/// A ferry configuration for proxy tests: the shared `Config` for [server]/[admin]/[io],
/// plus [upstream], [offload] and locations that may be internal.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub base: Config,
    pub upstream: String,
    pub connect_timeout: String,
    pub response_timeout: String,
    pub idle_connections: u64,
    pub forwarded_headers: bool,
    pub underscores_in_headers: bool,
    pub x_accel_redirect: bool,
    pub x_sendfile_roots: Vec<PathBuf>,
    pub advertise: Option<String>,
    pub accel_mapping: Option<String>,
    /// (prefix, root, internal)
    pub locations: Vec<(String, PathBuf, bool)>,
    /// Raw TOML sections added at the end (`[spool]` ...).
    pub extra: String,
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap() // a JSON string is a valid TOML basic string here
}

impl ProxyConfig {
    pub fn new(upstream: &str) -> ProxyConfig {
        ProxyConfig {
            base: Config::new(),
            upstream: upstream.to_string(),
            connect_timeout: "1s".into(),
            response_timeout: "30s".into(),
            idle_connections: 32,
            forwarded_headers: true,
            underscores_in_headers: false,
            x_accel_redirect: true,
            x_sendfile_roots: Vec::new(),
            advertise: None,
            accel_mapping: None,
            locations: Vec::new(),
            extra: String::new(),
        }
    }

    pub fn send_path(mut self, p: &str) -> Self {
        self.base = self.base.send_path(p);
        self
    }

    pub fn response_timeout(mut self, t: &str) -> Self {
        self.response_timeout = t.into();
        self
    }

    pub fn idle_connections(mut self, n: u64) -> Self {
        self.idle_connections = n;
        self
    }

    pub fn location(mut self, prefix: &str, root: &Path, internal: bool) -> Self {
        self.locations
            .push((prefix.to_string(), root.to_path_buf(), internal));
        self
    }

    pub fn sendfile_root(mut self, root: &Path) -> Self {
        self.x_sendfile_roots.push(root.to_path_buf());
        self
    }

    pub fn underscores_in_headers(mut self, allowed: bool) -> Self {
        self.underscores_in_headers = allowed;
        self
    }

    pub fn advertise(mut self, kind: &str) -> Self {
        self.advertise = Some(kind.into());
        self
    }

    pub fn accel_mapping(mut self, mapping: &str) -> Self {
        self.accel_mapping = Some(mapping.into());
        self
    }

    pub fn to_toml(&self) -> String {
        let mut s = self.base.to_toml();
        s.push_str(&format!(
            "\n[upstream]\naddress = {}\nconnect_timeout = {}\nresponse_timeout = {}\n\
             idle_connections = {}\nforwarded_headers = {}\n",
            toml_string(&self.upstream),
            toml_string(&self.connect_timeout),
            toml_string(&self.response_timeout),
            self.idle_connections,
            self.forwarded_headers
        ));
        if self.underscores_in_headers {
            s.push_str("underscores_in_headers = true\n");
        }
        let roots: Vec<String> = self
            .x_sendfile_roots
            .iter()
            .map(|r| toml_string(r.to_str().unwrap()))
            .collect();
        s.push_str(&format!(
            "\n[offload]\nx_accel_redirect = {}\nx_sendfile_roots = [{}]\n",
            self.x_accel_redirect,
            roots.join(", ")
        ));
        if let Some(a) = &self.advertise {
            s.push_str(&format!("advertise = {}\n", toml_string(a)));
        }
        if let Some(m) = &self.accel_mapping {
            s.push_str(&format!("accel_mapping = {}\n", toml_string(m)));
        }
        for (prefix, root, internal) in &self.locations {
            s.push_str(&format!(
                "\n[[location]]\nprefix = {}\nroot = {}\ninternal = {internal}\n",
                toml_string(prefix),
                toml_string(root.to_str().unwrap())
            ));
        }
        s.push('\n');
        s.push_str(&self.extra);
        s
    }

    /// Adds raw TOML (whole sections) after the rest.
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }

    /// Adds a raw `key = value` line to [server].
    pub fn server(mut self, line: &str) -> Self {
        self.base.server_extra.push_str(line);
        self.base.server_extra.push('\n');
        self
    }

    /// Writes the config to a temp file and starts ferry with it.
    pub fn start(&self) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.toml");
        std::fs::write(&path, self.to_toml()).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("serve").arg("--config").arg(&path);
        Server::launch(cmd, 1, Some(dir))
    }
}

/// Percent-encodes a query argument value (everything but unreserved characters).
pub fn qenc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Standard base64 (for /raw?b64=...).
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Target that makes the app write `raw` verbatim and close.
pub fn raw_target(raw: &[u8]) -> String {
    format!("/raw?b64={}", qenc(&base64(raw)))
}

/// SHA-256, streaming (FIPS 180-4), to compare with the digests the app logs.
#[derive(Clone)]
pub struct Sha256 {
    h: [u32; 8],
    buf: Vec<u8>,
    len: u64,
}

const K256: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

impl Default for Sha256 {
    fn default() -> Self {
        Sha256::new()
    }
}

impl Sha256 {
    pub fn new() -> Sha256 {
        Sha256 {
            h: [
                0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
                0x5be0cd19,
            ],
            buf: Vec::with_capacity(64),
            len: 0,
        }
    }

    fn block(h: &mut [u32; 8], b: &[u8]) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut bb, mut c, mut d, mut e, mut f, mut g, mut hh] = *h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K256[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & bb) ^ (a & c) ^ (bb & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = bb;
            bb = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, bb, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if !self.buf.is_empty() {
            let take = (64 - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == 64 {
                let b = std::mem::take(&mut self.buf);
                Sha256::block(&mut self.h, &b);
            }
        }
        let mut chunks = data.chunks_exact(64);
        for c in &mut chunks {
            Sha256::block(&mut self.h, c);
        }
        self.buf.extend_from_slice(chunks.remainder());
    }

    pub fn hex(mut self) -> String {
        let bits = self.len.wrapping_mul(8);
        let mut pad = vec![0x80u8];
        while (self.buf.len() + pad.len()) % 64 != 56 {
            pad.push(0);
        }
        pad.extend_from_slice(&bits.to_be_bytes());
        let len = self.len;
        self.update(&pad);
        self.len = len;
        assert!(self.buf.is_empty());
        self.h.iter().map(|x| format!("{x:08x}")).collect()
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    let mut s = Sha256::new();
    s.update(data);
    s.hex()
}

/// SHA-256 of `len` bytes of `pattern` from offset 0, without holding them in memory.
pub fn pattern_sha256(pattern: &Pattern, len: u64) -> String {
    let mut s = Sha256::new();
    let mut buf = vec![0u8; MIB as usize];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        pattern.fill(off, &mut buf[..n]);
        s.update(&buf[..n]);
        off += n as u64;
    }
    s.hex()
}
