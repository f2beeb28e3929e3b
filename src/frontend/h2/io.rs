//! The connection's transport under hyper's HTTP/2. Reads first return what was read before
//! hyper took over (on h2c: the preface, which the HTTP/1.1 reader recognised, and whatever
//! came with it), then pass through. Writes are gathered
//! until hyper flushes: hyper writes a stream's HEADERS and DATA, and other streams' frames,
//! as separate writes before one flush, and under rustls each write would become a TLS
//! record and a writev(2) of its own. Gathered, a flush is one write to TLS (records of up to
//! 16 KiB) and one writev. The buffer comes from the worker's pool on the first write and
//! goes back when a flush has emptied it, so an idle connection holds none.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::send::pool;

/// Bytes gathered before they go out without waiting for a flush: one full DATA frame (16 KiB
/// of payload and its 9-byte header) and some headers. A write at least this large goes
/// straight through.
const GATHER: usize = 16 * 1024 + 512;

/// A transport whose writes are gathered until a flush.
#[derive(Debug)]
pub struct Gathered<T> {
    io: T,
    /// Read before hyper took over, and not yet handed to it.
    read: BytesMut,
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    written: usize,
}

impl<T: AsyncWrite + Unpin> Gathered<T> {
    /// `read`: bytes already read from `io`, returned before any read of it.
    pub fn new(io: T, read: BytesMut) -> Gathered<T> {
        Gathered {
            io,
            read,
            buf: Vec::new(),
            written: 0,
        }
    }

    /// Writes out what is gathered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// Makes room for `len` more bytes: drains first when they would not fit. False when
    /// they are too many to gather at all (write them straight through).
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<bool>> {
        if self.buf.len() + len > GATHER {
            ready!(self.poll_drain(cx))?;
        }
        if len >= GATHER {
            return Poll::Ready(Ok(false));
        }
        if self.buf.capacity() == 0 {
            self.buf = pool::take_gather(GATHER);
        }
        Poll::Ready(Ok(true))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Gathered<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.read.is_empty() {
            let n = this.read.len().min(buf.remaining());
            buf.put_slice(&this.read[..n]);
            this.read.advance(n);
            if this.read.is_empty() {
                pool::put_read(std::mem::take(&mut this.read));
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Gathered<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !ready!(this.poll_room(cx, data.len()))? {
            return Pin::new(&mut this.io).poll_write(cx, data);
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total = bufs.iter().map(|b| b.len()).sum();
        if !ready!(this.poll_room(cx, total))? {
            return Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        }
        for b in bufs {
            this.buf.extend_from_slice(b);
        }
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        pool::put_gather(std::mem::take(&mut this.buf));
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        pool::put_gather(std::mem::take(&mut this.buf));
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A sink that records each write it is given.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl AsyncWrite for Writes {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().0.push(data.to_vec());
            Poll::Ready(Ok(data.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn bytes_read_before_come_first_then_the_transport() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = Gathered::new(server, BytesMut::from(&b"PRI * HTTP/2.0"[..]));
        client.write_all(b" and more").await.unwrap();
        let mut got = [0u8; 10];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"PRI * HTTP");
        let mut rest = [0u8; 13];
        io.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"/2.0 and more");
        assert_eq!(
            io.read.capacity(),
            0,
            "the read buffer is given back once handed over"
        );
    }

    #[tokio::test]
    async fn writes_go_out_as_one_at_the_flush_and_the_buffer_goes_back() {
        let mut io = Gathered::new(Writes::default(), BytesMut::new());
        io.write_all(b"HEADERS").await.unwrap();
        let parts = [IoSlice::new(b"DATA "), IoSlice::new(b"payload")];
        assert_eq!(io.write_vectored(&parts).await.unwrap(), 12);
        assert!(io.io.0.is_empty(), "nothing written before the flush");
        io.flush().await.unwrap();
        assert_eq!(io.io.0, [b"HEADERSDATA payload".to_vec()]);
        assert_eq!(io.buf.capacity(), 0, "an idle connection holds no buffer");
        // A write too large to gather goes straight through, after what was gathered.
        io.write_all(b"small").await.unwrap();
        let big = vec![7u8; GATHER];
        io.write_all(&big).await.unwrap();
        assert_eq!(io.io.0[1], b"small");
        assert_eq!(io.io.0[2], big);
    }
}
