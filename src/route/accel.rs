//! Files the app points at instead of sending them: X-Accel-Redirect (nginx semantics: a URI
//! that must land in an `internal` location) and X-Sendfile (lighttpd semantics: an absolute
//! path that must resolve beneath one of `offload.x_sendfile_roots`). Either way the file goes
//! out on the same send paths as a static file, with the client's Range and conditional
//! headers applied to it, and source `accel`. An internal location's `precompressed` variants
//! apply to X-Accel-Redirect files as to a client's request (nginx's `gzip_static` does too).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use super::reply::Reply;
use super::static_file::OpenError;
use super::{Router, open_file, relative_path, split_target, static_file};
use crate::http::ResponseHead;
use crate::http::{Codings, Method, RequestHead};
use crate::metrics::Source;

/// App headers that survive an X-Accel-Redirect (as in nginx); everything else the app said
/// is about its own (empty) response, not the file.
const ACCEL_KEPT: [&str; 6] = [
    "content-type",
    "set-cookie",
    "content-disposition",
    "cache-control",
    "expires",
    "accept-ranges",
];

/// App headers an X-Sendfile reply does not take over: the file decides them.
const SENDFILE_DROPPED: [&str; 5] = [
    "etag",
    "last-modified",
    "content-range",
    "x-sendfile",
    "content-length",
];

/// Headers whose app value replaces ferry's own rather than joining it.
const REPLACING: [&str; 4] = ["content-type", "cache-control", "expires", "accept-ranges"];

impl Router {
    /// Serves the file an X-Accel-Redirect `value` names, or 404.
    pub async fn accel_redirect(
        &self,
        req: &RequestHead,
        value: &[u8],
        app: &ResponseHead,
    ) -> Reply {
        let Ok(uri) = std::str::from_utf8(value) else {
            tracing::warn!(value = ?String::from_utf8_lossy(value), "x-accel-redirect: not a uri");
            return Reply::error(404, Source::Accel);
        };
        // The value is a URI: `?args` are split off, the path is percent-decoded below.
        let (path, _args) = split_target(uri.trim());
        let Some(loc) = self.find(path).filter(|loc| loc.internal) else {
            tracing::warn!(uri, "x-accel-redirect: not in an internal location");
            return Reply::error(404, Source::Accel);
        };
        let rel = match relative_path(&path[loc.prefix.len()..]) {
            Ok(rel) => rel,
            Err(err) => {
                tracing::warn!(uri, error = %err, "x-accel-redirect: path refused");
                return Reply::error(404, Source::Accel);
            }
        };
        let file_req = as_file_request(req);
        let codings = loc.codings(req);
        let mut reply = match open_file(loc, &rel, false, codings).await {
            Ok(opened) => static_file::reply(&file_req, opened, loc.expires),
            Err(err) => {
                tracing::warn!(uri, error = ?err, "x-accel-redirect: file not served");
                let status = if err == OpenError::Directory {
                    404
                } else {
                    err.status()
                };
                let mut reply = Reply::error(status, Source::Accel);
                loc.add_vary(&mut reply);
                return reply;
            }
        };
        reply.source = Source::Accel;
        take_app_headers(&mut reply, app, |name| ACCEL_KEPT.contains(&name));
        loc.add_vary(&mut reply);
        reply.rate = limit_rate(app);
        reply
    }

    /// Serves the file an X-Sendfile `value` names: 403 unless it lies beneath a root.
    pub async fn x_sendfile(&self, req: &RequestHead, value: &[u8], app: &ResponseHead) -> Reply {
        let path = Path::new(OsStr::from_bytes(value.trim_ascii()));
        let escapes = !path.is_absolute()
            || value.contains(&0)
            || path.components().any(|c| c == Component::ParentDir);
        let found = self
            .sendfile_roots
            .iter()
            .find_map(|root| Some((root, path.strip_prefix(&root.root).ok()?)));
        let Some((root, rest)) = found.filter(|_| !escapes) else {
            tracing::warn!(path = %path.display(), "x-sendfile: not beneath offload.x_sendfile_roots");
            return Reply::error(403, Source::Accel);
        };
        let rel = if rest.as_os_str().is_empty() {
            OsStr::new(".")
        } else {
            rest.as_os_str()
        };
        let file_req = as_file_request(req);
        let codings = Codings::default();
        let mut reply = match open_file(root, rel, false, codings).await {
            Ok(opened) => static_file::reply(&file_req, opened, None),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = ?err, "x-sendfile: file not served");
                // A symlink out of the root is the kernel refusing an escape: forbidden.
                let status = match err {
                    OpenError::Escape | OpenError::Directory | OpenError::Forbidden => 403,
                    other => other.status(),
                };
                return Reply::error(status, Source::Accel);
            }
        };
        reply.source = Source::Accel;
        take_app_headers(&mut reply, app, |name| !SENDFILE_DROPPED.contains(&name));
        reply.rate = limit_rate(app);
        reply
    }
}

/// The request the file is served for: the client's headers (Range, conditionals) with the
/// method turned into GET unless it was HEAD.
fn as_file_request(req: &RequestHead) -> RequestHead {
    let mut file_req = req.clone();
    if file_req.method != Method::Head {
        file_req.method = Method::Get;
    }
    file_req
}

/// Copies the app's headers that `keep` accepts (by lowercase name) onto a successful file
/// reply; for Content-Type, Cache-Control, Expires and Accept-Ranges the app's value wins.
/// A multipart/byteranges reply keeps its own Content-Type.
fn take_app_headers(reply: &mut Reply, app: &ResponseHead, keep: impl Fn(&str) -> bool) {
    if !(200..300).contains(&reply.status) && reply.status != 304 {
        return;
    }
    let multipart = reply
        .own_headers
        .iter()
        .any(|(n, v)| *n == "Content-Type" && v.starts_with("multipart/"));
    for (name, value) in app.client_headers() {
        let lower = name.to_ascii_lowercase();
        if !keep(&lower) || (multipart && lower == "content-type") {
            continue;
        }
        if REPLACING.contains(&lower.as_str()) {
            reply.remove_header(&lower);
        }
        reply
            .passed_headers
            .push((name, String::from_utf8_lossy(&value).into_owned()));
    }
}

/// X-Accel-Limit-Rate: bytes per second for this response.
fn limit_rate(app: &ResponseHead) -> Option<u64> {
    let value = app.header("x-accel-limit-rate")?;
    std::str::from_utf8(value)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|&rate| rate > 0)
}
