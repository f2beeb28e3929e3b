//! Content-Type for a file path, guessed from its extension.
//!
//! Only the extension is looked at (via mime_guess); file contents are never
//! sniffed. Answers are remembered per extension and worker thread, since
//! mime_guess's case-insensitive table search cost more than the rest of a
//! small file's response head.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::short_text::ShortText;

/// Extensions remembered per thread; past this the memory starts over (a site has a
/// handful of extensions; a client naming random ones must not grow it).
const REMEMBERED: usize = 64;

/// Media type for `path`: mime_guess by extension, `"; charset=utf-8"`
/// appended for `text/*`, `application/javascript` and `application/json`;
/// `application/octet-stream` when the extension is unknown or missing.
/// Held inline (see `ShortText`): a response takes its copy without an allocation.
pub fn content_type(path: &Path) -> ShortText {
    thread_local! {
        static BY_EXTENSION: RefCell<Vec<(Box<OsStr>, ShortText)>> = const { RefCell::new(Vec::new()) };
    }
    // The answer depends on the extension alone (mime_guess looks at nothing else).
    let Some(ext) = extension(path) else {
        return guess(path);
    };
    BY_EXTENSION.with(|memory| {
        let mut memory = memory.borrow_mut();
        if let Some((_, ctype)) = memory.iter().find(|(known, _)| **known == *ext) {
            return ctype.clone();
        }
        let ctype = guess(path);
        if memory.len() == REMEMBERED {
            memory.clear();
        }
        memory.push((ext.into(), ctype.clone()));
        ctype
    })
}

/// `path.extension()` without its component parsing for the names ferry serves (a last
/// segment that is not empty, `.` or `..`, which `relative_path` guarantees); any other
/// name is left to `Path`.
fn extension(path: &Path) -> Option<&OsStr> {
    let bytes = path.as_os_str().as_bytes();
    let name = bytes.rsplit(|&b| b == b'/').next().unwrap_or(bytes);
    if name.is_empty() || name == b"." || name == b".." {
        return path.extension();
    }
    match name.iter().rposition(|&b| b == b'.') {
        Some(0) | None => None,
        Some(dot) => Some(OsStr::from_bytes(&name[dot + 1..])),
    }
}

fn guess(path: &Path) -> ShortText {
    let Some(mime) = mime_guess::from_path(path).first_raw() else {
        return "application/octet-stream".into();
    };
    if mime.starts_with("text/") || mime == "application/javascript" || mime == "application/json" {
        ShortText::format(format_args!("{mime}; charset=utf-8"))
    } else {
        mime.into()
    }
}

#[cfg(test)]
mod tests {
    use super::content_type;
    use std::path::Path;

    fn ct(p: &str) -> String {
        content_type(Path::new(p)).into()
    }

    #[test]
    fn text_types_get_utf8_charset() {
        assert_eq!(ct("index.html"), "text/html; charset=utf-8");
        assert_eq!(ct("/a/b/style.CSS"), "text/css; charset=utf-8");
        assert_eq!(ct("notes.txt"), "text/plain; charset=utf-8");
        assert_eq!(ct("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(ct("mod.mjs"), "application/javascript; charset=utf-8");
        assert_eq!(ct("data.json"), "application/json; charset=utf-8");
    }

    #[test]
    fn binary_types_have_no_charset() {
        assert_eq!(ct("logo.png"), "image/png");
        assert_eq!(ct("x.svg"), "image/svg+xml");
        assert_eq!(ct("m.wasm"), "application/wasm");
        // Longer than what is held inline: the same answer, owned.
        let docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
        assert_eq!(ct("report.docx"), docx);
        assert_eq!(ct("again.docx"), docx);
    }

    #[test]
    fn remembered_answers_are_the_same_as_fresh_ones() {
        // Twice each (the second from memory), in an order that mixes cases of one extension.
        for p in [
            "a.html", "b.HTML", "c.png", "a.html", "b.HTML", "c.png", "x.zzz", "x.zzz",
        ] {
            assert_eq!(ct(p), super::guess(Path::new(p)).as_str(), "{p}");
        }
        // More extensions than are remembered: still right after the memory starts over.
        for i in 0..(super::REMEMBERED * 2 + 3) {
            assert_eq!(ct(&format!("f.e{i}")), "application/octet-stream");
        }
        assert_eq!(ct("late.css"), "text/css; charset=utf-8");
    }

    proptest::proptest! {
        #[test]
        fn extension_is_what_path_says(name in "[a./]{0,12}") {
            let path = Path::new(&name);
            proptest::prop_assert_eq!(super::extension(path), path.extension());
        }
    }

    #[test]
    fn unknown_or_missing_extension_is_octet_stream() {
        assert_eq!(ct("README"), "application/octet-stream");
        assert_eq!(ct("archive.zzzunknown"), "application/octet-stream");
        assert_eq!(ct(".bashrc"), "application/octet-stream");
        assert_eq!(ct("dir/"), "application/octet-stream");
    }
}
