//! Semantic checks on a syntactically complete request head: request-target
//! form, Host, message framing (RFC 9112 §6) and Connection tokens.
//!
//! Used only by `codec`; byte-level syntax (line endings, token and value
//! characters, sizes) is checked there and by httparse, not here.

use super::headers::{Headers, trim_ows};
use super::message::{BodyLength, Method, ParseError, Version};
use super::short_text::ShortText;

/// A validated request target.
pub(super) struct Target {
    /// Origin-form path (with query) or `*`.
    pub path: ShortText,
    /// Authority of an absolute-form target; it overrides `Host`.
    pub authority: Option<String>,
}

/// Accepts origin-form, absolute-form (`http`/`https` only, reduced to
/// origin-form) and `*` for OPTIONS. Rejects authority-form (CONNECT),
/// non-ASCII bytes, fragments and malformed percent-encoding.
pub(super) fn target(method: &Method, raw: &str) -> Result<Target, ParseError> {
    if !raw.is_ascii() {
        return Err(ParseError::Bad("non-ascii request target"));
    }
    if raw == "*" {
        if *method != Method::Options {
            return Err(ParseError::Bad(
                "asterisk target is only allowed for options",
            ));
        }
        return Ok(Target {
            path: "*".into(),
            authority: None,
        });
    }
    let (path, authority) = if raw.starts_with('/') {
        (raw, None)
    } else if let Some((scheme, rest)) = raw.split_once("://") {
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(ParseError::Bad("unsupported uri scheme"));
        }
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.is_empty() || authority.contains('@') || !is_authority(authority.as_bytes()) {
            return Err(ParseError::Bad("invalid authority in request target"));
        }
        (&rest[end..], Some(authority.to_owned()))
    } else {
        return Err(ParseError::Bad("invalid request target"));
    };
    check_path(path)?;
    let path = if path.is_empty() {
        "/".into()
    } else if path.starts_with('?') {
        ShortText::format(format_args!("/{path}"))
    } else {
        ShortText::copied(path)
    };
    Ok(Target { path, authority })
}

fn check_path(path: &str) -> Result<(), ParseError> {
    let bytes = path.as_bytes();
    if bytes.contains(&b'#') {
        return Err(ParseError::Bad("fragment in request target"));
    }
    let mut i = 0;
    while let Some(off) = bytes[i..].iter().position(|&b| b == b'%') {
        let at = i + off;
        match bytes.get(at + 1..at + 3) {
            Some([a, b]) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => i = at + 3,
            _ => {
                return Err(ParseError::Bad(
                    "malformed percent-encoding in request target",
                ));
            }
        }
    }
    Ok(())
}

/// `uri-host [":" port]` (RFC 3986 §3.2.2-3): a bracketed IP literal or a
/// reg-name (unreserved, sub-delims, `%`), then optionally `:` and digits.
/// Empty is allowed (RFC 9110 §7.2 permits an empty Host).
fn is_authority(v: &[u8]) -> bool {
    let (host, port) = if v.starts_with(b"[") {
        let Some(close) = v.iter().position(|&b| b == b']') else {
            return false;
        };
        let inner = &v[1..close];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|&b| b == b':' || b == b'.' || is_reg_name_char(b))
        {
            return false;
        }
        (&v[..0], &v[close + 1..])
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(c) => (&v[..c], &v[c..]),
            None => (v, &v[v.len()..]),
        }
    };
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    port_ok && host.iter().all(|&b| is_reg_name_char(b))
}

fn is_reg_name_char(b: u8) -> bool {
    REG_NAME[usize::from(b)]
}

/// unreserved, sub-delims and `%`, by byte (checked for every request's Host).
const REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let extra = b"-._~!$&'()*+,;=%";
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
};

/// RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one in HTTP/1.0,
/// and its value must look like an authority.
pub(super) fn host(version: Version, headers: &Headers) -> Result<(), ParseError> {
    let mut hosts = headers.get_all("host");
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(ParseError::Bad("multiple host headers")),
        (None, _) if version == Version::Http11 => Err(ParseError::Bad("missing host header")),
        (Some(h), None) if !is_authority(h) => Err(ParseError::Bad("invalid host header")),
        _ => Ok(()),
    }
}

/// Absolute-form: the target's authority replaces the Host value (RFC 9112
/// §3.2.2), or is added as `Host` when an HTTP/1.0 request had none.
pub(super) fn replace_host(headers: &mut Headers, authority: &str) {
    headers.set("Host", authority.as_bytes());
}

/// RFC 9112 §6: decides the body framing or rejects ambiguous framing.
///
/// Transfer-Encoding must be exactly one `chunked` coding (other codings are
/// not implemented; rejected as 400 since there is no 501 variant), never in
/// HTTP/1.0 and never together with Content-Length. Content-Length must be
/// a list of identical plain decimal numbers that fit in u64.
pub(super) fn framing(version: Version, headers: &Headers) -> Result<BodyLength, ParseError> {
    let te = values(headers, "transfer-encoding");
    let cl = values(headers, "content-length");
    if te.peek_any() {
        if version == Version::Http10 {
            return Err(ParseError::Bad("transfer-encoding in http/1.0 request"));
        }
        if cl.peek_any() {
            return Err(ParseError::Bad("both transfer-encoding and content-length"));
        }
        let codings: Vec<&[u8]> = te.list().collect();
        let chunked = codings
            .iter()
            .filter(|c| c.eq_ignore_ascii_case(b"chunked"))
            .count();
        return match codings.last() {
            Some(last) if !last.eq_ignore_ascii_case(b"chunked") => {
                Err(ParseError::Bad("final transfer coding is not chunked"))
            }
            _ if chunked > 1 => Err(ParseError::Bad("chunked applied more than once")),
            _ if codings.len() != 1 => Err(ParseError::Bad("unsupported transfer coding")),
            _ => Ok(BodyLength::Chunked),
        };
    }
    let mut length: Option<u64> = None;
    for item in cl.list() {
        let n = parse_decimal(item).ok_or(ParseError::Bad("invalid content-length"))?;
        if length.is_some_and(|l| l != n) {
            return Err(ParseError::Bad("conflicting content-length values"));
        }
        length = Some(n);
    }
    Ok(match length {
        None | Some(0) => BodyLength::Empty,
        Some(n) => BodyLength::Length(n),
    })
}

/// `1*DIGIT` into u64; `None` on anything else or on overflow.
fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// (`close` seen, `keep-alive` seen) across all Connection headers.
pub(super) fn connection_tokens(headers: &Headers) -> (bool, bool) {
    let mut close = false;
    let mut keep_alive = false;
    for token in values(headers, "connection").list() {
        close |= token.eq_ignore_ascii_case(b"close");
        keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
    }
    (close, keep_alive)
}

/// Values of every header with a given name.
struct Values<'a> {
    headers: &'a Headers,
    name: &'a str,
}

fn values<'a>(headers: &'a Headers, name: &'a str) -> Values<'a> {
    Values { headers, name }
}

impl<'a> Values<'a> {
    fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers.get_all(self.name)
    }

    fn peek_any(&self) -> bool {
        self.iter().next().is_some()
    }

    /// Comma-separated list elements with OWS trimmed. Empty elements are kept
    /// (as empty slices) so strict callers can reject them.
    fn list(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .flat_map(|v| v.split(|&b| b == b','))
            .map(trim_ows)
    }
}
