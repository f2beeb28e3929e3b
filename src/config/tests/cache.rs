//! `[cache]`: its defaults (also as documented, commented out, in `config/ferry.toml`), every
//! key and its errors, and the environment overrides that turn caching on.

use std::time::Duration;

use super::{LOCATION, load_err, load_ok, secs};
use crate::config::{Cache, DEFAULT_TOML};

fn cache(section: &str) -> Option<Cache> {
    load_ok(&format!("[cache]\n{section}\n{LOCATION}"), &[]).cache
}

fn cache_err(section: &str) -> Vec<String> {
    load_err(&format!("[cache]\n{section}\n{LOCATION}"), &[])
}

/// `config/ferry.toml` with its commented-out `[cache]` section turned into TOML: from
/// `# [cache]` to the next section, each `# [cache]` and `# key = value` line loses its `# `.
fn uncommented_cache() -> String {
    let mut out = Vec::new();
    let mut active = false;
    for line in DEFAULT_TOML.lines() {
        if line.starts_with('[') {
            active = false;
        }
        active |= line == "# [cache]";
        let toml = line.strip_prefix("# ").filter(|rest| {
            let key = rest.split(" = ").next().unwrap_or("");
            let is_key = rest.contains(" = ")
                && !key.is_empty()
                && key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            active && (*rest == "[cache]" || is_key)
        });
        out.push(toml.unwrap_or(line));
    }
    out.join("\n")
}

#[test]
fn the_documented_cache_section_parses_to_the_code_defaults() {
    let text = uncommented_cache();
    assert!(text.contains("\n[cache]\n"), "{text}");
    let config = load_ok(&text, &[]);
    let documented = Cache {
        dir: "/var/cache/ferry".into(),
        max_size: 10 * 1024 * 1024 * 1024,
        max_object_size: 1024 * 1024 * 1024,
        lock_timeout: secs(5),
        stale_if_error: secs(3600),
    };
    assert_eq!(config.cache, Some(documented.clone()));
    assert_eq!(documented, Cache::default());
    // The embedded default has no cache.
    assert_eq!(load_ok(DEFAULT_TOML, &[]).cache, None);
}

#[test]
fn no_section_no_cache_and_an_empty_one_takes_every_default() {
    assert_eq!(load_ok(LOCATION, &[]).cache, None);
    assert_eq!(cache(""), Some(Cache::default()));
}

#[test]
fn every_cache_key_is_read() {
    let section = r#"
        dir = "cache"
        max_size = "100MiB"
        max_object_size = 65536
        lock_timeout = "0s"
        stale_if_error = "1d"
    "#;
    assert_eq!(
        cache(section),
        Some(Cache {
            dir: "cache".into(),
            max_size: 100 << 20,
            max_object_size: 65_536,
            lock_timeout: Duration::ZERO,
            stale_if_error: secs(86_400),
        })
    );
}

#[test]
fn cache_values_are_type_and_range_checked() {
    assert_eq!(
        load_err(&format!("cache = true\n{LOCATION}"), &[]),
        ["cache: expected a table, found boolean true"]
    );
    assert_eq!(
        cache_err(
            "path = \"x\"\ndir = \"\"\nmax_size = \"0\"\nmax_object_size = -1\n\
             lock_timeout = 5\nstale_if_error = \"an hour\""
        ),
        [
            "cache.path: unknown key",
            "cache.dir: must not be empty",
            "cache.max_size: must be greater than 0",
            "cache.max_object_size: invalid size -1: must not be negative",
            "cache.lock_timeout: invalid duration 5: add a unit, e.g. \"5s\"",
            "cache.stale_if_error: invalid duration \"an hour\": expected a number at \"an hour\"",
        ]
    );
    assert_eq!(
        cache_err("dir = 3\nmax_size = \"10 parsecs\""),
        [
            "cache.dir: expected a directory path string, found integer 3",
            "cache.max_size: invalid size \"10 parsecs\": unknown unit \"parsecs\" (expected \
             B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)",
        ]
    );
}

#[test]
fn an_object_cannot_be_larger_than_the_cache() {
    assert_eq!(
        cache_err("max_size = \"1MiB\"\nmax_object_size = \"2MiB\""),
        [
            "cache.max_object_size: 2097152 bytes is more than cache.max_size (1048576 bytes): \
             no object that large could be kept"
        ]
    );
    // Equal is fine.
    let equal = cache("max_size = \"1MiB\"\nmax_object_size = \"1MiB\"");
    assert_eq!(equal.map(|c| c.max_object_size), Some(1 << 20));
}

/// Issue 17 point 9: a cache smaller than the default max_object_size (1GiB) needs no second
/// key: the object limit follows the cache size; a larger cache keeps the default.
#[test]
fn without_max_object_size_the_object_limit_follows_a_smaller_cache() {
    let small = cache("max_size = \"100MiB\"").expect("a small cache is accepted");
    assert_eq!(
        (small.max_size, small.max_object_size),
        (100 << 20, 100 << 20)
    );
    let large = cache("max_size = \"20GiB\"").expect("a cache");
    assert_eq!(large.max_object_size, 1 << 30);
    // Also when the size comes from the environment.
    let config = load_ok(LOCATION, &[("FERRY__CACHE__MAX_SIZE", "64MiB")]);
    let cache = config.cache.expect("a cache");
    assert_eq!(
        (cache.max_size, cache.max_object_size),
        (64 << 20, 64 << 20)
    );
}

#[test]
fn environment_variables_turn_caching_on_and_override_the_file() {
    let config = load_ok(
        LOCATION,
        &[
            ("FERRY__CACHE__DIR", "/tmp/ferry-cache"),
            ("FERRY__CACHE__MAX_SIZE", "1GiB"),
            ("FERRY__CACHE__MAX_OBJECT_SIZE", "1048576"),
            ("FERRY__CACHE__LOCK_TIMEOUT", "250ms"),
            ("FERRY__CACHE__STALE_IF_ERROR", "0s"),
        ],
    );
    assert_eq!(
        config.cache,
        Some(Cache {
            dir: "/tmp/ferry-cache".into(),
            max_size: 1 << 30,
            max_object_size: 1 << 20,
            lock_timeout: Duration::from_millis(250),
            stale_if_error: Duration::ZERO,
        })
    );
    let text = format!("[cache]\nmax_size = \"1GiB\"\n{LOCATION}");
    let errors = load_err(&text, &[("FERRY__CACHE__MAX_SIZE", "0")]);
    assert_eq!(
        errors,
        [
            "cache.max_size: must be greater than 0 (from environment variable \
          FERRY__CACHE__MAX_SIZE)"
        ]
    );
}
