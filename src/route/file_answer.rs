//! The one answer to a request for a file's bytes, for a static file and a cache hit alike:
//! the client's conditional headers against the file's validators (304, 412), then its Range
//! against the length (206 with one range, multipart/byteranges with several, 416), else the
//! whole file. The caller adds the headers that are its own (a static file's validators and
//! caching headers, a stored response's headers, `Age`, `X-Cache`).

use std::fs::File;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::http::{
    ByteRange, Method, Precondition, RangeRequest, RequestHead, Validators, content_range,
    evaluate, if_range_allows, multipart_boundary, multipart_end, multipart_part_head, parse_range,
    unsatisfied_range,
};
use crate::send::{Body, FileRange, Part};

/// The request headers [`evaluate`] looks at: without any of them it answers `Proceed`.
const PRECONDITIONS: [&str; 4] = [
    "if-match",
    "if-unmodified-since",
    "if-none-match",
    "if-modified-since",
];

/// The bytes a file answer is cut from: `len` bytes of `file` from `offset` (a cache file's
/// body starts after its metadata).
pub struct FileBytes {
    pub file: Arc<File>,
    pub offset: u64,
    pub len: u64,
    /// Read with O_DIRECT.
    pub direct: bool,
}

impl FileBytes {
    fn range(&self, start: u64, len: u64) -> FileRange {
        FileRange {
            file: Arc::clone(&self.file),
            offset: self.offset + start,
            len,
            direct: self.direct,
        }
    }
}

/// What to answer with.
pub enum FileAnswer {
    /// 304: the client's copy is current.
    NotModified,
    /// 412: a precondition failed.
    PreconditionFailed,
    /// 416, with its `Content-Range: bytes */LEN`.
    Unsatisfiable { content_range: String },
    /// 200 with the whole file.
    Whole(Body),
    /// 206 with one range and its `Content-Range`.
    Range { body: Body, content_range: String },
    /// 206 with several ranges: the multipart body and its `Content-Type` (which replaces
    /// the file's own; each part carries that).
    Multipart { body: Body, content_type: String },
}

/// Whether [`answer`] would look at validators for `req`: it has a precondition, or a Range
/// on a GET. Without either, the caller need not build them.
pub fn needs_validators(req: &RequestHead) -> bool {
    PRECONDITIONS.iter().any(|name| req.header(name).is_some())
        || (req.method == Method::Get && req.header("range").is_some())
}

/// The answer to `req` for `bytes`. `validators` are the file's; `None` answers with the whole
/// file whatever the request asks (no validators were needed, or a stored non-200 response is
/// not a representation that conditionals and ranges apply to). `part_type` gives each multipart part its Content-Type.
/// `multipart` false answers several ranges with the whole file (a server may ignore Range):
/// parts of content-coded bytes would each need a Content-Encoding, which clients do not
/// expect there.
pub fn answer(
    req: &RequestHead,
    validators: Option<&Validators>,
    bytes: &FileBytes,
    part_type: impl FnOnce() -> String,
    multipart: bool,
) -> FileAnswer {
    let Some(validators) = validators else {
        return FileAnswer::Whole(Body::File(bytes.range(0, bytes.len)));
    };
    match evaluate(req, validators) {
        Precondition::Proceed => {}
        Precondition::NotModified => return FileAnswer::NotModified,
        Precondition::Failed => return FileAnswer::PreconditionFailed,
    }
    let len = bytes.len;
    let range = match req.header("range") {
        Some(value) if req.method == Method::Get && if_range_allows(req, validators) => {
            parse_range(value, len)
        }
        _ => RangeRequest::Full,
    };
    match range {
        RangeRequest::Partial(ranges) if ranges.len() > 1 && !multipart => {
            FileAnswer::Whole(Body::File(bytes.range(0, len)))
        }
        RangeRequest::Full => FileAnswer::Whole(Body::File(bytes.range(0, len))),
        RangeRequest::Unsatisfiable => FileAnswer::Unsatisfiable {
            content_range: unsatisfied_range(len),
        },
        RangeRequest::Partial(ranges) if ranges.len() == 1 => {
            let r = ranges[0];
            FileAnswer::Range {
                body: Body::File(bytes.range(r.start, r.len())),
                content_range: content_range(r, len),
            }
        }
        RangeRequest::Partial(ranges) => {
            let boundary = multipart_boundary(boundary_seed(validators, &ranges));
            let part_type = part_type();
            let mut parts = Vec::with_capacity(ranges.len() * 2 + 1);
            for r in &ranges {
                let head = multipart_part_head(&boundary, &part_type, *r, len);
                parts.push(Part::Bytes(Bytes::from(head)));
                parts.push(Part::File(bytes.range(r.start, r.len())));
            }
            parts.push(Part::Bytes(Bytes::from(multipart_end(&boundary))));
            FileAnswer::Multipart {
                body: Body::Parts(parts),
                content_type: format!("multipart/byteranges; boundary={boundary}"),
            }
        }
    }
}

/// A boundary that differs per response: the file's identity (its ETag), the ranges asked
/// for, and the time.
fn boundary_seed(validators: &Validators, ranges: &[ByteRange]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    validators.etag.hash(&mut hasher);
    for r in ranges {
        (r.start, r.end).hash(&mut hasher);
    }
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
        .hash(&mut hasher);
    hasher.finish()
}
