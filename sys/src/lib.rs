//! The kernel boundary: every zero-copy syscall ferry makes goes through a small safe wrapper
//! here (sendfile, splice, pipes, TCP_CORK, openat2). The wrappers sit on rustix, which does
//! the raw calls. The calls rustix lacks (recvmsg/sendmsg with kTLS record-type control
//! messages, in `ktls`) use libc, each `unsafe` block here with a `// SAFETY:` line.
//!
//! Nothing here knows about HTTP or tokio: callers in `send` and `route` decide when to call.
//! This is the crate `ferry-sys`, apart from ferry's own so that ferry can forbid unsafe code
//! outright (a lint level that no module of it can lift); here every unsafe block carries its
//! `// SAFETY:` reason (clippy's `undocumented_unsafe_blocks` is denied).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

pub mod bench;
pub mod directio;
mod fault;
pub mod heap;
pub mod ktls;
mod pipe;

pub use fault::Faults;
pub use pipe::{Pipe, TeeSource, TeeTarget, fill_pipe};

/// `sendfile(2)` from `file` at `*offset` to the socket, at most `count` bytes; advances
/// `offset` by what was sent. `Ok(0)` means the file ended before `offset` (it shrank).
pub fn sendfile(
    sock: impl AsFd,
    file: impl AsFd,
    offset: &mut u64,
    count: usize,
) -> io::Result<usize> {
    if let Some(err) = Faults::get().sendfile {
        return Err(io::Error::from_raw_os_error(err));
    }
    Ok(rustix::fs::sendfile(sock, file, Some(offset), count)?)
}

/// `preadv2(RWF_NOWAIT)`: reads up to `buf.len()` bytes of `file` at `offset` only if they
/// are in the page cache, without waiting on the disk; `WouldBlock` when some are not (and
/// EOPNOTSUPP on a filesystem without it). A read on the event loop that cannot block.
pub fn read_cached(file: impl AsFd, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut bufs = [std::io::IoSliceMut::new(buf)];
    Ok(rustix::io::preadv2(
        file,
        &mut bufs,
        offset,
        rustix::io::ReadWriteFlags::NOWAIT,
    )?)
}

/// Sets or clears TCP_CORK: while set, the kernel sends only full segments, so a response
/// head and the first body bytes leave together; clearing it flushes what is held.
pub fn set_cork(sock: impl AsFd, on: bool) -> io::Result<()> {
    Ok(rustix::net::sockopt::set_tcp_cork(sock, on)?)
}

/// Opens a directory to resolve paths beneath (an `O_PATH` handle: no read permission needed
/// on the directory itself beyond search).
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(rustix::fs::open(path, flags, Mode::empty())?)
}

/// Opens `rel` read-only beneath `root` with openat2(2) `RESOLVE_BENEATH`: the kernel refuses
/// (EXDEV) any lookup that would leave `root` by `..`, an absolute path or a symlink, and
/// there is no window between check and use. `O_NONBLOCK` keeps a FIFO from blocking the open.
pub fn open_beneath(root: impl AsFd, rel: &std::ffi::OsStr) -> io::Result<OwnedFd> {
    openat2_beneath(root, rel, ResolveFlags::empty())
}

/// As `open_beneath`, but only from what the kernel has cached (`RESOLVE_CACHED`, Linux 5.12):
/// `WouldBlock` when the lookup would have to read the disk, so the caller can retry it off
/// the event loop. Kernels without the flag answer EINVAL, reported as `WouldBlock` too.
pub fn open_beneath_cached(root: impl AsFd, rel: &std::ffi::OsStr) -> io::Result<OwnedFd> {
    openat2_beneath(root, rel, ResolveFlags::CACHED).map_err(|err| {
        if err.raw_os_error() == Some(libc_einval()) {
            io::ErrorKind::WouldBlock.into()
        } else {
            err
        }
    })
}

fn openat2_beneath(
    root: impl AsFd,
    rel: &std::ffi::OsStr,
    extra: ResolveFlags,
) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS | extra;
    Ok(rustix::fs::openat2(
        root,
        rel,
        flags,
        Mode::empty(),
        resolve,
    )?)
}

/// True for the errors that mean "this kind of descriptor cannot do that call", after which
/// ferry falls back to the next send path instead of failing the response.
pub fn is_unsupported(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(code) if code == libc_einval() || code == libc_enosys())
}

/// The label a fallback carries for the error that caused it.
pub fn fallback_reason(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(code) if code == libc_enosys() => "enosys",
        Some(code) if code == libc_einval() => "einval",
        _ => "error",
    }
}

fn libc_einval() -> i32 {
    rustix::io::Errno::INVAL.raw_os_error()
}

fn libc_enosys() -> i32 {
    rustix::io::Errno::NOSYS.raw_os_error()
}

/// Raises the soft open-files limit to the hard limit (nginx's worker_rlimit_nofile): every
/// connection holds a socket, and a response a file and maybe a pipe. Returns the new limit
/// (`None` for unlimited).
pub fn raise_nofile_limit() -> io::Result<Option<u64>> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        setrlimit(
            Resource::Nofile,
            rustix::process::Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        )?;
    }
    Ok(limit.maximum)
}

/// Looks at what a socket has received without consuming it and without blocking:
/// `Ok(0)` means the peer closed, `WouldBlock` that nothing is pending.
pub fn peek(sock: impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    use rustix::net::RecvFlags;
    let (n, _) = rustix::net::recv(sock, buf, RecvFlags::PEEK | RecvFlags::DONTWAIT)?;
    Ok(n)
}
