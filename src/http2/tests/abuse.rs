//! The limits against abusive clients: rapid reset, control-frame floods whose answers are
//! never read, empty frames, CONTINUATION floods, over-large request heads.

use super::*;
use crate::http2::frame::{code, flag, kind};

#[test]
fn rapid_reset_is_met_with_enhance_your_calm() {
    let mut p = Peer::new();
    let mut result = Ok(());
    let mut id = 1;
    while result.is_ok() && id < 2_000 {
        let mut b = get(id);
        b.extend(rst(id, code::CANCEL));
        result = p.send(&b);
        id += 2;
    }
    // 2 × 128 streams reset before their response, and one more.
    assert_eq!(id, 1 + 2 * 257);
    p.expect_goaway(result, code::ENHANCE_YOUR_CALM);
}

#[test]
fn streams_that_finish_pay_back_their_resets() {
    let mut p = Peer::new();
    for i in 0..2_000 {
        let id = 1 + 4 * i;
        p.send(&get(id)).unwrap();
        p.send(&rst(id, code::CANCEL)).unwrap();
        p.events();
        p.open(id + 2, true);
        p.conn.send_headers(id + 2, 204, std::iter::empty(), true);
        p.frames();
    }
}

#[test]
fn unread_ping_answers_are_a_flood() {
    let mut p = Peer::new();
    let pings: Vec<u8> = (0..1_025).flat_map(|_| ping([1; 8])).collect();
    let r = p.send(&pings);
    p.expect_goaway(r, code::ENHANCE_YOUR_CALM);

    // The same number, read as they come, are fine.
    let mut p = Peer::new();
    for _ in 0..3_000 {
        p.send(&ping([1; 8])).unwrap();
        p.frames();
    }
}

#[test]
fn unread_settings_answers_are_a_flood() {
    let mut p = Peer::new();
    let many: Vec<u8> = (0..1_025).flat_map(|_| settings(&[])).collect();
    let r = p.send(&many);
    p.expect_goaway(r, code::ENHANCE_YOUR_CALM);
}

#[test]
fn empty_data_frames_are_a_flood() {
    let mut p = Peer::new();
    p.send(&post(1, &[])).unwrap();
    let empties: Vec<u8> = (0..257).flat_map(|_| data(1, b"", false)).collect();
    let r = p.send(&empties);
    p.expect_goaway(r, code::ENHANCE_YOUR_CALM);
}

#[test]
fn endless_continuation_is_a_flood() {
    let mut p = Peer::new();
    let mut b = frame(kind::HEADERS, 0, 1, &block(&GET));
    let junk = vec![0x00; 8_000];
    for _ in 0..17 {
        b.extend(frame(kind::CONTINUATION, 0, 1, &junk));
    }
    let r = p.send(&b);
    p.expect_goaway(r, code::ENHANCE_YOUR_CALM);

    let mut p = Peer::new();
    let mut b = frame(kind::HEADERS, 0, 1, &block(&GET));
    for _ in 0..300 {
        b.extend(frame(kind::CONTINUATION, 0, 1, &[]));
    }
    let r = p.send(&b);
    p.expect_goaway(r, code::ENHANCE_YOUR_CALM);
}

#[test]
fn a_header_block_within_the_bound_passes_through_continuation() {
    let mut p = Peer::new();
    let value = "v".repeat(10_000);
    let b = block(&[GET[0], GET[1], GET[2], GET[3], ("x-long", &value)]);
    let mut bytes = frame(kind::HEADERS, flag::END_STREAM, 1, &b[..8_000]);
    bytes.extend(frame(kind::CONTINUATION, flag::END_HEADERS, 1, &b[8_000..]));
    p.send(&bytes).unwrap();
    assert!(matches!(p.events()[..], [Event::Request { id: 1, .. }]));
}

/// A request head over the list limit, cheap to send: one field indexed, then named many
/// times by its index.
fn over_large(id: u32) -> Vec<u8> {
    let mut b = block(&GET);
    b.extend(indexed_literal("x-big", &"v".repeat(100)));
    b.extend([0x80 | 62; 20]);
    frame(kind::HEADERS, flag::END_HEADERS | flag::END_STREAM, id, &b)
}

fn small_list() -> Settings {
    Settings {
        max_header_list_size: 1_000,
        max_concurrent_streams: 4,
        ..Settings::default()
    }
}

#[test]
fn over_large_heads_count_as_streams() {
    let mut p = Peer::with(small_list());
    for id in [1, 3, 5, 7] {
        p.send(&over_large(id)).unwrap();
    }
    assert_eq!(p.events().len(), 4);
    assert!(p.frames().is_empty());
    // Unanswered, they hold the concurrency limit like any stream.
    p.send(&over_large(9)).unwrap();
    let f = p.one_frame();
    assert_eq!((f.id, f.code()), (9, code::REFUSED_STREAM));
    assert!(p.events().is_empty());
}

#[test]
fn over_large_heads_reset_at_once_are_a_rapid_reset() {
    let mut p = Peer::with(small_list());
    let mut result = Ok(());
    let mut id = 1;
    while result.is_ok() && id < 2_000 {
        let mut b = over_large(id);
        b.extend(rst(id, code::CANCEL));
        result = p.send(&b);
        id += 2;
    }
    p.expect_goaway(result, code::ENHANCE_YOUR_CALM);
}
