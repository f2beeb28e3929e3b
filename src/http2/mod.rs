//! ferry's own HTTP/2 server protocol (RFC 9113), sans I/O: no sockets, no async, no clock.
//!
//! - `frame`: the 9-byte frame header, frame types, flags, SETTINGS ids and error codes.
//! - `hpack`: header compression (RFC 7541), the decoder for request heads and the encoder
//!   for response heads.
//! - `head`: a request head validated as §8.3 asks (`Head`).
//! - `conn`: the `Connection` state machine: the preface, SETTINGS, streams and their
//!   states, flow control both ways, GOAWAY, and the limits against abusive clients (rapid
//!   reset, control-frame and CONTINUATION floods). It parses what the client sent in place
//!   and queues what ferry sends in one output buffer per connection.
//!
//! What does not live here: sockets, TLS, timeouts, routing, and the request handlers — the
//! driver in `frontend::h2` owns those. Its loop, in a paragraph: write `output()` to the
//! socket and call `written(n)`; read from the socket into a `BytesMut` and call `recv`,
//! which turns the complete frames at its front into `Event`s (a request head, body bytes,
//! a reset, GOAWAY) and leaves any partial frame there; hand each event to its stream's
//! handler (one task per connection: handlers are state machines the driver polls, not
//! tasks), and answer `HeadTooLarge` with 431; for each response call `send_interim` for a
//! 100 if the client waits for one, `send_headers`, then `send_data` / `send_data_with` up to
//! `send_capacity(id)` (a file is pread straight into the frame), or `end_stream`; call
//! `release` as request-body bytes are consumed so the client may send more; when
//! `take_window_opened` says so, retry streams blocked on flow control. A `ConnError` from
//! `recv` has queued GOAWAY: write the output, then close. `go_away` starts a graceful
//! shutdown; the connection is done when `active_streams()` is 0 and the output is written.

mod conn;
pub mod frame;
mod head;
pub mod hpack;
mod recv_stream;
mod send;
mod settings;
mod stream;
#[cfg(test)]
mod tests;

pub use conn::{ConnError, Connection, Event};
pub use head::Head;
pub use settings::Settings;
