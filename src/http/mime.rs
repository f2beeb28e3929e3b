//! Content-Type for a file path, guessed from its extension.
//!
//! Only the extension is looked at (via mime_guess); file contents are never
//! sniffed.

use std::path::Path;

/// Media type for `path`: mime_guess by extension, `"; charset=utf-8"`
/// appended for `text/*`, `application/javascript` and `application/json`;
/// `application/octet-stream` when the extension is unknown or missing.
pub fn content_type(path: &Path) -> String {
    let Some(mime) = mime_guess::from_path(path).first_raw() else {
        return "application/octet-stream".to_owned();
    };
    if mime.starts_with("text/") || mime == "application/javascript" || mime == "application/json" {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::content_type;
    use std::path::Path;

    fn ct(p: &str) -> String {
        content_type(Path::new(p))
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
    }

    #[test]
    fn unknown_or_missing_extension_is_octet_stream() {
        assert_eq!(ct("README"), "application/octet-stream");
        assert_eq!(ct("archive.zzzunknown"), "application/octet-stream");
        assert_eq!(ct(".bashrc"), "application/octet-stream");
        assert_eq!(ct("dir/"), "application/octet-stream");
    }
}
