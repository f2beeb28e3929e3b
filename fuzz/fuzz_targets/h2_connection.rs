//! `ferry::http2::Connection::recv` on arbitrary bytes after a valid client preface (the
//! HTTP/2 frame layer, HPACK and the stream state machine: what an HTTP/2 client controls),
//! with a small driver that answers requests, consumes bodies and writes the output, so the
//! send side runs against whatever state the client's frames left.
//!
//! Invariants, beyond "no panic": once `recv` fails it keeps failing; a connection that
//! failed queued GOAWAY last and sends nothing more; `send_capacity` is never more than the windows allow (`send_data`
//! debug-asserts it).
#![no_main]

use bytes::BytesMut;
use ferry::http2::frame::{PREFACE, kind};
use ferry::http2::{Connection, Event, Settings};
use libfuzzer_sys::fuzz_target;

/// A driver's answer to each event: a response echoing the request's size (after an interim
/// 100 for some), 431 for an over-large head, bodies released as they come, some streams
/// reset.
fn drive(conn: &mut Connection, events: &mut Vec<Event>, knobs: u8) {
    for event in events.drain(..) {
        match event {
            Event::Request { id, head, end_stream } => {
                let fields: Vec<(&[u8], &[u8])> = head.fields().collect();
                let size = head.method().len() + head.scheme().len() + head.path().len();
                let _ = (head.authority(), head.protocol(), head.content_length());
                if knobs & 1 != 0 && !end_stream {
                    conn.reset(id, 8);
                    continue;
                }
                if knobs & 0x80 != 0 && !end_stream {
                    conn.send_interim(id, 100);
                }
                conn.send_headers(id, 200, fields.into_iter(), false);
                let body = vec![b'x'; size.min(conn.send_capacity(id))];
                if knobs & 2 != 0 {
                    conn.send_data(id, &body, true);
                } else {
                    let max = conn.send_capacity(id).min(100_000);
                    let _ = conn.send_data_with(id, max, true, |buf| {
                        buf.fill(b'y');
                        Ok(buf.len() / 2 + usize::from(knobs & 4 != 0) * buf.len() / 2)
                    });
                }
            }
            Event::HeadTooLarge { id, .. } => conn.send_headers(id, 431, std::iter::empty(), true),
            Event::Data { id, data, end_stream } => {
                conn.release(id, data.len());
                if end_stream {
                    conn.end_stream(id);
                }
            }
            Event::End { id } => conn.end_stream(id),
            Event::Reset { id, .. } => assert_eq!(conn.send_capacity(id), 0),
            Event::GoAway { .. } => conn.go_away(),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks how the input is cut into reads and how the driver behaves.
    let Some((&knobs, rest)) = data.split_first() else {
        return;
    };
    let mut conn = Connection::new(Settings {
        max_concurrent_streams: 8,
        initial_window_size: 1_000,
        connection_window: 70_000,
        max_header_list_size: 4_096,
        ..Settings::default()
    });
    let mut input = BytesMut::from(&PREFACE[..]);
    let mut events = Vec::new();
    let read_size = 1 + usize::from(knobs >> 3) * 11;
    let mut failed = None;
    for piece in rest.chunks(read_size) {
        input.extend_from_slice(piece);
        let result = conn.recv(&mut input, &mut events);
        let before = conn.output().len();
        drive(&mut conn, &mut events, knobs);
        if result.is_err() {
            assert_eq!(conn.output().len(), before, "nothing sent after a connection error");
        }
        if conn.take_window_opened() {
            for id in (1..64).step_by(2) {
                assert!(conn.send_capacity(id) <= (1 << 31) - 1);
            }
        }
        if let Err(e) = result {
            let out = conn.output();
            assert!(out.len() >= 17, "GOAWAY queued");
            assert_eq!(out[out.len() - 17 + 3], kind::GOAWAY, "GOAWAY last");
            failed = Some(e);
            break;
        }
        let n = conn.output().len();
        conn.written(if knobs & 0x40 != 0 { n } else { n / 2 });
    }
    if let Some(e) = failed {
        assert_eq!(conn.recv(&mut input, &mut events), Err(e));
    }
    let _ = conn.active_streams();
});
