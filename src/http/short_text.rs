//! Text that every request carries, held without an allocation when it can be: a constant
//! (`bytes`, `Accept-Encoding`), or a short text kept inline (a request's target, and the
//! header values ferry makes itself: dates, entity tags, content types, `max-age=N`).
//! Anything longer is an owned `String`. A static file's request and response carry half
//! a dozen such texts; as `String`s each one cost an allocation.

use std::fmt::{self, Write as _};
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// Longest text kept inline: the longest entity-tag `strong_etag` makes (68 bytes: two
/// 64-bit numbers and a 128-bit one in hex, two dashes, two quotes) fits, and so do dates
/// and the common media types with their charset, and most request targets.
const INLINE: usize = 70;

/// A request target's or a header value's text (see the module comment).
#[derive(Clone)]
pub enum ShortText {
    Static(&'static str),
    Inline(Inline),
    Owned(String),
}

/// Up to [`INLINE`] bytes of UTF-8, in place.
#[derive(Clone, Copy)]
pub struct Inline {
    len: u8,
    bytes: [u8; INLINE],
}

impl Inline {
    fn as_str(&self) -> &str {
        // Only `push_str` fills it, from whole `&str`s.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    /// Appends `s`, or leaves `self` as it was and fails when it would not fit.
    fn push_str(&mut self, s: &str) -> fmt::Result {
        let at = usize::from(self.len);
        let end = at + s.len();
        if end > INLINE {
            return Err(fmt::Error);
        }
        self.bytes[at..end].copy_from_slice(s.as_bytes());
        self.len = end as u8;
        Ok(())
    }
}

impl fmt::Write for Inline {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s)
    }
}

impl ShortText {
    /// `s`, copied inline when it is short enough.
    pub fn copied(s: &str) -> ShortText {
        let mut inline = Inline {
            len: 0,
            bytes: [0; INLINE],
        };
        match inline.push_str(s) {
            Ok(()) => ShortText::Inline(inline),
            Err(_) => ShortText::Owned(s.to_owned()),
        }
    }

    /// The text `args` formats to: inline when it fits, else a `String`.
    pub fn format(args: fmt::Arguments<'_>) -> ShortText {
        if let Some(s) = args.as_str() {
            return ShortText::Static(s);
        }
        let mut inline = Inline {
            len: 0,
            bytes: [0; INLINE],
        };
        match inline.write_fmt(args) {
            Ok(()) => ShortText::Inline(inline),
            Err(_) => ShortText::Owned(fmt::format(args)),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ShortText::Static(s) => s,
            ShortText::Inline(inline) => inline.as_str(),
            ShortText::Owned(s) => s,
        }
    }
}

impl Deref for ShortText {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for ShortText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<&'static str> for ShortText {
    fn from(s: &'static str) -> ShortText {
        ShortText::Static(s)
    }
}

impl From<String> for ShortText {
    fn from(s: String) -> ShortText {
        ShortText::Owned(s)
    }
}

impl From<ShortText> for String {
    fn from(text: ShortText) -> String {
        match text {
            ShortText::Owned(s) => s,
            other => other.as_str().to_owned(),
        }
    }
}

impl PartialEq for ShortText {
    fn eq(&self, other: &ShortText) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for ShortText {}

impl PartialEq<str> for ShortText {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ShortText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for ShortText {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl Hash for ShortText {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for ShortText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ShortText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_are_inline_and_long_ones_owned() {
        let short = ShortText::copied("text/html; charset=utf-8");
        assert!(matches!(short, ShortText::Inline(_)));
        assert_eq!(short, "text/html; charset=utf-8");
        let edge = "x".repeat(INLINE);
        assert!(matches!(ShortText::copied(&edge), ShortText::Inline(_)));
        let long = "é".repeat(INLINE);
        assert!(matches!(ShortText::copied(&long), ShortText::Owned(_)));
        assert_eq!(ShortText::copied(&long), long);
    }

    #[test]
    fn formatted_texts_read_back_whole() {
        let secs = std::hint::black_box(86_400u64);
        let n = ShortText::format(format_args!("max-age={secs}"));
        assert!(matches!(n, ShortText::Inline(_)));
        assert_eq!(n.as_str(), "max-age=86400");
        let constant = ShortText::format(format_args!("bytes"));
        assert!(matches!(constant, ShortText::Static("bytes")));
        let long = "y".repeat(INLINE);
        let spilled = ShortText::format(format_args!("{long}-{}", 1));
        assert!(matches!(spilled, ShortText::Owned(_)));
        assert_eq!(spilled, format!("{long}-1"));
        assert_eq!(String::from(ShortText::from("a")), "a");
    }
}
