//! Relaying the app's response body to the client: the sink side. The app's socket is read
//! only by the body's source (`source::AppBody`); this writes what it hands out. A
//! Content-Length body is spliced app → pipe → client (path `splice`, zero-copy) unless
//! `io.send_path = "buffered"` or the client is on userspace TLS; chunked and close-delimited
//! bodies are decoded by the source and copied (path `buffered`), re-framed as chunked for an
//! HTTP/1.1 client, so the client never sees the app's framing. Any failure of the app
//! mid-body is an error: the frontend then closes the client connection, because a short
//! body on a kept-alive connection would be read as the start of the next response.
//!
//! A slow client does not hold the app: when the client has taken nothing for
//! [`SPOOL_WAIT`] while more of a Content-Length body waits in the app's socket, the source
//! moves the rest into a spool file (spliced, no user-space copy; `spool.rs`), the app's
//! connection goes back to the pool, and the client gets the rest from that file on the
//! file send path (sendfile, kTLS sendfile, or a read on userspace TLS) at its own pace.
//! When the response is being stored, the cache fill (`fill.rs`) gets the body on the way:
//! teed from the splice pipe, or handed the buffer after each client write.

use std::io;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::transport::Transport;

use super::source::{AppBody, Spooled};
use super::{FileRange, Pace, Sender, UpstreamBody, within};
use crate::cache::fill::Fill;
use crate::failure::Failure;
use crate::http::Framing;
use crate::http::{encode_chunk, encode_last_chunk};
use crate::metrics::{Metrics, SpoolDirection, Tally};
use crate::spool::{SPOOL_WAIT, Spool, SpoolFile};
use crate::upstream::UpConn;

/// How a decoded body goes out: re-framed as chunked or not, and the spool for a slow
/// client.
struct Reframe<'a> {
    chunked: bool,
    spool: Option<&'a Spool>,
}

/// What is left of a Content-Length body once the client fell behind: the rest of the
/// piece being written, then the spool file.
struct Rest {
    pending: Bytes,
    file: SpoolFile,
}

/// What `expect` says of the app's connection while its body is being read.
const READING: &str = "the app's connection is kept until its body is read";

/// Gives the app's connection back (to the pool when it can be reused) once its body has
/// been read whole: the app's side of the exchange is over before the client has the end.
fn release_when_read(app: &mut Option<UpConn>, source: &AppBody) {
    if source.finished()
        && let Some(conn) = app.take()
    {
        conn.release();
    }
}

impl Sender {
    /// Sends the body of `up` (the head has been written) and pools the app connection when
    /// the body was read exactly — before sending what was spooled, when the client is slow.
    pub(super) async fn relay(
        &mut self,
        stream: &mut Transport,
        mut up: UpstreamBody,
        metrics: &Metrics,
        tally: &mut Tally,
    ) -> Result<(), Failure> {
        // A fill given up or failed on the way is dropped here, which removes its file.
        let fill = &mut up.fill;
        let mut source = AppBody::new(&mut up.conn, up.framing);
        // Released as soon as the body is read, before its last bytes reach the client.
        let mut conn = Some(up.conn);
        let mut spooled = None;
        match up.framing {
            Framing::None => {}
            Framing::Length(_) => {
                let spool = up.spool.as_ref();
                spooled = self
                    .relay_length(stream, &mut conn, &mut source, spool, tally, fill)
                    .await?;
            }
            Framing::Chunked | Framing::Close => {
                let framing = Reframe {
                    chunked: up.chunked,
                    spool: up.spool.as_ref(),
                };
                self.relay_decoded(
                    stream,
                    &mut conn,
                    &mut source,
                    framing,
                    metrics,
                    tally,
                    fill,
                )
                .await?
            }
        }
        if let Some(fill) = up.fill.take() {
            fill.finish();
        }
        release_when_read(&mut conn, &source);
        let Some(Rest { pending, file }) = spooled else {
            return Ok(());
        };
        self.write_all(stream, &pending).await?;
        tally.add(self.upstream_path, pending.len());
        self.send_spooled(stream, &file, false, metrics, tally)
            .await
    }

    /// Relays a Content-Length body; returns what is left to send when the client fell
    /// behind and `spool` took the rest of it.
    async fn relay_length(
        &mut self,
        stream: &mut Transport,
        app: &mut Option<UpConn>,
        source: &mut AppBody,
        mut spool: Option<&Spool>,
        tally: &mut Tally,
        fill: &mut Option<Fill>,
    ) -> Result<Option<Rest>, Failure> {
        let path = self.upstream_path;
        if source.length_left().is_none() {
            // The bytes that came with the head.
            let conn = app.as_mut().expect(READING);
            if let Some(bytes) = source.next(conn, usize::MAX).await? {
                release_when_read(app, source);
                self.write_all(stream, &bytes).await?;
                self.uncork(stream.tcp())?;
                tally.add_copied(path, bytes.len());
                if let Some(fill) = fill {
                    fill.write(bytes);
                }
            }
        }
        loop {
            let left = source.length_left().unwrap_or(0);
            if left == 0 {
                return Ok(None);
            }
            let want = left.min(self.chunk as u64) as usize;
            if path.uses_splice() {
                let mut want = want.min(self.pipe()?.capacity());
                if let Some(fill) = fill
                    && let Some(room) = fill.tee_room().await
                {
                    want = want.min(room);
                }
                let pipe = self.pipe.as_ref().expect("pipe created above");
                let conn = app.as_mut().expect(READING);
                let n = source.splice(conn, pipe, want).await?;
                release_when_read(app, source);
                if let Some(fill) = fill {
                    // Duplicated into the cache file's pipe before the client's splice
                    // consumes it.
                    fill.tee(pipe, n);
                }
                let more = source.length_left().is_some_and(|left| left > 0);
                let may_stop = spool.is_some() && more;
                let drained = self
                    .drain_pipe(stream.tcp(), pipe, n, more || n < want, may_stop)
                    .await?;
                tally.add(path, drained);
                self.uncork(stream.tcp())?;
                if drained < n {
                    // The client stalled with more at the app: spool the rest.
                    let rest = n - drained;
                    let total = rest as u64 + source.length_left().unwrap_or(0);
                    let pipe = self.pipe.as_ref().expect("pipe created above");
                    match spool
                        .take()
                        .and_then(|s| s.file(total, SpoolDirection::Response))
                    {
                        Some(mut file) => {
                            file.splice_from(pipe, rest).map_err(Failure::Disk)?;
                            let conn = app.as_mut().expect(READING);
                            source.spool_rest(conn, &mut file, pipe, fill).await?;
                            let pending = Bytes::new();
                            return Ok(Some(Rest { pending, file }));
                        }
                        None => {
                            self.drain_pipe(stream.tcp(), pipe, rest, more, false)
                                .await?;
                            tally.add(path, rest);
                        }
                    }
                }
            } else {
                let conn = app.as_mut().expect(READING);
                let Some(bytes) = source.next(conn, want).await? else {
                    return Ok(None);
                };
                release_when_read(app, source);
                let may_stop = spool.is_some() && !source.finished();
                let written = self.write_or_stall(stream, &bytes, may_stop).await?;
                self.uncork(stream.tcp())?;
                tally.add(path, written);
                if let Some(fill) = fill {
                    fill.write(bytes.clone());
                }
                if written < bytes.len() {
                    // The client stalled with more at the app: spool the rest, then finish
                    // this piece at the client's pace.
                    let pending = bytes.slice(written..);
                    let left = source.length_left().unwrap_or(0);
                    match spool
                        .take()
                        .and_then(|s| s.file(left, SpoolDirection::Response))
                    {
                        Some(mut file) => {
                            let pipe = self.pipe()?;
                            let conn = app.as_mut().expect(READING);
                            source.spool_rest(conn, &mut file, pipe, fill).await?;
                            return Ok(Some(Rest { pending, file }));
                        }
                        None => {
                            self.write_all(stream, &pending).await?;
                            tally.add(path, pending.len());
                        }
                    }
                }
            }
            tokio::task::consume_budget().await;
        }
    }

    /// Writes `bytes`; with `may_stop`, stops when the client takes nothing for
    /// [`SPOOL_WAIT`] and returns how many were written (all of them otherwise).
    async fn write_or_stall(
        &self,
        stream: &mut Transport,
        bytes: &[u8],
        may_stop: bool,
    ) -> Result<usize, Failure> {
        if !may_stop {
            self.write_all(stream, bytes).await?;
            return Ok(bytes.len());
        }
        let mut done = 0;
        while done < bytes.len() {
            match within(SPOOL_WAIT, stream.write(&bytes[done..])).await {
                Ok(Ok(0)) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(Ok(n)) => done += n,
                Ok(Err(err)) => return Err(err.into()),
                Err(_) => break,
            }
        }
        Ok(done)
    }

    /// Whether the client has taken nothing for [`SPOOL_WAIT`]: its socket is not writable
    /// now and does not become so within it.
    pub(super) async fn client_slow(&self, stream: &TcpStream) -> Result<bool, Failure> {
        match within(SPOOL_WAIT, stream.writable()).await {
            Ok(ready) => ready.map(|()| false).map_err(Failure::from),
            Err(_) => Ok(true),
        }
    }

    /// Relays a body the relay decodes (chunked, or until the app closes), re-framed as
    /// chunked for an HTTP/1.1 client, piece by piece from the app's `source`. A client that
    /// takes nothing for `SPOOL_WAIT` gets the rest through a spool file (written after
    /// decoding: one copy), sent as one chunk with the file send path once the app is done —
    /// or, when the spool's limits stop it first, what the file holds and then the rest as
    /// it comes.
    #[allow(clippy::too_many_arguments)] // the relay's state, passed down once
    async fn relay_decoded(
        &mut self,
        stream: &mut Transport,
        app: &mut Option<UpConn>,
        source: &mut AppBody,
        mut framing: Reframe<'_>,
        metrics: &Metrics,
        tally: &mut Tally,
        fill: &mut Option<Fill>,
    ) -> Result<(), Failure> {
        let chunked = framing.chunked;
        // Ends when the source is done: its last piece handed out, or all of it spooled.
        while !source.finished() {
            let conn = app.as_mut().expect(READING);
            let Some(data) = source.next(conn, self.chunk).await? else {
                break;
            };
            let wire = if chunked {
                let mut framed = Vec::with_capacity(data.len() + 16);
                encode_chunk(&data, &mut framed);
                Bytes::from(framed)
            } else {
                data.clone()
            };
            let may_stop = framing.spool.is_some() && !source.finished();
            let written = self.write_or_stall(stream, &wire, may_stop).await?;
            self.uncork(stream.tcp())?;
            tally.add(self.copy_path, data.len());
            if let Some(fill) = fill {
                fill.write(data);
            }
            if written == wire.len() {
                continue;
            }
            // The client stalled: the rest of the body into a spool file (the app is then
            // free), this piece's rest at the client's pace, then the file.
            let pending = wire.slice(written..);
            let spool = framing.spool.take().expect("may_stop needs a spool");
            let Some(mut file) = spool.file(0, SpoolDirection::Response) else {
                self.write_all(stream, &pending).await?;
                continue;
            };
            let pipe = self.pipe()?;
            let spooled = source.spool_rest(conn, &mut file, pipe, fill).await?;
            release_when_read(app, source);
            self.write_all(stream, &pending).await?;
            self.send_spooled(stream, &file, chunked, metrics, tally)
                .await?;
            if let Spooled::Partly(next) = spooled {
                self.write_data(stream, next, chunked, tally, fill).await?;
            }
        }
        release_when_read(app, source);
        self.write_end(stream, chunked).await
    }

    /// Sends what `file` holds (as one chunk when re-framing) on the file send path.
    async fn send_spooled(
        &mut self,
        stream: &mut Transport,
        file: &SpoolFile,
        chunked: bool,
        metrics: &Metrics,
        tally: &mut Tally,
    ) -> Result<(), Failure> {
        let len = file.written();
        if len == 0 {
            return Ok(());
        }
        if chunked {
            self.write_all(stream, format!("{len:x}\r\n").as_bytes())
                .await?;
        }
        let range = FileRange::spooled(file);
        let mut path = self.file_path;
        let mut pace = Pace::new(None);
        self.send_file(stream, &range, &mut path, &mut pace, metrics, tally)
            .await?;
        if chunked {
            self.write_all(stream, b"\r\n").await?;
        }
        Ok(())
    }

    /// Writes decoded body bytes (as one chunk when re-framing), then hands them to the cache
    /// fill, if any.
    async fn write_data(
        &mut self,
        stream: &mut Transport,
        data: Bytes,
        chunked: bool,
        tally: &mut Tally,
        fill: &mut Option<Fill>,
    ) -> Result<(), Failure> {
        if chunked {
            let mut framed = Vec::with_capacity(data.len() + 16);
            encode_chunk(&data, &mut framed);
            self.write_all(stream, &framed).await?;
        } else {
            self.write_all(stream, &data).await?;
        }
        self.uncork(stream.tcp())?;
        tally.add(self.copy_path, data.len());
        if let Some(fill) = fill {
            fill.write(data);
        }
        Ok(())
    }

    async fn write_end(&mut self, stream: &mut Transport, chunked: bool) -> Result<(), Failure> {
        if chunked {
            let mut last = Vec::new();
            encode_last_chunk(&mut last);
            self.write_all(stream, &last).await?;
        }
        Ok(())
    }
}
