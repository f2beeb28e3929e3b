//! ferry: a reverse proxy and file-offload sidecar whose point is moving bytes with the kernel.
//!
//! # Architecture
//!
//! ```text
//! accept (socket2 listener, SO_REUSEPORT)            frontend::accept_loop
//!   ├─ PROXY protocol header first, where configured  frontend::proxy_protocol
//!   └─ transport: plain TCP | TLS (rustls) → kTLS?   transport::Transport, tls::Tls
//!        ├─ ALPN h2 → HTTP/2, same router           frontend::h2 (driver; protocol:
//!        │                                           http2, no I/O; bodies tls_buffered)
//!        └─ HTTP/1.1 connection loop                 frontend::conn (codec: http, no I/O)
//!             ├─ first bytes the h2c preface → HTTP/2  frontend::h2 (bodies buffered)
//!             └─ router: longest-prefix location     route::Router
//!                  ├─ static location → safe path → file reply (route::static_file,
//!                  │    route::file_answer: conditionals, ranges, multipart)
//!                  └─ the app: one trip for HTTP/1.1 and HTTP/2      proxy::Proxy::forward
//!                       ├─ [cache] decides first: hit → file reply from the cache file
//!                       │  (proxy::hit), expired → revalidate, miss → one request per key
//!                       │  (cache::flow decides, proxy::cached acts)
//!                       ├─ request body read whole first: memory, or a spool file
//!                       │  spliced in (413 past server.max_body_size) proxy::request_body
//!                       ├─ request + body to the app (own HTTP/1.1 client, pooled; a
//!                       │  server picked, capped and queued, retried on the next one)
//!                       │                                     upstream::Upstream::exchange
//!                       ├─ X-Accel-Redirect / X-Sendfile → file reply   (route::accel)
//!                       ├─ otherwise body spliced (Content-Length) or re-framed, teed
//!                       │  into a cache fill when storable     (proxy::relay, cache::fill)
//!                       │  a slow client: the rest into a spool file, the app freed,
//!                       │  then sendfile from it        (send::source, send::relay, spool)
//!                       └─ 101 → both sockets joined                    (proxy::tunnel)
//!   reply = status + headers + Body { Empty | Bytes | File{fd, range} | Parts | Upstream }
//!   send: the transport and the body decide the path once per response   send::Sender
//!         sendfile | splice | ktls_* | buffered | tls_buffered | memory,
//!         falling back on EINVAL/ENOSYS; directio (O_DIRECT) for files over a threshold
//! ```
//!
//! - `config`: TOML + `FERRY__SECTION__KEY` environment → validated, typed `Config`;
//!   `check` adds what the file system says about it (`ferry check`).
//! - `http`: request parsing, response encoding, ranges, conditionals, MIME types.
//! - `http2`: ferry's own HTTP/2 server protocol (frames, HPACK, flow control, stream
//!   states, limits), sans I/O; `frontend::h2` drives it, one task per connection.
//! - `ingress`: who a request comes from behind a load balancer: trusted proxy networks and
//!   X-Forwarded-For, the PROXY protocol header (parsed only; the frontend reads it first
//!   thing on a listener that asks for it, before any TLS).
//! - `sys`: the syscall wrappers (sendfile, splice, pipes, TCP_CORK, openat2, kTLS records,
//!   O_DIRECT), the crate `ferry-sys` in sys/: the only code with `unsafe`. This crate
//!   forbids it (`#![forbid(unsafe_code)]`, which no module can lift).
//! - `metrics`: the Prometheus families whose names DESIGN.md fixes; `admin` serves them.
//! - `server`: start-up, signals and graceful shutdown; SIGHUP reloads (a new
//!   `frontend::Generation` for new connections, listeners opened and closed), and a new
//!   process can take the listening sockets over (`server.upgrade_socket`, SCM_RIGHTS).
//! - `build`: who built the binary (version, git commit, date, rustc; recorded by build.rs),
//!   for `ferry --version` and `ferry_build_info`.
//! - `bench`: `ferry bench`, the send paths (and read+write, mmap, O_DIRECT, kTLS) measured
//!   side by side over loopback on the user's machine; not used by the server.
//!
//! - `spool`: unlinked temporary files (O_TMPFILE) holding a body between a slow side and the
//!   app, with per-file and total limits.
//! - `proxy`: a proxied request's trip, shared by HTTP/1.1 and HTTP/2: cache, app, offload,
//!   relay, tunnel. Nothing below it calls back into `frontend`.
//! - `cache`: the disk cache of upstream responses, store and policy only: RFC 9111
//!   decisions, the object files and their index, eviction, purge; `cache::fill` writes fills
//!   off the reactor. It does no network I/O and builds no reply.

#![forbid(unsafe_code)]

pub mod access;
pub mod admin;
pub mod bench;
pub mod build;
pub mod cache;
pub mod check;
pub mod config;
pub mod failure;
pub mod frontend;
pub mod http;
pub mod http2;
pub mod ingress;
pub mod metrics;
pub mod proxy;
pub mod route;
pub mod send;
pub mod server;
pub mod spool;
/// The syscall wrappers, in their own crate (sys/): the one place with `unsafe` code.
pub use ferry_sys as sys;
pub mod tls;
pub mod transport;
pub mod upstream;
