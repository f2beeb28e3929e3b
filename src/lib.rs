//! ferry: a reverse proxy and file-offload sidecar whose point is moving bytes with the kernel.
//!
//! # Architecture
//!
//! ```text
//! accept (socket2 listener, SO_REUSEPORT)            frontend::accept_loop
//!   └─ transport: plain TCP                          transport::Transport
//!        └─ HTTP/1.1 connection loop                 frontend::conn (codec: http, no I/O)
//!             └─ router: longest-prefix location     route::Router
//!                  └─ static location → safe path → file reply (route::static_file)
//!   reply = status + headers + Body { Empty | Bytes | File{fd, range} | Parts }
//!   send: the transport and the body decide the path once per response   send::Sender
//!         sendfile | splice | buffered | memory, falling back on EINVAL/ENOSYS
//! ```
//!
//! - `config`: TOML + `FERRY__SECTION__KEY` environment → validated, typed `Config`.
//! - `http`: request parsing, response encoding, ranges, conditionals, MIME types.
//! - `sys`: the syscall wrappers (sendfile, splice, pipes, TCP_CORK, openat2); the only
//!   place allowed to contain `unsafe`.
//! - `metrics`: the Prometheus families whose names DESIGN.md fixes; `admin` serves them.
//! - `server`: start-up, signals and graceful shutdown.
//!
//! Upstream proxying, X-Accel-Redirect, TLS/kTLS and the cache plug into `route`, `transport`
//! and `send` in later work; see DESIGN.md.

#![deny(unsafe_code)]

pub mod access;
pub mod admin;
pub mod config;
pub mod frontend;
pub mod http;
pub mod metrics;
pub mod route;
pub mod send;
pub mod server;
pub mod sys;
pub mod tls;
pub mod transport;
pub mod upstream;
