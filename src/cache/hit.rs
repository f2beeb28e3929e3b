//! A stored object turned into a reply: its stored status and headers, an `Age`, an
//! `X-Cache` header, and its body as a range of the cache file, so it leaves on the same
//! send paths as a static file (sendfile, ktls_sendfile). For a stored 200, the client's
//! conditional headers are evaluated against the stored ETag and Last-Modified (304, 412)
//! and its Range header against the stored body (206, multipart, 416).

use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::Object;
use super::policy::parse_http_date;
use crate::http::{
    Method, Precondition, RangeRequest, RequestHead, Validators, content_range, evaluate,
    if_range_allows, multipart_boundary, multipart_end, multipart_part_head, parse_range,
    unsatisfied_range,
};
use crate::metrics::{CacheResult, Source};
use crate::route::Reply;
use crate::send::{Body, FileRange, Part};

/// An entity-tag no client can send back: stands in for a missing ETag so that only `*`
/// matches it.
const NO_ETAG: &str = "W/\"\u{1}\"";

/// The request headers [`evaluate`] looks at: without any of them it answers `Proceed`.
const PRECONDITIONS: [&str; 4] = [
    "if-match",
    "if-unmodified-since",
    "if-none-match",
    "if-modified-since",
];

/// The reply for `req` from `object` (its file opened as `file`), `now` in seconds.
pub fn reply(
    req: &RequestHead,
    object: &Object,
    file: File,
    result: CacheResult,
    now: u64,
) -> Reply {
    let meta = &object.meta;
    let mut headers: Vec<(String, String)> = meta
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), String::from_utf8_lossy(value).into_owned()))
        .collect();
    let tag = |reply: Reply| -> Reply {
        reply
            .with_header("Age", meta.age(now).to_string())
            .with_header("X-Cache", result.header().to_string())
    };
    let len = meta.body_len;
    let file = Arc::new(file);
    let whole = |offset: u64, len: u64| {
        Body::File(FileRange {
            file: Arc::clone(&file),
            offset: object.body_offset + offset,
            len,
            direct: false,
        })
    };
    if meta.status != 200 {
        let mut reply = Reply::new(meta.status, Source::Cache, whole(0, len));
        reply.extra_headers = headers;
        return tag(reply);
    }
    // Most hits carry neither preconditions nor Range: then the validators (an ETag copy and
    // a Last-Modified parse) are not needed, and evaluating them would change nothing.
    let conditional = PRECONDITIONS.iter().any(|name| req.header(name).is_some());
    let range = req.header("range").filter(|_| req.method == Method::Get);
    let validators = (conditional || range.is_some()).then(|| validators(meta));
    if let Some(validators) = validators.as_ref().filter(|_| conditional) {
        match evaluate(req, validators) {
            Precondition::Proceed => {}
            Precondition::NotModified => {
                let mut reply = Reply::new(304, Source::Cache, Body::Empty);
                reply.extra_headers = headers;
                return tag(reply);
            }
            Precondition::Failed => return tag(Reply::error(412, Source::Cache)),
        }
    }
    let range = match (range, &validators) {
        (Some(value), Some(validators)) if if_range_allows(req, validators) => {
            parse_range(value, len)
        }
        _ => RangeRequest::Full,
    };
    let mut reply = match range {
        RangeRequest::Full => Reply::new(200, Source::Cache, whole(0, len)),
        RangeRequest::Unsatisfiable => {
            let reply = Reply::error(416, Source::Cache)
                .with_header("Content-Range", unsatisfied_range(len));
            return tag(reply);
        }
        RangeRequest::Partial(ranges) if ranges.len() == 1 => {
            let r = ranges[0];
            Reply::new(206, Source::Cache, whole(r.start, r.len()))
                .with_header("Content-Range", content_range(r, len))
        }
        RangeRequest::Partial(ranges) => {
            let ctype = meta
                .header("content-type")
                .map_or("application/octet-stream".into(), |v| {
                    String::from_utf8_lossy(v).into_owned()
                });
            headers.retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
            let boundary = multipart_boundary(boundary_seed(object, now));
            let mut parts = Vec::with_capacity(ranges.len() * 2 + 1);
            for r in &ranges {
                let head = multipart_part_head(&boundary, &ctype, *r, len);
                parts.push(Part::Bytes(Bytes::from(head)));
                parts.push(Part::File(FileRange {
                    file: Arc::clone(&file),
                    offset: object.body_offset + r.start,
                    len: r.len(),
                    direct: false,
                }));
            }
            parts.push(Part::Bytes(Bytes::from(multipart_end(&boundary))));
            Reply::new(206, Source::Cache, Body::Parts(parts)).with_header(
                "Content-Type",
                format!("multipart/byteranges; boundary={boundary}"),
            )
        }
    };
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("accept-ranges"))
    {
        reply = reply.with_header("Accept-Ranges", "bytes".into());
    }
    reply.extra_headers = headers;
    tag(reply)
}

/// The stored validators. A missing Last-Modified stands as a date no If-Modified-Since can
/// reach (so it never yields 304) and that fails every If-Unmodified-Since, as RFC 9110
/// §13.1.4 asks of a representation without one.
fn validators(meta: &super::Meta) -> Validators {
    let etag = meta.header("etag").map_or(NO_ETAG.to_string(), |v| {
        String::from_utf8_lossy(v).into_owned()
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

fn boundary_seed(object: &Object, now: u64) -> u64 {
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&object.id[..8]);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u64::from_le_bytes(seed) ^ now.rotate_left(20) ^ u64::from(nanos)
}
