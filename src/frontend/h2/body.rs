//! Response bodies the driver cannot send by itself: a file the page cache does not hold
//! (read off the event loop), a rate-limited file, multipart ranges and the app's bodies
//! (spooled and cache fills included). Each is produced by a task per response, one chunk of
//! at most `io.chunk` (and 256 KiB) at a time, into a channel of one slot that the driver
//! empties only when the stream may send (flow control), so a stream holds a few chunks in
//! memory whatever the body's size and the client's pace paces the reads. Every byte is read
//! into a buffer and encrypted by rustls (`tls_buffered`; written as it is on h2c,
//! `buffered`): zero copy does not apply to HTTP/2.
//!
//! The producer counts what it hands over in a `Tally` and records the response (metrics,
//! access log) when the body ends, fails or is dropped by the driver (the stream was reset
//! or the connection closed). A body that cannot be completed — a file that shrank, an app
//! that closed early — ends with `Item::Failed`, on which the driver resets the stream: the
//! client never mistakes a short body for a whole one.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::stream::Finish;
use crate::cache::fill::Fill;
use crate::failure::Failure;
use crate::metrics::{SendPath, Side, SpoolDirection, Tally};
use crate::send::source::{AppBody, Spooled};
use crate::send::{Body, FileRange, Pace, Part, UpstreamBody};
use crate::spool::SPOOL_WAIT;
use crate::sys::Pipe;

/// What the producer hands the stream.
pub(super) enum Item {
    Data(Bytes),
    /// The body is complete.
    End,
    /// The body cannot be completed (the producer has said why): reset the stream.
    Failed,
}

/// The driver's end of a produced body.
pub(super) struct Produced {
    rx: mpsc::Receiver<Item>,
}

impl Produced {
    /// The next item; a producer gone without a last item (it stalled or panicked) is a
    /// failure.
    pub(super) fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Item> {
        Poll::Ready(ready!(self.rx.poll_recv(cx)).unwrap_or(Item::Failed))
    }
}

/// How a produced body is written.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest chunk read at once.
    pub chunk: usize,
    /// Longest wait for the client to take a chunk (flow control).
    pub send_timeout: Duration,
    /// Most body bytes per second (X-Accel-Limit-Rate).
    pub rate: Option<u64>,
    /// The path the bytes take: `tls_buffered`, or `buffered` on h2c.
    pub path: SendPath,
}

/// Starts the task that produces `body` (a file, parts or the app's body) and returns the
/// stream's end of it. `finish` is recorded when the task ends, however it ends, with what
/// `tally` already holds (what the driver sent of the body itself) and what the task adds.
pub(super) fn produce(body: Body, limits: Limits, finish: Finish, tally: Tally) -> Produced {
    let length = body.length();
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut out = Out {
            tx,
            abort: finish.conn().abort.clone(),
            tally,
            limits,
            pace: Pace::new(limits.rate),
            fill: None,
        };
        let closed = out.tx.clone();
        let result = tokio::select! {
            result = out.body(body) => result,
            () = closed.closed() => Err(Stop::ClientGone),
        };
        let stopped = match result {
            Ok(()) => out
                .deliver(Item::End)
                .await
                .err()
                .map(|stop| (stop.describe(&limits), stop.side())),
            Err(Stop::Failed(err)) => {
                let failed = (err.to_string(), err.side());
                // The stream is reset whether or not this arrives (see `Produced::poll_item`).
                let _ = out.deliver(Item::Failed).await;
                Some(failed)
            }
            Err(stop) => Some((stop.describe(&limits), stop.side())),
        };
        if let Some((reason, _)) = &stopped {
            tracing::debug!(peer = %finish.client().peer, error = %reason, sent = out.tally.total(), of = ?length, "response not completed");
        }
        finish.record(&out.tally, stopped.map(|(_, side)| side));
    });
    Produced { rx }
}

/// Why production stopped early.
enum Stop {
    /// The stream was reset or the connection closed: nobody to tell.
    ClientGone,
    /// The client took no data for `send_timeout`.
    Stalled,
    Failed(Failure),
}

impl Stop {
    /// The side at fault.
    fn side(&self) -> Side {
        match self {
            Stop::ClientGone | Stop::Stalled => Side::Client,
            Stop::Failed(err) => err.side(),
        }
    }

    fn describe(&self, limits: &Limits) -> String {
        match self {
            Stop::ClientGone => "client gone (stream reset or connection closed)".to_string(),
            Stop::Stalled => Failure::ClientStalled(limits.send_timeout).to_string(),
            Stop::Failed(err) => err.to_string(),
        }
    }
}

impl From<Failure> for Stop {
    fn from(err: Failure) -> Stop {
        Stop::Failed(err)
    }
}

/// The producing side of one stream.
struct Out {
    tx: mpsc::Sender<Item>,
    /// Closes the whole connection (a stalled stream would otherwise hold it for ever).
    abort: CancellationToken,
    tally: Tally,
    limits: Limits,
    pace: Pace,
    /// The cache fill of the app's body being sent, if it is being stored.
    fill: Option<Fill>,
}

impl Out {
    async fn body(&mut self, body: Body) -> Result<(), Stop> {
        match body {
            Body::Empty => Ok(()),
            Body::Bytes(bytes) => self.send(bytes, SendPath::Memory).await,
            Body::File(range) => self.file(&range).await,
            Body::Parts(parts) => {
                for part in parts {
                    match part {
                        Part::Bytes(bytes) => self.send(bytes, SendPath::Memory).await?,
                        Part::File(range) => self.file(&range).await?,
                    }
                }
                Ok(())
            }
            Body::Upstream(up) => self.upstream(up).await,
        }
    }

    /// Hands one chunk to the stream once it has room, within the send timeout.
    async fn send(&mut self, bytes: Bytes, path: SendPath) -> Result<(), Stop> {
        if bytes.is_empty() {
            return Ok(());
        }
        let n = bytes.len();
        let copy = self.fill.is_some().then(|| bytes.clone());
        self.deliver(Item::Data(bytes)).await?;
        if let (Some(fill), Some(copy)) = (&mut self.fill, copy) {
            fill.write(copy);
        }
        self.tally.add(path, n);
        self.pace.sent(n).await;
        Ok(())
    }

    /// Puts `item` in the channel once the driver has taken the previous one. A client that gives
    /// no flow-control credit for `send_timeout` has its connection closed, as a stalled
    /// HTTP/1.1 client does.
    async fn deliver(&mut self, item: Item) -> Result<(), Stop> {
        match tokio::time::timeout(self.limits.send_timeout, self.tx.send(item)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::ClientGone),
            Err(_) => {
                self.abort.cancel();
                Err(Stop::Stalled)
            }
        }
    }

    /// Reads a file range in chunks off the reactor.
    async fn file(&mut self, range: &FileRange) -> Result<(), Stop> {
        let mut offset = range.offset;
        let end = range.offset + range.len;
        while offset < end {
            let want = (end - offset).min(self.pace.step(self.limits.chunk) as u64) as usize;
            let bytes = read_at(Arc::clone(&range.file), offset, want).await?;
            offset += bytes.len() as u64;
            self.send(bytes, self.limits.path).await?;
        }
        Ok(())
    }

    /// Relays the app's body, decoded from its framing; the connection goes back to the pool
    /// only when the body was read exactly. When the stream takes nothing for `SPOOL_WAIT`
    /// with more of the body at the app, the rest is spooled (as on HTTP/1.1: spliced for a
    /// Content-Length body, written after decoding otherwise) and the app's connection
    /// released before the stream gets it from the file; past the spool's limits, what the
    /// file holds goes first and the rest as it comes.
    async fn upstream(&mut self, up: UpstreamBody) -> Result<(), Stop> {
        let UpstreamBody {
            mut conn,
            framing,
            mut fill,
            mut spool,
            ..
        } = up;
        // Bodies are buffered here: a cache fill takes each buffer as it goes out (path
        // `buffered`); given up or failed, it is dropped, which removes its file.
        self.fill = fill.take();
        let mut source = AppBody::new(&mut conn, framing);
        let mut released = None;
        while let Some(bytes) = source.next(&mut conn, self.limits.chunk).await? {
            if source.finished() || spool.is_none() || !self.stream_slow().await {
                self.send(bytes, self.limits.path).await?;
                continue;
            }
            let left = source.length_left().unwrap_or(0);
            let Some(mut file) = spool
                .take()
                .and_then(|s| s.file(bytes.len() as u64 + left, SpoolDirection::Response))
            else {
                self.send(bytes, self.limits.path).await?;
                continue;
            };
            file.write(&bytes).map_err(Failure::Disk)?;
            if let Some(fill) = &mut self.fill {
                fill.write(bytes);
            }
            let pipe =
                Pipe::new().map_err(|err| Failure::Internal(format!("spool pipe: {err}")))?;
            let spooled = source
                .spool_rest(&mut conn, &mut file, &pipe, &mut self.fill)
                .await?;
            let range = FileRange::spooled(&file);
            match spooled {
                Spooled::Whole => {
                    // The app is done with: free it before the stream gets the rest.
                    released = Some((file, range));
                    break;
                }
                Spooled::Partly(next) => {
                    // The spool's limits: what it holds, then the rest as it comes.
                    let fill = self.fill.take();
                    self.file(&range).await?;
                    self.fill = fill;
                    self.send(next, self.limits.path).await?;
                }
            }
        }
        if let Some(fill) = self.fill.take() {
            fill.finish();
        }
        conn.release();
        if let Some((_file, range)) = released {
            self.file(&range).await?;
        }
        Ok(())
    }

    /// Whether the stream has taken nothing for `SPOOL_WAIT`: the driver takes the next
    /// chunk only when the client's flow control and the connection let it send.
    async fn stream_slow(&self) -> bool {
        if self.tx.capacity() > 0 {
            return false;
        }
        tokio::time::timeout(SPOOL_WAIT, self.tx.reserve())
            .await
            .is_err()
    }
}

/// Reads up to `want` bytes of a file at `offset` on the blocking pool; a file that ends
/// before is an error (it shrank while being sent).
async fn read_at(file: Arc<File>, offset: u64, want: usize) -> Result<Bytes, Failure> {
    let read = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; want];
        let n = file.read_at(&mut buf, offset)?;
        buf.truncate(n);
        Ok::<_, io::Error>(buf)
    })
    .await
    .map_err(io::Error::other)?;
    match read {
        Ok(buf) if buf.is_empty() => Err(Failure::Truncated),
        Ok(buf) => Ok(Bytes::from(buf)),
        Err(err) => Err(Failure::Disk(err)),
    }
}
