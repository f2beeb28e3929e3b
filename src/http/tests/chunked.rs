//! Chunked decoder and encoder: accepted forms, every split point, and each
//! rejection.

use crate::http::ParseError;
use crate::http::chunked::{ChunkedDecoder, MAX_TRAILER_BYTES, encode_chunk, encode_last_chunk};

const LINE: usize = 64;

/// Decodes all of `input` in one call: (data, consumed, done).
fn decode(input: &[u8]) -> Result<(Vec<u8>, usize, bool), ParseError> {
    let mut d = ChunkedDecoder::new(LINE);
    let mut out = Vec::new();
    let n = d.decode(input, &mut out)?;
    Ok((out, n, d.done()))
}

fn bad(input: &[u8], msg: &'static str) {
    assert_eq!(
        decode(input),
        Err(ParseError::Bad(msg)),
        "{:?}",
        String::from_utf8_lossy(input)
    );
}

#[test]
fn decodes_simple_body() {
    let input = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    assert_eq!(
        decode(input),
        Ok((b"hello world".to_vec(), input.len(), true))
    );
}

#[test]
fn stops_at_end_of_body() {
    let input = b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    assert_eq!(decode(input), Ok((b"abc".to_vec(), 13, true)));
    let mut d = ChunkedDecoder::new(LINE);
    let mut out = Vec::new();
    assert_eq!(d.decode(input, &mut out), Ok(13));
    assert_eq!(d.decode(b"more", &mut out), Ok(0));
    assert!(d.done());
}

#[test]
fn accepts_hex_case_leading_zeros_extensions_and_trailers() {
    let input = b"A\r\n0123456789\r\n000b;name=value; flag\r\nhello world\r\n\
                  2 ;q=\"a b\"\t\r\nxy\r\n0;end\r\nX-Sum: abc\r\nX-Empty:\r\n\r\n";
    assert_eq!(
        decode(input),
        Ok((b"0123456789hello worldxy".to_vec(), input.len(), true))
    );
}

#[test]
fn incomplete_input_is_not_done() {
    let input = b"5\r\nhello\r\n0\r\n\r\n";
    for k in 0..input.len() {
        let (data, n, done) = decode(&input[..k]).unwrap();
        assert_eq!((n, done), (k, false), "prefix {k}");
        assert_eq!(data, &b"hello"[..data.len()]);
    }
}

#[test]
fn every_split_point_gives_the_same_result() {
    let input: &[u8] =
        b"4;x=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nT: v\r\n\r\nNEXT";
    let body_len = input.len() - 4;
    let want = b"Wikipedia in\r\n\r\nchunks.".to_vec();
    for k in 0..=input.len() {
        let mut d = ChunkedDecoder::new(LINE);
        let mut out = Vec::new();
        let a = d.decode(&input[..k], &mut out).unwrap();
        let b = d.decode(&input[a..], &mut out).unwrap();
        assert_eq!(
            (out.as_slice(), a + b, d.done()),
            (want.as_slice(), body_len, true),
            "split {k}"
        );
    }
    // One byte at a time.
    let mut d = ChunkedDecoder::new(LINE);
    let mut out = Vec::new();
    let mut used = 0;
    for b in input {
        used += d.decode(std::slice::from_ref(b), &mut out).unwrap();
    }
    assert_eq!((out, used, d.done()), (want, body_len, true));
}

#[test]
fn rejects_malformed_sizes() {
    let invalid = "invalid chunk size";
    bad(b"+5\r\nhello\r\n0\r\n\r\n", invalid);
    bad(b"-5\r\nhello\r\n0\r\n\r\n", invalid);
    bad(b"0x5\r\nhello\r\n0\r\n\r\n", invalid);
    bad(b" 5\r\nhello\r\n0\r\n\r\n", invalid);
    bad(b"\r\n", invalid);
    bad(b"g\r\n", invalid);
    bad(b"5=\r\n", invalid);
    bad(b"5 \r\nhello\r\n", "invalid chunk extension");
    bad(b"5 x\r\n", "invalid chunk extension");
    bad(b"10000000000000000\r\n", "chunk size overflows");
    assert_eq!(
        decode(b"ffffffffffffffff\r\nab"),
        Ok((b"ab".to_vec(), 20, false))
    );
}

#[test]
fn bounds_the_size_line() {
    let zeros = format!("{}5\r\nhello\r\n0\r\n\r\n", "0".repeat(LINE - 1));
    assert_eq!(decode(zeros.as_bytes()).unwrap().0, b"hello");
    let zeros = format!("{}5\r\n", "0".repeat(LINE));
    bad(zeros.as_bytes(), "chunk size line too long");
    let ext = format!("5;{}\r\n", "x".repeat(LINE));
    bad(ext.as_bytes(), "chunk size line too long");
}

#[test]
fn rejects_bad_line_endings_and_data_framing() {
    bad(b"5\nhello\r\n0\r\n\r\n", "invalid chunk size");
    bad(b"5;x\nhello\r\n", "bare lf in chunk size line");
    bad(b"5\rhello\r\n", "bare cr in chunk size line");
    bad(b"5;a\x01\r\n", "invalid chunk extension");
    bad(b"5\r\nhelloX\r\n0\r\n\r\n", "missing crlf after chunk data");
    bad(b"5\r\nhello\n0\r\n\r\n", "missing crlf after chunk data");
    bad(b"5\r\nhello\rX0\r\n\r\n", "bare cr after chunk data");
    bad(b"3\r\nabcd\r\n", "missing crlf after chunk data");
    bad(b"0\r\n\n", "invalid trailer field");
    bad(b"0\r\n\rX", "bare cr at end of chunked body");
}

#[test]
fn rejects_bad_trailers() {
    bad(b"0\r\nX-T: v\n\r\n", "invalid trailer field");
    bad(b"0\r\nX-T: v\rX\r\n", "bare cr in trailer field");
    bad(b"0\r\nNoColon\r\n\r\n", "invalid trailer field");
    bad(b"0\r\n : v\r\n\r\n", "invalid trailer field");
    bad(b"0\r\nX T: v\r\n\r\n", "invalid trailer field");
    bad(b"0\r\nX-T: a\0b\r\n\r\n", "invalid trailer field");
    let line = format!("X-Big: {}\r\n", "v".repeat(100));
    let mut input = b"0\r\n".to_vec();
    while input.len() < MAX_TRAILER_BYTES + 200 {
        input.extend_from_slice(line.as_bytes());
    }
    bad(&input, "trailer section too large");
}

#[test]
fn stays_failed_after_an_error() {
    let mut d = ChunkedDecoder::new(LINE);
    let mut out = Vec::new();
    assert!(d.decode(b"z", &mut out).is_err());
    assert_eq!(
        d.decode(b"0\r\n\r\n", &mut out),
        Err(ParseError::Bad("chunked decoder already failed"))
    );
    assert!(!d.done());
}

#[test]
fn encodes_chunks() {
    let mut out = Vec::new();
    encode_chunk(b"hello world, this is 26 b.", &mut out);
    encode_chunk(b"", &mut out);
    encode_chunk(b"x", &mut out);
    encode_last_chunk(&mut out);
    assert_eq!(
        out,
        b"1a\r\nhello world, this is 26 b.\r\n1\r\nx\r\n0\r\n\r\n"
    );
    assert_eq!(decode(&out).unwrap().0, b"hello world, this is 26 b.x");
}
