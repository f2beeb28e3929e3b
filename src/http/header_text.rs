//! The text of a header value ferry makes itself, held without an allocation when it can
//! be: a constant (`bytes`, `Accept-Encoding`), or a short text kept inline (dates, entity
//! tags, content types, `max-age=N`). Anything longer is an owned `String`. A static file's
//! response carries half a dozen such values; as `String`s each one cost an allocation.

use std::fmt::{self, Write as _};
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// Longest text kept inline: the longest entity-tag `strong_etag` makes (68 bytes: two
/// 64-bit numbers and a 128-bit one in hex, two dashes, two quotes) fits, and so do dates
/// and the common media types with their charset.
const INLINE: usize = 70;

/// A header value's text (see the module comment).
#[derive(Clone)]
pub enum HeaderText {
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

impl HeaderText {
    /// `s`, copied inline when it is short enough.
    pub fn copied(s: &str) -> HeaderText {
        let mut inline = Inline {
            len: 0,
            bytes: [0; INLINE],
        };
        match inline.push_str(s) {
            Ok(()) => HeaderText::Inline(inline),
            Err(_) => HeaderText::Owned(s.to_owned()),
        }
    }

    /// The text `args` formats to: inline when it fits, else a `String`.
    pub fn format(args: fmt::Arguments<'_>) -> HeaderText {
        if let Some(s) = args.as_str() {
            return HeaderText::Static(s);
        }
        let mut inline = Inline {
            len: 0,
            bytes: [0; INLINE],
        };
        match inline.write_fmt(args) {
            Ok(()) => HeaderText::Inline(inline),
            Err(_) => HeaderText::Owned(fmt::format(args)),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            HeaderText::Static(s) => s,
            HeaderText::Inline(inline) => inline.as_str(),
            HeaderText::Owned(s) => s,
        }
    }
}

impl Deref for HeaderText {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for HeaderText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<&'static str> for HeaderText {
    fn from(s: &'static str) -> HeaderText {
        HeaderText::Static(s)
    }
}

impl From<String> for HeaderText {
    fn from(s: String) -> HeaderText {
        HeaderText::Owned(s)
    }
}

impl From<HeaderText> for String {
    fn from(text: HeaderText) -> String {
        match text {
            HeaderText::Owned(s) => s,
            other => other.as_str().to_owned(),
        }
    }
}

impl PartialEq for HeaderText {
    fn eq(&self, other: &HeaderText) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for HeaderText {}

impl PartialEq<str> for HeaderText {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for HeaderText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for HeaderText {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl Hash for HeaderText {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for HeaderText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for HeaderText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_are_inline_and_long_ones_owned() {
        let short = HeaderText::copied("text/html; charset=utf-8");
        assert!(matches!(short, HeaderText::Inline(_)));
        assert_eq!(short, "text/html; charset=utf-8");
        let edge = "x".repeat(INLINE);
        assert!(matches!(HeaderText::copied(&edge), HeaderText::Inline(_)));
        let long = "é".repeat(INLINE);
        assert!(matches!(HeaderText::copied(&long), HeaderText::Owned(_)));
        assert_eq!(HeaderText::copied(&long), long);
    }

    #[test]
    fn formatted_texts_read_back_whole() {
        let secs = std::hint::black_box(86_400u64);
        let n = HeaderText::format(format_args!("max-age={secs}"));
        assert!(matches!(n, HeaderText::Inline(_)));
        assert_eq!(n.as_str(), "max-age=86400");
        let constant = HeaderText::format(format_args!("bytes"));
        assert!(matches!(constant, HeaderText::Static("bytes")));
        let long = "y".repeat(INLINE);
        let spilled = HeaderText::format(format_args!("{long}-{}", 1));
        assert!(matches!(spilled, HeaderText::Owned(_)));
        assert_eq!(spilled, format!("{long}-1"));
        assert_eq!(String::from(HeaderText::from("a")), "a");
    }
}
