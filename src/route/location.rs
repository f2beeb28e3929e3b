//! A directory files are served from (a location's root, or an X-Sendfile root): its open
//! directory descriptor, which every file open resolves beneath, and what its replies carry.

use std::num::NonZeroU64;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::reply::Reply;
use crate::config::AddHeader;
use crate::http::{AcceptEncoding, Codings, ContentCoding, RequestHead};

/// A directory files are served from: a location's root, or an X-Sendfile root.
#[derive(Debug)]
pub struct StaticLocation {
    pub prefix: String,
    pub root: PathBuf,
    pub(super) root_fd: OwnedFd,
    pub index: Option<String>,
    pub expires: Option<Duration>,
    /// Reachable only through X-Accel-Redirect.
    pub internal: bool,
    /// Files at least this large are read with O_DIRECT (the location's or `[io]`'s
    /// `directio_threshold`); `None`: never.
    pub directio: Option<NonZeroU64>,
    /// The location's `precompressed` codings, in its order of preference; empty: off.
    pub precompressed: Vec<ContentCoding>,
    /// The location's own `add_header` list; empty: the server's applies.
    pub add_header: Vec<AddHeader>,
    /// Keep opened files for reuse (`io.open_file_cache`); `None`: open every time.
    pub open_cache: Option<super::open_cache::OpenCacheLimits>,
}

impl StaticLocation {
    pub(super) fn open(
        prefix: String,
        root: &Path,
        index: Option<String>,
        expires: Option<Duration>,
        internal: bool,
        directio: Option<NonZeroU64>,
    ) -> std::io::Result<StaticLocation> {
        let root_fd = crate::sys::open_root(root)?;
        Ok(StaticLocation {
            prefix,
            root: root.to_path_buf(),
            root_fd,
            index,
            expires,
            internal,
            directio,
            precompressed: Vec::new(),
            add_header: Vec::new(),
            open_cache: None,
        })
    }

    /// The pre-compressed variants to look for, best first; none, without reading the
    /// request, when the location offers none.
    pub(super) fn codings(&self, req: &RequestHead) -> Codings {
        if self.precompressed.is_empty() {
            return Codings::default();
        }
        AcceptEncoding::parse(req.headers_all("accept-encoding")).preferred(&self.precompressed)
    }

    /// Every response of a location that offers variants says the answer depends on
    /// Accept-Encoding (identity ones too), so shared caches keep the variants apart.
    pub(super) fn add_vary(&self, reply: &mut Reply) {
        if !self.precompressed.is_empty() {
            reply.own_headers.push(("Vary", "Accept-Encoding".into()));
        }
    }
}
