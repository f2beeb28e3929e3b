//! `ferry::http2::hpack::Decoder` on arbitrary bytes (a client's request header blocks).
//!
//! The first input byte picks a header-list limit, the second where to split the rest into
//! two blocks decoded one after the other on one decoder (so the second sees the table the
//! first left). Nothing may panic; the fields handed out stay within the limit; and every
//! decoded list, encoded again by `Encoder`, decodes back to itself.
#![no_main]

use ferry::http2::hpack::{Decoder, Encoder, HpackError};
use libfuzzer_sys::fuzz_target;

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

fuzz_target!(|data: &[u8]| {
    let [limit, split, rest @ ..] = data else {
        return;
    };
    let max_list_size = usize::from(*limit) * 16;
    let split = rest.len() * usize::from(*split) / 255;
    let (a, b) = rest.split_at(split);

    let mut decoder = Decoder::new(4096);
    let mut encoder = Encoder::new();
    let mut check = Decoder::new(4096);
    for block in [a, b] {
        let mut fields: Fields = Vec::new();
        let mut size = 0;
        let res = decoder.decode(block, max_list_size, |n, v| {
            size += n.len() + v.len() + 32;
            fields.push((n.to_vec(), v.to_vec()));
        });
        assert!(size <= max_list_size, "fields past the limit handed out");
        match res {
            Ok(()) | Err(HpackError::ListTooLarge) => {}
            Err(e) => {
                assert!(e.is_compression_error());
                return;
            }
        }
        // Re-encode as a response (a status first) and decode again.
        let mut out = Vec::new();
        encoder.encode_status(200, &mut out);
        for (n, v) in &fields {
            encoder.encode(n, v, &mut out);
        }
        let mut again: Fields = Vec::new();
        check
            .decode(&out, usize::MAX, |n, v| {
                again.push((n.to_vec(), v.to_vec()))
            })
            .expect("ferry's own encoding decodes");
        assert_eq!(
            again.first().map(|(n, v)| (&n[..], &v[..])),
            Some((&b":status"[..], &b"200"[..]))
        );
        assert_eq!(&again[1..], &fields[..]);
    }
});
