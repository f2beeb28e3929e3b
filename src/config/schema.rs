//! The schema: walks the merged value tree (file + environment) against the known keys and
//! turns it into a [`Config`], collecting every problem instead of stopping at the first.
//!
//! Each key has its own parser here (the `[[location]]` list in `schema/location.rs`,
//! `[tls]` in `schema/tls.rs`, `[upstream]` in `schema/upstream.rs`, `[offload]` in
//! `schema/offload.rs`, `[cache]` in `schema/cache.rs`, the `add_header` lists and
//! `server.redirect_https` in `schema/headers.rs`); durations and sizes go through
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
mod tls;
mod upstream;
mod walker;

use std::collections::BTreeMap;

use ::config::Value;

use super::{AccessLog, Admin, Config, ConfigError, Io, SendPathSetting, Server};
use walker::{Table, Walker, raw};

const TOP_KEYS: [&str; 8] = [
    "server", "admin", "tls", "io", "upstream", "offload", "cache", "location",
];
const SERVER_KEYS: [&str; 9] = [
    "listen",
    "header_timeout",
    "keepalive_timeout",
    "send_timeout",
    "max_connections",
    "shutdown_grace",
    "access_log",
    "add_header",
    "redirect_https",
];
const ADMIN_KEYS: [&str; 1] = ["listen"];
const IO_KEYS: [&str; 3] = ["send_path", "chunk", "directio_threshold"];

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
    let redirect = raw(top, "server", "redirect_https");
    walker.redirect_has_a_target(&server, top.contains_key("tls"), redirect);
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
        if let Some(headers) = self.field(table, s, "add_header", Self::add_headers) {
            server.add_header = headers;
        }
        if let Some(redirect) = self.field(table, s, "redirect_https", Self::redirect_https) {
            server.redirect_https = redirect;
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
}

#[cfg(test)]
mod tests;
