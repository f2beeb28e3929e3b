//! Requests and their streams: ids, states, CONTINUATION, padding, malformed heads,
//! trailers and Content-Length.

use super::*;
use crate::http2::frame::{code, flag, kind};

fn request_of(events: Vec<Event>) -> (u32, crate::http2::Head, bool) {
    match events.into_iter().next() {
        Some(Event::Request {
            id,
            head,
            end_stream,
        }) => (id, head, end_stream),
        e => panic!("expected a request, got {e:?}"),
    }
}

#[test]
fn a_get_is_a_request_and_its_response_closes_the_stream() {
    let mut p = Peer::new();
    p.send(&headers(
        1,
        &[GET[0], GET[1], GET[2], GET[3], ("accept", "*/*")],
        true,
    ))
    .unwrap();
    let (id, head, end_stream) = request_of(p.events());
    assert_eq!((id, end_stream), (1, true));
    assert_eq!((head.method(), head.path()), (&b"GET"[..], &b"/"[..]));
    assert_eq!(
        head.fields().collect::<Vec<_>>(),
        [(&b"accept"[..], &b"*/*"[..])]
    );
    assert_eq!(p.conn.active_streams(), 1);

    let fields = [(&b"content-type"[..], &b"text/plain"[..])];
    p.conn.send_headers(1, 200, fields.into_iter(), false);
    assert_eq!(p.conn.send_capacity(1), 65_535);
    p.conn.send_data(1, b"hello", true);
    let f = p.frames();
    assert_eq!(
        (f[0].kind, f[0].id, f[0].flags),
        (kind::HEADERS, 1, flag::END_HEADERS)
    );
    assert_eq!(
        f[0].fields,
        [
            (":status".to_string(), "200".to_string()),
            ("content-type".into(), "text/plain".into())
        ]
    );
    assert_eq!(
        (f[1].kind, f[1].flags, &f[1].payload[..]),
        (kind::DATA, flag::END_STREAM, &b"hello"[..])
    );
    assert_eq!(p.conn.active_streams(), 0);
    assert_eq!(p.conn.send_capacity(1), 0);
    // Sending on the closed stream does nothing.
    p.conn.send_data(1, b"more", true);
    p.conn.end_stream(1);
    assert!(p.frames().is_empty());
}

#[test]
fn a_body_arrives_as_data_events_without_padding() {
    let mut p = Peer::new();
    p.send(&post(1, &[])).unwrap();
    let (_, _, end_stream) = request_of(p.events());
    assert!(!end_stream);
    p.send(&data(1, b"abc", false)).unwrap();
    // Padded: pad length 4, "de", 4 bytes of padding.
    p.send(&frame(
        kind::DATA,
        flag::PADDED | flag::END_STREAM,
        1,
        b"\x04de\0\0\0\0",
    ))
    .unwrap();
    let ev = p.events();
    let got: Vec<(&[u8], bool)> = ev
        .iter()
        .map(|e| match e {
            Event::Data {
                id: 1,
                data,
                end_stream,
            } => (&data[..], *end_stream),
            e => panic!("{e:?}"),
        })
        .collect();
    assert_eq!(got, [(&b"abc"[..], false), (&b"de"[..], true)]);
    // Half-closed (remote): the response still goes out, then the stream is gone.
    assert_eq!(p.conn.active_streams(), 1);
    p.conn.send_headers(1, 204, std::iter::empty(), true);
    assert_eq!(p.conn.active_streams(), 0);
}

#[test]
fn padded_headers_and_bad_padding() {
    let mut p = Peer::new();
    let mut payload = vec![3];
    payload.extend(block(&GET));
    payload.extend([0, 0, 0]);
    p.send(&frame(
        kind::HEADERS,
        flag::PADDED | flag::END_HEADERS | flag::END_STREAM,
        1,
        &payload,
    ))
    .unwrap();
    request_of(p.events());
    p.open(3, false);
    let r = p.send(&frame(kind::DATA, flag::PADDED, 3, &[5, 1, 2]));
    p.expect_goaway(r, code::PROTOCOL_ERROR);
}

#[test]
fn stream_ids_must_be_odd_and_increasing() {
    let mut p = Peer::new();
    let r = p.send(&get(2));
    p.expect_goaway(r, code::PROTOCOL_ERROR);

    let mut p = Peer::new();
    p.open(5, true);
    let r = p.send(&get(3));
    p.expect_goaway(r, code::PROTOCOL_ERROR);
}

#[test]
fn frames_on_idle_streams_are_protocol_errors() {
    for bytes in [
        data(1, b"x", false),
        window_update(1, 1),
        rst(1, 0),
        window_update(2, 1),
    ] {
        let mut p = Peer::new();
        let r = p.send(&bytes);
        p.expect_goaway(r, code::PROTOCOL_ERROR);
    }
}

#[test]
fn data_on_a_half_closed_stream_is_stream_closed() {
    let mut p = Peer::new();
    p.open(1, true);
    p.send(&data(1, b"x", false)).unwrap();
    let f = p.one_frame();
    assert_eq!(
        (f.kind, f.id, f.code()),
        (kind::RST_STREAM, 1, code::STREAM_CLOSED)
    );
    assert!(matches!(
        p.events()[..],
        [Event::Reset {
            id: 1,
            code: code::STREAM_CLOSED
        }]
    ));
}

#[test]
fn frames_after_a_client_reset() {
    let mut p = Peer::new();
    p.open(1, false);
    p.send(&rst(1, code::CANCEL)).unwrap();
    assert!(matches!(
        p.events()[..],
        [Event::Reset {
            id: 1,
            code: code::CANCEL
        }]
    ));
    // WINDOW_UPDATE and RST_STREAM may cross: ignored.
    p.send(&window_update(1, 10)).unwrap();
    p.send(&rst(1, code::CANCEL)).unwrap();
    assert!(p.frames().is_empty());
    let r = p.send(&get(1));
    p.expect_goaway(r, code::STREAM_CLOSED);
}

#[test]
fn frames_after_ferry_resets_a_stream_are_ignored() {
    let mut p = Peer::new();
    p.open(1, false);
    p.conn.reset(1, code::CANCEL);
    let f = p.one_frame();
    assert_eq!((f.kind, f.code()), (kind::RST_STREAM, code::CANCEL));
    p.send(&data(1, b"in flight", false)).unwrap();
    p.send(&headers(1, &[("x-trailer", "1")], true)).unwrap();
    assert!(p.frames().is_empty());
    assert!(p.events().is_empty());
    assert_eq!(p.conn.active_streams(), 0);
}

#[test]
fn streams_past_the_concurrency_limit_are_refused_and_the_table_stays_in_step() {
    let settings = Settings {
        max_concurrent_streams: 2,
        ..Settings::default()
    };
    let mut p = Peer::with(settings);
    p.open(1, true);
    p.open(3, true);
    p.send(&get(5)).unwrap();
    let f = p.one_frame();
    assert_eq!(
        (f.kind, f.id, f.code()),
        (kind::RST_STREAM, 5, code::REFUSED_STREAM)
    );
    assert!(p.events().is_empty());
    p.conn.send_headers(1, 200, std::iter::empty(), true);
    p.frames();
    p.open(7, true);
}

#[test]
fn a_malformed_head_resets_its_stream_without_an_event() {
    let mut p = Peer::new();
    p.send(&headers(1, &[(":method", "GET"), (":path", "/")], true))
        .unwrap();
    let f = p.one_frame();
    assert_eq!(
        (f.kind, f.id, f.code()),
        (kind::RST_STREAM, 1, code::PROTOCOL_ERROR)
    );
    assert!(p.events().is_empty());
    p.send(&headers(
        3,
        &[GET[0], GET[1], GET[2], GET[3], ("Upper", "x")],
        true,
    ))
    .unwrap();
    assert_eq!(p.one_frame().code(), code::PROTOCOL_ERROR);
    // A self-dependent HEADERS priority.
    let mut payload = vec![0, 0, 0, 5, 16];
    payload.extend(block(&GET));
    p.send(&frame(
        kind::HEADERS,
        flag::PRIORITY | flag::END_HEADERS | flag::END_STREAM,
        5,
        &payload,
    ))
    .unwrap();
    assert_eq!(p.one_frame().code(), code::PROTOCOL_ERROR);
    // A proper priority is skipped.
    payload[3] = 1;
    p.send(&frame(
        kind::HEADERS,
        flag::PRIORITY | flag::END_HEADERS | flag::END_STREAM,
        7,
        &payload,
    ))
    .unwrap();
    request_of(p.events());
}

#[test]
fn a_head_over_the_list_limit_opens_its_stream_for_a_431() {
    // GET's pseudo-fields count 177 (RFC 9113 §6.5.2), x-big 187, x-more 138.
    let settings = Settings {
        max_header_list_size: 400,
        ..Settings::default()
    };
    let mut p = Peer::with(settings);
    let big = "v".repeat(150);
    // x-big is indexed: ferry's table must hold it as the client's does.
    let mut b = block(&GET);
    b.extend(indexed_literal("x-big", &big));
    b.extend(block(&[("x-more", &"m".repeat(100))]));
    p.send(&frame(
        kind::HEADERS,
        flag::END_HEADERS | flag::END_STREAM,
        1,
        &b,
    ))
    .unwrap();
    assert!(p.frames().is_empty(), "no reset");
    assert!(matches!(
        p.events()[..],
        [Event::HeadTooLarge {
            id: 1,
            end_stream: true
        }]
    ));
    assert_eq!(p.conn.active_streams(), 1);
    p.conn.send_headers(1, 431, std::iter::empty(), true);
    let f = p.one_frame();
    assert_eq!(
        (f.kind, f.id, f.flags),
        (kind::HEADERS, 1, flag::END_HEADERS | flag::END_STREAM)
    );
    assert_eq!(f.fields, [(":status".to_string(), "431".to_string())]);
    assert_eq!(p.conn.active_streams(), 0);
    // The next request names the indexed field by its index (62, RFC 7541 §2.3.3), with the
    // head within the limit again: it decodes to what the client meant.
    let mut b = block(&GET);
    b.push(0x80 | 62);
    p.send(&frame(
        kind::HEADERS,
        flag::END_HEADERS | flag::END_STREAM,
        3,
        &b,
    ))
    .unwrap();
    let (id, head, _) = request_of(p.events());
    assert_eq!(id, 3);
    assert_eq!(
        head.fields().collect::<Vec<_>>(),
        [(&b"x-big"[..], big.as_bytes())]
    );
}

#[test]
fn an_over_large_head_across_continuation_is_read_to_its_end() {
    // A 70 KB cookie (as `curl -H`): over the 16 KiB list limit, within the block bound.
    let mut p = Peer::new();
    let cookie = "c".repeat(70_000);
    let b = block(&[GET[0], GET[1], GET[2], GET[3], ("cookie", &cookie)]);
    let mut pieces = b.chunks(16_384).peekable();
    let mut bytes = frame(kind::HEADERS, flag::END_STREAM, 1, pieces.next().unwrap());
    while let Some(piece) = pieces.next() {
        let end = if pieces.peek().is_none() {
            flag::END_HEADERS
        } else {
            0
        };
        bytes.extend(frame(kind::CONTINUATION, end, 1, piece));
    }
    p.send(&bytes).unwrap();
    assert!(matches!(
        p.events()[..],
        [Event::HeadTooLarge {
            id: 1,
            end_stream: true
        }]
    ));
    p.conn.send_headers(1, 431, std::iter::empty(), true);
    p.frames();
    p.open(3, true);
}

#[test]
fn the_body_after_an_over_large_head_still_flows() {
    let settings = Settings {
        max_header_list_size: 200,
        ..Settings::default()
    };
    let mut p = Peer::with(settings);
    let big = "v".repeat(150);
    p.send(&post(1, &[("content-length", "5"), ("x-big", &big)]))
        .unwrap();
    assert!(matches!(
        p.events()[..],
        [Event::HeadTooLarge {
            id: 1,
            end_stream: false
        }]
    ));
    // Answered before the body is read; the body comes after and ends the stream.
    p.conn.send_headers(1, 431, std::iter::empty(), true);
    assert_eq!(p.one_frame().kind, kind::HEADERS);
    p.send(&data(1, b"hello", true)).unwrap();
    match &p.events()[..] {
        [
            Event::Data {
                id: 1,
                data,
                end_stream: true,
            },
        ] => assert_eq!(&data[..], b"hello"),
        e => panic!("expected the body, got {e:?}"),
    }
    p.conn.release(1, 5);
    assert_eq!(p.conn.active_streams(), 0);
    p.open(3, true);
}

#[test]
fn an_interim_response_comes_before_the_final_one() {
    let mut p = Peer::new();
    p.send(&post(1, &[("expect", "100-continue")])).unwrap();
    request_of(p.events());
    p.conn.send_interim(1, 100);
    let f = p.one_frame();
    assert_eq!(
        (f.kind, f.id, f.flags),
        (kind::HEADERS, 1, flag::END_HEADERS)
    );
    assert_eq!(f.fields, [(":status".to_string(), "100".to_string())]);
    p.send(&data(1, b"abc", true)).unwrap();
    p.events();
    p.conn.send_headers(1, 200, std::iter::empty(), false);
    let f = p.one_frame();
    assert_eq!(f.fields, [(":status".to_string(), "200".to_string())]);
    // Not after the final response, nor on a stream that is gone.
    p.conn.send_interim(1, 100);
    assert!(p.frames().is_empty());
    p.conn.end_stream(1);
    p.frames();
    p.conn.send_interim(1, 100);
    assert!(p.frames().is_empty());
}

#[test]
fn continuation_completes_a_head() {
    let mut p = Peer::new();
    let b = block(&GET);
    let mut bytes = frame(kind::HEADERS, flag::END_STREAM, 1, &b[..5]);
    bytes.extend(frame(kind::CONTINUATION, 0, 1, &b[5..20]));
    bytes.extend(frame(kind::CONTINUATION, flag::END_HEADERS, 1, &b[20..]));
    p.send(&bytes[..bytes.len() - 3]).unwrap();
    assert!(p.events().is_empty());
    p.send(&bytes[bytes.len() - 3..]).unwrap();
    let (id, head, end_stream) = request_of(p.events());
    assert_eq!(
        (id, end_stream, head.authority()),
        (1, true, Some(&b"example.com"[..]))
    );
}

#[test]
fn a_header_block_must_not_be_interrupted() {
    let b = block(&GET);
    let start = frame(kind::HEADERS, 0, 1, &b[..5]);
    for next in [
        ping([0; 8]),
        frame(kind::CONTINUATION, flag::END_HEADERS, 3, &b[5..]),
        frame(0x42, 0, 0, &[]),
    ] {
        let mut p = Peer::new();
        p.send(&start).unwrap();
        let r = p.send(&next);
        p.expect_goaway(r, code::PROTOCOL_ERROR);
    }
    let mut p = Peer::new();
    let r = p.send(&frame(kind::CONTINUATION, flag::END_HEADERS, 1, &b));
    p.expect_goaway(r, code::PROTOCOL_ERROR);
}

#[test]
fn trailers_end_the_body() {
    let mut p = Peer::new();
    p.send(&post(1, &[])).unwrap();
    p.send(&data(1, b"x", false)).unwrap();
    p.send(&headers(1, &[("x-checksum", "1")], true)).unwrap();
    let ev = p.events();
    assert!(matches!(
        ev[..],
        [
            Event::Request { .. },
            Event::Data { .. },
            Event::End { id: 1 }
        ]
    ));
    assert!(p.frames().is_empty());

    // Trailers without END_STREAM, or with a pseudo-field, reset the stream.
    for (id, t) in [
        (3, headers(3, &[("x", "1")], false)),
        (5, headers(5, &[(":path", "/")], true)),
    ] {
        p.send(&post(id, &[])).unwrap();
        p.events();
        p.send(&t).unwrap();
        let ev = p.events();
        assert!(
            matches!(
                ev[..],
                [Event::Reset {
                    code: code::PROTOCOL_ERROR,
                    ..
                }]
            ),
            "{ev:?}"
        );
        let f = p.one_frame();
        assert_eq!((f.kind, f.id), (kind::RST_STREAM, id));
    }
}

#[test]
fn content_length_must_match_the_data() {
    let cl = [("content-length", "3")];
    // More than announced.
    let mut p = Peer::new();
    p.send(&post(1, &cl)).unwrap();
    p.send(&data(1, b"abcd", false)).unwrap();
    let ev = p.events();
    assert!(
        matches!(
            ev[..],
            [
                Event::Request { .. },
                Event::Reset {
                    id: 1,
                    code: code::PROTOCOL_ERROR
                }
            ]
        ),
        "{ev:?}"
    );
    assert_eq!(p.one_frame().code(), code::PROTOCOL_ERROR);
    // Fewer, then END_STREAM.
    p.send(&post(3, &cl)).unwrap();
    p.send(&data(3, b"ab", false)).unwrap();
    p.send(&data(3, b"", true)).unwrap();
    let ev = p.events();
    assert!(matches!(ev[2..], [Event::Reset { id: 3, .. }]), "{ev:?}");
    p.frames();
    // Exactly.
    p.send(&post(5, &cl)).unwrap();
    p.send(&data(5, b"a", false)).unwrap();
    p.send(&data(5, b"bc", true)).unwrap();
    assert_eq!(p.events().len(), 3);
    assert!(p.frames().is_empty());
    // A head with END_STREAM that announces a body.
    let mut f = GET.to_vec();
    f.push(("content-length", "3"));
    p.send(&headers(7, &f, true)).unwrap();
    assert!(p.events().is_empty());
    assert_eq!(p.one_frame().code(), code::PROTOCOL_ERROR);
}

#[test]
fn a_response_may_end_before_the_request_body() {
    let mut p = Peer::new();
    p.send(&post(1, &[])).unwrap();
    p.events();
    p.conn.send_headers(1, 413, std::iter::empty(), true);
    p.frames();
    // Half-closed (local): the body still arrives, and END_STREAM closes the stream.
    assert_eq!(p.conn.active_streams(), 1);
    assert_eq!(p.conn.send_capacity(1), 0);
    p.send(&data(1, b"rest", true)).unwrap();
    assert!(matches!(
        p.events()[..],
        [Event::Data {
            id: 1,
            end_stream: true,
            ..
        }]
    ));
    assert_eq!(p.conn.active_streams(), 0);
    p.conn.release(1, 4); // after the close: nothing to do
    assert!(p.frames().is_empty());
    // A stream ended both ways is closed: more DATA is STREAM_CLOSED.
    p.send(&data(1, b"x", false)).unwrap();
    let f = p.one_frame();
    assert_eq!((f.kind, f.code()), (kind::RST_STREAM, code::STREAM_CLOSED));
}
