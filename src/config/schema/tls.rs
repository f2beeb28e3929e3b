//! `[tls]`: the HTTPS listeners. A present section turns TLS on and needs `cert` and `key`;
//! only their shape is checked here (the TLS module reads the PEM files, and checks that the
//! key belongs to the certificate, when the server starts). The TLS listeners must keep clear
//! of the plaintext and admin ones.

use std::net::SocketAddr;
use std::path::PathBuf;

use ::config::{Value, ValueKind};

use super::{ListShape, TLS_KEYS, Walker};
use crate::config::{Admin, Alpn, DEFAULT_TLS_LISTEN, KtlsMode, Server, Tls};

const KTLS_MODES: [(&str, KtlsMode); 3] = [
    ("auto", KtlsMode::Auto),
    ("require", KtlsMode::Require),
    ("off", KtlsMode::Off),
];
const ALPNS: [Alpn; 2] = [Alpn::H2, Alpn::Http11];

impl Walker<'_> {
    /// `None` when the section is absent, or when anything in it is invalid. The listeners
    /// (given or the default) are checked against `server` and `admin` here, after the keys.
    pub(super) fn tls(
        &mut self,
        value: Option<&Value>,
        server: &Server,
        admin: &Admin,
    ) -> Option<Tls> {
        let table = self.table("tls", value?)?;
        self.unknown_keys("tls", table, &TLS_KEYS);
        let t = "tls";
        let errors_before = self.errors.len();
        let listen = self.field(table, t, "listen", Self::listen);
        let cert = self.required(table, t, "cert", Self::pem_path);
        let key = self.required(table, t, "key", Self::pem_path);
        let ktls = self.field(table, t, "ktls", |w, k, v| w.choice(k, v, &KTLS_MODES));
        let alpn = self.field(table, t, "alpn", Self::alpn);
        let handshake = self.field(table, t, "handshake_timeout", Self::positive_duration);
        let listen_value = table.get("listen");
        let listen = match (listen, listen_value) {
            (Some(listen), _) => Some(listen),
            // Invalid, already reported: nothing to compare.
            (None, Some(_)) => None,
            (None, None) => Some(vec![DEFAULT_TLS_LISTEN]),
        };
        if let Some(listen) = &listen {
            self.tls_listeners_apart(listen, listen_value, server, admin);
        }
        let mut tls = Tls::new(cert?, key?);
        tls.listen = listen?;
        if let Some(mode) = ktls {
            tls.ktls = mode;
        }
        if let Some(alpn) = alpn {
            tls.alpn = alpn;
        }
        if let Some(d) = handshake {
            tls.handshake_timeout = d;
        }
        (self.errors.len() == errors_before).then_some(tls)
    }

    /// A path to a PEM file; only its presence is checked here.
    fn pem_path(&mut self, key: &str, value: &Value) -> Option<PathBuf> {
        let text = self.string(key, value, "a PEM file path string")?;
        if text.is_empty() {
            self.fail(key, Some(value), "must not be empty");
            return None;
        }
        Some(PathBuf::from(text))
    }

    /// A non-empty array of distinct protocols, in the order given (the server's preference);
    /// from the environment a comma-separated list.
    fn alpn(&mut self, key: &str, value: &Value) -> Option<Vec<Alpn>> {
        let shape = ListShape {
            expected: "an array of protocols, e.g. [\"h2\", \"http/1.1\"]",
            empty: "at least one protocol is required",
            same: |a: &Alpn, b: &Alpn| a == b,
            describe: |alpn: &Alpn| format!("protocol {:?}", alpn.as_str()),
        };
        self.list(key, value, &shape, Self::alpn_protocol)
    }

    /// One of [`ALPNS`], spelled exactly as its protocol ID (ALPN IDs are case-sensitive).
    fn alpn_protocol(&mut self, key: &str, value: &Value) -> Option<Alpn> {
        let names: Vec<String> = ALPNS
            .iter()
            .map(|alpn| format!("{:?}", alpn.as_str()))
            .collect();
        let names = names.join(", ");
        let text = self.string(key, value, &format!("one of {names}"))?;
        let found = ALPNS.into_iter().find(|alpn| alpn.as_str() == text.trim());
        if found.is_none() {
            let message = format!("unknown value {text:?}; expected one of {names}");
            self.fail(key, Some(value), message);
        }
        found
    }

    /// No TLS listener may be, or overlap, a plaintext or the admin listener: ferry binds
    /// every listener with SO_REUSEPORT, so the second bind would succeed and the kernel
    /// would hand some connections meant for one listener to the other. `value` is
    /// `tls.listen` as given; `None` when `listen` is the default. Listeners whose own value
    /// is invalid (already reported, replaced by their default) are not compared.
    fn tls_listeners_apart(
        &mut self,
        listen: &[SocketAddr],
        value: Option<&Value>,
        server: &Server,
        admin: &Admin,
    ) {
        let mut others: Vec<(String, SocketAddr)> = Vec::new();
        if !self.reported("server.listen") {
            let plain = server.listen.iter().enumerate();
            others.extend(plain.map(|(i, addr)| (format!("server.listen[{i}]"), *addr)));
        }
        if !self.reported("admin.listen") {
            others.push(("admin.listen".into(), admin.listen));
        }
        for (index, addr) in listen.iter().enumerate() {
            let clash = others.iter().find(|(_, other)| overlaps(*addr, *other));
            let Some((other_key, other)) = clash else {
                continue;
            };
            let relation = if other == addr {
                format!("is also {other_key}")
            } else {
                format!("overlaps {other_key} = {other} (a wildcard address on the same port)")
            };
            match value {
                Some(value) => {
                    let item = match &value.kind {
                        ValueKind::Array(items) => items.get(index),
                        _ => Some(value),
                    };
                    let key = format!("tls.listen[{index}]");
                    self.fail(&key, item, format!("{addr} {relation}"));
                }
                None => {
                    let message = format!(
                        "{addr} (the default) {relation}; set tls.listen to another address"
                    );
                    self.fail("tls.listen", None, message);
                }
            }
        }
    }
}

/// Whether listeners on `a` and `b` would take connections for the same address: the same
/// address, or the same port with a wildcard address of the same family on one side, or `[::]`
/// on one side (dual-stack: ferry does not set IPV6_V6ONLY, so `[::]` takes IPv4 too). Port 0
/// listeners get a fresh port each.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() == 0 || a.port() != b.port() {
        return false;
    }
    a == b || covers(a, b) || covers(b, a)
}

/// Whether a listener on `wide` also takes the connections for `narrow`'s address.
fn covers(wide: SocketAddr, narrow: SocketAddr) -> bool {
    wide.ip().is_unspecified() && (wide.is_ipv6() || narrow.is_ipv4())
}
