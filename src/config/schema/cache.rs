//! `[cache]`: the disk cache of upstream responses. A present section turns caching on, every
//! key has a default; only the shape is checked here (the server creates the directory and
//! indexes what is in it when it starts).

use ::config::Value;

use super::walker::Walker;
use crate::config::Cache;

/// The keys of this section, in the order config/ferry.toml documents them.
pub(super) const CACHE_KEYS: [&str; 5] = [
    "dir",
    "max_size",
    "max_object_size",
    "lock_timeout",
    "stale_if_error",
];

impl Walker<'_> {
    /// `None` when the section is absent, or when anything in it is invalid.
    pub(super) fn cache(&mut self, value: Option<&Value>) -> Option<Cache> {
        let table = self.table("cache", value?)?;
        self.unknown_keys("cache", table, &CACHE_KEYS);
        let c = "cache";
        let errors_before = self.errors.len();
        let mut cache = Cache::default();
        if let Some(dir) = self.field(table, c, "dir", Self::dir_path) {
            cache.dir = dir;
        }
        if let Some(size) = self.field(table, c, "max_size", Self::cache_size) {
            cache.max_size = size;
        }
        match self.field(table, c, "max_object_size", Self::cache_size) {
            Some(size) => cache.max_object_size = size,
            // Not given: the default, but never more than the cache holds, so that a small
            // cache needs no second key.
            None if !table.contains_key("max_object_size") => {
                cache.max_object_size = cache.max_object_size.min(cache.max_size);
            }
            None => {}
        }
        if let Some(d) = self.field(table, c, "lock_timeout", Self::duration) {
            cache.lock_timeout = d;
        }
        if let Some(d) = self.field(table, c, "stale_if_error", Self::duration) {
            cache.stale_if_error = d;
        }
        let sizes_valid =
            !self.reported("cache.max_size") && !self.reported("cache.max_object_size");
        if sizes_valid && cache.max_object_size > cache.max_size {
            let message = format!(
                "{} bytes is more than cache.max_size ({} bytes): no object that large could \
                 be kept",
                cache.max_object_size, cache.max_size
            );
            self.fail(
                "cache.max_object_size",
                table.get("max_object_size"),
                message,
            );
        }
        (self.errors.len() == errors_before).then_some(cache)
    }

    /// A byte size greater than zero: `"10GiB"` or a number of bytes.
    fn cache_size(&mut self, key: &str, value: &Value) -> Option<u64> {
        let bytes = self.size(key, value)?;
        if bytes == 0 {
            self.fail(key, Some(value), "must be greater than 0");
            return None;
        }
        Some(bytes)
    }
}
