//! Per-thread pools of the buffers a connection needs only while it serves a request: the
//! read buffer a request head arrives in, the buffer a response head is encoded into, the
//! body buffer of the copying paths (`buffered`, `tls_buffered`, relayed app bodies); HTTP/2
//! connections take their read buffers and response heads' field buffers here too. An idle
//! keep-alive connection holds none of them; it takes one when bytes arrive or a response
//! needs it and gives it back when the request is done, so memory follows the requests in
//! flight, not the connections open.
//!
//! Each worker thread runs its own current-thread runtime (src/server.rs), so a thread-local
//! free list needs no lock. Each list keeps a bounded number of buffers: past it a returned
//! buffer is freed, so a burst of concurrent requests does not leave its peak behind.
//!
//! What connections free goes back to the allocator, and glibc's keeps it: after thousands
//! of connections close the process would stay at its peak. `Open` counts a worker's open
//! connections; each time the worker is down to half its peak since the last trim, with at
//! least 128 to 256 connections closed since then, the heap is trimmed (`sys::heap::trim_heap`,
//! on the blocking pool). A burst of closes gives its memory back in a few trims; steady
//! traffic, whose connection count does not halve, pays for none (serial short connections:
//! one trim per 128).

use std::cell::RefCell;

use bytes::BytesMut;

/// What a read buffer starts with: a request head usually fits.
pub const READ_SIZE: usize = 4096;
/// Read buffers grown past this (a large head, pipelined requests) are not kept.
const READ_KEEP: usize = 16 * 1024;
/// Head buffers grown past this (an unusually large response head) are not kept.
const HEAD_KEEP: usize = 16 * 1024;
/// Idle buffers kept per thread, per kind. Small ones are cheap to keep; body buffers (up to
/// 256 KiB each) only a few, enough for a worker's usual concurrent copying responses.
const READ_POOLED: usize = 256;
const HEAD_POOLED: usize = 256;
const BODY_POOLED: usize = 4;

#[derive(Default)]
struct Pools {
    read: Vec<BytesMut>,
    head: Vec<Vec<u8>>,
    body: Vec<Vec<u8>>,
    /// This worker's open connections, their most since the last trim, and the connections
    /// closed since it.
    open: usize,
    peak: usize,
    closed: usize,
}

/// Closes since the last trim before another: half the peak since it, within these bounds.
const TRIM_AFTER_CLOSES: usize = 256;
const TRIM_MIN_CLOSES: usize = 128;

thread_local! {
    static POOLS: RefCell<Pools> = RefCell::default();
}

fn with<R>(f: impl FnOnce(&mut Pools) -> R) -> R {
    POOLS.with(|pools| f(&mut pools.borrow_mut()))
}

/// An empty read buffer with room for at least `READ_SIZE` bytes.
pub fn take_read() -> BytesMut {
    let mut buf = with(|p| p.read.pop()).unwrap_or_default();
    // An advanced-to-empty buffer reclaims its front here without allocating.
    buf.reserve(READ_SIZE);
    buf
}

/// Gives an empty read buffer back (a buffer still holding bytes must not be returned).
pub fn put_read(mut buf: BytesMut) {
    debug_assert!(buf.is_empty(), "a read buffer goes back only when empty");
    buf.clear();
    if buf.capacity() == 0 || buf.capacity() > READ_KEEP {
        return;
    }
    with(|p| {
        if p.read.len() < READ_POOLED {
            p.read.push(buf);
        }
    });
}

/// An empty buffer to encode a response head into.
pub fn take_head() -> Vec<u8> {
    with(|p| p.head.pop()).unwrap_or_default()
}

/// Gives a head buffer back.
pub fn put_head(mut head: Vec<u8>) {
    head.clear();
    if head.capacity() == 0 || head.capacity() > HEAD_KEEP {
        return;
    }
    with(|p| {
        if p.head.len() < HEAD_POOLED {
            p.head.push(head);
        }
    });
}

/// A body buffer of at least `size` initialised bytes.
pub fn take_body(size: usize) -> Vec<u8> {
    let mut buf = with(|p| p.body.pop()).unwrap_or_default();
    if buf.len() < size {
        buf.resize(size, 0);
    }
    buf
}

/// Gives a body buffer back.
pub fn put_body(buf: Vec<u8>) {
    if buf.is_empty() {
        return;
    }
    with(|p| {
        if p.body.len() < BODY_POOLED {
            p.body.push(buf);
        }
    });
}

/// One open connection of this worker, for as long as it lives (see the module comment).
#[derive(Debug)]
pub struct Open(());

impl Open {
    /// Counts a connection just accepted on this worker until the value is dropped.
    #[must_use]
    pub fn begin() -> Open {
        with(|p| {
            p.open += 1;
            p.peak = p.peak.max(p.open);
        });
        Open(())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let trim = with(|p| {
            p.open -= 1;
            p.closed += 1;
            // On the way down from a peak: at each halving, once enough closed since the last
            // trim for it to be worth a walk of the heap.
            let enough = (p.peak / 2).clamp(TRIM_MIN_CLOSES, TRIM_AFTER_CLOSES);
            let trim = p.open <= p.peak / 2 && p.closed >= enough;
            if trim {
                p.closed = 0;
                p.peak = p.open;
            }
            trim
        });
        if trim && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            drop(runtime.spawn_blocking(crate::sys::heap::trim_heap));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_read_buffer_is_reused_with_its_room() {
        let mut buf = take_read();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let ptr = buf.as_ptr();
        bytes::Buf::advance(&mut buf, 18);
        put_read(buf);
        let again = take_read();
        assert!(again.is_empty());
        assert!(again.capacity() >= READ_SIZE);
        assert_eq!(again.as_ptr(), ptr, "the same memory, front reclaimed");
    }

    #[test]
    fn oversized_buffers_are_not_kept() {
        let mut big = take_read();
        big.reserve(READ_KEEP * 2);
        put_read(big);
        assert!(take_read().capacity() <= READ_KEEP);

        let mut head = take_head();
        head.resize(HEAD_KEEP + 1, 0);
        put_head(head);
        assert!(take_head().capacity() <= HEAD_KEEP);
    }

    #[test]
    fn body_buffers_are_bounded_per_thread() {
        let bufs: Vec<Vec<u8>> = (0..BODY_POOLED + 3).map(|_| take_body(1024)).collect();
        for buf in bufs {
            put_body(buf);
        }
        let kept = with(|p| p.body.len());
        assert_eq!(kept, BODY_POOLED);
        assert!(take_body(2048).len() >= 2048, "grown to the size asked for");
    }

    #[test]
    fn a_burst_of_closes_trims_once_steady_churn_never() {
        let state = || with(|p| (p.open, p.peak, p.closed));
        // Steady: 100 open, connections replaced one by one: the count never halves.
        let mut steady: Vec<Open> = (0..100).map(|_| Open::begin()).collect();
        for _ in 0..1000 {
            steady.remove(0);
            steady.push(Open::begin());
        }
        assert_eq!(state().0, 100);
        assert_eq!(
            state().1,
            100,
            "no trim: the peak since the last one is kept"
        );
        assert!(state().2 >= 1000);
        // A burst of 600 more, then all close: trimmed on the way down (counters reset).
        steady.extend((0..600).map(|_| Open::begin()));
        drop(steady);
        let (open, peak, closed) = state();
        assert_eq!(open, 0);
        assert!(peak < 700 && closed < 700, "trimmed: {peak} {closed}");
    }
}
