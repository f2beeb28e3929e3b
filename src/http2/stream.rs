//! The streams of one connection: each a few words of state (RFC 9113 §5.1), kept in a
//! small vector (ids are few and short-lived), and a short memory of recently closed ids so
//! frames that were in flight when a stream closed are told apart from protocol errors.
//!
//! A stream is in the table from its request HEADERS until it is closed both ways or reset;
//! "idle" is every id above the highest the client opened, "closed" every other id not here.

/// One open or half-closed stream.
#[derive(Debug)]
pub(super) struct Stream {
    pub(super) id: u32,
    /// The client sent END_STREAM (half-closed remote).
    pub(super) recv_closed: bool,
    /// ferry sent END_STREAM (half-closed local).
    pub(super) send_closed: bool,
    pub(super) headers_sent: bool,
    /// What ferry may still send (may go negative after a SETTINGS change, §6.9.2).
    pub(super) send_window: i64,
    /// What the client may still send.
    pub(super) recv_window: i64,
    /// Bytes the driver released that no WINDOW_UPDATE has announced yet.
    pub(super) recv_unacked: u32,
    /// Body bytes handed to the driver and not yet released.
    pub(super) held: u32,
    pub(super) content_length: Option<u64>,
    /// Body bytes received (without padding).
    pub(super) received: u64,
}

impl Stream {
    pub(super) fn new(id: u32, send_window: i64, recv_window: i64) -> Stream {
        Stream {
            id,
            recv_closed: false,
            send_closed: false,
            headers_sent: false,
            send_window,
            recv_window,
            recv_unacked: 0,
            held: 0,
            content_length: None,
            received: 0,
        }
    }
}

/// How a recently closed stream ended, which decides what a late frame on it means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Closed {
    /// ferry reset or refused it: late frames are ignored (§5.1, "closed").
    ByUs,
    /// The client reset it or ended it: more frames from the client are STREAM_CLOSED.
    ByPeer,
}

/// Recently closed ids remembered (a ring: the oldest is forgotten first).
const CLOSED_MEMORY: usize = 16;

#[derive(Debug, Default)]
pub(super) struct Streams {
    list: Vec<Stream>,
    closed: [(u32, Option<Closed>); CLOSED_MEMORY],
    next_closed: usize,
}

impl Streams {
    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    pub(super) fn get(&self, id: u32) -> Option<&Stream> {
        self.list.iter().find(|s| s.id == id)
    }

    pub(super) fn get_mut(&mut self, id: u32) -> Option<&mut Stream> {
        self.list.iter_mut().find(|s| s.id == id)
    }

    pub(super) fn insert(&mut self, stream: Stream) {
        self.list.push(stream);
    }

    /// Removes stream `id` and remembers how it closed.
    pub(super) fn remove(&mut self, id: u32, how: Closed) -> Option<Stream> {
        self.note_closed(id, how);
        let i = self.list.iter().position(|s| s.id == id)?;
        let s = self.list.swap_remove(i);
        if self.list.is_empty() && self.list.capacity() > 64 {
            self.list = Vec::new();
        }
        Some(s)
    }

    pub(super) fn note_closed(&mut self, id: u32, how: Closed) {
        if let Some(slot) = self.closed.iter_mut().find(|(i, _)| *i == id) {
            slot.1 = Some(how);
            return;
        }
        self.closed[self.next_closed] = (id, Some(how));
        self.next_closed = (self.next_closed + 1) % CLOSED_MEMORY;
    }

    /// How `id` closed, if it closed recently.
    pub(super) fn closed_how(&self, id: u32) -> Option<Closed> {
        self.closed
            .iter()
            .find(|(i, _)| *i == id && id != 0)
            .and_then(|(_, how)| *how)
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Stream> {
        self.list.iter_mut()
    }
}
