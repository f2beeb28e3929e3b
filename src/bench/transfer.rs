//! One measured transfer: N loopback TCP connections, each with a sender thread moving its
//! share of the file by one method and a receiver thread throwing the bytes away with
//! `recv(MSG_TRUNC)` (the kernel drops them without copying), so what costs CPU is the
//! sender, and the sender thread's CPU clock is what is measured.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::ops::Range;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::net::RecvFlags;

use super::methods::{CHUNK, Counters, Method, SendError, SenderFile};
use super::source::Source;
use super::tls;
use crate::sys::bench::{ThreadUsage, thread_usage};

/// What one method did, summed over its connections.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub counters: Counters,
    /// From the start signal to the last byte received.
    pub elapsed: Duration,
    /// Sender threads' CPU time and context switches.
    pub usage: ThreadUsage,
    pub received: u64,
    /// Receiver threads' CPU time from their first recv to EOF.
    pub receiver_cpu: Duration,
}

/// Splits `0..size` into `n` contiguous ranges on CHUNK boundaries (so O_DIRECT offsets stay
/// aligned); trailing ranges are empty when the file has fewer chunks than connections.
pub fn split(size: u64, n: usize) -> Vec<Range<u64>> {
    let chunks = size.div_ceil(CHUNK as u64);
    let n64 = n as u64;
    let mut start_chunk = 0;
    (0..n64)
        .map(|i| {
            let count = chunks / n64 + u64::from(i < chunks % n64);
            let start = (start_chunk * CHUNK as u64).min(size);
            start_chunk += count;
            let end = (start_chunk * CHUNK as u64).min(size);
            start..end
        })
        .collect()
}

/// Runs `method` over `connections` pairs; `progress` sees the bytes received so far about
/// ten times a second (the bar on a terminal).
/// `tls` carries the configurations for the TLS methods (the handshakes happen before the
/// clock starts).
pub fn run(
    method: Method,
    source: &Source,
    connections: usize,
    tls: Option<&tls::Configs>,
    progress: &mut dyn FnMut(u64),
) -> Result<Measured, SendError> {
    let tls = match (method, tls) {
        (Method::KtlsSendfile | Method::TlsBuffered, None) => {
            return Err(SendError::Unsupported("no TLS configuration".into()));
        }
        (Method::KtlsSendfile | Method::TlsBuffered, Some(tls)) => Some(tls),
        _ => None,
    };
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let addr = listener.local_addr()?;
    let mut pairs = Vec::with_capacity(connections);
    for _ in 0..connections {
        let sender = TcpStream::connect(addr)?;
        let (receiver, _) = listener.accept()?;
        pairs.push((sender, receiver));
    }
    let direct = if method == Method::DirectWrite {
        let mut fds = Vec::with_capacity(connections);
        for _ in 0..connections {
            fds.push(
                source
                    .open_direct()
                    .map_err(|err| direct_refused(source, err))?,
            );
        }
        Some(fds)
    } else {
        None
    };
    let ranges = split(source.size, connections);
    let received = AtomicU64::new(0);
    let start_line = Barrier::new(connections + 1);
    let started = std::sync::OnceLock::new();

    std::thread::scope(|scope| {
        let mut receivers = Vec::new();
        let mut senders = Vec::new();
        for (i, ((sender, receiver), range)) in pairs.into_iter().zip(ranges).enumerate() {
            let received = &received;
            receivers.push(scope.spawn(move || {
                if let Some(tls) = tls {
                    tls::connect(tls, &receiver)?;
                }
                discard(receiver, received)
            }));
            let file = SenderFile {
                file: &source.file,
                direct: direct.as_ref().map(|fds| &fds[i]),
            };
            let (start_line, started) = (&start_line, &started);
            senders.push(scope.spawn(move || {
                let prepared = prepare(method, tls, &sender);
                // Every sender reaches the start line, ready or not, so none waits forever.
                start_line.wait();
                started.get_or_init(Instant::now);
                send_measured(method, &file, range, sender, prepared?)
            }));
        }
        start_line.wait();
        // The clock starts when the first thread passes the line: the main thread may be
        // descheduled past a whole small transfer.
        let start = *started.get_or_init(Instant::now);
        while !receivers.iter().all(|r| r.is_finished()) {
            progress(received.load(Ordering::Relaxed));
            std::thread::park_timeout(Duration::from_millis(100));
        }
        let mut measured = Measured {
            counters: Counters::default(),
            elapsed: Duration::ZERO,
            usage: ThreadUsage::default(),
            received: 0,
            receiver_cpu: Duration::ZERO,
        };
        let mut failure = None;
        for sender in senders {
            match sender.join().expect("sender thread panicked") {
                Ok((counters, usage)) => {
                    measured.counters.add(&counters);
                    measured.usage = add_usage(&measured.usage, &usage);
                }
                Err(err) => failure = failure.or(Some(err)),
            }
        }
        for receiver in receivers {
            match receiver.join().expect("receiver thread panicked") {
                Ok(done) => {
                    measured.received += done.bytes;
                    measured.receiver_cpu += done.cpu;
                    let elapsed = done.end.saturating_duration_since(start);
                    measured.elapsed = measured.elapsed.max(elapsed);
                }
                Err(err) => failure = failure.or(Some(SendError::Io(err))),
            }
        }
        progress(measured.received);
        if let Some(err) = failure {
            return Err(err);
        }
        // TLS records add their headers and tags to what the receivers count.
        let complete = match tls {
            Some(_) => measured.received >= source.size,
            None => measured.received == source.size,
        };
        if !complete || measured.counters.sent != source.size {
            return Err(SendError::Io(io::Error::other(format!(
                "sent {} and received {} bytes of {}",
                measured.counters.sent, measured.received, source.size
            ))));
        }
        Ok(measured)
    })
}

fn direct_refused(source: &Source, err: io::Error) -> SendError {
    if err.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) {
        SendError::Unsupported(format!(
            "{} refuses O_DIRECT (EINVAL from fcntl F_SETFL O_DIRECT)",
            source.filesystem
        ))
    } else {
        SendError::Io(io::Error::new(
            err.kind(),
            format!("open with O_DIRECT: {err}"),
        ))
    }
}

fn add_usage(a: &ThreadUsage, b: &ThreadUsage) -> ThreadUsage {
    ThreadUsage {
        cpu: a.cpu + b.cpu,
        user: a.user + b.user,
        system: a.system + b.system,
        voluntary_switches: a.voluntary_switches + b.voluntary_switches,
        involuntary_switches: a.involuntary_switches + b.involuntary_switches,
    }
}

/// Before the clock starts: the TLS handshake, and for kTLS the key handed to the kernel.
/// Returns the rustls connection that userspace TLS sends through.
fn prepare(
    method: Method,
    tls: Option<&tls::Configs>,
    sock: &TcpStream,
) -> Result<Option<rustls::ServerConnection>, SendError> {
    let Some(tls) = tls else { return Ok(None) };
    let conn = tls::accept(tls, sock)?;
    if method == Method::KtlsSendfile {
        tls::install_tx(conn, sock)?;
        return Ok(None);
    }
    Ok(Some(conn))
}

/// The sender thread: its own CPU time around the send loop, then FIN so the receiver ends.
fn send_measured(
    method: Method,
    file: &SenderFile<'_>,
    range: Range<u64>,
    sock: TcpStream,
    conn: Option<rustls::ServerConnection>,
) -> Result<(Counters, ThreadUsage), SendError> {
    let mut counters = Counters::default();
    let before = thread_usage()?;
    let result = match conn {
        Some(mut conn) => tls::send_userspace(&mut conn, file.file, range, &sock, &mut counters),
        None => super::methods::send(method, file, range, &sock, &mut counters),
    };
    let after = thread_usage()?;
    let _ = sock.shutdown(Shutdown::Write);
    result.map(|()| (counters, after.since(&before)))
}

/// What one receiver saw.
struct Discarded {
    bytes: u64,
    /// When the last byte arrived.
    end: Instant,
    cpu: Duration,
}

/// The receiver thread: discards everything until EOF.
fn discard(sock: TcpStream, received: &AtomicU64) -> io::Result<Discarded> {
    // Never written: with MSG_TRUNC, TCP only advances past the data. Its length is what one
    // call may discard.
    let mut sink = vec![0u8; 4 * 1024 * 1024];
    let mut total = 0u64;
    let before = thread_usage()?;
    loop {
        match rustix::net::recv(&sock, &mut sink[..], RecvFlags::TRUNC) {
            Ok((_, 0)) => {
                let end = Instant::now();
                let cpu = thread_usage()?.since(&before).cpu;
                return Ok(Discarded {
                    bytes: total,
                    end,
                    cpu,
                });
            }
            Ok((_, n)) => {
                total += n as u64;
                received.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(err) => return Err(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_the_file_on_chunk_boundaries() {
        let c = CHUNK as u64;
        assert_eq!(split(10, 1), vec![0..10]);
        assert_eq!(split(5 * c + 7, 2), vec![0..3 * c, 3 * c..5 * c + 7]);
        assert_eq!(split(c, 3), vec![0..c, c..c, c..c]);
        for (size, n) in [(1u64, 4usize), (8 * c, 3), (8 * c + 1, 8), (123_456_789, 5)] {
            let ranges = split(size, n);
            assert_eq!(ranges.len(), n);
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges[n - 1].end, size);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
                assert!(pair[1].start % c == 0 || pair[1].start == size);
            }
        }
    }
}
