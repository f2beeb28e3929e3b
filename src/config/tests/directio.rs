//! `io.directio_threshold` and the per-location `directio_threshold`: off by default (also as
//! documented in `config/ferry.toml`), sizes in every spelling, "0" as off, a location's value
//! winning over `[io]`'s, the environment override, and errors with their keys.

use std::num::NonZeroU64;

use super::{LOCATION, load_err, load_ok};
use crate::config::DEFAULT_TOML;

fn size(n: u64) -> Option<NonZeroU64> {
    NonZeroU64::new(n)
}

#[test]
fn off_unless_set() {
    assert_eq!(load_ok(DEFAULT_TOML, &[]).io.directio_threshold, None);
    let config = load_ok(LOCATION, &[]);
    assert_eq!(config.io.directio_threshold, None);
    assert_eq!(config.locations[0].directio_threshold, None);
}

#[test]
fn sizes_and_zero_as_off() {
    for (text, expected) in [
        ("\"1GiB\"", size(1 << 30)),
        ("\"512MB\"", size(512_000_000)),
        ("4096", size(4096)),
        ("\"0\"", None),
        ("0", None),
    ] {
        let config = load_ok(
            &format!("[io]\ndirectio_threshold = {text}\n{LOCATION}"),
            &[],
        );
        assert_eq!(config.io.directio_threshold, expected, "{text}");
    }
}

#[test]
fn a_location_overrides_or_turns_it_off() {
    let text = "[io]\ndirectio_threshold = \"1GiB\"\n\
                [[location]]\nprefix = \"/a/\"\nroot = \"a\"\ndirectio_threshold = \"0\"\n\
                [[location]]\nprefix = \"/b/\"\nroot = \"b\"\ndirectio_threshold = \"8MiB\"\n\
                [[location]]\nprefix = \"/c/\"\nroot = \"c\"\n";
    let config = load_ok(text, &[]);
    assert_eq!(config.io.directio_threshold, size(1 << 30));
    let per_location: Vec<_> = config
        .locations
        .iter()
        .map(|l| l.directio_threshold)
        .collect();
    assert_eq!(per_location, [Some(None), Some(size(8 << 20)), None]);
}

#[test]
fn the_environment_sets_it() {
    let config = load_ok(LOCATION, &[("FERRY__IO__DIRECTIO_THRESHOLD", "2GiB")]);
    assert_eq!(config.io.directio_threshold, size(2 << 30));
}

#[test]
fn bad_values_are_reported_with_their_key() {
    let text = "[io]\ndirectio_threshold = \"1g\"\n\
                [[location]]\nprefix = \"/\"\nroot = \"r\"\ndirectio_threshold = true\n";
    assert_eq!(
        load_err(text, &[]),
        [
            "io.directio_threshold: invalid size \"1g\": ambiguous unit \"g\": write \"GiB\" \
             (1024-based, what nginx means by \"g\") or \"GB\" (1000-based)",
            "location[0].directio_threshold: expected a size string, e.g. \"2MiB\", or a \
             number of bytes, found boolean true",
        ]
    );
    assert_eq!(
        load_err(&format!("[io]\ndirectio_threshold = -1\n{LOCATION}"), &[]),
        ["io.directio_threshold: invalid size -1: must not be negative"]
    );
}
