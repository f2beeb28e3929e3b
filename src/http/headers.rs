//! A request's header fields, kept as one block of bytes: each field is its name's and its
//! value's lengths followed by the name and the value, in received order. Every request
//! carries its fields this way, so holding them costs one allocation however many there are
//! (one `String` and one `Vec` per field cost two each), and looking one up is the same
//! linear walk it was over a list.
//!
//! The block is a per-thread spare (`spare`) when there is one, and goes back when the
//! headers are dropped: a worker serving requests one after another allocates none.
//!
//! Plain data: `codec` and the HTTP/2 frontend fill it, everything downstream reads it
//! through [`RequestHead`](super::RequestHead). Names and values are stored as given; their
//! syntax was checked where they came from.

use std::cell::RefCell;
use std::fmt;

use super::spare::{self, Spares};

/// Bytes of a field's record before its name: the name's and the value's lengths.
const LENGTHS: usize = 8;

/// Blocks kept as spares: up to this many per thread, of at most this many bytes (most
/// request heads are well under 2 KiB).
const SPARES_KEPT: usize = 64;
const SPARE_BYTES: usize = 4096;

thread_local! {
    static SPARE_BLOCKS: Spares<u8> = const { RefCell::new(Vec::new()) };
}

/// Header fields in received order; names keep the case they came with.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    /// The records, back to back: name length and value length (u32, little-endian), then
    /// the name and the value.
    bytes: Vec<u8>,
    len: usize,
}

/// One header field, borrowed from its [`Headers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a str,
    pub value: &'a [u8],
}

impl Headers {
    pub fn new() -> Headers {
        Headers::default()
    }

    /// Room for fields whose names and values add up to `bytes`, `fields` of them, without
    /// growing.
    pub fn with_capacity(fields: usize, bytes: usize) -> Headers {
        Headers {
            bytes: spare::take(&SPARE_BLOCKS, bytes + fields * LENGTHS),
            len: 0,
        }
    }

    /// Appends the field `name: value`.
    pub fn push(&mut self, name: &str, value: &[u8]) {
        let lengths = |n: usize| u32::try_from(n).expect("a field under 4 GiB");
        self.bytes
            .extend_from_slice(&lengths(name.len()).to_le_bytes());
        self.bytes
            .extend_from_slice(&lengths(value.len()).to_le_bytes());
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.extend_from_slice(value);
        self.len += 1;
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The fields in received order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            records: Records { rest: &self.bytes },
        }
    }

    /// The value of the first field named `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.get_all(name).next()
    }

    /// Whether an `Expect` field asks for 100-continue (RFC 9110 §10.1.1).
    pub fn expects_continue(&self) -> bool {
        self.get_all("expect")
            .any(|v| trim_ows(v).eq_ignore_ascii_case(b"100-continue"))
    }

    /// The values of every field named `name` (case-insensitive), in received order.
    pub fn get_all<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
        // Names compared as bytes: a lookup need not check that each one is UTF-8.
        Records { rest: &self.bytes }
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| value)
    }

    /// Keeps only the fields `keep` accepts, in their order.
    pub fn retain(&mut self, mut keep: impl FnMut(Field<'_>) -> bool) {
        // Each field is asked once: those before the first one dropped are kept as they are.
        let Some(first_dropped) = self.iter().position(|f| !keep(f)) else {
            return;
        };
        let mut kept = Headers::with_capacity(0, self.bytes.len());
        for (i, field) in self.iter().enumerate() {
            if i < first_dropped || (i > first_dropped && keep(field)) {
                kept.push(field.name, field.value);
            }
        }
        *self = kept;
    }

    /// Gives the first field named `name` (case-insensitive) the value `value`, keeping its
    /// place and the case of its name; appends `name: value` when there is none.
    pub fn set(&mut self, name: &str, value: &[u8]) {
        if self.get(name).is_none() {
            self.push(name, value);
            return;
        }
        let mut out = Headers::with_capacity(self.len, self.bytes.len() + value.len());
        let mut done = false;
        for field in self.iter() {
            if !done && field.name.eq_ignore_ascii_case(name) {
                out.push(field.name, value);
                done = true;
            } else {
                out.push(field.name, field.value);
            }
        }
        *self = out;
    }
}

impl Drop for Headers {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.bytes);
        spare::put(&SPARE_BLOCKS, bytes, SPARE_BYTES, SPARES_KEPT);
    }
}

impl<'a> FromIterator<(&'a str, &'a [u8])> for Headers {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a [u8])>>(fields: I) -> Headers {
        let mut headers = Headers::new();
        for (name, value) in fields {
            headers.push(name, value);
        }
        headers
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|field| (field.name, String::from_utf8_lossy(field.value))),
            )
            .finish()
    }
}

/// The fields of a [`Headers`], in received order.
pub struct Iter<'a> {
    records: Records<'a>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        let (name, value) = self.records.next()?;
        // Only `push` writes records, and it takes the name as a `&str`.
        let name = std::str::from_utf8(name).unwrap_or_default();
        Some(Field { name, value })
    }
}

/// The records of a block as (name, value) bytes.
struct Records<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Records<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (lengths, rest) = self.rest.split_first_chunk::<LENGTHS>()?;
        let [n0, n1, n2, n3, v0, v1, v2, v3] = *lengths;
        let name_len = u32::from_le_bytes([n0, n1, n2, n3]) as usize;
        let value_len = u32::from_le_bytes([v0, v1, v2, v3]) as usize;
        let (name, rest) = rest.split_at(name_len);
        let (value, rest) = rest.split_at(value_len);
        self.rest = rest;
        Some((name, value))
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = Field<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// `v` without the optional whitespace (spaces, tabs) around it.
pub(super) fn trim_ows(v: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = v.iter().position(|b| !is_ows(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !is_ows(b)).map_or(start, |e| e + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(headers: &Headers) -> Vec<(&str, &[u8])> {
        headers.iter().map(|f| (f.name, f.value)).collect()
    }

    #[test]
    fn fields_keep_their_order_case_and_bytes() {
        let mut headers = Headers::with_capacity(3, 20);
        headers.push("Host", b"a");
        headers.push("accept", b"");
        headers.push("Accept", b"x\xff\ty");
        assert_eq!(headers.len(), 3);
        assert_eq!(
            fields(&headers),
            [
                ("Host", &b"a"[..]),
                ("accept", b""),
                ("Accept", b"x\xff\ty")
            ]
        );
        assert_eq!(headers.get("ACCEPT"), Some(&b""[..]));
        assert_eq!(headers.get_all("accept").count(), 2);
        assert_eq!(headers.get("missing"), None);
        assert!(Headers::new().is_empty());
        assert_eq!(Headers::new().iter().next(), None);
    }

    #[test]
    fn retain_and_set_keep_the_others_in_place() {
        let mut headers: Headers = [("A", &b"1"[..]), ("B", b"2"), ("a", b"3"), ("C", b"4")]
            .into_iter()
            .collect();
        headers.retain(|f| f.name != "B");
        assert_eq!(
            fields(&headers),
            [("A", &b"1"[..]), ("a", b"3"), ("C", b"4")]
        );
        headers.set("a", b"new");
        assert_eq!(
            fields(&headers),
            [("A", &b"new"[..]), ("a", b"3"), ("C", b"4")]
        );
        headers.set("Host", b"h");
        assert_eq!(headers.get("host"), Some(&b"h"[..]));
        assert_eq!(headers.len(), 4);
        let copy = headers.clone();
        assert_eq!(copy, headers);
    }
}
