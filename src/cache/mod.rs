//! The disk cache of upstream responses (`[cache]`): nginx's proxy_cache, with hits sent by
//! the kernel from the cache file and fills teed into the file without a user-space copy.
//!
//! - `policy`: what RFC 9111 lets a shared cache store and serve (pure).
//! - `meta`: a stored response's metadata and the object file's layout.
//! - `store`: the directory: temporary files renamed into place when complete, the start-up
//!   scan, removal.
//! - `index`: the in-memory map of objects, LRU order and the Vary names per key.
//! - `hit`: a stored object turned into a reply (Range, conditionals, Age, X-Cache).
//! - `flow`: the decisions around one proxied request (lookup, lock, revalidate, fill).
//!
//! The proxy (`frontend::proxy`) asks [`Cache::lookup`] before forwarding, takes a fill lock
//! per key so that concurrent misses make one request, and hands the body to a fill
//! (`send::fill`) that writes the temporary file off the reactor.

pub mod flow;
pub mod hit;
mod index;
pub mod meta;
pub mod policy;
mod store;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use ring::digest::{Context, SHA256};
use tokio::sync::watch;

pub use meta::Meta;
pub use store::FillTarget;

use crate::config;
use crate::http::RequestHead;
use crate::metrics::CacheMetrics;
use crate::upstream::Upstream;
use index::Index;
use store::Store;

/// An object's id: SHA-256 of its primary and secondary key; also its file name (in hex).
pub type Id = [u8; 32];

/// Why the cache could not start.
#[derive(Debug, thiserror::Error)]
#[error("cache.dir {dir}: {source}")]
pub struct CacheError {
    dir: String,
    source: io::Error,
}

/// The primary key of a request: its Host (lowercased) and target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub host: String,
    pub target: String,
}

impl Key {
    pub fn new(req: &RequestHead) -> Key {
        let host = req
            .header("host")
            .map(|h| String::from_utf8_lossy(h).trim().to_ascii_lowercase())
            .unwrap_or_default();
        Key {
            host,
            target: req.target.clone(),
        }
    }

    /// The key as one string, which also names it in the index's Vary map.
    pub fn primary(&self) -> String {
        format!("{}{}", self.host, self.target)
    }
}

/// The id of the object for `key` with the secondary key `vary`.
pub fn variant_id(key: &Key, vary: &[(String, Option<Vec<u8>>)]) -> Id {
    let mut ctx = Context::new(&SHA256);
    for part in [key.host.as_bytes(), key.target.as_bytes()] {
        ctx.update(&(part.len() as u64).to_le_bytes());
        ctx.update(part);
    }
    for (name, value) in vary {
        ctx.update(&(name.len() as u64).to_le_bytes());
        ctx.update(name.as_bytes());
        match value {
            Some(value) => {
                ctx.update(&[1]);
                ctx.update(&(value.len() as u64).to_le_bytes());
                ctx.update(value);
            }
            None => ctx.update(&[0]),
        }
    }
    let mut id = [0u8; 32];
    id.copy_from_slice(ctx.finish().as_ref());
    id
}

/// The id a stored object belongs under.
pub fn object_id(meta: &Meta) -> Id {
    let key = Key {
        host: meta.host.clone(),
        target: meta.target.clone(),
    };
    variant_id(&key, &meta.vary)
}

/// A stored object found for a request.
#[derive(Debug, Clone)]
pub struct Object {
    pub id: Id,
    pub meta: Arc<Meta>,
    pub body_offset: u64,
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
    pub config: config::Cache,
    store: Store,
    state: Mutex<State>,
    pub metrics: CacheMetrics,
    /// The app, for background refreshes (stale-while-revalidate), with its own pool.
    refresher: Option<Arc<Upstream>>,
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
    pub fn open(
        config: &config::Cache,
        metrics: CacheMetrics,
        refresher: Option<Upstream>,
    ) -> Result<Cache, CacheError> {
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
            let key = Key {
                host: f.meta.host.clone(),
                target: f.meta.target.clone(),
            };
            evicted.extend(index.insert(
                f.id,
                key.primary(),
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
            config: config.clone(),
            store,
            state: Mutex::new(State {
                index,
                locks: HashMap::new(),
            }),
            metrics,
            refresher: refresher.map(Arc::new),
        })
    }

    fn locked(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
    /// blocking pool. A file gone (evicted or purged meanwhile) drops the index entry.
    pub async fn open_body(self: &Arc<Self>, object: &Object) -> io::Result<File> {
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
        if let Err(err) = &opened
            && err.kind() == io::ErrorKind::NotFound
        {
            self.forget(&object.id);
        }
        opened
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

    /// Indexes a complete object just renamed into place, evicting to stay under max_size.
    fn install(&self, id: Id, meta: Meta, body_offset: u64, size: u64) {
        let primary = Key {
            host: meta.host.clone(),
            target: meta.target.clone(),
        }
        .primary();
        let evicted = {
            let mut state = self.locked();
            let evicted = state.index.insert(
                id,
                primary,
                Arc::new(meta),
                body_offset,
                size,
                self.config.max_size,
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
    /// blocking pool (when it fits in place; otherwise the disk keeps the old headers, and
    /// after a restart the object is revalidated again).
    pub fn refresh(self: &Arc<Self>, object: &Object, meta: Meta) -> Arc<Meta> {
        let meta = Arc::new(meta);
        self.locked().index.refresh(&object.id, Arc::clone(&meta));
        let cache = Arc::clone(self);
        let (id, offset, on_disk) = (object.id, object.body_offset, Arc::clone(&meta));
        tokio::task::spawn_blocking(move || {
            match cache.store.rewrite_head(&id, &on_disk, offset) {
                Ok(true) => {}
                Ok(false) => tracing::debug!("cache: refreshed headers kept in memory only"),
                Err(err) => tracing::warn!(error = %err, "cache: rewriting refreshed headers"),
            }
        });
        meta
    }

    /// Drops `id` from the index and deletes its file.
    pub fn forget(&self, id: &Id) {
        let removed = {
            let mut state = self.locked();
            let removed = state.index.remove(id).is_some();
            self.publish(&state.index);
            removed
        };
        if removed {
            self.store.remove(id);
        }
    }

    /// Drops every object stored for `key` (every variant) from the index at once, and
    /// deletes their files on the blocking pool: for unsafe methods (RFC 9111 §4.4), on the
    /// reactor. Costs one map lookup when nothing is stored for the key.
    pub fn invalidate(self: &Arc<Self>, key: &Key) {
        let ids = {
            let mut state = self.locked();
            if state.index.vary_known(&key.primary()) {
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

    /// Removes every object whose target is `target` (any host, every variant), or starts
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
