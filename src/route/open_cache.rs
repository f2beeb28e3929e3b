//! The open-file cache (nginx `open_file_cache`): each worker keeps the files its static
//! locations opened, descriptor and metadata, and serves the next request for the same path
//! from them without a system call, for `io.open_file_cache_valid`; after that the file is
//! opened again, so a replaced or removed file is seen within that time. Off by default
//! (`io.open_file_cache = 0`), as in nginx. Only successful opens of regular files are
//! kept; at `io.open_file_cache` entries, expired ones are dropped and, if none were, the new
//! file is not kept. Each worker thread runs its own runtime, so the cache is thread-local
//! and takes no lock.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The cache's size and validity, from `[io]`.
#[derive(Debug, Clone, Copy)]
pub struct OpenCacheLimits {
    pub max: usize,
    pub valid: Duration,
}

struct Entry {
    file: Arc<File>,
    meta: Metadata,
    until: Instant,
}

#[derive(Default)]
struct Cache {
    /// By the location's root descriptor, then the path beneath it.
    roots: HashMap<RawFd, HashMap<OsString, Entry>>,
    len: usize,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::default();
}

/// The kept file for `rel` beneath `root`, if it is still valid.
pub fn get(root: RawFd, rel: &OsStr) -> Option<(Arc<File>, Metadata)> {
    CACHE.with(|cache| {
        let cache = cache.borrow();
        let entry = cache.roots.get(&root)?.get(rel)?;
        (Instant::now() < entry.until).then(|| (Arc::clone(&entry.file), entry.meta.clone()))
    })
}

/// Keeps `file` for `rel` beneath `root` for `limits.valid`.
pub fn put(root: RawFd, rel: &OsStr, file: &Arc<File>, meta: &Metadata, limits: OpenCacheLimits) {
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        let now = Instant::now();
        let replaces = cache.roots.get(&root).is_some_and(|m| m.contains_key(rel));
        if !replaces && cache.len >= limits.max {
            cache.drop_expired(now);
            if cache.len >= limits.max {
                return;
            }
        }
        let entry = Entry {
            file: Arc::clone(file),
            meta: meta.clone(),
            until: now + limits.valid,
        };
        if cache
            .roots
            .entry(root)
            .or_default()
            .insert(rel.to_os_string(), entry)
            .is_none()
        {
            cache.len += 1;
        }
    });
}

impl Cache {
    fn drop_expired(&mut self, now: Instant) {
        let mut dropped = 0;
        for files in self.roots.values_mut() {
            let before = files.len();
            files.retain(|_, entry| entry.until > now);
            dropped += before - files.len();
        }
        self.len -= dropped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, valid: Duration) -> OpenCacheLimits {
        OpenCacheLimits { max, valid }
    }

    #[test]
    fn kept_until_valid_runs_out_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        std::fs::write(&path, b"a").unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let meta = file.metadata().unwrap();
        let long = limits(1, Duration::from_secs(3600));
        put(1000, OsStr::new("a"), &file, &meta, long);
        let (got, got_meta) = get(1000, OsStr::new("a")).expect("kept");
        assert!(Arc::ptr_eq(&got, &file));
        assert_eq!(got_meta.len(), 1);
        assert!(get(1001, OsStr::new("a")).is_none(), "another root");
        // Full (max 1) with nothing expired: a second file is not kept.
        put(1000, OsStr::new("b"), &file, &meta, long);
        assert!(get(1000, OsStr::new("b")).is_none());
        // An expired entry makes room, and is not served.
        put(
            1000,
            OsStr::new("a"),
            &file,
            &meta,
            limits(1, Duration::ZERO),
        );
        assert!(get(1000, OsStr::new("a")).is_none(), "expired");
        put(1000, OsStr::new("b"), &file, &meta, long);
        assert!(get(1000, OsStr::new("b")).is_some());
    }
}
