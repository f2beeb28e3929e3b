//! The pipe that splice(2) moves bytes through: a file or socket fills it, a socket drains
//! it, and nothing crosses into user space.
//!
//! And tee(2) for cache fills: the bytes a relay holds in its pipe (app → pipe → client) are
//! duplicated into a second pipe without being copied, and a writer thread splices that pipe
//! into the cache file. The second pipe's write side never blocks (a full pipe means the
//! disk fell behind, and the fill is given up); its read side blocks, on the writer thread.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::pipe::{PipeFlags, SpliceFlags};

use super::fault::Faults;

/// A non-blocking pipe used as the in-kernel buffer between a file (or socket) and a socket.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

/// The pipe size ferry asks for: large enough that one splice moves a useful amount, and
/// within the default `/proc/sys/fs/pipe-max-size` (1 MiB) so an unprivileged process gets it.
const PIPE_SIZE: usize = 1024 * 1024;

impl Pipe {
    /// Creates a close-on-exec, non-blocking pipe and grows it to 1 MiB where allowed.
    pub fn new() -> io::Result<Pipe> {
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        // A smaller pipe still works, only with more calls per chunk.
        let capacity = rustix::pipe::fcntl_setpipe_size(&write, PIPE_SIZE)
            .or_else(|_| rustix::pipe::fcntl_getpipe_size(&write))
            .unwrap_or(64 * 1024);
        Ok(Pipe {
            read,
            write,
            capacity,
        })
    }

    /// Bytes the pipe can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// `splice(2)` from `file` at `*offset` into the pipe, at most `len` bytes. `Ok(0)` means
    /// the file ended early.
    pub fn fill_from_file(
        &self,
        file: impl AsFd,
        offset: &mut u64,
        len: usize,
    ) -> io::Result<usize> {
        if let Some(err) = Faults::get().splice {
            return Err(io::Error::from_raw_os_error(err));
        }
        let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK | SpliceFlags::MORE;
        Ok(rustix::pipe::splice(
            file,
            Some(offset),
            &self.write,
            None,
            len,
            flags,
        )?)
    }

    /// `splice(2)` from a socket into the pipe, at most `len` bytes; `WouldBlock` when the
    /// socket has nothing to read, `Ok(0)` when its peer has closed.
    pub fn fill_from_socket(&self, sock: impl AsFd, len: usize) -> io::Result<usize> {
        let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
        Ok(rustix::pipe::splice(
            sock,
            None,
            &self.write,
            None,
            len,
            flags,
        )?)
    }

    /// `splice(2)` from the pipe to the socket, at most `len` bytes; `WouldBlock` when the
    /// socket is full. `more` keeps the segment open for what follows (like MSG_MORE).
    pub fn drain_to(&self, sock: impl AsFd, len: usize, more: bool) -> io::Result<usize> {
        let mut flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
        if more {
            flags |= SpliceFlags::MORE;
        }
        Ok(rustix::pipe::splice(
            &self.read, None, sock, None, len, flags,
        )?)
    }
}

impl Pipe {
    /// `splice(2)` from the pipe into `file` at `*offset` (advanced), at most `len` bytes:
    /// a spool file taking what the pipe holds. A write to a regular file does not wait on
    /// the pipe; it may wait on the disk like any write.
    pub fn drain_to_file(&self, file: &File, offset: &mut u64, len: usize) -> io::Result<usize> {
        Ok(rustix::pipe::splice(
            &self.read,
            None,
            file,
            Some(offset),
            len,
            SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
        )?)
    }
}

/// The sizes tried for a fill pipe, largest first: the more it holds, the longer a busy disk
/// may lag before the fill is given up. Above `/proc/sys/fs/pipe-max-size` (1 MiB by
/// default) only a privileged process gets its size.
const FILL_PIPE_SIZES: [usize; 3] = [8 << 20, 4 << 20, 1 << 20];

/// The write side of a fill pipe, kept by the relay.
#[derive(Debug)]
pub struct TeeTarget {
    write: OwnedFd,
    capacity: usize,
}

/// The read side of a fill pipe, moved to the writer thread.
#[derive(Debug)]
pub struct TeeSource {
    read: OwnedFd,
}

/// A new fill pipe (close-on-exec, blocking ends) as large as the kernel allows.
pub fn fill_pipe() -> io::Result<(TeeTarget, TeeSource)> {
    let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
    let capacity = FILL_PIPE_SIZES
        .iter()
        .find_map(|&size| rustix::pipe::fcntl_setpipe_size(&write, size).ok())
        .or_else(|| rustix::pipe::fcntl_getpipe_size(&write).ok())
        .unwrap_or(64 * 1024);
    Ok((TeeTarget { write, capacity }, TeeSource { read }))
}

impl TeeTarget {
    /// Bytes the pipe can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl Pipe {
    /// `tee(2)`: duplicates up to `len` of the bytes this pipe holds into `target` without
    /// consuming them. Never blocks: `WouldBlock` (or a short count) when `target` is full.
    pub fn tee_to(&self, target: &TeeTarget, len: usize) -> io::Result<usize> {
        Ok(rustix::pipe::tee(
            &self.read,
            &target.write,
            len,
            SpliceFlags::NONBLOCK,
        )?)
    }
}

impl TeeSource {
    /// `splice(2)` from the fill pipe into `file` at `*offset`, at most `len` bytes; blocks
    /// until the pipe has bytes. `Ok(0)`: the write side is closed and the pipe empty.
    pub fn splice_to_file(&self, file: &File, offset: &mut u64, len: usize) -> io::Result<usize> {
        Ok(rustix::pipe::splice(
            &self.read,
            None,
            file,
            Some(offset),
            len,
            SpliceFlags::MOVE,
        )?)
    }
}
