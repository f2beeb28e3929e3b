//! The headers a location (or the server) adds to its responses (`add_header`) and the
//! https redirect of the plaintext listeners. Which list applies is the router's
//! (`Router::added_headers`); which of its headers go on one response is decided here, from
//! the status, as nginx does; the frontend writes them for HTTP/1.1 and HTTP/2 alike, in
//! place of any header of the same name the reply already had.

use crate::config::AddHeader;
use crate::http::{Method, RequestHead};
use crate::metrics::Source;

use super::reply::Reply;

/// The statuses a header without `always` is added to (nginx's list).
const ADDED_ON: [u16; 10] = [200, 201, 204, 206, 301, 302, 303, 304, 307, 308];

/// The configured headers that go on one response.
#[derive(Debug, Clone, Copy)]
pub struct Added<'a> {
    headers: &'a [AddHeader],
    /// Whether the status takes the headers without `always` too.
    all: bool,
}

impl<'a> Added<'a> {
    /// Of `headers`, those a `status` response carries.
    pub fn new(headers: &'a [AddHeader], status: u16) -> Added<'a> {
        Added {
            headers,
            all: !headers.is_empty() && ADDED_ON.contains(&status),
        }
    }

    /// The headers to write, in the configured order.
    pub fn iter(self) -> impl Iterator<Item = &'a AddHeader> {
        let all = self.all;
        self.headers.iter().filter(move |h| all || h.always)
    }

    /// Whether a header `name` already in the reply gives way to an added one.
    pub fn replaces(self, name: &str) -> bool {
        self.iter().any(|h| h.name.eq_ignore_ascii_case(name))
    }
}

/// The answer of a plaintext listener with `server.redirect_https`: 301 (GET, HEAD) or 308
/// to `https://HOST[:port]TARGET`, HOST the request's Host without its port; 400 when the
/// Host is missing or is no host name or address.
pub fn https_redirect(req: &RequestHead, port: u16) -> Reply {
    let Some(host) = req.header_str("host").and_then(host_without_port) else {
        return Reply::error(400, Source::Internal);
    };
    let target = if req.target == "*" { "/" } else { &req.target };
    let location = if port == 443 {
        format!("https://{host}{target}")
    } else {
        format!("https://{host}:{port}{target}")
    };
    let status = match req.method {
        Method::Get | Method::Head => 301,
        _ => 308,
    };
    Reply::error(status, Source::Internal).with_header("Location", location)
}

/// The host of a Host value (`name`, `name:port`, `[v6]`, `[v6]:port`), if it is one: RFC
/// 3986 reg-name characters, or an IP literal in brackets.
fn host_without_port(value: &str) -> Option<&str> {
    let value = value.trim();
    let host = if value.starts_with('[') {
        let end = value.find(']')?;
        let (host, rest) = value.split_at(end + 1);
        let literal = &host[1..end];
        let ok = !literal.is_empty()
            && literal
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        (ok && port_ok(rest)).then_some(host)?
    } else {
        let (host, rest) = match value.find(':') {
            Some(at) => value.split_at(at),
            None => (value, ""),
        };
        let ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b));
        (ok && port_ok(rest)).then_some(host)?
    };
    Some(host)
}

/// Nothing, or `:` and digits.
fn port_ok(rest: &str) -> bool {
    rest.is_empty()
        || rest
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{BodyLength, Scheme, Version};

    fn header(name: &str, always: bool) -> AddHeader {
        AddHeader {
            name: name.into(),
            value: "v".into(),
            always,
        }
    }

    #[test]
    fn without_always_only_on_nginx_statuses() {
        let list = [header("A", false), header("B", true)];
        let names = |status| -> Vec<&str> {
            Added::new(&list, status)
                .iter()
                .map(|h| h.name.as_str())
                .collect()
        };
        for status in ADDED_ON {
            assert_eq!(names(status), ["A", "B"], "{status}");
        }
        for status in [100, 202, 203, 400, 404, 412, 416, 500, 502, 503] {
            assert_eq!(names(status), ["B"], "{status}");
        }
        assert!(Added::new(&list, 404).replaces("b"));
        assert!(!Added::new(&list, 404).replaces("a"));
        assert!(!Added::new(&[], 200).replaces("a"));
    }

    /// The redirect for `method /a?b=1` with `host` as its Host header (`None`: no Host).
    fn redirect(method: Method, host: Option<&str>, port: u16) -> (u16, Option<String>) {
        let headers = host.map(|value| ("Host", value.as_bytes()));
        let req = RequestHead {
            method,
            target: "/a?b=1".into(),
            version: Version::Http11,
            headers: headers.into_iter().collect(),
            keep_alive: true,
            body: BodyLength::Empty,
            expect_continue: false,
            scheme: Scheme::Http,
            client: Default::default(),
        };
        let reply = https_redirect(&req, port);
        let location = reply
            .own_headers
            .iter()
            .find(|(n, _)| *n == "Location")
            .map(|(_, v)| v.to_string());
        (reply.status, location)
    }

    #[test]
    fn redirects_to_the_host_without_its_port() {
        let get = |host: &str, port| redirect(Method::Get, Some(host), port);
        let to = |s: &str| (301, Some(s.to_string()));
        assert_eq!(get("site.test", 443), to("https://site.test/a?b=1"));
        assert_eq!(get("site.test:8080", 443), to("https://site.test/a?b=1"));
        assert_eq!(
            get("site.test:8080", 8443),
            to("https://site.test:8443/a?b=1")
        );
        assert_eq!(get("[::1]:80", 443), to("https://[::1]/a?b=1"));
        assert_eq!(get("10.0.0.1", 4443), to("https://10.0.0.1:4443/a?b=1"));
        for bad in ["", "a b", "evil/x", "a:b", "[::1", "[zz]", "u@h", "a\r\nb"] {
            assert_eq!(get(bad, 443), (400, None), "{bad:?}");
        }
        let post = redirect(Method::Post, Some("s.test"), 443);
        assert_eq!(post, (308, Some("https://s.test/a?b=1".into())));
        let head = redirect(Method::Head, Some("s.test"), 443);
        assert_eq!(head.0, 301);
        assert_eq!(redirect(Method::Get, None, 443), (400, None));
    }
}
