//! The preface, SETTINGS, PING, GOAWAY, PRIORITY, unknown frames and frame sizes.

use super::*;
use crate::http2::frame::{PREFACE, code, flag, kind, setting};

#[test]
fn ferry_speaks_first_with_its_settings_and_connection_window() {
    let mut p = Peer::raw(Settings::default());
    let f = p.frames();
    assert_eq!(f[0].kind, kind::SETTINGS);
    let params: Vec<(u16, u32)> = f[0]
        .payload
        .chunks(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect();
    assert!(params.contains(&(setting::MAX_CONCURRENT_STREAMS, 128)));
    assert!(params.contains(&(setting::ENABLE_PUSH, 0)));
    assert_eq!((f[1].kind, f[1].id), (kind::WINDOW_UPDATE, 0));
    assert_eq!(f[1].u31(), (1 << 20) - 65_535);
}

#[test]
fn the_preface_may_come_in_pieces_and_must_be_exact() {
    let mut p = Peer::raw(Settings::default());
    p.frames();
    p.send(&PREFACE[..10]).unwrap();
    assert_eq!(p.input.len(), 10, "a partial preface waits");
    p.send(&PREFACE[10..]).unwrap();
    p.send(&settings(&[])).unwrap();
    assert!(p.one_frame().has(flag::ACK));

    let mut bad = Peer::raw(Settings::default());
    bad.frames();
    let r = bad.send(b"GET / HTTP/1.1\r\n");
    bad.expect_goaway(r, code::PROTOCOL_ERROR);
}

#[test]
fn the_first_frame_must_be_settings() {
    let mut p = Peer::raw(Settings::default());
    p.frames();
    let mut b = PREFACE.to_vec();
    b.extend(ping([0; 8]));
    let r = p.send(&b);
    p.expect_goaway(r, code::PROTOCOL_ERROR);
}

#[test]
fn settings_are_acknowledged_and_validated() {
    let mut p = Peer::new();
    p.send(&settings(&[(setting::ENABLE_PUSH, 0), (0x99, 7)]))
        .unwrap();
    let ack = p.one_frame();
    assert_eq!(
        (ack.kind, ack.flags, ack.payload.len()),
        (kind::SETTINGS, flag::ACK, 0)
    );

    let cases: [(Vec<u8>, u32); 7] = [
        (settings(&[(setting::ENABLE_PUSH, 2)]), code::PROTOCOL_ERROR),
        (
            settings(&[(setting::INITIAL_WINDOW_SIZE, 1 << 31)]),
            code::FLOW_CONTROL_ERROR,
        ),
        (
            settings(&[(setting::MAX_FRAME_SIZE, 16_383)]),
            code::PROTOCOL_ERROR,
        ),
        (
            settings(&[(setting::MAX_FRAME_SIZE, 1 << 24)]),
            code::PROTOCOL_ERROR,
        ),
        (
            frame(kind::SETTINGS, 0, 0, &[0, 1, 0]),
            code::FRAME_SIZE_ERROR,
        ),
        (
            frame(kind::SETTINGS, flag::ACK, 0, &[0; 6]),
            code::FRAME_SIZE_ERROR,
        ),
        (frame(kind::SETTINGS, 0, 1, &[]), code::PROTOCOL_ERROR),
    ];
    for (bytes, want) in cases {
        let mut p = Peer::new();
        let r = p.send(&bytes);
        p.expect_goaway(r, want);
    }
}

#[test]
fn a_larger_max_frame_size_lets_ferry_send_larger_frames() {
    let mut p = Peer::new();
    p.send(&settings(&[
        (setting::MAX_FRAME_SIZE, 20_000),
        (setting::INITIAL_WINDOW_SIZE, 100_000),
    ]))
    .unwrap();
    p.send(&window_update(0, 100_000)).unwrap();
    p.open(1, true);
    p.frames();
    p.conn.send_headers(1, 200, std::iter::empty(), false);
    p.conn.send_data(1, &[7; 20_001], true);
    let f = p.frames();
    let sizes: Vec<usize> = f[1..].iter().map(|f| f.payload.len()).collect();
    assert_eq!(sizes, [20_000, 1]);
}

#[test]
fn ping_is_answered_with_its_payload_and_acks_are_not() {
    let mut p = Peer::new();
    p.send(&ping(*b"12345678")).unwrap();
    let f = p.one_frame();
    assert_eq!(
        (f.kind, f.flags, &f.payload[..]),
        (kind::PING, flag::ACK, &b"12345678"[..])
    );
    p.send(&frame(kind::PING, flag::ACK, 0, &[0; 8])).unwrap();
    assert!(p.frames().is_empty());

    let r = p.send(&frame(kind::PING, 0, 0, &[0; 7]));
    p.expect_goaway(r, code::FRAME_SIZE_ERROR);
    let mut p = Peer::new();
    let r = p.send(&frame(kind::PING, 0, 1, &[0; 8]));
    p.expect_goaway(r, code::PROTOCOL_ERROR);
}

#[test]
fn frames_larger_than_ferry_accepts_are_a_frame_size_error() {
    let mut p = Peer::new();
    let r = p.send(&data(1, &[0; 16_385], false)[..9]);
    p.expect_goaway(r, code::FRAME_SIZE_ERROR);
}

#[test]
fn unknown_frame_types_are_ignored() {
    let mut p = Peer::new();
    p.send(&frame(0x42, 0xff, 0, b"whatever")).unwrap();
    p.send(&frame(0x42, 0, 9, b"")).unwrap();
    assert!(p.frames().is_empty());
    assert!(p.events().is_empty());
    p.open(1, true);
}

#[test]
fn priority_is_ignored_but_checked() {
    let mut p = Peer::new();
    // On an idle stream: allowed, and it opens nothing.
    p.send(&frame(kind::PRIORITY, 0, 5, &[0, 0, 0, 3, 16]))
        .unwrap();
    assert!(p.frames().is_empty());
    p.open(1, false);
    p.send(&frame(kind::PRIORITY, 0, 1, &[0, 0, 0, 1, 16]))
        .unwrap();
    let f = p.one_frame();
    assert_eq!(
        (f.kind, f.id, f.code()),
        (kind::RST_STREAM, 1, code::PROTOCOL_ERROR)
    );
    assert!(matches!(
        p.events()[..],
        [Event::Reset {
            id: 1,
            code: code::PROTOCOL_ERROR
        }]
    ));
    p.send(&frame(kind::PRIORITY, 0, 3, &[0; 4])).unwrap();
    let f = p.one_frame();
    assert_eq!(
        (f.kind, f.id, f.code()),
        (kind::RST_STREAM, 3, code::FRAME_SIZE_ERROR)
    );
    let r = p.send(&frame(kind::PRIORITY, 0, 0, &[0; 5]));
    p.expect_goaway(r, code::PROTOCOL_ERROR);
}

#[test]
fn push_promise_from_a_client_is_a_protocol_error() {
    let mut p = Peer::new();
    p.open(1, false);
    let r = p.send(&frame(
        kind::PUSH_PROMISE,
        flag::END_HEADERS,
        1,
        &[0, 0, 0, 2],
    ));
    p.expect_goaway(r, code::PROTOCOL_ERROR);
}

#[test]
fn a_client_goaway_becomes_an_event() {
    let mut p = Peer::new();
    p.open(1, true);
    p.send(&frame(kind::GOAWAY, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 2, b'x']))
        .unwrap();
    assert!(matches!(
        p.events()[..],
        [Event::GoAway {
            last_id: 0,
            code: 2
        }]
    ));
    let r = p.send(&frame(kind::GOAWAY, 0, 1, &[0; 8]));
    p.expect_goaway(r, code::PROTOCOL_ERROR);
}

#[test]
fn go_away_names_the_last_stream_and_later_streams_are_ignored() {
    let mut p = Peer::new();
    p.open(1, false);
    p.conn.go_away();
    p.conn.go_away();
    let f = p.one_frame();
    assert_eq!(
        (f.kind, f.u31(), f.code()),
        (kind::GOAWAY, 1, code::NO_ERROR)
    );
    p.send(&get(3)).unwrap();
    p.send(&data(3, b"late", true)).unwrap();
    assert!(p.events().is_empty(), "stream 3 is past the GOAWAY");
    // Stream 1 still finishes.
    p.send(&data(1, b"body", true)).unwrap();
    assert_eq!(p.events().len(), 1);
    p.conn.send_headers(1, 204, std::iter::empty(), true);
    assert_eq!(p.conn.active_streams(), 0);
}

#[test]
fn a_bad_header_block_is_a_compression_error() {
    let mut p = Peer::new();
    // A literal whose name length runs past the block.
    let r = p.send(&frame(
        kind::HEADERS,
        flag::END_HEADERS,
        1,
        &[0x00, 0x7e, b'a'],
    ));
    p.expect_goaway(r, code::COMPRESSION_ERROR);
}

#[test]
fn nothing_is_sent_after_a_connection_error() {
    let mut p = Peer::new();
    p.open(1, true);
    let r = p.send(&frame(kind::PING, 0, 0, &[0; 3]));
    p.expect_goaway(r, code::FRAME_SIZE_ERROR);
    p.conn.send_headers(1, 200, std::iter::empty(), true);
    p.conn.send_data(1, b"x", true);
    p.conn.reset(1, code::CANCEL);
    p.conn.go_away();
    assert!(p.conn.output().is_empty());
    assert_eq!((p.conn.active_streams(), p.conn.send_capacity(1)), (0, 0));
}

#[test]
fn the_peers_header_table_size_reaches_the_encoder() {
    let mut p = Peer::new();
    p.send(&settings(&[(setting::HEADER_TABLE_SIZE, 0)]))
        .unwrap();
    p.open(1, true);
    p.frames();
    let fields = [(&b"x-a"[..], &b"1"[..])];
    p.conn.send_headers(1, 200, fields.into_iter(), true);
    let f = p.frames();
    // RFC 7541 §6.3: the block opens with a dynamic table size update to 0.
    assert_eq!(f[0].payload[0], 0x20, "{f:?}");
    assert_eq!(f[0].fields[1], ("x-a".to_string(), "1".to_string()));
}
