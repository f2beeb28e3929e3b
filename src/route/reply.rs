//! A response ready to be framed and sent (status, headers, body, where it came from), and
//! the small replies ferry makes itself: errors, redirects, 304s.

use bytes::Bytes;

use crate::access::Notes;
use crate::http::reason;
use crate::metrics::Source;
use crate::send::Body;

/// A response ready to be framed and sent.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// ferry's own headers (names it knows at compile time), other than Date, Server,
    /// Content-Length and Connection, which the frontend adds.
    pub own_headers: Vec<(&'static str, String)>,
    /// Headers passed on from elsewhere: the app's response, or a stored one.
    pub passed_headers: Vec<(String, String)>,
    pub body: Body,
    pub source: Source,
    /// The Content-Length to announce for a HEAD request when the body is not there to tell
    /// (a proxied HEAD); `None` announces the body's own length.
    pub head_length: Option<u64>,
    /// Most body bytes per second (X-Accel-Limit-Rate).
    pub rate: Option<u64>,
    /// What the access log says of the app and the cache (set by the proxy).
    pub notes: Notes,
}

impl Reply {
    pub fn new(status: u16, source: Source, body: Body) -> Reply {
        Reply {
            status,
            own_headers: Vec::new(),
            passed_headers: Vec::new(),
            body,
            source,
            head_length: None,
            rate: None,
            notes: Notes::default(),
        }
    }

    /// A small text body naming the status, as every error ferry generates.
    pub fn error(status: u16, source: Source) -> Reply {
        let text = format!("{status} {}\n", reason(status));
        Reply::new(status, source, Body::Bytes(Bytes::from(text)))
            .with_header("Content-Type", "text/plain; charset=utf-8".to_string())
    }

    /// A permanent redirect to `location`.
    pub fn redirect(location: String, source: Source) -> Reply {
        Reply::error(301, source).with_header("Location", location)
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.own_headers.push((name, value));
        self
    }

    /// Whether the reply already has a header `name` (in either list).
    pub fn has_header(&self, name: &str) -> bool {
        self.own_headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
            || self
                .passed_headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Removes every header `name`.
    pub fn remove_header(&mut self, name: &str) {
        self.own_headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.passed_headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}
