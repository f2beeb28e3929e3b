//! The RFC 7541 Appendix C examples, malformed blocks, and encoder round trips.

use proptest::prelude::*;

use super::{Decoder, Encoder, HpackError};

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

fn dehex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn decode(d: &mut Decoder, block: &[u8]) -> Result<Fields, HpackError> {
    let mut fields = Vec::new();
    d.decode(block, usize::MAX, |n, v| {
        fields.push((n.to_vec(), v.to_vec()))
    })?;
    Ok(fields)
}

fn pairs(list: &[(&str, &str)]) -> Fields {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// The decoder's dynamic table, newest first.
fn table(d: &Decoder) -> Fields {
    (0..d.table.len())
        .map(|i| {
            let (n, v) = d.table.get(i).unwrap();
            (n.to_vec(), v.to_vec())
        })
        .collect()
}

/// One step of an Appendix C sequence: block, decoded list, table after, table size after.
type Step<'a> = (
    &'a str,
    &'a [(&'a str, &'a str)],
    &'a [(&'a str, &'a str)],
    usize,
);

fn run(max_table_size: usize, steps: &[Step<'_>]) {
    let mut d = Decoder::new(max_table_size);
    for (i, (block, want, want_table, want_size)) in steps.iter().enumerate() {
        assert_eq!(decode(&mut d, &dehex(block)), Ok(pairs(want)), "step {i}");
        assert_eq!(table(&d), pairs(want_table), "step {i}: table");
        assert_eq!(d.table.size(), *want_size, "step {i}: table size");
    }
}

#[test]
fn c2_one_field_each() {
    run(
        4096,
        &[(
            "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
            &[("custom-key", "custom-header")],
            &[("custom-key", "custom-header")],
            55,
        )],
    );
    run(
        4096,
        &[(
            "040c 2f73 616d 706c 652f 7061 7468",
            &[(":path", "/sample/path")],
            &[],
            0,
        )],
    );
    run(
        4096,
        &[(
            "1008 7061 7373 776f 7264 0673 6563 7265 74",
            &[("password", "secret")],
            &[],
            0,
        )],
    );
    run(4096, &[("82", &[(":method", "GET")], &[], 0)]);
}

const C3_1: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
];
const C3_2: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
    ("cache-control", "no-cache"),
];
const C3_3: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/index.html"),
    (":authority", "www.example.com"),
    ("custom-key", "custom-value"),
];
const C3_TABLE_1: &[(&str, &str)] = &[(":authority", "www.example.com")];
const C3_TABLE_2: &[(&str, &str)] = &[
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];
const C3_TABLE_3: &[(&str, &str)] = &[
    ("custom-key", "custom-value"),
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];

#[test]
fn c3_requests_without_huffman() {
    run(
        4096,
        &[
            (
                "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                C3_1,
                C3_TABLE_1,
                57,
            ),
            ("8286 84be 5808 6e6f 2d63 6163 6865", C3_2, C3_TABLE_2, 110),
            (
                "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
                C3_3,
                C3_TABLE_3,
                164,
            ),
        ],
    );
}

#[test]
fn c4_requests_with_huffman() {
    run(
        4096,
        &[
            (
                "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
                C3_1,
                C3_TABLE_1,
                57,
            ),
            ("8286 84be 5886 a8eb 1064 9cbf", C3_2, C3_TABLE_2, 110),
            (
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
                C3_3,
                C3_TABLE_3,
                164,
            ),
        ],
    );
}

const C5_1: &[(&str, &str)] = &[
    (":status", "302"),
    ("cache-control", "private"),
    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    ("location", "https://www.example.com"),
];
const C5_2: &[(&str, &str)] = &[
    (":status", "307"),
    ("cache-control", "private"),
    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    ("location", "https://www.example.com"),
];
const C5_3: &[(&str, &str)] = &[
    (":status", "200"),
    ("cache-control", "private"),
    ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
    ("location", "https://www.example.com"),
    ("content-encoding", "gzip"),
    (
        "set-cookie",
        "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
    ),
];
const C5_TABLE_1: &[(&str, &str)] = &[
    ("location", "https://www.example.com"),
    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    ("cache-control", "private"),
    (":status", "302"),
];
const C5_TABLE_2: &[(&str, &str)] = &[
    (":status", "307"),
    ("location", "https://www.example.com"),
    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    ("cache-control", "private"),
];
const C5_TABLE_3: &[(&str, &str)] = &[
    (
        "set-cookie",
        "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
    ),
    ("content-encoding", "gzip"),
    ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
];

#[test]
fn c5_responses_without_huffman() {
    run(
        256,
        &[
            (
                "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
                 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
                 6c65 2e63 6f6d",
                C5_1,
                C5_TABLE_1,
                222,
            ),
            ("4803 3330 37c1 c0bf", C5_2, C5_TABLE_2, 222),
            (
                "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
                 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
                 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
                 3d31",
                C5_3,
                C5_TABLE_3,
                215,
            ),
        ],
    );
}

#[test]
fn c6_responses_with_huffman() {
    run(
        256,
        &[
            (
                "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
                 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
                C5_1,
                C5_TABLE_1,
                222,
            ),
            ("4883 640e ffc1 c0bf", C5_2, C5_TABLE_2, 222),
            (
                "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
                 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
                 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
                C5_3,
                C5_TABLE_3,
                215,
            ),
        ],
    );
}

#[test]
fn malformed_blocks_each_give_their_error() {
    let cases: &[(&str, &[u8], HpackError)] = &[
        (
            "empty string, length missing",
            &[0x40],
            HpackError::Truncated,
        ),
        (
            "string shorter than its length",
            &[0x04, 0x05, b'/', b'a'],
            HpackError::Truncated,
        ),
        ("integer cut off", &[0xff], HpackError::Truncated),
        ("index 0", &[0x80], HpackError::BadIndex(0)),
        (
            "index past the static table, empty dynamic",
            &[0xbe],
            HpackError::BadIndex(62),
        ),
        (
            "literal name index past the tables",
            &[0x0f, 0x30, 0x00],
            HpackError::BadIndex(63),
        ),
        // 'a' (00011) padded with 000.
        (
            "huffman padding not ones",
            &[0x04, 0x81, 0x18],
            HpackError::BadHuffman,
        ),
        (
            "huffman padding of 8 bits",
            &[0x04, 0x82, 0x1f, 0xff],
            HpackError::BadHuffman,
        ),
        (
            "EOS in a string",
            &[0x04, 0x84, 0xff, 0xff, 0xff, 0xfc],
            HpackError::HuffmanEos,
        ),
        (
            "integer past u32",
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0x0f],
            HpackError::IntegerOverflow,
        ),
        (
            "integer with too many continuation bytes",
            &[0xff, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
            HpackError::IntegerOverflow,
        ),
        // 001 11111 + 4097 - 31 = 4066 = 0xe2 0x1f.
        (
            "size update above the limit",
            &[0x3f, 0xe2, 0x1f],
            HpackError::TableSizeTooLarge(4097),
        ),
        (
            "size update after a field",
            &[0x82, 0x20],
            HpackError::TableSizeUpdateMidBlock,
        ),
    ];
    for (what, block, want) in cases {
        let mut d = Decoder::new(4096);
        assert_eq!(decode(&mut d, block), Err(*want), "{what}");
        assert!(want.is_compression_error());
    }
    // Size updates at the start are fine, several of them too; the limit itself as well.
    let mut d = Decoder::new(4096);
    assert_eq!(
        decode(&mut d, &[0x20, 0x3f, 0xe1, 0x1f, 0x82]),
        Ok(pairs(&[(":method", "GET")]))
    );
    assert_eq!(d.table.max_size(), 4096);
}

#[test]
fn list_too_large_keeps_the_table_in_step() {
    let mut d = Decoder::new(4096);
    // C.3.1 (four fields, 42 + 39 + 37 + 57 = 175 bytes by §6.5.2) with a limit of 100:
    // the first two are handed out, the table still gains :authority.
    let mut seen = Vec::new();
    let block = dehex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d");
    let res = d.decode(&block, 100, |n, v| seen.push((n.to_vec(), v.to_vec())));
    assert_eq!(res, Err(HpackError::ListTooLarge));
    assert!(!HpackError::ListTooLarge.is_compression_error());
    assert_eq!(seen, pairs(&[(":method", "GET"), (":scheme", "http")]));
    assert_eq!(table(&d), pairs(C3_TABLE_1));
    // C.3.2 refers to that entry (0xbe) and decodes.
    assert_eq!(
        decode(&mut d, &dehex("8286 84be 5808 6e6f 2d63 6163 6865")),
        Ok(pairs(C3_2))
    );
}

#[test]
fn a_name_from_the_entry_being_evicted() {
    // Table of 60 bytes holding one entry (name "n", value of 20 bytes: 53). A literal
    // with incremental indexing names it (62) with a new value: inserting evicts it.
    let mut d = Decoder::new(60);
    let mut block = vec![0x40, 0x01, b'n', 20];
    block.extend_from_slice(&[b'a'; 20]);
    block.extend_from_slice(&[0x7e, 3, b'x', b'y', b'z']);
    assert_eq!(
        decode(&mut d, &block),
        Ok(vec![
            (b"n".to_vec(), vec![b'a'; 20]),
            (b"n".to_vec(), b"xyz".to_vec())
        ])
    );
    assert_eq!(table(&d), vec![(b"n".to_vec(), b"xyz".to_vec())]);
}

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
