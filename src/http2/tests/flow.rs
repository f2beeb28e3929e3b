//! Flow control both ways, the send calls, and the output buffer.

use super::*;
use crate::http2::frame::{code, flag, kind, setting};

fn small_windows() -> Settings {
    Settings {
        initial_window_size: 100,
        connection_window: 65_535,
        ..Settings::default()
    }
}

#[test]
fn data_beyond_the_stream_window_is_a_flow_control_error() {
    let mut p = Peer::with(small_windows());
    p.send(&post(1, &[])).unwrap();
    p.send(&data(1, &[0; 100], false)).unwrap();
    let r = p.send(&data(1, &[0; 1], false));
    p.expect_goaway(r, code::FLOW_CONTROL_ERROR);
}

#[test]
fn data_beyond_the_connection_window_is_a_flow_control_error() {
    let settings = Settings {
        initial_window_size: 1 << 20,
        connection_window: 65_535,
        ..Settings::default()
    };
    let mut p = Peer::with(settings);
    p.send(&post(1, &[])).unwrap();
    for _ in 0..3 {
        p.send(&data(1, &[0; 16_384], false)).unwrap();
    }
    p.send(&data(1, &[0; 16_383], false)).unwrap();
    let r = p.send(&data(1, &[0; 1], false));
    p.expect_goaway(r, code::FLOW_CONTROL_ERROR);
}

#[test]
fn released_bytes_reopen_the_windows_in_batches() {
    let mut p = Peer::with(small_windows());
    p.send(&post(1, &[])).unwrap();
    p.send(&data(1, &[0; 40], false)).unwrap();
    p.conn.release(1, 40);
    assert!(p.frames().is_empty(), "under half a window: no update yet");
    p.send(&data(1, &[0; 60], false)).unwrap();
    p.conn.release(1, 60);
    let f = p.one_frame();
    assert_eq!((f.kind, f.id, f.u31()), (kind::WINDOW_UPDATE, 1, 100));
    // The stream may now send 100 more.
    p.send(&data(1, &[0; 100], false)).unwrap();
    // Releasing more than it holds counts only what it holds.
    p.conn.release(1, 1_000);
    assert_eq!(p.one_frame().u31(), 100);
}

#[test]
fn the_connection_window_reopens_at_half() {
    let settings = Settings {
        initial_window_size: 65_535,
        connection_window: 65_535,
        ..Settings::default()
    };
    let mut p = Peer::with(settings);
    p.send(&post(1, &[])).unwrap();
    p.send(&data(1, &[0; 16_000], false)).unwrap();
    p.send(&data(1, &[0; 16_000], false)).unwrap();
    p.conn.release(1, 32_000);
    assert!(p.frames().is_empty());
    p.send(&data(1, &[0; 1_000], false)).unwrap();
    p.conn.release(1, 1_000);
    let f = p.frames();
    assert!(
        f.iter()
            .any(|f| f.kind == kind::WINDOW_UPDATE && f.id == 0 && f.u31() == 33_000),
        "{f:?}"
    );
}

#[test]
fn padding_and_data_for_closed_streams_are_given_back() {
    let settings = Settings {
        initial_window_size: 65_535,
        connection_window: 65_535,
        ..Settings::default()
    };
    let mut p = Peer::with(settings);
    p.send(&post(1, &[])).unwrap();
    p.conn.reset(1, code::CANCEL);
    p.frames();
    // 33,000 bytes in flight when ferry reset the stream: the connection window comes back.
    for _ in 0..3 {
        p.send(&data(1, &[0; 11_000], false)).unwrap();
    }
    let f = p.one_frame();
    assert_eq!((f.kind, f.id, f.u31()), (kind::WINDOW_UPDATE, 0, 33_000));
    // Padding never reaches the driver; it is given back without a release.
    p.send(&post(3, &[])).unwrap();
    let mut padded = vec![250];
    padded.extend([0; 250]);
    for _ in 0..140 {
        p.send(&frame(kind::DATA, flag::PADDED, 3, &padded))
            .unwrap();
    }
    let f = p.frames();
    assert!(
        f.iter().any(|f| f.kind == kind::WINDOW_UPDATE && f.id == 3),
        "{f:?}"
    );
    assert!(
        f.iter().any(|f| f.kind == kind::WINDOW_UPDATE && f.id == 0),
        "{f:?}"
    );
}

#[test]
fn send_capacity_is_the_smaller_window_and_updates_raise_it() {
    let mut p = Peer::new();
    p.send(&settings(&[(setting::INITIAL_WINDOW_SIZE, 10)]))
        .unwrap();
    p.open(1, true);
    p.frames();
    assert_eq!(p.conn.send_capacity(1), 10);
    assert_eq!(p.conn.send_capacity(3), 0, "no such stream");
    p.conn.send_headers(1, 200, std::iter::empty(), false);
    p.conn.send_data(1, b"0123456789", false);
    assert_eq!(p.conn.send_capacity(1), 0);
    assert!(!p.conn.take_window_opened());
    p.send(&window_update(1, 5)).unwrap();
    assert!(p.conn.take_window_opened());
    assert!(!p.conn.take_window_opened());
    assert_eq!(p.conn.send_capacity(1), 5);
    // The connection window (65,535 - 10) now binds once the stream's is large.
    p.send(&window_update(1, 1 << 20)).unwrap();
    assert_eq!(p.conn.send_capacity(1), 65_525);
    p.send(&window_update(0, 100)).unwrap();
    assert_eq!(p.conn.send_capacity(1), 65_625);
}

#[test]
fn a_settings_change_moves_open_stream_windows_even_below_zero() {
    let mut p = Peer::new();
    p.open(1, true);
    p.conn.send_headers(1, 200, std::iter::empty(), false);
    p.conn.send_data(1, &[0; 1_000], false);
    p.frames();
    p.send(&settings(&[(setting::INITIAL_WINDOW_SIZE, 500)]))
        .unwrap();
    assert_eq!(p.conn.send_capacity(1), 0, "window 500 - 1000 = -500");
    p.send(&window_update(1, 600)).unwrap();
    assert_eq!(p.conn.send_capacity(1), 100);
    p.send(&settings(&[(setting::INITIAL_WINDOW_SIZE, 1_500)]))
        .unwrap();
    assert!(p.conn.take_window_opened());
    assert_eq!(p.conn.send_capacity(1), 1_100);
    // A change that pushes a window past 2^31-1 is a connection error.
    p.send(&window_update(1, (1 << 31) - 1 - 1_100)).unwrap();
    let r = p.send(&settings(&[(setting::INITIAL_WINDOW_SIZE, 1_501)]));
    p.expect_goaway(r, code::FLOW_CONTROL_ERROR);
}

#[test]
fn window_overflow_and_zero_increments() {
    let mut p = Peer::new();
    p.open(1, false);
    p.send(&window_update(1, (1 << 31) - 1)).unwrap();
    let f = p.one_frame();
    assert_eq!(
        (f.kind, f.id, f.code()),
        (kind::RST_STREAM, 1, code::FLOW_CONTROL_ERROR)
    );
    assert!(matches!(p.events()[..], [Event::Reset { id: 1, .. }]));
    p.open(3, false);
    p.send(&window_update(3, 0)).unwrap();
    assert_eq!(p.one_frame().code(), code::PROTOCOL_ERROR);
    let r = p.send(&window_update(0, (1 << 31) - 65_535));
    p.expect_goaway(r, code::FLOW_CONTROL_ERROR);
    let mut p = Peer::new();
    let r = p.send(&window_update(0, 0));
    p.expect_goaway(r, code::PROTOCOL_ERROR);
    let mut p = Peer::new();
    let r = p.send(&frame(kind::WINDOW_UPDATE, 0, 0, &[0, 0, 1]));
    p.expect_goaway(r, code::FRAME_SIZE_ERROR);
}

#[test]
fn data_is_split_at_the_peers_frame_size() {
    let mut p = Peer::new();
    p.open(1, true);
    p.conn.send_headers(1, 200, std::iter::empty(), false);
    p.conn.send_data(1, &[1; 40_000], true);
    let f = p.frames();
    let data: Vec<(usize, u8)> = f[1..].iter().map(|f| (f.payload.len(), f.flags)).collect();
    assert_eq!(data, [(16_384, 0), (16_384, 0), (7_232, flag::END_STREAM)]);
    assert_eq!(p.conn.active_streams(), 0);
}

#[test]
fn large_response_heads_continue_in_continuation_frames() {
    let mut p = Peer::new();
    p.open(1, true);
    let big = vec![b'x'; 40_000];
    let fields = [(&b"x-big"[..], &big[..]), (b"x-small", b"1")];
    p.conn.send_headers(1, 200, fields.into_iter(), true);
    let f = p.frames();
    let kinds: Vec<(u8, u8, usize)> = f
        .iter()
        .map(|f| (f.kind, f.flags, f.payload.len()))
        .collect();
    assert_eq!(kinds[0].0, kind::HEADERS);
    assert_eq!(kinds[0].1, flag::END_STREAM);
    assert_eq!(kinds[0].2, 16_384);
    assert!(kinds[1..].iter().all(|k| k.0 == kind::CONTINUATION));
    assert_eq!(kinds.last().unwrap().1, flag::END_HEADERS);
    assert_eq!(f[0].fields[1].1.len(), 40_000);
    assert_eq!(f[0].fields[2], ("x-small".to_string(), "1".to_string()));
}

#[test]
fn send_data_with_fills_the_frame_in_place() {
    let mut p = Peer::new();
    p.open(1, true);
    p.conn.send_headers(1, 200, std::iter::empty(), false);
    p.frames();
    // A short read: no END_STREAM.
    let n = p
        .conn
        .send_data_with(1, 10, true, |buf| {
            assert_eq!(buf.len(), 10);
            buf[..4].copy_from_slice(b"abcd");
            Ok(4)
        })
        .unwrap();
    assert_eq!(n, 4);
    // An error leaves the output as it was.
    let e = p
        .conn
        .send_data_with(1, 6, true, |_| Err(std::io::Error::other("disk")))
        .unwrap_err();
    assert_eq!(e.to_string(), "disk");
    // More than a frame's worth: one frame of the peer's max size.
    let n = p
        .conn
        .send_data_with(1, 20_000, false, |b| Ok(b.len()))
        .unwrap();
    assert_eq!(n, 16_384);
    let n = p.conn.send_data_with(1, 6, true, |b| {
        b.copy_from_slice(b"efghij");
        Ok(6)
    });
    assert_eq!(n.unwrap(), 6);
    let f = p.frames();
    let got: Vec<(usize, u8)> = f.iter().map(|f| (f.payload.len(), f.flags)).collect();
    assert_eq!(got, [(4, 0), (16_384, 0), (6, flag::END_STREAM)]);
    assert_eq!(&f[0].payload, b"abcd");
    assert_eq!(&f[2].payload, b"efghij");
    assert_eq!(p.conn.active_streams(), 0);
    assert_eq!(
        p.conn
            .send_data_with(1, 0, true, |_| unreachable!())
            .unwrap(),
        0
    );
    assert_eq!(p.conn.send_capacity(1), 0);
}

#[test]
fn end_stream_sends_an_empty_data_frame() {
    let mut p = Peer::new();
    p.open(1, true);
    p.conn.send_headers(1, 200, std::iter::empty(), false);
    p.conn.end_stream(1);
    let f = p.frames();
    assert_eq!(
        (f[1].kind, f[1].flags, f[1].payload.len()),
        (kind::DATA, flag::END_STREAM, 0)
    );
}

#[test]
fn the_output_buffer_is_released_when_it_drains_large() {
    let mut p = Peer::new();
    p.send(&window_update(0, 1 << 20)).unwrap();
    p.send(&settings(&[(setting::INITIAL_WINDOW_SIZE, 1 << 20)]))
        .unwrap();
    p.open(1, true);
    p.frames();
    p.conn.send_headers(1, 200, std::iter::empty(), false);
    p.conn.send_data(1, &[0; 200_000], true);
    assert!(p.conn.out.capacity() >= 200_000);
    let total = p.conn.output().len();
    p.conn.written(100);
    assert_eq!(p.conn.output().len(), total - 100);
    p.conn.written(total - 100);
    assert!(p.conn.output().is_empty());
    assert_eq!(p.conn.out.capacity(), 0);
}

#[test]
fn half_written_output_is_moved_down_and_kept_in_order() {
    let mut p = Peer::new();
    p.open(1, true);
    p.conn.send_headers(1, 200, std::iter::empty(), false);
    p.conn.send_data(1, &[5; 60_000], false);
    let first = p.conn.output()[..9].to_vec();
    let len = p.conn.output().len();
    p.conn.written(50_000);
    assert_eq!(p.conn.out_head, 0, "compacted");
    assert_eq!(p.conn.output().len(), len - 50_000);
    assert_ne!(first, p.conn.output()[..9]);
}

#[test]
fn an_idle_connection_can_shed_its_buffers() {
    let mut p = Peer::new();
    p.open(1, true);
    p.conn.send_headers(1, 200, std::iter::empty(), true);
    p.conn.shrink_idle();
    assert!(!p.conn.output().is_empty(), "unwritten output is kept");
    p.frames();
    p.conn.shrink_idle();
    assert_eq!(p.conn.out.capacity(), 0);
    p.open(3, true);
    p.conn.send_headers(3, 204, std::iter::empty(), true);
    assert_eq!(p.frames()[0].fields[0].1, "204");
}

#[test]
fn a_setting_repeated_in_one_frame_moves_windows_by_the_net_change() {
    let mut p = Peer::new();
    p.open(1, true);
    let many: Vec<(u16, u32)> = (0..1_000)
        .map(|i| (setting::INITIAL_WINDOW_SIZE, i * 1_000))
        .chain([(setting::INITIAL_WINDOW_SIZE, 70_000)])
        .collect();
    p.send(&settings(&many)).unwrap();
    assert_eq!(
        p.conn.send_capacity(1),
        65_535,
        "the connection window binds"
    );
    p.send(&window_update(0, 10_000)).unwrap();
    assert_eq!(p.conn.send_capacity(1), 70_000);
}

#[test]
fn a_body_still_gets_window_after_the_response_ended() {
    let mut p = Peer::with(small_windows());
    p.send(&post(1, &[])).unwrap();
    p.conn.send_headers(1, 200, std::iter::empty(), true);
    p.frames();
    p.send(&data(1, &[0; 100], false)).unwrap();
    p.conn.release(1, 100);
    let f = p.one_frame();
    assert_eq!((f.kind, f.id, f.u31()), (kind::WINDOW_UPDATE, 1, 100));
}
