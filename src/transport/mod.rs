//! What a client connection is carried over, decided once when the connection is accepted.
//! Only plaintext TCP exists today; TLS (userspace rustls) and kTLS join this enum later, and
//! each variant says which zero-copy calls it allows so `send` can pick a path once per
//! response instead of probing per write.

use std::os::fd::{AsFd, BorrowedFd};

use tokio::net::TcpStream;

/// A client connection's transport.
#[derive(Debug)]
pub enum Transport {
    /// Plain TCP: sendfile(2) and splice(2) write straight to the socket.
    Plain(TcpStream),
}

impl Transport {
    /// The `transport` label in `ferry_connections_*`.
    pub fn label(&self) -> &'static str {
        match self {
            Transport::Plain(_) => "tcp",
        }
    }

    /// Whether file bytes can go to this socket without entering user space.
    pub fn zero_copy(&self) -> bool {
        match self {
            Transport::Plain(_) => true,
        }
    }

    /// The underlying TCP stream, for readiness and plain reads and writes.
    pub fn tcp(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(stream) => stream,
        }
    }

    pub fn tcp_ref(&self) -> &TcpStream {
        match self {
            Transport::Plain(stream) => stream,
        }
    }
}

impl AsFd for Transport {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.tcp_ref().as_fd()
    }
}
