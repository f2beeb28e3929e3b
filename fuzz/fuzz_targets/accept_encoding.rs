//! `ferry::http::accept_encoding` on arbitrary Accept-Encoding field values.
//!
//! The first byte picks the codings a location offers (its low six bits, two per preference
//! slot: 0 none, 1 br, 2 zstd, 3 gzip; a coding already chosen is not repeated, as the config
//! refuses duplicates); the rest, split at newlines, are the field values. What `preferred`
//! returns is at most three codings, each offered, none twice, best first and each acceptable
//! (weight at least 1); parsing the same bytes twice gives the same answer.
#![no_main]

use ferry::http::accept_encoding::{AcceptEncoding, ContentCoding};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut offered = Vec::new();
    for slot in 0..3 {
        let coding = match (pick >> (2 * slot)) & 3 {
            1 => ContentCoding::Br,
            2 => ContentCoding::Zstd,
            3 => ContentCoding::Gzip,
            _ => continue,
        };
        if !offered.contains(&coding) {
            offered.push(coding);
        }
    }
    let accept = AcceptEncoding::parse(rest.split(|&b| b == b'\n'));
    let chosen: Vec<ContentCoding> = accept.preferred(&offered).iter().collect();
    assert!(chosen.len() <= offered.len(), "{chosen:?} from {offered:?}");
    let again = AcceptEncoding::parse(rest.split(|&b| b == b'\n'));
    for (i, coding) in chosen.iter().enumerate() {
        assert!(offered.contains(coding), "{coding:?} not offered ({offered:?})");
        assert!(!chosen[..i].contains(coding), "{coding:?} twice in {chosen:?}");
        let weight = accept.weight(*coding);
        assert!(weight >= 1, "{coding:?} chosen at weight 0");
        if let Some(next) = chosen.get(i + 1) {
            assert!(
                weight >= accept.weight(*next),
                "{chosen:?} not best first ({weight} < {})",
                accept.weight(*next)
            );
        }
    }
    // Parsing is a pure function of the bytes.
    assert_eq!(accept, again);
});
