//! Cache fills: while a relay sends the app's body to the client, a copy goes into the cache
//! object's temporary file, written by a writer thread of its own so the reactor never waits
//! on the disk (and a fill that lasts as long as a slow client's download does not hold one
//! of tokio's blocking-pool threads, which file opens need).
//!
//! Two ways in, counted in `ferry_cache_fill_bytes_total{path}`:
//! - `tee`: on the splice relay (plaintext or kTLS client, Content-Length body) the bytes in
//!   the relay's pipe are duplicated with tee(2) into a fill pipe, which the writer splices
//!   into the file: no user-space copy on either side.
//! - `buffered`: otherwise (chunked bodies, userspace TLS, HTTP/2), the buffer the relay
//!   already holds is handed to the writer after the client write.
//!
//! The client comes first: when the writer falls behind (the fill pipe stays without room
//! for [`MAX_STALL`], or more than [`MAX_BEHIND`] buffered bytes wait), or the body outgrows
//! `max_object_size`, the fill is given up and the temporary file removed; the client's
//! response goes on. Short of that, the relay reads no more from the app per step than the
//! fill pipe has room for, so a tee never comes up short.
//! The object is committed (length checked, renamed into place) only after the relay sent
//! the whole body; a fill dropped before that leaves nothing behind.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::Notify;

use bytes::Bytes;

use super::FillTarget;
use crate::metrics::{CacheMetrics, FillPath};
use crate::sys::{Pipe, TeeSource, TeeTarget, fill_pipe};

/// The most buffered bytes that may wait for the writer before the fill is given up.
pub const MAX_BEHIND: u64 = 16 << 20;

/// The writer's stack: it holds a few locals and calls into the kernel, nothing deep.
const WRITER_STACK: usize = 256 << 10;

/// Below this much room in the fill pipe the relay waits for the writer.
const MIN_ROOM: usize = 64 << 10;

/// The longest the relay waits for the writer to make room; a disk that writes nothing for
/// this long has fallen behind, and the fill is given up. (Loopback clients outrun any
/// disk, so the writer is always somewhat behind; this is the bound on how much that may
/// cost a client, once per stall.)
const MAX_STALL: Duration = Duration::from_millis(100);

/// What the relay tells the writer, in order.
enum Cmd {
    /// The read side of the fill pipe (sent before the first `Pipe`).
    Source(TeeSource),
    /// Bytes to append.
    Bytes(Bytes),
    /// This many bytes were teed into the fill pipe: splice them into the file.
    Pipe(usize),
    /// The relay sent the whole body: commit the object.
    Finish,
}

/// The relay's end of a fill. Dropping it without [`Fill::finish`] abandons the fill.
#[derive(Debug)]
pub struct Fill {
    tx: Option<mpsc::Sender<Cmd>>,
    tee: Option<TeeTarget>,
    /// What the relay and the writer share.
    shared: Arc<Progress>,
    /// Body bytes handed over so far.
    queued: u64,
    max_len: u64,
}

impl Fill {
    /// Starts the writer thread for `target`. A thread that cannot be started is a fill
    /// given up (dropping `target` removes its file).
    pub fn start(target: FillTarget, metrics: CacheMetrics) -> Fill {
        let (tx, rx) = mpsc::channel();
        let max_len = target.max_len();
        let shared = Arc::new(Progress {
            behind: AtomicU64::new(0),
            progress: Notify::new(),
            abandoned: AtomicBool::new(false),
        });
        let writer = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("ferry-fill".into())
            .stack_size(WRITER_STACK)
            .spawn(move || write(target, rx, &writer, &metrics));
        if let Err(err) = spawned {
            tracing::warn!(error = %err, "cache fill: no writer thread; nothing stored");
        }
        Fill {
            // With no writer, the channel is closed and the first send gives the fill up.
            tx: Some(tx),
            tee: None,
            shared,
            queued: 0,
            max_len,
        }
    }

    /// Whether the fill is still going.
    pub fn alive(&self) -> bool {
        self.tx.is_some()
    }

    /// Hands body bytes the relay holds to the writer.
    pub fn write(&mut self, bytes: Bytes) {
        let n = bytes.len() as u64;
        if n == 0 || !self.admit(n) {
            return;
        }
        if self.shared.behind.fetch_add(n, Ordering::AcqRel) + n > MAX_BEHIND {
            return self.give_up("the cache disk fell behind");
        }
        self.send(Cmd::Bytes(bytes));
    }

    /// How many bytes the next [`Fill::tee`] may take: the fill pipe's free room (half its
    /// size, keeping slots for partly filled pages), waiting for the writer while there is
    /// little; `None` when the fill is not going on (given up now if the writer stalled).
    pub async fn tee_room(&mut self) -> Option<usize> {
        self.tx.as_ref()?;
        if self.tee.is_none() {
            match fill_pipe() {
                Ok((target, source)) => {
                    self.tee = Some(target);
                    self.send(Cmd::Source(source));
                }
                Err(err) => {
                    self.give_up_with(&err);
                    return None;
                }
            }
        }
        let capacity = self.tee.as_ref()?.capacity() / 2;
        loop {
            let behind = self.shared.behind.load(Ordering::Acquire);
            let room = capacity.saturating_sub(usize::try_from(behind).unwrap_or(usize::MAX));
            if room >= MIN_ROOM.min(capacity) {
                return Some(room);
            }
            let progress = self.shared.progress.notified();
            if tokio::time::timeout(MAX_STALL, progress).await.is_err() {
                self.give_up("the cache disk fell behind (fill pipe full)");
                return None;
            }
        }
    }

    /// Duplicates the `n` bytes `pipe` holds into the fill pipe (before the relay drains
    /// them to the client); `n` at most what [`Fill::tee_room`] said.
    pub fn tee(&mut self, pipe: &Pipe, n: usize) {
        if n == 0 || !self.admit(n as u64) {
            return;
        }
        let Some(target) = &self.tee else {
            return self.give_up("tee without a fill pipe");
        };
        match pipe.tee_to(target, n) {
            Ok(teed) if teed == n => {
                self.shared.behind.fetch_add(n as u64, Ordering::AcqRel);
                self.send(Cmd::Pipe(n))
            }
            Ok(_) => self.give_up("the cache disk fell behind (fill pipe full)"),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                self.give_up("the cache disk fell behind (fill pipe full)")
            }
            Err(err) => self.give_up_with(&err),
        }
    }

    /// The relay sent the whole body: the writer commits the object once it has written it.
    pub fn finish(mut self) {
        self.send(Cmd::Finish);
        // Handed over: dropping `self` now is not giving up.
        self.tx = None;
    }

    /// Counts `n` more body bytes; false (and the fill given up) past `max_object_size`.
    fn admit(&mut self, n: u64) -> bool {
        if self.tx.is_none() {
            return false;
        }
        self.queued += n;
        if self.queued > self.max_len {
            self.give_up("the body is larger than cache.max_object_size");
            return false;
        }
        true
    }

    fn send(&mut self, cmd: Cmd) {
        if let Some(tx) = &self.tx
            && tx.send(cmd).is_err()
        {
            // The writer stopped (a disk error, already logged).
            self.tx = None;
            self.tee = None;
        }
    }

    fn give_up(&mut self, why: &str) {
        if self.tx.take().is_some() {
            self.shared.abandoned.store(true, Ordering::Release);
            tracing::debug!(reason = why, "cache fill given up");
        }
        self.tee = None;
    }

    fn give_up_with(&mut self, err: &io::Error) {
        let why = format!("fill pipe: {err}");
        self.give_up(&why);
    }
}

impl Drop for Fill {
    /// Dropped before [`Fill::finish`] (the client or the app went away): given up.
    fn drop(&mut self) {
        if self.tx.is_some() {
            self.shared.abandoned.store(true, Ordering::Release);
        }
    }
}

/// What the relay and the writer share (one allocation per fill).
#[derive(Debug)]
struct Progress {
    /// Bytes handed to the writer and not yet written.
    behind: AtomicU64,
    /// Signalled by the writer each time it has written something.
    progress: Notify,
    /// Set when the fill is given up, so the writer stops before the commands still queued
    /// (a slow disk would otherwise go on writing a file that is only to be removed).
    abandoned: AtomicBool,
}

/// The writer: appends what the relay sends to the temporary file, then commits it. Returns
/// (dropping `target`, which removes the file) when the relay gives up or an error occurs,
/// without writing what was still queued for it.
fn write(target: FillTarget, rx: mpsc::Receiver<Cmd>, shared: &Progress, metrics: &CacheMetrics) {
    let (behind, progress) = (&shared.behind, &shared.progress);
    let mut source: Option<TeeSource> = None;
    let mut written = 0u64;
    // Debug builds only: a cache disk that cannot keep up (see `sys::fault`).
    let stall = crate::sys::Faults::get().fill_stall;
    let result = loop {
        let cmd = rx.recv();
        if let (Some(stall), Ok(Cmd::Bytes(_) | Cmd::Pipe(_))) = (stall, &cmd) {
            std::thread::sleep(stall);
        }
        if shared.abandoned.load(Ordering::Acquire) {
            return;
        }
        let step = match cmd {
            Ok(Cmd::Source(s)) => {
                source = Some(s);
                Ok(())
            }
            Ok(Cmd::Bytes(bytes)) => {
                let at = target.body_offset() + written;
                let n = bytes.len() as u64;
                let done = target.file().write_all_at(&bytes, at);
                behind.fetch_sub(n, Ordering::AcqRel);
                progress.notify_one();
                done.map(|()| {
                    written += n;
                    metrics.fill(FillPath::Buffered, n);
                })
            }
            Ok(Cmd::Pipe(n)) => match &source {
                Some(source) => {
                    let done = splice_all(source, &target, written, n);
                    behind.fetch_sub(n as u64, Ordering::AcqRel);
                    progress.notify_one();
                    done.map(|()| {
                        written += n as u64;
                        metrics.fill(FillPath::Tee, n as u64);
                    })
                }
                None => Err(io::Error::other("teed bytes without a fill pipe")),
            },
            Ok(Cmd::Finish) => break target.commit(written),
            // The relay gave up, or its response failed.
            Err(_) => return,
        };
        if let Err(err) = step {
            break Err(err);
        }
    };
    if let Err(err) = result {
        tracing::warn!(error = %err, "cache fill failed; nothing stored");
    }
}

/// Splices exactly `n` bytes from the fill pipe into the file after `written` body bytes.
fn splice_all(source: &TeeSource, target: &FillTarget, written: u64, n: usize) -> io::Result<()> {
    let mut offset = target.body_offset() + written;
    let mut left = n;
    while left > 0 {
        match source.splice_to_file(target.file(), &mut offset, left)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            moved => left -= moved,
        }
    }
    Ok(())
}
