//! The label values of ferry's metrics, each a closed set (see DESIGN.md): the send path a
//! body took, the transport of a connection, why kTLS was not used, the side at fault when a
//! response failed, and the per-response tally of bytes per path. Plain types with no dependencies, so every module that records a
//! metric can name them without the metrics depending back on it. What the other modules
//! do with them (choosing a path, probing kTLS) they add in their own `impl` blocks.

/// How a response's bytes reach the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendPath {
    /// sendfile(2) from the file to a plaintext socket: no user-space copy.
    Sendfile,
    /// splice(2) file or app socket → pipe → plaintext socket: no user-space copy.
    Splice,
    /// sendfile(2) to a kTLS socket: no user-space copy; the kernel encrypts.
    KtlsSendfile,
    /// splice(2) through a pipe to a kTLS socket: no user-space copy; the kernel encrypts.
    KtlsSplice,
    /// pread(2)/read(2) into a reused buffer, then write(2): two CPU copies.
    Buffered,
    /// Userspace TLS: read into a buffer, rustls encrypts, write(2).
    TlsBuffered,
    /// A small generated body written from memory.
    Memory,
    /// A file at or above its directio threshold: O_DIRECT pread(2) off the reactor into an
    /// aligned buffer (the page cache bypassed), then the transport's write: one CPU copy.
    Directio,
}

impl SendPath {
    pub const ALL: [SendPath; 8] = [
        SendPath::Sendfile,
        SendPath::Splice,
        SendPath::KtlsSendfile,
        SendPath::KtlsSplice,
        SendPath::Buffered,
        SendPath::TlsBuffered,
        SendPath::Memory,
        SendPath::Directio,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SendPath::Sendfile => "sendfile",
            SendPath::Splice => "splice",
            SendPath::KtlsSendfile => "ktls_sendfile",
            SendPath::KtlsSplice => "ktls_splice",
            SendPath::Buffered => "buffered",
            SendPath::TlsBuffered => "tls_buffered",
            SendPath::Memory => "memory",
            SendPath::Directio => "directio",
        }
    }

    /// Whether bytes sent on this path never enter user space.
    pub fn is_zero_copy(self) -> bool {
        matches!(
            self,
            SendPath::Sendfile | SendPath::Splice | SendPath::KtlsSendfile | SendPath::KtlsSplice
        )
    }
}

/// Body bytes written per send path for one response.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    bytes: [u64; SendPath::ALL.len()],
    /// Bytes counted in `bytes` that nevertheless passed through user space (an upstream
    /// body's first bytes, read together with its head).
    copied: [u64; SendPath::ALL.len()],
    file_path: Option<SendPath>,
}

impl Tally {
    /// Counts `n` bytes written on `path`; on a zero-copy path they never entered user space.
    pub fn add(&mut self, path: SendPath, n: usize) {
        self.bytes[path as usize] += n as u64;
        if path != SendPath::Memory {
            self.file_path = Some(path);
        }
    }

    /// Counts `n` bytes written as part of a `path` response but copied through user space.
    pub fn add_copied(&mut self, path: SendPath, n: usize) {
        self.add(path, n);
        self.copied[path as usize] += n as u64;
    }

    /// Bytes written on `path`.
    pub fn bytes(&self, path: SendPath) -> u64 {
        self.bytes[path as usize]
    }

    /// Bytes written on `path` that never entered user space.
    pub fn zero_copy(&self, path: SendPath) -> u64 {
        if path.is_zero_copy() {
            self.bytes[path as usize] - self.copied[path as usize]
        } else {
            0
        }
    }

    /// All body bytes written.
    pub fn total(&self) -> u64 {
        self.bytes.iter().sum()
    }

    /// The path that carried the response's body, or `memory` when it had none.
    pub fn path(&self) -> SendPath {
        self.file_path.unwrap_or(SendPath::Memory)
    }
}

/// The HTTP version a connection speaks: the `proto` label of `ferry_http_connections_total`,
/// and the access log's `proto` field (nginx `$server_protocol`: there the version the
/// client's request line said for HTTP/1.x, `HTTP/2` for a stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Http1,
    Http2,
}

impl Proto {
    pub const ALL: [Proto; 2] = [Proto::Http1, Proto::Http2];

    pub fn label(self) -> &'static str {
        match self {
            Proto::Http1 => "http1",
            Proto::Http2 => "http2",
        }
    }
}

/// The kind of a transport, for labels and path choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    Tcp,
    Ktls,
    Tls,
}

impl TransportKind {
    pub const ALL: [TransportKind; 3] =
        [TransportKind::Tcp, TransportKind::Ktls, TransportKind::Tls];

    /// The `transport` label in `ferry_connections_*`.
    pub fn label(self) -> &'static str {
        match self {
            TransportKind::Tcp => "tcp",
            TransportKind::Ktls => "ktls",
            TransportKind::Tls => "tls",
        }
    }
}

/// Why kTLS is not used for a connection (`reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    Disabled,
    UlpUnavailable,
    CipherUnsupported,
    Http2,
    InstallFailed,
}

impl Fallback {
    pub const ALL: [Fallback; 5] = [
        Fallback::Disabled,
        Fallback::UlpUnavailable,
        Fallback::CipherUnsupported,
        Fallback::Http2,
        Fallback::InstallFailed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Fallback::Disabled => "disabled",
            Fallback::UlpUnavailable => "ulp_unavailable",
            Fallback::CipherUnsupported => "cipher_unsupported",
            Fallback::Http2 => "http2",
            Fallback::InstallFailed => "install_failed",
        }
    }
}

/// The side at fault when a response's body did not arrive whole (`side` label): the client
/// (went away, stalled), the app (closed, stalled or broke its framing mid-body), the disk
/// (a file shrank or could not be read) or ferry itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
    Disk,
    Internal,
}

impl Side {
    pub const ALL: [Side; 4] = [Side::Client, Side::Upstream, Side::Disk, Side::Internal];

    pub fn label(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Upstream => "upstream",
            Side::Disk => "disk",
            Side::Internal => "internal",
        }
    }
}
