//! A stored object turned into a reply: its stored status and headers, an `Age`, an
//! `X-Cache` header, and its body as a range of the cache file, so it leaves on the same
//! send paths as a static file (sendfile, ktls_sendfile). For a stored 200, the client's
//! conditional headers are evaluated against the stored ETag and Last-Modified (304, 412)
//! and its Range header against the stored body (206, multipart, 416), by the same
//! `route::file_answer` that answers for static files.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use crate::cache::Meta;
use crate::cache::flow::Stored;
use crate::cache::policy::parse_http_date;
use crate::http::{RequestHead, ShortText, Validators};
use crate::metrics::Source;
use crate::route::Reply;
use crate::route::file_answer::{FileAnswer, FileBytes, answer, needs_validators};
use crate::send::Body;

/// An entity-tag no client can send back: stands in for a missing ETag so that only `*`
/// matches it.
const NO_ETAG: &str = "W/\"\u{1}\"";

/// The reply for `req` from a stored object.
pub fn reply(req: &RequestHead, stored: Stored) -> Reply {
    let Stored {
        object,
        file,
        result,
        now,
    } = stored;
    let meta = &object.meta;
    let mut headers: Vec<(String, String)> = meta
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), String::from_utf8_lossy(value).into_owned()))
        .collect();
    let tag = |reply: Reply| -> Reply {
        let mut reply = reply
            .with_header("Age", ShortText::format(format_args!("{}", meta.age(now))))
            .with_header("X-Cache", result.header());
        reply.notes.cache = Some(result);
        reply
    };
    let len = meta.body_len;
    let bytes = FileBytes {
        file: Arc::new(file),
        offset: object.body_offset,
        len,
        direct: false,
    };
    // Most hits carry neither preconditions nor Range: then the validators (an ETag copy and
    // a Last-Modified parse) are not needed, and evaluating them would change nothing.
    let validators = (meta.status == 200 && needs_validators(req)).then(|| validators(meta));
    let part_type = || {
        meta.header("content-type")
            .map_or("application/octet-stream".into(), |v| {
                String::from_utf8_lossy(v).into_owned()
            })
    };
    let mut reply = match answer(req, validators.as_ref(), &bytes, part_type, true) {
        FileAnswer::NotModified => {
            let mut reply = Reply::new(304, Source::Cache, Body::Empty);
            reply.passed_headers = headers;
            return tag(reply);
        }
        FileAnswer::PreconditionFailed => return tag(Reply::error(412, Source::Cache)),
        FileAnswer::Unsatisfiable { content_range } => {
            let reply =
                Reply::error(416, Source::Cache).with_header("Content-Range", content_range);
            return tag(reply);
        }
        FileAnswer::Whole(body) if meta.status != 200 => {
            let mut reply = Reply::new(meta.status, Source::Cache, body);
            reply.passed_headers = headers;
            return tag(reply);
        }
        FileAnswer::Whole(body) => Reply::new(200, Source::Cache, body),
        FileAnswer::Range {
            body,
            content_range,
        } => Reply::new(206, Source::Cache, body).with_header("Content-Range", content_range),
        FileAnswer::Multipart { body, content_type } => {
            headers.retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
            Reply::new(206, Source::Cache, body).with_header("Content-Type", content_type)
        }
    };
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("accept-ranges"))
    {
        reply = reply.with_header("Accept-Ranges", "bytes");
    }
    reply.passed_headers = headers;
    tag(reply)
}

/// The stored validators. A missing Last-Modified stands as a date no If-Modified-Since can
/// reach (so it never yields 304) and that fails every If-Unmodified-Since, as RFC 9110
/// §13.1.4 asks of a representation without one.
fn validators(meta: &Meta) -> Validators {
    let etag = meta.header("etag").map_or(NO_ETAG.into(), |v| {
        ShortText::copied(&String::from_utf8_lossy(v))
    });
    let last_modified = meta
        .header("last-modified")
        .and_then(parse_http_date)
        .map_or(UNIX_EPOCH + Duration::from_secs(1 << 40), |secs| {
            UNIX_EPOCH + Duration::from_secs(secs)
        });
    Validators {
        etag,
        last_modified,
    }
}
