//! From a parsed request head to a `Reply`: the longest-prefix location decides who answers;
//! static locations resolve the path safely beneath their root and answer with a file body.
//! The proxy (upstream) and internal locations join here later.
//!
//! Not here: framing, keep-alive and writing (frontend, send).

mod resolve;
mod static_file;

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

pub use resolve::{BadPath, relative_path};

use crate::config::Location;
use crate::http::{Method, RequestHead, reason};
use crate::metrics::Source;
use crate::send::Body;

/// A response ready to be framed and sent.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Headers other than Date, Server, Content-Length and Connection, which the frontend adds.
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    pub source: Source,
}

impl Reply {
    /// A small text body naming the status, as every error ferry generates.
    pub fn error(status: u16, source: Source) -> Reply {
        let text = format!("{status} {}\n", reason(status));
        Reply {
            status,
            headers: vec![("Content-Type", "text/plain; charset=utf-8".to_string())],
            body: Body::Bytes(Bytes::from(text)),
            source,
        }
    }

    /// A permanent redirect to `location`.
    pub fn redirect(location: String, source: Source) -> Reply {
        let mut reply = Reply::error(301, source);
        reply.headers.push(("Location", location));
        reply
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }
}

/// A static location, with its root opened once at start-up.
#[derive(Debug)]
pub struct StaticLocation {
    pub prefix: String,
    pub root: PathBuf,
    root_fd: OwnedFd,
    pub index: Option<String>,
    pub expires: Option<Duration>,
}

/// All locations, longest prefix first.
#[derive(Debug)]
pub struct Router {
    locations: Vec<Arc<StaticLocation>>,
}

impl Router {
    /// Opens every location's root; a root that cannot be opened is reported with its key.
    pub fn new(locations: &[Location]) -> Result<Router, Vec<String>> {
        let mut opened = Vec::new();
        let mut errors = Vec::new();
        for (i, loc) in locations.iter().enumerate() {
            match crate::sys::open_root(&loc.root) {
                Ok(root_fd) => opened.push(Arc::new(StaticLocation {
                    prefix: loc.prefix.clone(),
                    root: loc.root.clone(),
                    root_fd,
                    index: loc.index.clone(),
                    expires: loc.expires,
                })),
                Err(err) => {
                    errors.push(format!("location[{i}].root: {}: {err}", loc.root.display()))
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        opened.sort_by_key(|loc| std::cmp::Reverse(loc.prefix.len()));
        Ok(Router { locations: opened })
    }

    /// The location whose prefix is the longest prefix of `path`.
    pub fn find(&self, path: &str) -> Option<&Arc<StaticLocation>> {
        self.locations
            .iter()
            .find(|loc| path.starts_with(&loc.prefix))
    }

    /// Answers one request. File opens run off the reactor.
    pub async fn handle(&self, req: &RequestHead) -> Reply {
        let (path, query) = split_target(&req.target);
        let Some(loc) = self.find(path) else {
            // `/static` for a location `/static/` is a redirect, as for a directory.
            if let Some(loc) = self
                .locations
                .iter()
                .find(|l| l.prefix.strip_suffix('/') == Some(path))
            {
                return Reply::redirect(with_query(loc.prefix.clone(), query), Source::Static);
            }
            return Reply::error(404, Source::Internal);
        };
        if !matches!(req.method, Method::Get | Method::Head) {
            return Reply::error(405, Source::Static).with_header("Allow", "GET, HEAD".to_string());
        }
        let rest = &path[loc.prefix.len()..];
        let rel = match relative_path(rest) {
            Ok(rel) => rel,
            Err(err) => {
                tracing::debug!(target = %req.target, error = %err, "path refused");
                return Reply::error(400, Source::Static);
            }
        };
        let loc = Arc::clone(loc);
        let dir_request = path.ends_with('/');
        let opened = tokio::task::spawn_blocking(move || {
            static_file::open(&loc, rel, dir_request).map(|f| (f, loc))
        })
        .await
        .unwrap_or_else(|join| {
            tracing::error!(error = %join, "file open task failed");
            Err(static_file::OpenError::Internal)
        });
        match opened {
            Ok((file, loc)) => static_file::reply(req, file, loc.expires),
            Err(static_file::OpenError::Directory) => {
                Reply::redirect(with_query(format!("{path}/"), query), Source::Static)
            }
            Err(err) => Reply::error(err.status(), Source::Static),
        }
    }
}

/// Splits a request target into path and query (without the `?`).
pub fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
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
