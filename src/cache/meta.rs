//! What ferry keeps about a stored response besides its body, and its on-disk encoding.
//!
//! An object file is `[header][metadata][padding][body]`: a fixed header (magic, where the
//! body starts, the metadata's length and SHA-256), the metadata in a length-prefixed binary
//! encoding, then the body at a page-aligned offset that hits send from with sendfile. The
//! room left before the body lets a 304 rewrite the metadata in place (metadata that outgrows
//! it gets the object written anew, see `store`); a checksum that does not match at start-up
//! (a rewrite a crash cut short) drops the object.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest::{SHA256, digest};

use crate::http::Scheme;

/// First bytes of every object file (the format's version is the last digit). Version 2 added
/// the scheme to the key; files of version 1 are unusable and removed when the cache opens.
pub const MAGIC: &[u8; 8] = b"FERRYC2\n";
/// Bytes of the fixed header: magic, body offset (u64), metadata length (u32), SHA-256.
pub const HEADER_LEN: usize = 8 + 8 + 4 + 32;
/// Room kept after the metadata for refreshed headers to grow into.
const SLACK: usize = 1024;
/// Body offsets are multiples of this (a page).
const ALIGN: u64 = 4096;

/// A stored response, minus its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The primary key: scheme, `host` and target.
    pub scheme: Scheme,
    pub host: String,
    pub target: String,
    /// The secondary key: the request headers the response varies on and the values the
    /// storing request had (`None`: absent).
    pub vary: Vec<(String, Option<Vec<u8>>)>,
    pub status: u16,
    /// The headers the client gets (hop-by-hop, Date, Server, X-Accel-* already gone).
    pub headers: Vec<(String, Vec<u8>)>,
    /// When the response arrived (seconds since the epoch).
    pub response_time: u64,
    /// Its age then (RFC 9111 §4.2.3 corrected_initial_age).
    pub initial_age: u64,
    /// Seconds it is fresh for, counted in age.
    pub lifetime: u64,
    /// Seconds past expiry it may be served when the app fails.
    pub stale_if_error: u64,
    /// Seconds past expiry it may be served while refreshed in the background.
    pub stale_while_revalidate: u64,
    /// Never served stale.
    pub no_stale: bool,
    pub body_len: u64,
}

/// Why a stored header or metadata block is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetaError {
    #[error("not a cache object (bad magic)")]
    Magic,
    #[error("truncated")]
    Truncated,
    #[error("checksum mismatch")]
    Checksum,
    #[error("malformed metadata")]
    Malformed,
}

/// The fixed header of an object file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub body_offset: u64,
    pub meta_len: u32,
    pub checksum: [u8; 32],
}

impl Meta {
    /// The response's current age (seconds) at `now`.
    pub fn age(&self, now: u64) -> u64 {
        super::policy::current_age(self.initial_age, self.response_time, now)
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The metadata bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.push(match self.scheme {
            Scheme::Http => 0,
            Scheme::Https => 1,
        });
        put_bytes(&mut out, self.host.as_bytes());
        put_bytes(&mut out, self.target.as_bytes());
        put_u64(&mut out, self.vary.len() as u64);
        for (name, value) in &self.vary {
            put_bytes(&mut out, name.as_bytes());
            match value {
                Some(value) => {
                    out.push(1);
                    put_bytes(&mut out, value);
                }
                None => out.push(0),
            }
        }
        put_u64(&mut out, u64::from(self.status));
        put_u64(&mut out, self.headers.len() as u64);
        for (name, value) in &self.headers {
            put_bytes(&mut out, name.as_bytes());
            put_bytes(&mut out, value);
        }
        for n in [
            self.response_time,
            self.initial_age,
            self.lifetime,
            self.stale_if_error,
            self.stale_while_revalidate,
            u64::from(self.no_stale),
            self.body_len,
        ] {
            put_u64(&mut out, n);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Meta, MetaError> {
        let mut r = Reader(bytes);
        let scheme = match r.byte()? {
            0 => Scheme::Http,
            1 => Scheme::Https,
            _ => return Err(MetaError::Malformed),
        };
        let host = r.string()?;
        let target = r.string()?;
        let mut vary = Vec::new();
        for _ in 0..r.count()? {
            let name = r.string()?;
            let value = match r.byte()? {
                0 => None,
                1 => Some(r.bytes()?.to_vec()),
                _ => return Err(MetaError::Malformed),
            };
            vary.push((name, value));
        }
        let status = u16::try_from(r.u64()?).map_err(|_| MetaError::Malformed)?;
        let mut headers = Vec::new();
        for _ in 0..r.count()? {
            headers.push((r.string()?, r.bytes()?.to_vec()));
        }
        let meta = Meta {
            scheme,
            host,
            target,
            vary,
            status,
            headers,
            response_time: r.u64()?,
            initial_age: r.u64()?,
            lifetime: r.u64()?,
            stale_if_error: r.u64()?,
            stale_while_revalidate: r.u64()?,
            no_stale: r.u64()? != 0,
            body_len: r.u64()?,
        };
        if !r.0.is_empty() {
            return Err(MetaError::Malformed);
        }
        Ok(meta)
    }
}

/// The header and metadata bytes to write at the start of an object file whose body starts
/// at `body_offset`; `None` when the metadata does not fit before it.
pub fn encode_head(meta: &Meta, body_offset: u64) -> Option<Vec<u8>> {
    let encoded = meta.encode();
    if (HEADER_LEN + encoded.len()) as u64 > body_offset {
        return None;
    }
    let mut out = Vec::with_capacity(HEADER_LEN + encoded.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&body_offset.to_le_bytes());
    out.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
    out.extend_from_slice(digest(&SHA256, &encoded).as_ref());
    out.extend_from_slice(&encoded);
    Some(out)
}

/// Where the body of an object with metadata `meta` starts: past header, metadata and
/// slack, rounded up to a page.
pub fn body_offset(meta: &Meta) -> u64 {
    let used = (HEADER_LEN + meta.encode().len() + SLACK) as u64;
    used.div_ceil(ALIGN) * ALIGN
}

/// Parses the fixed header at the start of an object file.
pub fn decode_header(bytes: &[u8]) -> Result<Header, MetaError> {
    if bytes.len() < HEADER_LEN {
        return Err(MetaError::Truncated);
    }
    if &bytes[..8] != MAGIC {
        return Err(MetaError::Magic);
    }
    let body_offset =
        u64::from_le_bytes(bytes[8..16].try_into().map_err(|_| MetaError::Truncated)?);
    let meta_len = u32::from_le_bytes(bytes[16..20].try_into().map_err(|_| MetaError::Truncated)?);
    let mut checksum = [0u8; 32];
    checksum.copy_from_slice(&bytes[20..52]);
    if (HEADER_LEN as u64 + u64::from(meta_len)) > body_offset {
        return Err(MetaError::Malformed);
    }
    Ok(Header {
        body_offset,
        meta_len,
        checksum,
    })
}

/// Checks `bytes` (the metadata) against the header's checksum and decodes them.
pub fn decode_checked(header: &Header, bytes: &[u8]) -> Result<Meta, MetaError> {
    if bytes.len() != header.meta_len as usize {
        return Err(MetaError::Truncated);
    }
    if digest(&SHA256, bytes).as_ref() != header.checksum {
        return Err(MetaError::Checksum);
    }
    Meta::decode(bytes)
}

/// Seconds since the epoch now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn put_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MetaError> {
        if self.0.len() < n {
            return Err(MetaError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, MetaError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, MetaError> {
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(
            bytes.try_into().map_err(|_| MetaError::Truncated)?,
        ))
    }

    /// A count of items, each at least one byte: never more than the bytes left.
    fn count(&mut self) -> Result<usize, MetaError> {
        let n = self.u64()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.0.len())
            .ok_or(MetaError::Malformed)
    }

    fn bytes(&mut self) -> Result<&'a [u8], MetaError> {
        let n = self.count()?;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, MetaError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| MetaError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Meta {
        Meta {
            scheme: Scheme::Https,
            host: "example.com".into(),
            target: "/a?b=1".into(),
            vary: vec![
                ("accept-encoding".into(), Some(b"gzip".to_vec())),
                ("accept-language".into(), None),
            ],
            status: 200,
            headers: vec![
                ("Content-Type".into(), b"text/plain".to_vec()),
                ("ETag".into(), b"\"x\"".to_vec()),
            ],
            response_time: 1_700_000_000,
            initial_age: 3,
            lifetime: 60,
            stale_if_error: 3600,
            stale_while_revalidate: 0,
            no_stale: false,
            body_len: 1 << 20,
        }
    }

    #[test]
    fn metadata_round_trips_through_the_file_head() {
        let meta = sample();
        let offset = body_offset(&meta);
        assert_eq!(offset % 4096, 0);
        let head = encode_head(&meta, offset).unwrap_or_default();
        let header = decode_header(&head).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(header.body_offset, offset);
        let decoded = decode_checked(&header, &head[HEADER_LEN..]);
        assert_eq!(decoded, Ok(meta.clone()));
        assert_eq!(meta.header("etag"), Some(&b"\"x\""[..]));
        assert_eq!(meta.age(1_700_000_010), 13);
    }

    #[test]
    fn damage_is_detected() {
        let meta = sample();
        let offset = body_offset(&meta);
        let head = encode_head(&meta, offset).unwrap_or_default();
        let mut flipped = head.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let header = decode_header(&flipped).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            decode_checked(&header, &flipped[HEADER_LEN..]),
            Err(MetaError::Checksum)
        );
        assert_eq!(
            decode_checked(&header, &head[HEADER_LEN..last]),
            Err(MetaError::Truncated)
        );
        assert_eq!(decode_header(&head[..10]), Err(MetaError::Truncated));
        assert_eq!(decode_header(&[0u8; 64]), Err(MetaError::Magic));
        assert_eq!(Meta::decode(&[0xff; 9]), Err(MetaError::Malformed));
        // Metadata that grew past the body offset does not fit.
        let mut grown = meta;
        grown.headers.push(("X-Big".into(), vec![b'x'; 8192]));
        assert_eq!(encode_head(&grown, offset), None);
    }
}
