//! From a parsed request head to a `Reply`: the longest-prefix location decides who answers;
//! static locations resolve the path safely beneath their root and answer with a file body
//! (a pre-compressed variant of it when the location offers them and the client accepts one).
//! A location may instead name an upstream, and a request no location serves goes to the
//! default app when there is one (`Dispatch::Upstream`, which `proxy` takes); `accel`
//! resolves the files the app points at (X-Accel-Redirect into
//! internal locations, X-Sendfile beneath its roots).
//!
//! Not here: framing, keep-alive and writing (frontend, send).

mod accel;
mod added;
pub mod file_answer;
mod location;
mod open_cache;
mod reply;
mod resolve;
mod static_file;

use open_cache::OpenCacheLimits;
use static_file::PathLookup;

use std::ffi::OsString;
use std::sync::Arc;

pub use added::{Added, https_redirect};
pub use location::StaticLocation;
pub use reply::Reply;
pub use resolve::{BadPath, relative_path};

use crate::config::{AddHeader, Config};
use crate::http::{Codings, Method, RequestHead};
use crate::metrics::Source;

/// What to do with a request.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // built and matched once per request; a Box would only add an allocation
pub enum Dispatch {
    Reply(Reply),
    /// Forward to this app: a location's named upstream, or `[upstream]` when no location
    /// matched.
    Upstream(UpstreamRef),
}

/// Which upstream a proxied request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamRef {
    /// `[upstream]`.
    Default,
    /// The `[upstreams.NAME]` at this position in name order (`Config::upstreams`).
    Named(usize),
}

/// A location that proxies to a named upstream.
#[derive(Debug)]
struct ProxiedLocation {
    prefix: String,
    upstream: UpstreamRef,
    /// Its own `add_header` list (empty: the server's).
    add_header: Vec<AddHeader>,
}

/// All locations, longest prefix first, and the X-Sendfile roots.
#[derive(Debug)]
pub struct Router {
    locations: Vec<Arc<StaticLocation>>,
    /// The locations that proxy to a named upstream, longest prefix first.
    proxied: Vec<ProxiedLocation>,
    sendfile_roots: Vec<Arc<StaticLocation>>,
    has_upstream: bool,
    /// `server.add_header`: for requests no location with a list of its own matches.
    server_headers: Vec<AddHeader>,
    /// Whether any list is configured at all (else no lookup per response).
    any_headers: bool,
}

impl Router {
    /// Opens every location's root and X-Sendfile root; each that cannot be opened is
    /// reported with its key.
    pub fn new(config: &Config) -> Result<Router, Vec<String>> {
        let mut locations = Vec::new();
        let mut sendfile_roots = Vec::new();
        let mut errors = Vec::new();
        let mut proxied = Vec::new();
        for (i, loc) in config.locations.iter().enumerate() {
            if let Some(name) = &loc.upstream {
                // The configuration checked that the name is there.
                if let Some(at) = config.upstreams.keys().position(|n| n == name) {
                    proxied.push(ProxiedLocation {
                        prefix: loc.prefix.clone(),
                        upstream: UpstreamRef::Named(at),
                        add_header: loc.add_header.clone(),
                    });
                }
                continue;
            }
            match StaticLocation::open(
                loc.prefix.clone(),
                &loc.root,
                loc.index.clone(),
                loc.expires,
                loc.internal,
                loc.directio_threshold
                    .unwrap_or(config.io.directio_threshold),
            ) {
                Ok(mut opened) => {
                    opened.precompressed = loc.precompressed.clone();
                    opened.add_header = loc.add_header.clone();
                    opened.open_cache =
                        (config.io.open_file_cache > 0).then_some(OpenCacheLimits {
                            max: config.io.open_file_cache,
                            valid: config.io.open_file_cache_valid,
                        });
                    locations.push(Arc::new(opened));
                }
                Err(err) => {
                    errors.push(format!("location[{i}].root: {}: {err}", loc.root.display()))
                }
            }
        }
        for (i, root) in config.offload.x_sendfile_roots.iter().enumerate() {
            let directio = config.io.directio_threshold;
            match StaticLocation::open(root.display().to_string(), root, None, None, true, directio)
            {
                Ok(opened) => sendfile_roots.push(Arc::new(opened)),
                Err(err) => errors.push(format!(
                    "offload.x_sendfile_roots[{i}]: {}: {err}",
                    root.display()
                )),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        locations.sort_by_key(|loc| std::cmp::Reverse(loc.prefix.len()));
        proxied.sort_by_key(|loc| std::cmp::Reverse(loc.prefix.len()));
        let server_headers = config.server.add_header.clone();
        let any_headers = !server_headers.is_empty()
            || locations.iter().any(|l| !l.add_header.is_empty())
            || proxied.iter().any(|l| !l.add_header.is_empty());
        Ok(Router {
            locations,
            proxied,
            sendfile_roots,
            has_upstream: config.upstream.is_some(),
            server_headers,
            any_headers,
        })
    }

    /// The headers added to the response to `req` (`None`: a refused head): those of the
    /// location its path matches, when it has its own, else `server.add_header`. An
    /// X-Accel-Redirect or X-Sendfile reply takes the list of the client's path (the
    /// server's, as for the app's responses), not the internal location's.
    pub fn added_headers(&self, req: Option<&RequestHead>) -> &[AddHeader] {
        if !self.any_headers {
            return &[];
        }
        let Some(path) = req.map(|r| split_target(&r.target).0) else {
            return &self.server_headers;
        };
        let own = match (self.find(path), self.find_proxied(path)) {
            (Some(file), Some(proxied)) if proxied.prefix.len() > file.prefix.len() => {
                &proxied.add_header
            }
            (Some(file), _) => &file.add_header,
            (None, Some(proxied)) => &proxied.add_header,
            (None, None) => return &self.server_headers,
        };
        if own.is_empty() {
            &self.server_headers
        } else {
            own
        }
    }

    /// The proxied location whose prefix is the longest prefix of `path`.
    fn find_proxied(&self, path: &str) -> Option<&ProxiedLocation> {
        self.proxied
            .iter()
            .find(|loc| path.starts_with(loc.prefix.as_str()))
    }

    /// The location whose prefix is the longest prefix of `path`, internal ones included.
    fn find(&self, path: &str) -> Option<&Arc<StaticLocation>> {
        self.locations
            .iter()
            .find(|loc| path.starts_with(&loc.prefix))
    }

    /// Decides who answers a client's request; static files are answered here, with file
    /// opens off the reactor.
    pub async fn handle(&self, req: &RequestHead) -> Dispatch {
        match self.handle_now(req) {
            Ok(dispatch) => dispatch,
            Err(pending) => pending.finish(req).await,
        }
    }

    /// `handle` without waiting: `Err` when a file lookup the kernel cannot answer from its
    /// caches is left, for `Pending::finish` to run off the reactor. Most requests are
    /// decided here, with no future to build and poll.
    pub fn handle_now(&self, req: &RequestHead) -> Result<Dispatch, Pending> {
        let (path, query) = split_target(&req.target);
        let found = self.find(path);
        if let Some(proxied) = self.find_proxied(path)
            && found.is_none_or(|loc| loc.prefix.len() < proxied.prefix.len())
        {
            return Ok(Dispatch::Upstream(proxied.upstream));
        }
        let Some(loc) = found else {
            if self.has_upstream {
                return Ok(Dispatch::Upstream(UpstreamRef::Default));
            }
            // `/static` for a location `/static/` is a redirect, as for a directory.
            if let Some(loc) = self
                .locations
                .iter()
                .find(|l| !l.internal && l.prefix.strip_suffix('/') == Some(path))
            {
                return Ok(Dispatch::Reply(Reply::redirect(
                    with_query(loc.prefix.clone(), query),
                    Source::Static,
                )));
            }
            return Ok(Dispatch::Reply(Reply::error(404, Source::Internal)));
        };
        if loc.internal {
            // nginx's `internal;`: a client cannot name it, only an X-Accel-Redirect can.
            return Ok(Dispatch::Reply(Reply::error(404, Source::Static)));
        }
        let mut reply = serve_static(loc, req, path, query)?;
        loc.add_vary(&mut reply);
        Ok(Dispatch::Reply(reply))
    }
}

/// A static file lookup that has to wait: the kernel could not resolve the path (or a
/// pre-compressed variant of it) from its caches.
pub struct Pending {
    loc: Arc<StaticLocation>,
    lookup: Lookup,
}

enum Lookup {
    /// The path itself, to open with blocking lookups.
    Path {
        rel: OsString,
        dir_request: bool,
        codings: Codings,
    },
    /// The file is open; its pre-compressed variants are still to be looked for.
    Variants(Box<static_file::Opened>),
}

impl Pending {
    /// Runs the lookup and answers the request with what it found.
    pub async fn finish(self, req: &RequestHead) -> Dispatch {
        let loc = Arc::clone(&self.loc);
        let opened = self.open().await;
        let (path, query) = split_target(&req.target);
        let mut reply = static_reply(opened, &loc, req, path, query);
        loc.add_vary(&mut reply);
        Dispatch::Reply(reply)
    }

    /// Runs the lookup on the blocking pool, so a cold lookup never stalls other
    /// connections.
    async fn open(self) -> Result<static_file::Opened, static_file::OpenError> {
        let Pending { loc, lookup } = self;
        tokio::task::spawn_blocking(move || match lookup {
            Lookup::Path {
                rel,
                dir_request,
                codings,
            } => static_file::open(&loc, &rel, dir_request, codings, PathLookup::Blocking),
            Lookup::Variants(opened) => Ok(static_file::open_untried(&loc, *opened)),
        })
        .await
        .unwrap_or_else(|join| {
            tracing::error!(error = %join, "file open task failed");
            Err(static_file::OpenError::Internal)
        })
    }
}

/// A client's request for a file of the static location `loc`.
fn serve_static(
    loc: &Arc<StaticLocation>,
    req: &RequestHead,
    path: &str,
    query: Option<&str>,
) -> Result<Reply, Pending> {
    if !matches!(req.method, Method::Get | Method::Head) {
        return Ok(Reply::error(405, Source::Static).with_header("Allow", "GET, HEAD"));
    }
    let rel = match relative_path(&path[loc.prefix.len()..]) {
        Ok(rel) => rel,
        Err(err) => {
            tracing::debug!(target = %req.target, error = %err, "path refused");
            return Ok(Reply::error(400, Source::Static));
        }
    };
    let opened = open_now(loc, &rel, path.ends_with('/'), loc.codings(req))?;
    Ok(static_reply(opened, loc, req, path, query))
}

/// Opens `rel` beneath `loc` (or the first of its `codings` variants that is there) on the
/// event loop when the kernel can resolve it from its caches (the common case: a dentry
/// lookup and an open, a few microseconds); else leaves it `Pending`. When only a variant's
/// lookup would block, only the variants are left.
fn open_now(
    loc: &Arc<StaticLocation>,
    rel: &std::ffi::OsStr,
    dir_request: bool,
    codings: Codings,
) -> Result<Result<static_file::Opened, static_file::OpenError>, Pending> {
    let lookup =
        match static_file::open(loc, rel, dir_request, codings, PathLookup::KernelCachesOnly) {
            Err(static_file::OpenError::WouldBlock) => Lookup::Path {
                rel: rel.to_os_string(),
                dir_request,
                codings,
            },
            Ok(opened) if opened.untried.is_some() => Lookup::Variants(Box::new(opened)),
            done => return Ok(done),
        };
    Err(Pending {
        loc: Arc::clone(loc),
        lookup,
    })
}

/// Opens `rel` beneath `loc` (`open_now`, then off the reactor when it has to wait).
async fn open_file(
    loc: &Arc<StaticLocation>,
    rel: &std::ffi::OsStr,
    dir_request: bool,
    codings: Codings,
) -> Result<static_file::Opened, static_file::OpenError> {
    match open_now(loc, rel, dir_request, codings) {
        Ok(opened) => opened,
        Err(pending) => pending.open().await,
    }
}

/// The answer to a static request, from what opening its file gave.
fn static_reply(
    opened: Result<static_file::Opened, static_file::OpenError>,
    loc: &StaticLocation,
    req: &RequestHead,
    path: &str,
    query: Option<&str>,
) -> Reply {
    match opened {
        Ok(opened) => static_file::reply(req, opened, loc.expires),
        Err(static_file::OpenError::Directory) => {
            Reply::redirect(with_query(format!("{path}/"), query), Source::Static)
        }
        Err(err) => Reply::error(err.status(), Source::Static),
    }
}

/// Splits a request target into path and query (without the `?`).
pub fn split_target(target: &str) -> (&str, Option<&str>) {
    // A byte search: `split_once` with a char pattern cost more than routing the request.
    match target.bytes().position(|b| b == b'?') {
        Some(at) => (&target[..at], Some(&target[at + 1..])),
        None => (target, None),
    }
}

fn with_query(mut location: String, query: Option<&str>) -> String {
    if let Some(query) = query {
        location.push('?');
        location.push_str(query);
    }
    location
}
