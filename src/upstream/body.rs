//! Moving bytes between the client and the app for one exchange: the request body out
//! (Content-Length bodies spliced socket → pipe → socket; chunked bodies decoded and
//! re-chunked so the app only ever sees framing ferry wrote), and the response head in.

use std::io;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use super::stream::AppSocket;
use crate::http::{BadResponse, ResponseHead, parse_response};
use crate::http::{
    BodyLength, ChunkedDecoder, MAX_CHUNK_LINE, ParseError, encode_chunk, encode_last_chunk,
};
use crate::sys::Pipe;
use crate::transport::Transport;

/// Which side failed while a request body was forwarded.
#[derive(Debug)]
pub enum BodyError {
    Client(io::Error),
    /// The client's chunked framing is malformed (answered with 400).
    BadChunked(ParseError),
    /// A chunked body passed the limit (this many bytes; answered with 413).
    TooLarge(u64),
    Upstream(io::Error),
}

/// Why no response head could be read.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Bad(#[from] BadResponse),
}

/// Sends the request body: what `buf` already holds first, the rest from `client`. Returns
/// the body bytes sent (decoded, for a chunked body).
pub async fn forward_request_body(
    length: BodyLength,
    client: &mut Transport,
    buf: &mut BytesMut,
    up: &mut AppSocket,
    timeout: Duration,
    limit: u64,
) -> Result<u64, BodyError> {
    match length {
        BodyLength::Empty => Ok(0),
        BodyLength::Length(n) => {
            let from_buf = (buf.len() as u64).min(n) as usize;
            if from_buf > 0 {
                up.write_all(&buf[..from_buf])
                    .await
                    .map_err(BodyError::Upstream)?;
                buf.advance(from_buf);
            }
            let left = n - from_buf as u64;
            match client {
                // Only a plaintext socket holds the body as it came; TLS must decrypt first.
                Transport::Plain(tcp) => splice_to_upstream(tcp, up, left, timeout).await,
                other => copy_to_upstream(other, up, left, timeout).await,
            }
            .map(|()| n)
        }
        BodyLength::Chunked => rechunk_to_upstream(client, buf, up, timeout, limit).await,
    }
}

/// Splices exactly `left` bytes from the client socket to the app through a pipe.
async fn splice_to_upstream(
    client: &TcpStream,
    up: &AppSocket,
    mut left: u64,
    timeout: Duration,
) -> Result<(), BodyError> {
    if left == 0 {
        return Ok(());
    }
    let pipe = Pipe::new().map_err(BodyError::Upstream)?;
    while left > 0 {
        match tokio::time::timeout(timeout, client.readable()).await {
            Ok(ready) => ready.map_err(BodyError::Client)?,
            Err(_) => return Err(BodyError::Client(io::ErrorKind::TimedOut.into())),
        }
        let want = left.min(pipe.capacity() as u64) as usize;
        let filled = match client.try_io(Interest::READABLE, || pipe.fill_from_socket(client, want))
        {
            Ok(0) => return Err(BodyError::Client(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(err) => return Err(BodyError::Client(err)),
        };
        let mut in_pipe = filled;
        while in_pipe > 0 {
            match tokio::time::timeout(timeout, up.writable()).await {
                Ok(ready) => ready.map_err(BodyError::Upstream)?,
                Err(_) => return Err(BodyError::Upstream(io::ErrorKind::TimedOut.into())),
            }
            match up.try_io(Interest::WRITABLE, || {
                pipe.drain_to(up, in_pipe, in_pipe < filled || left > filled as u64)
            }) {
                Ok(n) => in_pipe -= n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => return Err(BodyError::Upstream(err)),
            }
        }
        left -= filled as u64;
    }
    Ok(())
}

/// Copies exactly `left` bytes from a client whose bytes must be read through its
/// transport (TLS) to the app.
async fn copy_to_upstream(
    client: &mut Transport,
    up: &mut AppSocket,
    mut left: u64,
    timeout: Duration,
) -> Result<(), BodyError> {
    let mut scratch = vec![0u8; (left as usize).clamp(1, 64 * 1024)];
    while left > 0 {
        let want = left.min(scratch.len() as u64) as usize;
        let n = match tokio::time::timeout(timeout, client.read(&mut scratch[..want])).await {
            Ok(Ok(0)) => return Err(BodyError::Client(io::ErrorKind::UnexpectedEof.into())),
            Ok(Ok(n)) => n,
            Ok(Err(err)) => return Err(BodyError::Client(err)),
            Err(_) => return Err(BodyError::Client(io::ErrorKind::TimedOut.into())),
        };
        up.write_all(&scratch[..n])
            .await
            .map_err(BodyError::Upstream)?;
        left -= n as u64;
    }
    Ok(())
}

/// Decodes the client's chunked body and writes it to the app re-chunked; returns the
/// decoded bytes sent.
async fn rechunk_to_upstream(
    client: &mut Transport,
    buf: &mut BytesMut,
    up: &mut AppSocket,
    timeout: Duration,
    limit: u64,
) -> Result<u64, BodyError> {
    let mut sent = 0;
    let mut decoder = ChunkedDecoder::new(MAX_CHUNK_LINE);
    let mut data = Vec::new();
    let mut framed = Vec::new();
    loop {
        if !buf.is_empty() {
            let used = decoder
                .decode(buf, &mut data)
                .map_err(BodyError::BadChunked)?;
            buf.advance(used);
            if limit > 0 && sent + data.len() as u64 > limit {
                return Err(BodyError::TooLarge(limit));
            }
            if !data.is_empty() {
                framed.clear();
                encode_chunk(&data, &mut framed);
                up.write_all(&framed).await.map_err(BodyError::Upstream)?;
                sent += data.len() as u64;
                data.clear();
            }
            if decoder.done() {
                framed.clear();
                encode_last_chunk(&mut framed);
                up.write_all(&framed).await.map_err(BodyError::Upstream)?;
                return Ok(sent);
            }
        }
        buf.reserve(16 * 1024);
        match tokio::time::timeout(timeout, client.read_buf(buf)).await {
            Ok(Ok(0)) => return Err(BodyError::Client(io::ErrorKind::UnexpectedEof.into())),
            Ok(Ok(_)) => {}
            Ok(Err(err)) => return Err(BodyError::Client(err)),
            Err(_) => return Err(BodyError::Client(io::ErrorKind::TimedOut.into())),
        }
    }
}

/// Reads one response head. `Ok(None)`: the app closed first (`buf` tells whether it had
/// started a head). On return `buf` holds the body bytes that came with the head. When the
/// whole head is already in the socket, only the head's bytes are consumed (the length is
/// found with MSG_PEEK), so the body stays in the kernel for splice.
pub async fn read_head_bytes(
    stream: &mut AppSocket,
    buf: &mut BytesMut,
) -> Result<Option<ResponseHead>, HeadError> {
    let mut peeked = vec![0u8; 16 * 1024];
    loop {
        if !buf.is_empty() {
            if let Some((head, used)) = parse_response(buf)? {
                buf.advance(used);
                return Ok(Some(head));
            }
        } else {
            stream.readable().await?;
            match stream.try_io(Interest::READABLE, || {
                crate::sys::peek(&*stream, &mut peeked)
            }) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    if let Ok(Some((head, used))) = parse_response(&peeked[..n]) {
                        stream.read_exact(&mut peeked[..used]).await?;
                        return Ok(Some(head));
                    }
                    // Incomplete (or bad): read it normally and parse from the buffer.
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => return Err(err.into()),
            }
        }
        buf.reserve(8 * 1024);
        if stream.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// Reads and drops `len` body bytes (leftover first). False when the app failed to send them.
pub async fn skip(
    stream: &mut AppSocket,
    leftover: &mut BytesMut,
    len: u64,
    timeout: Duration,
) -> bool {
    let from_leftover = (leftover.len() as u64).min(len) as usize;
    leftover.advance(from_leftover);
    if !leftover.is_empty() {
        return false;
    }
    let mut left = len - from_leftover as u64;
    let mut scratch = [0u8; 8192];
    while left > 0 {
        let want = left.min(scratch.len() as u64) as usize;
        match tokio::time::timeout(timeout, stream.read(&mut scratch[..want])).await {
            Ok(Ok(n)) if n > 0 => left -= n as u64,
            _ => return false,
        }
    }
    true
}
