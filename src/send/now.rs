//! Writing a small response without waiting: most responses are a head and a body the
//! socket takes at once (an error, a redirect, a 304, a small file). On plain TCP the head
//! goes with MSG_MORE and the file with one sendfile(2); on userspace TLS head and body go to
//! rustls as one piece of plaintext and its records to the socket. Written here with direct
//! calls, such a response builds no future and arms no timer; when the socket is full
//! part-way, or the response is of another kind, `write_response` goes on from where this
//! stopped.

use std::io::{self, Write};
use std::os::unix::fs::FileExt;

use bytes::Buf;
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::{Body, Sender, pool};
use crate::failure::Failure;
use crate::metrics::{SendPath, Tally};
use crate::sys;
use crate::transport::{RustlsStream, Transport};

impl Sender {
    /// Writes what the socket takes now of a response without a rate limit: to a plain TCP
    /// client, one whose body is empty, generated, or a file range one capped sendfile(2)
    /// covers on the sendfile path; on userspace TLS, see `write_now_tls`; on kTLS, none
    /// (yet). `Some`: the response is written, or failed. `None`: it was not
    /// of that kind, or the socket filled up; `head[*head_sent..]` and `body` are then what
    /// is left, for `write_response`. `tally` counts the body bytes written either way.
    pub fn write_now(
        &self,
        transport: &mut Transport,
        head: &[u8],
        head_sent: &mut usize,
        body: &mut Body,
        rate: Option<u64>,
        tally: &mut Tally,
    ) -> Option<Result<(), Failure>> {
        if rate.is_some() {
            return None;
        }
        let stream = match transport {
            Transport::Plain(stream) => &*stream,
            Transport::Tls(tls) => return self.write_now_tls(tls, head, head_sent, body, tally),
            Transport::Ktls(_) => return None,
        };
        let done = match body {
            Body::Empty => Sender::send_now(stream, head, head_sent, false),
            Body::Bytes(bytes) => {
                // Head and body leave in one segment: the head goes with MSG_MORE.
                Sender::send_now(stream, head, head_sent, true).and_then(|()| {
                    let mut sent = 0;
                    let result = Sender::send_now(stream, bytes, &mut sent, false);
                    tally.add(SendPath::Memory, sent);
                    bytes.advance(sent);
                    result
                })
            }
            Body::File(range)
                if self.file_path == SendPath::Sendfile
                    && !range.direct
                    && range.len > 0
                    && range.len <= self.chunk as u64 =>
            {
                Sender::send_now(stream, head, head_sent, true).and_then(|()| {
                    let mut offset = range.offset;
                    let result = stream.try_io(Interest::WRITABLE, || {
                        sys::sendfile(stream, &*range.file, &mut offset, range.len as usize)
                    });
                    match result {
                        Ok(0) => Err(Some(Failure::Truncated)),
                        Ok(n) => {
                            tally.add(SendPath::Sendfile, n);
                            range.offset = offset;
                            range.len -= n as u64;
                            if range.len == 0 { Ok(()) } else { Err(None) }
                        }
                        // A refused path is `write_response`'s to fall back from.
                        Err(err)
                            if err.kind() == io::ErrorKind::WouldBlock
                                || sys::is_unsupported(&err) =>
                        {
                            Err(None)
                        }
                        Err(err) => Err(Some(err.into())),
                    }
                })
            }
            _ => return None,
        };
        match done {
            Ok(()) => Some(Ok(())),
            Err(failed) => failed.map(Err),
        }
    }
}

impl Sender {
    /// `write_now` on userspace TLS: a head with an empty or generated body, or with a file
    /// body of at most one record that is read through the page cache, goes to rustls as
    /// plaintext (so head and body share a record) and its records to the socket as far as
    /// it takes them. Once rustls holds the plaintext, `head` and `body` count as written:
    /// when the socket fills up, what `write_response` is left with is rustls's flush.
    fn write_now_tls(
        &self,
        tls: &mut RustlsStream,
        head: &[u8],
        head_sent: &mut usize,
        body: &mut Body,
        tally: &mut Tally,
    ) -> Option<Result<(), Failure>> {
        let (socket, conn) = tls.get_mut();
        if *head_sent > 0 || conn.wants_write() {
            return None;
        }
        let mut writer = conn.writer();
        let written = match body {
            Body::Empty => writer.write_all(head),
            Body::Bytes(bytes) if bytes.len() <= TLS_RECORD => {
                let written = give(&mut writer, head, bytes);
                tally.add(SendPath::Memory, bytes.len());
                written
            }
            Body::File(range)
                if self.file_path == SendPath::TlsBuffered
                    && !range.direct
                    && range.len > 0
                    && range.len <= TLS_RECORD as u64 =>
            {
                let len = range.len as usize;
                let mut buf = pool::take_body(len);
                let read = match range.file.read_at(&mut buf[..len], range.offset) {
                    Ok(n) if n == len => {
                        tally.add(self.file_path, len);
                        give(&mut writer, head, &buf[..len]).map_err(Failure::from)
                    }
                    Ok(_) => Err(Failure::Truncated),
                    Err(err) => Err(Failure::Disk(err)),
                };
                pool::put_body(buf);
                if let Err(failed) = read {
                    return Some(Err(failed));
                }
                Ok(())
            }
            _ => return None,
        };
        if let Err(err) = written {
            return Some(Err(err.into()));
        }
        *head_sent = head.len();
        *body = Body::Empty;
        let mut socket = NoWait(&socket.io);
        while conn.wants_write() {
            match conn.write_tls(&mut socket) {
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return None,
                Err(err) => return Some(Err(err.into())),
            }
        }
        Some(Ok(()))
    }
}

/// Hands rustls `head` and `body` as one piece of plaintext, so that they share a record.
fn give(writer: &mut impl Write, head: &[u8], body: &[u8]) -> io::Result<()> {
    let taken = writer.write_vectored(&[io::IoSlice::new(head), io::IoSlice::new(body)])?;
    match taken.checked_sub(head.len()) {
        Some(of_body) => writer.write_all(&body[of_body..]),
        None => writer
            .write_all(&head[taken..])
            .and_then(|()| writer.write_all(body)),
    }
}

/// The most body bytes `write_now_tls` hands rustls at once: one record's plaintext, well
/// under rustls's buffer limit.
const TLS_RECORD: usize = 16 * 1024;

/// A client socket as `io::Write` that never waits: a full socket is `WouldBlock`.
struct NoWait<'a>(&'a TcpStream);

impl io::Write for NoWait<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sender {
    /// Sends `bytes[*sent..]` as far as the socket takes them now. `Err(None)`: it is full;
    /// `Err(Some)`: the connection failed. `more`: body bytes follow (MSG_MORE: the kernel holds
    /// them until a later write without it; rustix's `send` is a safe call, so it needs no
    /// wrapper in `sys`).
    pub(super) fn send_now(
        stream: &TcpStream,
        bytes: &[u8],
        sent: &mut usize,
        more: bool,
    ) -> Result<(), Option<Failure>> {
        let flags = if more {
            rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL
        } else {
            rustix::net::SendFlags::NOSIGNAL
        };
        while *sent < bytes.len() {
            match stream.try_io(Interest::WRITABLE, || {
                Ok(rustix::net::send(stream, &bytes[*sent..], flags)?)
            }) {
                Ok(n) => *sent += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Err(None),
                Err(err) => return Err(Some(err.into())),
            }
        }
        Ok(())
    }
}
