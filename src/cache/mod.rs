//! The disk cache of upstream responses (`[cache]`): nginx's proxy_cache, with hits sent by
//! the kernel from the cache file and fills teed into the file without a user-space copy.
//!
//! - `policy`: what RFC 9111 lets a shared cache store and serve (pure).
//! - `meta`: a stored response's metadata and the object file's layout.
//! - `store`: the directory: temporary files renamed into place when complete (fills, and
//!   objects written anew when a 304's headers outgrow their room), the start-up scan,
//!   removal.
//! - `index`: the in-memory map of objects, LRU order and the Vary names per key.
//! - `flow`: the decisions around one proxied request (lookup, lock, revalidate, fill).
//! - `fill`: the writer of a fill, fed by the relay (tee or buffered), off the reactor.
//!
//! The cache is store and policy: it decides and stores, and does no network I/O and builds
//! no reply. The proxy (`proxy`) asks `flow::lookup` before forwarding (a fill lock per key
//! makes concurrent misses one request), turns a stored object into a reply, runs background
//! refreshes, and hands the app's body to a fill (`fill`) that writes the temporary file off
//! the reactor.

pub mod fill;
pub mod flow;
mod index;
mod key;
pub mod meta;
pub mod policy;
mod store;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio::sync::watch;

pub use key::{Id, Key, object_id, variant_id};
pub use meta::Meta;
pub use store::check_dir;

use crate::config;
use crate::http::RequestHead;
use crate::metrics::CacheMetrics;
use index::Index;
use store::{CopyPath, Store};

/// Why the cache could not start.
#[derive(Debug, thiserror::Error)]
#[error("cache.dir {dir}: {source}")]
pub struct CacheError {
    dir: String,
    source: io::Error,
}

/// A stored object found for a request.
#[derive(Debug, Clone)]
pub struct Object {
    pub id: Id,
    pub meta: Arc<Meta>,
    pub body_offset: u64,
    /// The version of the file the index described (0: read from the opened file itself).
    pub version: u64,
}

/// What [`Cache::persist`] did with refreshed metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Persisted {
    /// Rewritten in the room before the body.
    InPlace,
    /// Written as a new file, the body copied as said, renamed over the old one.
    Moved(CopyPath),
    /// Nothing written: the object is gone, or kept changing under the writer (whoever
    /// changed it writes it).
    Skipped,
}

/// Held by the one request filling a key; dropping it wakes the requests waiting for it.
pub struct FillGuard {
    cache: Arc<Cache>,
    id: Id,
    _wake: watch::Sender<()>,
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        self.cache.locked().locks.remove(&self.id);
    }
}

/// A fill in progress: the temporary file the body is written into, and what it becomes.
/// Dropped without [`FillTarget::commit`], it removes the file: nothing partial remains.
pub struct FillTarget {
    cache: Arc<Cache>,
    id: Id,
    meta: Meta,
    body_offset: u64,
    temp: PathBuf,
    file: File,
    /// The Content-Length the body must have, when the app announced one.
    expected: Option<u64>,
    /// Held until the object is in place, so waiting misses find it.
    _guard: Option<FillGuard>,
    done: bool,
}

impl FillTarget {
    /// Creates the temporary file for `meta` (blocks on the disk briefly).
    pub(super) fn create(
        cache: Arc<Cache>,
        meta: Meta,
        expected: Option<u64>,
        guard: Option<FillGuard>,
    ) -> io::Result<FillTarget> {
        let id = object_id(&meta);
        let (temp, file) = cache.store.create_temp(&id)?;
        Ok(FillTarget {
            body_offset: meta::body_offset(&meta),
            cache,
            id,
            meta,
            temp,
            file,
            expected,
            _guard: guard,
            done: false,
        })
    }

    /// The temporary file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Where the body's first byte goes in the file.
    pub fn body_offset(&self) -> u64 {
        self.body_offset
    }

    /// The most body bytes this object may have.
    pub fn max_len(&self) -> u64 {
        self.cache.settings().max_object_size
    }

    /// Finishes the object once `written` body bytes are in the file: checks the length
    /// against the announced one and the file, writes the metadata, renames the file into
    /// place and indexes it.
    pub fn commit(mut self, written: u64) -> io::Result<()> {
        if let Some(expected) = self.expected
            && expected != written
        {
            return Err(io::Error::other(format!(
                "body is {written} bytes, {expected} were announced"
            )));
        }
        let end = self.body_offset + written;
        let on_disk = self.file.metadata()?.len();
        if written > 0 && on_disk != end {
            return Err(io::Error::other(format!(
                "file is {on_disk} bytes, {end} expected"
            )));
        }
        self.meta.body_len = written;
        let head = meta::encode_head(&self.meta, self.body_offset)
            .ok_or_else(|| io::Error::other("metadata outgrew its room"))?;
        self.file.write_all_at(&head, 0)?;
        self.file.set_len(end)?;
        let meta = std::mem::replace(&mut self.meta, empty_meta());
        let (temp, id, body_offset) = (self.temp.clone(), self.id, self.body_offset);
        self.cache.place(&id, meta, body_offset, end, || {
            fs::rename(&temp, self.cache.store.path(&id))
        })?;
        self.done = true;
        Ok(())
    }
}

impl Drop for FillTarget {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

fn empty_meta() -> Meta {
    Meta {
        scheme: crate::http::Scheme::Http,
        host: String::new(),
        target: String::new(),
        vary: Vec::new(),
        status: 0,
        headers: Vec::new(),
        response_time: 0,
        initial_age: 0,
        lifetime: 0,
        stale_if_error: 0,
        stale_while_revalidate: 0,
        no_stale: false,
        body_len: 0,
    }
}

/// What [`Cache::lock`] found.
pub enum Lock {
    /// This request fills the key.
    Acquired(FillGuard),
    /// Another request is filling it: wait on this until it is done.
    Held(watch::Receiver<()>),
}

/// The index and the fill locks, behind one mutex (held for map operations only).
struct State {
    index: Index,
    locks: HashMap<Id, watch::Receiver<()>>,
}

/// The cache: its directory, index and fill locks.
pub struct Cache {
    /// `[cache]` as last configured: a reload that keeps `dir` replaces the limits here
    /// ([`Cache::set_limits`]) and keeps the objects.
    settings: RwLock<Arc<config::Cache>>,
    store: Store,
    state: Mutex<State>,
    /// Held (off the reactor only) around every rename over an object's name and every
    /// in-place head rewrite, with the index update that goes with it. So, while it is held,
    /// an index entry of version v means the name holds v's file (or nothing, when a removal
    /// raced it). Taken before `state`, never while holding it.
    disk: Mutex<()>,
    pub metrics: CacheMetrics,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("dir", &self.store.dir())
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// Opens (creating) the directory, removes interrupted fills and unusable files, indexes
    /// the objects found (oldest first in LRU order) and evicts down to `max_size`.
    pub fn open(config: &config::Cache, metrics: CacheMetrics) -> Result<Cache, CacheError> {
        let error = |source| CacheError {
            dir: config.dir.display().to_string(),
            source,
        };
        let store = Store::open(&config.dir).map_err(error)?;
        let mut found = store.scan().map_err(error)?;
        found.sort_by_key(|f| f.mtime);
        let mut index = Index::default();
        let mut evicted = Vec::new();
        for f in found {
            evicted.extend(index.insert(
                f.id,
                f.meta.key().primary(),
                Arc::new(f.meta),
                f.body_offset,
                f.size,
                config.max_size,
            ));
        }
        for id in &evicted {
            store.remove(id);
        }
        metrics.evictions.inc_by(evicted.len() as u64);
        metrics.objects.set(index.len() as i64);
        metrics.bytes.set(index.bytes() as i64);
        metrics
            .max_bytes
            .set(i64::try_from(config.max_size).unwrap_or(i64::MAX));
        tracing::info!(dir = %config.dir.display(), objects = index.len(), bytes = index.bytes(), "cache opened");
        Ok(Cache {
            settings: RwLock::new(Arc::new(config.clone())),
            store,
            state: Mutex::new(State {
                index,
                locks: HashMap::new(),
            }),
            disk: Mutex::new(()),
            metrics,
        })
    }

    /// `[cache]` as configured now (limits may change with a reload; `dir` never does).
    pub fn settings(&self) -> Arc<config::Cache> {
        Arc::clone(&self.settings.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Takes the limits of a reloaded `[cache]` with the same `dir`: new fills and lookups
    /// use them at once; a smaller `max_size` evicts the least recently used objects down to
    /// it now.
    pub fn set_limits(&self, config: &config::Cache) {
        debug_assert_eq!(config.dir, self.store.dir());
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config.clone());
        self.metrics
            .max_bytes
            .set(i64::try_from(config.max_size).unwrap_or(i64::MAX));
        let evicted = {
            let mut state = self.locked();
            let evicted = state.index.shrink(config.max_size);
            self.publish(&state.index);
            evicted
        };
        for id in &evicted {
            self.store.remove(id);
        }
        self.metrics.evictions.inc_by(evicted.len() as u64);
    }

    /// The directory the objects live in.
    pub fn dir(&self) -> &std::path::Path {
        self.store.dir()
    }

    fn locked(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn disk_locked(&self) -> MutexGuard<'_, ()> {
        self.disk.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The id `req` would be stored under, given what is known of the key's Vary.
    pub fn id_for(&self, key: &Key, req: &RequestHead) -> Id {
        let state = self.locked();
        let names = state.index.vary(&key.primary());
        variant_id(key, &policy::vary_values(req, names))
    }

    /// The stored object for `req`, if any (marked as just used).
    pub fn lookup(&self, key: &Key, req: &RequestHead) -> Option<Object> {
        let mut state = self.locked();
        let names = state.index.vary(&key.primary());
        let id = variant_id(key, &policy::vary_values(req, names));
        let entry = state.index.get(&id)?;
        Some(Object {
            id,
            meta: entry.meta,
            body_offset: entry.body_offset,
            version: entry.version,
        })
    }

    /// Takes the fill lock of `id`, or a receiver that wakes when its holder is done.
    pub fn lock(self: &Arc<Self>, id: Id) -> Lock {
        let mut state = self.locked();
        if let Some(rx) = state.locks.get(&id) {
            return Lock::Held(rx.clone());
        }
        let (tx, rx) = watch::channel(());
        state.locks.insert(id, rx);
        Lock::Acquired(FillGuard {
            cache: Arc::clone(self),
            id,
            _wake: tx,
        })
    }

    /// Opens the file of `object`: on the reactor when the kernel has it cached, else on the
    /// blocking pool. Returns it with the object as that file lays it out. A file gone
    /// (evicted or purged meanwhile) drops the index entry.
    ///
    /// The file is opened by name some time after the index was read, and the name may have
    /// been given a new file in between (a fill, or a 304 that moved the body further in):
    /// `object.body_offset` would then point into the new file's head. Every rename over an
    /// object's name happens after its entry is marked `swapping` and before the entry gets
    /// a new version (both under the state lock, see [`Cache::place`] and
    /// [`Cache::persist`]). So the index is asked again after the open: an entry that still
    /// has `object.version` and no swap under way means no rename happened between the
    /// lookup and now (one would have left the mark or a new version), and the file opened is
    /// the one the lookup described. Otherwise (rare) the opened file's own head says where
    /// its body starts, read on the blocking pool. A hit already sending holds its fd on the
    /// file it checked, which a rename does not change.
    pub async fn open_body(self: &Arc<Self>, object: &Object) -> io::Result<(File, Object)> {
        let opened = match self.store.open_object_cached(&object.id) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                let cache = Arc::clone(self);
                let id = object.id;
                tokio::task::spawn_blocking(move || cache.store.open_object(&id))
                    .await
                    .map_err(io::Error::other)?
            }
            done => done,
        };
        let file = match opened {
            Ok(file) => file,
            Err(err) => {
                if err.kind() == io::ErrorKind::NotFound {
                    self.forget(&object.id, object.version);
                }
                return Err(err);
            }
        };
        if self.locked().index.is_current(&object.id, object.version) {
            return Ok((file, object.clone()));
        }
        let id = object.id;
        tokio::task::spawn_blocking(move || {
            let found = store::read_head(&file, &id).map_err(io::Error::other)?;
            let object = Object {
                id,
                meta: Arc::new(found.meta),
                body_offset: found.body_offset,
                version: 0,
            };
            Ok((file, object))
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Starts writing a new object for `meta` (its body comes next); `expected` is the
    /// announced body length. The temporary file is created on the blocking pool.
    pub async fn begin_fill(
        self: &Arc<Self>,
        meta: Meta,
        expected: Option<u64>,
        guard: Option<FillGuard>,
    ) -> io::Result<FillTarget> {
        let cache = Arc::clone(self);
        tokio::task::spawn_blocking(move || FillTarget::create(cache, meta, expected, guard))
            .await
            .map_err(io::Error::other)?
    }

    /// Renames a complete file over object `id`'s name (`rename`) and indexes it, as one
    /// step for hits: the entry it replaces, if any, is marked `swapping` before the rename
    /// and replaced by a new version after it (see [`Cache::open_body`]). Evicts to stay
    /// under max_size.
    fn place(
        &self,
        id: &Id,
        meta: Meta,
        body_offset: u64,
        size: u64,
        rename: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        let _disk = self.disk_locked();
        self.locked().index.set_swapping(id, true);
        if let Err(err) = rename() {
            self.locked().index.set_swapping(id, false);
            return Err(err);
        }
        self.install(*id, meta, body_offset, size);
        Ok(())
    }

    /// Indexes a complete object just renamed into place, evicting to stay under max_size.
    fn install(&self, id: Id, meta: Meta, body_offset: u64, size: u64) {
        let primary = meta.key().primary();
        let evicted = {
            let mut state = self.locked();
            let evicted = state.index.insert(
                id,
                primary,
                Arc::new(meta),
                body_offset,
                size,
                self.settings().max_size,
            );
            self.publish(&state.index);
            evicted
        };
        for id in &evicted {
            self.store.remove(id);
        }
        self.metrics.evictions.inc_by(evicted.len() as u64);
    }

    /// Replaces the metadata of `object` after a 304: in memory at once, on disk on the
    /// blocking pool ([`Cache::persist`]): in place when it fits before the body, else in a
    /// new file renamed over the old one, so that a restart finds the refreshed headers either
    /// way. An object replaced or removed since `object` was looked up is left alone.
    pub fn refresh(self: &Arc<Self>, object: &Object, meta: Meta) -> Arc<Meta> {
        let meta = Arc::new(meta);
        let refreshed = self
            .locked()
            .index
            .refresh(&object.id, object.version, Arc::clone(&meta));
        if !refreshed {
            return meta;
        }
        let cache = Arc::clone(self);
        let id = object.id;
        tokio::task::spawn_blocking(move || match cache.persist(&id) {
            Ok(Persisted::Moved(CopyPath::Buffered)) => {
                tracing::debug!("cache: refreshed object rewritten, body copied through a buffer");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(
                dir = %cache.store.dir().display(),
                error = %err,
                "cache: writing refreshed headers"
            ),
        });
        meta
    }

    /// Writes object `id`'s metadata, as the index has it now, to its file. When it fits in
    /// the room before the body, in place. Otherwise a new file (the new head, the body
    /// copied from the old file by copy_file_range(2), synced) is renamed over the old one,
    /// then the entry gets the new body offset, size and version; the bytes counted change by
    /// the difference, evicting others if that goes over max_size. Blocks on the disk.
    ///
    /// The copy runs without the disk lock; if the object changed meanwhile (a newer 304, a
    /// fill, a removal) the new file is dropped and the work starts over from the index, a
    /// few times at most (whoever changed it also writes it). Concurrent 304s for one object
    /// each write the metadata current when they hold the disk lock, so the last to write
    /// leaves the latest.
    fn persist(&self, id: &Id) -> io::Result<Persisted> {
        for _ in 0..4 {
            let Some(entry) = self.locked().index.peek(id).cloned() else {
                return Ok(Persisted::Skipped);
            };
            if entry.swapping {
                // A new file is going in under the disk lock: wait for it, then look again.
                drop(self.disk_locked());
                continue;
            }
            let done = if meta::encode_head(&entry.meta, entry.body_offset).is_some() {
                self.persist_in_place(id, &entry)?
            } else {
                self.persist_moved(id, &entry)?
            };
            if let Some(done) = done {
                return Ok(done);
            }
        }
        Ok(Persisted::Skipped)
    }

    /// `entry`'s head written over object `id`'s; `None` when the entry changed first.
    fn persist_in_place(&self, id: &Id, entry: &index::Entry) -> io::Result<Option<Persisted>> {
        let _disk = self.disk_locked();
        if !self.locked().index.unchanged(id, entry) {
            return Ok(None);
        }
        // Under the disk lock the name holds this entry's file (or nothing).
        let written = self
            .store
            .rewrite_head(id, &entry.meta, entry.body_offset)?;
        Ok(Some(if written {
            Persisted::InPlace
        } else {
            Persisted::Skipped
        }))
    }

    /// A new file for object `id` with `entry`'s metadata and the body of its current file,
    /// renamed over it; `None` when the entry changed before the rename.
    fn persist_moved(&self, id: &Id, entry: &index::Entry) -> io::Result<Option<Persisted>> {
        let old = match self.store.open_object(id) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Ok(Some(Persisted::Skipped));
            }
            Err(err) => return Err(err),
        };
        // As for a hit: the file opened is the entry's only if no swap came in between.
        if !self.locked().index.is_current(id, entry.version) {
            return Ok(None);
        }
        let mut moved = self
            .store
            .write_moved(id, &entry.meta, &old, entry.body_offset)?;
        let _disk = self.disk_locked();
        {
            let mut state = self.locked();
            if !state.index.unchanged(id, entry) {
                return Ok(None);
            }
            state.index.set_swapping(id, true);
        }
        if let Err(err) = self.store.rename_over(&mut moved, id) {
            self.locked().index.set_swapping(id, false);
            return Err(err);
        }
        let evicted = {
            let mut state = self.locked();
            let max = self.settings().max_size;
            let evicted = state.index.relocate(id, moved.body_offset, moved.size, max);
            self.publish(&state.index);
            evicted
        };
        let Some(evicted) = evicted else {
            // Removed (purged, evicted) between the mark and now: the file just renamed in is
            // no one's. Nothing else renames onto the name while the disk lock is held.
            self.store.remove(id);
            return Ok(Some(Persisted::Skipped));
        };
        for id in &evicted {
            self.store.remove(id);
        }
        self.metrics.evictions.inc_by(evicted.len() as u64);
        Ok(Some(Persisted::Moved(moved.copy)))
    }

    /// Drops `id` from the index and deletes its file, if the index still has the file
    /// `version` for it (a newer file under the name is left alone).
    pub fn forget(&self, id: &Id, version: u64) {
        let removed = {
            let mut state = self.locked();
            let current = state.index.peek(id).is_some_and(|e| e.version == version);
            let removed = current && state.index.remove(id).is_some();
            self.publish(&state.index);
            removed
        };
        if removed {
            self.store.remove(id);
        }
    }

    /// Drops every object stored for `key` (every variant, either scheme: the request changed
    /// the resource whichever way it came) from the index at once, and deletes their files on
    /// the blocking pool: for unsafe methods (RFC 9111 §4.4), on the reactor. Costs two map
    /// lookups when nothing is stored for the key.
    pub fn invalidate(self: &Arc<Self>, key: &Key) {
        let ids = {
            let mut state = self.locked();
            if state.index.vary_known(&key.primary())
                || state.index.vary_known(&key.other_scheme().primary())
            {
                let ids = state
                    .index
                    .select(|meta| meta.host == key.host && meta.target == key.target);
                for id in &ids {
                    state.index.remove(id);
                }
                self.publish(&state.index);
                ids
            } else {
                Vec::new()
            }
        };
        if ids.is_empty() {
            return;
        }
        let cache = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            for id in &ids {
                cache.store.remove(id);
            }
        });
    }

    /// Removes every object whose target is `target` (any scheme and host, every variant), or starts
    /// with `prefix`. Returns how many were removed. Blocks on the disk.
    pub fn purge(&self, target: Option<&str>, prefix: Option<&str>) -> usize {
        let ids = {
            let mut state = self.locked();
            let ids = state.index.select(|meta| {
                target.is_some_and(|t| meta.target == t)
                    || prefix.is_some_and(|p| meta.target.starts_with(p))
            });
            for id in &ids {
                state.index.remove(id);
            }
            self.publish(&state.index);
            ids
        };
        for id in &ids {
            self.store.remove(id);
        }
        ids.len()
    }

    /// Objects and bytes stored now.
    pub fn usage(&self) -> (usize, u64) {
        let state = self.locked();
        (state.index.len(), state.index.bytes())
    }

    fn publish(&self, index: &Index) {
        self.metrics.objects.set(index.len() as i64);
        self.metrics.bytes.set(index.bytes() as i64);
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod store_tests;
