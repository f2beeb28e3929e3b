//! `[tls]`: the HTTPS listeners. A present section turns TLS on and needs `cert` and `key`;
//! only their shape is checked here (the TLS module reads the PEM files, and checks that the
//! key belongs to the certificate, when the server starts and on every reload of them). The TLS listeners must keep clear
//! of the plaintext and admin ones.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ::config::Value;

use super::listeners::{clash, item};
use super::walker::{ListShape, Walker};
use crate::config::{Admin, Alpn, DEFAULT_TLS_LISTEN, KtlsMode, Server, Tls};

/// The keys of this section, in the order config/ferry.toml documents them.
pub(super) const TLS_KEYS: [&str; 11] = [
    "listen",
    "cert",
    "key",
    "reload_interval",
    "ktls",
    "alpn",
    "handshake_timeout",
    "proxy_protocol",
    "session_cache",
    "session_tickets",
    "session_timeout",
];

/// The longest `session_timeout`: TLS 1.3 caps a ticket's lifetime at 7 days (RFC 8446
/// §4.6.1).
const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 60 * 60);

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
        let reload_interval = self.field(table, t, "reload_interval", Self::duration);
        let ktls = self.field(table, t, "ktls", |w, k, v| w.choice(k, v, &KTLS_MODES));
        let alpn = self.field(table, t, "alpn", Self::alpn);
        let handshake = self.field(table, t, "handshake_timeout", Self::positive_duration);
        let proxy_protocol = self.field(table, t, "proxy_protocol", Self::boolean);
        let session_cache = self.field(table, t, "session_cache", Self::session_count);
        let session_tickets = self.field(table, t, "session_tickets", Self::boolean);
        let session_timeout = self.field(table, t, "session_timeout", Self::session_timeout);
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
        if let Some(d) = reload_interval {
            tls.reload_interval = d;
        }
        if let Some(mode) = ktls {
            tls.ktls = mode;
        }
        if let Some(alpn) = alpn {
            tls.alpn = alpn;
        }
        if let Some(d) = handshake {
            tls.handshake_timeout = d;
        }
        if let Some(on) = proxy_protocol {
            tls.proxy_protocol = on;
        }
        if let Some(n) = session_cache {
            tls.session_cache = n;
        }
        if let Some(on) = session_tickets {
            tls.session_tickets = on;
        }
        if let Some(d) = session_timeout {
            tls.session_timeout = d;
        }
        (self.errors.len() == errors_before).then_some(tls)
    }

    /// A number of sessions: 0 (no cache) or more.
    fn session_count(&mut self, key: &str, value: &Value) -> Option<usize> {
        let n = self.integer(key, value, "a number of sessions (0 for no cache)")?;
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

    /// Whole seconds from 1s to 7 days: a ticket's lifetime is sent in seconds.
    fn session_timeout(&mut self, key: &str, value: &Value) -> Option<Duration> {
        let d = self.positive_duration(key, value)?;
        let message = if d.subsec_nanos() != 0 {
            "must be whole seconds (a ticket's lifetime is sent in seconds)"
        } else if d > MAX_SESSION_TIMEOUT {
            "must be at most 7d (TLS 1.3 allows no longer ticket lifetime)"
        } else {
            return Some(d);
        };
        self.fail(key, Some(value), message);
        None
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

    /// No TLS listener may be, or overlap, a plaintext or the admin listener, or an earlier
    /// TLS one (see `schema/listeners.rs`). `value` is `tls.listen` as given; `None` when
    /// `listen` is the default. Listeners whose own value is invalid (already reported,
    /// replaced by their default) are not compared.
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
        let ferry_others = others.len();
        for (index, addr) in listen.iter().enumerate() {
            // An exact repeat within tls.listen is already reported as a duplicate.
            let (plain, earlier_tls) = others.split_at(ferry_others);
            let earlier_tls = earlier_tls.iter().filter(|(_, other)| other != addr);
            let relation = clash(*addr, plain.iter().chain(earlier_tls));
            others.push((format!("tls.listen[{index}]"), *addr));
            let Some(relation) = relation else {
                continue;
            };
            match value {
                Some(_) => {
                    let key = format!("tls.listen[{index}]");
                    self.fail(&key, item(value, index), format!("{addr} {relation}"));
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
