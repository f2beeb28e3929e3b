//! Environment overrides: `FERRY__SECTION__KEY=value`, e.g. `FERRY__SERVER__HEADER_TIMEOUT=5s`.
//!
//! The `config` crate does the merging (prefix `FERRY`, separator `__`, names lowercased, so
//! `ferry__server__listen` works too). Before it runs, [`screen`] looks at every `FERRY__*`
//! variable itself: the `config` crate would happily create any key, so an override with a
//! typo (`FERRY__SERVER__LISTN`) or one that would replace a whole section or the location list
//! is reported here, with the variable's name, and never reaches the merge. Values are parsed
//! and validated later, with the file's values, in `schema.rs`.

use std::collections::BTreeMap;

use super::ConfigError;

/// The origin the `config` crate records for values that came from the environment.
pub(super) const ENV_ORIGIN: &str = "the environment";

/// Lowercased prefix of the variables that are overrides, separator included.
const PREFIX: &str = "ferry__";

/// The keys an environment variable may set: every key outside `[[location]]` but
/// `server.add_header` (a list of tables) and the named upstreams.
const OVERRIDABLE: [&str; 58] = [
    "server.listen",
    "server.header_timeout",
    "server.keepalive_timeout",
    "server.send_timeout",
    "server.max_connections",
    "server.shutdown_grace",
    "server.access_log",
    "server.max_body_size",
    "server.trusted_proxies",
    "server.proxy_protocol",
    "server.redirect_https",
    "server.h2c",
    "admin.listen",
    "admin.token_file",
    "tls.listen",
    "tls.cert",
    "tls.key",
    "tls.reload_interval",
    "tls.ktls",
    "tls.alpn",
    "tls.handshake_timeout",
    "tls.proxy_protocol",
    "tls.session_cache",
    "tls.session_tickets",
    "tls.session_timeout",
    "io.send_path",
    "io.chunk",
    "io.directio_threshold",
    "io.open_file_cache",
    "io.open_file_cache_valid",
    "upstream.address",
    "upstream.servers",
    "upstream.balance",
    "upstream.max_fails",
    "upstream.fail_timeout",
    "upstream.max_conns",
    "upstream.queue",
    "upstream.queue_timeout",
    "upstream.connect_timeout",
    "upstream.response_timeout",
    "upstream.idle_connections",
    "upstream.forwarded_headers",
    "upstream.underscores_in_headers",
    "offload.x_accel_redirect",
    "offload.x_sendfile_roots",
    "offload.advertise",
    "offload.accel_mapping",
    "cache.dir",
    "cache.max_size",
    "cache.max_object_size",
    "cache.lock_timeout",
    "cache.stale_if_error",
    "spool.dir",
    "spool.max_file_size",
    "spool.max_size",
    "spool.request_memory",
    "spool.request_buffering",
    "spool.response_buffering",
];

/// The overridable keys that hold lists, given as comma-separated values.
const LIST_KEYS: [&str; 6] = [
    "server.listen",
    "upstream.servers",
    "server.trusted_proxies",
    "tls.listen",
    "tls.alpn",
    "offload.x_sendfile_roots",
];

/// The outcome of [`screen`].
pub(super) struct Screened {
    /// Variables to hand to the `config` crate, by their original name.
    pub accepted: ::config::Map<String, String>,
    /// Dotted key to variable name, so that messages about a value can name its variable.
    pub names: BTreeMap<String, String>,
    /// Variables that name no overridable key, or a key already set by another variable.
    pub errors: Vec<ConfigError>,
}

/// Sorts the `FERRY__*` variables among `vars` into accepted overrides and errors.
pub(super) fn screen(vars: &[(String, String)]) -> Screened {
    let mut sorted: Vec<&(String, String)> = vars.iter().collect();
    sorted.sort();
    let mut screened = Screened {
        accepted: ::config::Map::new(),
        names: BTreeMap::new(),
        errors: Vec::new(),
    };
    for (name, value) in sorted {
        let Some(key) = dotted_key(name) else {
            continue;
        };
        if !OVERRIDABLE.contains(&key.as_str()) {
            screened.errors.push(not_overridable(&key, name));
        } else if let Some(first) = screened.names.get(&key) {
            let message = format!("set twice in the environment ({first} and {name})");
            screened.errors.push(ConfigError::new(key, message));
        } else {
            screened.accepted.insert(name.clone(), value.clone());
            screened.names.insert(key, name.clone());
        }
    }
    screened
}

/// The source that merges the accepted variables over the file. `try_parsing` turns numbers
/// into integers (for `server.max_connections`, `upstream.idle_connections` and byte counts in
/// `io.chunk`) and `true`/`false` in any case into booleans, and is what makes
/// `list_separator` apply; `with_list_parse_key` limits the splitting on commas to
/// [`LIST_KEYS`] (the keys as the crate sees them: lowercased, separators turned into dots).
pub(super) fn source(accepted: ::config::Map<String, String>) -> ::config::Environment {
    let mut source = ::config::Environment::with_prefix("FERRY")
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .list_separator(",");
    for key in LIST_KEYS {
        source = source.with_list_parse_key(key);
    }
    source.source(Some(accepted))
}

/// The process's `FERRY__*` variables, and an error for each whose value is not UTF-8.
/// Variables whose names are not UTF-8 are skipped, as the `config` crate skips them.
pub(super) fn process_vars() -> (Vec<(String, String)>, Vec<ConfigError>) {
    let mut vars = Vec::new();
    let mut errors = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Ok(name) = name.into_string() else {
            continue;
        };
        let Some(key) = dotted_key(&name) else {
            continue;
        };
        match value.into_string() {
            Ok(value) => vars.push((name, value)),
            Err(_) => errors.push(ConfigError::new(
                key,
                format!("value is not valid UTF-8 (from environment variable {name})"),
            )),
        }
    }
    errors.sort_by(|a, b| a.key.cmp(&b.key));
    (vars, errors)
}

/// `FERRY__SERVER__LISTEN` → `server.listen`, the way the `config` crate maps it; `None` for a
/// variable that is not an override.
fn dotted_key(name: &str) -> Option<String> {
    let lower = name.to_lowercase();
    lower
        .strip_prefix(PREFIX)
        .map(|rest| rest.replace("__", "."))
}

/// The error for a variable that names no overridable key.
fn not_overridable(key: &str, name: &str) -> ConfigError {
    if key.is_empty() {
        return ConfigError::new(name, "no key after FERRY__; use FERRY__SECTION__KEY");
    }
    let message = if key == "location" || key.starts_with("location.") {
        format!("locations cannot be set from the environment ({name}); edit the config file")
    } else if key == "upstreams" || key.starts_with("upstreams.") {
        format!("named upstreams cannot be set from the environment ({name}); edit the config file")
    } else if key == "server.add_header" {
        format!(
            "a list of tables cannot be set from the environment ({name}); edit the config file"
        )
    } else if matches!(
        key,
        "server" | "admin" | "tls" | "io" | "upstream" | "offload"
    ) {
        format!(
            "a whole section cannot be set from the environment ({name}); \
             set one key with {name}__KEY"
        )
    } else {
        format!("unknown key (from environment variable {name})")
    };
    ConfigError::new(key, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn maps_names_like_the_config_crate() {
        assert_eq!(
            dotted_key("FERRY__SERVER__HEADER_TIMEOUT").as_deref(),
            Some("server.header_timeout")
        );
        assert_eq!(dotted_key("ferry__io__chunk").as_deref(), Some("io.chunk"));
        assert_eq!(dotted_key("FERRY_SERVER__LISTEN"), None);
        assert_eq!(dotted_key("PATH"), None);
    }

    #[test]
    fn ignores_other_variables_and_accepts_known_keys() {
        let screened = screen(&vars(&[
            ("PATH", "/bin"),
            ("FERRY_X", "1"),
            ("FERRY__IO__CHUNK", "4MiB"),
        ]));
        assert!(screened.errors.is_empty());
        assert_eq!(screened.accepted.len(), 1);
        assert_eq!(
            screened.names.get("io.chunk").map(String::as_str),
            Some("FERRY__IO__CHUNK")
        );
    }

    #[test]
    fn reports_every_variable_that_is_not_an_override() {
        let screened = screen(&vars(&[
            ("FERRY__SERVER__LISTN", "x"),
            ("FERRY__LOCATION__0__ROOT", "/srv"),
            ("FERRY__SERVER", "x"),
            ("FERRY__", "x"),
            ("FERRY__IO__CHUNK", "1MiB"),
            ("ferry__io__chunk", "2MiB"),
        ]));
        let got: Vec<String> = screened.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            got,
            [
                "FERRY__: no key after FERRY__; use FERRY__SECTION__KEY",
                "location.0.root: locations cannot be set from the environment \
                 (FERRY__LOCATION__0__ROOT); edit the config file",
                "server: a whole section cannot be set from the environment (FERRY__SERVER); \
                 set one key with FERRY__SERVER__KEY",
                "server.listn: unknown key (from environment variable FERRY__SERVER__LISTN)",
                "io.chunk: set twice in the environment (FERRY__IO__CHUNK and ferry__io__chunk)",
            ]
        );
        assert_eq!(screened.accepted.len(), 1);
    }
}
