//! ferry's own HTTP/2 layer (RFC 9113), sans I/O: header compression (`hpack`) and, from
//! the core helper, frames and the connection state machine; the socket driver lives in
//! `frontend::h2`.

pub mod hpack;
