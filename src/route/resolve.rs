//! Turns the part of a request path below a location prefix into a relative path that is safe
//! to hand to `openat2(RESOLVE_BENEATH)`. String checks here only reject what is malformed or
//! ambiguous (`..`, encoded slashes, NUL); containment itself is enforced by the kernel at
//! open time, so a symlink pointing out of the root is refused there, without a race.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStringExt;

use percent_encoding::percent_decode_str;

/// Why a request path was refused before touching the filesystem (answered with 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadPath {
    #[error("encoded slash in path")]
    EncodedSlash,
    #[error("nul byte in path")]
    Nul,
    #[error("dot segment in path")]
    DotSegment,
    #[error("malformed percent-encoding")]
    BadEscape,
}

/// Decodes `rest` (the request path after the location prefix, query already removed) into a
/// relative path: `"."` for the location's root itself. Empty segments (`a//b`) collapse.
/// Borrowed when `rest` is that path already (the common case: nothing to decode or drop).
pub fn relative_path(rest: &str) -> Result<Cow<'_, OsStr>, BadPath> {
    check_escapes(rest)?;
    if is_plain(rest) {
        return Ok(Cow::Borrowed(OsStr::new(rest)));
    }
    let mut out: Vec<u8> = Vec::with_capacity(rest.len());
    for raw in rest.split('/') {
        // Borrowed unless it has escapes to decode (no copy per plain segment).
        let segment: Cow<'_, [u8]> = percent_decode_str(raw).into();
        if segment.is_empty() {
            continue;
        }
        if segment.contains(&0) {
            return Err(BadPath::Nul);
        }
        if *segment == *b"." || *segment == *b".." {
            return Err(BadPath::DotSegment);
        }
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(&segment);
    }
    if out.is_empty() {
        out.push(b'.');
    }
    Ok(Cow::Owned(OsString::from_vec(out)))
}

/// Whether `rest` is already what [`relative_path`] makes of it: not empty, no escapes to
/// decode, and no empty, dot or NUL-holding segments.
fn is_plain(rest: &str) -> bool {
    !rest.is_empty()
        && !rest.contains(['%', '\0'])
        && rest
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

/// Rejects truncated or non-hex escapes (which percent_decode would pass through silently)
/// and encoded slashes (`%2F`), which would let one segment name a nested path.
fn check_escapes(rest: &str) -> Result<(), BadPath> {
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(BadPath::BadEscape)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(BadPath::BadEscape);
            }
            if hex.eq_ignore_ascii_case(b"2f") {
                return Err(BadPath::EncodedSlash);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(rest: &str) -> String {
        relative_path(rest)
            .unwrap()
            .into_owned()
            .into_string()
            .unwrap()
    }

    #[test]
    fn plain_paths() {
        assert_eq!(ok(""), ".");
        assert_eq!(ok("a.txt"), "a.txt");
        assert_eq!(ok("dir/"), "dir");
        assert_eq!(ok("dir//b.txt"), "dir/b.txt");
        assert_eq!(ok("sp%20ace.txt"), "sp ace.txt");
        assert_eq!(ok("%C3%A9t%C3%A9"), "été");
        assert_eq!(ok("a/b.c/d"), "a/b.c/d");
        assert_eq!(ok("/a"), "a");
        assert!(matches!(relative_path("a/b.txt"), Ok(Cow::Borrowed(_))));
        assert!(matches!(relative_path("a//b.txt"), Ok(Cow::Owned(_))));
    }

    #[test]
    fn refused_paths() {
        assert_eq!(relative_path("../etc/passwd"), Err(BadPath::DotSegment));
        assert_eq!(relative_path("a/%2e%2e/b"), Err(BadPath::DotSegment));
        assert_eq!(relative_path("a/%2E./b"), Err(BadPath::DotSegment));
        assert_eq!(relative_path("a/./b"), Err(BadPath::DotSegment));
        assert_eq!(relative_path("a%2fb"), Err(BadPath::EncodedSlash));
        assert_eq!(relative_path("..%2Fb"), Err(BadPath::EncodedSlash));
        assert_eq!(relative_path("a%00.txt"), Err(BadPath::Nul));
        assert_eq!(relative_path("a%zz"), Err(BadPath::BadEscape));
        assert_eq!(relative_path("a%2"), Err(BadPath::BadEscape));
    }

    proptest! {
        /// Whatever comes in, what goes out is relative, has no dot segments and no NUL.
        #[test]
        fn resolved_paths_stay_relative(rest in "[a-zA-Z0-9%./_~-]{0,40}") {
            if let Ok(path) = relative_path(&rest) {
                let bytes = path.into_owned().into_vec();
                prop_assert!(!bytes.is_empty());
                prop_assert!(bytes[0] != b'/');
                prop_assert!(!bytes.contains(&0));
                if bytes != b"." {
                    for segment in bytes.split(|&b| b == b'/') {
                        prop_assert!(!segment.is_empty());
                        prop_assert!(segment != b"." && segment != b"..");
                    }
                }
            }
        }

        #[test]
        fn arbitrary_input_never_panics(rest in any::<String>()) {
            let _ = relative_path(&rest);
        }
    }
}
