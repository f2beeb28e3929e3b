//! Encoding ferry's response header blocks (RFC 7541 §6), and deciding per field name
//! which representation to use.
//!
//! Policy: `:status` and any field the static table holds whole are indexed; fields whose
//! values repeat across responses (`server`, `content-type`, `cache-control`, `vary`, ...,
//! the names `indexing` lists) go into the dynamic table and are indexed from then on;
//! values unique per response (`date`, `content-length`, `etag`, `last-modified`,
//! `location`, a multipart content type, ...) and every name not listed are literals without
//! indexing, with the static name when there is one; credentials and cookies are never
//! indexed (§7.1.3).
//! Strings are Huffman coded when that is shorter.
//!
//! Finding a field in the dynamic table compares 64-bit tags (a name id and a hash of the
//! value), not strings: bytes are compared only when a tag matches, so a lookup costs one
//! integer compare per entry plus one value compare per hit (`tests` counts them).

use super::table::{STATIC, Table, entry_size, static_name};
use super::wire::{encode_int, encode_string};

/// The most of the peer's table ferry uses, whatever larger size its SETTINGS allow:
/// responses repeat few fields, and every connection pays for the table.
const MAX_TABLE_SIZE: usize = 4096;

/// Values larger than this share of the table are sent as literals: one long value
/// would evict everything else.
const MAX_ENTRY_SHARE: usize = 4;

/// Names outside the static table whose values repeat across responses; their name ids
/// start after the static table's 61.
const REPEATING: [&[u8]; 16] = [
    b"x-cache",
    b"x-content-type-options",
    b"x-frame-options",
    b"x-xss-protection",
    b"referrer-policy",
    b"alt-svc",
    b"content-security-policy",
    b"permissions-policy",
    b"cross-origin-opener-policy",
    b"cross-origin-resource-policy",
    b"cross-origin-embedder-policy",
    b"access-control-allow-credentials",
    b"access-control-allow-methods",
    b"access-control-allow-headers",
    b"access-control-expose-headers",
    b"timing-allow-origin",
];

/// How one field is represented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Indexing {
    /// Into the dynamic table; `u8` is the name id (a static index, or 62 + a `REPEATING`
    /// position).
    Incremental(u8),
    /// Literal without indexing (§6.2.2).
    Never,
    /// Literal never indexed (§6.2.3): intermediaries must not index it either.
    Sensitive,
}

/// The representation for a field named `name`, whose static index is `static_index`.
fn indexing(name: &[u8], static_index: Option<u8>) -> Indexing {
    match static_index {
        // accept-ranges, access-control-allow-origin, allow, cache-control,
        // content-encoding, content-language, content-type, link, server,
        // strict-transport-security, vary, via.
        Some(i @ (18 | 20 | 22 | 24 | 26 | 27 | 31 | 45 | 54 | 56 | 59 | 60)) => {
            Indexing::Incremental(i)
        }
        // authorization, cookie, proxy-authenticate, proxy-authorization, set-cookie,
        // www-authenticate: credentials and challenges.
        Some(23 | 32 | 48 | 49 | 55 | 61) => Indexing::Sensitive,
        Some(_) => Indexing::Never,
        None => match REPEATING.iter().position(|&n| n == name) {
            // At most 16 positions: the id fits.
            Some(i) => Indexing::Incremental(62 + i as u8),
            None => Indexing::Never,
        },
    }
}

/// A cheap 32-bit hash of a value, for tags (not for anything an attacker could exploit:
/// a collision only costs one extra byte compare).
fn hash(value: &[u8]) -> u32 {
    let mut h: u64 = value.len() as u64;
    let mut chunks = value.chunks_exact(8);
    for c in &mut chunks {
        let word = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    for &b in chunks.remainder() {
        h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    (h >> 32) as u32
}

fn tag(name_id: u8, value: &[u8]) -> u64 {
    (u64::from(name_id) << 32) | u64::from(hash(value))
}

/// One connection's HPACK encoder: the dynamic table the peer's decoder mirrors.
pub struct Encoder {
    pub(super) table: Table,
    /// A table size change not yet signalled: (smallest size since the last block, the
    /// size now), sent at the start of the next block (§4.2, §6.3).
    update: Option<(usize, usize)>,
    /// Value compares made by lookups (what a tag match costs), for the tests.
    #[cfg(test)]
    pub(super) compares: usize,
}

impl Default for Encoder {
    fn default() -> Encoder {
        Encoder::new()
    }
}

impl Encoder {
    /// The peer's table size is 4096 until its SETTINGS say otherwise.
    pub fn new() -> Encoder {
        Encoder {
            table: Table::new(MAX_TABLE_SIZE),
            update: None,
            #[cfg(test)]
            compares: 0,
        }
    }

    /// The peer's SETTINGS_HEADER_TABLE_SIZE: the encoder never uses more, and starts its
    /// next block with a size update when it shrank.
    pub fn set_max_table_size(&mut self, size: usize) {
        let size = size.min(MAX_TABLE_SIZE);
        if self.update.is_none() && size == self.table.max_size() {
            return;
        }
        // Evicting now is what the peer does when it reads the update(s).
        self.table.set_max_size(size);
        let low = self.update.map_or(size, |(low, _)| low.min(size));
        self.update = Some((low, size));
    }

    /// Appends `:status`. Must be called first in a block: it starts the block with any
    /// pending table size update.
    pub fn encode_status(&mut self, status: u16, out: &mut Vec<u8>) {
        if let Some((low, size)) = self.update.take() {
            if low < size {
                encode_int(low, 5, 0x20, out);
            }
            encode_int(size, 5, 0x20, out);
        }
        // Three digits; a status that has not (never sent by ferry) goes out as 500.
        let status = if (100..=999).contains(&status) {
            status
        } else {
            500
        };
        let index = match status {
            200 => 8,
            204 => 9,
            206 => 10,
            304 => 11,
            400 => 12,
            404 => 13,
            500 => 14,
            _ => 0,
        };
        if index != 0 {
            out.push(0x80 | index);
            return;
        }
        let digits = [
            b'0' + (status / 100) as u8,
            b'0' + (status / 10 % 10) as u8,
            b'0' + (status % 10) as u8,
        ];
        // Literal without indexing, name `:status` (static 8).
        encode_int(8, 4, 0x00, out);
        encode_string(&digits, out);
    }

    /// Appends one field (name already lowercase).
    pub fn encode(&mut self, name: &[u8], value: &[u8], out: &mut Vec<u8>) {
        let static_index = static_name(name);
        if let Some(i) = static_index.filter(|&i| !STATIC[usize::from(i) - 1].1.is_empty()) {
            // Names whose static entries carry values (accept-encoding, the pseudo-fields).
            let mut i = usize::from(i);
            while i <= STATIC.len() && STATIC[i - 1].0 == name {
                if STATIC[i - 1].1 == value {
                    encode_int(i, 7, 0x80, out);
                    return;
                }
                i += 1;
            }
        }
        match indexing(name, static_index) {
            // A multipart/byteranges boundary differs per response (route::file_answer).
            Indexing::Incremental(31) if value.starts_with(b"multipart/") => {
                literal(0x00, 4, static_index, name, value, out)
            }
            Indexing::Incremental(id) => self.encode_indexed(id, static_index, name, value, out),
            Indexing::Never => literal(0x00, 4, static_index, name, value, out),
            Indexing::Sensitive => literal(0x10, 4, static_index, name, value, out),
        }
    }

    /// A field that belongs in the dynamic table: indexed if there, else added.
    fn encode_indexed(
        &mut self,
        id: u8,
        static_index: Option<u8>,
        name: &[u8],
        value: &[u8],
        out: &mut Vec<u8>,
    ) {
        let tag = tag(id, value);
        let mut name_index = static_index.map(usize::from);
        for (i, t) in self.table.tags().enumerate() {
            if t == tag {
                #[cfg(test)]
                {
                    self.compares += 1;
                }
                if self.table.get(i).is_some_and(|(_, v)| v == value) {
                    encode_int(62 + i, 7, 0x80, out);
                    return;
                }
            } else if name_index.is_none() && t >> 32 == u64::from(id) {
                name_index = Some(62 + i);
            }
        }
        if entry_size(name, value) > self.table.max_size() / MAX_ENTRY_SHARE {
            return literal(0x00, 4, static_index, name, value, out);
        }
        match name_index {
            Some(i) => encode_int(i, 6, 0x40, out),
            None => {
                out.push(0x40);
                encode_string(name, out);
            }
        }
        encode_string(value, out);
        self.table.insert(name, value, tag);
    }
}

/// A literal field not added to the table: `pattern` and `prefix` pick the representation.
fn literal(
    pattern: u8,
    prefix: u8,
    static_index: Option<u8>,
    name: &[u8],
    value: &[u8],
    out: &mut Vec<u8>,
) {
    match static_index {
        Some(i) => encode_int(usize::from(i), prefix, pattern, out),
        None => {
            out.push(pattern);
            encode_string(name, out);
        }
    }
    encode_string(value, out);
}
