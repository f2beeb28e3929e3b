//! Relaying the app's response body to the client. A Content-Length body is spliced socket
//! → pipe → socket (path `splice`, zero-copy) unless `io.send_path = "buffered"`; chunked and
//! close-delimited bodies are decoded by `source::AppBody` and copied (path `buffered`),
//! re-framed as chunked for an HTTP/1.1 client, so the client never sees the app's framing. Any failure of the app
//! mid-body is an error: the frontend then closes the client connection, because a short
//! body on a kept-alive connection would be read as the start of the next response.
//! When the response is being stored, the cache fill (`fill.rs`) gets the body on the way:
//! teed from the splice pipe, or handed the buffer after each client write.

use std::io;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::TcpStream;

use crate::transport::Transport;

use super::source::AppBody;
use super::{Sender, UpstreamBody};
use crate::cache::fill::Fill;
use crate::failure::Failure;
use crate::http::Framing;
use crate::http::{encode_chunk, encode_last_chunk};
use crate::metrics::Tally;
use crate::upstream::UpConn;

impl Sender {
    /// Sends the body of `up` (the head has been written) and pools the app connection when
    /// the body was read exactly.
    pub(super) async fn relay(
        &mut self,
        stream: &mut Transport,
        mut up: UpstreamBody,
        tally: &mut Tally,
    ) -> Result<(), Failure> {
        // A fill given up or failed on the way is dropped here, which removes its file.
        let fill = &mut up.fill;
        match up.framing {
            Framing::None => {}
            Framing::Length(len) => {
                self.relay_length(stream, &mut up.conn, len, tally, fill)
                    .await?
            }
            Framing::Chunked | Framing::Close => {
                self.relay_decoded(stream, &mut up.conn, up.framing, up.chunked, tally, fill)
                    .await?
            }
        }
        if let Some(fill) = up.fill.take() {
            fill.finish();
        }
        up.conn.release();
        Ok(())
    }

    async fn relay_length(
        &mut self,
        stream: &mut Transport,
        conn: &mut UpConn,
        len: u64,
        tally: &mut Tally,
        fill: &mut Option<Fill>,
    ) -> Result<(), Failure> {
        let path = self.upstream_path;
        let early = (conn.leftover.len() as u64).min(len) as usize;
        if early > 0 {
            let bytes = conn.leftover.split_to(early);
            self.write_all(stream, &bytes).await?;
            self.uncork(stream.tcp())?;
            tally.add_copied(path, early);
            if let Some(fill) = fill {
                fill.write(bytes.freeze());
            }
        }
        if !conn.leftover.is_empty() {
            // The app sent more than it announced: never reuse that connection.
            conn.reusable = false;
            conn.leftover.clear();
        }
        let mut left = len - early as u64;
        while left > 0 {
            let want = left.min(self.chunk as u64) as usize;
            let n = if path.uses_splice() {
                self.splice_from_app(stream.tcp(), conn, want, left > want as u64, fill)
                    .await?
            } else {
                self.copy_from_app(stream, conn, want, fill).await?
            };
            self.uncork(stream.tcp())?;
            tally.add(path, n);
            left -= n as u64;
            tokio::task::consume_budget().await;
        }
        Ok(())
    }

    /// Splices up to `want` bytes app → pipe → client; returns how many moved.
    async fn splice_from_app(
        &mut self,
        stream: &TcpStream,
        conn: &UpConn,
        want: usize,
        more_after: bool,
        fill: &mut Option<Fill>,
    ) -> Result<usize, Failure> {
        let timeout = conn.read_timeout;
        let up = &conn.stream;
        let mut want = want.min(self.pipe()?.capacity());
        if let Some(fill) = fill
            && let Some(room) = fill.tee_room().await
        {
            want = want.min(room);
        }
        let pipe = self.pipe()?;
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
        let pipe = self.pipe.as_ref().expect("pipe created above");
        if let Some(fill) = fill {
            // Duplicated into the cache file's pipe before the client's splice consumes it.
            fill.tee(pipe, filled);
        }
        self.drain_pipe(stream, pipe, filled, more_after || filled < want)
            .await?;
        Ok(filled)
    }

    /// Reads up to `want` bytes from the app into the reused buffer and writes them.
    async fn copy_from_app(
        &mut self,
        stream: &mut Transport,
        conn: &mut UpConn,
        want: usize,
        fill: &mut Option<Fill>,
    ) -> Result<usize, Failure> {
        let n = self.read_app(conn, want).await?;
        if n == 0 {
            return Err(Failure::UpstreamClosed);
        }
        let buf = std::mem::take(&mut self.buf);
        let result = self.write_all(stream, &buf[..n]).await;
        if let Some(fill) = fill {
            fill.write(Bytes::copy_from_slice(&buf[..n]));
        }
        self.buf = buf;
        result.map(|()| n)
    }

    /// One read from the app into `self.buf[..n]`, bounded by the app's read timeout.
    async fn read_app(&mut self, conn: &mut UpConn, want: usize) -> Result<usize, Failure> {
        let size = want.clamp(1, super::MAX_BUFFER);
        self.body_buffer(size);
        match tokio::time::timeout(conn.read_timeout, conn.stream.read(&mut self.buf[..size])).await
        {
            Ok(result) => result.map_err(Failure::Upstream),
            Err(_) => Err(Failure::UpstreamTimeout(conn.read_timeout)),
        }
    }

    /// Relays a body the relay decodes (chunked, or until the app closes), re-framed as
    /// chunked for an HTTP/1.1 client (`chunked`), piece by piece from the app's `source`.
    async fn relay_decoded(
        &mut self,
        stream: &mut Transport,
        conn: &mut UpConn,
        framing: Framing,
        chunked: bool,
        tally: &mut Tally,
        fill: &mut Option<Fill>,
    ) -> Result<(), Failure> {
        let mut source = AppBody::new(conn, framing);
        while let Some(data) = source.next(conn, self.chunk).await? {
            self.write_data(stream, data, chunked, tally, fill).await?;
        }
        self.write_end(stream, chunked).await
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
