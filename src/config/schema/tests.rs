//! The schema's own checks: its key lists against the documented file.

use super::cache::CACHE_KEYS;
use super::location::LOCATION_KEYS;
use super::offload::OFFLOAD_KEYS;
use super::spool::SPOOL_KEYS;
use super::tls::TLS_KEYS;
use super::upstream::UPSTREAM_KEYS;
use super::*;
use crate::config::DEFAULT_TOML;

/// `config/ferry.toml` is the reference for operators: every key must appear in it, set
/// or (for keys without a default) as a commented-out example.
#[test]
fn every_key_is_documented_in_the_default_file() {
    let lines: Vec<&str> = DEFAULT_TOML.lines().collect();
    // [tls], [upstream], [offload] and [cache] are commented out as a whole, so the embedded default
    // runs plaintext only and without an application.
    let sections = [
        ("[server]", &SERVER_KEYS[..]),
        ("[admin]", &ADMIN_KEYS[..]),
        ("# [tls]", &TLS_KEYS[..]),
        ("[io]", &IO_KEYS[..]),
        ("# [upstream]", &UPSTREAM_KEYS[..]),
        ("# [offload]", &OFFLOAD_KEYS[..]),
        ("# [cache]", &CACHE_KEYS[..]),
        ("[spool]", &SPOOL_KEYS[..]),
        ("[[location]]", &LOCATION_KEYS[..]),
    ];
    for (header, keys) in sections {
        let start = lines.iter().position(|line| *line == header);
        let start = start.unwrap_or_else(|| panic!("{header} missing"));
        for key in keys {
            let documented = lines[start..].iter().any(|line| {
                let line = line.strip_prefix("# ").unwrap_or(line);
                line.starts_with(&format!("{key} = "))
            });
            assert!(documented, "{header} {key} is not in config/ferry.toml");
        }
    }
}
