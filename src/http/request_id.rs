//! Request IDs (`X-Request-Id`): the one a trusted proxy sent, when it is sane, or a new one of
//! 128 random bits as 32 lowercase hex digits. New ones come from a per-thread SplitMix64
//! generator seeded once from the OS, so an ID costs a few multiplications and no allocation
//! or system call; they are unique with overwhelming probability but not secrets (do not use
//! them as tokens). Kept IDs are the one allocation, on requests from a trusted proxy.

use std::cell::Cell;
use std::fmt;
use std::hash::{BuildHasher, RandomState};

/// The longest X-Request-Id kept from a trusted proxy; a longer one is replaced.
pub const MAX_KEPT: usize = 200;

/// One request's ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Repr);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Repr {
    /// Not given yet (a head no connection has identified).
    Unset,
    /// 32 lowercase hex digits.
    Generated([u8; 32]),
    /// A trusted proxy's: 1 to [`MAX_KEPT`] visible ASCII characters.
    Kept(Box<str>),
}

impl RequestId {
    /// The placeholder of heads no connection has identified (`-` in text).
    pub const UNSET: RequestId = RequestId(Repr::Unset);

    /// A new random ID.
    pub fn generate() -> RequestId {
        let (high, low) = (next(), next());
        let mut out = [0u8; 32];
        for (i, byte) in high
            .to_be_bytes()
            .iter()
            .chain(&low.to_be_bytes())
            .enumerate()
        {
            out[2 * i] = HEX[usize::from(byte >> 4)];
            out[2 * i + 1] = HEX[usize::from(byte & 0x0f)];
        }
        RequestId(Repr::Generated(out))
    }

    /// `value` as an ID, if it is sane: 1 to [`MAX_KEPT`] bytes of visible ASCII (no spaces,
    /// no controls), so it can go into a header and a log line as it is.
    pub fn kept(value: &[u8]) -> Option<RequestId> {
        let sane = !value.is_empty()
            && value.len() <= MAX_KEPT
            && value.iter().all(|b| (0x21..=0x7e).contains(b));
        let text = std::str::from_utf8(value).ok().filter(|_| sane)?;
        Some(RequestId(Repr::Kept(text.into())))
    }

    /// Whether it is [`RequestId::UNSET`].
    pub fn is_unset(&self) -> bool {
        self.0 == Repr::Unset
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Unset => "-",
            // Hex digits only: always UTF-8.
            Repr::Generated(hex) => std::str::from_utf8(hex).unwrap_or("-"),
            Repr::Kept(text) => text,
        }
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

/// The next SplitMix64 output of this thread's generator.
fn next() -> u64 {
    STATE.with(|state| {
        let s = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// A seed from the OS (getrandom, through aws-lc); should that fail, std's per-process
/// random hash keys, which also come from the OS.
fn seed() -> u64 {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 8];
    match SystemRandom::new().fill(&mut bytes) {
        Ok(()) => u64::from_ne_bytes(bytes),
        Err(_) => RandomState::new().hash_one(std::thread::current().id()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_32_hex_digits_and_differ() {
        let ids: Vec<RequestId> = (0..1000).map(|_| RequestId::generate()).collect();
        for id in &ids {
            let text = id.as_str();
            assert_eq!(text.len(), 32, "{text}");
            assert!(text.bytes().all(|b| HEX.contains(&b)), "{text}");
        }
        let mut texts: Vec<&str> = ids.iter().map(RequestId::as_str).collect();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), ids.len());
        // Another thread has its own seed: not the same sequence.
        let here = RequestId::generate();
        let there = std::thread::spawn(RequestId::generate).join().unwrap();
        assert_ne!(here, there);
    }

    #[test]
    fn only_sane_ids_are_kept() {
        let id = RequestId::kept(b"req-42:abc/DEF").unwrap();
        assert_eq!(id.to_string(), "req-42:abc/DEF");
        assert!(RequestId::kept(&[b'a'; MAX_KEPT]).is_some());
        for bad in [
            &b""[..],
            &[b'a'; MAX_KEPT + 1],
            b"two words",
            b"tab\there",
            b"nul\0",
            "caf\u{e9}".as_bytes(),
            b"del\x7f",
        ] {
            assert_eq!(RequestId::kept(bad), None, "{bad:?}");
        }
        assert_eq!(RequestId::UNSET.as_str(), "-");
    }
}
