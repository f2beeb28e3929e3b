//! The `directio` path: a file at or above its directio threshold is read with O_DIRECT, so
//! its pages never enter the page cache, and written with the transport's own write (plain
//! TCP, kTLS or rustls). The route marks such files (`FileRange::direct`); here the response
//! switches the descriptor to O_DIRECT once, or falls back to the connection's file path when
//! the filesystem refuses (counted once, `from="directio"`).
//!
//! Reads are aligned to what statx reports (`sys::directio::alignment`): a range starting or
//! ending inside a block is read from the block boundary before it and only the requested
//! bytes are sent; the file's last partial block comes back short from the kernel. Each read
//! runs on the blocking pool, at most `MAX_READS` at once across the process, into aligned
//! buffers kept in a small pool; two buffers per response, so the disk read of chunk n+1
//! runs while chunk n is being written to the socket.
//!
//! Not here: the syscalls (sys::directio), the choice of which files (route::static_file).

use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::{FileRange, Pace, SendError, SendPath, Sender, Tally};
use crate::metrics::Metrics;
use crate::sys::directio::{self as dio, AlignedBuf};
use crate::transport::Transport;

/// Direct reads in flight across the process. Each holds a blocking-pool thread for one disk
/// read of up to a buffer; the cap keeps huge downloads from occupying the threads file opens
/// also need, and a disk gains little from a deeper queue of large sequential reads.
const MAX_READS: usize = 8;

/// Idle buffers kept for the next responses (two per response in flight); beyond this they
/// are freed.
const POOL_IDLE: usize = 8;

/// Buffer sizes: `io.chunk` within these bounds. Smaller reads waste the disk's sequential
/// bandwidth; larger ones only cost memory per download.
const MIN_BUFFER: usize = 64 << 10;
const MAX_BUFFER: usize = 4 << 20;

static READS: Semaphore = Semaphore::const_new(MAX_READS);
static POOL: Mutex<Vec<AlignedBuf>> = Mutex::new(Vec::new());

/// A buffer of `len` bytes aligned to at least `align`, from the pool when one fits.
fn take_buffer(len: usize, align: usize) -> io::Result<AlignedBuf> {
    let pooled = {
        let mut pool = POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let found = pool
            .iter()
            .position(|b| b.len() == len && b.align() >= align);
        found.map(|i| pool.swap_remove(i))
    };
    match pooled {
        Some(buf) => Ok(buf),
        None => AlignedBuf::new(len, align.max(dio::FALLBACK_ALIGN)),
    }
}

fn give_buffer(buf: AlignedBuf) {
    let mut pool = POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if pool.len() < POOL_IDLE {
        pool.push(buf);
    }
}

/// One finished direct read: `len` bytes asked for at `at`, and what the kernel gave.
struct Read {
    buf: AlignedBuf,
    at: u64,
    len: usize,
    result: io::Result<usize>,
}

/// Starts a direct read of `len` bytes at `at` into `buf`, on the blocking pool once one of
/// the `MAX_READS` permits is free.
fn start_read(
    file: Arc<File>,
    mut buf: AlignedBuf,
    at: u64,
    len: usize,
) -> JoinHandle<io::Result<Read>> {
    tokio::spawn(async move {
        let _permit = READS.acquire().await.map_err(io::Error::other)?;
        tokio::task::spawn_blocking(move || {
            let result = dio::read_at(&file, &mut buf.as_mut_slice()[..len], at);
            Read {
                buf,
                at,
                len,
                result,
            }
        })
        .await
        .map_err(io::Error::other)
    })
}

/// What a response's direct reads need, worked out once.
#[derive(Debug, Clone, Copy)]
pub(super) struct Direct {
    /// Offsets and lengths are multiples of this; buffers are aligned to it.
    block: usize,
    /// Bytes per read: a multiple of `block`.
    buffer: usize,
}

impl Sender {
    /// The path a response's file ranges take: `directio` when the route marked the file
    /// and its filesystem takes O_DIRECT, else the connection's file path; a refusal is
    /// counted once here.
    pub(super) fn direct_path(&mut self, range: Option<&FileRange>, metrics: &Metrics) -> SendPath {
        let Some(range) = range.filter(|r| r.direct) else {
            return self.file_path;
        };
        match dio::set_direct(&*range.file, true) {
            Ok(()) => {
                let block = dio::alignment(&*range.file).block();
                let buffer = self
                    .chunk
                    .clamp(MIN_BUFFER, MAX_BUFFER)
                    .next_multiple_of(block);
                self.direct = Some(Direct { block, buffer });
                SendPath::Directio
            }
            Err(err) => {
                self.refused(&err, metrics);
                self.file_path
            }
        }
    }

    /// Counts a fallback from directio to the connection's file path.
    fn refused(&self, err: &io::Error, metrics: &Metrics) {
        let to = self.file_path.label();
        tracing::debug!(to, error = %err, "directio refused, falling back");
        metrics.fallback("directio", to, crate::sys::fallback_reason(err));
    }

    /// Sends one file range on `path`: `directio`, or the zero-copy and buffered paths.
    pub(super) async fn send_range(
        &mut self,
        stream: &mut Transport,
        range: &FileRange,
        path: &mut SendPath,
        pace: &mut Pace,
        metrics: &Metrics,
        tally: &mut Tally,
    ) -> Result<(), SendError> {
        if *path == SendPath::Directio {
            let rest = self
                .send_direct(stream, range, pace, metrics, tally)
                .await?;
            let Some(rest) = rest else { return Ok(()) };
            // The kernel refused a direct read: the rest goes the connection's way.
            *path = self.file_path;
            return self
                .send_file(stream, &rest, path, pace, metrics, tally)
                .await;
        }
        self.send_file(stream, range, path, pace, metrics, tally)
            .await
    }

    /// Sends `range` with direct reads, the next read running while the last one is written.
    /// Returns the part not sent when the kernel refused a read (after turning O_DIRECT off
    /// and counting the fallback), for the caller to send another way.
    async fn send_direct(
        &mut self,
        stream: &mut Transport,
        range: &FileRange,
        pace: &mut Pace,
        metrics: &Metrics,
        tally: &mut Tally,
    ) -> Result<Option<FileRange>, SendError> {
        let Some(Direct { block, buffer }) = self.direct else {
            return Err(io::Error::other("directio path without direct reads set up").into());
        };
        let end = range.offset + range.len;
        if range.len == 0 {
            return Ok(None);
        }
        // The next byte to send, and the aligned position of the next read.
        let mut next = range.offset;
        let first = range.offset - range.offset % block as u64;
        let want = |at: u64| buffer.min(((end - at) as usize).next_multiple_of(block));
        let mut pending = Some(start_read(
            Arc::clone(&range.file),
            take_buffer(buffer, block)?,
            first,
            want(first),
        ));
        let mut spare: Option<AlignedBuf> = None;
        while let Some(read) = pending.take() {
            let Read {
                buf,
                at,
                len,
                result,
            } = read.await.map_err(io::Error::other)??;
            let n = match result {
                Ok(n) => n,
                Err(err) if crate::sys::is_unsupported(&err) => {
                    give_buffer(buf);
                    dio::set_direct(&*range.file, false)?;
                    self.refused(&err, metrics);
                    return Ok(Some(FileRange {
                        file: Arc::clone(&range.file),
                        offset: next,
                        len: end - next,
                        direct: false,
                    }));
                }
                Err(err) => return Err(err.into()),
            };
            let got_to = at + n as u64;
            if got_to < end && n < len {
                // Short before the end of the range: the file shrank.
                return Err(SendError::Truncated);
            }
            if got_to < end {
                let buf = match spare.take() {
                    Some(buf) => buf,
                    None => take_buffer(buffer, block)?,
                };
                pending = Some(start_read(
                    Arc::clone(&range.file),
                    buf,
                    got_to,
                    want(got_to),
                ));
            }
            let from = (next - at) as usize;
            let to = (got_to.min(end) - at) as usize;
            for piece in buf.as_slice()[from..to].chunks(pace.step(self.chunk).max(1)) {
                self.write_all(stream, piece).await?;
                tally.add(SendPath::Directio, piece.len());
                pace.sent(piece.len()).await;
            }
            next = at + to as u64;
            spare = Some(buf);
            tokio::task::consume_budget().await;
        }
        if let Some(buf) = spare {
            give_buffer(buf);
        }
        Ok(None)
    }
}
