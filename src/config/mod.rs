//! ferry's configuration: one TOML file plus `FERRY__SECTION__KEY` environment overrides,
//! turned into a typed, fully validated [`Config`] before any socket is bound.
//!
//! The pipeline: the `config` crate parses the TOML text and merges the environment over it
//! (`env.rs` first screens the `FERRY__*` variables, so an override of an unknown key is
//! reported instead of silently ignored); `schema.rs` then walks the merged value tree against
//! the known keys, parses every value with its own parser (`units.rs` for durations and sizes)
//! and collects every problem, each with its full key (and, for a file, the line and column
//! `position.rs` finds for it), into [`ConfigErrors`]. Only a configuration without a single
//! problem becomes a [`Config`]; [`load::Checked`] keeps the valid part beside the errors for
//! `ferry check`, which goes on to the file system with it.
//!
//! Every key, its meaning and its default are documented in `config/ferry.toml`, which is also
//! the embedded default ferry runs with when no config file is given ([`DEFAULT_TOML`]).
//! Loading binds nothing, connects nowhere and does not touch the file system beyond reading
//! the file itself and the admin token file (`admin.token_file`: a secret belongs with the
//! configuration that names it, so a reload reads it again with the rest): whether a location's root, an X-Sendfile root or the upstream's socket
//! exists, whether the upstream's host name resolves, whether the upstream answers, or
//! whether the TLS certificate and key can be read and match, is for the server to find out.

mod env;
pub mod load;
mod position;
mod schema;
mod units;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::{NonZeroU16, NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

pub use crate::http::ContentCoding;
pub use position::Position;
pub use units::{parse_duration, parse_size};

/// The text of `config/ferry.toml`: the documented default configuration.
pub const DEFAULT_TOML: &str = include_str!("../../config/ferry.toml");

/// A complete, validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[server]`.
    pub server: Server,
    /// `[admin]`.
    pub admin: Admin,
    /// `[io]`.
    pub io: Io,
    /// The `[[location]]` sections in file order; prefixes unique. Empty only when there is
    /// an upstream (a pure reverse proxy).
    pub locations: Vec<Location>,
    /// `[upstream]`: the application requests no location matches are proxied to.
    /// Absent `[upstream]` section (or no `address`) = no upstream: unmatched requests get 404.
    pub upstream: Option<Upstream>,
    /// `[upstreams.NAME]`: further apps, which locations name (`upstream = "NAME"`); by name.
    pub upstreams: BTreeMap<String, Upstream>,
    /// `[offload]`: which file-offload headers from the upstream are honoured.
    pub offload: Offload,
    /// `[tls]`: the HTTPS listeners. Absent `[tls]` section = no TLS listener; the plaintext
    /// `server.listen` listeners serve either way.
    pub tls: Option<Tls>,
    /// `[cache]`: the disk cache of upstream responses. Absent `[cache]` section = no caching.
    pub cache: Option<Cache>,
    /// `[spool]`: where bodies wait between a slow side and the app.
    pub spool: Spool,
}

/// `[server]`: the public listeners and per-connection limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Addresses to listen on; at least one, no duplicates.
    pub listen: Vec<SocketAddr>,
    /// The whole request head must arrive within this (nginx `client_header_timeout`). Non-zero.
    pub header_timeout: Duration,
    /// Idle keep-alive connections are closed after this (nginx `keepalive_timeout`).
    /// Zero disables keep-alive: close after each response.
    pub keepalive_timeout: Duration,
    /// A client that accepts no bytes for this long is dropped (nginx `send_timeout`). Non-zero.
    pub send_timeout: Duration,
    /// Connections accepted at once; further clients wait in the listen backlog.
    pub max_connections: NonZeroUsize,
    /// On shutdown, in-flight requests get this long to finish. Zero closes at once.
    pub shutdown_grace: Duration,
    /// Format of the access log (`text`, `json`) or `off`.
    pub access_log: AccessLog,
    /// Larger request bodies are answered 413 and never reach the app (nginx
    /// `client_max_body_size`). Zero: no limit.
    pub max_body_size: u64,
    /// Peers whose X-Forwarded-For, -Proto, -Host and X-Request-Id are believed (nginx
    /// `set_real_ip_from`); empty: none.
    pub trusted_proxies: Vec<crate::ingress::Cidr>,
    /// Whether connections to `listen` start with a PROXY protocol header (nginx
    /// `listen ... proxy_protocol`); without one they are closed.
    pub proxy_protocol: bool,
    /// Headers added to responses no location's own `add_header` list covers (nginx
    /// `add_header` in the `server` block).
    pub add_header: Vec<AddHeader>,
    /// Whether the plaintext listeners answer every request with a redirect to https, and to
    /// which port; `None`: they serve.
    pub redirect_https: Option<RedirectHttps>,
    /// Whether the plaintext listeners also serve HTTP/2 with prior knowledge (h2c),
    /// recognised by its connection preface (nginx `http2 on;` on a plaintext listener).
    pub h2c: bool,
    /// Where the serving process writes its pid, removed at exit (nginx `pid`); `ferry
    /// reload` reads it. `None` (""): no pid file.
    pub pid_file: Option<PathBuf>,
    /// A unix socket on which the serving process hands its listening sockets to a new
    /// process started with `ferry serve --upgrade-from PATH` (HAProxy's `expose-fd
    /// listeners`; nginx's binary upgrade). `None` (""): no take-over possible.
    pub upgrade_socket: Option<PathBuf>,
}

/// One `add_header` item (nginx `add_header NAME VALUE [always];`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddHeader {
    /// A token (RFC 9110 §5.6.2), none of the fields ferry frames responses with.
    pub name: String,
    /// Visible ASCII, spaces and tabs (no CR, LF or other control bytes); not empty.
    pub value: String,
    /// On every response; without it only on 200, 201, 204, 206, 301, 302, 303, 304, 307
    /// and 308, as nginx.
    pub always: bool,
}

/// `server.redirect_https`: the port in the redirect's `https://` URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectHttps {
    /// `true`: the port of the first `tls.listen` address (as bound, for port 0).
    TlsListener,
    /// A port number: TLS ends elsewhere (a load balancer), or on another listener.
    Port(NonZeroU16),
}

/// Default `server.max_body_size`: 100 MiB.
pub const DEFAULT_MAX_BODY_SIZE: u64 = 100 << 20;

/// Default `server.max_connections` (evaluated at compile time).
const DEFAULT_MAX_CONNECTIONS: NonZeroUsize = NonZeroUsize::new(10_000).unwrap();

impl Default for Server {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080)],
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_grace: Duration::from_secs(30),
            access_log: AccessLog::Text,
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
            add_header: Vec::new(),
            redirect_https: None,
            h2c: true,
            pid_file: None,
            upgrade_socket: None,
        }
    }
}

/// `server.access_log`: the format of the access log, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLog {
    /// One human-readable line per request.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
    /// No access log.
    Off,
}

impl AccessLog {
    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
            Self::Off => "off",
        }
    }
}

/// `[admin]`: the listener serving `/metrics`, `/healthz` and `/readyz`, and the calls that
/// change state (`POST /cache/purge`) when a token is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// Address of the admin listener; never one of `server.listen` (port 0 excepted).
    pub listen: SocketAddr,
    /// `admin.token_file`, read when the configuration loads: the bearer token state-changing
    /// calls must present. `None`: those calls are off (403).
    pub token: Option<AdminToken>,
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9090),
            token: None,
        }
    }
}

/// The admin bearer token and the file it was read from. Its `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken {
    /// `admin.token_file` as written.
    pub file: PathBuf,
    /// The file's content without surrounding whitespace: visible ASCII, not empty.
    secret: String,
}

impl AdminToken {
    /// A token read from `file`; `secret` is already trimmed and checked.
    pub(crate) fn new(file: PathBuf, secret: String) -> Self {
        Self { file, secret }
    }

    /// Whether `presented` is the token, in time that does not depend on where the two
    /// differ: both are hashed first, and the digests compared without an early exit (so
    /// neither the position of the first wrong byte nor the token's length shows).
    pub fn verify(&self, presented: &[u8]) -> bool {
        let want = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.secret.as_bytes());
        let got = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, presented);
        let difference = want
            .as_ref()
            .iter()
            .zip(got.as_ref())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminToken")
            .field("file", &self.file)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// `[tls]`: the HTTPS listeners (nginx `listen 443 ssl` with `ssl_certificate` and
/// `ssl_certificate_key`), served besides the plaintext `server.listen` ones.
///
/// Only the shape is checked here: the certificate chain and the key are loaded, and checked
/// to match, by the TLS module when the server starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// Addresses to accept TLS connections on; at least one, no duplicates (port 0 excepted),
    /// none of them one of (or overlapping, by a wildcard address on the same port)
    /// `server.listen` or `admin.listen`.
    pub listen: Vec<SocketAddr>,
    /// The certificate chain, PEM, leaf first. Non-empty; relative to the working directory.
    pub cert: PathBuf,
    /// The certificate's private key, PEM. Non-empty; relative to the working directory.
    pub key: PathBuf,
    /// How often `cert` and `key` are checked for a change on disk (the path each resolves
    /// to, its inode, size and times), a changed pair being loaded then; zero: only on SIGHUP.
    pub reload_interval: Duration,
    /// Whether the kernel does the record encryption (kTLS).
    pub ktls: KtlsMode,
    /// ALPN protocols offered, in the server's order of preference; non-empty, no duplicates.
    pub alpn: Vec<Alpn>,
    /// The TLS handshake must complete within this after the connection is accepted. Non-zero.
    pub handshake_timeout: Duration,
    /// Whether connections to `listen` start with a PROXY protocol header, read before the
    /// handshake (nginx `listen 443 ssl proxy_protocol`); without one they are closed.
    pub proxy_protocol: bool,
    /// How many TLS sessions the server-side session cache holds (TLS 1.2 session IDs, and
    /// TLS 1.3 resumption when tickets are off); 0: no cache.
    pub session_cache: usize,
    /// Whether stateless session tickets are issued (keys rotated every `session_timeout`).
    pub session_tickets: bool,
    /// How long a session may be resumed, by ticket or from the cache. 1s to 7 days (the
    /// longest ticket lifetime TLS 1.3 allows), whole seconds.
    pub session_timeout: Duration,
}

/// Default `tls.reload_interval`: a rotated certificate is served within seconds, for a
/// realpath and a stat of each file each time.
const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// Default `tls.listen`, a single address.
const DEFAULT_TLS_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8443);

impl Tls {
    /// TLS with the certificate chain at `cert` and its key at `key`, every other key at its
    /// default.
    pub fn new(cert: PathBuf, key: PathBuf) -> Self {
        Self {
            listen: vec![DEFAULT_TLS_LISTEN],
            cert,
            key,
            reload_interval: DEFAULT_RELOAD_INTERVAL,
            ktls: KtlsMode::Auto,
            alpn: vec![Alpn::H2, Alpn::Http11],
            handshake_timeout: Duration::from_secs(10),
            proxy_protocol: false,
            session_cache: DEFAULT_SESSION_CACHE,
            session_tickets: true,
            session_timeout: Duration::from_secs(5 * 60),
        }
    }
}

/// Default `tls.session_cache`: about what nginx's `ssl_session_cache shared:SSL:5m` holds
/// (nginx: about 4000 sessions per MiB). A rustls session is a few hundred bytes, and the
/// cache fills only with clients that do not take tickets.
const DEFAULT_SESSION_CACHE: usize = 20_000;

/// `[cache]`: the disk cache of upstream responses (nginx `proxy_cache_path` with
/// `proxy_cache`). Only the shape is checked here: the directory is created, and its objects
/// indexed, when the server starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    /// Where cached objects live; relative to the working directory. Non-empty.
    pub dir: PathBuf,
    /// On-disk bytes the cache may hold; eviction (least recently used first) keeps it there.
    /// Non-zero.
    pub max_size: u64,
    /// Larger responses are relayed, not stored. Non-zero, at most `max_size`; when the file
    /// gives none, the smaller of 1 GiB and `max_size`.
    pub max_object_size: u64,
    /// Concurrent misses for one key wait this long for the one fill before going to the
    /// application themselves. Zero: never wait.
    pub lock_timeout: Duration,
    /// How long past its expiry an object may be served when the application fails, unless
    /// the response said otherwise (`stale-if-error`). Zero: only when the response says so.
    pub stale_if_error: Duration,
}

/// Default `cache.dir`.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/ferry";

impl Default for Cache {
    fn default() -> Self {
        Self {
            dir: PathBuf::from(DEFAULT_CACHE_DIR),
            max_size: 10 << 30,
            max_object_size: 1 << 30,
            lock_timeout: Duration::from_secs(5),
            stale_if_error: Duration::from_secs(3600),
        }
    }
}

/// `[spool]`: unlinked temporary files (O_TMPFILE) that hold a body between a slow side and
/// the app, so the app's connection is free as soon as the app has written or is asked
/// (nginx `proxy_buffering` / `proxy_request_buffering` with their temp paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spool {
    /// The directory the files are created in (never named: they have no path). Non-empty.
    pub dir: PathBuf,
    /// A body larger than this is not spooled (nginx `proxy_max_temp_file_size`). Non-zero.
    pub max_file_size: u64,
    /// All spool files together hold at most this; past it bodies are relayed as they come.
    /// Non-zero.
    pub max_size: u64,
    /// Request bodies up to this size are held in memory instead of a file (nginx
    /// `client_body_buffer_size`).
    pub request_memory: usize,
    /// Read a request body whole before the app is asked (nginx `proxy_request_buffering`).
    pub request_buffering: bool,
    /// Put the rest of a response body in a file when the client reads slower than the app
    /// writes (nginx `proxy_buffering`).
    pub response_buffering: bool,
}

/// Default `spool.dir`.
pub const DEFAULT_SPOOL_DIR: &str = "/tmp";

impl Default for Spool {
    fn default() -> Self {
        Self {
            dir: PathBuf::from(DEFAULT_SPOOL_DIR),
            max_file_size: 1 << 30,
            max_size: 4 << 30,
            request_memory: 16 << 10,
            request_buffering: true,
            response_buffering: true,
        }
    }
}

/// `tls.ktls`: whether the kernel encrypts TLS records (kTLS), so that file bodies keep their
/// zero-copy sendfile/splice paths over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KtlsMode {
    /// kTLS when the kernel has the `tls` module and supports the negotiated cipher, else
    /// userspace TLS (a counted fallback).
    Auto,
    /// kTLS or refuse to start.
    Require,
    /// Always userspace TLS.
    Off,
}

impl KtlsMode {
    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Require => "require",
            Self::Off => "off",
        }
    }
}

/// One `tls.alpn` protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// HTTP/2 (`h2`); always over userspace TLS.
    H2,
    /// HTTP/1.1 (`http/1.1`).
    Http11,
}

impl Alpn {
    /// The ALPN protocol ID (RFC 7301), also the config spelling: `h2`, `http/1.1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::H2 => "h2",
            Self::Http11 => "http/1.1",
        }
    }
}

/// `[io]`: how response bodies are moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Io {
    /// Which I/O path file bodies take.
    pub send_path: SendPathSetting,
    /// Bytes moved per sendfile/splice/read call before yielding; 4 KiB ..= 1 GiB.
    pub chunk: NonZeroUsize,
    /// Files at least this large are read with O_DIRECT, bypassing the page cache (nginx
    /// `directio`); `None` ("0"): never.
    pub directio_threshold: Option<NonZeroU64>,
    /// Open files (descriptors and metadata) each worker keeps for reuse (nginx
    /// `open_file_cache max=N`); 0: none, every request opens its file.
    pub open_file_cache: usize,
    /// How long a kept file is used before it is opened again, so that a replaced or removed
    /// file is seen (nginx `open_file_cache_valid`). Non-zero.
    pub open_file_cache_valid: Duration,
}

/// Smallest accepted `io.chunk`: one page.
pub const MIN_CHUNK: usize = 4 << 10;
/// Largest accepted `io.chunk`.
pub const MAX_CHUNK: usize = 1 << 30;

/// Default `io.chunk`: 2 MiB (evaluated at compile time).
const DEFAULT_CHUNK: NonZeroUsize = NonZeroUsize::new(2 << 20).unwrap();

impl Default for Io {
    fn default() -> Self {
        Self {
            send_path: SendPathSetting::Auto,
            chunk: DEFAULT_CHUNK,
            directio_threshold: None,
            open_file_cache: 0,
            open_file_cache_valid: Duration::from_secs(1),
        }
    }
}

/// `io.send_path`: which I/O path file bodies take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendPathSetting {
    /// The best path the connection supports, falling back as needed.
    Auto,
    /// sendfile(2) first (nginx `sendfile on`).
    Sendfile,
    /// splice(2) through a pipe.
    Splice,
    /// Read into user space, then write: never zero-copy (nginx `sendfile off`).
    Buffered,
}

impl SendPathSetting {
    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Sendfile => "sendfile",
            Self::Splice => "splice",
            Self::Buffered => "buffered",
        }
    }
}

/// `[upstream]` or one `[upstreams.NAME]`: an application behind ferry, served by one or more
/// servers (nginx `proxy_pass` with an `upstream` block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Where the application listens (`address`, or `servers`): at least one, no duplicates.
    pub servers: Vec<UpstreamAddress>,
    /// How a request's server is chosen among `servers`.
    pub balance: Balance,
    /// A server that fails this many times within `fail_timeout` is skipped for
    /// `fail_timeout` (nginx `max_fails`). Zero: never skipped.
    pub max_fails: u32,
    /// The window failures are counted in, and how long a failed server is skipped (nginx
    /// `fail_timeout`). Non-zero.
    pub fail_timeout: Duration,
    /// Requests holding a connection to the app (connecting or in use) at once; `None`: no
    /// cap (nginx `max_conns`, here for the upstream as a whole).
    pub max_conns: Option<NonZeroUsize>,
    /// Requests waiting for a connection under `max_conns`; beyond it, 503 at once.
    pub queue: usize,
    /// The longest a request waits in the queue before it gets 503. Non-zero.
    pub queue_timeout: Duration,
    /// Connecting to the application must succeed within this (nginx `proxy_connect_timeout`).
    /// Non-zero.
    pub connect_timeout: Duration,
    /// The response head must arrive within this after the request is sent (nginx
    /// `proxy_read_timeout`, for the head only). Non-zero.
    pub response_timeout: Duration,
    /// Idle keep-alive connections to each server kept for reuse (nginx `keepalive` in an
    /// `upstream` block). Zero: a new connection per request.
    pub idle_connections: usize,
    /// Whether `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Real-IP` are
    /// set on proxied requests.
    pub forwarded_headers: bool,
    /// Whether request fields whose name holds `_` are forwarded (nginx
    /// `underscores_in_headers`). Off: they are dropped, as CGI-style apps would read
    /// `X_Accel_Mapping` as `X-Accel-Mapping`.
    pub underscores_in_headers: bool,
}

impl Upstream {
    /// An upstream at `address` with every other key at its default.
    pub fn new(address: UpstreamAddress) -> Self {
        Self {
            servers: vec![address],
            balance: Balance::RoundRobin,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            max_conns: None,
            queue: 100,
            queue_timeout: Duration::from_secs(30),
            // Above Linux's SYN retransmissions at 1 s and 3 s: a dropped SYN (a full listen
            // backlog) costs a second or three, not a 504.
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            idle_connections: 32,
            forwarded_headers: true,
            underscores_in_headers: false,
        }
    }
}

/// The name `[upstream]` goes by (in metrics, logs); no `[upstreams.NAME]` may take it.
pub const DEFAULT_UPSTREAM: &str = "default";

/// `balance`: how an upstream with several servers spreads its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Each server in turn (nginx's default).
    RoundRobin,
    /// The server with the fewest requests in flight, in turn among equals (nginx
    /// `least_conn`).
    LeastConn,
}

impl Balance {
    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::LeastConn => "least_conn",
        }
    }
}

/// `upstream.address`: a TCP address, a host name and port, or a unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamAddress {
    /// `"ip:port"` or `"[v6]:port"`.
    Tcp(SocketAddr),
    /// `"host:port"`: a DNS name (RFC 1123 labels, as written) and a non-zero port. Loading
    /// does not resolve it; the upstream client does, when it needs a new connection.
    Host { name: String, port: u16 },
    /// `"unix:/absolute/path"`; the path is absolute.
    Unix(PathBuf),
}

impl fmt::Display for UpstreamAddress {
    /// The config file's spelling: `127.0.0.1:3000`, `app:3000`, `unix:/run/app.sock`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Host { name, port } => write!(f, "{name}:{port}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// `[offload]`: the response headers by which the application hands a file to ferry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offload {
    /// Whether `X-Accel-Redirect: /uri` from the application is honoured: ferry serves that
    /// URI from its locations (internal ones included) instead of the application's body.
    pub x_accel_redirect: bool,
    /// `X-Sendfile: /path` is honoured only for files under these absolute directories;
    /// empty turns X-Sendfile off.
    pub x_sendfile_roots: Vec<PathBuf>,
    /// `X-Sendfile-Type` sent to the application on every proxied request, if set.
    pub advertise: Option<SendfileType>,
    /// `X-Accel-Mapping: FS_PREFIX=URI_PREFIX` sent to the application, if set: the absolute
    /// file-system prefix, and the URI prefix (starting with `/`, served by an internal
    /// location) it maps to.
    pub accel_mapping: Option<(PathBuf, String)>,
}

impl Default for Offload {
    fn default() -> Self {
        Self {
            x_accel_redirect: true,
            x_sendfile_roots: Vec::new(),
            advertise: None,
            accel_mapping: None,
        }
    }
}

/// `offload.advertise`: the offload header the application is told to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendfileType {
    /// `X-Accel-Redirect` (nginx style: the application names a URI).
    XAccelRedirect,
    /// `X-Sendfile` (lighttpd/Apache style: the application names a file path).
    XSendfile,
}

impl SendfileType {
    /// The header value sent to the application (`X-Sendfile-Type`), also the config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::XAccelRedirect => "X-Accel-Redirect",
            Self::XSendfile => "X-Sendfile",
        }
    }
}

/// One `[[location]]`: requests whose path starts with `prefix` are served from `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Starts with `/`; unique among locations.
    pub prefix: String,
    /// Relative roots are relative to the working directory; not checked for existence here.
    pub root: PathBuf,
    /// File served for a request naming a directory; a single file name, [`DEFAULT_INDEX`]
    /// unless the file says otherwise. `None` only for a location that proxies.
    pub index: Option<String>,
    /// `Cache-Control: max-age` for responses from this location.
    pub expires: Option<Duration>,
    /// Reachable only through `X-Accel-Redirect` from the upstream; clients get 404 (nginx
    /// `internal;`). Never with prefix `/`.
    pub internal: bool,
    /// This location's `directio_threshold`: `None` takes `io.directio_threshold`,
    /// `Some(None)` ("0") turns direct I/O off here.
    pub directio_threshold: Option<Option<NonZeroU64>>,
    /// Pre-compressed variants (`NAME.br`, `NAME.zst`, `NAME.gz`) served to clients that
    /// accept them, in the server's order of preference on equal q; empty: off (nginx
    /// `gzip_static on;`, `brotli_static on;`). No duplicates.
    pub precompressed: Vec<ContentCoding>,
    /// The `[upstreams.NAME]` this location's requests are proxied to (nginx `proxy_pass
    /// http://NAME;` in the location); then it serves no files, and `root` is empty.
    pub upstream: Option<String>,
    /// Headers added to this location's responses; when not empty they replace
    /// `server.add_header` here (nginx: a level with its own `add_header` inherits none).
    pub add_header: Vec<AddHeader>,
}

/// A location's `index` when the file gives none (nginx's default too).
pub const DEFAULT_INDEX: &str = "index.html";

/// One problem with one key: `"{key}: {message}"`, after `"{file}:{line}:{column}: "` when
/// it comes from a place in a configuration file (the form editors and CI annotations jump
/// to).
///
/// `key` is the full dotted key (`server.header_timeout`, `location[1].root`,
/// `server.listen[0]`), or `config` for a problem with the file as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Full dotted key, e.g. `server.listen[1]`, or `config`.
    pub key: String,
    /// What is wrong, lowercase, without the key.
    pub message: String,
    /// Where in the file: the value (or the key, for an unknown key; the enclosing table, for
    /// a missing one). `None` for values from the environment, text not read from a file,
    /// and problems with no place (the file as a whole).
    pub position: Option<Position>,
}

impl ConfigError {
    /// A problem with `key` (the full dotted key, or `config` for the file as a whole).
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            position: None,
        }
    }

    /// The same problem, at `position`.
    pub fn at(self, position: Option<Position>) -> Self {
        Self { position, ..self }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(position) = &self.position {
            write!(f, "{position}: ")?;
        }
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one load, in a stable order; never empty when returned as an error.
/// Displays one problem per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        Self(vec![error])
    }
}
