//! The static table (RFC 7541 Appendix A) and the dynamic table (§4), which the decoder
//! and the encoder each keep one of.
//!
//! The dynamic table keeps every entry's name and value in one byte buffer, oldest first:
//! an insert appends, an eviction only moves the start forward, and the buffer is
//! compacted (live bytes moved to its front) when an append would pass its capacity, one
//! and a half times the table's maximum size. Live bytes never exceed the maximum size, so
//! a compaction frees at least half a table and the buffer, once grown, never reallocates.

use std::collections::VecDeque;

/// RFC 7541 Appendix A; index 1 is `STATIC[0]`.
pub(super) const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// The lowest static index whose name is `name`: one `match` (length, then bytes), not a
/// scan of the table. `STATIC` and this agree (a unit test checks every entry).
pub(super) fn static_name(name: &[u8]) -> Option<u8> {
    Some(match name {
        b":authority" => 1,
        b":method" => 2,
        b":path" => 4,
        b":scheme" => 6,
        b":status" => 8,
        b"accept-charset" => 15,
        b"accept-encoding" => 16,
        b"accept-language" => 17,
        b"accept-ranges" => 18,
        b"accept" => 19,
        b"access-control-allow-origin" => 20,
        b"age" => 21,
        b"allow" => 22,
        b"authorization" => 23,
        b"cache-control" => 24,
        b"content-disposition" => 25,
        b"content-encoding" => 26,
        b"content-language" => 27,
        b"content-length" => 28,
        b"content-location" => 29,
        b"content-range" => 30,
        b"content-type" => 31,
        b"cookie" => 32,
        b"date" => 33,
        b"etag" => 34,
        b"expect" => 35,
        b"expires" => 36,
        b"from" => 37,
        b"host" => 38,
        b"if-match" => 39,
        b"if-modified-since" => 40,
        b"if-none-match" => 41,
        b"if-range" => 42,
        b"if-unmodified-since" => 43,
        b"last-modified" => 44,
        b"link" => 45,
        b"location" => 46,
        b"max-forwards" => 47,
        b"proxy-authenticate" => 48,
        b"proxy-authorization" => 49,
        b"range" => 50,
        b"referer" => 51,
        b"refresh" => 52,
        b"retry-after" => 53,
        b"server" => 54,
        b"set-cookie" => 55,
        b"strict-transport-security" => 56,
        b"transfer-encoding" => 57,
        b"user-agent" => 58,
        b"vary" => 59,
        b"via" => 60,
        b"www-authenticate" => 61,
        _ => return None,
    })
}

/// The size an entry counts for (§4.1).
pub(super) fn entry_size(name: &[u8], value: &[u8]) -> usize {
    name.len() + value.len() + 32
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Offset of the name in the table's byte stream (positions only grow; the buffer
    /// holds the stream from `base` on).
    pos: usize,
    name_len: usize,
    value_len: usize,
    /// Whatever the owner wants to match entries by without reading their bytes (the
    /// encoder: name id and value hash); 0 for the decoder.
    tag: u64,
}

/// A dynamic table (§4): entries newest first, sizes per §4.1, eviction per §4.4.
pub(super) struct Table {
    /// Entry bytes from stream position `base` on; the live ones start at the oldest
    /// entry's `pos`.
    buf: Vec<u8>,
    base: usize,
    entries: VecDeque<Entry>,
    size: usize,
    max_size: usize,
}

impl Table {
    pub(super) fn new(max_size: usize) -> Table {
        Table {
            buf: Vec::new(),
            base: 0,
            entries: VecDeque::new(),
            size: 0,
            max_size,
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The §4.1 size of all entries.
    #[cfg(test)]
    pub(super) fn size(&self) -> usize {
        self.size
    }

    pub(super) fn max_size(&self) -> usize {
        self.max_size
    }

    /// Sets the maximum size, evicting what no longer fits (§4.3).
    pub(super) fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    /// Entry `i` (0 = the newest) as (name, value).
    pub(super) fn get(&self, i: usize) -> Option<(&[u8], &[u8])> {
        let e = self.entries.get(i)?;
        let start = e.pos - self.base;
        let (name, rest) = self.buf[start..].split_at(e.name_len);
        Some((name, &rest[..e.value_len]))
    }

    /// The tags, newest first.
    pub(super) fn tags(&self) -> impl Iterator<Item = u64> + '_ {
        self.entries.iter().map(|e| e.tag)
    }

    /// Adds an entry as the newest, evicting the oldest until it fits; an entry larger
    /// than the maximum size empties the table and is not added (§4.4).
    pub(super) fn insert(&mut self, name: &[u8], value: &[u8], tag: u64) {
        let size = entry_size(name, value);
        if size > self.max_size {
            self.evict_to(0);
            return;
        }
        self.evict_to(self.max_size - size);
        let len = name.len() + value.len();
        let capacity = self.max_size + self.max_size / 2;
        if self.buf.len() + len > capacity {
            self.compact();
        }
        if self.buf.capacity() < capacity {
            self.buf.reserve_exact(capacity - self.buf.len());
        }
        let pos = self.base + self.buf.len();
        self.buf.extend_from_slice(name);
        self.buf.extend_from_slice(value);
        self.entries.push_front(Entry {
            pos,
            name_len: name.len(),
            value_len: value.len(),
            tag,
        });
        self.size += size;
    }

    fn evict_to(&mut self, size: usize) {
        while self.size > size {
            let Some(e) = self.entries.pop_back() else {
                break;
            };
            self.size -= e.name_len + e.value_len + 32;
        }
        if self.entries.is_empty() {
            self.base += self.buf.len();
            self.buf.clear();
        }
    }

    /// Drops the bytes of evicted entries from the front of the buffer.
    fn compact(&mut self) {
        let live = self
            .entries
            .back()
            .map_or(self.buf.len(), |e| e.pos - self.base);
        self.buf.drain(..live);
        self.base += live;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_name_agrees_with_the_table() {
        for (i, (name, _)) in STATIC.iter().enumerate() {
            let first = STATIC.iter().position(|(n, _)| n == name).unwrap() + 1;
            assert_eq!(static_name(name), Some(first as u8), "{i}");
        }
        assert_eq!(static_name(b"x-cache"), None);
    }

    #[test]
    fn eviction_and_compaction_keep_entries_intact() {
        let mut t = Table::new(200);
        for i in 0..1000u32 {
            let value = format!("value-{i}-{}", "x".repeat((i % 37) as usize));
            t.insert(b"name", value.as_bytes(), u64::from(i));
            assert!(t.size() <= 200);
            assert!(t.buf.len() <= 300, "buffer past its capacity");
            for k in 0..t.len() {
                let (name, value) = t.get(k).unwrap();
                let j = i - k as u32;
                assert_eq!(name, b"name");
                let want = format!("value-{j}-{}", "x".repeat((j % 37) as usize));
                assert_eq!(value, want.as_bytes());
            }
        }
        assert!(t.buf.capacity() <= 300 + 64);
        t.insert(b"huge", &[b'v'; 300], 0);
        assert_eq!((t.len(), t.size()), (0, 0));
        t.insert(b"a", b"b", 0);
        t.set_max_size(0);
        assert_eq!((t.len(), t.size()), (0, 0));
    }
}
