//! The send loops `ferry bench` compares, one per method, each moving one byte range of the
//! file to a blocking loopback TCP socket and counting what it did as it goes: every syscall
//! it made, the bytes that passed through this process's memory, and the bytes the CPU
//! copied between user and kernel space. Nothing here times or aggregates: `transfer` does.

use std::io::{self, Write};
use std::net::TcpStream;
use std::os::unix::fs::FileExt;

use crate::sys;

/// Bytes per read/write/sendfile call: the default `[io] chunk` of the server.
pub const CHUNK: usize = 2 * 1024 * 1024;

/// The ways to move a file to a socket, in the order the table lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    ReadWrite,
    MmapWrite,
    Sendfile,
    Splice,
    DirectWrite,
    KtlsSendfile,
    TlsBuffered,
}

impl Method {
    pub const ALL: [Method; 7] = [
        Method::ReadWrite,
        Method::MmapWrite,
        Method::Sendfile,
        Method::Splice,
        Method::DirectWrite,
        Method::KtlsSendfile,
        Method::TlsBuffered,
    ];

    /// The name in the table and the JSON `method` field.
    pub fn name(self) -> &'static str {
        match self {
            Method::ReadWrite => "read+write",
            Method::MmapWrite => "mmap+write",
            Method::Sendfile => "sendfile",
            Method::Splice => "splice",
            Method::DirectWrite => "O_DIRECT+write",
            Method::KtlsSendfile => "kTLS sendfile",
            Method::TlsBuffered => "userspace TLS",
        }
    }

    /// What the method does per chunk, for the table's footnotes and the JSON.
    pub fn calls(self) -> &'static str {
        match self {
            Method::ReadWrite => "pread + write",
            Method::MmapWrite => "mmap once, write from the mapping",
            Method::Sendfile => "sendfile",
            Method::Splice => "splice file→pipe + splice pipe→socket",
            Method::DirectWrite => "pread(O_DIRECT) + write",
            Method::KtlsSendfile => "sendfile on a kTLS socket",
            Method::TlsBuffered => "pread + rustls encrypt + write",
        }
    }
}

/// What one sender counted while moving its range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Bytes of the file handed to the socket.
    pub sent: u64,
    /// Every syscall of the send loop (setup such as socket creation excluded).
    pub syscalls: u64,
    /// Bytes of file data that sat in this process's memory (a buffer or a mapping).
    pub user_bytes: u64,
    /// Bytes the CPU copied across the user/kernel boundary (copy_to_user + copy_from_user):
    /// a read and a write each copy once; an O_DIRECT read is DMA into the buffer, not a copy.
    pub cpu_copied: u64,
}

impl Counters {
    pub fn add(&mut self, other: &Counters) {
        self.sent += other.sent;
        self.syscalls += other.syscalls;
        self.user_bytes += other.user_bytes;
        self.cpu_copied += other.cpu_copied;
    }
}

/// Why a method could not run here at all (as opposed to failing midway).
#[derive(Debug)]
pub enum SendError {
    Unsupported(String),
    Io(io::Error),
}

impl From<io::Error> for SendError {
    fn from(err: io::Error) -> SendError {
        SendError::Io(err)
    }
}

/// The file a sender reads: a normal descriptor, and where the method needs one, a second
/// opened with O_DIRECT.
pub struct SenderFile<'a> {
    pub file: &'a std::fs::File,
    pub direct: Option<&'a std::fs::File>,
}

/// Sends `range` of the file over `sock` with `method`, counting into `counters`.
pub fn send(
    method: Method,
    file: &SenderFile<'_>,
    range: std::ops::Range<u64>,
    sock: &TcpStream,
    counters: &mut Counters,
) -> Result<(), SendError> {
    match method {
        Method::ReadWrite => read_write(file.file, range, sock, counters),
        Method::MmapWrite => mmap_write(file.file, range, sock, counters),
        Method::Sendfile => sendfile(file.file, range, sock, counters),
        Method::Splice => splice(file.file, range, sock, counters),
        Method::DirectWrite => match file.direct {
            Some(direct) => direct_write(direct, range, sock, counters),
            None => Err(SendError::Unsupported("no O_DIRECT descriptor".into())),
        },
        // After `tls::install_tx`, the kTLS socket takes plain sendfile.
        Method::KtlsSendfile => sendfile(file.file, range, sock, counters),
        Method::TlsBuffered => Err(SendError::Unsupported(
            "userspace TLS sends through its rustls connection (tls::send_userspace)".into(),
        )),
    }
}

fn file_ended(offset: u64) -> SendError {
    SendError::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the file ended at byte {offset} (did it shrink?)"),
    ))
}

/// `write(2)` until `data` is all in the socket, one syscall per call.
fn write_all(sock: &TcpStream, mut data: &[u8], counters: &mut Counters) -> io::Result<()> {
    let mut sock = sock;
    while !data.is_empty() {
        counters.syscalls += 1;
        match sock.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                counters.cpu_copied += n as u64;
                data = &data[n..];
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

fn chunk_len(range: &std::ops::Range<u64>, offset: u64, max: usize) -> usize {
    (range.end - offset).min(max as u64) as usize
}

fn read_write(
    file: &std::fs::File,
    range: std::ops::Range<u64>,
    sock: &TcpStream,
    counters: &mut Counters,
) -> Result<(), SendError> {
    let mut buf = vec![0u8; CHUNK];
    let mut offset = range.start;
    while offset < range.end {
        let want = chunk_len(&range, offset, CHUNK);
        counters.syscalls += 1;
        let n = match file.read_at(&mut buf[..want], offset) {
            Ok(0) => return Err(file_ended(offset)),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err.into()),
        };
        counters.cpu_copied += n as u64;
        counters.user_bytes += n as u64;
        write_all(sock, &buf[..n], counters)?;
        counters.sent += n as u64;
        offset += n as u64;
    }
    Ok(())
}

fn mmap_write(
    file: &std::fs::File,
    range: std::ops::Range<u64>,
    sock: &TcpStream,
    counters: &mut Counters,
) -> Result<(), SendError> {
    if range.is_empty() {
        return Ok(());
    }
    let len = usize::try_from(range.end - range.start)
        .map_err(|_| SendError::Unsupported("range larger than the address space".into()))?;
    // mmap now, munmap at the end of this function.
    counters.syscalls += 2;
    let mapping = sys::bench::Mapping::map(file, range.start, len)?;
    for chunk in mapping.as_slice().chunks(CHUNK) {
        counters.user_bytes += chunk.len() as u64;
        write_all(sock, chunk, counters)?;
        counters.sent += chunk.len() as u64;
    }
    Ok(())
}

pub fn sendfile(
    file: &std::fs::File,
    range: std::ops::Range<u64>,
    sock: &TcpStream,
    counters: &mut Counters,
) -> Result<(), SendError> {
    let mut offset = range.start;
    while offset < range.end {
        let want = chunk_len(&range, offset, CHUNK);
        counters.syscalls += 1;
        match sys::sendfile(sock, file, &mut offset, want) {
            Ok(0) => return Err(file_ended(offset)),
            Ok(n) => counters.sent += n as u64,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if sys::is_unsupported(&err) => {
                return Err(SendError::Unsupported(format!(
                    "sendfile refused: {err} ({})",
                    sys::fallback_reason(&err)
                )));
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// Waits until the socket can take more (the pipe calls are non-blocking); one syscall.
fn wait_writable(sock: &TcpStream, counters: &mut Counters) -> io::Result<()> {
    use rustix::event::{PollFd, PollFlags, poll};
    counters.syscalls += 1;
    let mut fds = [PollFd::new(sock, PollFlags::OUT)];
    match poll(&mut fds, None) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

fn splice(
    file: &std::fs::File,
    range: std::ops::Range<u64>,
    sock: &TcpStream,
    counters: &mut Counters,
) -> Result<(), SendError> {
    let pipe = sys::Pipe::new()?;
    let mut offset = range.start;
    while offset < range.end {
        let want = chunk_len(&range, offset, pipe.capacity());
        counters.syscalls += 1;
        let mut in_pipe = match pipe.fill_from_file(file, &mut offset, want) {
            Ok(0) => return Err(file_ended(offset)),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) if sys::is_unsupported(&err) => {
                return Err(SendError::Unsupported(format!(
                    "splice from the file refused: {err} ({})",
                    sys::fallback_reason(&err)
                )));
            }
            Err(err) => return Err(err.into()),
        };
        while in_pipe > 0 {
            let more = offset < range.end;
            counters.syscalls += 1;
            match pipe.drain_to(sock, in_pipe, more) {
                Ok(0) => return Err(SendError::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    in_pipe -= n;
                    counters.sent += n as u64;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    wait_writable(sock, counters)?
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
    Ok(())
}

fn direct_write(
    direct: &std::fs::File,
    range: std::ops::Range<u64>,
    sock: &TcpStream,
    counters: &mut Counters,
) -> Result<(), SendError> {
    let align = sys::directio::alignment(direct);
    if !range.start.is_multiple_of(align.offset as u64) {
        return Err(SendError::Unsupported(format!(
            "range start {} is not a multiple of the O_DIRECT alignment {}",
            range.start, align.offset
        )));
    }
    let mut buf = sys::directio::AlignedBuf::new(CHUNK, align.block())?;
    let mut offset = range.start;
    while offset < range.end {
        // Read whole aligned blocks; the file's last block comes back short.
        counters.syscalls += 1;
        let n = match sys::directio::read_at(direct, buf.as_mut_slice(), offset) {
            Ok(0) => return Err(file_ended(offset)),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) if err.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                return Err(SendError::Unsupported(format!(
                    "O_DIRECT read refused (EINVAL) with {}-byte memory and {}-byte offset \
                     alignment",
                    align.memory, align.offset
                )));
            }
            Err(err) => return Err(err.into()),
        };
        let take = n.min(chunk_len(&range, offset, CHUNK));
        counters.user_bytes += take as u64;
        write_all(sock, &buf.as_slice()[..take], counters)?;
        counters.sent += take as u64;
        offset += take as u64;
    }
    Ok(())
}
