//! The request as ferry holds it once its head is parsed: method, target, version, headers,
//! how its body is framed, the scheme it came by and who sent it, and the errors a head can be refused
//! with. Plain data with no parsing: `codec` builds these from bytes, the HTTP/2 frontend
//! from the head `http2` decoded (through the same codec), and everything downstream (route, proxy, cache) reads them.

use super::headers::Headers;
use super::short_text::ShortText;

/// Request method. Methods are case-sensitive: `get` is `Other("get")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
    Other(String),
}

impl Method {
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
            Method::Other(s) => s,
        }
    }

    pub(super) fn from_token(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "PATCH" => Method::Patch,
            other => Method::Other(other.to_owned()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// The scheme the client used to reach ferry: TLS (either protocol) is `https`. Set by the
/// connection that read the request (the codec sees only bytes and says `Http`); it is part
/// of the cache key and what `X-Forwarded-Proto` tells the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How the request body is framed. `Content-Length: 0` is reported as `Empty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    Empty,
    Length(u64),
    Chunked,
}

#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: Method,
    /// Origin-form (`/path?query`) or `*` (OPTIONS only). An absolute-form
    /// target is reduced to origin-form and its authority replaces `Host`.
    pub target: ShortText,
    pub version: Version,
    pub headers: Headers,
    /// HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
    /// `Connection: keep-alive` (and no `close`).
    pub keep_alive: bool,
    pub body: BodyLength,
    /// HTTP/1.1, `Expect: 100-continue`, and a body is announced.
    pub expect_continue: bool,
    /// How the client reached ferry (see [`Scheme`]).
    pub scheme: Scheme,
    /// Who sent it: set by the connection that read it (`ingress::identify`); the codec
    /// leaves a placeholder.
    pub client: super::client::Client,
}

impl RequestHead {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name)
    }

    /// Like [`RequestHead::header`], if the value is UTF-8 without control
    /// bytes (HTAB allowed).
    pub fn header_str(&self, name: &str) -> Option<&str> {
        let v = self.header(name)?;
        if v.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return None;
        }
        std::str::from_utf8(v).ok()
    }

    /// Whether the request carries `Expect: 100-continue`, whatever its version and body
    /// (`expect_continue` is the HTTP/1.1 answer to that with a body announced).
    pub fn asks_continue(&self) -> bool {
        self.headers.expects_continue()
    }

    /// All headers with this name (case-insensitive), in received order.
    pub fn headers_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers.get_all(name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("request line too long")]
    UriTooLong,
    #[error("request head too large")]
    HeadTooLarge,
    #[error("too many headers")]
    TooManyHeaders,
    #[error("unsupported http version")]
    Version,
    #[error("bad request: {0}")]
    Bad(&'static str),
}

impl ParseError {
    /// The response status this error should be answered with.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::UriTooLong => 414,
            ParseError::HeadTooLarge | ParseError::TooManyHeaders => 431,
            ParseError::Version => 505,
            ParseError::Bad(_) => 400,
        }
    }
}
