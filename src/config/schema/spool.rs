//! `[spool]`: the directory and limits of spool files, and whether request and response bodies
//! are buffered through them. Every key has a default; only the shape is checked here (the
//! server opens a first file when it starts, so a directory it cannot use is an error then).

use ::config::Value;

use super::walker::Walker;
use crate::config::Spool;

/// The keys of this section, in the order config/ferry.toml documents them.
pub(super) const SPOOL_KEYS: [&str; 6] = [
    "dir",
    "max_file_size",
    "max_size",
    "request_memory",
    "request_buffering",
    "response_buffering",
];

/// The most a request body may be held in memory: past this a file is cheaper than RAM.
const MAX_REQUEST_MEMORY: u64 = 16 << 20;

impl Walker<'_> {
    pub(super) fn spool(&mut self, value: Option<&Value>) -> Spool {
        let mut spool = Spool::default();
        let Some(table) = value.and_then(|value| self.table("spool", value)) else {
            return spool;
        };
        self.unknown_keys("spool", table, &SPOOL_KEYS);
        let s = "spool";
        if let Some(dir) = self.field(table, s, "dir", Self::dir_path) {
            spool.dir = dir;
        }
        if let Some(size) = self.field(table, s, "max_file_size", Self::spool_size) {
            spool.max_file_size = size;
        }
        if let Some(size) = self.field(table, s, "max_size", Self::spool_size) {
            spool.max_size = size;
        }
        if let Some(size) = self.field(table, s, "request_memory", Self::request_memory) {
            spool.request_memory = size;
        }
        if let Some(on) = self.field(table, s, "request_buffering", Self::boolean) {
            spool.request_buffering = on;
        }
        if let Some(on) = self.field(table, s, "response_buffering", Self::boolean) {
            spool.response_buffering = on;
        }
        let sizes_valid = !self.reported("spool.max_size") && !self.reported("spool.max_file_size");
        if sizes_valid && spool.max_file_size > spool.max_size {
            let message = format!(
                "{} bytes is more than spool.max_size ({} bytes): no body that large could be \
                 spooled",
                spool.max_file_size, spool.max_size
            );
            self.fail("spool.max_file_size", table.get("max_file_size"), message);
        }
        spool
    }

    fn spool_size(&mut self, key: &str, value: &Value) -> Option<u64> {
        let bytes = self.size(key, value)?;
        if bytes == 0 {
            self.fail(key, Some(value), "must be greater than 0");
            return None;
        }
        Some(bytes)
    }

    fn request_memory(&mut self, key: &str, value: &Value) -> Option<usize> {
        let bytes = self.size(key, value)?;
        if bytes > MAX_REQUEST_MEMORY {
            let message = format!("must be at most 16MiB, got {bytes} bytes");
            self.fail(key, Some(value), message);
            return None;
        }
        Some(bytes as usize)
    }
}
