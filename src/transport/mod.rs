//! What a client connection is carried over, decided once when the connection is set up:
//! plain TCP, TLS with the record layer in the kernel (kTLS: the socket still takes
//! sendfile/splice and the kernel encrypts), or userspace TLS (rustls encrypts every byte).
//! Each variant says which zero-copy calls it allows, so `send` picks a path once per
//! response instead of probing per write. The kTLS stream (`ktls`) reads records itself, so
//! alerts and post-handshake messages are seen when they arrive.

mod cork;
mod ktls;

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

pub use self::cork::RecordCork;
pub use self::ktls::{KtlsStream, RecordError};

use crate::metrics::TransportKind;

/// A userspace TLS stream (the cork wrapper is what lets a connection be handed to kTLS
/// after the handshake, and passes rustls's records to the socket in one writev).
pub type RustlsStream = TlsStream<RecordCork<TcpStream>>;

/// A client connection's transport.
pub enum Transport {
    /// Plain TCP: sendfile(2) and splice(2) write straight to the socket.
    Plain(TcpStream),
    /// kTLS: the kernel encrypts; sendfile(2) and splice(2) still work on the socket.
    Ktls(KtlsStream),
    /// Userspace TLS: every byte is encrypted by rustls from a buffer.
    Tls(Box<RustlsStream>),
}

impl TransportKind {
    /// The scheme a client reaching ferry over this transport used.
    pub fn scheme(self) -> crate::http::Scheme {
        match self {
            TransportKind::Tcp => crate::http::Scheme::Http,
            TransportKind::Ktls | TransportKind::Tls => crate::http::Scheme::Https,
        }
    }

    /// Whether bytes can reach this socket without passing through user space.
    pub fn zero_copy(self) -> bool {
        matches!(self, TransportKind::Tcp | TransportKind::Ktls)
    }
}

impl Transport {
    pub fn kind(&self) -> TransportKind {
        match self {
            Transport::Plain(_) => TransportKind::Tcp,
            Transport::Ktls(_) => TransportKind::Ktls,
            Transport::Tls(_) => TransportKind::Tls,
        }
    }

    /// The TCP socket underneath, for readiness and the zero-copy syscalls (which are only
    /// used when `kind().zero_copy()`).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(stream) => stream,
            Transport::Ktls(stream) => stream.get_ref(),
            Transport::Tls(stream) => &stream.get_ref().0.io,
        }
    }
}

impl AsFd for Transport {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.tcp().as_fd()
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Ktls(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Ktls(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Ktls(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Ktls(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
