//! Writing a response (head + `Body`) to a client transport: the one place that decides how
//! bytes move. The file path is chosen once per response from the configuration and the
//! transport (`SendPath::for_files`); it changes only when the kernel refuses it
//! (EINVAL/ENOSYS), falling to the next path for the rest of that response and counting the
//! fallback once. Every kernel call is capped at `io.chunk` bytes and yields to the scheduler
//! between chunks, so one large download cannot starve other connections on the same worker.
//! Files the route marked `direct` take the `directio` path instead (`directio.rs`).
//!
//! Not here: deciding what to send (route), framing and keep-alive (frontend), the syscalls
//! themselves (sys).

mod body;
mod directio;
mod now;
mod path;
pub mod pool;
mod relay;
pub mod source;

use std::io;
use std::os::unix::fs::FileExt;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

pub use body::{Body, FileRange, Part, UpstreamBody};

use crate::config::SendPathSetting;
use crate::failure::Failure;
use crate::metrics::Metrics;
use crate::metrics::{SendPath, Tally, TransportKind};
use crate::sys::{self, Pipe};
use crate::transport::Transport;

/// The largest buffer the buffered path reads into; bigger chunks only cost memory per
/// connection without saving measurable syscalls.
pub(crate) const MAX_BUFFER: usize = 256 * 1024;

/// The largest file body written together with its head on userspace TLS.
const ONE_WRITE: u64 = 64 * 1024;

/// What a response's direct reads need, worked out once (`directio`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Direct {
    /// Offsets and lengths are multiples of this; buffers are aligned to it.
    pub(super) block: usize,
    /// Bytes per read: a multiple of `block`.
    pub(super) buffer: usize,
}

/// Per-connection sending state: the reused pipe, the limits, and the body buffer of the
/// response being sent (taken from the thread's pool when a copying path needs it, given
/// back when the response ends: an idle connection holds none).
#[derive(Debug)]
pub struct Sender {
    /// Where file bodies start.
    file_path: SendPath,
    /// Where the app's Content-Length bodies go.
    upstream_path: SendPath,
    /// The copying path of this transport (chunked app bodies, fallbacks' end).
    copy_path: SendPath,
    chunk: usize,
    send_timeout: Duration,
    pipe: Option<Pipe>,
    /// The body buffer, empty outside a response (see `body_buffer`).
    buf: Vec<u8>,
    /// TCP_CORK is set and is to be cleared once the first body bytes are out.
    corked: bool,
    /// The current response's direct reads, when it takes the `directio` path.
    direct: Option<Direct>,
}

/// Outcome of one capped step of a file path.
enum Step {
    Sent(usize),
    /// The kernel refused this path for this file or socket; nothing was sent.
    Unsupported(io::Error),
}

impl Sender {
    pub fn new(
        setting: SendPathSetting,
        kind: TransportKind,
        chunk: usize,
        send_timeout: Duration,
    ) -> Sender {
        Sender {
            file_path: SendPath::for_files(setting, kind),
            upstream_path: SendPath::for_upstream(setting, kind),
            copy_path: SendPath::copying(kind),
            chunk,
            send_timeout,
            pipe: None,
            buf: Vec::new(),
            corked: false,
            direct: None,
        }
    }

    /// An empty buffer to encode a response head into, from the thread's pool (hand it back
    /// with `put_head_buffer`).
    pub fn take_head_buffer(&mut self) -> Vec<u8> {
        pool::take_head()
    }

    /// Gives `head`'s memory back to the thread's pool for the next response.
    pub fn put_head_buffer(&mut self, head: Vec<u8>) {
        pool::put_head(head);
    }

    /// The body buffer with at least `size` bytes, taken from the thread's pool on first use
    /// in a response; `write_response` gives it back when the response ends.
    fn body_buffer(&mut self, size: usize) -> &mut Vec<u8> {
        if self.buf.is_empty() {
            self.buf = pool::take_body(size);
        } else if self.buf.len() < size {
            self.buf.resize(size, 0);
        }
        &mut self.buf
    }

    /// Writes `head` and then `body`, at most `rate` body bytes per second when given
    /// (X-Accel-Limit-Rate). On return `tally` holds what was written, also on error.
    pub async fn write_response(
        &mut self,
        transport: &mut Transport,
        head: &[u8],
        body: Body,
        rate: Option<u64>,
        metrics: &Metrics,
        tally: &mut Tally,
    ) -> Result<(), Failure> {
        let result = self
            .write_response_buffered(transport, head, body, rate, metrics, tally)
            .await;
        pool::put_body(std::mem::take(&mut self.buf));
        result
    }

    /// `write_response`, which may take a body buffer (`body_buffer`) on the way.
    async fn write_response_buffered(
        &mut self,
        transport: &mut Transport,
        head: &[u8],
        body: Body,
        rate: Option<u64>,
        metrics: &Metrics,
        tally: &mut Tally,
    ) -> Result<(), Failure> {
        let stream = transport;
        let result = match body {
            Body::Empty => self.write_all(stream, head).await,
            Body::Bytes(bytes) => {
                // One write: the head and a small body leave in one segment.
                let mut out = Vec::with_capacity(head.len() + bytes.len());
                out.extend_from_slice(head);
                out.extend_from_slice(&bytes);
                self.write_all(stream, &out).await?;
                tally.add(SendPath::Memory, bytes.len());
                Ok(())
            }
            Body::File(range) if self.one_write(stream, &range, rate) => {
                // Userspace TLS and a small file: the head and the body go to rustls as one
                // write, so they leave in one record and one writev instead of a record and a
                // writev each.
                let mut out = Vec::with_capacity(head.len() + range.len as usize);
                out.extend_from_slice(head);
                out.resize(head.len() + range.len as usize, 0);
                match range.file.read_at(&mut out[head.len()..], range.offset) {
                    Ok(n) if n as u64 == range.len => {}
                    Ok(_) => return Err(Failure::Truncated),
                    Err(err) => return Err(Failure::Disk(err)),
                }
                self.write_all(stream, &out).await?;
                tally.add(self.file_path, range.len as usize);
                Ok(())
            }
            Body::File(range) if self.head_more(stream, &range) => {
                // A body one kernel call sends (a small file): the head goes with MSG_MORE
                // and leaves in the body's segment, as under TCP_CORK, without the two
                // setsockopt calls around it. Every path ends its last write without "more".
                self.send_more(stream.tcp(), head).await?;
                let mut path = self.direct_path(Some(&range), metrics);
                let mut pace = Pace::new(rate);
                self.send_range(stream, &range, &mut path, &mut pace, metrics, tally)
                    .await
            }
            Body::File(range) => {
                self.corked(
                    stream,
                    head,
                    async |this: &mut Sender, stream: &mut Transport| {
                        let mut path = this.direct_path(Some(&range), metrics);
                        let mut pace = Pace::new(rate);
                        this.send_range(stream, &range, &mut path, &mut pace, metrics, tally)
                            .await
                    },
                )
                .await
            }
            Body::Parts(parts) => {
                self.corked(
                    stream,
                    head,
                    async |this: &mut Sender, stream: &mut Transport| {
                        // The parts are ranges of one file: one path for all of them.
                        let first = parts.iter().find_map(|part| match part {
                            Part::File(range) => Some(range),
                            Part::Bytes(_) => None,
                        });
                        let mut path = this.direct_path(first, metrics);
                        let mut pace = Pace::new(rate);
                        for part in &parts {
                            match part {
                                Part::Bytes(bytes) => {
                                    this.write_all(stream, bytes).await?;
                                    tally.add(SendPath::Memory, bytes.len());
                                }
                                Part::File(range) => {
                                    this.send_range(
                                        stream, range, &mut path, &mut pace, metrics, tally,
                                    )
                                    .await?
                                }
                            }
                        }
                        Ok(())
                    },
                )
                .await
            }
            Body::Upstream(up) => {
                // Corked only until the first body bytes join the head: the app may send the
                // rest slowly (a stream), and a cork would hold each partial segment 200 ms.
                sys::set_cork(&*stream, true)?;
                self.corked = true;
                self.write_all(stream, head).await?;
                let result = self.relay(stream, up, metrics, tally).await;
                self.uncork(stream.tcp())?;
                result
            }
        };
        result?;
        // Userspace TLS holds the last record until flushed; TCP and kTLS return at once.
        if matches!(stream, Transport::Plain(_)) {
            return Ok(());
        }
        match within(self.send_timeout, stream.flush()).await {
            Ok(flushed) => Ok(flushed?),
            Err(_) => Err(Failure::ClientStalled(self.send_timeout)),
        }
    }

    /// Whether a file body goes out with its head in one write: on userspace TLS (the file
    /// path copies there anyway), a body of at most 64 KiB that is not paced or read with
    /// O_DIRECT.
    fn one_write(&self, stream: &Transport, range: &FileRange, rate: Option<u64>) -> bool {
        matches!(stream, Transport::Tls(_))
            && self.file_path == SendPath::TlsBuffered
            && rate.is_none()
            && !range.direct
            && range.len > 0
            && range.len <= ONE_WRITE
    }

    /// Whether `head` can go with MSG_MORE before this file body instead of under TCP_CORK:
    /// plain TCP, and a body that is not empty (its last write is what sends the head) and
    /// that one capped kernel call covers (a larger body keeps the cork, so that its
    /// chunks leave in full segments as before).
    fn head_more(&self, stream: &Transport, range: &FileRange) -> bool {
        matches!(stream, Transport::Plain(_)) && range.len > 0 && range.len <= self.chunk as u64
    }

    /// Writes all of `bytes` with MSG_MORE: the kernel holds them until a later write without
    /// it (rustix's `send` is a safe call, so it needs no wrapper in `sys`).
    async fn send_more(&self, stream: &TcpStream, bytes: &[u8]) -> Result<(), Failure> {
        let mut sent = 0;
        loop {
            match Sender::send_now(stream, bytes, &mut sent, true) {
                Ok(()) => return Ok(()),
                Err(None) => self.writable(stream).await?,
                Err(Some(failed)) => return Err(failed),
            }
        }
    }

    /// Writes `head` with TCP_CORK set, runs `body`, then uncorks: the head waits for the
    /// first body bytes, so a small response is one segment.
    async fn corked(
        &mut self,
        stream: &mut Transport,
        head: &[u8],
        body: impl AsyncFnOnce(&mut Sender, &mut Transport) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        sys::set_cork(&*stream, true)?;
        self.write_all(stream, head).await?;
        body(self, stream).await?;
        sys::set_cork(&*stream, false)?;
        Ok(())
    }

    async fn write_all(&self, stream: &mut Transport, bytes: &[u8]) -> Result<(), Failure> {
        match within(self.send_timeout, stream.write_all(bytes)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(Failure::ClientStalled(self.send_timeout)),
        }
    }

    async fn writable(&self, stream: &TcpStream) -> Result<(), Failure> {
        match within(self.send_timeout, stream.writable()).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(Failure::ClientStalled(self.send_timeout)),
        }
    }

    /// Sends one file range on `path`, falling back (and counting it) when the kernel
    /// refuses; `path` carries the fallback over to the response's later parts.
    async fn send_file(
        &mut self,
        stream: &mut Transport,
        range: &FileRange,
        path: &mut SendPath,
        pace: &mut Pace,
        metrics: &Metrics,
        tally: &mut Tally,
    ) -> Result<(), Failure> {
        let mut offset = range.offset;
        let end = range.offset + range.len;
        while offset < end {
            let want = (end - offset).min(pace.step(self.chunk) as u64) as usize;
            let step = if path.uses_sendfile() {
                self.sendfile_step(stream.tcp(), range, &mut offset, want)
                    .await?
            } else if path.uses_splice() {
                let more_after = end - offset > want as u64;
                self.splice_step(stream.tcp(), range, &mut offset, want, more_after)
                    .await?
            } else {
                self.buffered_step(stream, range, &mut offset, want).await?
            };
            match step {
                Step::Sent(n) => {
                    tally.add(*path, n);
                    pace.sent(n).await;
                }
                Step::Unsupported(err) => {
                    let Some(next) = path.fallback() else {
                        return Err(err.into());
                    };
                    tracing::debug!(from = path.label(), to = next.label(), error = %err, "send path fallback");
                    metrics.fallback(path.label(), next.label(), sys::fallback_reason(&err));
                    *path = next;
                }
            }
            // Each step moved at most one chunk; give other tasks on this worker a turn.
            tokio::task::consume_budget().await;
        }
        Ok(())
    }

    async fn sendfile_step(
        &self,
        stream: &TcpStream,
        range: &FileRange,
        offset: &mut u64,
        want: usize,
    ) -> Result<Step, Failure> {
        loop {
            self.writable(stream).await?;
            match stream.try_io(Interest::WRITABLE, || {
                sys::sendfile(stream, &*range.file, offset, want)
            }) {
                Ok(0) => return Err(Failure::Truncated),
                Ok(n) => return Ok(Step::Sent(n)),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) if sys::is_unsupported(&err) => return Ok(Step::Unsupported(err)),
                Err(err) => return Err(err.into()),
            }
        }
    }

    async fn splice_step(
        &mut self,
        stream: &TcpStream,
        range: &FileRange,
        offset: &mut u64,
        want: usize,
        more_after: bool,
    ) -> Result<Step, Failure> {
        let pipe = self.pipe()?;
        let want = want.min(pipe.capacity());
        let filled = match pipe.fill_from_file(&*range.file, offset, want) {
            Ok(0) => return Err(Failure::Truncated),
            Ok(n) => n,
            Err(err) if sys::is_unsupported(&err) => return Ok(Step::Unsupported(err)),
            // Filling the pipe reads the file: its errors are the disk's.
            Err(err) => return Err(Failure::Disk(err)),
        };
        let pipe = self.pipe.as_ref().expect("pipe created above");
        self.drain_pipe(stream, pipe, filled, filled < want || more_after, false)
            .await?;
        Ok(Step::Sent(filled))
    }

    /// Splices all `len` bytes the pipe holds to the client and returns `len`. `more`: body
    /// bytes follow these (SPLICE_F_MORE). It must be false for a body's last bytes: with the
    /// cork already gone (upstream bodies), the kernel would otherwise hold a final partial
    /// segment ~200 ms. `may_stop`: a client that takes nothing for `spool::SPOOL_WAIT` ends
    /// the drain early, returning how many bytes it took (the rest stay in the pipe).
    async fn drain_pipe(
        &self,
        stream: &TcpStream,
        pipe: &Pipe,
        len: usize,
        more: bool,
        may_stop: bool,
    ) -> Result<usize, Failure> {
        let mut left = len;
        while left > 0 {
            if !may_stop {
                self.writable(stream).await?;
            } else if self.client_slow(stream).await? {
                return Ok(len - left);
            }
            match stream.try_io(Interest::WRITABLE, || pipe.drain_to(stream, left, more)) {
                Ok(n) => left -= n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Ok(len)
    }

    /// Clears a cork set for an upstream body (see `write_response`).
    fn uncork(&mut self, stream: &TcpStream) -> io::Result<()> {
        if std::mem::take(&mut self.corked) {
            sys::set_cork(stream, false)?;
        }
        Ok(())
    }

    /// The connection's pipe, created on first use.
    fn pipe(&mut self) -> io::Result<&Pipe> {
        if self.pipe.is_none() {
            self.pipe = Some(Pipe::new()?);
        }
        Ok(self.pipe.as_ref().expect("pipe created above"))
    }

    async fn buffered_step(
        &mut self,
        stream: &mut Transport,
        range: &FileRange,
        offset: &mut u64,
        want: usize,
    ) -> Result<Step, Failure> {
        let size = self.chunk.min(MAX_BUFFER);
        self.body_buffer(size);
        let want = want.min(size);
        let mut buf = std::mem::take(&mut self.buf);
        let read = range.file.read_at(&mut buf[..want], *offset);
        let result = match read {
            Ok(0) => Err(Failure::Truncated),
            Ok(n) => self.write_all(stream, &buf[..n]).await.map(|()| n),
            Err(err) => Err(Failure::Disk(err)),
        };
        self.buf = buf;
        let n = result?;
        *offset += n as u64;
        Ok(Step::Sent(n))
    }
}

/// Runs `fut` with a time limit that is set up only if it does not finish at once: most
/// writes complete in their first poll, and then no timer is armed nor the clock read.
/// The limit counts from that first poll.
async fn within<F: Future>(
    limit: Duration,
    fut: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    let mut fut = pin!(fut);
    if let Poll::Ready(out) = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
        return Ok(out);
    }
    tokio::time::timeout(limit, fut).await
}

/// Paces a response to at most `rate` bytes per second (X-Accel-Limit-Rate), by sleeping
/// between capped steps once ahead of schedule.
#[derive(Debug)]
pub struct Pace {
    /// The rate and when the response started; `None` when not limited (no clock read).
    limit: Option<(u64, std::time::Instant)>,
    sent: u64,
}

impl Pace {
    pub fn new(rate: Option<u64>) -> Pace {
        Pace {
            limit: rate
                .filter(|&r| r > 0)
                .map(|rate| (rate, std::time::Instant::now())),
            sent: 0,
        }
    }

    /// The most to send in one step: a quarter second's worth when limited, so the limit
    /// holds smoothly rather than in bursts of a whole chunk.
    pub fn step(&self, chunk: usize) -> usize {
        match self.limit {
            Some((rate, _)) => chunk.min((rate / 4).max(1) as usize),
            None => chunk,
        }
    }

    /// Counts `n` bytes sent and sleeps while ahead of the rate.
    pub async fn sent(&mut self, n: usize) {
        let Some((rate, start)) = self.limit else {
            return;
        };
        self.sent += n as u64;
        let due = Duration::from_secs_f64(self.sent as f64 / rate as f64);
        let elapsed = start.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}
