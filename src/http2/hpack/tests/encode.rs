//! The encoder: representations by name, table size updates, lookup cost, and
//! decode(encode(x)) == x over many blocks with eviction.

use proptest::prelude::*;

use super::super::{Decoder, Encoder};
use super::{Fields, decode, pairs, table};

#[test]
fn status_codes() {
    let mut e = Encoder::new();
    let mut out = Vec::new();
    for (status, index) in [
        (200, 8),
        (204, 9),
        (206, 10),
        (304, 11),
        (400, 12),
        (404, 13),
        (500, 14),
    ] {
        out.clear();
        e.encode_status(status, &mut out);
        assert_eq!(out, [0x80 | index], "{status}");
    }
    let mut d = Decoder::new(4096);
    for status in [100u16, 301, 302, 418, 503, 999] {
        out.clear();
        e.encode_status(status, &mut out);
        // Literal without indexing, static name 8.
        assert_eq!(out[0], 0x08, "{status}");
        let want = pairs(&[(":status", &status.to_string())]);
        assert_eq!(decode(&mut d, &out), Ok(want));
    }
    assert_eq!(d.table.len(), 0);
    out.clear();
    e.encode_status(42, &mut out);
    assert_eq!(out, [0x80 | 14], "out of range: 500");
}

#[test]
fn representations_by_name() {
    let mut e = Encoder::new();
    let mut out = Vec::new();
    e.encode(b"set-cookie", b"a=b", &mut out);
    assert_eq!(&out[..2], [0x1f, 55 - 15], "never indexed, static name 55");
    out.clear();
    e.encode(b"date", b"Mon, 21 Oct 2013 20:13:21 GMT", &mut out);
    assert_eq!(
        &out[..2],
        [0x0f, 33 - 15],
        "without indexing, static name 33"
    );
    out.clear();
    e.encode(b"accept-encoding", b"gzip, deflate", &mut out);
    assert_eq!(out, [0x80 | 16], "a whole static entry");
    out.clear();
    e.encode(b"content-type", b"text/html", &mut out);
    assert_eq!(out[0], 0x40 | 31, "incremental indexing, static name 31");
    out.clear();
    e.encode(b"content-type", b"text/html", &mut out);
    assert_eq!(out, [0x80 | 62], "then indexed");
    out.clear();
    e.encode(
        b"content-type",
        b"multipart/byteranges; boundary=3d6b6a416f9b5",
        &mut out,
    );
    assert_eq!(&out[..2], [0x0f, 31 - 15], "a boundary: without indexing");
    out.clear();
    e.encode(b"x-cache", b"HIT", &mut out);
    assert_eq!(
        &out[..2],
        [0x40, 0x85],
        "incremental indexing, literal name, huffman"
    );
    out.clear();
    e.encode(b"x-cache", b"MISS", &mut out);
    assert_eq!(out[0], 0x40 | 62, "the name from the dynamic table");
    out.clear();
    e.encode(b"x-request-id", b"0123", &mut out);
    assert_eq!(out[0], 0x00, "without indexing, literal name");
    assert_eq!(e.table.len(), 3);
}

#[test]
fn table_size_updates_start_the_next_block() {
    let mut e = Encoder::new();
    let mut d = Decoder::new(4096);
    let mut out = Vec::new();
    e.encode_status(200, &mut out);
    e.encode(b"server", b"ferry", &mut out);
    decode(&mut d, &out).unwrap();
    assert_eq!(d.table.len(), 1);

    // Larger than 4096: ferry keeps using 4096, nothing to signal.
    e.set_max_table_size(65536);
    out.clear();
    e.encode_status(200, &mut out);
    assert_eq!(out, [0x88]);

    // Shrunk to 0 then grown to 200 between two blocks: both are signalled (§4.2).
    e.set_max_table_size(0);
    e.set_max_table_size(200);
    out.clear();
    e.encode_status(200, &mut out);
    e.encode(b"server", b"ferry", &mut out);
    assert_eq!(&out[..4], [0x20, 0x3f, 0x80 | (200 - 31) & 0x7f, 1]);
    d.max_table_size = 200;
    assert_eq!(
        decode(&mut d, &out),
        Ok(pairs(&[(":status", "200"), ("server", "ferry")]))
    );
    assert_eq!((d.table.max_size(), d.table.len()), (200, 1));
    assert_eq!(e.table.size(), d.table.size());

    // Signalled once only.
    out.clear();
    e.encode_status(204, &mut out);
    assert_eq!(out, [0x89]);
}

/// A typical response's fields: repeating ones are found by tag, and a lookup compares
/// value bytes only on a tag match: one compare per hit, none per miss or per entry.
#[test]
fn lookups_compare_values_only_on_a_hit() {
    let mut e = Encoder::new();
    let mut out = Vec::new();
    let types: [&[u8]; 4] = [
        b"text/html",
        b"text/css",
        b"application/javascript",
        b"image/png",
    ];
    let mut hits = 0;
    let mut lookups = 0;
    for i in 0..1000usize {
        let len = (i * 7919 % 100_000).to_string();
        let etag = format!("\"{i:x}-5f3\"");
        let fields: [(&[u8], &[u8]); 8] = [
            (b"server", b"ferry"),
            (b"date", b"Mon, 07 Dec 2026 18:00:00 GMT"),
            (b"content-type", types[i % 4]),
            (b"content-length", len.as_bytes()),
            (b"last-modified", b"Sun, 06 Dec 2026 10:00:00 GMT"),
            (b"etag", etag.as_bytes()),
            (b"accept-ranges", b"bytes"),
            (b"cache-control", b"max-age=3600"),
        ];
        out.clear();
        e.encode_status(200, &mut out);
        for (name, value) in fields {
            let before = out.len();
            e.encode(name, value, &mut out);
            if matches!(
                name,
                b"server" | b"content-type" | b"accept-ranges" | b"cache-control"
            ) {
                lookups += 1;
                if out.len() - before == 1 {
                    hits += 1;
                }
            }
        }
        if i >= 4 {
            // Steady state: status, four indexed fields, four literals.
            assert!(out.len() < 80, "{} bytes", out.len());
        }
    }
    assert_eq!(lookups, 4000);
    assert_eq!(
        hits,
        4000 - 7,
        "every repeat found (3 + 4 content types first sent)"
    );
    assert_eq!(e.compares, hits);
}

#[test]
fn round_trip_with_eviction() {
    let mut e = Encoder::new();
    let mut d = Decoder::new(4096);
    e.set_max_table_size(256);
    d.max_table_size = 256;
    let mut out = Vec::new();
    for i in 0..200 {
        let ty = format!("type/{}", i % 9);
        let fields = pairs(&[
            ("content-type", &ty),
            ("vary", "accept-encoding"),
            ("x-cache", "HIT"),
        ]);
        out.clear();
        e.encode_status(200, &mut out);
        for (n, v) in &fields {
            e.encode(n, v, &mut out);
        }
        let mut want = pairs(&[(":status", "200")]);
        want.extend(fields);
        assert_eq!(decode(&mut d, &out), Ok(want), "block {i}");
        assert!(d.table.size() <= 256);
        assert_eq!(table(&d).len(), e.table.len());
    }
    // Nine content types and two other fields do not fit in 256 bytes: types were evicted
    // and sent again; the table holds what fits.
    assert!(d.table.len() < 11);
}

const NAMES: [&str; 14] = [
    "server",
    "content-type",
    "cache-control",
    "vary",
    "x-cache",
    "alt-svc",
    "date",
    "content-length",
    "etag",
    "set-cookie",
    "x-request-id",
    "accept-encoding",
    "x-custom",
    "content-security-policy",
];

fn field() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let value = prop_oneof![
        // Repeating values...
        prop::sample::select(vec!["a", "text/html", "gzip, deflate", "", "max-age=60"])
            .prop_map(|v| v.as_bytes().to_vec()),
        // ...any bytes, long ones too (past a table's share, or the table itself).
        prop::collection::vec(any::<u8>(), 0..40),
        prop::collection::vec(any::<u8>(), 0..1200),
    ];
    (prop::sample::select(NAMES.to_vec()), value).prop_map(|(n, v)| (n.as_bytes().to_vec(), v))
}

/// A block: a status, fields, and the peer table sizes announced before it.
fn block() -> impl Strategy<Value = (u16, Vec<usize>, Fields)> {
    (
        prop::sample::select(vec![200u16, 302, 404, 503]),
        prop::collection::vec(
            prop::sample::select(vec![0usize, 40, 100, 256, 1000, 4096, 65536]),
            0..3,
        ),
        prop::collection::vec(field(), 0..12),
    )
}

proptest! {
    #[test]
    fn decode_of_encode_is_identity(blocks in prop::collection::vec(block(), 1..40)) {
        let mut e = Encoder::new();
        let mut d = Decoder::new(4096);
        let mut out = Vec::new();
        for (status, sizes, fields) in blocks {
            for &size in &sizes {
                e.set_max_table_size(size);
                d.max_table_size = size;
            }
            out.clear();
            e.encode_status(status, &mut out);
            for (n, v) in &fields {
                e.encode(n, v, &mut out);
            }
            let mut want = vec![(b":status".to_vec(), status.to_string().into_bytes())];
            want.extend(fields);
            prop_assert_eq!(decode(&mut d, &out), Ok(want));
            prop_assert!(d.table.size() <= d.max_table_size);
            prop_assert_eq!(d.table.size(), e.table.size());
            prop_assert_eq!(d.table.len(), e.table.len());
            for i in 0..d.table.len() {
                prop_assert_eq!(d.table.get(i), e.table.get(i));
            }
        }
    }

    #[test]
    fn any_bytes_decode_without_panic(block in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut d = Decoder::new(4096);
        let _ = decode(&mut d, &block);
        prop_assert!(d.table.size() <= 4096);
    }
}
