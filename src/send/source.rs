//! The app's response body as a source of decoded bytes, apart from where they go: it reads
//! the app's connection (the bytes that came with the head first) and undoes the framing
//! (Content-Length, chunked, or until the app closes), one piece per call. The sinks are the
//! HTTP/1.1 relay (`relay.rs`, for the bodies it does not splice) and the HTTP/2 body
//! (`frontend::h2`); each writes, tallies and feeds a cache fill, and neither reads the app.
//!
//! The connection is marked not reusable when the app sent more than its framing said, or
//! the body ran until it closed.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncReadExt;

use super::MAX_BUFFER;
use crate::failure::Failure;
use crate::http::{ChunkedDecoder, Framing, MAX_CHUNK_LINE};
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
