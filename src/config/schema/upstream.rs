//! `[upstream]` and `[upstreams.NAME]`: the applications behind ferry, with the same keys.
//! Each server address is a numeric `ip:port`, a `host:port` whose host is a syntactically
//! valid DNS name (resolved later, by the upstream client, never here), or an absolute
//! `unix:` socket path, and must not be one of ferry's own listeners. An `[upstream]`
//! without `address` or `servers` means no default upstream; its other keys are still
//! checked. A named upstream must have servers; its name is a metric label, so it is
//! letters, digits, `-` and `_`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::PathBuf;

use ::config::{Value, ValueKind};

use super::walker::{ListShape, Table, Walker};
use crate::config::{Admin, Balance, DEFAULT_UPSTREAM, Server, Tls, Upstream, UpstreamAddress};

/// The keys of this section (and of each `[upstreams.NAME]`), in the order config/ferry.toml
/// documents them.
pub(super) const UPSTREAM_KEYS: [&str; 13] = [
    "address",
    "servers",
    "balance",
    "max_fails",
    "fail_timeout",
    "max_conns",
    "queue",
    "queue_timeout",
    "connect_timeout",
    "response_timeout",
    "idle_connections",
    "forwarded_headers",
    "underscores_in_headers",
];

/// The longest upstream name: it is a metric label value and appears in every log line.
const MAX_NAME: usize = 64;

const BALANCES: [(&str, Balance); 2] = [
    ("round_robin", Balance::RoundRobin),
    ("least_conn", Balance::LeastConn),
];

/// The unix socket path the longest `sun_path` holds: 108 bytes, the last one a NUL.
const MAX_UNIX_PATH: usize = 107;

/// The longest DNS name in text form, without a trailing dot (RFC 1035 §2.3.4: 255 bytes on
/// the wire, which is 253 characters written out).
const MAX_HOST_NAME: usize = 253;

/// The longest DNS label (RFC 1035 §2.3.4).
const MAX_LABEL: usize = 63;

/// What an address may look like, for the messages that reject one.
const ADDRESS_FORMS: &str = "expected \"host:port\", \"ip:port\" or \"unix:/absolute/path\", e.g. \
                             \"app:3000\", \"127.0.0.1:3000\", \"[::1]:3000\" or \
                             \"unix:/run/app/app.sock\"";

/// Whether `[upstream]` names an address (valid or not) or is not even a table (already
/// reported): either way, "nothing to serve" would only be noise.
pub(super) fn given(value: Option<&Value>) -> bool {
    match value.map(|value| &value.kind) {
        None => false,
        Some(ValueKind::Table(table)) => {
            table.contains_key("address") || table.contains_key("servers")
        }
        Some(_) => true,
    }
}

/// ferry's own listeners, which no upstream server may be.
pub(super) struct Own<'a> {
    pub server: &'a Server,
    pub admin: &'a Admin,
    pub tls: Option<&'a Tls>,
}

impl Walker<'_> {
    /// `[upstream]`: `None` when the section or its servers are absent, or when anything in
    /// it is invalid.
    pub(super) fn upstream(&mut self, value: Option<&Value>, own: &Own) -> Option<Upstream> {
        let table = self.table("upstream", value?)?;
        self.upstream_table("upstream", table, own, false)
    }

    /// `[upstreams.NAME]` sections, by name; each invalid one is left out (and reported).
    pub(super) fn upstreams(
        &mut self,
        value: Option<&Value>,
        own: &Own,
    ) -> BTreeMap<String, Upstream> {
        let mut found = BTreeMap::new();
        let Some(table) = value.and_then(|value| self.table("upstreams", value)) else {
            return found;
        };
        // In name order, so that errors come in a stable order.
        let mut sections: Vec<_> = table.iter().collect();
        sections.sort_by_key(|(name, _)| name.as_str());
        for (name, value) in sections {
            let key = format!("upstreams.{name}");
            if let Err(why) = check_name(name) {
                self.fail(&key, None, why);
                continue;
            }
            let Some(section) = self.table(&key, value) else {
                continue;
            };
            if let Some(upstream) = self.upstream_table(&key, section, own, true) {
                found.insert(name.clone(), upstream);
            }
        }
        found
    }

    /// The keys of one upstream table named `u`; `required`: its servers must be given.
    fn upstream_table(
        &mut self,
        u: &str,
        table: &Table,
        own: &Own,
        required: bool,
    ) -> Option<Upstream> {
        self.unknown_keys(u, table, &UPSTREAM_KEYS);
        let errors_before = self.errors.len();
        let address = self.field(table, u, "address", Self::upstream_address);
        let servers = self.field(table, u, "servers", Self::upstream_servers);
        let balance = self.field(table, u, "balance", |w, k, v| w.choice(k, v, &BALANCES));
        let max_fails = self.field(table, u, "max_fails", Self::max_fails);
        let fail_timeout = self.field(table, u, "fail_timeout", Self::positive_duration);
        let max_conns = self.field(table, u, "max_conns", Self::count);
        let queue = self.field(table, u, "queue", Self::count);
        let queue_timeout = self.field(table, u, "queue_timeout", Self::positive_duration);
        let connect = self.field(table, u, "connect_timeout", Self::positive_duration);
        let response = self.field(table, u, "response_timeout", Self::positive_duration);
        let idle = self.field(table, u, "idle_connections", Self::count);
        let forwarded = self.field(table, u, "forwarded_headers", Self::boolean);
        let underscores = self.field(table, u, "underscores_in_headers", Self::boolean);
        let (servers, keys) = match (table.get("address"), table.get("servers")) {
            (Some(_), Some(value)) => {
                let message = "give either address (one server) or servers, not both";
                self.fail(&format!("{u}.servers"), Some(value), message);
                return None;
            }
            (Some(_), None) => (vec![address?], vec![format!("{u}.address")]),
            (None, Some(_)) => {
                let servers = servers?;
                let keys = (0..servers.len()).map(|i| format!("{u}.servers[{i}]"));
                (servers, keys.collect())
            }
            (None, None) => {
                if required {
                    self.fail(u, None, "no servers: add servers = [\"host:port\", ...]");
                }
                return None;
            }
        };
        for (address, key) in servers.iter().zip(&keys) {
            let value = table.get("address").or(table.get("servers"));
            self.upstream_not_ferry(address, key, own, value);
        }
        let mut upstream = Upstream::new(servers[0].clone());
        upstream.servers = servers;
        if let Some(b) = balance {
            upstream.balance = b;
        }
        if let Some(n) = max_fails {
            upstream.max_fails = n;
        }
        if let Some(d) = fail_timeout {
            upstream.fail_timeout = d;
        }
        if let Some(n) = max_conns {
            upstream.max_conns = NonZeroUsize::new(n);
        }
        if let Some(n) = queue {
            upstream.queue = n;
        }
        if let Some(d) = queue_timeout {
            upstream.queue_timeout = d;
        }
        if let Some(d) = connect {
            upstream.connect_timeout = d;
        }
        if let Some(d) = response {
            upstream.response_timeout = d;
        }
        if let Some(n) = idle {
            upstream.idle_connections = n;
        }
        if let Some(b) = forwarded {
            upstream.forwarded_headers = b;
        }
        if let Some(b) = underscores {
            upstream.underscores_in_headers = b;
        }
        (self.errors.len() == errors_before).then_some(upstream)
    }

    fn upstream_address(&mut self, key: &str, value: &Value) -> Option<UpstreamAddress> {
        let expected =
            "a \"host:port\", \"ip:port\" or \"unix:/path\" string, e.g. \"127.0.0.1:3000\"";
        let text = self.string(key, value, expected)?;
        parse_upstream_address(text.trim())
            .map_err(|why| self.fail(key, Some(value), format!("invalid address {text:?}: {why}")))
            .ok()
    }

    fn upstream_servers(&mut self, key: &str, value: &Value) -> Option<Vec<UpstreamAddress>> {
        let shape = ListShape {
            expected: "an array of addresses, e.g. [\"127.0.0.1:3000\", \"unix:/run/app.sock\"]",
            empty: "at least one server is required",
            same: |a: &UpstreamAddress, b: &UpstreamAddress| a == b,
            describe: |address: &UpstreamAddress| format!("server {:?}", address.to_string()),
        };
        self.list(key, value, &shape, Self::upstream_address)
    }

    fn max_fails(&mut self, key: &str, value: &Value) -> Option<u32> {
        let n = self.count(key, value)?;
        u32::try_from(n)
            .map_err(|_| self.fail(key, Some(value), "too large"))
            .ok()
    }

    /// A number of connections, requests or failures: 0 or more.
    pub(super) fn count(&mut self, key: &str, value: &Value) -> Option<usize> {
        let n = self.integer(key, value, "a number (0 or more)")?;
        if n < 0 {
            self.fail(key, Some(value), format!("must not be negative, got {n}"));
            return None;
        }
        let n = usize::try_from(n).ok();
        if n.is_none() {
            self.fail(key, Some(value), "too large");
        }
        n
    }

    /// An upstream that is one of ferry's own listeners would proxy every request to itself
    /// (to a TLS listener in plaintext, which fails every request instead). Only numeric
    /// addresses and `localhost` (RFC 6761 §6.3: always loopback) can be checked here: what
    /// another host name stands for is known only once it resolves, and may change.
    fn upstream_not_ferry(
        &mut self,
        address: &UpstreamAddress,
        key: &str,
        own: &Own,
        value: Option<&Value>,
    ) {
        let targets = match address {
            UpstreamAddress::Tcp(addr) => vec![*addr],
            UpstreamAddress::Host { name, port } if is_localhost(name) => vec![
                SocketAddr::from((Ipv4Addr::LOCALHOST, *port)),
                SocketAddr::from((Ipv6Addr::LOCALHOST, *port)),
            ],
            UpstreamAddress::Host { .. } | UpstreamAddress::Unix(_) => return,
        };
        let shown = address.to_string();
        let listened = own
            .server
            .listen
            .iter()
            .enumerate()
            .map(|(i, listen)| (format!("server.listen[{i}]"), *listen))
            .chain([("admin.listen".to_string(), own.admin.listen)])
            .find(|(_, listen)| targets.iter().any(|addr| reaches(*addr, *listen)));
        if let Some((own_key, listen)) = listened {
            let message = format!(
                "{shown} is ferry's own listener ({own_key} = {listen}); requests would be \
                 proxied back to ferry in a loop"
            );
            self.fail(key, value, message);
            return;
        }
        let tls_listen = own.tls.map_or(&[][..], |tls| &tls.listen);
        let listened = tls_listen
            .iter()
            .enumerate()
            .find(|(_, listen)| targets.iter().any(|addr| reaches(*addr, **listen)));
        if let Some((i, listen)) = listened {
            let message = format!(
                "{shown} is ferry's own TLS listener (tls.listen[{i}] = {listen}); requests \
                 would be proxied back to ferry, in plaintext to a TLS port"
            );
            self.fail(key, value, message);
        }
    }
}

/// An upstream name: letters, digits, `-` and `_`, as it is a metric label value and a
/// `[[location]] upstream` reference; not [`DEFAULT_UPSTREAM`], which is `[upstream]`'s.
fn check_name(name: &str) -> Result<(), String> {
    if name == DEFAULT_UPSTREAM {
        return Err(format!(
            "the name {DEFAULT_UPSTREAM:?} is [upstream]'s (the upstream of locations that name \
             none); choose another"
        ));
    }
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(format!(
            "invalid name {name:?}: 1 to {MAX_NAME} letters, digits, '-' or '_'"
        ));
    }
    Ok(())
}

/// Whether connecting to `target` reaches a socket bound to `listen`: the same address, or a
/// loopback address on the port of a wildcard listener of the same family. Port 0 listeners
/// get a fresh port, which no configured address can name.
fn reaches(target: SocketAddr, listen: SocketAddr) -> bool {
    if listen.port() == 0 || target.port() != listen.port() {
        return false;
    }
    target == listen
        || (listen.ip().is_unspecified()
            && target.ip().is_loopback()
            && target.is_ipv4() == listen.is_ipv4())
}

/// `"127.0.0.1:3000"`, `"[::1]:3000"`, `"app:3000"` or `"unix:/run/app/app.sock"`; the
/// error says why not, without the value (the caller puts `invalid address "…"` in front).
pub(super) fn parse_upstream_address(text: &str) -> Result<UpstreamAddress, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        return parse_unix_path(path);
    }
    // A URL, as nginx's proxy_pass takes: only its host and port are meant.
    if let Some((scheme, rest)) = text.split_once("://") {
        return Err(format!(
            "write the address without \"{scheme}://\", e.g. {:?}",
            rest.split('/').next().unwrap_or(rest)
        ));
    }
    match text.parse::<SocketAddr>() {
        Ok(addr) if addr.port() == 0 => Err("port 0 cannot be connected to".into()),
        Ok(addr) => Ok(UpstreamAddress::Tcp(addr)),
        Err(_) => parse_host_port(text),
    }
}

fn parse_unix_path(path: &str) -> Result<UpstreamAddress, String> {
    let example = "e.g. \"unix:/run/app/app.sock\"";
    if path.is_empty() {
        return Err(format!("no socket path after \"unix:\", {example}"));
    }
    if !path.starts_with('/') {
        return Err(format!("the socket path must be absolute, {example}"));
    }
    if path.len() > MAX_UNIX_PATH {
        return Err(format!(
            "the socket path is {} bytes, longer than the {MAX_UNIX_PATH} a unix socket \
             address can hold",
            path.len()
        ));
    }
    Ok(UpstreamAddress::Unix(PathBuf::from(path)))
}

/// `"app:3000"`, `"localhost:8080"`, `"api.internal.example.:443"`: what is not an IP
/// socket address. Bare IPv6 addresses and IPs without a port are told apart from host names
/// so that the message says what is missing.
fn parse_host_port(text: &str) -> Result<UpstreamAddress, String> {
    if text.is_empty() {
        return Err(ADDRESS_FORMS.into());
    }
    if text.starts_with('[') {
        return Err(
            "expected \"[ipv6]:port\" with a valid IPv6 address and port, e.g. \
                    \"[::1]:3000\""
                .into(),
        );
    }
    if text.parse::<Ipv6Addr>().is_ok() || text.matches(':').count() > 1 {
        return Err(
            "an IPv6 address goes in brackets, followed by the port, e.g. \"[::1]:3000\"".into(),
        );
    }
    let Some((name, port)) = text.rsplit_once(':') else {
        let kind = if text.parse::<IpAddr>().is_ok() {
            "an IP address"
        } else {
            "a host"
        };
        return Err(format!(
            "{kind} without a port: add the port the app listens on, e.g. \"{text}:3000\""
        ));
    };
    // Digits only: `u16::from_str` would also take a sign ("+80").
    let number = port
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| port.parse::<u16>().ok())
        .flatten();
    let port = match number {
        Some(0) => return Err("port 0 cannot be connected to".into()),
        Some(port) => port,
        None => {
            return Err(format!(
                "the port must be a number from 1 to 65535, found {port:?}"
            ));
        }
    };
    check_host_name(name)?;
    Ok(UpstreamAddress::Host {
        name: name.to_string(),
        port,
    })
}

/// A DNS host name as RFC 1123 §2.1 allows: dot-separated labels of 1 to 63 letters, digits
/// and hyphens, not beginning or ending with a hyphen, 253 characters in all, optionally
/// one trailing dot (a fully qualified name). Underscores are let through as well: DNS
/// itself takes them (RFC 2181 §11), Docker's resolver answers for compose service names
/// such as `my_app`, and the system resolver looks them up. The last label must not be all
/// digits (RFC 3696 §2), which is what makes `300.1.1.1` a mistyped IP address rather than
/// a name.
fn check_host_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("no host before the port, e.g. \"app:3000\"".into());
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.len() > MAX_HOST_NAME {
        return Err(format!(
            "the host name is {} characters, longer than the {MAX_HOST_NAME} DNS allows",
            name.len()
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(
                "the host name has an empty label (two dots in a row, or a leading \
                        dot)"
                    .into(),
            );
        }
        if label.len() > MAX_LABEL {
            return Err(format!(
                "the host name's label {label:?} is {} characters, longer than the \
                 {MAX_LABEL} DNS allows",
                label.len()
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !c.is_ascii_alphanumeric() && *c != '-' && *c != '_')
        {
            return Err(format!(
                "{c:?} cannot be in a host name: letters, digits, '-', '_' and '.' only"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "the host name's label {label:?} begins or ends with '-' (RFC 1123)"
            ));
        }
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{name:?} is neither a valid IP address nor a host name (a host name does not end \
             in an all-digit label)"
        ));
    }
    Ok(())
}

/// `localhost` and names under it, which resolve to loopback addresses (RFC 6761 §6.3).
fn is_localhost(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}
