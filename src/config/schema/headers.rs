//! What ferry adds to responses and the https redirect: the `add_header` lists (in `[server]`
//! and in each `[[location]]`: `{ name, value, always }` tables, each name a token ferry does
//! not frame responses with itself, each value free of control bytes) and
//! `server.redirect_https` (`false`, `true` for the first TLS listener's port, or a port),
//! which with `true` needs a `[tls]` section.

use std::num::NonZeroU16;

use ::config::{Value, ValueKind};

use super::walker::{Walker, as_integer};
use crate::config::{AddHeader, RedirectHttps, Server};

/// The keys of one `add_header` item.
const ITEM_KEYS: [&str; 3] = ["name", "value", "always"];

/// Fields ferry writes itself or that describe the connection: an added one would
/// contradict the framing (lowercase).
const FORBIDDEN: [&str; 10] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
    "date",
    "server",
];

impl Walker<'_> {
    /// An `add_header` list; an empty array is the default (none), not an error.
    pub(super) fn add_headers(&mut self, key: &str, value: &Value) -> Option<Vec<AddHeader>> {
        let ValueKind::Array(items) = &value.kind else {
            let expected = "an array of { name = \"...\", value = \"...\" } tables";
            self.wrong_type(key, value, expected);
            return None;
        };
        let mut headers = Vec::with_capacity(items.len());
        let mut all_valid = true;
        for (index, item) in items.iter().enumerate() {
            match self.add_header(&format!("{key}[{index}]"), item) {
                Some(header) => headers.push(header),
                None => all_valid = false,
            }
        }
        all_valid.then_some(headers)
    }

    fn add_header(&mut self, key: &str, value: &Value) -> Option<AddHeader> {
        let table = self.table(key, value)?;
        self.unknown_keys(key, table, &ITEM_KEYS);
        let name = self.required(table, key, "name", Self::header_name);
        let text = self.required(table, key, "value", Self::header_value);
        let always = self.field(table, key, "always", Self::boolean);
        let always = match (always, table.get("always")) {
            (Some(always), _) => always,
            (None, None) => false,
            (None, Some(_)) => return None,
        };
        Some(AddHeader {
            name: name?,
            value: text?,
            always,
        })
    }

    fn header_name(&mut self, key: &str, value: &Value) -> Option<String> {
        let text = self.string(key, value, "a header name string")?;
        let problem = if text.is_empty() {
            Some("must not be empty".to_string())
        } else if !text.bytes().all(is_tchar) {
            Some(format!(
                "invalid header name {text:?}: only letters, digits and !#$%&'*+-.^_`|~"
            ))
        } else if FORBIDDEN.contains(&text.to_ascii_lowercase().as_str()) {
            Some(format!(
                "{text:?} cannot be added: ferry sets it itself or it describes the connection"
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            self.fail(key, Some(value), problem);
            return None;
        }
        Some(text.to_owned())
    }

    fn header_value(&mut self, key: &str, value: &Value) -> Option<String> {
        let text = self.string(key, value, "a header value string")?;
        let problem = if text.trim().is_empty() {
            Some("must not be empty")
        } else if text.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            Some("must not hold control characters (CR, LF, ...)")
        } else if text.trim() != text {
            Some("must not start or end with white space")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.fail(key, Some(value), problem);
            return None;
        }
        Some(text.to_owned())
    }

    /// `false`, `true` or a port (1-65535).
    pub(super) fn redirect_https(
        &mut self,
        key: &str,
        value: &Value,
    ) -> Option<Option<RedirectHttps>> {
        const EXPECTED: &str = "true, false or a port number (e.g. 443)";
        if let ValueKind::Boolean(on) = value.kind {
            return Some(on.then_some(RedirectHttps::TlsListener));
        }
        let Some(n) = as_integer(value) else {
            self.wrong_type(key, value, EXPECTED);
            return None;
        };
        let port = u16::try_from(n).ok().and_then(NonZeroU16::new);
        if port.is_none() {
            self.fail(
                key,
                Some(value),
                format!("invalid port {n}: expected 1 to 65535"),
            );
        }
        port.map(|port| Some(RedirectHttps::Port(port)))
    }

    /// `redirect_https = true` names a TLS listener's port: there must be a `[tls]`
    /// section. `tls_given`: whether the file has one (valid or not).
    pub(super) fn redirect_has_a_target(
        &mut self,
        server: &Server,
        tls_given: bool,
        value: Option<&Value>,
    ) {
        if server.redirect_https == Some(RedirectHttps::TlsListener) && !tls_given {
            let message = "true redirects to the first tls.listen port, but there is no [tls] \
                           section; add one, or give the port TLS is served on (e.g. 443 when \
                           a load balancer terminates it)";
            self.fail("server.redirect_https", value, message);
        }
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
