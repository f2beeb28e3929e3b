//! The schema: walks the merged value tree (file + environment) against the known keys and
//! turns it into a [`Config`], collecting every problem instead of stopping at the first.
//!
//! Each key has its own parser here (the `[[location]]` list in `schema/location.rs`,
//! `[tls]` in `schema/tls.rs`, `[upstream]` in `schema/upstream.rs`, `[offload]` in
//! `schema/offload.rs`, `[cache]` in `schema/cache.rs`); durations and sizes go through
//! `units.rs`. Checks that span sections
//! (the listeners against each other in `schema/listeners.rs`, the upstream
//! against all of them, the accel mapping against the locations, something to serve at all)
//! run after the sections they need, cross-section ones last. Absent keys keep the defaults of
//! the `Default` impls (and `Upstream::new`, `Tls::new`) in `mod.rs`, which
//! `config/ferry.toml` repeats (tests check that they agree). The order of errors is stable:
//! unknown keys of a table (sorted) before its known keys, which follow the order of the
//! documented file.

mod cache;
mod listeners;
mod location;
mod offload;
mod tls;
mod upstream;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use ::config::{Map, Value, ValueKind};

use super::env::ENV_ORIGIN;
use super::units::{parse_duration, parse_size};
use super::{
    AccessLog, Admin, Config, ConfigError, Io, MAX_CHUNK, MIN_CHUNK, SendPathSetting, Server,
};

type Table = Map<String, Value>;

const TOP_KEYS: [&str; 8] = [
    "server", "admin", "tls", "io", "upstream", "offload", "cache", "location",
];
const SERVER_KEYS: [&str; 7] = [
    "listen",
    "header_timeout",
    "keepalive_timeout",
    "send_timeout",
    "max_connections",
    "shutdown_grace",
    "access_log",
];
const ADMIN_KEYS: [&str; 1] = ["listen"];
const TLS_KEYS: [&str; 6] = ["listen", "cert", "key", "ktls", "alpn", "handshake_timeout"];
const IO_KEYS: [&str; 3] = ["send_path", "chunk", "directio_threshold"];
const UPSTREAM_KEYS: [&str; 6] = [
    "address",
    "connect_timeout",
    "response_timeout",
    "idle_connections",
    "forwarded_headers",
    "underscores_in_headers",
];
const OFFLOAD_KEYS: [&str; 4] = [
    "x_accel_redirect",
    "x_sendfile_roots",
    "advertise",
    "accel_mapping",
];
const CACHE_KEYS: [&str; 5] = [
    "dir",
    "max_size",
    "max_object_size",
    "lock_timeout",
    "stale_if_error",
];
const LOCATION_KEYS: [&str; 7] = [
    "prefix",
    "root",
    "index",
    "expires",
    "internal",
    "directio_threshold",
    "precompressed",
];

const ACCESS_LOGS: [(&str, AccessLog); 3] = [
    ("text", AccessLog::Text),
    ("json", AccessLog::Json),
    ("off", AccessLog::Off),
];
const SEND_PATHS: [(&str, SendPathSetting); 4] = [
    ("auto", SendPathSetting::Auto),
    ("sendfile", SendPathSetting::Sendfile),
    ("splice", SendPathSetting::Splice),
    ("buffered", SendPathSetting::Buffered),
];

/// Builds a [`Config`] from the merged tree, pushing every problem onto `errors`. The returned
/// value is meaningful only if no error was pushed. `env_names` maps a dotted key to the
/// variable that set it, for messages about values that came from the environment.
pub(super) fn validate(
    root: &Value,
    env_names: &BTreeMap<String, String>,
    errors: &mut Vec<ConfigError>,
) -> Config {
    let mut walker = Walker { env_names, errors };
    let empty = Table::new();
    let top = walker.table("config", root).unwrap_or(&empty);
    walker.unknown_keys("", top, &TOP_KEYS);
    let server = walker.server(top.get("server"));
    let admin = walker.admin(top.get("admin"));
    let server_listen = raw(top, "server", "listen");
    walker.listeners_apart(&server, server_listen, &admin, raw(top, "admin", "listen"));
    let tls = walker.tls(top.get("tls"), &server, &admin);
    let io = walker.io(top.get("io"));
    let upstream = walker.upstream(top.get("upstream"));
    if let Some(upstream) = &upstream {
        let value = raw(top, "upstream", "address");
        walker.upstream_not_ferry(upstream, &server, &admin, tls.as_ref(), value);
    }
    let offload = walker.offload(top.get("offload"));
    let cache = walker.cache(top.get("cache"));
    let location_value = top.get("location");
    let locations = walker.locations(location_value);
    // Cross-section checks look at the whole location list, so only at a complete one.
    let all_locations = location::count(location_value) == Some(locations.len());
    if all_locations {
        if let Some(mapping) = &offload.accel_mapping {
            let value = raw(top, "offload", "accel_mapping");
            walker.mapping_reaches_internal(mapping, &locations, value);
        }
        let upstream_given = upstream::given(top.get("upstream"));
        walker.something_to_serve(&locations, upstream_given);
    }
    Config {
        server,
        admin,
        io,
        locations,
        upstream,
        offload,
        tls,
        cache,
    }
}

/// The value of `section.key` in the top table, if both are there.
fn raw<'v>(top: &'v Table, section: &str, key: &str) -> Option<&'v Value> {
    match &top.get(section)?.kind {
        ValueKind::Table(table) => table.get(key),
        _ => None,
    }
}

struct Walker<'a> {
    env_names: &'a BTreeMap<String, String>,
    errors: &'a mut Vec<ConfigError>,
}

impl Walker<'_> {
    /// Records a problem with `key`; names the environment variable if `value` came from one.
    fn fail(&mut self, key: &str, value: Option<&Value>, message: impl Into<String>) {
        let mut message = message.into();
        if let Some(value) = value
            && value.origin() == Some(ENV_ORIGIN)
        {
            let base = key.split('[').next().unwrap_or(key);
            if let Some(name) = self.env_names.get(base) {
                message.push_str(&format!(" (from environment variable {name})"));
            }
        }
        self.errors.push(ConfigError::new(key, message));
    }

    fn wrong_type(&mut self, key: &str, value: &Value, expected: &str) {
        self.fail(
            key,
            Some(value),
            format!("expected {expected}, found {}", describe(value)),
        );
    }

    /// Parses `section.name` with `parse` if the key is present.
    fn field<T>(
        &mut self,
        table: &Table,
        section: &str,
        name: &str,
        parse: impl FnOnce(&mut Self, &str, &Value) -> Option<T>,
    ) -> Option<T> {
        let value = table.get(name)?;
        parse(self, &format!("{section}.{name}"), value)
    }

    /// Like [`Self::field`], but a missing key is an error.
    fn required<T>(
        &mut self,
        table: &Table,
        section: &str,
        name: &str,
        parse: impl FnOnce(&mut Self, &str, &Value) -> Option<T>,
    ) -> Option<T> {
        if !table.contains_key(name) {
            self.fail(&format!("{section}.{name}"), None, "missing required key");
        }
        self.field(table, section, name, parse)
    }

    fn table<'v>(&mut self, key: &str, value: &'v Value) -> Option<&'v Table> {
        match &value.kind {
            ValueKind::Table(table) => Some(table),
            _ => {
                self.wrong_type(key, value, "a table");
                None
            }
        }
    }

    /// Whether a problem with `key` or one of its elements (`key[i]`) is already recorded.
    fn reported(&self, key: &str) -> bool {
        self.errors.iter().any(|error| {
            error
                .key
                .strip_prefix(key)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('['))
        })
    }

    /// Reports the keys of `table` that are not in `known`, as `prefix.key` (sorted).
    fn unknown_keys(&mut self, prefix: &str, table: &Table, known: &[&str]) {
        let mut unknown: Vec<&String> = table
            .keys()
            .filter(|key| !known.contains(&key.as_str()))
            .collect();
        unknown.sort();
        for key in unknown {
            let full = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            self.fail(&full, None, "unknown key");
        }
    }

    fn server(&mut self, value: Option<&Value>) -> Server {
        let mut server = Server::default();
        let Some(table) = value.and_then(|value| self.table("server", value)) else {
            return server;
        };
        self.unknown_keys("server", table, &SERVER_KEYS);
        let s = "server";
        if let Some(listen) = self.field(table, s, "listen", Self::listen) {
            server.listen = listen;
        }
        if let Some(d) = self.field(table, s, "header_timeout", Self::positive_duration) {
            server.header_timeout = d;
        }
        if let Some(d) = self.field(table, s, "keepalive_timeout", Self::duration) {
            server.keepalive_timeout = d;
        }
        if let Some(d) = self.field(table, s, "send_timeout", Self::positive_duration) {
            server.send_timeout = d;
        }
        if let Some(n) = self.field(table, s, "max_connections", Self::max_connections) {
            server.max_connections = n;
        }
        if let Some(d) = self.field(table, s, "shutdown_grace", Self::duration) {
            server.shutdown_grace = d;
        }
        if let Some(log) = self.field(table, s, "access_log", |w, k, v| {
            w.choice(k, v, &ACCESS_LOGS)
        }) {
            server.access_log = log;
        }
        server
    }

    fn admin(&mut self, value: Option<&Value>) -> Admin {
        let mut admin = Admin::default();
        let Some(table) = value.and_then(|value| self.table("admin", value)) else {
            return admin;
        };
        self.unknown_keys("admin", table, &ADMIN_KEYS);
        if let Some(listen) = self.field(table, "admin", "listen", Self::addr) {
            admin.listen = listen;
        }
        admin
    }

    fn io(&mut self, value: Option<&Value>) -> Io {
        let mut io = Io::default();
        let Some(table) = value.and_then(|value| self.table("io", value)) else {
            return io;
        };
        self.unknown_keys("io", table, &IO_KEYS);
        if let Some(path) = self.field(table, "io", "send_path", |w, k, v| {
            w.choice(k, v, &SEND_PATHS)
        }) {
            io.send_path = path;
        }
        if let Some(chunk) = self.field(table, "io", "chunk", Self::chunk) {
            io.chunk = chunk;
        }
        if let Some(threshold) = self.field(table, "io", "directio_threshold", Self::threshold) {
            io.directio_threshold = threshold;
        }
        io
    }

    /// A `directio_threshold`: a size, where 0 (`"0"`) means off.
    fn threshold(&mut self, key: &str, value: &Value) -> Option<Option<NonZeroU64>> {
        let bytes = self.size(key, value)?;
        Some(NonZeroU64::new(bytes))
    }

    fn string<'v>(&mut self, key: &str, value: &'v Value, expected: &str) -> Option<&'v str> {
        match &value.kind {
            ValueKind::String(s) => Some(s),
            _ => {
                self.wrong_type(key, value, expected);
                None
            }
        }
    }

    fn boolean(&mut self, key: &str, value: &Value) -> Option<bool> {
        match value.kind {
            ValueKind::Boolean(b) => Some(b),
            _ => {
                self.wrong_type(key, value, "true or false");
                None
            }
        }
    }

    fn integer(&mut self, key: &str, value: &Value, expected: &str) -> Option<i128> {
        let int = as_integer(value);
        if int.is_none() {
            self.wrong_type(key, value, expected);
        }
        int
    }

    fn duration(&mut self, key: &str, value: &Value) -> Option<Duration> {
        if let Some(n) = as_integer(value) {
            let message = format!("invalid duration {n}: add a unit, e.g. \"{n}s\"");
            self.fail(key, Some(value), message);
            return None;
        }
        let text = self.string(key, value, "a duration string, e.g. \"10s\"")?;
        parse_duration(text)
            .map_err(|message| self.fail(key, Some(value), message))
            .ok()
    }

    fn positive_duration(&mut self, key: &str, value: &Value) -> Option<Duration> {
        let duration = self.duration(key, value)?;
        if duration.is_zero() {
            self.fail(key, Some(value), "must be greater than 0s");
            return None;
        }
        Some(duration)
    }

    fn addr(&mut self, key: &str, value: &Value) -> Option<SocketAddr> {
        let text = self.string(key, value, "an \"ip:port\" string, e.g. \"127.0.0.1:8080\"")?;
        let trimmed = text.trim();
        trimmed.parse().ok().or_else(|| {
            let message = format!(
                "invalid address {trimmed:?}: expected \"ip:port\" with a numeric ip, \
                 e.g. \"127.0.0.1:8080\" or \"[::1]:8080\""
            );
            self.fail(key, Some(value), message);
            None
        })
    }

    fn listen(&mut self, key: &str, value: &Value) -> Option<Vec<SocketAddr>> {
        let shape = ListShape {
            expected: "an array of \"ip:port\" strings, e.g. [\"127.0.0.1:8080\"]",
            empty: "at least one address is required",
            // Port 0 asks the kernel for a free port each time: listing it twice is fine.
            same: |a: &SocketAddr, b: &SocketAddr| a == b && a.port() != 0,
            describe: |addr: &SocketAddr| format!("address {addr}"),
        };
        self.list(key, value, &shape, Self::addr)
    }

    /// A non-empty array of items of which none is the `same` as an earlier one. From the
    /// environment, lists are comma-separated (see `config::env`) and a lone scalar is one
    /// item. Every bad item is reported with its index.
    fn list<T>(
        &mut self,
        key: &str,
        value: &Value,
        shape: &ListShape<T>,
        mut item: impl FnMut(&mut Self, &str, &Value) -> Option<T>,
    ) -> Option<Vec<T>> {
        let single;
        let items: &[Value] = match &value.kind {
            ValueKind::Array(items) => items,
            // The environment gives a scalar where try_parsing saw a number or a boolean.
            _ if value.origin() == Some(ENV_ORIGIN) => {
                single = [value.clone()];
                &single
            }
            _ => {
                self.wrong_type(key, value, shape.expected);
                return None;
            }
        };
        if items.is_empty() {
            self.fail(key, Some(value), shape.empty);
            return None;
        }
        let mut found: Vec<(usize, T)> = Vec::new();
        let mut all_valid = true;
        for (index, value) in items.iter().enumerate() {
            let item_key = format!("{key}[{index}]");
            let Some(parsed) = item(self, &item_key, value) else {
                all_valid = false;
                continue;
            };
            if let Some((first, _)) = found.iter().find(|(_, seen)| (shape.same)(seen, &parsed)) {
                let message = format!(
                    "duplicate {} (also {key}[{first}])",
                    (shape.describe)(&parsed)
                );
                self.fail(&item_key, Some(value), message);
                all_valid = false;
            }
            found.push((index, parsed));
        }
        all_valid.then(|| found.into_iter().map(|(_, parsed)| parsed).collect())
    }

    fn max_connections(&mut self, key: &str, value: &Value) -> Option<NonZeroUsize> {
        let n = self.integer(key, value, "a positive integer")?;
        if n < 1 {
            self.fail(key, Some(value), format!("must be at least 1, got {n}"));
            return None;
        }
        let n = usize::try_from(n).ok().and_then(NonZeroUsize::new);
        if n.is_none() {
            self.fail(key, Some(value), "too large");
        }
        n
    }

    fn choice<T: Copy>(&mut self, key: &str, value: &Value, options: &[(&str, T)]) -> Option<T> {
        let names: Vec<String> = options
            .iter()
            .map(|(name, _)| format!("{name:?}"))
            .collect();
        let names = names.join(", ");
        let text = self.string(key, value, &format!("one of {names}"))?;
        let found = options.iter().find(|(name, _)| *name == text);
        if found.is_none() {
            let message = format!("unknown value {text:?}; expected one of {names}");
            self.fail(key, Some(value), message);
        }
        found.map(|(_, option)| *option)
    }

    fn chunk(&mut self, key: &str, value: &Value) -> Option<NonZeroUsize> {
        let bytes = self.size(key, value)?;
        let chunk = usize::try_from(bytes)
            .ok()
            .filter(|n| (MIN_CHUNK..=MAX_CHUNK).contains(n))
            .and_then(NonZeroUsize::new);
        if chunk.is_none() {
            let message = format!("must be between 4KiB and 1GiB, got {bytes} bytes");
            self.fail(key, Some(value), message);
        }
        chunk
    }

    /// A size: a string with a unit ("2MiB") or a plain number of bytes.
    fn size(&mut self, key: &str, value: &Value) -> Option<u64> {
        let bytes = match (&value.kind, as_integer(value)) {
            (_, Some(n)) => match u64::try_from(n) {
                Ok(bytes) => bytes,
                Err(_) => {
                    self.fail(
                        key,
                        Some(value),
                        format!("invalid size {n}: must not be negative"),
                    );
                    return None;
                }
            },
            (ValueKind::String(text), None) => match parse_size(text) {
                Ok(bytes) => bytes,
                Err(message) => {
                    self.fail(key, Some(value), message);
                    return None;
                }
            },
            _ => {
                let expected = "a size string, e.g. \"2MiB\", or a number of bytes";
                self.wrong_type(key, value, expected);
                return None;
            }
        };
        Some(bytes)
    }
}

/// What [`Walker::list`] needs to know of a list's items.
struct ListShape<T> {
    /// The wrong-type message: what the key should hold.
    expected: &'static str,
    /// The message for an empty array.
    empty: &'static str,
    /// Whether an item repeats an earlier one.
    same: fn(&T, &T) -> bool,
    /// An item, as a duplicate's message names it.
    describe: fn(&T) -> String,
}

fn as_integer(value: &Value) -> Option<i128> {
    match value.kind {
        ValueKind::I64(n) => Some(n.into()),
        ValueKind::I128(n) => Some(n),
        ValueKind::U64(n) => Some(n.into()),
        ValueKind::U128(n) => i128::try_from(n).ok(),
        _ => None,
    }
}

/// What a value is, for "expected …, found …" messages.
fn describe(value: &Value) -> String {
    match &value.kind {
        ValueKind::Nil => "nothing".into(),
        ValueKind::Boolean(b) => format!("boolean {b}"),
        ValueKind::I64(n) => format!("integer {n}"),
        ValueKind::I128(n) => format!("integer {n}"),
        ValueKind::U64(n) => format!("integer {n}"),
        ValueKind::U128(n) => format!("integer {n}"),
        ValueKind::Float(x) => format!("float {x}"),
        ValueKind::String(s) => format!("string {s:?}"),
        ValueKind::Table(_) => "a table".into(),
        ValueKind::Array(_) => "an array".into(),
    }
}

#[cfg(test)]
mod tests;
