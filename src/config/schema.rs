//! The schema: walks the merged value tree (file + environment) against the known keys and
//! turns it into a [`Config`], collecting every problem instead of stopping at the first.
//!
//! Each key has its own parser here (the `[[location]]` list in `schema/location.rs`,
//! `[tls]` in `schema/tls.rs`, `[upstream]` and `[upstreams.NAME]` in `schema/upstream.rs`,
//! `[offload]` in `schema/offload.rs`, `[cache]` in `schema/cache.rs`, `[spool]` in
//! `schema/spool.rs`, the `add_header` lists and `server.redirect_https` in
//! `schema/headers.rs`); durations and sizes go through
//! `units.rs`. Checks that span sections
//! (the listeners against each other in `schema/listeners.rs`, the upstream
//! against all of them, the accel mapping against the locations, something to serve at all)
//! run after the sections they need, cross-section ones last. Absent keys keep the defaults of
//! the `Default` impls (and `Upstream::new`, `Tls::new`) in `mod.rs`, which
//! `config/ferry.toml` repeats (tests check that they agree). The order of errors is stable:
//! unknown keys of a table (sorted) before its known keys, which follow the order of the
//! documented file.

mod cache;
mod headers;
mod listeners;
mod location;
mod offload;
mod spool;
mod tls;
mod upstream;
mod walker;

use std::collections::BTreeMap;

use ::config::Value;

use super::position::Spans;
use super::{AccessLog, Admin, AdminToken, Config, ConfigError, Io, SendPathSetting, Server};
use crate::ingress::Cidr;
use walker::{ListShape, Table, Walker, raw};

const TOP_KEYS: [&str; 10] = [
    "server",
    "admin",
    "tls",
    "io",
    "upstream",
    "upstreams",
    "offload",
    "cache",
    "spool",
    "location",
];
const SERVER_KEYS: [&str; 15] = [
    "listen",
    "header_timeout",
    "keepalive_timeout",
    "send_timeout",
    "max_connections",
    "shutdown_grace",
    "access_log",
    "max_body_size",
    "trusted_proxies",
    "proxy_protocol",
    "add_header",
    "redirect_https",
    "h2c",
    "pid_file",
    "upgrade_socket",
];
const ADMIN_KEYS: [&str; 2] = ["listen", "token_file"];
const IO_KEYS: [&str; 5] = [
    "send_path",
    "chunk",
    "directio_threshold",
    "open_file_cache",
    "open_file_cache_valid",
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

/// Builds a [`Config`] from the merged tree, pushing every problem onto `errors` (placed in
/// the file when `spans` are given). With errors, the value holds what is valid: sections with
/// an error at their defaults or out, the valid locations alone, each with its index in the
/// file (the second value). `env_names` maps a dotted key to the
/// variable that set it, for messages about values that came from the environment.
pub(super) fn validate(
    root: &Value,
    env_names: &BTreeMap<String, String>,
    spans: Option<&Spans<'_>>,
    errors: &mut Vec<ConfigError>,
) -> (Config, Vec<usize>) {
    let mut walker = Walker {
        env_names,
        errors,
        spans,
    };
    let empty = Table::new();
    let top = walker.table("config", root).unwrap_or(&empty);
    walker.unknown_keys("", top, &TOP_KEYS);
    let server = walker.server(top.get("server"));
    let admin = walker.admin(top.get("admin"));
    let server_listen = raw(top, "server", "listen");
    walker.listeners_apart(&server, server_listen, &admin, raw(top, "admin", "listen"));
    let tls = walker.tls(top.get("tls"), &server, &admin);
    let redirect = raw(top, "server", "redirect_https");
    walker.redirect_has_a_target(&server, top.contains_key("tls"), redirect);
    let io = walker.io(top.get("io"));
    let own = upstream::Own {
        server: &server,
        admin: &admin,
        tls: tls.as_ref(),
    };
    let upstream = walker.upstream(top.get("upstream"), &own);
    let upstreams = walker.upstreams(top.get("upstreams"), &own);
    let offload = walker.offload(top.get("offload"));
    let cache = walker.cache(top.get("cache"));
    let spool = walker.spool(top.get("spool"));
    let location_value = top.get("location");
    let (location_index, locations): (Vec<usize>, Vec<_>) =
        walker.locations(location_value).into_iter().unzip();
    // Cross-section checks look at the whole location list, so only at a complete one.
    let all_locations = location::count(location_value) == Some(locations.len());
    if all_locations {
        if let Some(mapping) = &offload.accel_mapping {
            let value = raw(top, "offload", "accel_mapping");
            walker.mapping_reaches_internal(mapping, &locations, value);
        }
        let upstream_given = upstream::given(top.get("upstream"));
        walker.something_to_serve(&locations, upstream_given);
        walker.location_upstreams_exist(&locations, &upstreams);
    }
    let config = Config {
        server,
        admin,
        io,
        locations,
        upstream,
        upstreams,
        offload,
        tls,
        cache,
        spool,
    };
    (config, location_index)
}

impl Walker<'_> {
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
        if let Some(size) = self.field(table, s, "max_body_size", Self::size) {
            server.max_body_size = size;
        }
        if let Some(networks) = self.field(table, s, "trusted_proxies", Self::trusted_proxies) {
            server.trusted_proxies = networks;
        }
        if let Some(on) = self.field(table, s, "proxy_protocol", Self::boolean) {
            server.proxy_protocol = on;
        }
        if let Some(headers) = self.field(table, s, "add_header", Self::add_headers) {
            server.add_header = headers;
        }
        if let Some(redirect) = self.field(table, s, "redirect_https", Self::redirect_https) {
            server.redirect_https = redirect;
        }
        if let Some(on) = self.field(table, s, "h2c", Self::boolean) {
            server.h2c = on;
        }
        if let Some(path) = self.field(table, s, "pid_file", Self::optional_path) {
            server.pid_file = path;
        }
        if let Some(path) = self.field(table, s, "upgrade_socket", Self::optional_path) {
            server.upgrade_socket = path;
        }
        server
    }

    /// An array of networks (`"10.0.0.0/8"`, `"fd00::/8"`, a bare address), possibly empty;
    /// from the environment a comma-separated list, where an empty value is the empty list.
    fn trusted_proxies(&mut self, key: &str, value: &Value) -> Option<Vec<Cidr>> {
        let empty = match &value.kind {
            ::config::ValueKind::Array(items) => match items.as_slice() {
                [] => true,
                [only] => {
                    value.origin() == Some(super::env::ENV_ORIGIN)
                        && matches!(&only.kind, ::config::ValueKind::String(s) if s.trim().is_empty())
                }
                _ => false,
            },
            ::config::ValueKind::String(s) => {
                value.origin() == Some(super::env::ENV_ORIGIN) && s.trim().is_empty()
            }
            _ => false,
        };
        if empty {
            return Some(Vec::new());
        }
        let shape = ListShape {
            expected: "an array of networks, e.g. [\"10.0.0.0/8\", \"fd00::/8\"]",
            empty: "unreachable: an empty list is allowed",
            same: |a: &Cidr, b: &Cidr| a == b,
            describe: |network: &Cidr| format!("network {network}"),
        };
        self.list(key, value, &shape, |w, k, v| {
            let text = w.string(k, v, "a network string, e.g. \"10.0.0.0/8\"")?;
            Cidr::parse(text)
                .map_err(|message| w.fail(k, Some(v), message))
                .ok()
        })
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
        admin.token = self.field(table, "admin", "token_file", Self::token_file);
        admin
    }

    /// `admin.token_file`: a path, read now; the token is its content without surrounding
    /// whitespace (a trailing newline), and must be visible ASCII so that it fits in an
    /// `Authorization: Bearer` header.
    fn token_file(&mut self, key: &str, value: &Value) -> Option<AdminToken> {
        let path = self.string(key, value, "a file path string")?;
        if path.is_empty() {
            self.fail(key, Some(value), "must not be empty");
            return None;
        }
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) => {
                self.fail(key, Some(value), format!("cannot read {path}: {err}"));
                return None;
            }
        };
        let secret = text.trim();
        if secret.is_empty() {
            let message = format!("{path} is empty: write the token into it");
            self.fail(key, Some(value), message);
            return None;
        }
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            let message = format!(
                "{path}: the token must be visible ASCII characters without spaces or line breaks"
            );
            self.fail(key, Some(value), message);
            return None;
        }
        Some(AdminToken::new(path.into(), secret.to_string()))
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
        if let Some(n) = self.field(table, "io", "open_file_cache", Self::count) {
            io.open_file_cache = n;
        }
        if let Some(d) = self.field(
            table,
            "io",
            "open_file_cache_valid",
            Self::positive_duration,
        ) {
            io.open_file_cache_valid = d;
        }
        io
    }
}

#[cfg(test)]
mod tests;
