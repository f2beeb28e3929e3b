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
//! buffers kept in a small pool; the disk reads of chunks n+1 and n+2 run while chunk n is
//! being written to the socket (`READ_AHEAD`).
//!
//! Not here: the syscalls (sys::directio), the choice of which files (route::static_file).

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::{Direct, FileRange, Pace, Sender};
use crate::failure::Failure;
use crate::metrics::Metrics;
use crate::metrics::{SendPath, Tally};
use crate::sys::directio::{self as dio, AlignedBuf};
use crate::transport::Transport;

/// Direct reads in flight across the process. Each holds a blocking-pool thread for one disk
/// read of up to a buffer; the cap keeps huge downloads from occupying the threads file opens
/// also need, and a disk gains little from a deeper queue of large sequential reads.
const MAX_READS: usize = 8;

/// Reads in flight per response, besides the buffer being written: the disk works on chunks
/// n+1 and n+2 while chunk n goes to the socket. One would leave the disk idle whenever a
/// read completes before the previous write; more only holds memory.
const READ_AHEAD: usize = 2;

/// Idle buffers kept for the next responses (a response uses `READ_AHEAD + 1`); beyond this
/// they are freed.
const POOL_IDLE: usize = 12;

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
    ) -> Result<(), Failure> {
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

    /// Sends `range` with direct reads, the next ones running while the last one is written.
    /// Returns the part not sent when the kernel refused a read (after turning O_DIRECT off
    /// and counting the fallback), for the caller to send another way.
    async fn send_direct(
        &mut self,
        stream: &mut Transport,
        range: &FileRange,
        pace: &mut Pace,
        metrics: &Metrics,
        tally: &mut Tally,
    ) -> Result<Option<FileRange>, Failure> {
        let Some(direct) = self.direct else {
            return Err(Failure::Internal(
                "directio path without direct reads set up".into(),
            ));
        };
        let mut reads = Reads::new(range, direct);
        // The next byte to send.
        let mut next = range.offset;
        reads.fill().map_err(internal)?;
        while let Some(read) = reads.pending.pop_front() {
            let Read {
                buf,
                at,
                len,
                result,
            } = read.await.map_err(internal)?.map_err(internal)?;
            let n = match result {
                Ok(n) => n,
                Err(err) if crate::sys::is_unsupported(&err) => {
                    give_buffer(buf);
                    dio::set_direct(&*range.file, false).map_err(Failure::Disk)?;
                    self.refused(&err, metrics);
                    return Ok(Some(FileRange {
                        file: Arc::clone(&range.file),
                        offset: next,
                        len: reads.end - next,
                        direct: false,
                    }));
                }
                Err(err) => return Err(Failure::Disk(err)),
            };
            let got_to = at + n as u64;
            if got_to < reads.end && n < len {
                // Short before the end of the range: the file shrank.
                return Err(Failure::Truncated);
            }
            let from = (next - at) as usize;
            let to = (got_to.min(reads.end) - at) as usize;
            for piece in buf.as_slice()[from..to].chunks(pace.step(self.chunk).max(1)) {
                self.write_all(stream, piece).await?;
                tally.add(SendPath::Directio, piece.len());
                pace.sent(piece.len()).await;
            }
            next = at + to as u64;
            reads.spares.push(buf);
            reads.fill().map_err(internal)?;
            tokio::task::consume_budget().await;
        }
        for buf in reads.spares {
            give_buffer(buf);
        }
        Ok(None)
    }
}

/// The direct reads of one range: up to `READ_AHEAD` in flight, in file order, each into its
/// own buffer; a buffer whose bytes have been written goes back to `spares`.
struct Reads {
    file: Arc<File>,
    direct: Direct,
    /// Where the next read starts (aligned) and where the range ends.
    ahead: u64,
    end: u64,
    pending: VecDeque<JoinHandle<io::Result<Read>>>,
    spares: Vec<AlignedBuf>,
}

impl Reads {
    fn new(range: &FileRange, direct: Direct) -> Reads {
        Reads {
            file: Arc::clone(&range.file),
            direct,
            ahead: range.offset - range.offset % direct.block as u64,
            end: range.offset + range.len,
            pending: VecDeque::with_capacity(READ_AHEAD),
            spares: Vec::with_capacity(READ_AHEAD),
        }
    }

    /// Starts reads until `READ_AHEAD` are in flight or the range is covered. The last one is
    /// rounded up to a whole block: the kernel stops at the end of the file.
    fn fill(&mut self) -> io::Result<()> {
        let Direct { block, buffer } = self.direct;
        while self.pending.len() < READ_AHEAD && self.ahead < self.end {
            let len = buffer.min(((self.end - self.ahead) as usize).next_multiple_of(block));
            let buf = match self.spares.pop() {
                Some(buf) => buf,
                None => take_buffer(buffer, block)?,
            };
            let read = start_read(Arc::clone(&self.file), buf, self.ahead, len);
            self.pending.push_back(read);
            self.ahead += len as u64;
        }
        Ok(())
    }
}

/// A failure of ferry's own machinery for direct reads (a read task that could not run, a
/// buffer that could not be had), as opposed to the disk's answer to a read.
fn internal(err: impl std::fmt::Display) -> Failure {
    Failure::Internal(err.to_string())
}
