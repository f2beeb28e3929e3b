//! A connection to the app: TCP or a unix socket, behind one type so the pool, the codec
//! loop and the splice paths need not care which. Both are raw sockets ferry owns, which is
//! what lets it splice the app's bytes to the client. Host names are resolved in
//! `resolve.rs`, which connects through `connect_tcp` here.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::failure::ConnectError;

/// A socket to the app.
#[derive(Debug)]
pub enum AppSocket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AppSocket {
    /// Connects to `addr` within `timeout`.
    pub async fn connect_tcp(
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<AppSocket, ConnectError> {
        let connect = async {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok::<_, io::Error>(AppSocket::Tcp(stream))
        };
        match tokio::time::timeout(timeout, connect).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(ConnectError::Timeout(timeout)),
        }
    }

    /// Connects to the socket at `path` within `timeout`.
    pub async fn connect_unix(path: &Path, timeout: Duration) -> Result<AppSocket, ConnectError> {
        match tokio::time::timeout(timeout, UnixStream::connect(path)).await {
            Ok(result) => Ok(AppSocket::Unix(result?)),
            Err(_) => Err(ConnectError::Timeout(timeout)),
        }
    }

    pub async fn readable(&self) -> io::Result<()> {
        match self {
            AppSocket::Tcp(s) => s.readable().await,
            AppSocket::Unix(s) => s.readable().await,
        }
    }

    pub async fn writable(&self) -> io::Result<()> {
        match self {
            AppSocket::Tcp(s) => s.writable().await,
            AppSocket::Unix(s) => s.writable().await,
        }
    }

    /// Runs a non-blocking syscall on the socket, clearing readiness on `WouldBlock`.
    pub fn try_io<R>(
        &self,
        interest: Interest,
        f: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        match self {
            AppSocket::Tcp(s) => s.try_io(interest, f),
            AppSocket::Unix(s) => s.try_io(interest, f),
        }
    }
}

impl AsFd for AppSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            AppSocket::Tcp(s) => s.as_fd(),
            AppSocket::Unix(s) => s.as_fd(),
        }
    }
}

impl AsRawFd for AppSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl AsyncRead for AppSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AppSocket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            AppSocket::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for AppSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            AppSocket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            AppSocket::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AppSocket::Tcp(s) => Pin::new(s).poll_flush(cx),
            AppSocket::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AppSocket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            AppSocket::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
