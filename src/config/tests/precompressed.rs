//! A location's `precompressed` list: off by default (also as documented in
//! `config/ferry.toml`), codings kept in the order given, and every bad item reported with its
//! key: unknown codings, wrong types, duplicates.

use super::{LOCATION, load_err, load_ok};
use crate::config::{ContentCoding, DEFAULT_TOML};

fn location(line: &str) -> String {
    format!("{LOCATION}{line}\n")
}

#[test]
fn off_unless_set() {
    assert_eq!(load_ok(DEFAULT_TOML, &[]).locations[0].precompressed, []);
    assert_eq!(load_ok(LOCATION, &[]).locations[0].precompressed, []);
    let config = load_ok(&location("precompressed = []"), &[]);
    assert_eq!(config.locations[0].precompressed, []);
}

#[test]
fn codings_in_the_order_given() {
    use ContentCoding::{Br, Gzip, Zstd};
    for (text, expected) in [
        (r#"["br", "gzip"]"#, vec![Br, Gzip]),
        (r#"["gzip", "br"]"#, vec![Gzip, Br]),
        (r#"["zstd", "gzip", "br"]"#, vec![Zstd, Gzip, Br]),
        (r#"["gzip"]"#, vec![Gzip]),
    ] {
        let config = load_ok(&location(&format!("precompressed = {text}")), &[]);
        assert_eq!(config.locations[0].precompressed, expected, "{text}");
    }
}

#[test]
fn bad_values_are_reported_with_their_key() {
    let expected = "\"br\", \"zstd\", \"gzip\"";
    assert_eq!(
        load_err(
            &location(r#"precompressed = ["br", "deflate", "BR", 1, "gzip", "br", "x-gzip"]"#),
            &[]
        ),
        [
            format!(
                "location[0].precompressed[1]: unknown value \"deflate\"; expected one of \
                 {expected}"
            ),
            format!(
                "location[0].precompressed[2]: unknown value \"BR\"; expected one of {expected}"
            ),
            format!("location[0].precompressed[3]: expected one of {expected}, found integer 1"),
            "location[0].precompressed[5]: duplicate coding \"br\" (also \
             location[0].precompressed[0])"
                .to_string(),
            format!(
                "location[0].precompressed[6]: unknown value \"x-gzip\"; expected one of \
                 {expected}"
            ),
        ]
    );
    assert_eq!(
        load_err(&location(r#"precompressed = "gzip""#), &[]),
        [
            "location[0].precompressed: expected an array of content codings, e.g. \
             [\"br\", \"gzip\"], found string \"gzip\""
        ]
    );
    assert_eq!(
        load_err(&location("precompressed = true"), &[]),
        [
            "location[0].precompressed: expected an array of content codings, e.g. \
             [\"br\", \"gzip\"], found boolean true"
        ]
    );
}

#[test]
fn each_location_has_its_own() {
    let a = "[[location]]\nprefix = \"/a/\"\nroot = \"a\"\nprecompressed = [\"gzip\"]\n";
    let b = "[[location]]\nprefix = \"/b/\"\nroot = \"b\"\n";
    let config = load_ok(&format!("{a}{b}"), &[]);
    assert_eq!(config.locations[0].precompressed, [ContentCoding::Gzip]);
    assert_eq!(config.locations[1].precompressed, []);
    let c = "[[location]]\nprefix = \"/c/\"\nroot = \"c\"\nprecompressed = [\"gzip\", \"gzip\"]\n";
    assert_eq!(
        load_err(&format!("{a}{b}{c}"), &[]),
        [
            "location[2].precompressed[1]: duplicate coding \"gzip\" (also \
          location[2].precompressed[0])"
        ]
    );
}
