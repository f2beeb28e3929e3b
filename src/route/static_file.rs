//! A static location's file: opened beneath the root (blocking; the router runs this off the
//! reactor), then turned into a reply — its validators and caching headers here, conditional
//! requests and ranges in `file_answer`. Whether the
//! body is read with O_DIRECT (the location's directio threshold) is decided here too, and
//! which pre-compressed variant (`NAME.br`, ...) stands in for the file: it becomes the
//! selected representation, so its bytes, length and validators are the reply's.

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::file_answer::{FileAnswer, FileBytes, answer};
use super::location::StaticLocation;
use super::open_cache;
use super::reply::{OwnHeaders, Reply};
use crate::http::{
    Codings, ContentCoding, RequestHead, ShortText, Validators, content_type, http_date_text,
    strong_etag,
};
use crate::metrics::Source;
use crate::send::Body;

/// Why a file could not be opened; each maps to a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Not there (or a symlink loop).
    NotFound,
    /// The lookup would leave the root (the kernel said EXDEV): 404 for a location, 403 for
    /// an X-Sendfile path.
    Escape,
    /// Not readable, not a regular file, or a directory without an index.
    Forbidden,
    /// A directory asked for without its trailing slash.
    Directory,
    /// The cached-only lookup would have blocked: retry off the event loop.
    WouldBlock,
    Internal,
}

impl OpenError {
    pub fn status(self) -> u16 {
        match self {
            OpenError::NotFound | OpenError::Escape => 404,
            OpenError::Forbidden => 403,
            OpenError::Directory => 301,
            OpenError::WouldBlock | OpenError::Internal => 500,
        }
    }

    fn from_io(err: &io::Error) -> OpenError {
        use rustix::io::Errno;
        if err.kind() == io::ErrorKind::WouldBlock {
            return OpenError::WouldBlock;
        }
        match err.raw_os_error().map(Errno::from_raw_os_error) {
            Some(Errno::XDEV) => OpenError::Escape,
            Some(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::NAMETOOLONG) => {
                OpenError::NotFound
            }
            Some(Errno::ACCESS | Errno::PERM | Errno::NXIO) => OpenError::Forbidden,
            _ => OpenError::Internal,
        }
    }
}

/// An opened regular file with its metadata and its Content-Type (from its name).
#[derive(Debug)]
pub struct Opened {
    pub file: Arc<File>,
    pub meta: Metadata,
    pub content_type: ShortText,
    /// At or above the location's directio threshold: to be read with O_DIRECT.
    pub direct: bool,
    /// `Some`: `file` and `meta` are this pre-compressed variant of the file asked for.
    pub encoding: Option<ContentCoding>,
    /// Variants a cached-only lookup could not try, with the file's path: for
    /// [`open_untried`] off the reactor. `None` once looked for.
    pub untried: Option<(Codings, OsString)>,
}

/// How a path may be looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathLookup {
    /// Only from the kernel's caches, never waiting for the disk (safe on the event loop).
    KernelCachesOnly,
    /// Any way it takes (on the blocking pool).
    Blocking,
}

/// Opens `rel` beneath the location's root; a directory yields its index file. When that
/// file is there, the first of `codings` whose variant is a regular file stands in for it.
pub fn open(
    loc: &StaticLocation,
    rel: &OsStr,
    dir_request: bool,
    codings: Codings,
    lookup: PathLookup,
) -> Result<Opened, OpenError> {
    let (file, meta) = open_checked(loc, rel, lookup)?;
    if meta.is_file() {
        return Ok(with_variant(loc, rel, (file, meta), codings, lookup));
    }
    if !meta.is_dir() {
        return Err(OpenError::Forbidden);
    }
    if !dir_request {
        return Err(OpenError::Directory);
    }
    let Some(index) = &loc.index else {
        return Err(OpenError::Forbidden);
    };
    let mut index_rel = rel.as_bytes().to_vec();
    if index_rel == b"." {
        index_rel.clear();
    } else {
        index_rel.push(b'/');
    }
    index_rel.extend_from_slice(index.as_bytes());
    let index_rel = OsString::from_vec(index_rel);
    match open_checked(loc, &index_rel, lookup) {
        Ok((file, meta)) if meta.is_file() => {
            Ok(with_variant(loc, &index_rel, (file, meta), codings, lookup))
        }
        // nginx answers a directory without a usable index with 403 (no autoindex).
        Ok(_) | Err(OpenError::NotFound) => Err(OpenError::Forbidden),
        Err(err) => Err(err),
    }
}

/// The file `rel` (opened: `original`), or the first of `codings` whose variant is there.
/// The Content-Type is the original's either way.
fn with_variant(
    loc: &StaticLocation,
    rel: &OsStr,
    original: (Arc<File>, Metadata),
    codings: Codings,
    lookup: PathLookup,
) -> Opened {
    let (file, meta) = original;
    let mut opened = Opened {
        direct: is_direct(loc, &meta),
        file,
        meta,
        content_type: content_type(Path::new(rel)),
        encoding: None,
        untried: None,
    };
    match open_variant(loc, rel, codings, lookup) {
        Probe::Found(file, meta, coding) => opened.take_variant(loc, file, meta, coding),
        Probe::Missing => {}
        Probe::Blocked(rest) => opened.untried = Some((rest, rel.to_os_string())),
    }
    opened
}

/// With blocking lookups, the variants a cached-only lookup left untried (the original stays
/// open: only the variants' lookups move off the reactor).
pub fn open_untried(loc: &StaticLocation, mut opened: Opened) -> Opened {
    if let Some((codings, rel)) = opened.untried.take()
        && let Probe::Found(file, meta, coding) =
            open_variant(loc, &rel, codings, PathLookup::Blocking)
    {
        opened.take_variant(loc, file, meta, coding);
    }
    opened
}

impl Opened {
    fn take_variant(
        &mut self,
        loc: &StaticLocation,
        file: Arc<File>,
        meta: Metadata,
        coding: ContentCoding,
    ) {
        self.direct = is_direct(loc, &meta);
        self.file = file;
        self.meta = meta;
        self.encoding = Some(coding);
    }
}

/// What looking for a pre-compressed variant found.
enum Probe {
    Found(Arc<File>, Metadata, ContentCoding),
    Missing,
    /// A cached-only lookup would have blocked: these codings, best first, are still to try.
    Blocked(Codings),
}

/// Tries `rel` + each coding's suffix, best first, through the same `RESOLVE_BENEATH` open as
/// the original: one openat2 per coding at most, none when `codings` is empty or `rel`
/// already names a variant (`app.js.gz` is served as the file it is). A variant that is
/// missing, not a regular file, unreadable or reached by a symlink out of the root is
/// skipped.
fn open_variant(loc: &StaticLocation, rel: &OsStr, codings: Codings, lookup: PathLookup) -> Probe {
    let rel = rel.as_bytes();
    let names_variant = ContentCoding::ALL
        .iter()
        .any(|coding| rel.ends_with(coding.suffix().as_bytes()));
    if codings.is_empty() || names_variant {
        return Probe::Missing;
    }
    let mut name = Vec::with_capacity(rel.len() + 4);
    for (tried, coding) in codings.iter().enumerate() {
        name.clear();
        name.extend_from_slice(rel);
        name.extend_from_slice(coding.suffix().as_bytes());
        let path = OsStr::from_bytes(&name);
        match open_checked(loc, path, lookup) {
            Ok((file, meta)) if meta.is_file() => return Probe::Found(file, meta, coding),
            Ok(_) => tracing::debug!(?path, "variant not a regular file: skipped"),
            Err(OpenError::WouldBlock) => return Probe::Blocked(codings.skip(tried)),
            Err(OpenError::NotFound) => {}
            Err(err) => tracing::debug!(?path, error = ?err, "variant skipped"),
        }
    }
    Probe::Missing
}

/// Whether a file of this location is read with O_DIRECT: the choice is made here, once per
/// response, and the send path follows it (`send::SendPath::Directio`).
fn is_direct(loc: &StaticLocation, meta: &Metadata) -> bool {
    loc.directio
        .is_some_and(|threshold| meta.len() >= threshold.get())
}

fn open_checked(
    loc: &StaticLocation,
    rel: &OsStr,
    lookup: PathLookup,
) -> Result<(Arc<File>, Metadata), OpenError> {
    let root = loc.root_fd.as_raw_fd();
    if loc.open_cache.is_some()
        && let Some(kept) = open_cache::get(root, rel)
    {
        return Ok(kept);
    }
    let opened = match lookup {
        PathLookup::KernelCachesOnly => crate::sys::open_beneath_cached(&loc.root_fd, rel),
        PathLookup::Blocking => crate::sys::open_beneath(&loc.root_fd, rel),
    };
    let fd = opened.map_err(|err| {
        let kind = OpenError::from_io(&err);
        if kind == OpenError::Internal {
            tracing::warn!(root = %loc.root.display(), path = ?rel, error = %err, "open failed");
        }
        kind
    })?;
    let file = Arc::new(File::from(fd));
    let meta = file.metadata().map_err(|err| {
        tracing::warn!(path = ?rel, error = %err, "fstat failed");
        OpenError::Internal
    })?;
    // A file read with O_DIRECT is not shared: the flag belongs to the open file, and a
    // concurrent sendfile or read of a kept descriptor must not inherit it.
    if let Some(limits) = loc.open_cache
        && meta.is_file()
        && !is_direct(loc, &meta)
    {
        open_cache::put(root, rel, &file, &meta, limits);
    }
    Ok((file, meta))
}

/// The ETag and Last-Modified texts of a file, kept for the file this thread answered last:
/// most requests are for the file of the request before (or one of a page's few), and both
/// texts follow from the key alone (inode, size, modification time).
fn validator_texts(
    inode: u64,
    size: u64,
    mtime_nanos: i128,
    modified: SystemTime,
) -> (ShortText, ShortText) {
    type Last = Option<((u64, u64, i128), (ShortText, ShortText))>;
    thread_local! {
        static LAST: std::cell::RefCell<Last> = const { std::cell::RefCell::new(None) };
    }
    let key = (inode, size, mtime_nanos);
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((at, texts)) if *at == key => texts.clone(),
            _ => {
                let texts = (
                    strong_etag(inode, size, mtime_nanos),
                    http_date_text(modified),
                );
                *last = Some((key, texts.clone()));
                texts
            }
        }
    })
}

/// The reply for an opened file: 200, 206 (one or several ranges), 304, 412 or 416.
pub fn reply(req: &RequestHead, opened: Opened, expires: Option<Duration>) -> Reply {
    let len = opened.meta.len();
    let modified = opened.meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let mtime_nanos =
        i128::from(opened.meta.mtime()) * 1_000_000_000 + i128::from(opened.meta.mtime_nsec());
    let (etag, last_modified) = validator_texts(opened.meta.ino(), len, mtime_nanos, modified);
    let validators = Validators {
        etag,
        last_modified: modified,
    };
    // The validators and caching headers every 200, 206 and 304 carries; the ETag moves
    // in once the validators are no longer needed. Values are constants or held inline.
    let validator_headers = |etag: ShortText| {
        let mut headers = OwnHeaders::with_capacity(9);
        headers.push(("Last-Modified", last_modified));
        headers.push(("ETag", etag));
        if let Some(max_age) = expires {
            let max_age_text = ShortText::format(format_args!("max-age={}", max_age.as_secs()));
            headers.push(("Cache-Control", max_age_text));
            headers.push(("Expires", http_date_text(SystemTime::now() + max_age)));
        }
        headers
    };
    let reply = |status, mut headers: OwnHeaders, body| {
        headers.push(("Accept-Ranges", "bytes".into()));
        let mut reply = Reply::new(status, Source::Static, body);
        reply.own_headers = headers;
        reply
    };
    let ctype = opened.content_type;
    let encoding = opened.encoding;
    let bytes = FileBytes {
        file: opened.file,
        offset: 0,
        len,
        direct: opened.direct,
    };
    let coded = |headers: &mut OwnHeaders| {
        if let Some(coding) = encoding {
            headers.push(("Content-Encoding", coding.token().into()));
        }
    };
    let part_type = || ctype.to_string();
    match answer(
        req,
        Some(&validators),
        &bytes,
        part_type,
        encoding.is_none(),
    ) {
        FileAnswer::NotModified => reply(304, validator_headers(validators.etag), Body::Empty),
        FileAnswer::PreconditionFailed => Reply::error(412, Source::Static),
        FileAnswer::Unsatisfiable { content_range } => {
            let mut err = Reply::error(416, Source::Static);
            err.own_headers
                .push(("Content-Range", content_range.into()));
            err
        }
        FileAnswer::Whole(body) => {
            let mut headers = validator_headers(validators.etag);
            headers.push(("Content-Type", ctype));
            coded(&mut headers);
            reply(200, headers, body)
        }
        FileAnswer::Range {
            body,
            content_range,
        } => {
            let mut headers = validator_headers(validators.etag);
            headers.push(("Content-Type", ctype));
            coded(&mut headers);
            headers.push(("Content-Range", content_range.into()));
            reply(206, headers, body)
        }
        FileAnswer::Multipart { body, content_type } => {
            let mut headers = validator_headers(validators.etag);
            headers.push(("Content-Type", content_type.into()));
            reply(206, headers, body)
        }
    }
}
