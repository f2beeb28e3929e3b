//! The app's response body as a source, apart from where it goes: the only reader of the
//! app's connection while a body is relayed. It hands the body out as decoded bytes (the
//! bytes that came with the head first, then Content-Length, chunked, or until the app
//! closes, one piece per call: `next`), or — for the rest of a Content-Length body — as bytes
//! spliced into a pipe, which a sink drains without them entering user space (`splice`).
//! When the client is slower than the app, it moves the whole rest of the body into a spool
//! file (`spool_rest`), so the app's connection can go back to the pool at once.
//! The sinks are the HTTP/1.1 relay (`relay.rs`) and the HTTP/2 body (`frontend::h2`); each
//! writes, tallies and feeds a cache fill, and neither reads the app.
//!
//! The connection is marked not reusable when the app sent more than its framing said, or
//! the body ran until it closed.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, Interest};

use super::MAX_BUFFER;
use crate::cache::fill::Fill;
use crate::failure::Failure;
use crate::http::{ChunkedDecoder, Framing, MAX_CHUNK_LINE};
use crate::spool::SpoolFile;
use crate::sys::Pipe;
use crate::upstream::UpConn;

/// What is left to read of a body.
enum State {
    /// `left` bytes of a Content-Length body.
    Length { left: u64 },
    /// A chunked body: its decoder and the bytes read and not yet decoded.
    Chunked {
        decoder: ChunkedDecoder,
        input: BytesMut,
    },
    /// Until the app closes.
    Close,
    /// Nothing (more).
    Done,
}

/// One response body from the app, decoded piece by piece.
pub struct AppBody {
    state: State,
    /// Bytes that came with the head, handed out first (Content-Length and close bodies).
    early: Option<Bytes>,
}

impl AppBody {
    /// Starts on `conn`'s body framed as `framing`, taking the bytes that came with the head.
    pub fn new(conn: &mut UpConn, framing: Framing) -> AppBody {
        let (state, early) = match framing {
            Framing::None => (State::Done, None),
            Framing::Length(len) => {
                let early = (conn.leftover.len() as u64).min(len) as usize;
                let bytes = conn.leftover.split_to(early).freeze();
                if !conn.leftover.is_empty() {
                    // The app sent more than it announced: never reuse that connection.
                    conn.reusable = false;
                    conn.leftover.clear();
                }
                let left = len - early as u64;
                (State::Length { left }, Some(bytes))
            }
            Framing::Chunked => {
                let input = std::mem::take(&mut conn.leftover);
                let decoder = ChunkedDecoder::new(MAX_CHUNK_LINE);
                (State::Chunked { decoder, input }, None)
            }
            Framing::Close => {
                conn.reusable = false;
                let early = std::mem::take(&mut conn.leftover).freeze();
                (State::Close, Some(early))
            }
        };
        AppBody { state, early }
    }

    /// The next decoded bytes (never empty), at most about `want` of them; `None` once the
    /// body has ended as its framing says. An app that closes early, stalls past its read
    /// timeout or breaks the chunked framing is an error.
    pub async fn next(&mut self, conn: &mut UpConn, want: usize) -> Result<Option<Bytes>, Failure> {
        if let Some(early) = self.early.take().filter(|b| !b.is_empty()) {
            return Ok(Some(early));
        }
        match &mut self.state {
            State::Done => Ok(None),
            State::Length { left: 0 } => {
                self.state = State::Done;
                Ok(None)
            }
            State::Length { left } => {
                let want = (*left).min(want as u64) as usize;
                let bytes = read(conn, want).await?;
                if bytes.is_empty() {
                    return Err(Failure::UpstreamClosed);
                }
                *left -= bytes.len() as u64;
                Ok(Some(bytes))
            }
            State::Close => {
                let bytes = read(conn, want).await?;
                if bytes.is_empty() {
                    self.state = State::Done;
                    return Ok(None);
                }
                Ok(Some(bytes))
            }
            State::Chunked { decoder, input } => loop {
                if decoder.done() {
                    // Bytes after the last chunk were not asked for: do not reuse.
                    conn.reusable &= input.is_empty();
                    self.state = State::Done;
                    return Ok(None);
                }
                if !input.is_empty() {
                    let mut data = Vec::new();
                    let used = decoder
                        .decode(input, &mut data)
                        .map_err(Failure::UpstreamFraming)?;
                    input.advance(used);
                    if !data.is_empty() {
                        return Ok(Some(Bytes::from(data)));
                    }
                    if decoder.done() {
                        continue;
                    }
                }
                input.reserve(16 * 1024);
                let read = conn.stream.read_buf(input);
                match tokio::time::timeout(conn.read_timeout, read).await {
                    Ok(Ok(0)) => return Err(Failure::UpstreamClosed),
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => return Err(Failure::Upstream(err)),
                    Err(_) => return Err(Failure::UpstreamTimeout(conn.read_timeout)),
                }
            },
        }
    }
}

impl AppBody {
    /// Whether the whole body has been read from the app (`next` may still hand out the
    /// bytes that came with the head when it has not been called yet).
    pub fn finished(&self) -> bool {
        let early_left = self.early.as_ref().is_some_and(|b| !b.is_empty());
        !early_left && matches!(self.state, State::Done | State::Length { left: 0 })
    }

    /// Bytes of a Content-Length body still in the app's socket (after any handed out by
    /// `next`); `None` for other framings.
    pub fn length_left(&self) -> Option<u64> {
        match self.state {
            State::Length { left } if self.early.as_ref().is_none_or(Bytes::is_empty) => Some(left),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// Splices up to `want` bytes of a Content-Length body (`length_left` is `Some`) from
    /// the app's socket into `pipe`, waiting within the app's read timeout; returns how many
    /// are now in the pipe. The app closing early is an error.
    pub async fn splice(
        &mut self,
        conn: &UpConn,
        pipe: &Pipe,
        want: usize,
    ) -> Result<usize, Failure> {
        let State::Length { left } = &mut self.state else {
            return Ok(0);
        };
        let want = (*left).min(want.min(pipe.capacity()) as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let (up, timeout) = (&conn.stream, conn.read_timeout);
        let filled = loop {
            match tokio::time::timeout(timeout, up.readable()).await {
                Ok(ready) => ready.map_err(Failure::Upstream)?,
                Err(_) => return Err(Failure::UpstreamTimeout(timeout)),
            }
            match up.try_io(Interest::READABLE, || pipe.fill_from_socket(up, want)) {
                Ok(0) => return Err(Failure::UpstreamClosed),
                Ok(n) => break n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => return Err(Failure::Upstream(err)),
            }
        };
        *left -= filled as u64;
        Ok(filled)
    }

    /// Moves the rest of the body into `file`: a Content-Length body with splice through
    /// `pipe` (teed into the cache `fill` on the way; the file's reservation must cover it),
    /// a chunked or close-delimited one as decoded bytes with a write (one copy; handed to the
    /// fill too). A body of unknown length that outgrows the spool's limits stops there:
    /// [`Spooled::Partly`] hands back the bytes read and not written, and the rest stays at
    /// the app. A write that fails is `Failure::Disk`.
    pub async fn spool_rest(
        &mut self,
        conn: &mut UpConn,
        file: &mut SpoolFile,
        pipe: &Pipe,
        fill: &mut Option<Fill>,
    ) -> Result<Spooled, Failure> {
        if self.length_left().is_some() {
            while self.length_left().is_some_and(|left| left > 0) {
                let mut want = pipe.capacity();
                if let Some(fill) = fill
                    && let Some(room) = fill.tee_room().await
                {
                    want = want.min(room);
                }
                let n = self.splice(conn, pipe, want).await?;
                if let Some(fill) = fill {
                    fill.tee(pipe, n);
                }
                file.splice_from(pipe, n).map_err(Failure::Disk)?;
                tokio::task::consume_budget().await;
            }
            return Ok(Spooled::Whole);
        }
        while let Some(bytes) = self.next(conn, MAX_BUFFER).await? {
            if !file.grow(bytes.len() as u64) {
                return Ok(Spooled::Partly(bytes));
            }
            file.write(&bytes).map_err(Failure::Disk)?;
            if let Some(fill) = fill {
                fill.write(bytes);
            }
            tokio::task::consume_budget().await;
        }
        Ok(Spooled::Whole)
    }
}

/// How much of a body `spool_rest` put in the file.
#[derive(Debug)]
pub enum Spooled {
    /// All of the rest: the app's connection is done with.
    Whole,
    /// Up to the spool's limits; these bytes (read, not in the file) come next, then the
    /// rest from the app.
    Partly(Bytes),
}

/// One read of at most `want` bytes from the app (empty: it closed), within its timeout.
async fn read(conn: &mut UpConn, want: usize) -> Result<Bytes, Failure> {
    let want = want.clamp(1, MAX_BUFFER);
    let mut buf = BytesMut::with_capacity(want);
    let mut app = (&mut conn.stream).take(want as u64);
    match tokio::time::timeout(conn.read_timeout, app.read_buf(&mut buf)).await {
        Ok(Ok(_)) => Ok(buf.freeze()),
        Ok(Err(err)) => Err(Failure::Upstream(err)),
        Err(_) => Err(Failure::UpstreamTimeout(conn.read_timeout)),
    }
}
