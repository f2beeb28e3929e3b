//! Writing a small response without waiting: most responses on plain TCP are a head and a
//! body the socket takes at once (an error, a redirect, a 304, a small file one sendfile(2)
//! covers). Written here with direct calls, such a response builds no future and arms no
//! timer; when the socket is full part-way, or the response is of another kind,
//! `write_response` goes on from where this stopped.

use std::io;

use bytes::Buf;
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::{Body, Sender};
use crate::failure::Failure;
use crate::metrics::{SendPath, Tally};
use crate::sys;
use crate::transport::Transport;

impl Sender {
    /// Writes what the socket takes now of a response to a plain TCP client without a rate
    /// limit whose body is empty, generated, or a file range one capped sendfile(2) covers
    /// on the sendfile path. `Some`: the response is written, or failed. `None`: it was not
    /// of that kind, or the socket filled up; `head[*head_sent..]` and `body` are then what
    /// is left, for `write_response`. `tally` counts the body bytes written either way.
    pub fn write_now(
        &self,
        transport: &Transport,
        head: &[u8],
        head_sent: &mut usize,
        body: &mut Body,
        rate: Option<u64>,
        tally: &mut Tally,
    ) -> Option<Result<(), Failure>> {
        let Transport::Plain(stream) = transport else {
            return None;
        };
        if rate.is_some() {
            return None;
        }
        let done = match body {
            Body::Empty => send_now(stream, head, head_sent, false),
            Body::Bytes(bytes) => {
                // Head and body leave in one segment: the head goes with MSG_MORE.
                send_now(stream, head, head_sent, true).and_then(|()| {
                    let mut sent = 0;
                    let result = send_now(stream, bytes, &mut sent, false);
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
                send_now(stream, head, head_sent, true).and_then(|()| {
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

/// Sends `bytes[*sent..]` as far as the socket takes them now. `Err(None)`: it is full;
/// `Err(Some)`: the connection failed. `more`: body bytes follow (MSG_MORE).
fn send_now(
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
