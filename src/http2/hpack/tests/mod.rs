//! The RFC 7541 Appendix C examples and malformed blocks for the decoder; the encoder's
//! tests (representations, size updates, round trips) are in `encode`.

mod encode;

use super::{Decoder, HpackError};

pub(super) type Fields = Vec<(Vec<u8>, Vec<u8>)>;

pub(super) fn dehex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub(super) fn decode(d: &mut Decoder, block: &[u8]) -> Result<Fields, HpackError> {
    let mut fields = Vec::new();
    d.decode(block, usize::MAX, |n, v| {
        fields.push((n.to_vec(), v.to_vec()))
    })?;
    Ok(fields)
}

pub(super) fn pairs(list: &[(&str, &str)]) -> Fields {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// The decoder's dynamic table, newest first.
pub(super) fn table(d: &Decoder) -> Fields {
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
