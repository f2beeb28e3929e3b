//! `[upstream]`: the application behind ferry. Its address is a numeric `ip:port` or an
//! absolute `unix:` socket path (no DNS in this build), and must not be one of ferry's own
//! listeners. A section without `address` means no upstream; its other keys are still checked.

use std::net::SocketAddr;
use std::path::PathBuf;

use ::config::{Value, ValueKind};

use super::{UPSTREAM_KEYS, Walker};
use crate::config::{Admin, Server, Tls, Upstream, UpstreamAddress};

/// The longest unix socket path: `sun_path` holds 108 bytes, the last one a NUL.
const MAX_UNIX_PATH: usize = 107;

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
        (self.errors.len() == errors_before).then_some(upstream)
    }

    fn upstream_address(&mut self, key: &str, value: &Value) -> Option<UpstreamAddress> {
        let expected = "an \"ip:port\" or \"unix:/path\" string, e.g. \"127.0.0.1:3000\"";
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
    /// (to a TLS listener in plaintext, which fails every request instead).
    pub(super) fn upstream_not_ferry(
        &mut self,
        upstream: &Upstream,
        server: &Server,
        admin: &Admin,
        tls: Option<&Tls>,
        value: Option<&Value>,
    ) {
        let UpstreamAddress::Tcp(addr) = upstream.address else {
            return;
        };
        let own = server
            .listen
            .iter()
            .enumerate()
            .map(|(i, listen)| (format!("server.listen[{i}]"), *listen))
            .chain([("admin.listen".to_string(), admin.listen)])
            .find(|(_, listen)| reaches(addr, *listen));
        if let Some((key, listen)) = own {
            let message = format!(
                "{addr} is ferry's own listener ({key} = {listen}); requests would be proxied \
                 back to ferry in a loop"
            );
            self.fail("upstream.address", value, message);
            return;
        }
        let tls_listen = tls.map_or(&[][..], |tls| &tls.listen);
        let own = tls_listen
            .iter()
            .enumerate()
            .find(|(_, listen)| reaches(addr, **listen));
        if let Some((i, listen)) = own {
            let message = format!(
                "{addr} is ferry's own TLS listener (tls.listen[{i}] = {listen}); requests \
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

/// `"127.0.0.1:3000"`, `"[::1]:3000"` or `"unix:/run/app/app.sock"`; the error says why not,
/// without the value (the caller puts `invalid address "…"` in front).
pub(super) fn parse_upstream_address(text: &str) -> Result<UpstreamAddress, String> {
    if let Some(path) = text.strip_prefix("unix:") {
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
        return Ok(UpstreamAddress::Unix(PathBuf::from(path)));
    }
    // A URL, as nginx's proxy_pass takes: only its host and port are meant.
    if let Some((scheme, rest)) = text.split_once("://") {
        return Err(format!(
            "write the address without \"{scheme}://\", e.g. {:?}",
            rest.split('/').next().unwrap_or(rest)
        ));
    }
    let addr: SocketAddr = text.parse().map_err(|_| {
        "expected \"ip:port\" with a numeric ip (host names are not resolved: no DNS in this \
         build), e.g. \"127.0.0.1:3000\" or \"[::1]:3000\", or \"unix:/absolute/path\""
            .to_string()
    })?;
    if addr.port() == 0 {
        return Err("port 0 cannot be connected to".into());
    }
    Ok(UpstreamAddress::Tcp(addr))
}
