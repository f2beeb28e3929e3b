//! `[upstream]`: the application behind ferry. Its address is a numeric `ip:port`, a
//! `host:port` whose host is a syntactically valid DNS name (resolved later, by the upstream
//! client, never here), or an absolute `unix:` socket path, and must not be one of ferry's
//! own listeners. A section without `address` means no upstream; its other keys are still
//! checked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use ::config::{Value, ValueKind};

use super::walker::Walker;
use crate::config::{Admin, Server, Tls, Upstream, UpstreamAddress};

/// The keys of this section, in the order config/ferry.toml documents them.
pub(super) const UPSTREAM_KEYS: [&str; 6] = [
    "address",
    "connect_timeout",
    "response_timeout",
    "idle_connections",
    "forwarded_headers",
    "underscores_in_headers",
];

/// The longest unix socket path: `sun_path` holds 108 bytes, the last one a NUL.
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
        Some(ValueKind::Table(table)) => table.contains_key("address"),
        Some(_) => true,
    }
}

impl Walker<'_> {
    /// `None` when the section or its address is absent, or when anything in it is invalid.
    pub(super) fn upstream(&mut self, value: Option<&Value>) -> Option<Upstream> {
        let table = self.table("upstream", value?)?;
        self.unknown_keys("upstream", table, &UPSTREAM_KEYS);
        let u = "upstream";
        let errors_before = self.errors.len();
        let address = self.field(table, u, "address", Self::upstream_address);
        let connect = self.field(table, u, "connect_timeout", Self::positive_duration);
        let response = self.field(table, u, "response_timeout", Self::positive_duration);
        let idle = self.field(table, u, "idle_connections", Self::idle_connections);
        let forwarded = self.field(table, u, "forwarded_headers", Self::boolean);
        let underscores = self.field(table, u, "underscores_in_headers", Self::boolean);
        let mut upstream = Upstream::new(address?);
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

    fn idle_connections(&mut self, key: &str, value: &Value) -> Option<usize> {
        let n = self.integer(key, value, "a number of connections (0 or more)")?;
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
    pub(super) fn upstream_not_ferry(
        &mut self,
        upstream: &Upstream,
        server: &Server,
        admin: &Admin,
        tls: Option<&Tls>,
        value: Option<&Value>,
    ) {
        let targets = match &upstream.address {
            UpstreamAddress::Tcp(addr) => vec![*addr],
            UpstreamAddress::Host { name, port } if is_localhost(name) => vec![
                SocketAddr::from((Ipv4Addr::LOCALHOST, *port)),
                SocketAddr::from((Ipv6Addr::LOCALHOST, *port)),
            ],
            UpstreamAddress::Host { .. } | UpstreamAddress::Unix(_) => return,
        };
        let shown = upstream.address.to_string();
        let own = server
            .listen
            .iter()
            .enumerate()
            .map(|(i, listen)| (format!("server.listen[{i}]"), *listen))
            .chain([("admin.listen".to_string(), admin.listen)])
            .find(|(_, listen)| targets.iter().any(|addr| reaches(*addr, *listen)));
        if let Some((key, listen)) = own {
            let message = format!(
                "{shown} is ferry's own listener ({key} = {listen}); requests would be proxied \
                 back to ferry in a loop"
            );
            self.fail("upstream.address", value, message);
            return;
        }
        let tls_listen = tls.map_or(&[][..], |tls| &tls.listen);
        let own = tls_listen
            .iter()
            .enumerate()
            .find(|(_, listen)| targets.iter().any(|addr| reaches(*addr, **listen)));
        if let Some((i, listen)) = own {
            let message = format!(
                "{shown} is ferry's own TLS listener (tls.listen[{i}] = {listen}); requests \
                 would be proxied back to ferry, in plaintext to a TLS port"
            );
            self.fail("upstream.address", value, message);
        }
    }
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
