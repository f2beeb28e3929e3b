//! A response ready to be framed and sent (status, headers, body, where it came from), and
//! the small replies ferry makes itself: errors, redirects, 304s.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

use bytes::Bytes;

use crate::access::Notes;
use crate::http::spare::{self, Spares};
use crate::http::{ShortText, reason};
use crate::metrics::Source;
use crate::send::Body;

/// A response ready to be framed and sent.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// ferry's own headers (names it knows at compile time), other than Date, Server,
    /// Content-Length and Connection, which the frontend adds. Their values are constants or
    /// short texts held inline where they can be (no allocation each).
    pub own_headers: OwnHeaders,
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
            own_headers: OwnHeaders::with_capacity(0),
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
            .with_header("Content-Type", "text/plain; charset=utf-8")
    }

    /// A permanent redirect to `location`.
    pub fn redirect(location: String, source: Source) -> Reply {
        Reply::error(301, source).with_header("Location", location)
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<ShortText>) -> Reply {
        self.own_headers.push((name, value.into()));
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

/// A reply's own headers: a list whose memory is a per-thread spare (`http::spare`), given
/// back when the reply is dropped, so a reply costs no allocation for it.
#[derive(Debug, Default)]
pub struct OwnHeaders(Vec<(&'static str, ShortText)>);

/// Lists kept as spares per thread, and the most headers one may have room for: a static
/// file's reply has at most ten of its own.
const SPARES_KEPT: usize = 64;
const SPARE_HEADERS: usize = 16;

thread_local! {
    static SPARE_LISTS: Spares<(&'static str, ShortText)> = const { RefCell::new(Vec::new()) };
}

impl OwnHeaders {
    /// An empty list with room for `n` headers.
    pub fn with_capacity(n: usize) -> OwnHeaders {
        OwnHeaders(spare::take(&SPARE_LISTS, n))
    }
}

impl Deref for OwnHeaders {
    type Target = Vec<(&'static str, ShortText)>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for OwnHeaders {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<'a> IntoIterator for &'a OwnHeaders {
    type Item = &'a (&'static str, ShortText);
    type IntoIter = std::slice::Iter<'a, (&'static str, ShortText)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl Drop for OwnHeaders {
    fn drop(&mut self) {
        let list = std::mem::take(&mut self.0);
        spare::put(&SPARE_LISTS, list, SPARE_HEADERS, SPARES_KEPT);
    }
}
