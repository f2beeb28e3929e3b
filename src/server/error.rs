//! Why a serving process could not start, or a reload could not go ahead: one error per
//! problem, each naming the key (or flag) at fault.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the server could not start (or a reload could not go ahead).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{}", .0.join("\n"))]
    Locations(Vec<String>),
    #[error("{key} {addr}: bind: {source}")]
    Bind {
        key: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "{key} {addr}: address already in use: another process listens there, and ferry does not share a listening port (to take over from a running ferry, start this one with --upgrade-from its server.upgrade_socket)"
    )]
    InUse { key: &'static str, addr: SocketAddr },
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("{0}")]
    Cache(#[from] crate::cache::CacheError),
    #[error("spool.dir {dir}: cannot create a spool file: {source}")]
    Spool {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("connection worker: {0}")]
    Worker(std::io::Error),
    #[error("server.pid_file {path}: {source}")]
    PidFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("server.upgrade_socket {path}: {message}")]
    UpgradeSocket { path: PathBuf, message: String },
    #[error("--upgrade-from {path}: {message}")]
    Upgrade { path: PathBuf, message: String },
}
