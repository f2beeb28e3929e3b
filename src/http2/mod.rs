//! STUB of ferry's HTTP/2 protocol core (the interface agreed in http2-api.md), so the driver
//! in `frontend::h2` builds before the real core lands. Reverted when it does.
#![allow(
    clippy::unimplemented,
    clippy::needless_pass_by_value,
    clippy::ptr_arg,
    unused_variables,
    dead_code,
    reason = "a throwaway stub of the interface"
)]

use bytes::BytesMut;

/// What ferry announces and enforces.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub max_concurrent_streams: u32,
    pub initial_window_size: u32,
    pub connection_window: u32,
    pub max_frame_size: u32,
    pub max_header_list_size: u32,
    pub header_table_size: u32,
}

/// A request's head as HTTP/2 sent it, validated.
pub struct Head {
    buf: Vec<u8>,
}

impl Head {
    pub fn method(&self) -> &[u8] {
        unimplemented!()
    }
    pub fn scheme(&self) -> &[u8] {
        unimplemented!()
    }
    pub fn authority(&self) -> Option<&[u8]> {
        unimplemented!()
    }
    pub fn path(&self) -> &[u8] {
        unimplemented!()
    }
    pub fn protocol(&self) -> Option<&[u8]> {
        unimplemented!()
    }
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        std::iter::empty()
    }
}

pub enum Event {
    Request {
        id: u32,
        head: Head,
        end_stream: bool,
    },
    Data {
        id: u32,
        data: bytes::Bytes,
        end_stream: bool,
    },
    End {
        id: u32,
    },
    Reset {
        id: u32,
        code: u32,
    },
    GoAway {
        last_id: u32,
        code: u32,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("http/2 connection error {code}: {reason}")]
pub struct ConnError {
    pub code: u32,
    pub reason: &'static str,
}

pub struct Connection {
    out: Vec<u8>,
}

impl Connection {
    pub fn new(settings: Settings) -> Connection {
        unimplemented!()
    }
    pub fn recv(&mut self, input: &mut BytesMut, events: &mut Vec<Event>) -> Result<(), ConnError> {
        unimplemented!()
    }
    pub fn output(&self) -> &[u8] {
        unimplemented!()
    }
    pub fn written(&mut self, n: usize) {
        unimplemented!()
    }
    pub fn send_headers<'a>(
        &mut self,
        id: u32,
        status: u16,
        fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
        end_stream: bool,
    ) {
        unimplemented!()
    }
    pub fn send_capacity(&self, id: u32) -> usize {
        unimplemented!()
    }
    pub fn send_data(&mut self, id: u32, data: &[u8], end_stream: bool) {
        unimplemented!()
    }
    pub fn send_data_with(
        &mut self,
        id: u32,
        max: usize,
        end_stream: bool,
        fill: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
    ) -> std::io::Result<usize> {
        unimplemented!()
    }
    pub fn end_stream(&mut self, id: u32) {
        unimplemented!()
    }
    pub fn reset(&mut self, id: u32, code: u32) {
        unimplemented!()
    }
    pub fn release(&mut self, id: u32, n: usize) {
        unimplemented!()
    }
    pub fn go_away(&mut self) {
        unimplemented!()
    }
    pub fn take_window_opened(&mut self) -> bool {
        unimplemented!()
    }
    pub fn active_streams(&self) -> usize {
        unimplemented!()
    }
}
