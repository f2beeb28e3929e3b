//! Spool files: unlinked temporary files (O_TMPFILE under `spool.dir`) that hold a body while
//! one side is slower than the other, so the app's connection is free as soon as the app has
//! written (a response the client reads slowly) or before it is asked (a request body read
//! whole). Bytes go in with splice from a pipe (no copy through user space) or with a write
//! of decoded bytes, and leave with sendfile or a read, by whoever holds the file.
//!
//! The spool keeps the limits: a body larger than `spool.max_file_size`, or one that would
//! take all files together past `spool.max_size`, gets no file (counted, by reason). Space is
//! reserved when a file is made (the body's length when known) and grows as a body of
//! unknown length is written; it is given back when the file is dropped, which also closes
//! it, and the kernel frees an unlinked file's blocks then.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::config;
use crate::metrics::{SpoolDirection, SpoolMetrics, SpoolSkip};
use crate::sys::Pipe;

/// How long a client may take no bytes, with more of a response body waiting at the app,
/// before the rest is spooled. Long enough that a client that is merely busy for a moment (a
/// full socket buffer on a fast link drains in microseconds) never costs a disk write.
pub const SPOOL_WAIT: Duration = Duration::from_millis(20);

/// The spool directory and its limits, shared by every connection.
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

struct Inner {
    dir: PathBuf,
    /// `spool.max_file_size` and `spool.max_size`: atomics, so a reload can change them for
    /// the files made after it (files already made keep what they reserved).
    max_file: AtomicU64,
    max_total: AtomicU64,
    /// Bytes reserved by the files in use.
    used: AtomicU64,
    /// Whether O_TMPFILE failed on this directory's filesystem (then: named and unlinked).
    named: AtomicBool,
    /// Names for the named fallback.
    next_name: AtomicU64,
    metrics: SpoolMetrics,
}

impl Spool {
    pub fn new(config: &config::Spool, metrics: SpoolMetrics) -> Spool {
        Spool {
            inner: Arc::new(Inner {
                dir: config.dir.clone(),
                max_file: AtomicU64::new(config.max_file_size),
                max_total: AtomicU64::new(config.max_size),
                used: AtomicU64::new(0),
                named: AtomicBool::new(false),
                next_name: AtomicU64::new(0),
                metrics,
            }),
        }
    }

    /// Whether this spool is the one for `config.dir` (a reload keeps it, limits updated).
    pub fn dir_is(&self, config: &config::Spool) -> bool {
        self.inner.dir == config.dir
    }

    /// Takes `spool.max_file_size` and `spool.max_size` from a reloaded configuration. Space
    /// already reserved stays reserved: a smaller total only turns new files away until
    /// enough are given back.
    pub fn set_limits(&self, config: &config::Spool) {
        let inner = &self.inner;
        inner
            .max_file
            .store(config.max_file_size, Ordering::Relaxed);
        inner.max_total.store(config.max_size, Ordering::Relaxed);
    }

    /// Makes (and drops) one file, so that a directory that cannot hold spool files is
    /// reported when the server starts rather than on the first slow client.
    pub fn check(&self) -> io::Result<()> {
        self.inner.open().map(drop)
    }

    /// A file for a body of `len` bytes (at least; `grow` reserves more), or `None` when the
    /// limits leave no room or the file cannot be made (each counted).
    pub fn file(&self, len: u64, direction: SpoolDirection) -> Option<SpoolFile> {
        let inner = &self.inner;
        if len > inner.max_file.load(Ordering::Relaxed) {
            inner.metrics.skipped(SpoolSkip::FileSize);
            return None;
        }
        if !inner.reserve(len) {
            inner.metrics.skipped(SpoolSkip::TotalSize);
            return None;
        }
        match inner.open() {
            Ok(file) => {
                inner.metrics.files_open.inc();
                Some(SpoolFile {
                    file: Arc::new(file),
                    written: 0,
                    reserved: len,
                    direction,
                    spool: Arc::clone(inner),
                })
            }
            Err(err) => {
                inner.release(len);
                inner.metrics.skipped(SpoolSkip::Error);
                tracing::warn!(dir = %inner.dir.display(), error = %err, "spool file not created");
                None
            }
        }
    }
}

impl Inner {
    /// Reserves `len` bytes of the total, if they fit.
    fn reserve(&self, len: u64) -> bool {
        let max_total = self.max_total.load(Ordering::Relaxed);
        let reserved = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(len).filter(|&total| total <= max_total)
            })
            .is_ok();
        if reserved {
            self.metrics.used_bytes.add(len as i64);
        }
        reserved
    }

    fn release(&self, len: u64) {
        self.used.fetch_sub(len, Ordering::AcqRel);
        self.metrics.used_bytes.sub(len as i64);
    }

    /// An unlinked file in the directory: O_TMPFILE, or where the filesystem lacks it, a new
    /// file removed at once.
    fn open(&self) -> io::Result<File> {
        if !self.named.load(Ordering::Relaxed) {
            match tmpfile(&self.dir) {
                Ok(file) => return Ok(file),
                // EOPNOTSUPP: the filesystem has no O_TMPFILE; EISDIR: the kernel predates it.
                Err(err)
                    if matches!(
                        err.raw_os_error(),
                        Some(libc::EOPNOTSUPP) | Some(libc::EISDIR)
                    ) =>
                {
                    self.named.store(true, Ordering::Relaxed);
                }
                Err(err) => return Err(err),
            }
        }
        let n = self.next_name.fetch_add(1, Ordering::Relaxed);
        let path = self
            .dir
            .join(format!(".ferry-spool-{}-{n}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        std::fs::remove_file(&path)?;
        Ok(file)
    }
}

fn tmpfile(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(dir)
}

/// One spool file being written, then read. Dropping it gives its space back.
pub struct SpoolFile {
    file: Arc<File>,
    written: u64,
    reserved: u64,
    direction: SpoolDirection,
    spool: Arc<Inner>,
}

impl std::fmt::Debug for SpoolFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpoolFile")
            .field("written", &self.written)
            .field("reserved", &self.reserved)
            .finish()
    }
}

impl SpoolFile {
    /// The file, to send or read from.
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Bytes written so far: the body is `0..written`.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Reserves room for `n` more bytes past what was reserved; false when the limits say no
    /// (counted).
    pub fn grow(&mut self, n: u64) -> bool {
        let needed = (self.written + n).saturating_sub(self.reserved);
        if needed == 0 {
            return true;
        }
        if self.written + n > self.spool.max_file.load(Ordering::Relaxed) {
            self.spool.metrics.skipped(SpoolSkip::FileSize);
            return false;
        }
        if !self.spool.reserve(needed) {
            self.spool.metrics.skipped(SpoolSkip::TotalSize);
            return false;
        }
        self.reserved += needed;
        true
    }

    /// Appends `bytes` (within the reservation: `grow` first for a body of unknown length).
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all_at(bytes, self.written)?;
        self.added(bytes.len());
        Ok(())
    }

    /// Appends all `len` bytes `pipe` holds, with splice: they never enter user space.
    pub fn splice_from(&mut self, pipe: &Pipe, len: usize) -> io::Result<()> {
        let mut left = len;
        let mut offset = self.written;
        while left > 0 {
            match pipe.drain_to_file(&self.file, &mut offset, left) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => left -= n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        self.added(len);
        Ok(())
    }

    fn added(&mut self, n: usize) {
        self.written += n as u64;
        self.spool.metrics.spooled(self.direction, n as u64);
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        self.spool.metrics.files_open.dec();
        self.spool.release(self.reserved);
    }
}
