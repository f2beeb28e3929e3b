//! The cache's decisions around one proxied request, the same for HTTP/1.1 and HTTP/2:
//! [`lookup`] decides, before anything is sent to the app, whether a stored object answers
//! (HIT, or STALE with a [`Refresh`] for the proxy to run in the background) or what to ask
//! the app (the request itself, or a conditional one revalidating an expired object);
//! [`answered`] looks at the app's answer (a 304 refreshes the object, a 5xx may be covered by
//! stale-if-error, a storable response starts a fill); [`on_error`] covers an app that could
//! not be reached.
//!
//! The cache talks to nobody: a stored answer comes back as a [`Stored`] (the object and its
//! open file), which the proxy turns into a reply, and the proxy asks the app. Every request
//! the cache sees is counted once in ferry_cache_requests_total{result}; the proxy puts that
//! result in its `X-Cache` header.

use std::fs::File;
use std::sync::Arc;

use super::fill::Fill;
use super::policy::{self, RequestUse, Storable};
use super::{Cache, FillGuard, Key, Lock, Meta, Object, meta::unix_now};
use crate::http::{Framing, ResponseHead};
use crate::http::{Method, RequestHead};
use crate::metrics::CacheResult;

/// Request headers replaced when ferry revalidates an object itself.
const CONDITIONAL_HEADERS: [&str; 6] = [
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "range",
];

/// A stored object that answers a request: its metadata, its file opened, what the request
/// counts as, and the time (unix seconds) its `Age` is taken at.
pub struct Stored {
    pub object: Object,
    pub file: File,
    pub result: CacheResult,
    pub now: u64,
}

/// What to do before forwarding.
#[allow(clippy::large_enum_variant)] // built and matched once per request; a Box would only add an allocation
pub enum Lookup {
    /// Answer from the cache; when `refresh` is given, ask the app about the object in the
    /// background (stale-while-revalidate) and hand its answer to [`Refresh::answered`].
    Stored {
        stored: Stored,
        refresh: Option<Refresh>,
    },
    /// Ask the app; then call [`answered`] or [`on_error`].
    Forward(Forwarding),
}

/// A stale object's refresh in the background, owned by the one request that holds the
/// object's fill lock.
pub struct Refresh {
    pending: Forwarding,
    /// The client's request, whose Vary values a replacement is stored under.
    client: RequestHead,
    /// What to ask the app: a conditional request when the object has a validator.
    request: RequestHead,
}

impl Refresh {
    /// The request to send to the app (it has no body).
    pub fn request(&self) -> &RequestHead {
        &self.request
    }

    /// Takes the app's answer: a 304 refreshes the object (`None`: discard the body); a
    /// storable answer of known length gives a fill and the length to read into it; anything
    /// else leaves the object as it is (`None`).
    pub async fn answered(self, head: &ResponseHead, framing: Framing) -> Option<(Fill, u64)> {
        let Refresh {
            pending, client, ..
        } = self;
        let object = pending.object.clone()?;
        let now = unix_now();
        if head.status == 304 {
            let meta = refreshed(&pending, &client, &object, head, now);
            pending.cache.refresh(&object, meta);
            return None;
        }
        let Framing::Length(len) = framing else {
            return None;
        };
        let fill = start_fill(pending, &client, head, framing, now).await?;
        Some((fill, len))
    }
}

/// A request on its way to the app, with what the cache knows about it.
pub struct Forwarding {
    cache: Arc<Cache>,
    key: Key,
    /// The expired object being revalidated (or replaced).
    object: Option<Object>,
    /// The fill lock, when this request fills the key.
    guard: Option<FillGuard>,
    /// What the request counts as when the app's answer is relayed.
    result: CacheResult,
    /// The request to send instead of the client's (a conditional one).
    conditional: Option<RequestHead>,
    request_time: u64,
}

impl Forwarding {
    /// The request to send to the app: a conditional revalidation, or the client's own.
    pub fn request<'a>(&'a self, client: &'a RequestHead) -> &'a RequestHead {
        self.conditional.as_ref().unwrap_or(client)
    }

    /// The result counted when the app's answer (or its failure) is relayed as is.
    pub fn result(&self) -> CacheResult {
        self.result
    }
}

/// Looks `req` up.
pub async fn lookup(cache: &Arc<Cache>, req: &RequestHead) -> Lookup {
    let request_time = unix_now();
    let pending = |key, object, guard, result, conditional| Forwarding {
        cache: Arc::clone(cache),
        key,
        object,
        guard,
        result,
        conditional,
        request_time,
    };
    let (revalidate, max_age) = match policy::request_use(req) {
        RequestUse::Bypass(why) => {
            tracing::trace!(reason = why, "cache bypassed");
            let key = Key::new(req);
            if !matches!(req.method, Method::Get | Method::Head | Method::Options) {
                // An unsafe method invalidates what is stored for its target (RFC 9111 §4.4).
                cache.invalidate(&key);
            }
            return Lookup::Forward(pending(key, None, None, CacheResult::Bypass, None));
        }
        RequestUse::Lookup {
            revalidate,
            max_age,
        } => (revalidate, max_age),
    };
    let key = Key::new(req);
    let mut waited = false;
    // Set when a stored object's file turned out to be gone: then it is a miss.
    let mut gone = false;
    loop {
        let now = unix_now();
        if !gone && let Some(object) = cache.lookup(&key, req) {
            let meta = &object.meta;
            let age = meta.age(now);
            let fresh = age < meta.lifetime && max_age.is_none_or(|max| age <= max);
            if fresh && !revalidate {
                match open(cache, &object, CacheResult::Hit, now).await {
                    Some(stored) => {
                        return Lookup::Stored {
                            stored,
                            refresh: None,
                        };
                    }
                    None => {
                        gone = true;
                        continue;
                    }
                }
            }
            let stale_for = age.saturating_sub(meta.lifetime);
            let guard = match cache.lock(object.id) {
                Lock::Acquired(guard) => Some(guard),
                Lock::Held(_) => None,
            };
            if !revalidate && !meta.no_stale && stale_for < meta.stale_while_revalidate {
                // Served stale now; one request (the lock's holder) refreshes it.
                let refresh = guard.map(|guard| Refresh {
                    pending: pending(
                        key.clone(),
                        Some(object.clone()),
                        Some(guard),
                        CacheResult::Stale,
                        None,
                    ),
                    client: req.clone(),
                    request: conditional(req, meta).unwrap_or_else(|| req.clone()),
                });
                match open(cache, &object, CacheResult::Stale, now).await {
                    Some(stored) => return Lookup::Stored { stored, refresh },
                    // The file is gone: a miss (the refresh, dropped, lets go of the lock).
                    None => {
                        gone = true;
                        continue;
                    }
                }
            }
            let conditional = conditional(req, meta);
            return Lookup::Forward(pending(
                key,
                Some(object),
                guard,
                CacheResult::Expired,
                conditional,
            ));
        }
        let id = cache.id_for(&key, req);
        match cache.lock(id) {
            Lock::Acquired(guard) => {
                return Lookup::Forward(pending(key, None, Some(guard), CacheResult::Miss, None));
            }
            Lock::Held(mut filled) if !waited && !cache.settings().lock_timeout.is_zero() => {
                waited = true;
                // Woken when the fill ends (its guard dropped), however it ended.
                let _ = tokio::time::timeout(cache.settings().lock_timeout, filled.changed()).await;
            }
            Lock::Held(_) => {
                return Lookup::Forward(pending(key, None, None, CacheResult::Miss, None));
            }
        }
    }
}

/// What to do with the app's answer.
#[allow(clippy::large_enum_variant)] // built and matched once per response; a Box would only add an allocation
pub enum Answered {
    /// Answer from the cache instead (revalidated, or stale on a 5xx); the app's body is not
    /// wanted.
    Stored(Stored),
    /// The app said the object is current, but its file has gone since: 502.
    Gone,
    /// Relay the app's answer, feeding `fill` when it is being stored.
    Relay(Option<Fill>),
}

/// Looks at the app's answer to `req` (the client's request).
pub async fn answered(
    pending: Forwarding,
    req: &RequestHead,
    head: &ResponseHead,
    framing: Framing,
) -> Answered {
    let cache = Arc::clone(&pending.cache);
    let now = unix_now();
    if pending.result == CacheResult::Bypass {
        cache.metrics.request(CacheResult::Bypass);
        return Answered::Relay(None);
    }
    if let Some(object) = &pending.object {
        if head.status == 304 && pending.conditional.is_some() {
            let meta = refreshed(&pending, req, object, head, now);
            let meta = cache.refresh(object, meta);
            let object = Object {
                meta,
                ..object.clone()
            };
            return match open(&cache, &object, CacheResult::Revalidated, now).await {
                Some(stored) => Answered::Stored(stored),
                None => Answered::Gone,
            };
        }
        if head.status >= 500
            && let Some(stored) = stale_if_error(&cache, object, now).await
        {
            return Answered::Stored(stored);
        }
    }
    cache.metrics.request(pending.result);
    Answered::Relay(start_fill(pending, req, head, framing, now).await)
}

/// The app could not be reached, or gave no answer in time: a stale object may stand in.
pub async fn on_error(pending: Forwarding) -> Option<Stored> {
    let now = unix_now();
    if let Some(object) = &pending.object
        && let Some(stored) = stale_if_error(&pending.cache, object, now).await
    {
        return Some(stored);
    }
    pending.cache.metrics.request(pending.result);
    None
}

/// A fill for the app's answer when it may be stored, else `None` (and the lock released).
async fn start_fill(
    pending: Forwarding,
    req: &RequestHead,
    head: &ResponseHead,
    framing: Framing,
    now: u64,
) -> Option<Fill> {
    let cache = &pending.cache;
    let freshness = match policy::storable(req, head, now) {
        Storable::Yes(freshness) => freshness,
        Storable::No(why) => {
            tracing::trace!(reason = why, "response not stored");
            return None;
        }
    };
    // Offload answers are not the response's body; ferry serves those files itself.
    if head.header("x-accel-redirect").is_some() || head.header("x-sendfile").is_some() {
        return None;
    }
    let expected = match framing {
        Framing::Length(n) if n > cache.settings().max_object_size => return None,
        Framing::Length(n) => Some(n),
        Framing::None => Some(0),
        Framing::Chunked | Framing::Close => None,
    };
    let names = policy::vary_names(head).ok()?;
    let meta = Meta {
        scheme: pending.key.scheme,
        host: pending.key.host.clone(),
        target: pending.key.target.clone(),
        vary: policy::vary_values(req, &names),
        status: head.status,
        headers: stored_headers(head),
        response_time: now,
        initial_age: policy::initial_age(
            head.header("date").and_then(policy::parse_http_date),
            policy::age_header(head),
            pending.request_time,
            now,
        ),
        lifetime: freshness.lifetime,
        stale_if_error: freshness
            .stale_if_error
            .unwrap_or(cache.settings().stale_if_error.as_secs()),
        stale_while_revalidate: freshness.stale_while_revalidate,
        no_stale: freshness.no_stale,
        body_len: 0,
    };
    match cache.begin_fill(meta, expected, pending.guard).await {
        Ok(target) => Some(Fill::start(target, cache.metrics.clone())),
        Err(err) => {
            tracing::warn!(dir = %cache.dir().display(), error = %err, "cache: starting a fill");
            None
        }
    }
}

/// The headers kept with an object: what the client sees, less Age (recomputed per hit).
fn stored_headers(head: &ResponseHead) -> Vec<(String, Vec<u8>)> {
    let mut headers = head.client_headers();
    headers.retain(|(name, _)| !name.eq_ignore_ascii_case("age"));
    headers
}

/// The object's metadata after a 304 (RFC 9111 §4.3.4): the 304's headers replace the stored
/// ones of the same name, and freshness starts over from the merged headers.
fn refreshed(
    pending: &Forwarding,
    req: &RequestHead,
    object: &Object,
    head: &ResponseHead,
    now: u64,
) -> Meta {
    let mut meta = (*object.meta).clone();
    let update = stored_headers(head);
    meta.headers
        .retain(|(name, _)| !update.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)));
    meta.headers.extend(update);
    let merged = ResponseHead {
        status: meta.status,
        http11: true,
        headers: meta
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_slice()))
            .chain(
                head.headers
                    .iter()
                    .filter(|h| {
                        h.name.eq_ignore_ascii_case("date")
                            || h.name.eq_ignore_ascii_case("x-accel-expires")
                    })
                    .map(|h| (h.name, h.value)),
            )
            .collect(),
    };
    meta.response_time = now;
    meta.initial_age = policy::initial_age(
        head.header("date").and_then(policy::parse_http_date),
        policy::age_header(head),
        pending.request_time,
        now,
    );
    match policy::storable(req, &merged, now) {
        Storable::Yes(f) => {
            meta.lifetime = f.lifetime;
            meta.stale_while_revalidate = f.stale_while_revalidate;
            meta.no_stale = f.no_stale;
            if let Some(s) = f.stale_if_error {
                meta.stale_if_error = s;
            }
        }
        // No longer storable: served this once, revalidated every time after.
        Storable::No(_) => meta.lifetime = 0,
    }
    meta
}

/// A copy of `req` that asks the app whether `meta` is still current; `None` when the
/// object has no validator to ask with.
fn conditional(req: &RequestHead, meta: &Meta) -> Option<RequestHead> {
    let etag = meta.header("etag");
    let modified = meta.header("last-modified");
    if etag.is_none() && modified.is_none() {
        return None;
    }
    let mut out = req.clone();
    out.headers.retain(|h| {
        !CONDITIONAL_HEADERS
            .iter()
            .any(|c| h.name.eq_ignore_ascii_case(c))
    });
    for (name, value) in [("If-None-Match", etag), ("If-Modified-Since", modified)] {
        if let Some(value) = value {
            out.headers.push(name, value);
        }
    }
    Some(out)
}

/// The object, as STALE, when stale-if-error covers it now.
async fn stale_if_error(cache: &Arc<Cache>, object: &Object, now: u64) -> Option<Stored> {
    let meta = &object.meta;
    let stale_for = meta.age(now).saturating_sub(meta.lifetime);
    if meta.no_stale || stale_for > meta.stale_if_error {
        return None;
    }
    open(cache, object, CacheResult::Stale, now).await
}

/// `object` with its file opened, counted as `result`; `None` when its file is gone.
async fn open(
    cache: &Arc<Cache>,
    object: &Object,
    result: CacheResult,
    now: u64,
) -> Option<Stored> {
    match cache.open_body(object).await {
        Ok((file, opened)) => {
            cache.metrics.request(result);
            Some(Stored {
                object: opened,
                file,
                result,
                now,
            })
        }
        Err(err) => {
            tracing::debug!(error = %err, "cache: stored object unreadable");
            None
        }
    }
}
