//! Request buffering: a request body read whole before the app is contacted, so a slow
//! upload holds no app connection (nginx `proxy_request_buffering on`). Up to
//! `spool.request_memory` it is held in memory; past that it goes into a spool file —
//! spliced from a plaintext client's socket (no copy through user space), written after a
//! TLS read, or after decoding a chunked body — and the app gets it with a Content-Length,
//! sent from the file with sendfile (`upstream::RequestBody::File`). `server.max_body_size`
//! is enforced on the way: a Content-Length over it before a byte is read, a chunked or
//! HTTP/2 body as soon as it passes it.
//!
//! [`Collector`] is the one place that decides memory or file and keeps the limit, for
//! HTTP/1.1 (`read_h1`, here) and HTTP/2 (`frontend::h2`, which feeds it frames).

use std::fs::File;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use crate::http::{BodyLength, ChunkedDecoder, MAX_CHUNK_LINE, ParseError};
use crate::metrics::SpoolDirection;
use crate::spool::SpoolFile;
use crate::sys::Pipe;
use crate::transport::Transport;

/// An error a client's body read ends with, passed through to the frontend.
pub type BodyReadError = Box<dyn std::error::Error + Send + Sync>;

/// How bodies are held between a slow side and the app (`[spool]`, `server.max_body_size`).
#[derive(Debug, Clone)]
pub struct Buffering {
    pub spool: crate::spool::Spool,
    /// Spool a response's rest when the client is slower than the app.
    pub responses: bool,
    /// Read a request body whole before the app is asked.
    pub requests: bool,
    /// Request bodies up to this stay in memory.
    pub request_memory: usize,
    /// Larger request bodies are answered 413 (0: no limit).
    pub max_body_size: u64,
    /// The longest a client sending a body may send nothing.
    pub client_timeout: std::time::Duration,
}

/// A whole request body.
#[derive(Debug)]
pub enum Held {
    Memory(Bytes),
    /// The first `written()` bytes of the file; dropping it frees the file.
    Spooled(SpoolFile),
}

impl Held {
    pub fn len(&self) -> u64 {
        match self {
            Held::Memory(bytes) => bytes.len() as u64,
            Held::Spooled(file) => file.written(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file and length to send, for a spooled body.
    pub fn file(&self) -> Option<(Arc<File>, u64)> {
        match self {
            Held::Memory(_) => None,
            Held::Spooled(file) => Some((Arc::clone(file.file()), file.written())),
        }
    }
}

/// Why a body was not held.
#[derive(Debug)]
pub enum Refused {
    /// Over `server.max_body_size` (this many bytes): 413, the app asked nothing.
    TooLarge(u64),
    /// The client went away, stalled, or broke its chunked framing (`Bad`) mid-body.
    Gone(BodyReadError),
    /// The chunked framing is malformed: 400.
    Bad(ParseError),
    /// The spool had no room (counted): the body is to be streamed instead. Only before any
    /// of it was read.
    NoSpool,
}

/// Collects a body's bytes: memory first, a spool file once past `request_memory`.
pub struct Collector {
    memory: usize,
    limit: u64,
    spool: crate::spool::Spool,
    mem: BytesMut,
    file: Option<SpoolFile>,
    total: u64,
}

impl Collector {
    /// For a body of `expected` bytes when known: refused at once when over the limit; a
    /// file is made now when it will not fit in memory (`NoSpool` when the spool says no).
    pub fn new(buffering: &Buffering, expected: Option<u64>) -> Result<Collector, Refused> {
        let limit = buffering.max_body_size;
        if let Some(n) = expected
            && limit > 0
            && n > limit
        {
            return Err(Refused::TooLarge(limit));
        }
        let mut collector = Collector {
            memory: buffering.request_memory,
            limit,
            spool: buffering.spool.clone(),
            mem: BytesMut::new(),
            file: None,
            total: 0,
        };
        match expected {
            Some(n) if n > collector.memory as u64 => {
                let file = collector.spool.file(n, SpoolDirection::Request);
                collector.file = Some(file.ok_or(Refused::NoSpool)?);
            }
            Some(n) => collector.mem.reserve(n as usize),
            None => {}
        }
        Ok(collector)
    }

    /// Counts `n` more bytes against the limit.
    fn admit(&mut self, n: usize) -> Result<(), Refused> {
        self.total += n as u64;
        if self.limit > 0 && self.total > self.limit {
            return Err(Refused::TooLarge(self.limit));
        }
        Ok(())
    }

    /// Adds decoded body bytes.
    pub fn push(&mut self, data: &[u8]) -> Result<(), Refused> {
        self.admit(data.len())?;
        if self.file.is_none() && self.mem.len() + data.len() > self.memory {
            self.spill(data.len())?;
        }
        match &mut self.file {
            Some(file) => {
                if !file.grow(data.len() as u64) {
                    return Err(gone(io::Error::other(
                        "the request body outgrew the spool's limits",
                    )));
                }
                file.write(data).map_err(gone)
            }
            None => {
                self.mem.extend_from_slice(data);
                Ok(())
            }
        }
    }

    /// Moves what memory holds into a new spool file, about to take `more` bytes.
    fn spill(&mut self, more: usize) -> Result<(), Refused> {
        let want = (self.mem.len() + more) as u64;
        let Some(mut file) = self.spool.file(want, SpoolDirection::Request) else {
            return Err(gone(io::Error::other("no spool room for the request body")));
        };
        file.write(&self.mem).map_err(gone)?;
        self.mem = BytesMut::new();
        self.file = Some(file);
        Ok(())
    }

    /// Adds `n` bytes that `pipe` holds (the file must exist: a known length past memory).
    fn push_pipe(&mut self, pipe: &Pipe, n: usize) -> Result<(), Refused> {
        self.admit(n)?;
        let file = self.file.as_mut().expect("a file for a body past memory");
        file.splice_from(pipe, n).map_err(gone)
    }

    pub fn finish(self) -> Held {
        match self.file {
            Some(file) => Held::Spooled(file),
            None => Held::Memory(self.mem.freeze()),
        }
    }
}

fn gone(err: io::Error) -> Refused {
    Refused::Gone(Box::new(err))
}

/// Reads an HTTP/1.1 request body whole: what `buf` holds first, the rest from `client`,
/// at most `timeout` between reads. `Expect: 100-continue` is answered first. Bytes after a
/// chunked body stay in `buf` (a pipelined request).
pub async fn read_h1(
    buffering: &Buffering,
    length: BodyLength,
    expect_continue: bool,
    client: &mut Transport,
    buf: &mut BytesMut,
    timeout: Duration,
) -> Result<Held, Refused> {
    let expected = match length {
        BodyLength::Empty => return Ok(Held::Memory(Bytes::new())),
        BodyLength::Length(n) => Some(n),
        BodyLength::Chunked => None,
    };
    let mut collector = Collector::new(buffering, expected)?;
    if expect_continue {
        client
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .map_err(|err| Refused::Gone(Box::new(err)))?;
    }
    match expected {
        Some(n) => {
            let from_buf = (buf.len() as u64).min(n) as usize;
            collector.push(&buf[..from_buf])?;
            buf.advance(from_buf);
            let left = n - from_buf as u64;
            match client {
                Transport::Plain(tcp) if collector.file.is_some() => {
                    splice_in(tcp, &mut collector, left, timeout).await?
                }
                other => copy_in(other, &mut collector, left, timeout).await?,
            }
        }
        None => dechunk_in(client, buf, &mut collector, timeout).await?,
    }
    Ok(collector.finish())
}

/// Splices exactly `left` bytes from the client's socket into the collector's file.
async fn splice_in(
    client: &TcpStream,
    collector: &mut Collector,
    mut left: u64,
    timeout: Duration,
) -> Result<(), Refused> {
    if left == 0 {
        return Ok(());
    }
    let pipe = Pipe::new().map_err(gone)?;
    while left > 0 {
        match tokio::time::timeout(timeout, client.readable()).await {
            Ok(ready) => ready.map_err(gone)?,
            Err(_) => return Err(gone(io::ErrorKind::TimedOut.into())),
        }
        let want = left.min(pipe.capacity() as u64) as usize;
        let filled = match client.try_io(Interest::READABLE, || pipe.fill_from_socket(client, want))
        {
            Ok(0) => return Err(gone(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(err) => return Err(gone(err)),
        };
        collector.push_pipe(&pipe, filled)?;
        left -= filled as u64;
        tokio::task::consume_budget().await;
    }
    Ok(())
}

/// Reads exactly `left` bytes through the client's transport into the collector.
async fn copy_in(
    client: &mut Transport,
    collector: &mut Collector,
    mut left: u64,
    timeout: Duration,
) -> Result<(), Refused> {
    let mut scratch = vec![0u8; (left as usize).clamp(1, 64 * 1024)];
    while left > 0 {
        let want = left.min(scratch.len() as u64) as usize;
        let n = match tokio::time::timeout(timeout, client.read(&mut scratch[..want])).await {
            Ok(Ok(0)) => return Err(gone(io::ErrorKind::UnexpectedEof.into())),
            Ok(Ok(n)) => n,
            Ok(Err(err)) => return Err(gone(err)),
            Err(_) => return Err(gone(io::ErrorKind::TimedOut.into())),
        };
        collector.push(&scratch[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Decodes a chunked body from `buf` and then `client` into the collector.
async fn dechunk_in(
    client: &mut Transport,
    buf: &mut BytesMut,
    collector: &mut Collector,
    timeout: Duration,
) -> Result<(), Refused> {
    let mut decoder = ChunkedDecoder::new(MAX_CHUNK_LINE);
    let mut data = Vec::new();
    loop {
        if !buf.is_empty() {
            data.clear();
            let used = decoder.decode(buf, &mut data).map_err(Refused::Bad)?;
            buf.advance(used);
            collector.push(&data)?;
        }
        if decoder.done() {
            return Ok(());
        }
        buf.reserve(16 * 1024);
        match tokio::time::timeout(timeout, client.read_buf(buf)).await {
            Ok(Ok(0)) => return Err(gone(io::ErrorKind::UnexpectedEof.into())),
            Ok(Ok(_)) => {}
            Ok(Err(err)) => return Err(gone(err)),
            Err(_) => return Err(gone(io::ErrorKind::TimedOut.into())),
        }
    }
}
