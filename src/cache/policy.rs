//! What HTTP caching (RFC 9111) allows a shared cache, as pure functions of request and
//! response heads and the clock: whether a request may use the cache at all, whether a
//! response may be stored and for how long it is fresh, which request headers select a
//! variant (Vary), and how old a stored response is (the Age header).
//!
//! Times are whole seconds since the Unix epoch. Nothing here touches the disk or a socket;
//! `cache::mod` applies these decisions.

use crate::http::ResponseHead;
use crate::http::{Method, RequestHead};

/// Statuses a response may be stored with (final, understood, and not partial or 304).
const STORABLE_STATUSES: [u16; 13] = [
    200, 203, 204, 300, 301, 302, 307, 308, 404, 405, 410, 414, 501,
];

/// Cache-Control directives that matter to a shared cache, from every Cache-Control header of
/// a message. A qualified `private="..."` or `no-cache="..."` counts as the plain directive:
/// ferry does not store responses with some fields removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directives {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub stale_if_error: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
}

impl Directives {
    /// Parses the values of the Cache-Control headers of one message. Unknown directives are
    /// ignored; a delta-seconds that does not parse counts as absent, one too large as the
    /// largest.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Directives {
        let mut d = Directives::default();
        for value in values {
            let Ok(text) = std::str::from_utf8(value) else {
                continue;
            };
            for item in text.split(',') {
                let (name, arg) = match item.split_once('=') {
                    Some((name, arg)) => (name.trim(), Some(arg.trim().trim_matches('"'))),
                    None => (item.trim(), None),
                };
                let seconds = || arg.and_then(delta_seconds);
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => d.no_store = true,
                    "no-cache" => d.no_cache = true,
                    "private" => d.private = true,
                    "public" => d.public = true,
                    "must-revalidate" => d.must_revalidate = true,
                    "proxy-revalidate" => d.proxy_revalidate = true,
                    "max-age" => d.max_age = seconds().or(d.max_age),
                    "s-maxage" => d.s_maxage = seconds().or(d.s_maxage),
                    "stale-if-error" => d.stale_if_error = seconds().or(d.stale_if_error),
                    "stale-while-revalidate" => {
                        d.stale_while_revalidate = seconds().or(d.stale_while_revalidate)
                    }
                    _ => {}
                }
            }
        }
        d
    }
}

/// RFC 9111 §1.2.2: digits only; values past 2^31 are taken as 2^31.
fn delta_seconds(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u64>().unwrap_or(u64::MAX).min(1 << 31))
}

/// What a request may do with the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestUse {
    /// Not for the cache: forwarded as if there were none (`X-Cache: BYPASS`).
    Bypass(&'static str),
    /// Look up; `revalidate` when the client insists the app confirm a stored response
    /// (no-cache, max-age=0, Pragma: no-cache); `max_age` is the oldest it accepts.
    Lookup {
        revalidate: bool,
        max_age: Option<u64>,
    },
}

/// Whether `req` may be answered from, or fill, the cache. Only GET and HEAD without a body
/// and without an upgrade are; a client's `no-store` keeps its exchange out of the cache.
pub fn request_use(req: &RequestHead) -> RequestUse {
    if !matches!(req.method, Method::Get | Method::Head) {
        return RequestUse::Bypass("method");
    }
    if req.body != crate::http::BodyLength::Empty {
        return RequestUse::Bypass("request body");
    }
    if crate::upstream::wants_upgrade(req) {
        return RequestUse::Bypass("upgrade");
    }
    let cc: Vec<&[u8]> = req.headers_all("cache-control").collect();
    let d = Directives::parse(cc.iter().copied());
    if d.no_store {
        return RequestUse::Bypass("no-store");
    }
    // Pragma: no-cache counts only without Cache-Control (RFC 9111 §5.4).
    let pragma = cc.is_empty()
        && req
            .headers_all("pragma")
            .any(|v| v.eq_ignore_ascii_case(b"no-cache"));
    RequestUse::Lookup {
        revalidate: d.no_cache || d.max_age == Some(0) || pragma,
        max_age: d.max_age,
    }
}

/// How a storable response stays usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Seconds the response is fresh for, counted from its age at arrival.
    pub lifetime: u64,
    /// Seconds past expiry it may be served when the app fails; `None`: the cache's default.
    pub stale_if_error: Option<u64>,
    /// Seconds past expiry it may be served while it is refreshed in the background.
    pub stale_while_revalidate: u64,
    /// Never served stale (must-revalidate, proxy-revalidate, s-maxage).
    pub no_stale: bool,
}

/// Whether a response may be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storable {
    Yes(Freshness),
    No(&'static str),
}

/// RFC 9111 §3 for a shared cache, and "explicitly fresh only": the response to a GET is
/// stored when its status is one a cache understands, nothing forbids it (no-store,
/// private, Set-Cookie, `Vary: *`, a request with Authorization the response does not
/// open up with public, s-maxage or must-revalidate), and it says how long it is fresh:
/// X-Accel-Expires (seconds, or `@` and a Unix time; wins, 0 forbids storing), else
/// s-maxage, else max-age, else Expires minus Date. A response that says `no-cache` (or
/// a zero lifetime) is stored only with a validator (ETag, Last-Modified), to be revalidated
/// on every use.
/// `now` stands for the response's arrival when it has no Date.
pub fn storable(req: &RequestHead, head: &ResponseHead, now: u64) -> Storable {
    if req.method != Method::Get {
        return Storable::No("method");
    }
    if !STORABLE_STATUSES.contains(&head.status) {
        return Storable::No("status");
    }
    let d = response_directives(head);
    if d.no_store {
        return Storable::No("no-store");
    }
    if d.private {
        return Storable::No("private");
    }
    if head.header("set-cookie").is_some() {
        return Storable::No("set-cookie");
    }
    if matches!(vary_names(head), Err(VaryStar)) {
        return Storable::No("vary *");
    }
    if req.header("authorization").is_some()
        && !(d.public || d.s_maxage.is_some() || d.must_revalidate)
    {
        return Storable::No("authorization");
    }
    if accel_zero(head) {
        return Storable::No("x-accel-expires 0");
    }
    // X-Accel-Expires wins over no-cache too, as it does in nginx.
    let no_cache = d.no_cache && head.header("x-accel-expires").is_none();
    let lifetime = match (lifetime(head, &d, now), no_cache) {
        (_, true) => 0,
        (Some(lifetime), false) => lifetime,
        (None, false) => return Storable::No("no explicit freshness"),
    };
    let validated = head.header("etag").is_some() || head.header("last-modified").is_some();
    if lifetime == 0 && !validated {
        return Storable::No("not fresh");
    }
    Storable::Yes(Freshness {
        lifetime,
        stale_if_error: d.stale_if_error,
        stale_while_revalidate: d.stale_while_revalidate.unwrap_or(0),
        no_stale: d.must_revalidate || d.proxy_revalidate || d.s_maxage.is_some(),
    })
}

/// The Cache-Control directives of a response.
pub fn response_directives(head: &ResponseHead) -> Directives {
    Directives::parse(head.headers.get_all("cache-control"))
}

/// `X-Accel-Expires: 0`: nginx's way for the app to say "do not cache".
fn accel_zero(head: &ResponseHead) -> bool {
    head.header("x-accel-expires")
        .is_some_and(|v| v.trim_ascii() == b"0")
}

/// The explicit freshness lifetime, `None` when the response gives none.
fn lifetime(head: &ResponseHead, d: &Directives, now: u64) -> Option<u64> {
    let date = head.header("date").and_then(parse_http_date).unwrap_or(now);
    if let Some(value) = head.header("x-accel-expires") {
        let text = std::str::from_utf8(value).ok()?.trim();
        return match text.strip_prefix('@') {
            Some(at) => delta_seconds(at).map(|at| at.saturating_sub(now)),
            None => delta_seconds(text),
        };
    }
    if let Some(s) = d.s_maxage {
        return Some(s);
    }
    if let Some(m) = d.max_age {
        return Some(m);
    }
    let expires = head.header("expires")?;
    // An invalid Expires (often "0") means already expired (RFC 9111 §5.3).
    Some(parse_http_date(expires).map_or(0, |at| at.saturating_sub(date)))
}

/// An HTTP-date as seconds since the epoch.
pub fn parse_http_date(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let time = httpdate::parse_http_date(text).ok()?;
    time.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// `Vary: *`: no request can be known to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaryStar;

/// The request headers a response varies on, lowercased, sorted, without duplicates.
pub fn vary_names(head: &ResponseHead) -> Result<Vec<String>, VaryStar> {
    let mut names = Vec::new();
    for value in head.headers.get_all("vary") {
        for name in String::from_utf8_lossy(value).split(',') {
            let name = name.trim().to_ascii_lowercase();
            if name == "*" {
                return Err(VaryStar);
            }
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// The secondary key: for each name, the request's values of that header joined with ", "
/// and trimmed (absent and empty differ).
pub fn vary_values(req: &RequestHead, names: &[String]) -> Vec<(String, Option<Vec<u8>>)> {
    names
        .iter()
        .map(|name| {
            let mut joined: Option<Vec<u8>> = None;
            for value in req.headers_all(name) {
                let out = joined.get_or_insert_with(Vec::new);
                if !out.is_empty() {
                    out.extend_from_slice(b", ");
                }
                out.extend_from_slice(value.trim_ascii());
            }
            (name.clone(), joined)
        })
        .collect()
}

/// RFC 9111 §4.2.3: the age a response had when it arrived, from its Date and Age headers
/// and the time the request was sent and the response received.
pub fn initial_age(
    date: Option<u64>,
    age: Option<u64>,
    request_time: u64,
    response_time: u64,
) -> u64 {
    let apparent = date.map_or(0, |date| response_time.saturating_sub(date));
    let delay = response_time.saturating_sub(request_time);
    let corrected = age.unwrap_or(0).saturating_add(delay);
    apparent.max(corrected)
}

/// The age now of a response that arrived at `response_time` aged `initial_age`.
pub fn current_age(initial_age: u64, response_time: u64, now: u64) -> u64 {
    initial_age.saturating_add(now.saturating_sub(response_time))
}

/// The Age header of a response head, if it is a valid delta-seconds.
pub fn age_header(head: &ResponseHead) -> Option<u64> {
    head.header("age")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|t| delta_seconds(t.trim()))
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
